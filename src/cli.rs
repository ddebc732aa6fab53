//! Command-line flags and how they combine with the config file.

use crate::game::Config;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

const CONTROLS: &str = "\
Controls (window):
  left drag           spawn brush          1 2 3 4   sand, water, spark, heavy
  right drag          attract              P         pause
  shift + right drag  repel                R         reset
  space               explosion            H         help on screen
  F3                  debug overlay        Esc       quit
                                           C         compact the particle store

Config: every tunable lives in a TOML file. `--print-config` writes the
defaults; `--config FILE` reads one (./particle-forge.toml is read when
present); `--set section.key=value` overrides one key; the flags above
override the file.";

/// A particle sandbox: spawn, attract, repel and blow up hundreds of
/// thousands of colliding particles.
#[derive(Parser, Debug, Default, Clone)]
#[command(name = "particle-forge", version, after_help = CONTROLS)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run without a window or GPU, as fast as possible, then print a summary.
    #[arg(long)]
    pub headless: bool,

    /// Frames to run before exiting (headless default: 600; window default:
    /// run until closed, or 60 with --screenshot).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub frames: Option<u64>,

    /// Particles at start and after reset [config: particles.initial, default 100000].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub particles: Option<usize>,

    /// Most particles alive at once [config: particles.max, default 2000000].
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub max_particles: Option<usize>,

    /// Seed of every random choice; same seed, same run [config: world.seed].
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub seed: Option<u64>,

    /// Headless: make the last line of stdout one JSON object.
    #[arg(long)]
    pub json: bool,

    /// A scripted player uses the tools (spawn bursts, attract, explosions); it spawns up to twice the initial count, never past what the box holds at rest.
    #[arg(long)]
    pub autoplay: bool,

    /// Render the frames, save a PNG of the window to this path and exit.
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,

    /// Read settings from this TOML file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Override one config key, e.g. `--set physics.substeps=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Physics threads, 0 = one per core [config: physics.threads].
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub threads: Option<usize>,

    /// Physics substeps per frame [config: physics.substeps, default 3].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub substeps: Option<u32>,

    /// Contact passes per substep [config: physics.iterations, default 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub iterations: Option<u32>,

    /// Downward acceleration in world units/s² [config: world.gravity, default 500].
    #[arg(long, value_name = "G", allow_negative_numbers = true)]
    pub gravity: Option<f32>,

    /// Window width in pixels [config: window.width, default 1280].
    #[arg(long, value_name = "PX", allow_negative_numbers = true)]
    pub width: Option<u32>,

    /// Window height in pixels [config: window.height, default 720].
    #[arg(long, value_name = "PX", allow_negative_numbers = true)]
    pub height: Option<u32>,

    /// Buffers the memory pool maps at start [config: memory.pool_buffers, default 20].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pool_buffers: Option<usize>,

    /// Size of one pool buffer in KiB [config: memory.pool_buffer_kib, default 1024].
    #[arg(long, value_name = "KIB", allow_negative_numbers = true)]
    pub pool_buffer_kib: Option<usize>,

    /// Draw the frames into an image instead of a window: no display needed,
    /// only a Vulkan device (default 60 frames; with --screenshot, saves it).
    #[arg(long)]
    pub offscreen: bool,

    /// Start with the debug overlay open [config: window.overlay].
    #[arg(long)]
    pub overlay: bool,

    /// Do not wait for the display's refresh [config: window.vsync].
    #[arg(long)]
    pub no_vsync: bool,

    /// Print the effective config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Where game events are recorded: an in-process EVM, a JSON-RPC node,
    /// or nowhere [config: chain.backend, default embedded].
    #[arg(long, value_enum, value_name = "BACKEND", global = true)]
    pub chain: Option<crate::chain::ChainBackend>,

    /// The node for --chain rpc (the signing key comes from the environment
    /// variable PARTICLE_FORGE_PRIVATE_KEY, never from a flag) [config: chain.rpc_url].
    #[arg(long, value_name = "URL", global = true)]
    pub rpc_url: Option<String>,

    /// Folder for the event journal and the embedded chain [config:
    /// chain.data_dir, default: the platform's data directory].
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Side-by-side benchmarks against peers, run in this process.
    Bench {
        #[command(subcommand)]
        suite: BenchSuite,
    },
    /// The recorded game events: read back from the chain, or the journal.
    Chain {
        #[command(subcommand)]
        what: ChainCommand,
    },
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainCommand {
    /// Print the recorded events, decoded from the chain's logs.
    History {
        /// Only this session's events.
        #[arg(long, value_name = "S")]
        session: Option<u64>,
        /// One JSON object per event per line.
        #[arg(long)]
        json: bool,
    },
    /// Print the journal: per session, events confirmed and still pending
    /// (read without writing: it works while a game records).
    Status {
        /// Make the last line of stdout one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchSuite {
    /// The job system against rayon: spawn/join, parallel-for, scaling,
    /// frame-critical latency under load, clustered work.
    Workers(BenchArgs),
    /// The memory system against the slab crate, system malloc, mimalloc
    /// and buddy_system_allocator; fragmentation and pool decay.
    Memory(BenchArgs),
    /// The physics step against naive Bevy (an entity per particle) and an
    /// array-of-structs rayon version, at 100k and 1M particles.
    Physics(PhysicsBenchArgs),
    /// Event recording: events/s, gas per event against one transaction per
    /// event, and frame p99 with a live, a hung and a dead node against no
    /// chain (starts a local anvil when --rpc-url is not given and
    /// node_modules/.bin/anvil exists; the embedded EVM otherwise).
    Chain(BenchArgs),
    /// The open debug overlay's CPU on the frame at 200,000 particles (its
    /// passes at the game's rate) against the physics step and against
    /// laying it out every frame.
    Overlay(BenchArgs),
}

#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchArgs {
    /// Fewer repetitions (under 20 seconds).
    #[arg(long)]
    pub quick: bool,
    /// Make the last line of stdout one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysicsBenchArgs {
    /// Fewer repetitions (under 30 seconds).
    #[arg(long)]
    pub quick: bool,
    /// Make the last line of stdout one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Step only this contender on one scene and print its time per step:
    /// for running under a profiler, such as valgrind's cachegrind.
    #[arg(long, value_enum)]
    pub profile: Option<crate::bench::physics::Contender>,
    /// Scene for --profile.
    #[arg(long, value_enum, default_value = "pile", requires = "profile")]
    pub profile_scene: crate::bench::physics::Scene,
    /// Particles for --profile (1 to 2,000,000).
    #[arg(long, default_value_t = 100_000, requires = "profile")]
    pub profile_particles: usize,
    /// Steps for --profile, after one warm-up step.
    #[arg(long, default_value_t = 5, requires = "profile")]
    pub profile_steps: usize,
}

