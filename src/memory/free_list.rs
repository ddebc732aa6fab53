//! First-fit and best-fit: an address-ordered map of free ranges, merged
//! with their neighbours on free, plus a size-ordered index. First-fit takes
//! the lowest free range that fits (fast, keeps the top of the region
//! free); best-fit takes the smallest (keeps large ranges whole).

use super::block::{
    AllocError, AllocStats, Block, BlockAllocator, BlockId, BlockTable, Move, align_up,
    check_request,
};
use std::collections::{BTreeMap, BTreeSet};

/// Every block starts on and is rounded to this many bytes.
pub const GRANULE: usize = 16;
/// The largest alignment served (the arena's base is aligned to it).
pub const MAX_ALIGN: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fit {
    First,
    Best,
}

#[derive(Clone)]
struct FreeList {
    capacity: usize,
    free: BTreeMap<usize, usize>,
    by_size: BTreeSet<(usize, usize)>,
    table: BlockTable,
}

impl FreeList {
    fn new(capacity: usize) -> Self {
        let capacity = capacity / GRANULE * GRANULE;
        let mut f = Self {
            capacity,
            free: BTreeMap::new(),
            by_size: BTreeSet::new(),
            table: BlockTable::default(),
        };
        if capacity > 0 {
            f.add_free(0, capacity);
        }
        f
    }

    fn add_free(&mut self, off: usize, len: usize) {
        self.free.insert(off, len);
        self.by_size.insert((len, off));
    }

    fn take_free(&mut self, off: usize) -> usize {
        let len = self.free.remove(&off).expect("a free range");
        self.by_size.remove(&(len, off));
        len
    }

    /// Returns a range to the free map, merged with touching neighbours.
    fn release(&mut self, mut off: usize, mut len: usize) {
        if let Some((&p, &plen)) = self.free.range(..off).next_back()
            && p + plen == off
        {
            self.take_free(p);
            off = p;
            len += plen;
        }
        if let Some(&nlen) = self.free.get(&(off + len)) {
            self.take_free(off + len);
            len += nlen;
        }
        self.add_free(off, len);
    }

    fn fits(off: usize, len: usize, need: usize, align: usize) -> bool {
        align_up(off, align) + need <= off + len
    }

    fn alloc(
        &mut self,
        fit: Fit,
        name: &'static str,
        size: usize,
        align: usize,
    ) -> Result<BlockId, AllocError> {
        check_request(size, align, MAX_ALIGN)?;
        let need = align_up(size, GRANULE);
        let align = align.max(GRANULE);
        let found = match fit {
            Fit::First => self
                .free
                .iter()
                .find(|&(&off, &len)| Self::fits(off, len, need, align))
                .map(|(&off, _)| off),
            Fit::Best => self
                .by_size
                .range((need, 0)..)
                .find(|&&(len, off)| Self::fits(off, len, need, align))
                .map(|&(_, off)| off),
        };
        let Some(off) = found else {
            return Err(AllocError::OutOfMemory {
                allocator: name,
                size,
                align,
            });
        };
        let len = self.take_free(off);
        let at = align_up(off, align);
        if at > off {
            self.add_free(off, at - off);
        }
        let end = at + need;
        if end < off + len {
            self.add_free(end, off + len - end);
        }
        Ok(self.table.insert(Block {
            offset: at,
            size: need,
            requested: size,
            align,
        }))
    }

    fn free_block(&mut self, id: BlockId) -> Result<(), AllocError> {
        let b = self.table.remove(id)?;
        self.release(b.offset, b.size);
        Ok(())
    }

    fn stats(&self) -> AllocStats {
        AllocStats {
            requested: self.table.requested,
            allocated: self.table.allocated,
            reserved: self.capacity,
            live_blocks: self.table.live,
            free_blocks: self.free.len(),
            largest_free: self.by_size.last().map_or(0, |&(len, _)| len),
            total_free: self.capacity - self.table.allocated,
        }
    }

    fn compact(&mut self) -> Vec<Move> {
        let mut moves = Vec::new();
        let mut cursor = 0;
        self.free.clear();
        self.by_size.clear();
        for (id, b) in self.table.live_by_offset() {
            let to = align_up(cursor, b.align);
            if to > cursor {
                self.add_free(cursor, to - cursor);
            }
            if to != b.offset {
                moves.push(Move {
                    id,
                    from: b.offset,
                    to,
                    len: b.size,
                });
                self.table.set_offset(id, to);
            }
            cursor = to + b.size;
        }
        if cursor < self.capacity {
            self.add_free(cursor, self.capacity - cursor);
        }
        moves
    }
}

macro_rules! fit_allocator {
    ($name:ident, $fit:expr, $label:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone)]
        pub struct $name(FreeList);

        impl $name {
            pub fn new(capacity: usize) -> Self {
                Self(FreeList::new(capacity))
            }
        }

        impl BlockAllocator for $name {
            fn name(&self) -> &'static str {
                $label
            }
            fn capacity(&self) -> usize {
                self.0.capacity
            }
            fn alloc(&mut self, size: usize, align: usize) -> Result<BlockId, AllocError> {
                self.0.alloc($fit, $label, size, align)
            }
            fn free(&mut self, id: BlockId) -> Result<(), AllocError> {
                self.0.free_block(id)
            }
            fn block(&self, id: BlockId) -> Result<Block, AllocError> {
                self.0.table.get(id)
            }
            fn stats(&self) -> AllocStats {
                self.0.stats()
            }
            fn free_ranges(&self) -> Vec<(usize, usize)> {
                self.0.free.iter().map(|(&o, &l)| (o, l)).collect()
            }
            fn compact(&mut self) -> Vec<Move> {
                self.0.compact()
            }
        }
    };
}

fit_allocator!(
    FirstFit,
    Fit::First,
    "first-fit",
    "The lowest free range that fits."
);
fit_allocator!(
    BestFit,
    Fit::Best,
    "best-fit",
    "The smallest free range that fits."
);
