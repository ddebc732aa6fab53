//! Integration tests, in one binary so the Bevy stack is linked once:
//! the real binary's command line, the headless Bevy app, and a real window
//! under Xvfb.

mod cli;
mod headless_app;
mod loom_memory;
mod loom_workers;
mod memory;
mod physics_bench;
mod screenshot;
mod workers;

use std::path::PathBuf;

/// This test binary attributes its heap like the game binary does.
#[global_allocator]
static ALLOC: particle_forge::memory::TrackingAlloc<std::alloc::System> =
    particle_forge::memory::TrackingAlloc(std::alloc::System);
use std::process::{Command, Output};

/// The game binary cargo built for these tests.
pub fn game() -> Command {
    Command::new(env!("CARGO_BIN_EXE_particle-forge"))
}

pub fn run(cmd: &mut Command) -> (i32, String, String) {
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
