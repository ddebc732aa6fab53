//! `particle-forge`: the binary edge. Parses flags, then runs the windowed
//! game, the headless simulation or prints the config. Every user mistake
//! ends here as one line on stderr and exit code 2.

use clap::Parser;
use particle_forge::{
    app, bench, chain,
    cli::{BenchSuite, ChainCommand, Cli, Mode, one_line_error},
    game::headless,
};
use std::process::ExitCode;

/// Every heap byte is charged to the component the allocating thread works
/// for (see `memory::tracking`); the debug overlay shows the split.
#[global_allocator]
static ALLOC: particle_forge::memory::TrackingAlloc<std::alloc::System> =
    particle_forge::memory::TrackingAlloc(std::alloc::System);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("particle-forge: {}", one_line_error(&e));
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The library's errors are already one sentence with their
            // cause; the chain of sources would repeat it.
            eprintln!("particle-forge: {e}");
            ExitCode::from(2)
        }
    }
}

/// A benchmark's table, then (with `--json`) its JSON as the last line.
fn print_report(table: &str, report: &impl serde::Serialize, json: bool) -> anyhow::Result<u8> {
    println!("{table}");
    if json {
        let line = serde_json::to_string(report)?;
        println!("{line}");
    }
    Ok(0)
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let (config, mode) = cli.resolve()?;
    match mode {
        Mode::Bench(BenchSuite::Workers(args)) => {
            let report = bench::workers::run(args.quick);
            print_report(&report.describe(), &report, args.json)
        }
        Mode::Bench(BenchSuite::Physics(args)) => match args.profile {
            Some(who) => {
                let line = bench::physics::profile(
                    who,
                    args.profile_scene,
                    args.profile_particles,
                    args.profile_steps,
                )?;
                println!("{line}");
                Ok(0)
            }
            None => {
                let report = bench::physics::run(args.quick);
                print_report(&report.describe(), &report, args.json)
            }
        },
        Mode::Bench(BenchSuite::Memory(args)) => {
            let report = bench::memory::run(args.quick);
            print_report(&report.describe(), &report, args.json)
        }
        Mode::Bench(BenchSuite::Overlay(args)) => {
            let report = bench::overlay::run(args.quick)?;
            print_report(&report.describe(), &report, args.json)
        }
        Mode::Bench(BenchSuite::Chain(args)) => {
            let report = bench::chain::run(&config.chain, args.quick)?;
            print_report(&report.describe(), &report, args.json)
        }
        Mode::Chain(ChainCommand::History { session, json }) => {
            for line in chain::inspect::history(&config.chain, session, json)? {
                println!("{line}");
            }
            Ok(0)
        }
        Mode::Chain(ChainCommand::Status { json }) => {
            let status = chain::inspect::status(&config.chain)?;
            print_report(&status.describe(), &status, json)
        }
        Mode::PrintConfig => {
            print!("{}", config.to_toml());
            Ok(0)
        }
        Mode::Headless { frames, json } => {
            let summary = headless::run(config, frames, cli.autoplay)?;
            println!("{}", summary.describe());
            if json {
                let line = serde_json::to_string(&summary)?;
                println!("{line}");
            }
            Ok(0)
        }
        Mode::Window {
            frames,
            screenshot,
            offscreen,
        } => Ok(app::run_windowed(
            config,
            cli.autoplay,
            frames,
            screenshot,
            offscreen,
        )?),
    }
}
