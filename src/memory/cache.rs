//! Worker-local slab caches: each worker owns whole slab pages (64 KiB,
//! one size class each) and allocates and frees their slots on its own free
//! stacks, with no lock and no atomic read-modify-write. A miss takes a
//! batch at once — the blocks other workers handed back, or a fresh page
//! from the shared page pool (one lock per 64 KiB), the free page nearest
//! the worker's own stretch of the region: two workers churning on
//! neighbouring pages ran at half speed each (20.7 against 12.6 ns per
//! alloc+free pair; the measurement is in docs/PERFORMANCE.md). When a class's free
//! stack passes its cap, pages whose slots are all free go back to the
//! shared pool in one flush.
//!
//! A block freed by a worker other than its owner joins a batch for the
//! owner, handed over whole when it is full; the owner takes its returned
//! blocks on its next miss. A worker's cache gone, its returned blocks are
//! freed straight into the shared pool's pages by whoever returns them.
//!
//! A `LocalCache` belongs to one worker (it is `Send`, not `Sync`); the
//! shared part keeps each worker's hit and miss counters on its own line.

use super::block::AllocError;
use super::slab::{CLASSES, MAX_CLASS, PAGE, class_of, class_size};
use crossbeam_utils::CachePadded;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

/// Blocks moved per remote hand-over.
pub const BATCH: usize = 32;
/// Pages' worth of free slots a class keeps before it returns empty pages.
pub const CAP_PAGES: usize = 4;

/// A block from the cache: move-only, so it cannot be freed twice.
pub struct CacheBlock {
    ptr: NonNull<u8>,
    class: u8,
    owner: u8,
}

// SAFETY: the slot is owned by this handle alone until it is freed, and
// the region it points into stays mapped while any block is out (see
// `Shared::drop`: orphaned pages keep it mapped).
unsafe impl Send for CacheBlock {}

impl CacheBlock {
    pub fn len(&self) -> usize {
        class_size(self.class as usize)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the slot is `len` bytes of the mapped region, owned by
        // this handle alone (`&mut self`).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as above, shared.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    pub fn owner(&self) -> usize {
        self.owner as usize
    }

    /// The slot's address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The block as raw parts (address, class, owner), for keeping it where
    /// a handle cannot go (a type-erased job); `from_raw` makes it whole.
    pub fn into_raw(self) -> (NonNull<u8>, u8, u8) {
        (self.ptr, self.class, self.owner)
    }

    /// # Safety
    /// The parts come from `into_raw` of a block of the same cache that has
    /// not been freed, and are made whole once.
    pub unsafe fn from_raw(ptr: NonNull<u8>, class: u8, owner: u8) -> CacheBlock {
        CacheBlock { ptr, class, owner }
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    remote_frees: AtomicU64,
    pages: AtomicI64,
}

/// An owner's handed-back slot offsets, and whether its cache is gone.
type Returned = Mutex<(Vec<u32>, bool)>;

struct Shared {
    base: NonNull<u8>,
    bytes: usize,
    /// Pages no worker owns (indices).
    free_pages: Mutex<Vec<u32>>,
    returned: Box<[CachePadded<Returned>]>,
    counters: Box<[CachePadded<Counters>]>,
    /// Blocks allocated and not yet freed, summed when caches retire.
    /// Pages of retired caches that still have blocks out: page → live.
    /// Their last block, freed anywhere, returns the page.
    orphans: Mutex<std::collections::HashMap<u32, u32>>,
}

// SAFETY: the region pointer is only offset into; each slot is owned by one
// cache or one block at a time; everything shared is behind a mutex or atomic.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// Gives a batch of `owner`'s blocks back to it; if its cache is gone,
    /// to the orphaned pages (whose last block returns the page).
    fn hand_back(&self, owner: usize, batch: &mut Vec<u32>) {
        let mut returned = self.returned[owner]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !returned.1 {
            returned.0.append(batch);
            return;
        }
        // Lock order: returned, then orphans (as the retiring cache does).
        let mut orphans = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
        let mut emptied = Vec::new();
        for off in batch.drain(..) {
            let page = off / PAGE as u32;
            if let Some(live) = orphans.get_mut(&page) {
                *live -= 1;
                if *live == 0 {
                    orphans.remove(&page);
                    emptied.push(page);
                }
            }
        }
        drop(orphans);
        drop(returned);
        if !emptied.is_empty() {
            self.free_pages
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(emptied);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if !self
            .orphans
            .get_mut()
            .map(|o| o.is_empty())
            .unwrap_or(false)
        {
            // Blocks are still out: keep their memory mapped (a leak, which
            // the figures show) rather than let them dangle.
            return;
        }
        // SAFETY: mapped in `SlabCache::new` with `bytes`, unmapped once, and
        // no block points into it any more.
        unsafe { super::os::unmap(self.base, self.bytes) };
    }
}

/// Per-worker hit/miss figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub remote_frees: u64,
    /// Pages this worker holds.
    pub pages: i64,
}

