//! Worker-local caches in front of a shared slab: each worker keeps a
//! magazine of free blocks per size class and allocates and frees there
//! without locks; a miss refills a batch from the shared slab under one
//! lock, a full magazine flushes half of it back. A block freed by a worker
//! other than its owner goes into a batch for the owner, handed over whole
//! when it is full; the owner takes its returned blocks on its next miss.
//!
//! A `LocalCache` belongs to one worker (it is `Send`, not `Sync`); the
//! shared part keeps each worker's hit and miss counters on its own cache
//! line.

use super::block::{AllocError, BlockAllocator, BlockId};
use super::slab::{CLASSES, Slab, class_of, class_size};
use crossbeam_utils::CachePadded;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

/// Blocks a magazine holds at most per class.
pub const MAGAZINE: usize = 64;
/// Blocks moved per refill, flush or remote hand-over.
pub const BATCH: usize = 32;

/// A block from the cache: move-only, so it cannot be freed twice.
pub struct CacheBlock {
    id: BlockId,
    ptr: NonNull<u8>,
    class: u8,
    owner: u8,
}

// SAFETY: the block's memory belongs to the cache's region and to this
// handle alone until it is freed.
unsafe impl Send for CacheBlock {}

impl CacheBlock {
    pub fn len(&self) -> usize {
        class_size(self.class as usize)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the slot is `len` bytes inside the live region, owned by
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
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    remote_frees: AtomicU64,
}

type Cached = (BlockId, usize);
/// An owner's handed-back blocks, and whether the owner's cache is gone.
type Returned = Mutex<(Vec<Cached>, bool)>;

struct Shared {
    central: Mutex<Slab>,
    base: NonNull<u8>,
    bytes: usize,
    /// Blocks freed by other workers, per owner, waiting to be taken back;
    /// `true` once the owner's cache is gone (then they go to the slab).
    returned: Box<[CachePadded<Returned>]>,
    counters: Box<[CachePadded<Counters>]>,
}

// SAFETY: the region pointer is only used to compute block addresses; the
// slab (behind its mutex) guarantees each address is handed to one owner.
unsafe impl Send for Shared {}
// SAFETY: as above; all mutable state is behind mutexes or atomics.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: mapped in `SlabCache::new` with `bytes`, unmapped once;
        // every CacheBlock and LocalCache holds the Arc, so none is left.
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.bytes) };
    }
}

/// Per-worker hit/miss figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub remote_frees: u64,
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
    /// A slab of `capacity` bytes shared by `workers` local caches.
    pub fn new(capacity: usize, workers: usize) -> Result<Self, AllocError> {
        let slab = Slab::new(capacity);
        let bytes = slab.capacity().max(4096);
        // SAFETY: an anonymous private mapping; checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let base = if p == libc::MAP_FAILED {
            None
        } else {
            NonNull::new(p as *mut u8)
        }
        .ok_or(AllocError::OutOfMemory {
            allocator: "slab cache",
            size: bytes,
            align: 4096,
        })?;
        let workers = workers.clamp(1, 255);
        Ok(Self {
            shared: Arc::new(Shared {
                central: Mutex::new(slab),
                base,
                bytes,
                returned: (0..workers)
                    .map(|_| CachePadded::new(Mutex::new((Vec::new(), false))))
                    .collect(),
                counters: (0..workers)
                    .map(|_| CachePadded::new(Counters::default()))
                    .collect(),
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
            worker: w,
            mags: Default::default(),
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
            })
            .collect()
    }

    /// The shared slab's figures (cached blocks count as allocated).
    pub fn slab_stats(&self) -> super::block::AllocStats {
        self.shared
            .central
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stats()
    }
}

/// One worker's magazines.
pub struct LocalCache {
    shared: Arc<Shared>,
    worker: usize,
    mags: [Vec<Cached>; CLASSES],
    /// Blocks of other owners freed here, batched per owner.
    remote: Vec<Vec<Cached>>,
}

impl LocalCache {
    fn central(&self) -> MutexGuard<'_, Slab> {
        self.shared
            .central
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn bump(c: &AtomicU64) {
        c.store(c.load(Relaxed) + 1, Relaxed);
    }

