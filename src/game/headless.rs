//! `--headless`: the real game schedule with no window and no GPU, run for a
//! number of frames as fast as the machine allows, then a summary.

use super::{Config, GamePlugin, Sandbox, SetupError};
use bevy::prelude::*;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Percentiles of a list of durations, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        // Nearest-rank percentile.
        let rank = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Self {
            p50: rank(0.50),
            p99: rank(0.99),
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        }
    }
}

/// Median time of each physics phase per step, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PhaseMedians {
    pub integrate: f64,
    pub grid: f64,
    pub collide: f64,
}

/// What a headless run prints (the `--json` line).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub frames: u64,
    /// Particles alive at the end.
    pub particles: usize,
    pub frame_ms: Percentiles,
    pub step_ms: Percentiles,
    pub phase_ms: PhaseMedians,
    pub steps_per_second: f64,
    pub seed: u64,
    pub threads: usize,
    pub autoplay: bool,
    pub spawned: u64,
    pub despawned: u64,
    pub explosions: u64,
    pub contacts: u64,
    /// Mean particle speed at the end (world units/s): near 0 once piles settle.
    pub mean_speed: f32,
    /// Highest particle centre at the end, as a fraction of the box height.
    pub top: f32,
    /// Position checksum, for comparing runs.
    pub checksum: String,
    pub wall_s: f64,
    pub memory: MemorySummary,
    /// The chain recorder at the end (after the exit flush).
    pub chain: crate::chain::ChainSnapshot,
}

/// The memory system at the end of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemorySummary {
    pub resident_mb: f64,
    /// Heap bytes charged to each component plus their pool memory, MiB.
    pub live_mb: std::collections::BTreeMap<String, f64>,
    pub tracked_mb: f64,
    /// Resident memory that is file-backed or shared (code, libraries).
    pub shared_mb: f64,
    pub pool_buffers: usize,
    pub pool_grows: u64,
    pub pool_shrinks: u64,
    pub store_compactions: u64,
    /// The workers' job caches (worker-local slab caches), hit rate each.
    pub job_cache_hit_rates: Vec<f64>,
    pub leak_warnings: Vec<crate::memory::LeakWarning>,
    /// The particle columns' region as each strategy placed the same
    /// requests (the live one first).
    pub column_space: Vec<ColumnSpaceRow>,
    /// Allocation sites still holding memory after the game shut down.
    pub outstanding_at_exit: Vec<String>,
}

/// One strategy's placement of the particle columns.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ColumnSpaceRow {
    pub strategy: String,
    pub live: bool,
    pub blocks: usize,
    pub allocated_mb: f64,
    pub holes: usize,
    /// Highest used byte, MiB: how far into the region the columns reach.
    pub high_water_mb: f64,
    pub external: f64,
    pub internal: f64,
    pub refused: u64,
}

/// Builds the headless app: the game's plugins on Bevy's `MinimalPlugins`.
pub fn build_app(config: Config, autoplay: bool) -> Result<App, SetupError> {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(super::bevy_task_pools()));
    // Warnings (a cut journal tail, an unreachable node) go to stderr. The
    // logger is global to the process, so only the first app installs it.
    static LOGGING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !LOGGING.swap(true, std::sync::atomic::Ordering::SeqCst) {
        app.add_plugins(bevy::log::LogPlugin {
            level: bevy::log::Level::WARN,
            ..Default::default()
        });
    }
    app.add_plugins(GamePlugin::new(config, autoplay)?);
    app.finish();
    app.cleanup();
    Ok(app)
}