impl CacheStats {
    pub fn hit_rate(&self) -> f64 {
        let t = self.hits + self.misses;
        if t == 0 {
            0.0
        } else {
            self.hits as f64 / t as f64
        }
    }
}

#[derive(Clone)]
pub struct SlabCache {
    shared: Arc<Shared>,
}

impl SlabCache {
    /// `capacity` bytes of pages shared by `workers` local caches.
    pub fn new(capacity: usize, workers: usize) -> Result<Self, AllocError> {
        let pages = (capacity / PAGE).clamp(1, u32::MAX as usize / PAGE);
        let bytes = pages * PAGE;
        let base = super::os::map(bytes).ok_or(AllocError::OutOfMemory {
            allocator: "slab cache",
            size: bytes,
            align: PAGE,
        })?;
        let workers = workers.clamp(1, 255);
        Ok(Self {
            shared: Arc::new(Shared {
                base,
                bytes,
                free_pages: Mutex::new((0..pages as u32).rev().collect()),
                returned: (0..workers)
                    .map(|_| CachePadded::new(Mutex::new((Vec::new(), false))))
                    .collect(),
                counters: (0..workers)
                    .map(|_| CachePadded::new(Counters::default()))
                    .collect(),
                orphans: Mutex::new(std::collections::HashMap::new()),
            }),
        })
    }

    /// The cache of worker `w` (one per worker; it stays with that thread).
    pub fn local(&self, w: usize) -> LocalCache {
        assert!(w < self.shared.counters.len(), "worker {w} out of range");
        self.shared.returned[w]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1 = false;
        LocalCache {
            shared: self.shared.clone(),
            base: self.shared.base,
            worker: w,
            hits: 0,
            free: Default::default(),
            page_class: Vec::new(),
            page_live: Vec::new(),
            owned: Vec::new(),
            flush_at: CAP,
            remote: (0..self.shared.counters.len())
                .map(|_| Vec::new())
                .collect(),
        }
    }

    pub fn stats(&self) -> Vec<CacheStats> {
        self.shared
            .counters
            .iter()
            .map(|c| CacheStats {
                hits: c.hits.load(Relaxed),
                misses: c.misses.load(Relaxed),
                remote_frees: c.remote_frees.load(Relaxed),
                pages: c.pages.load(Relaxed),
            })
            .collect()
    }

    /// Returns one block without a local cache at hand (a lock per block):
    /// to its owner, or to its page if the owner's cache is gone.
    pub fn give_back(&self, b: CacheBlock) {
        let off = (b.ptr.as_ptr() as usize - self.shared.base.as_ptr() as usize) as u32;
        self.shared.hand_back(b.owner as usize, &mut vec![off]);
    }

    /// For each page of the region: held by a worker (or orphaned with
    /// blocks still out), or free — the cache's memory map.
    pub fn page_map(&self) -> Vec<bool> {
        let pages = self.shared.bytes / PAGE;
        let mut used = vec![true; pages];
        for &p in self
            .shared
            .free_pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            used[p as usize] = false;
        }
        used
    }

    /// Pages held by no worker, and all pages.
    pub fn pages(&self) -> (usize, usize) {
        let free = self
            .shared
            .free_pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        (free, self.shared.bytes / PAGE)
    }
}

