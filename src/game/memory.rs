//! The game's side of the memory system: the buffer pool the renderer packs
//! instances into, the per-frame snapshot the overlay draws, leak-watch
//! epochs, per-component budgets that follow demand, and defragmentation of
//! the particle store (automatic past a threshold, or on demand with C).

use super::{GameSet, PlayerState, Sandbox, SetupError};
use crate::memory::{
    self, BufferPool, Component, LEDGER, LeakWarning, MemorySnapshot, SITES, Sampler,
};
use crate::workers::WorkerEvent;
use bevy::prelude::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[derive(Resource)]
pub struct MemorySystem {
    /// Buffers for the GPU instance data (Render).
    pub instance_pool: BufferPool,
    sampler: Sampler,
    /// This frame's picture (sampled once per frame).
    pub snapshot: MemorySnapshot,
    /// Sites whose live bytes grew over the last `leak_epochs` epochs.
    pub leaks: Vec<LeakWarning>,
    warned: HashSet<String>,
    epoch: Duration,
    next_epoch: Instant,
    leak_epochs: usize,
    /// Largest live bytes per component over the current budget window.
    peak: [i64; Component::COUNT],
    defrag_threshold: f64,
    /// Particle-store compactions so far.
    pub compactions: u64,
}

impl MemorySystem {
    pub fn new(config: &crate::game::config::MemoryConfig) -> Result<Self, SetupError> {
        let instance_pool = Self::instance_pool_for(config)?;
        let epoch = Duration::from_secs_f32(config.epoch_s);
        Ok(Self {
            instance_pool,
            sampler: Sampler::new(),
            snapshot: MemorySnapshot::default(),
            leaks: Vec::new(),
            warned: HashSet::new(),
            epoch,
            next_epoch: Instant::now() + epoch,
            leak_epochs: config.leak_epochs,
            peak: [0; Component::COUNT],
            defrag_threshold: f64::from(config.defrag_threshold),
            compactions: 0,
        })
    }

    /// The renderer's instance pool as `config` sets it.
    pub fn instance_pool_for(
        config: &crate::game::config::MemoryConfig,
    ) -> Result<BufferPool, SetupError> {
        BufferPool::new("instances", Component::Render, config.pool())
            .map_err(SetupError::MemoryPool)
    }

    /// Replaces the instance pool; buffers still held (by this frame's
    /// instances) go back to the old pool.
    pub fn set_pool(&mut self, pool: BufferPool) {
        self.instance_pool = pool;
    }

    /// Compacts the particle store; logs what came back.
    pub fn defragment(&mut self, sandbox: &mut Sandbox, why: &str) {
        let before = sandbox.store.reserved_bytes();
        let _tag = memory::enter(Component::Game);
        sandbox.store.compact();
        let after = sandbox.store.reserved_bytes();
        self.compactions += 1;
        info!(
            "particle store compacted ({why}): {:.1} MiB → {:.1} MiB",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
    }
}

pub struct MemoryPlugin;

impl Plugin for MemoryPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            Update,
            (defragment_on_request, memory_epoch, sample_memory)
                .chain()
                .after(super::apply_tools)
                .in_set(GameSet::Management),
        );
    }
}

fn defragment_on_request(
    mut player: ResMut<PlayerState>,
    mut sandbox: ResMut<Sandbox>,
    mut mem: ResMut<MemorySystem>,
) {
    if player.compact_requested {
        player.compact_requested = false;
        mem.defragment(&mut sandbox, "on request");
    }
}

/// Once per epoch: leak watch, budgets, automatic defragmentation.
fn memory_epoch(mut sandbox: ResMut<Sandbox>, mut mem: ResMut<MemorySystem>) {
    for c in Component::ALL {
        let live = LEDGER.totals(c).live();
        mem.peak[c.index()] = mem.peak[c.index()].max(live);
    }
    let now = Instant::now();
    if now < mem.next_epoch {
        return;
    }
    mem.next_epoch = now + mem.epoch;
    mem.leaks = SITES.mark_epoch(mem.leak_epochs);
    let leaks = mem.leaks.clone();
    for leak in leaks {
        if mem.warned.insert(leak.site.clone()) {
            warn!(
                "possible leak at {}: {} live bytes, growing {:.0} bytes per epoch since epoch {}",
                leak.site, leak.live_bytes, leak.bytes_per_epoch, leak.since_epoch
            );
        }
    }
    // Budgets follow demand: half again the epoch's peak, at least 1 MiB.
    for c in Component::ALL {
        let want = ((mem.peak[c.index()].max(0) as f64 * 1.5) as u64).max(1 << 20);
        let old = LEDGER.set_budget(c, want);
        let moved = (want as f64 - old as f64).abs() > 0.1 * old.max(1) as f64;
        if moved {
            sandbox.pool.events().publish(WorkerEvent::BudgetChanged {
                component: c.name().to_string(),
                bytes: want,
            });
        }
        mem.peak[c.index()] = 0;
    }
    if sandbox.store.fragmentation() > mem.defrag_threshold
        && sandbox.store.reserved_bytes() > (4 << 20)
    {
        let f = sandbox.store.fragmentation();
        mem.defragment(
            &mut sandbox,
            &format!("{:.0}% of the store was dead weight", f * 100.0),
        );
    }
}

/// The per-frame snapshot (and the pool's decay check).
fn sample_memory(mut mem: ResMut<MemorySystem>, sandbox: Res<Sandbox>) {
    mem.sample(&sandbox);
}

impl MemorySystem {
    /// This frame's snapshot, and the instance pool's decay check.
    pub fn sample(&mut self, sandbox: &Sandbox) {
        self.instance_pool.maintain();
        let mut snap = self.sampler.snapshot(8);
        snap.pools = vec![self.instance_pool.stats()];
        snap.caches = sandbox.pool.cache_stats();
        snap.leaks = self.leaks.clone();
        self.snapshot = snap;
    }
}

/// Logs what is still allocated at a reset (the allocations of the old scene
/// that were not given back).
pub fn report_outstanding(when: &str) -> Vec<memory::Hotspot> {
    let out = SITES.outstanding();
    for h in &out {
        debug!(
            "{when}: {} still holds {} bytes in {} allocations",
            h.site, h.stats.live_bytes, h.stats.live_count
        );
    }
    out
}
