//! The buddy system: the region is a power of two, split in halves down to
//! the size asked for (rounded up to a power of two); a freed block merges
//! with its buddy (`offset ^ size`) whenever that is free too. Fast and
//! simple, at the price of rounding (internal fragmentation).
//!
//! Free blocks are kept per order as a stack of offsets plus a bitmap that
//! says which blocks are really free: merging clears the buddy's bit and
//! leaves its stack entry behind, to be skipped when popped (lazy delete),
//! so allocation, free and merge are all O(1) amortised.

use super::block::{
    AllocError, AllocStats, Block, BlockAllocator, BlockId, BlockTable, Move, check_request,
};

/// The smallest block.
pub const MIN_BLOCK: usize = 16;
/// The largest alignment served (the arena's base is aligned to it).
pub const MAX_ALIGN: usize = 4096;

/// The free blocks of one order.
#[derive(Clone, Default)]
struct Order {
    /// Offsets, possibly stale (check `bits`).
    stack: Vec<usize>,
    /// Bit `offset >> log2(block size)`: the block is free.
    bits: Vec<u64>,
    count: usize,
}

impl Order {
    fn new(blocks: usize) -> Self {
        Self {
            stack: Vec::new(),
            bits: vec![0; blocks.div_ceil(64)],
            count: 0,
        }
    }

    #[inline]
    fn bit(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    #[inline]
    fn insert(&mut self, off: usize, shift: u32) {
        let i = off >> shift;
        self.bits[i / 64] |= 1 << (i % 64);
        self.stack.push(off);
        self.count += 1;
    }

    /// Takes `off` out if it is free.
    #[inline]
    fn remove(&mut self, off: usize, shift: u32) -> bool {
        let i = off >> shift;
        if !self.bit(i) {
            return false;
        }
        self.bits[i / 64] &= !(1 << (i % 64));
        self.count -= 1;
        // Its stack entry goes stale; drop stale entries when they pile up.
        if self.stack.len() > 2 * self.count + 64 {
            let bits = &self.bits;
            self.stack
                .retain(|&o| bits[(o >> shift) / 64] & (1 << ((o >> shift) % 64)) != 0);
        }
        true
    }

    #[inline]
    fn pop(&mut self, shift: u32) -> Option<usize> {
        while let Some(off) = self.stack.pop() {
            let i = off >> shift;
            if self.bit(i) {
                self.bits[i / 64] &= !(1 << (i % 64));
                self.count -= 1;
                return Some(off);
            }
        }
        None
    }

    fn clear(&mut self) {
        self.stack.clear();
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.count = 0;
    }

    /// The free blocks' offsets: set bits only, and nothing at all for an
    /// order without free blocks (a large region's low orders have
    /// millions of bits).
    fn offsets(&self, shift: u32) -> impl Iterator<Item = usize> + '_ {
        let words = if self.count == 0 {
            &[][..]
        } else {
            &self.bits[..]
        };
        words
            .iter()
            .enumerate()
            .filter(|(_, word)| **word != 0)
            .flat_map(move |(w, &word)| {
                let mut rest = word;
                std::iter::from_fn(move || {
                    if rest == 0 {
                        return None;
                    }
                    let b = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    Some((w * 64 + b) << shift)
                })
            })
    }
}

#[derive(Clone)]
pub struct Buddy {
    capacity: usize,
    /// Free blocks per order (block size `MIN_BLOCK << order`).
    free: Vec<Order>,
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
        let mut free: Vec<Order> = (0..orders)
            .map(|o| Order::new(capacity / (MIN_BLOCK << o)))
            .collect();
        free[orders - 1].insert(0, Self::shift(orders - 1));
        Self {
            capacity,
            free,
            table: BlockTable::default(),
        }
    }

    fn size_of(order: usize) -> usize {
        MIN_BLOCK << order
    }

    /// log2 of the block size of `order`.
    fn shift(order: usize) -> u32 {
        MIN_BLOCK.trailing_zeros() + order as u32
    }

    fn order_for(bytes: usize) -> usize {
        (bytes.max(MIN_BLOCK).next_power_of_two() / MIN_BLOCK).trailing_zeros() as usize
    }

    fn insert_merged(&mut self, mut off: usize, mut order: usize) {
        while order + 1 < self.free.len() {
            let buddy = off ^ Self::size_of(order);
            if !self.free[order].remove(buddy, Self::shift(order)) {
                break;
            }
            off = off.min(buddy);
            order += 1;
        }
        self.free[order].insert(off, Self::shift(order));
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
            self.free[order].insert(start, Self::shift(order));
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
        let Some(mut order) = (want..self.free.len()).find(|&o| self.free[o].count > 0) else {
            return Err(AllocError::OutOfMemory {
                allocator: "buddy",
                size,
                align,
            });
        };
        let off = self.free[order].pop(Self::shift(order)).expect("counted");
        while order > want {
            order -= 1;
            self.free[order].insert(off + Self::size_of(order), Self::shift(order));
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
            .find(|&o| self.free[o].count > 0)
            .map_or(0, Self::size_of);
        AllocStats {
            requested: self.table.requested,
            allocated: self.table.allocated,
            reserved: self.capacity,
            live_blocks: self.table.live,
            free_blocks: self.free.iter().map(|o| o.count).sum(),
            largest_free: largest,
            total_free: self.capacity - self.table.allocated,
        }
    }

    fn free_ranges(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = self
            .free
            .iter()
            .enumerate()
            .flat_map(|(o, ord)| {
                ord.offsets(Self::shift(o))
                    .map(move |off| (off, Self::size_of(o)))
            })
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
        self.free.iter_mut().for_each(Order::clear);
        self.free_tail(cursor);
        moves
    }
}