/// Free slots a class keeps before it returns empty pages.
const CAP: [usize; CLASSES] = {
    let mut cap = [0; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        cap[c] = CAP_PAGES * (PAGE / (16 << c));
        c += 1;
    }
    cap
};

/// Hits counted locally (`LocalCache::hits`, not yet published) before
/// they are added to the shared counter.
const PUBLISH: u64 = 1024;

/// One worker's pages and free stacks. Aligned to two cache lines, so two
/// workers' caches never share a line (nor a prefetched pair of lines)
/// wherever they are placed: every alloc and free writes to it.
#[repr(align(128))]
pub struct LocalCache {
    shared: Arc<Shared>,
    base: NonNull<u8>,
    worker: usize,
    hits: u64,
    /// Free slot offsets per class.
    free: [Vec<u32>; CLASSES],
    /// The class each page of the region serves for this worker (MAX: not ours).
    /// Per page of the region: the class it serves for this worker
    /// (`u8::MAX`: not ours) and its live blocks. Allocated by the worker's
    /// own thread on its first miss, so they sit in its memory, away from
    /// other workers' lines.
    page_class: Vec<u8>,
    page_live: Vec<u32>,
    /// Pages this worker owns.
    owned: Vec<u32>,
    /// Free-stack length that triggers the next flush: the cap, or twice
    /// what the last flush left (a flush that frees little is not repeated
    /// on every free).
    flush_at: [usize; CLASSES],
    /// Blocks of other owners freed here, batched per owner.
    remote: Vec<Vec<u32>>,
}

// SAFETY: a LocalCache is used by one thread at a time (`&mut self`); its
// copy of the region's base is only offset into, and the region lives as
// long as `shared`.
unsafe impl Send for LocalCache {}

impl LocalCache {
    fn counters(&self) -> &Counters {
        &self.shared.counters[self.worker]
    }

    fn bump(c: &AtomicU64) {
        c.store(c.load(Relaxed) + 1, Relaxed);
    }

    #[inline]
    pub fn alloc(&mut self, size: usize) -> Result<CacheBlock, AllocError> {
        if size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let class = class_of(size).ok_or(AllocError::TooLarge {
            allocator: "slab cache",
            size,
            max: MAX_CLASS,
        })?;
        let off = match self.free[class].pop() {
            Some(off) => {
                self.hits += 1;
                if self.hits == PUBLISH {
                    self.publish();
                }
                off
            }
            None => {
                self.publish();
                Self::bump(&self.counters().misses);
                self.refill(class)?;
                self.free[class].pop().expect("refilled")
            }
        };
        self.page_live[off as usize / PAGE] += 1;
        Ok(CacheBlock {
            // SAFETY: the offset is inside the mapped region.
            ptr: unsafe { NonNull::new_unchecked(self.base.as_ptr().add(off as usize)) },
            class: class as u8,
            owner: self.worker as u8,
        })
    }

    /// Publishes the hits counted since the last time.
    #[cold]
    fn publish(&mut self) {
        let c = &self.shared.counters[self.worker].hits;
        c.store(c.load(Relaxed) + self.hits, Relaxed);
        self.hits = 0;
    }

