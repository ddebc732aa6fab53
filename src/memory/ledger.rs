//! Who holds how much: per-component counters for the Rust heap (fed by
//! `TrackingAlloc`) and for memory our pools reserve, plus each component's
//! budget. Counters are sharded per thread and cache-line padded, so the
//! global allocator's hot path touches only its own line.

use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Who an allocation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Component {
    Physics,
    Render,
    Chain,
    Overlay,
    Game,
    /// Allocations made outside any component's scope (Bevy, libraries).
    Other,
}

impl Component {
    pub const COUNT: usize = 6;
    pub const ALL: [Component; 6] = [
        Component::Physics,
        Component::Render,
        Component::Chain,
        Component::Overlay,
        Component::Game,
        Component::Other,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Component {
        Self::ALL[i.min(Self::COUNT - 1)]
    }

    pub fn name(self) -> &'static str {
        match self {
            Component::Physics => "physics",
            Component::Render => "render",
            Component::Chain => "chain",
            Component::Overlay => "overlay",
            Component::Game => "game",
            Component::Other => "other",
        }
    }
}

const SHARDS: usize = 8;

#[derive(Default)]
struct Shard {
    heap_live: [AtomicI64; Component::COUNT],
    heap_allocs: [AtomicU64; Component::COUNT],
    heap_frees: [AtomicU64; Component::COUNT],
}

pub struct Ledger {
    shards: [CachePadded<Shard>; SHARDS],
    /// Bytes our pools and arenas hold for each component (mapped memory
    /// that bypasses the Rust heap), and the part of it in use.
    reserved: [AtomicI64; Component::COUNT],
    pooled_live: [AtomicI64; Component::COUNT],
    budget: [AtomicU64; Component::COUNT],
}

thread_local! {
    static TAG: Cell<u8> = const { Cell::new(Component::Other as u8) };
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

/// The process-wide ledger.
pub static LEDGER: Ledger = Ledger::new();

#[inline]
fn shard_index() -> usize {
    SHARD
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
                s.set(i);
            }
            i
        })
        .unwrap_or(0)
}

/// The component the current thread's allocations are attributed to.
#[inline]
pub fn current() -> Component {
    Component::from_index(TAG.try_with(Cell::get).unwrap_or(Component::Other as u8) as usize)
}

/// Attributes this thread's allocations to `c` until the guard drops.
pub fn enter(c: Component) -> TagGuard {
    let prev = TAG.with(|t| t.replace(c as u8));
    TagGuard { prev }
}

#[must_use = "the tag is restored when the guard drops"]
pub struct TagGuard {
    prev: u8,
}

impl Drop for TagGuard {
    fn drop(&mut self) {
        TAG.with(|t| t.set(self.prev));
    }
}

/// One component's figures at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ComponentTotals {
    pub heap_live: i64,
    pub heap_allocs: u64,
    pub heap_frees: u64,
    pub reserved: i64,
    pub pooled_live: i64,
    pub budget: u64,
}

impl ComponentTotals {
    /// Bytes in use: heap plus the used part of our pools.
    pub fn live(&self) -> i64 {
        self.heap_live + self.pooled_live
    }
}

impl Ledger {
    pub const fn new() -> Self {
        Self {
            shards: [const {
                CachePadded::new(Shard {
                    heap_live: [const { AtomicI64::new(0) }; Component::COUNT],
                    heap_allocs: [const { AtomicU64::new(0) }; Component::COUNT],
                    heap_frees: [const { AtomicU64::new(0) }; Component::COUNT],
                })
            }; SHARDS],
            reserved: [const { AtomicI64::new(0) }; Component::COUNT],
            pooled_live: [const { AtomicI64::new(0) }; Component::COUNT],
            budget: [const { AtomicU64::new(0) }; Component::COUNT],
        }
    }

    #[inline]
    pub fn heap_alloc(&self, c: u8, bytes: usize) {
        let s = &self.shards[shard_index()];
        s.heap_live[c as usize].fetch_add(bytes as i64, Relaxed);
        s.heap_allocs[c as usize].fetch_add(1, Relaxed);
    }

    #[inline]
    pub fn heap_free(&self, c: u8, bytes: usize) {
        let s = &self.shards[shard_index()];
        s.heap_live[c as usize].fetch_sub(bytes as i64, Relaxed);
        s.heap_frees[c as usize].fetch_add(1, Relaxed);
    }

    /// The heap bytes of a block that changed size in place.
    #[inline]
    pub fn heap_resize(&self, c: u8, old: usize, new: usize) {
        let s = &self.shards[shard_index()];
        s.heap_live[c as usize].fetch_add(new as i64 - old as i64, Relaxed);
    }

    pub fn reserve(&self, c: Component, bytes: i64) {
        self.reserved[c.index()].fetch_add(bytes, Relaxed);
    }

    pub fn pooled(&self, c: Component, bytes: i64) {
        self.pooled_live[c.index()].fetch_add(bytes, Relaxed);
    }

    pub fn set_budget(&self, c: Component, bytes: u64) -> u64 {
        self.budget[c.index()].swap(bytes, Relaxed)
    }

    pub fn totals(&self, c: Component) -> ComponentTotals {
        let i = c.index();
        let mut t = ComponentTotals {
            reserved: self.reserved[i].load(Relaxed),
            pooled_live: self.pooled_live[i].load(Relaxed),
            budget: self.budget[i].load(Relaxed),
            ..ComponentTotals::default()
        };
        for s in &self.shards {
            t.heap_live += s.heap_live[i].load(Relaxed);
            t.heap_allocs += s.heap_allocs[i].load(Relaxed);
            t.heap_frees += s.heap_frees[i].load(Relaxed);
        }
        t
    }

    /// Heap bytes the tracking allocator saw, all components.
    pub fn heap_total(&self) -> i64 {
        Component::ALL
            .iter()
            .map(|&c| self.totals(c).heap_live)
            .sum()
    }

    /// Bytes our pools hold outside the heap, all components.
    pub fn reserved_total(&self) -> i64 {
        self.reserved.iter().map(|r| r.load(Relaxed)).sum()
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's resident memory, as the kernel counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Resident {
    pub total: u64,
    /// Of which file-backed or shared: code and libraries, mapped files,
    /// buffers shared with the display or the GPU driver. The rest is
    /// anonymous: heaps, stacks and private maps.
    pub shared: u64,
}

/// `/proc/self/statm`'s resident and shared pages; zero where it is
/// missing.
pub fn resident() -> Resident {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return Resident::default();
    };
    let mut pages = statm
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (total, shared) = (pages.next().unwrap_or(0), pages.next().unwrap_or(0));
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Resident {
        total: total * page,
        shared: shared * page,
    }
}