/// Runs `frames` frames; shows progress on stderr when it is a terminal.
pub fn run(config: Config, frames: u64, autoplay: bool) -> Result<Summary, SetupError> {
    let seed = config.world.seed;
    let threads = config.physics_threads();
    let mut app = build_app(config, autoplay)?;
    let mut progress = Progress::new(frames);
    let mut frame_ms = Vec::with_capacity(frames as usize);
    let mut step_ms = Vec::with_capacity(frames as usize);
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    let start = Instant::now();
    for f in 0..frames {
        let t = Instant::now();
        app.update();
        frame_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let sandbox = app.world().resource::<Sandbox>();
        let s = sandbox.last_step;
        step_ms.push(s.total_ms);
        phases[0].push(s.integrate_ms);
        phases[1].push(s.grid_ms);
        phases[2].push(s.collide_ms);
        progress.show(f + 1);
    }
    progress.finish();
    let wall_s = start.elapsed().as_secs_f64();
    let mut memory = {
        let mem = app.world().resource::<super::memory::MemorySystem>();
        let snap = &mem.snapshot;
        let pool = mem.instance_pool.stats();
        MemorySummary {
            resident_mb: snap.resident_bytes as f64 / 1048576.0,
            live_mb: snap
                .components
                .iter()
                .map(|c| (c.component.to_string(), c.totals.live() as f64 / 1048576.0))
                .collect(),
            tracked_mb: snap.tracked_bytes as f64 / 1048576.0,
            shared_mb: snap.shared_bytes as f64 / 1048576.0,
            pool_buffers: pool.buffers,
            pool_grows: pool.grows,
            pool_shrinks: pool.shrinks,
            store_compactions: mem.compactions,
            job_cache_hit_rates: snap.caches.iter().map(|c| c.hit_rate()).collect(),
            leak_warnings: mem.leaks.clone(),
            column_space: app
                .world()
                .resource::<Sandbox>()
                .store
                .column_space()
                .map(|space| {
                    space
                        .maps()
                        .into_iter()
                        .map(|m| ColumnSpaceRow {
                            strategy: m.strategy.name().into(),
                            live: m.real,
                            blocks: m.stats.live_blocks,
                            allocated_mb: m.stats.allocated as f64 / 1048576.0,
                            holes: m.stats.free_blocks,
                            high_water_mb: m.high_water() as f64 / 1048576.0,
                            external: m.stats.external_fragmentation(),
                            internal: m.stats.internal_fragmentation(),
                            refused: m.refused,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            outstanding_at_exit: Vec::new(),
        }
    };
    let chain = {
        let world = app.world_mut();
        let frame = world.resource::<Sandbox>().frame;
        world
            .resource_mut::<super::chain::ChainRecorder>()
            .end_session(frame)
    };
    let sandbox = app.world().resource::<Sandbox>();
    let step = Percentiles::of(&step_ms);
    Ok(Summary {
        frames,
        particles: sandbox.store.len(),
        frame_ms: Percentiles::of(&frame_ms),
        step_ms: step,
        phase_ms: PhaseMedians {
            integrate: Percentiles::of(&phases[0]).p50,
            grid: Percentiles::of(&phases[1]).p50,
            collide: Percentiles::of(&phases[2]).p50,
        },
        steps_per_second: if step.mean > 0.0 {
            1000.0 / step.mean
        } else {
            0.0
        },
        seed,
        threads,
        autoplay,
        spawned: sandbox.counts.spawned,
        despawned: sandbox.counts.despawned,
        explosions: sandbox.counts.explosions,
        contacts: sandbox.last_step.contacts,
        mean_speed: {
            let s = sandbox.store.slices();
            let sum: f32 = s.vx.iter().zip(s.vy).map(|(u, v)| u.hypot(*v)).sum();
            sum / s.x.len().max(1) as f32
        },
        top: sandbox
            .store
            .slices()
            .y
            .iter()
            .fold(0.0f32, |a, &b| a.max(b))
            / sandbox.height(),
        checksum: format!("{:016x}", checksum(sandbox)),
        wall_s,
        chain,
        memory: {
            // Shut the game down, then see what is still allocated through
            // the memory system (nothing should be).
            drop(app);
            memory.outstanding_at_exit = crate::memory::SITES
                .outstanding()
                .into_iter()
                .map(|h| {
                    format!(
                        "{}: {} bytes in {} allocations",
                        h.site, h.stats.live_bytes, h.stats.live_count
                    )
                })
                .collect();
            memory
        },
    })
}

/// FNV-1a over the bits of every position and velocity.
pub fn checksum(sandbox: &Sandbox) -> u64 {
    let s = sandbox.store.slices();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for col in [s.x, s.y, s.vx, s.vy] {
        for v in col {
            h ^= v.to_bits() as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl Summary {
    /// The human-readable report.
    pub fn describe(&self) -> String {
        format!(
            "{} frames, {} particles at the end ({} threads, seed {}{})\n\
             frame: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n\
             physics step: p50 {:.2} ms, p99 {:.2} ms ({:.0} steps/s); \
             per step: integrate {:.2} ms, grid {:.2} ms, collide {:.2} ms\n\
             spawned {}, despawned {}, explosions {}, contacts {}\n\
             mean speed {:.1}, highest particle at {:.0}% of the box\n\
             checksum {}, wall {:.1} s\n\
             memory: resident {:.1} MiB, tracked {:.1} MiB, {} leak warnings, {} sites outstanding at exit",
            self.frames,
            self.particles,
            self.threads,
            self.seed,
            if self.autoplay { ", autoplay" } else { "" },
            self.frame_ms.p50,
            self.frame_ms.p99,
            self.frame_ms.max,
            self.step_ms.p50,
            self.step_ms.p99,
            self.steps_per_second,
            self.phase_ms.integrate,
            self.phase_ms.grid,
            self.phase_ms.collide,
            self.spawned,
            self.despawned,
            self.explosions,
            self.contacts,
            self.mean_speed,
            self.top * 100.0,
            self.checksum,
            self.wall_s,
            self.memory.resident_mb,
            self.memory.tracked_mb,
            self.memory.leak_warnings.len(),
            self.memory.outstanding_at_exit.len()
        ) + &chain_line(&self.chain)
    }
}

/// The chain's line of the summary.
fn chain_line(c: &crate::chain::ChainSnapshot) -> String {
    if c.backend == "off" && c.last_error.is_none() {
        return "\nchain: off".into();
    }
    let mut line = format!(
        "\nchain ({}): {} recorded, {} confirmed, {} pending, {} batches, {:.0} gas per event",
        c.backend, c.recorded, c.confirmed, c.pending, c.batches, c.gas_per_event
    );
    if c.held > 0 || c.lost > 0 {
        line += &format!(
            ", {} held in memory, {} lost (the journal refused writes)",
            c.held, c.lost
        );
    }
    if let Some(e) = &c.last_error {
        line += &format!("; last error: {e}");
    }
    line
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
struct Progress {
    total: u64,
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(total: u64) -> Self {
        Self {
            total,
            enabled: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, done: u64) {
        if !self.enabled || self.last.is_some_and(|t| t.elapsed().as_millis() < 100) {
            return;
        }
        self.last = Some(Instant::now());
        let width = 30;
        let filled = (done * width / self.total.max(1)) as usize;
        let _ = write!(
            std::io::stderr(),
            "\r[{}{}] {done}/{} frames",
            "#".repeat(filled),
            " ".repeat(width as usize - filled),
            self.total
        );
    }

    fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r{}\r", " ".repeat(60));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(|i| i as f64).collect();
        let p = Percentiles::of(&v);
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
        assert_eq!(p.mean, 50.5);
        assert_eq!(Percentiles::of(&[]).max, 0.0);
    }
}