    /// Takes back blocks other workers returned, else carves a fresh page.
    #[cold]
    fn refill(&mut self, class: usize) -> Result<(), AllocError> {
        if self.page_class.is_empty() {
            let pages = self.shared.bytes / PAGE;
            self.page_class = vec![u8::MAX; pages];
            self.page_live = vec![0; pages];
        }
        let returned = std::mem::take(
            &mut self.shared.returned[self.worker]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0,
        );
        for off in returned {
            self.take_back(off);
        }
        if !self.free[class].is_empty() {
            return Ok(());
        }
        let page = {
            let mut free = self
                .shared
                .free_pages
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // The free page nearest this worker's own stretch of the region.
            let home = (self.worker * self.page_class.len() / self.shared.counters.len()) as i64;
            let pick = free
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| (i64::from(**p) - home).abs())
                .map(|(k, _)| k);
            pick.map(|k| free.swap_remove(k))
        }
        .ok_or(AllocError::OutOfMemory {
            allocator: "slab cache",
            size: class_size(class),
            align: 1,
        })? as usize;
        self.page_class[page] = class as u8;
        self.page_live[page] = 0;
        self.owned.push(page as u32);
        let c = self.counters();
        c.pages.store(c.pages.load(Relaxed) + 1, Relaxed);
        let size = class_size(class);
        let base = (page * PAGE) as u32;
        // Highest first, so the stack hands out the lowest slot first.
        self.free[class].extend(
            (0..(PAGE / size) as u32)
                .rev()
                .map(|k| base + k * size as u32),
        );
        Ok(())
    }

    /// One of our own slots comes back.
    #[inline]
    fn take_back(&mut self, off: u32) {
        let page = off as usize / PAGE;
        let class = self.page_class[page] as usize;
        self.page_live[page] -= 1;
        self.free[class].push(off);
        if self.free[class].len() > self.flush_at[class] {
            self.flush(class);
        }
    }

    #[inline]
    pub fn free(&mut self, b: CacheBlock) -> Result<(), AllocError> {
        let off = (b.ptr.as_ptr() as usize - self.base.as_ptr() as usize) as u32;
        let owner = b.owner as usize;
        if owner == self.worker {
            self.take_back(off);
            return Ok(());
        }
        Self::bump(&self.counters().remote_frees);
        self.remote[owner].push(off);
        if self.remote[owner].len() >= BATCH {
            let mut batch = std::mem::take(&mut self.remote[owner]);
            self.shared.hand_back(owner, &mut batch);
        }
        Ok(())
    }

    /// Returns the class's pages whose slots are all free.
    #[cold]
    fn flush(&mut self, class: usize) {
        let empty: Vec<usize> = {
            let mut pages: Vec<usize> = self.free[class]
                .iter()
                .map(|&o| o as usize / PAGE)
                .collect();
            pages.sort_unstable();
            pages.dedup();
            pages
                .into_iter()
                .filter(|&p| self.page_live[p] == 0)
                .collect()
        };
        if empty.is_empty() {
            self.flush_at[class] = CAP[class].max(2 * self.free[class].len());
            return;
        }
        for &p in &empty {
            self.page_class[p] = u8::MAX;
        }
        let page_class = &self.page_class;
        self.free[class].retain(|&o| page_class[o as usize / PAGE] != u8::MAX);
        self.owned.retain(|&p| page_class[p as usize] != u8::MAX);
        let c = self.counters();
        c.pages
            .store(c.pages.load(Relaxed) - empty.len() as i64, Relaxed);
        self.shared
            .free_pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(empty.iter().map(|&p| p as u32));
        self.flush_at[class] = CAP[class].max(2 * self.free[class].len());
    }

    pub fn worker(&self) -> usize {
        self.worker
    }

    fn guard(&self) -> MutexGuard<'_, Vec<u32>> {
        self.shared
            .free_pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for LocalCache {
    /// Pages with nothing live go back to the pool; pages with blocks still
    /// out become orphans, returned when their last block is freed.
    fn drop(&mut self) {
        let mut remote = std::mem::take(&mut self.remote);
        for (owner, batch) in remote.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.shared.hand_back(owner, batch);
            }
        }
        self.publish();
        {
            let mut r = self.shared.returned[self.worker]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for off in std::mem::take(&mut r.0) {
                self.page_live[off as usize / PAGE] -= 1;
            }
            let mut orphans = self
                .shared
                .orphans
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for &p in &self.owned {
                if self.page_live[p as usize] > 0 {
                    orphans.insert(p, self.page_live[p as usize]);
                }
            }
            r.1 = true;
        }
        let empty: Vec<u32> = self
            .owned
            .iter()
            .copied()
            .filter(|&p| self.page_live[p as usize] == 0)
            .collect();
        let c = self.counters();
        c.pages
            .store(c.pages.load(Relaxed) - self.owned.len() as i64, Relaxed);
        self.guard().extend(empty);
    }
}
