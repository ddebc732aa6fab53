//! Integration tests, in one binary so the Bevy stack is linked once:
//! the real binary's command line, the headless Bevy app, and a real window
//! under Xvfb.

mod chain;
mod cli;
mod headless_app;
mod loom_memory;
mod loom_workers;
mod memory;
mod overlay_bench;
mod physics_bench;
mod screenshot;
mod workers;

use std::path::PathBuf;

/// This test binary attributes its heap like the game binary does.
#[global_allocator]
static ALLOC: particle_forge::memory::TrackingAlloc<std::alloc::System> =
    particle_forge::memory::TrackingAlloc(std::alloc::System);
use std::process::{Command, Output};

/// The game binary cargo built for these tests, with a data directory of
/// its own (the platform default, through XDG_DATA_HOME), so runs in
/// parallel never share an event journal or touch the user's.
pub fn game() -> Command {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUN: AtomicU64 = AtomicU64::new(0);
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "xdg-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_particle-forge"));
    cmd.env("XDG_DATA_HOME", data);
    cmd
}

/// Runs `cmd` to its end: (exit code, stdout, stderr). Runs under
/// `xvfb-run` take turns: `-a` picks a free display by looking for lock
/// files, and two started at once can pick the same one (the second's
/// server then fails, and its window cannot open).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    static XVFB: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn =
        (cmd.get_program() == "xvfb-run").then(|| XVFB.lock().unwrap_or_else(|e| e.into_inner()));
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the game binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A fresh folder under the target directory for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `particle-forge bench SUITE --quick --json`, checks it ends well
/// within `limit_s`, and returns the JSON of its last line with stdout and
/// stderr.
pub fn bench_json(suite: &str, limit_s: u64) -> (serde_json::Value, String, String) {
    let t0 = std::time::Instant::now();
    let (code, stdout, stderr) = run(game().args(["bench", suite, "--quick", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let took = t0.elapsed();
    assert!(took.as_secs() < limit_s, "--quick took {took:?}");
    let last = stdout.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    (v, stdout, stderr)
}

/// Every key is a finite positive number in `v`.
pub fn assert_positive(v: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        let x = v[*key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {v}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
}
