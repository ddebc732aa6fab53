//! The buddy system: the region is a power of two, split in halves down to
//! the size asked for (rounded up to a power of two); a freed block merges
//! with its buddy (`offset ^ size`) whenever that is free too. Fast and
//! simple, at the price of rounding (internal fragmentation).

use super::block::{
    AllocError, AllocStats, Block, BlockAllocator, BlockId, BlockTable, Move, check_request,
};
use std::collections::BTreeSet;

/// The smallest block.
pub const MIN_BLOCK: usize = 16;
/// The largest alignment served (the arena's base is aligned to it).
pub const MAX_ALIGN: usize = 4096;

#[derive(Clone)]
pub struct Buddy {
    capacity: usize,
    /// Free block offsets per order (block size `MIN_BLOCK << order`).
    free: Vec<BTreeSet<usize>>,
    table: BlockTable,
}

impl Buddy {
    /// `capacity` is rounded down to a power of two (at least `MIN_BLOCK`).
    pub fn new(capacity: usize) -> Self {
        let capacity = if capacity < MIN_BLOCK {
            MIN_BLOCK
        } else {
            1 << (usize::BITS - 1 - capacity.leading_zeros())
        };
        let orders = (capacity / MIN_BLOCK).trailing_zeros() as usize + 1;
        let mut free = vec![BTreeSet::new(); orders];
        free[orders - 1].insert(0);
        Self {
            capacity,
            free,
            table: BlockTable::default(),
        }
    }

    fn size_of(order: usize) -> usize {
        MIN_BLOCK << order
    }

    fn order_for(bytes: usize) -> usize {
        (bytes.max(MIN_BLOCK).next_power_of_two() / MIN_BLOCK).trailing_zeros() as usize
    }

    fn insert_merged(&mut self, mut off: usize, mut order: usize) {
        while order + 1 < self.free.len() {
            let buddy = off ^ Self::size_of(order);
            if !self.free[order].remove(&buddy) {
                break;
            }
            off = off.min(buddy);
            order += 1;
        }
        self.free[order].insert(off);
    }

    /// Fills `start..capacity` with the largest aligned free blocks.
    fn free_tail(&mut self, mut start: usize) {
        while start < self.capacity {
            let mut order = self.free.len() - 1;
            while !start.is_multiple_of(Self::size_of(order))
                || start + Self::size_of(order) > self.capacity
            {
                order -= 1;
            }
            self.free[order].insert(start);
            start += Self::size_of(order);
        }
    }
}

impl BlockAllocator for Buddy {
    fn name(&self) -> &'static str {
        "buddy"
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn alloc(&mut self, size: usize, align: usize) -> Result<BlockId, AllocError> {
        check_request(size, align, MAX_ALIGN)?;
        if size > self.capacity {
            return Err(AllocError::TooLarge {
                allocator: "buddy",
                size,
                max: self.capacity,
            });
        }
        let want = Self::order_for(size.max(align));
        let Some(mut order) = (want..self.free.len()).find(|&o| !self.free[o].is_empty()) else {
            return Err(AllocError::OutOfMemory {
                allocator: "buddy",
                size,
                align,
            });
        };
        let off = self.free[order].pop_first().expect("non-empty");
        while order > want {
            order -= 1;
            self.free[order].insert(off + Self::size_of(order));
        }
        Ok(self.table.insert(Block {
            offset: off,
            size: Self::size_of(want),
            requested: size,
            align,
        }))
    }

    fn free(&mut self, id: BlockId) -> Result<(), AllocError> {
        let b = self.table.remove(id)?;
        self.insert_merged(b.offset, Self::order_for(b.size));
        Ok(())
    }

    fn block(&self, id: BlockId) -> Result<Block, AllocError> {
        self.table.get(id)
    }

    fn stats(&self) -> AllocStats {
        let largest = (0..self.free.len())
            .rev()
            .find(|&o| !self.free[o].is_empty())
            .map_or(0, Self::size_of);
        AllocStats {
            requested: self.table.requested,
            allocated: self.table.allocated,
            reserved: self.capacity,
            live_blocks: self.table.live,
            free_blocks: self.free.iter().map(BTreeSet::len).sum(),
            largest_free: largest,
            total_free: self.capacity - self.table.allocated,
        }
    }

    fn free_ranges(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = self
            .free
            .iter()
            .enumerate()
            .flat_map(|(o, set)| set.iter().map(move |&off| (off, Self::size_of(o))))
            .collect();
        v.sort_unstable();
        v
    }

    /// Largest blocks first, packed from offset 0: sizes are powers of two
    /// in falling order, so every block lands on a multiple of its size.
    fn compact(&mut self) -> Vec<Move> {
        let mut live = self.table.live_by_offset();
        live.sort_by(|a, b| b.1.size.cmp(&a.1.size).then(a.1.offset.cmp(&b.1.offset)));
        let mut moves = Vec::new();
        let mut cursor = 0;
        for (id, b) in live {
            if cursor != b.offset {
                moves.push(Move {
                    id,
                    from: b.offset,
                    to: cursor,
                    len: b.size,
                });
                self.table.set_offset(id, cursor);
            }
            cursor += b.size;
        }
        self.free.iter_mut().for_each(BTreeSet::clear);
        self.free_tail(cursor);
        moves
    }
}