    #[inline]
    pub fn alloc(&mut self, size: usize) -> Result<CacheBlock, AllocError> {
        let class = class_of(size).ok_or(AllocError::TooLarge {
            allocator: "slab cache",
            size,
            max: super::slab::MAX_CLASS,
        })?;
        if size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let counters = &self.shared.counters[self.worker];
        let (id, offset) = match self.mags[class].pop() {
            Some(b) => {
                Self::bump(&counters.hits);
                b
            }
            None => {
                Self::bump(&counters.misses);
                self.refill(class)?;
                self.mags[class].pop().expect("refilled")
            }
        };
        Ok(CacheBlock {
            id,
            // SAFETY: the offset is inside the mapped region (the slab's
            // capacity is the mapping's size).
            ptr: unsafe { NonNull::new_unchecked(self.shared.base.as_ptr().add(offset)) },
            class: class as u8,
            owner: self.worker as u8,
        })
    }

    #[cold]
    fn refill(&mut self, class: usize) -> Result<(), AllocError> {
        // Blocks other workers handed back first.
        let returned = std::mem::take(
            &mut self.shared.returned[self.worker]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0,
        );
        let mut back = Vec::new();
        for b in returned {
            let c = class_of(self.central().block(b.0)?.size).expect("class");
            if c == class {
                self.mags[class].push(b);
            } else if self.mags[c].len() < MAGAZINE {
                self.mags[c].push(b);
            } else {
                back.push(b.0);
            }
        }
        let shared = self.shared.clone();
        let mut central = shared.central.lock().unwrap_or_else(|e| e.into_inner());
        for id in back {
            central.free(id)?;
        }
        let size = class_size(class);
        let mag = &mut self.mags[class];
        while mag.len() < BATCH {
            let id = match central.alloc(size, 1) {
                Ok(id) => id,
                Err(e) if mag.is_empty() => return Err(e),
                Err(_) => break,
            };
            let off = central.block(id)?.offset;
            mag.push((id, off));
        }
        Ok(())
    }

    #[inline]
    pub fn free(&mut self, b: CacheBlock) -> Result<(), AllocError> {
        let class = b.class as usize;
        let offset = b.ptr.as_ptr() as usize - self.shared.base.as_ptr() as usize;
        if b.owner as usize != self.worker {
            Self::bump(&self.shared.counters[self.worker].remote_frees);
            let owner = b.owner as usize;
            self.remote[owner].push((b.id, offset));
            if self.remote[owner].len() >= BATCH {
                let mut batch = std::mem::take(&mut self.remote[owner]);
                self.hand_back(owner, &mut batch);
            }
            return Ok(());
        }
        if self.mags[class].len() >= MAGAZINE {
            self.flush(class)?;
        }
        self.mags[class].push((b.id, offset));
        Ok(())
    }

    #[cold]
    fn flush(&mut self, class: usize) -> Result<(), AllocError> {
        let keep = self.mags[class].len() - BATCH;
        let out: Vec<Cached> = self.mags[class].drain(keep..).collect();
        let mut central = self.central();
        for (id, _) in out {
            central.free(id)?;
        }
        Ok(())
    }

    /// Gives a batch of `owner`'s blocks back to it, or to the slab when
    /// its cache is gone.
    fn hand_back(&self, owner: usize, batch: &mut Vec<Cached>) {
        let mut returned = self.shared.returned[owner]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !returned.1 {
            returned.0.append(batch);
            return;
        }
        drop(returned);
        let mut central = self.central();
        for (id, _) in batch.drain(..) {
            let _ = central.free(id);
        }
    }

    pub fn worker(&self) -> usize {
        self.worker
    }
}

impl Drop for LocalCache {
    /// Everything cached goes back: to the slab, or to its owner.
    fn drop(&mut self) {
        let mut remote = std::mem::take(&mut self.remote);
        for (owner, batch) in remote.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.hand_back(owner, batch);
            }
        }
        let mut ids: Vec<BlockId> = self
            .mags
            .iter_mut()
            .flat_map(|m| m.drain(..))
            .map(|b| b.0)
            .collect();
        {
            // Retire: blocks handed back from now on go to the slab.
            let mut returned = self.shared.returned[self.worker]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            returned.1 = true;
            ids.extend(std::mem::take(&mut returned.0).into_iter().map(|b| b.0));
        }
        let mut central = self
            .shared
            .central
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for id in ids {
            let _ = central.free(id);
        }
    }
}
