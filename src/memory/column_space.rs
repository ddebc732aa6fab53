//! The column space: one mapped region that the particle store's columns
//! take their memory from, placed by a block-allocator strategy the player
//! picks (first-fit, best-fit or buddy; Settings, or `memory.column_strategy`).
//!
//! - `ColumnSpace` maps the region once (the OS commits pages only when
//!   touched) and places blocks with the chosen strategy. The other two
//!   strategies are fed the same requests as shadows (metadata only), so
//!   the overlay can draw all three memory maps of the same real workload.
//! - `LineBuf` is a column's storage: a run of 64-byte lines in the space,
//!   or on the heap when the space is full (growth never fails).
//! - The current space is process-wide; switching strategy starts a new
//!   space, and a store moves its columns there (`ParticleStore::rehome`);
//!   a space is unmapped when its last block is gone.

use super::block::{AllocStats, BlockAllocator, BlockId};
use super::{BestFit, Buddy, Component, FirstFit, LEDGER};
use serde::{Deserialize, Serialize};
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes in one line, and the alignment of every block.
pub const LINE: usize = 64;

/// How the column space places blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The first hole that fits, in address order.
    #[default]
    FirstFit,
    /// The smallest hole that fits.
    BestFit,
    /// Power-of-two blocks split and merged with their buddies.
    Buddy,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::FirstFit, Strategy::BestFit, Strategy::Buddy];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::FirstFit => "first-fit",
            Strategy::BestFit => "best-fit",
            Strategy::Buddy => "buddy",
        }
    }

    fn allocator(self, capacity: usize) -> Box<dyn BlockAllocator + Send> {
        match self {
            Strategy::FirstFit => Box::new(FirstFit::new(capacity)),
            Strategy::BestFit => Box::new(BestFit::new(capacity)),
            Strategy::Buddy => Box::new(Buddy::new(capacity)),
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One strategy's view of the space, for the overlay.
#[derive(Clone, Debug)]
pub struct SpaceMap {
    pub strategy: Strategy,
    /// True for the strategy that holds the real bytes.
    pub real: bool,
    pub capacity: usize,
    pub stats: AllocStats,
    /// Free holes as (offset, length) in bytes; requests it refused.
    pub free: Vec<(usize, usize)>,
    pub refused: u64,
}

struct Placement {
    allocator: Box<dyn BlockAllocator + Send>,
    refused: u64,
}

struct Inner {
    real: Placement,
    /// The other strategies, fed the same requests.
    shadows: Vec<(Strategy, Placement)>,
    /// For each real block, its shadow blocks (by shadow index).
    shadow_ids: std::collections::HashMap<BlockId, Vec<Option<BlockId>>>,
}

/// A mapped region carved by one strategy.
pub struct ColumnSpace {
    strategy: Strategy,
    base: NonNull<u8>,
    bytes: usize,
    inner: Mutex<Inner>,
}

// SAFETY: the space owns its mapping; blocks are handed out exclusively
// (each to one LineBuf) under the mutex, and the mapping lives as long as
// any LineBuf holds the Arc.
unsafe impl Send for ColumnSpace {}
// SAFETY: as above; shared access goes through the mutex.
unsafe impl Sync for ColumnSpace {}

impl ColumnSpace {
    /// Maps `bytes` (rounded up to whole lines; at least one) for `strategy`.
    /// `None` if the OS refuses the mapping.
    pub fn new(strategy: Strategy, bytes: usize) -> Option<Arc<Self>> {
        let bytes = bytes.max(LINE).next_multiple_of(LINE);
        let base = super::os::map(bytes)?;
        let shadows = Strategy::ALL
            .into_iter()
            .filter(|&s| s != strategy)
            .map(|s| {
                (
                    s,
                    Placement {
                        allocator: s.allocator(bytes),
                        refused: 0,
                    },
                )
            })
            .collect();
        Some(Arc::new(Self {
            strategy,
            base,
            bytes,
            inner: Mutex::new(Inner {
                real: Placement {
                    allocator: strategy.allocator(bytes),
                    refused: 0,
                },
                shadows,
                shadow_ids: Default::default(),
            }),
        }))
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn capacity(&self) -> usize {
        self.bytes
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A block of `bytes` (a multiple of `LINE`), 64-byte aligned, and where
    /// it starts; `None` when the strategy finds no room.
    fn alloc(&self, bytes: usize) -> Option<(BlockId, NonNull<u8>)> {
        let mut inner = self.lock();
        let id = match inner.real.allocator.alloc(bytes, LINE) {
            Ok(id) => id,
            Err(_) => {
                inner.real.refused += 1;
                return None;
            }
        };
        let offset = inner.real.allocator.block(id).ok()?.offset;
        assert!(
            offset + bytes <= self.bytes,
            "block outside the column space"
        );
        let shadow: Vec<Option<BlockId>> = inner
            .shadows
            .iter_mut()
            .map(|(_, p)| {
                let got = p.allocator.alloc(bytes, LINE).ok();
                if got.is_none() {
                    p.refused += 1;
                }
                got
            })
            .collect();
        inner.shadow_ids.insert(id, shadow);
        // SAFETY: offset + bytes lies inside the mapping (checked above).
        let ptr = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(offset)) };
        Some((id, ptr))
    }

    fn free(&self, id: BlockId) {
        let mut inner = self.lock();
        let _ = inner.real.allocator.free(id);
        if let Some(shadow) = inner.shadow_ids.remove(&id) {
            for (s, (_, p)) in shadow.into_iter().zip(inner.shadows.iter_mut()) {
                if let Some(s) = s {
                    let _ = p.allocator.free(s);
                }
            }
        }
    }

    /// The real strategy's figures.
    pub fn stats(&self) -> AllocStats {
        self.lock().real.allocator.stats()
    }

    /// Every strategy's map of the same requests, the real one first.
    pub fn maps(&self) -> Vec<SpaceMap> {
        let inner = self.lock();
        let map = |strategy, real, p: &Placement| SpaceMap {
            strategy,
            real,
            capacity: p.allocator.capacity(),
            stats: p.allocator.stats(),
            free: p.allocator.free_ranges(),
            refused: p.refused,
        };
        std::iter::once(map(self.strategy, true, &inner.real))
            .chain(inner.shadows.iter().map(|(s, p)| map(*s, false, p)))
            .collect()
    }
}

impl Drop for ColumnSpace {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this size; every LineBuf that pointed
        // into it held an Arc, so none is left.
        unsafe { super::os::unmap(self.base, self.bytes) };
    }
}

static CURRENT: Mutex<Option<Arc<ColumnSpace>>> = Mutex::new(None);

/// Default size of the column space: the mapping is virtual until touched.
pub const DEFAULT_SPACE_BYTES: usize = 1 << 30;

/// The space new columns grow into (first-fit, 1 GiB, until `switch`).
pub fn current() -> Option<Arc<ColumnSpace>> {
    let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if cur.is_none() {
        *cur = ColumnSpace::new(Strategy::default(), DEFAULT_SPACE_BYTES);
    }
    cur.clone()
}

/// The OS would not map a column space of this size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the OS refused to map {mib} MiB for the particle columns; lower memory.column_space_mib")]
pub struct MapRefused {
    pub mib: usize,
}

/// Starts a new current space (unless the current one already has this
/// strategy and size). Columns move there when they grow or are rehomed.
pub fn switch(strategy: Strategy, bytes: usize) -> Result<Arc<ColumnSpace>, MapRefused> {
    let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(space) = cur.as_ref()
        && space.strategy == strategy
        && space.bytes == bytes.max(LINE).next_multiple_of(LINE)
    {
        return Ok(space.clone());
    }
    let space = ColumnSpace::new(strategy, bytes).ok_or(MapRefused { mib: bytes >> 20 })?;
    *cur = Some(space.clone());
    Ok(space)
}

/// Where a `LineBuf`'s lines live.
enum Home {
    /// No lines yet.
    Empty,
    Space {
        space: Arc<ColumnSpace>,
        id: BlockId,
        charged: Component,
    },
    Heap(Layout),
}

/// The shape of one line, for an aligned empty buffer.
#[repr(C, align(64))]
struct AlignedLine([u8; LINE]);

/// A run of zero-initialised 64-byte lines: a column's storage.
pub struct LineBuf {
    ptr: NonNull<u8>,
    lines: usize,
    home: Home,
}

// SAFETY: a LineBuf owns its lines exclusively (like a Vec); the space it
// points into is kept alive by the Arc.
unsafe impl Send for LineBuf {}
// SAFETY: shared access only reads.
unsafe impl Sync for LineBuf {}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuf {
    pub const fn new() -> Self {
        Self {
            // Dangling but aligned, as for an empty Vec of lines.
            ptr: NonNull::<AlignedLine>::dangling().cast(),
            lines: 0,
            home: Home::Empty,
        }
    }

    /// Lines held.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The lines' bytes (all initialised).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points at `lines × LINE` initialised bytes owned by
        // this buffer (or is dangling with length 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.lines * LINE) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.lines * LINE) }
    }

    /// The column space the lines are in, if any.
    pub fn space(&self) -> Option<&Arc<ColumnSpace>> {
        match &self.home {
            Home::Space { space, .. } => Some(space),
            _ => None,
        }
    }

    /// "first-fit" (…) when in a column space, "heap" when it overflowed.
    pub fn home(&self) -> &'static str {
        match &self.home {
            Home::Empty => "empty",
            Home::Space { space, .. } => space.strategy.name(),
            Home::Heap(_) => "heap",
        }
    }

    /// Re-allocates to exactly `lines` lines in the current space (the heap
    /// if it is full), keeping the first `keep` lines' bytes; the rest are
    /// zero. With `lines == 0` the buffer lets go of its memory.
    pub fn realloc(&mut self, lines: usize, keep: usize) {
        *self = self.copy_into_new(lines, keep);
    }

    /// A new buffer of `lines` lines in the current space (the heap if it
    /// is full) holding this one's first `keep` lines; the rest are zero.
    fn copy_into_new(&self, lines: usize, keep: usize) -> Self {
        let keep = keep.min(lines).min(self.lines);
        let mut next = Self::new();
        if lines > 0 {
            next.lines = lines;
            let bytes = lines * LINE;
            let placed = current().and_then(|space| {
                let (id, ptr) = space.alloc(bytes)?;
                Some((space, id, ptr))
            });
            match placed {
                Some((space, id, ptr)) => {
                    let charged = super::ledger::current();
                    LEDGER.pooled(charged, bytes as i64);
                    next.ptr = ptr;
                    next.home = Home::Space { space, id, charged };
                    // Space memory is recycled: clear what is not copied.
                    next.bytes_mut()[keep * LINE..].fill(0);
                }
                None => {
                    let layout = Layout::from_size_align(bytes, LINE).expect("line layout");
                    // SAFETY: the layout has a non-zero size.
                    let p = unsafe { std::alloc::alloc_zeroed(layout) };
                    next.ptr =
                        NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
                    next.home = Home::Heap(layout);
                }
            }
            next.bytes_mut()[..keep * LINE].copy_from_slice(&self.bytes()[..keep * LINE]);
        }
        next
    }
}