/// What to run, once flags and config agree.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    PrintConfig,
    Bench(BenchSuite),
    Chain(ChainCommand),
    Headless {
        frames: u64,
        json: bool,
    },
    Window {
        frames: Option<u64>,
        screenshot: Option<PathBuf>,
        /// Into an image, with no window (`--offscreen`).
        offscreen: bool,
    },
}

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "particle-forge.toml";

/// A flag, or the config it loads, asks for something that cannot be: one
/// sentence that says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(pub String);

impl From<&str> for FlagError {
    fn from(message: &str) -> Self {
        Self(message.to_string())
    }
}

impl From<crate::game::config::ConfigError> for FlagError {
    fn from(e: crate::game::config::ConfigError) -> Self {
        Self(e.0)
    }
}

impl Cli {
    /// Loads and overrides the config and checks the flags against it. The
    /// error is one sentence that says what to do.
    pub fn resolve(&self) -> Result<(Config, Mode), FlagError> {
        if let Some(Command::Bench { suite }) = self.command {
            let mut config = Config::default();
            self.apply_chain_flags(&mut config)?;
            return Ok((config, Mode::Bench(suite)));
        }
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Config::load(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Config::default(),
        };
        for s in &self.set {
            config.set(s)?;
        }
        if let Some(m) = self.max_particles {
            if m == 0 {
                return Err("--max-particles must be at least 1".into());
            }
            config.particles.max = m;
            config.particles.initial = config.particles.initial.min(m);
        }
        if let Some(p) = self.particles {
            if p == 0 {
                return Err("--particles must be at least 1 (for an empty box use --set particles.initial=0)".into());
            }
            if p > config.particles.max {
                return Err(FlagError(format!(
                    "--particles {p} is above the maximum of {}; lower it or raise --max-particles",
                    config.particles.max
                )));
            }
            config.particles.initial = p;
        }
        if let Some(s) = self.seed {
            config.world.seed = s;
        }
        if let Some(t) = self.threads {
            config.physics.threads = t;
        }
        if let Some(n) = self.substeps {
            config.physics.substeps = n;
        }
        if let Some(n) = self.iterations {
            config.physics.iterations = n;
        }
        if let Some(g) = self.gravity {
            config.world.gravity = g;
        }
        if let Some(w) = self.width {
            config.window.width = w;
        }
        if let Some(h) = self.height {
            config.window.height = h;
        }
        if self.no_vsync {
            config.window.vsync = false;
        }
        if self.overlay {
            config.window.overlay = true;
        }
        if let Some(n) = self.pool_buffers {
            config.memory.pool_buffers = n;
        }
        if let Some(k) = self.pool_buffer_kib {
            config.memory.pool_buffer_kib = k;
        }
        self.apply_chain_flags(&mut config)?;
        if let Some(Command::Chain { what }) = self.command {
            return Ok((config, Mode::Chain(what)));
        }
        config
            .validate()
            .map_err(|e| FlagError(format!("{e} (after applying the flags)")))?;

        if self.frames == Some(0) {
            return Err("--frames must be at least 1".into());
        }
        if self.print_config {
            return Ok((config, Mode::PrintConfig));
        }
        if self.headless {
            if self.offscreen {
                return Err("--offscreen draws the game and --headless does not; pick one".into());
            }
            if self.screenshot.is_some() {
                return Err("--screenshot needs a window; drop --headless (with no display, add --offscreen or run it under xvfb-run)".into());
            }
            if self.overlay {
                return Err("--overlay needs a window; drop --headless (with no display, add --offscreen or run it under xvfb-run)".into());
            }
            return Ok((
                config,
                Mode::Headless {
                    frames: self.frames.unwrap_or(600),
                    json: self.json,
                },
            ));
        }
        if self.json {
            return Err(
                "--json only applies to --headless runs; add --headless or drop --json".into(),
            );
        }
        if let Some(path) = &self.screenshot {
            check_screenshot_path(path)?;
        }
        if !self.offscreen {
            check_display()?;
        }
        let frames = self
            .frames
            .or((self.screenshot.is_some() || self.offscreen).then_some(60));
        Ok((
            config,
            Mode::Window {
                frames,
                screenshot: self.screenshot.clone(),
                offscreen: self.offscreen,
            },
        ))
    }
}

