//! The adaptive buffer pool: fixed-size buffers handed out as
//! reference-counted handles. Cloning a handle adds a reference; dropping
//! the last one returns the buffer to the pool (no allocation, no
//! `Arc<Vec<u8>>` per buffer: the count lives in the pool's slot).
//!
//! - Grows geometrically (half again) when demand exceeds the free buffers,
//!   up to the budget; shrinks after a decay period in which demand stayed
//!   low, unmapping the spare buffers so the memory goes back to the OS.
//! - Each request carries a priority. Background requests fail first (above
//!   three quarters of the budget), normal ones leave the reserve alone,
//!   critical ones may use it. Exhaustion is a typed error, never a panic.
//! - Buffers are mapped straight from the OS (mmap), so returning them is
//!   immediate and exact; the ledger counts them under the pool's component.

use super::ledger::{Component, LEDGER};
use super::os::{map, unmap};
use super::refcount::RefCount;
use super::sites::{SITES, Site};
use std::panic::Location;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Urgency {
    /// The frame cannot go on without it: may use the reserve.
    Critical,
    Normal,
    /// Nice to have: refused first when memory is short.
    Background,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoolConfig {
    pub buffer_bytes: usize,
    /// Buffers mapped at start (and the floor shrinking stops at).
    pub initial_buffers: usize,
    /// Most bytes the pool may map.
    pub budget_bytes: usize,
    /// Buffers kept for critical requests only.
    pub reserve_buffers: usize,
    /// Low demand for this long returns the spare buffers.
    pub decay: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            buffer_bytes: 1 << 20,
            initial_buffers: 20,
            budget_bytes: 256 << 20,
            reserve_buffers: 2,
            decay: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PoolError {
    #[error(
        "the {pool} pool is over budget for a {urgency:?} request: {mapped} of {budget} bytes mapped and none free"
    )]
    OverBudget {
        pool: String,
        urgency: Urgency,
        mapped: usize,
        budget: usize,
    },
    #[error("the OS refused to map {bytes} more bytes for the {pool} pool")]
    MapFailed { pool: String, bytes: usize },
    #[error("invalid pool settings: {0}")]
    Config(String),
}

/// Grow and shrink events, for the telemetry.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum PoolEventKind {
    Grew,
    Shrank,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PoolEvent {
    pub kind: PoolEventKind,
    /// Seconds since the pool was made.
    pub at_s: f64,
    pub from_buffers: usize,
    pub to_buffers: usize,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PoolStats {
    pub name: String,
    pub buffer_bytes: usize,
    pub buffers: usize,
    pub in_use: usize,
    pub free: usize,
    pub mapped_bytes: usize,
    pub budget_bytes: usize,
    pub grows: u64,
    pub shrinks: u64,
    pub refused: [u64; 3],
    pub acquired: u64,
    pub events: Vec<PoolEvent>,
}

/// One buffer: its memory and its reference count. Boxed, so its address
/// stays put while the slot table grows.
struct Slot {
    refs: RefCount,
    index: usize,
    data: NonNull<u8>,
    site: Mutex<Option<Site>>,
}

// SAFETY: `data` is a private mapping owned by the slot; its bytes are read
// and written only through `Buffer` handles, whose reference count (and the
// pool's mutex for the free list) orders every access.
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}

struct State {
    slots: Vec<Option<Box<Slot>>>,
    free: Vec<usize>,
    in_use: usize,
    /// Most buffers in use since the last decay check.
    peak: usize,
    last_decay: Instant,
    stats: PoolStats,
}

struct Inner {
    config: PoolConfig,
    component: Component,
    born: Instant,
    state: Mutex<State>,
}

/// A pool of equal buffers. Cheap to clone (shares the pool).
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<Inner>,
}

/// Events kept in the stats.
const EVENTS: usize = 64;