impl Clone for LineBuf {
    fn clone(&self) -> Self {
        self.copy_into_new(self.lines, self.lines)
    }
}

impl Drop for LineBuf {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.home, Home::Empty) {
            Home::Empty => {}
            Home::Space { space, id, charged } => {
                LEDGER.pooled(charged, -((self.lines * LINE) as i64));
                space.free(id);
            }
            // SAFETY: allocated in `realloc` with this layout.
            Home::Heap(layout) => unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) },
        }
    }
}

impl SpaceMap {
    /// The used stretches between the holes, as (start, end) byte offsets.
    pub fn used_runs(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0usize;
        let mut holes = self.free.clone();
        holes.sort_unstable();
        for (off, len) in holes {
            if off > at {
                out.push((at, off));
            }
            at = at.max(off + len);
        }
        if at < self.capacity {
            out.push((at, self.capacity));
        }
        out
    }

    /// Where the highest used byte ends (0 when nothing is used).
    pub fn high_water(&self) -> usize {
        self.used_runs().last().map_or(0, |r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_keep_their_bytes_across_growth_and_zero_the_rest() {
        let mut b = LineBuf::new();
        b.realloc(4, 0);
        assert!(b.bytes().iter().all(|&x| x == 0));
        assert_eq!(b.bytes().as_ptr() as usize % LINE, 0);
        b.bytes_mut()
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = i as u8);
        b.realloc(9, 4);
        assert_eq!(b.lines(), 9);
        assert!(
            b.bytes()[..256]
                .iter()
                .enumerate()
                .all(|(i, &x)| x == i as u8)
        );
        assert!(b.bytes()[256..].iter().all(|&x| x == 0));
        let c = b.clone();
        assert_eq!(c.bytes(), b.bytes());
        b.realloc(2, 2);
        assert!(b.bytes().iter().enumerate().all(|(i, &x)| x == i as u8));
        b.realloc(0, 0);
        assert_eq!(b.lines(), 0);
    }

    #[test]
    fn a_full_space_overflows_to_the_heap_and_shadows_see_every_request() {
        let space = ColumnSpace::new(Strategy::BestFit, 16 * LINE).unwrap();
        let (a, _) = space.alloc(8 * LINE).unwrap();
        let (b, _) = space.alloc(4 * LINE).unwrap();
        assert!(space.alloc(8 * LINE).is_none(), "only 4 lines left");
        assert_eq!(space.maps()[0].refused, 1);
        let maps = space.maps();
        assert_eq!(maps.len(), 3);
        assert!(maps[0].real && maps[0].strategy == Strategy::BestFit);
        for m in &maps {
            assert_eq!(m.stats.live_blocks, 2, "{:?} saw both requests", m.strategy);
        }
        space.free(a);
        space.free(b);
        for m in space.maps() {
            assert_eq!(m.stats.live_blocks, 0);
            assert!(m.used_runs().is_empty());
            assert_eq!(m.high_water(), 0);
        }
    }

    #[test]
    fn strips_mark_the_used_stretches() {
        let map = SpaceMap {
            strategy: Strategy::FirstFit,
            real: true,
            capacity: 100,
            stats: AllocStats::default(),
            free: vec![(50, 30), (0, 10)],
            refused: 0,
        };
        assert_eq!(map.used_runs(), vec![(10, 50), (80, 100)]);
        assert_eq!(map.high_water(), 100);
    }
}
