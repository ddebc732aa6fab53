//! One plain-data picture of the memory system per frame: bytes per
//! component with rates, the pools, allocator fragmentation and maps,
//! cache hit rates, hotspots, leak warnings, resident vs tracked memory.

use super::block::{AllocStats, BlockAllocator};
use super::cache::CacheStats;
use super::ledger::{Component, ComponentTotals, LEDGER, resident};
use super::pool::PoolStats;
use super::sites::{Hotspot, LeakWarning, SITES};
use std::time::Instant;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ComponentRow {
    pub component: &'static str,
    pub totals: ComponentTotals,
    pub allocs_per_s: f64,
    pub frees_per_s: f64,
}

/// An allocator's figures and memory map: `(offset, len, used)` runs.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AllocatorRow {
    pub name: &'static str,
    pub stats: AllocStats,
    pub external: f64,
    pub internal: f64,
    pub map: Vec<(usize, usize, bool)>,
}

impl AllocatorRow {
    pub fn of(a: &dyn BlockAllocator) -> Self {
        let stats = a.stats();
        let mut map = Vec::new();
        let mut at = 0;
        for (off, len) in a.free_ranges() {
            if off > at {
                map.push((at, off - at, true));
            }
            map.push((off, len, false));
            at = off + len;
        }
        if at < a.capacity() {
            map.push((at, a.capacity() - at, true));
        }
        Self {
            name: a.name(),
            external: stats.external_fragmentation(),
            internal: stats.internal_fragmentation(),
            stats,
            map,
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MemorySnapshot {
    pub components: Vec<ComponentRow>,
    pub pools: Vec<PoolStats>,
    pub allocators: Vec<AllocatorRow>,
    pub caches: Vec<CacheStats>,
    pub hotspots_by_bytes: Vec<Hotspot>,
    pub hotspots_by_count: Vec<Hotspot>,
    pub leaks: Vec<LeakWarning>,
    /// Resident memory: `shared_bytes` of it file-backed or shared, the
    /// rest anonymous.
    pub resident_bytes: u64,
    /// Heap bytes seen by the tracking allocator plus pool memory in use.
    pub tracked_bytes: i64,
    /// Memory our pools have mapped (in use or not).
    pub pool_reserved_bytes: i64,
    /// Resident minus tracked: code, C libraries' and the GPU driver's
    /// heaps, thread stacks, allocator overhead, less tracked bytes not yet
    /// touched (a column's spare capacity is handed out, not resident).
    pub untracked_bytes: i64,
    /// File-backed and shared resident memory: code and libraries, mapped
    /// files, buffers shared with the display or the GPU driver.
    pub shared_bytes: u64,
}

/// Turns ledger totals into rates between samples.
pub struct Sampler {
    last: Option<(Instant, Vec<ComponentTotals>)>,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Self {
        Self { last: None }
    }

    /// Component rows with rates since the previous call.
    pub fn components(&mut self) -> Vec<ComponentRow> {
        let now = Instant::now();
        let totals: Vec<ComponentTotals> =
            Component::ALL.iter().map(|&c| LEDGER.totals(c)).collect();
        let rows = Component::ALL
            .iter()
            .zip(&totals)
            .enumerate()
            .map(|(i, (c, t))| {
                let (allocs, frees) = match &self.last {
                    Some((then, prev)) => {
                        let dt = now.duration_since(*then).as_secs_f64().max(1e-9);
                        (
                            (t.heap_allocs - prev[i].heap_allocs) as f64 / dt,
                            (t.heap_frees - prev[i].heap_frees) as f64 / dt,
                        )
                    }
                    None => (0.0, 0.0),
                };
                ComponentRow {
                    component: c.name(),
                    totals: *t,
                    allocs_per_s: allocs,
                    frees_per_s: frees,
                }
            })
            .collect();
        self.last = Some((now, totals));
        rows
    }

    /// The whole picture; the caller adds what it owns (pools, allocators,
    /// caches) and the leak warnings of its epochs.
    pub fn snapshot(&mut self, hotspots: usize) -> MemorySnapshot {
        let components = self.components();
        let (by_bytes, by_count) = SITES.hotspots(hotspots);
        let resident = resident();
        let pooled: i64 = Component::ALL
            .iter()
            .map(|&c| LEDGER.totals(c).pooled_live)
            .sum();
        let tracked = LEDGER.heap_total() + pooled;
        MemorySnapshot {
            components,
            hotspots_by_bytes: by_bytes,
            hotspots_by_count: by_count,
            resident_bytes: resident.total,
            tracked_bytes: tracked,
            pool_reserved_bytes: LEDGER.reserved_total(),
            untracked_bytes: resident.total as i64 - tracked,
            shared_bytes: resident.shared,
            ..MemorySnapshot::default()
        }
    }
}
