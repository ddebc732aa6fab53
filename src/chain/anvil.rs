//! A local anvil node for the chain benchmark and tests: found in
//! `node_modules/.bin/anvil` (the npm package `@foundry-rs/anvil-linux-amd64`,
//! which scripts/test installs), started on a free loopback port, stopped
//! by its process id when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The private key of anvil's first development account (public knowledge,
/// funded by every anvil at start; worthless anywhere else).
pub const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// A running anvil.
pub struct Anvil {
    child: Child,
    pub port: u16,
    pub url: String,
}

/// The anvil binary: `$PARTICLE_FORGE_ANVIL`, else `node_modules/.bin/anvil`
/// under the working directory or the source tree.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PARTICLE_FORGE_ANVIL") {
        return Some(PathBuf::from(p));
    }
    [
        PathBuf::from("node_modules/.bin/anvil"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/anvil"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Why anvil could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    #[error(
        "anvil is not installed; run `npm ci` in the project (scripts/test does) or set PARTICLE_FORGE_ANVIL"
    )]
    NotInstalled,
    #[error("no free port for anvil ({0})")]
    NoPort(std::io::Error),
    #[error("cannot start anvil at {} ({source})", bin.display())]
    Spawn {
        bin: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("anvil exited at start ({0})")]
    Exited(std::process::ExitStatus),
    #[error("anvil did not start listening within 20 s")]
    NotListening,
}

impl Anvil {
    /// Starts anvil on `port` (a free one when `None`), keeping its chain
    /// in `state` across restarts when given, and waits until it listens.
    pub fn start(port: Option<u16>, state: Option<&Path>) -> Result<Self, AnvilError> {
        Self::launch(port, state, false)
    }

    /// Like `start`, at a low CPU priority (nice 10): the benchmark's
    /// stand-in for a node on another machine, so that on a two-core box it
    /// does not take the game's cores.
    pub fn start_in_background(
        port: Option<u16>,
        state: Option<&Path>,
    ) -> Result<Self, AnvilError> {
        Self::launch(port, state, true)
    }

    fn launch(port: Option<u16>, state: Option<&Path>, nice: bool) -> Result<Self, AnvilError> {
        let bin = find().ok_or(AnvilError::NotInstalled)?;
        let port = match port {
            Some(p) => p,
            None => free_port().map_err(AnvilError::NoPort)?,
        };
        // `nice` execs anvil, so the child's pid is anvil's.
        let mut cmd = if nice {
            let mut c = Command::new("nice");
            c.args(["-n", "10"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(state) = state {
            cmd.arg("--state").arg(state);
        }
        let child = cmd.spawn().map_err(|source| AnvilError::Spawn {
            bin: bin.clone(),
            source,
        })?;
        let mut anvil = Self {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = anvil.child.try_wait() {
                return Err(AnvilError::Exited(status));
            }
            if Instant::now() > deadline {
                return Err(AnvilError::NotListening);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(anvil)
    }

    /// Stops it gracefully (SIGTERM: anvil writes its `--state` file on the
    /// way out) and waits for it to exit.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid; touches no memory.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.wait();
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.terminate();
    }
}