impl BufferPool {
    pub fn new(name: &str, component: Component, config: PoolConfig) -> Result<Self, PoolError> {
        if config.buffer_bytes == 0 || config.budget_bytes < config.buffer_bytes {
            return Err(PoolError::Config(format!(
                "buffers of {} bytes under a budget of {} bytes; make buffers non-empty and the budget at least one buffer",
                config.buffer_bytes, config.budget_bytes
            )));
        }
        let pool = BufferPool {
            inner: Arc::new(Inner {
                component,
                born: Instant::now(),
                state: Mutex::new(State {
                    slots: Vec::new(),
                    free: Vec::new(),
                    in_use: 0,
                    peak: 0,
                    last_decay: Instant::now(),
                    stats: PoolStats {
                        name: name.to_string(),
                        buffer_bytes: config.buffer_bytes,
                        budget_bytes: config.budget_bytes,
                        ..PoolStats::default()
                    },
                }),
                config,
            }),
        };
        {
            let mut st = pool.lock();
            let initial = pool.inner.config.initial_buffers.min(pool.max_buffers());
            pool.add_buffers(&mut st, initial)?;
        }
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn max_buffers(&self) -> usize {
        self.inner.config.budget_bytes / self.inner.config.buffer_bytes
    }

    /// Buffers an `urgency` request may bring the pool up to.
    fn limit(&self, urgency: Urgency) -> usize {
        let max = self.max_buffers();
        match urgency {
            Urgency::Critical => max,
            Urgency::Normal => max.saturating_sub(self.inner.config.reserve_buffers).max(1),
            Urgency::Background => (max * 3 / 4).max(1),
        }
    }

    fn add_buffers(&self, st: &mut State, n: usize) -> Result<(), PoolError> {
        let bytes = self.inner.config.buffer_bytes;
        for _ in 0..n {
            let data = map(bytes).ok_or_else(|| PoolError::MapFailed {
                pool: st.stats.name.clone(),
                bytes,
            })?;
            let index = match st.slots.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    st.slots.push(None);
                    st.slots.len() - 1
                }
            };
            st.slots[index] = Some(Box::new(Slot {
                refs: RefCount::new(),
                index,
                data,
                site: Mutex::new(None),
            }));
            st.free.push(index);
            st.stats.buffers += 1;
            LEDGER.reserve(self.inner.component, bytes as i64);
        }
        Ok(())
    }

    fn event(&self, st: &mut State, kind: PoolEventKind, from: usize, to: usize) {
        if st.stats.events.len() == EVENTS {
            st.stats.events.remove(0);
        }
        st.stats.events.push(PoolEvent {
            kind,
            at_s: self.inner.born.elapsed().as_secs_f64(),
            from_buffers: from,
            to_buffers: to,
        });
    }

    /// A buffer, zeroed or with a previous user's bytes (callers overwrite).
    #[track_caller]
    pub fn acquire(&self, urgency: Urgency) -> Result<Buffer, PoolError> {
        let site = Location::caller();
        let mut st = self.lock();
        let in_use_after = st.in_use + 1;
        if st.free.is_empty() || in_use_after > self.limit(urgency) {
            let have = st.stats.buffers;
            let limit = self.limit(urgency);
            if in_use_after > limit || have >= limit {
                st.stats.refused[urgency as usize] += 1;
                return Err(PoolError::OverBudget {
                    pool: st.stats.name.clone(),
                    urgency,
                    mapped: have * self.inner.config.buffer_bytes,
                    budget: self.inner.config.budget_bytes,
                });
            }
            // Geometric growth, within what this urgency may use.
            let grow = (have / 2).max(1).min(limit - have);
            self.add_buffers(&mut st, grow)?;
            st.stats.grows += 1;
            self.event(&mut st, PoolEventKind::Grew, have, have + grow);
        }
        let index = st.free.pop().expect("a free buffer after growing");
        st.in_use += 1;
        st.peak = st.peak.max(st.in_use);
        st.stats.acquired += 1;
        let slot = st.slots[index].as_deref().expect("a mapped slot");
        slot.refs.start();
        *slot.site.lock().unwrap_or_else(|e| e.into_inner()) = Some(site);
        let slot = NonNull::from(slot);
        drop(st);
        let bytes = self.inner.config.buffer_bytes;
        LEDGER.pooled(self.inner.component, bytes as i64);
        SITES.record_alloc(site, bytes);
        Ok(Buffer {
            pool: self.inner.clone(),
            slot,
        })
    }

    fn release(inner: &Inner, slot: &Slot) {
        let bytes = inner.config.buffer_bytes;
        if let Some(site) = slot.site.lock().unwrap_or_else(|e| e.into_inner()).take() {
            SITES.record_free(site, bytes);
        }
        LEDGER.pooled(inner.component, -(bytes as i64));
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        st.in_use -= 1;
        st.free.push(slot.index);
    }

    /// Returns spare buffers to the OS once demand stayed low for the decay
    /// period. Call it regularly (the game does, once per frame).
    pub fn maintain(&self) -> usize {
        self.maintain_at(Instant::now())
    }

    pub fn maintain_at(&self, now: Instant) -> usize {
        let mut st = self.lock();
        if now.saturating_duration_since(st.last_decay) < self.inner.config.decay {
            return 0;
        }
        st.last_decay = now;
        // Keep what the period's peak needed, a quarter more, and the floor.
        let keep = (st.peak + st.peak / 4).max(self.inner.config.initial_buffers);
        st.peak = st.in_use;
        let spare = st.stats.buffers.saturating_sub(keep).min(st.free.len());
        if spare == 0 {
            return 0;
        }
        let from = st.stats.buffers;
        let bytes = self.inner.config.buffer_bytes;
        // Unmap the highest-numbered free slots first.
        st.free.sort_unstable();
        for _ in 0..spare {
            let index = st.free.pop().expect("counted");
            let slot = st.slots[index].take().expect("a mapped slot");
            // SAFETY: the slot is free (no handle points into it) and is
            // dropped here, so it is unmapped once.
            unsafe { unmap(slot.data, bytes) };
            st.stats.buffers -= 1;
            LEDGER.reserve(self.inner.component, -(bytes as i64));
        }
        st.stats.shrinks += 1;
        let to = st.stats.buffers;
        self.event(&mut st, PoolEventKind::Shrank, from, to);
        spare
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.lock();
        let mut s = st.stats.clone();
        s.in_use = st.in_use;
        s.free = st.free.len();
        s.mapped_bytes = st.stats.buffers * self.inner.config.buffer_bytes;
        s
    }

    pub fn buffer_bytes(&self) -> usize {
        self.inner.config.buffer_bytes
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let bytes = self.config.buffer_bytes;
        for slot in st.slots.drain(..).flatten() {
            // SAFETY: the pool is gone, so no handle is left (each holds the
            // pool); every slot is unmapped once, as it is dropped.
            unsafe { unmap(slot.data, bytes) };
            LEDGER.reserve(self.component, -(bytes as i64));
        }
    }
}

