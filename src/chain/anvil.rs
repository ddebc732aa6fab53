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

impl Anvil {
    /// Starts anvil on `port` (a free one when `None`), keeping its chain
    /// in `state` across restarts when given, and waits until it listens.
    pub fn start(port: Option<u16>, state: Option<&Path>) -> Result<Self, String> {
        Self::launch(port, state, false)
    }

    /// Like `start`, at a low CPU priority (nice 10): the benchmark's
    /// stand-in for a node on another machine, so that on a two-core box it
    /// does not take the game's cores.
    pub fn start_in_background(port: Option<u16>, state: Option<&Path>) -> Result<Self, String> {
        Self::launch(port, state, true)
    }

    fn launch(port: Option<u16>, state: Option<&Path>, nice: bool) -> Result<Self, String> {
        let bin = find().ok_or(
            "anvil is not installed; run `npm ci` in the project (scripts/test does) or set PARTICLE_FORGE_ANVIL",
        )?;
        let port = match port {
            Some(p) => p,
            None => free_port().map_err(|e| format!("no free port for anvil ({e})"))?,
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
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start anvil at {} ({e})", bin.display()))?;
        let mut anvil = Self {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = anvil.child.try_wait() {
                return Err(format!("anvil exited at start ({status})"));
            }
            if Instant::now() > deadline {
                return Err("anvil did not start listening within 20 s".into());
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