impl Cli {
    fn apply_chain_flags(&self, config: &mut Config) -> Result<(), FlagError> {
        if let Some(b) = self.chain {
            config.chain.backend = b;
        }
        if let Some(url) = &self.rpc_url {
            config.chain.rpc_url = url.clone();
            if self.chain.is_none() {
                config.chain.backend = crate::chain::ChainBackend::Rpc;
            }
        }
        if let Some(dir) = &self.data_dir {
            if dir.as_os_str().is_empty() {
                return Err("--data-dir must name a folder".into());
            }
            config.chain.data_dir = dir.to_string_lossy().into_owned();
        }
        Ok(())
    }
}

/// The screenshot must be a .png in a folder we can write to.
fn check_screenshot_path(path: &Path) -> Result<(), FlagError> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(FlagError(format!(
            "--screenshot {} must end in .png",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(FlagError(format!(
            "cannot write the screenshot: folder {} does not exist; create it or pick another path",
            dir.display()
        )));
    }
    let probe = dir.join(format!(".particle-forge-write-test-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(FlagError(format!(
            "cannot write the screenshot into {} ({e}); pick a writable path",
            dir.display()
        ))),
    }
}

/// A window needs an X display (this build talks X11).
fn check_display() -> Result<(), FlagError> {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    if display.is_empty() {
        return Err("no display found (DISPLAY is not set); run it from a desktop session, under xvfb-run, or pass --headless".into());
    }
    // A local display `:N` has a socket; a missing one means no X server.
    if let Some(rest) = display.strip_prefix(':') {
        let number: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let socket = format!("/tmp/.X11-unix/X{number}");
        if !number.is_empty() && !Path::new(&socket).exists() {
            return Err(FlagError(format!(
                "no X server answers on DISPLAY={display} ({socket} is missing); start one, run under xvfb-run, or pass --headless"
            )));
        }
    }
    Ok(())
}

/// Turns a clap error into one line that says what to do.
pub fn one_line_error(e: &clap::Error) -> String {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return if e.to_string().contains("chain") && !e.to_string().contains("bench") {
            "chain needs a command: `particle-forge chain history` or `chain status` (add --json); run `particle-forge chain --help`".to_string()
        } else {
            "bench needs a suite: `particle-forge bench workers`, `bench memory`, `bench physics`, `bench chain` or `bench overlay` (add --quick, --json); run `particle-forge bench --help`".to_string()
        };
    }
    let rendered = e.to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim()
        .trim_start_matches("error: ")
        .to_string();
    format!("{first}; run `particle-forge --help` to see every flag")
}