/// A reference-counted handle to one pool buffer.
pub struct Buffer {
    pool: Arc<Inner>,
    slot: NonNull<Slot>,
}

// SAFETY: the slot is owned by the pool (kept alive by `pool`), its count is
// atomic, and the bytes are only written through `get_mut`, which requires
// the one and only handle.
unsafe impl Send for Buffer {}
// SAFETY: as above; shared handles only read.
unsafe impl Sync for Buffer {}

impl Buffer {
    fn slot(&self) -> &Slot {
        // SAFETY: a slot is unmapped and dropped only when it is free, and
        // it is not free while this handle holds a reference; the pool's
        // `Inner` (which owns the slot table) is kept alive by `self.pool`.
        unsafe { self.slot.as_ref() }
    }

    pub fn len(&self) -> usize {
        self.pool.config.buffer_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        let s = self.slot();
        // SAFETY: the mapping is `len` bytes and lives while referenced;
        // nobody writes while this shared view exists (writers need the
        // only handle, `get_mut`, and this handle is another).
        unsafe { std::slice::from_raw_parts(s.data.as_ptr(), self.len()) }
    }

    /// The bytes, writable, if this is the only handle (like `Arc::get_mut`).
    pub fn get_mut(&mut self) -> Option<&mut [u8]> {
        let s = self.slot();
        if !s.refs.is_unique() {
            return None;
        }
        let len = self.len();
        // SAFETY: one reference, held by `&mut self`: no other handle and no
        // other view exists (the Acquire load saw every other handle's drop).
        Some(unsafe { std::slice::from_raw_parts_mut(s.data.as_ptr(), len) })
    }

    pub fn ref_count(&self) -> usize {
        self.slot().refs.get()
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("slot", &self.slot().index)
            .field("len", &self.len())
            .field("refs", &self.ref_count())
            .finish()
    }
}

impl Clone for Buffer {
    fn clone(&self) -> Self {
        self.slot().refs.add();
        Buffer {
            pool: self.pool.clone(),
            slot: self.slot,
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.slot().refs.release() {
            BufferPool::release(&self.pool, self.slot());
        }
    }
}
