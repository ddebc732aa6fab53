//! `bench chain`: event recording measured end to end, through the journal,
//! the sender and a real node — a local anvil started for the run (or the
//! node given with --rpc-url), else the embedded EVM.
//!
//! - throughput: events handed over as fast as a game could, until every
//!   one is confirmed on chain (events per second);
//! - gas: batched recording against the same contract called once per
//!   event (the peer: one transaction per event);
//! - frames: the headless game (autoplay, the real schedule) without the
//!   chain, with a live node, with a hung node (accepts, never answers) and
//!   with a dead one (nothing listens), interleaved; frame p99 of each.

use crate::chain::{ChainBackend, ChainConfig, EventBody, GameEvent, Recorder, SecretKey, anvil};
use crate::game::{Config, headless};
use crate::workers::WorkerPool;
use serde::Serialize;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// "anvil", "rpc" (a node given with --rpc-url) or "embedded".
    pub node: String,
    pub events: u64,
    pub events_per_s: f64,
    pub gas_per_event: f64,
    pub gas_per_event_one_tx_each: f64,
    /// One transaction per event's gas ÷ batched gas per event.
    pub gas_vs_one_tx_per_event: f64,
    pub batches: u64,
    pub frame_p99_ms_without_chain: f64,
    pub frame_p99_ms_with_chain: f64,
    pub frame_p99_ms_hung_node: f64,
    pub frame_p99_ms_dead_node: f64,
    /// Each p99 ÷ the run without the chain (1.05 = 5% slower).
    pub frame_ratio_with_chain: f64,
    pub frame_ratio_hung_node: f64,
    pub frame_ratio_dead_node: f64,
    /// Events recorded during the frame runs with the live node.
    pub game_events: u64,
    pub particles: usize,
    pub frames: u64,
}

/// A fresh data directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pf-bench-chain-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A node that accepts connections and never answers.
struct HungNode {
    url: String,
    _listener: Arc<TcpListener>,
}

impl HungNode {
    fn start() -> anyhow::Result<Self> {
        let listener = Arc::new(
            TcpListener::bind("127.0.0.1:0").map_err(|e| anyhow::anyhow!("cannot listen ({e})"))?,
        );
        let port = listener.local_addr()?.port();
        let l = listener.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in l.incoming().flatten() {
                held.push(conn);
            }
        });
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            _listener: listener,
        })
    }
}

/// `n` explosions as a busy game would produce them.
fn events(n: u64) -> Vec<GameEvent> {
    (0..n)
        .map(|i| {
            let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            GameEvent::new(
                i * 3,
                EventBody::Explosion {
                    x: (h % 1280) as u32,
                    y: ((h >> 16) % 720) as u32,
                    hit: (h >> 32) % 400,
                },
            )
        })
        .collect()
}

/// Records `n` events through a recorder and waits until all are
/// confirmed: (events per second, gas per event, batches).
fn record_all(config: &ChainConfig, n: u64, per_frame: usize) -> anyhow::Result<(f64, f64, u64)> {
    let dir = TempDir::new("rec");
    let mut config = config.clone();
    config.data_dir = dir.0.to_string_lossy().into_owned();
    let pool = Arc::new(WorkerPool::new(1, 2)?);
    let (recorder, _) = Recorder::start(&config, pool)?;
    let all = events(n);
    let t0 = Instant::now();
    for chunk in all.chunks(per_frame) {
        recorder.record(chunk)?;
    }
    recorder.flush();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let s = recorder.snapshot();
        if s.confirmed >= n {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "bench chain: only {} of {n} events confirmed after 300 s (last error: {})",
                s.confirmed,
                s.last_error.unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = t0.elapsed().as_secs_f64();
    let s = recorder.finish();
    Ok((n as f64 / secs, s.gas_per_event, s.batches))
}

/// The headless game's frame p99 with this chain config.
fn frame_p99(chain: &ChainConfig, particles: usize, frames: u64) -> anyhow::Result<(f64, u64)> {
    let dir = TempDir::new("game");
    let mut config = Config::default();
    config.particles.initial = particles;
    config.chain = chain.clone();
    config.chain.data_dir = dir.0.to_string_lossy().into_owned();
    let summary = headless::run(config, frames, true)?;
    Ok((summary.frame_ms.p99, summary.chain.recorded))
}

pub fn run(base: &ChainConfig, quick: bool) -> anyhow::Result<ChainReport> {
    // Which node: the one given, a local anvil, or the embedded EVM.
    let mut live = base.clone();
    live.batch_ms = 50;
    live.flush_on_exit_ms = 2000;
    let _anvil;
    let node = if base.backend == ChainBackend::Rpc {
        "rpc"
    } else if anvil::find().is_some() {
        super::progress("chain: starting a local anvil");
        let a = anvil::Anvil::start_in_background(None, None)?;
        live.backend = ChainBackend::Rpc;
        live.rpc_url = a.url.clone();
        live.signing_key = Some(SecretKey(anvil::DEV_KEY.into()));
        _anvil = a;
        "anvil"
    } else {
        live.backend = ChainBackend::Embedded;
        "embedded"
    };

    let n = if quick { 5_000 } else { 20_000 };
    super::progress(&format!("chain: recording {n} events on {node}"));
    let (events_per_s, gas_per_event, batches) = record_all(&live, n, 100)?;
    let singles = if quick { 10 } else { 40 };
    super::progress(&format!("chain: {singles} events, one transaction each"));
    let mut one_each = live.clone();
    one_each.batch_events = 1;
    let (_, gas_single, _) = record_all(&one_each, singles, 1)?;

    // Frames: off, live, hung, dead, interleaved.
    let (particles, frames, rounds) = if quick {
        (10_000, 120, 1)
    } else {
        (20_000, 300, 5)
    };
    let hung_node = HungNode::start()?;
    let dead_port = anvil::free_port()?;
    let rpc_like = |url: &str| {
        let mut c = live.clone();
        c.batch_ms = base.batch_ms;
        c.backend = ChainBackend::Rpc;
        c.rpc_url = url.to_string();
        c.timeout_ms = 1000;
        c.flush_on_exit_ms = 200;
        c.signing_key = Some(SecretKey(anvil::DEV_KEY.into()));
        c
    };
    // The game runs with the configured batching (not the throughput
    // run's short wait).
    let mut live_game = live.clone();
    live_game.batch_ms = base.batch_ms;
    let off = ChainConfig {
        backend: ChainBackend::Off,
        ..live.clone()
    };
    let hung = rpc_like(&hung_node.url);
    let dead = rpc_like(&format!("http://127.0.0.1:{dead_port}"));
    let mut p99 = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut game_events = 0;
    for round in 0..rounds {
        for (i, c) in [&off, &live_game, &hung, &dead].into_iter().enumerate() {
            super::progress(&format!(
                "chain: frames, round {}/{rounds}, {}",
                round + 1,
                ["no chain", "live node", "hung node", "dead node"][i]
            ));
            let (p, recorded) = frame_p99(c, particles, frames)?;
            p99[i].push(p);
            if i == 1 {
                game_events += recorded;
            }
        }
    }
    let [off_p, live_p, hung_p, dead_p] = p99.map(|mut v| super::quantile(&mut v, 0.5));
    Ok(ChainReport {
        node: node.into(),
        events: n,
        events_per_s,
        gas_per_event,
        gas_per_event_one_tx_each: gas_single,
        gas_vs_one_tx_per_event: gas_single / gas_per_event.max(1.0),
        batches,
        frame_p99_ms_without_chain: off_p,
        frame_p99_ms_with_chain: live_p,
        frame_p99_ms_hung_node: hung_p,
        frame_p99_ms_dead_node: dead_p,
        frame_ratio_with_chain: live_p / off_p,
        frame_ratio_hung_node: hung_p / off_p,
        frame_ratio_dead_node: dead_p / off_p,
        game_events,
        particles,
        frames,
    })
}

impl ChainReport {
    pub fn describe(&self) -> String {
        format!(
            "chain benchmark on {node}\n\
             throughput: {events} events confirmed at {eps:.0} events/s ({batches} batches)\n\
             gas: {gpe:.0} per event batched, {single:.0} with one transaction per event ({ratio:.1}x less)\n\
             frame p99 ({particles} particles, {frames} frames, autoplay): no chain {off:.2} ms, \
             live node {live:.2} ms ({rl:.3}), hung node {hung:.2} ms ({rh:.3}), dead node {dead:.2} ms ({rd:.3})\n\
             events recorded by the game runs with the live node: {ge}",
            node = self.node,
            events = self.events,
            eps = self.events_per_s,
            batches = self.batches,
            gpe = self.gas_per_event,
            single = self.gas_per_event_one_tx_each,
            ratio = self.gas_vs_one_tx_per_event,
            particles = self.particles,
            frames = self.frames,
            off = self.frame_p99_ms_without_chain,
            live = self.frame_p99_ms_with_chain,
            rl = self.frame_ratio_with_chain,
            hung = self.frame_p99_ms_hung_node,
            rh = self.frame_ratio_hung_node,
            dead = self.frame_p99_ms_dead_node,
            rd = self.frame_ratio_dead_node,
            ge = self.game_events,
        )
    }
}
