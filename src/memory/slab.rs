//! The slab: fixed size classes (16 B to 4 KiB, powers of two). The region
//! is cut into 64 KiB pages; a page serves one class at a time, cut into
//! equal slots. Allocation pops a free slot of the class (taking a fresh
//! page when there is none), free pushes it back: O(1), no search, no
//! external fragmentation inside a class. Compaction packs each class into
//! as few pages as possible and returns the rest.

use super::block::{
    AllocError, AllocStats, Block, BlockAllocator, BlockId, BlockTable, Move, check_request,
};
use std::collections::BTreeSet;

pub const PAGE: usize = 64 * 1024;
pub const MIN_CLASS: usize = 16;
pub const MAX_CLASS: usize = 4096;
pub const CLASSES: usize = 9;

/// The class that serves `bytes` (a power of two from 16 to 4096).
#[inline]
pub fn class_of(bytes: usize) -> Option<usize> {
    if bytes > MAX_CLASS {
        return None;
    }
    let b = bytes.max(MIN_CLASS);
    Some((usize::BITS - (b - 1).leading_zeros()) as usize - 4)
}

#[inline]
pub fn class_size(class: usize) -> usize {
    MIN_CLASS << class
}

#[derive(Clone, Copy, Default)]
struct Page {
    class: Option<u8>,
    live: u32,
}

#[derive(Clone)]
pub struct Slab {
    capacity: usize,
    pages: Vec<Page>,
    free_pages: BTreeSet<usize>,
    /// Free slot offsets per class (a stack: the last freed is reused first,
    /// while it is still in cache).
    slots: [Vec<usize>; CLASSES],
    table: BlockTable,
}

impl Slab {
    /// `capacity` is rounded down to whole pages.
    pub fn new(capacity: usize) -> Self {
        let pages = capacity / PAGE;
        Self {
            capacity: pages * PAGE,
            pages: vec![Page::default(); pages],
            free_pages: (0..pages).collect(),
            slots: Default::default(),
            table: BlockTable::default(),
        }
    }

    fn carve(&mut self, page: usize, class: usize) {
        self.pages[page] = Page {
            class: Some(class as u8),
            live: 0,
        };
        let size = class_size(class);
        let base = page * PAGE;
        // Highest first, so the stack hands out the lowest slot first.
        self.slots[class].extend((0..PAGE / size).rev().map(|k| base + k * size));
    }

    /// Pages that serve no class any more go back to the free pages.
    fn release_empty_pages(&mut self) {
        for class in 0..CLASSES {
            let empty: BTreeSet<usize> = (0..self.pages.len())
                .filter(|&p| self.pages[p].class == Some(class as u8) && self.pages[p].live == 0)
                .collect();
            if empty.is_empty() {
                continue;
            }
            self.slots[class].retain(|off| !empty.contains(&(off / PAGE)));
            for p in empty {
                self.pages[p] = Page::default();
                self.free_pages.insert(p);
            }
        }
    }
}

impl BlockAllocator for Slab {
    fn name(&self) -> &'static str {
        "slab"
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> Result<BlockId, AllocError> {
        check_request(size, align, MAX_CLASS)?;
        let Some(class) = class_of(size.max(align)) else {
            return Err(AllocError::TooLarge {
                allocator: "slab",
                size,
                max: MAX_CLASS,
            });
        };
        let off = match self.slots[class].pop() {
            Some(off) => off,
            None => {
                let Some(page) = self.free_pages.pop_first() else {
                    return Err(AllocError::OutOfMemory {
                        allocator: "slab",
                        size,
                        align,
                    });
                };
                self.carve(page, class);
                self.slots[class].pop().expect("a fresh page has slots")
            }
        };
        self.pages[off / PAGE].live += 1;
        Ok(self.table.insert(Block {
            offset: off,
            size: class_size(class),
            requested: size,
            align,
        }))
    }

    #[inline]
    fn free(&mut self, id: BlockId) -> Result<(), AllocError> {
        let b = self.table.remove(id)?;
        let class = class_of(b.size).expect("slab blocks have a class");
        self.slots[class].push(b.offset);
        self.pages[b.offset / PAGE].live -= 1;
        Ok(())
    }

    fn block(&self, id: BlockId) -> Result<Block, AllocError> {
        self.table.get(id)
    }

    fn stats(&self) -> AllocStats {
        // The largest free block: free pages and free slots that touch
        // count as one range.
        let largest = self.free_ranges().iter().map(|r| r.1).max().unwrap_or(0);
        AllocStats {
            requested: self.table.requested,
            allocated: self.table.allocated,
            reserved: self.capacity,
            live_blocks: self.table.live,
            free_blocks: self.free_pages.len() + self.slots.iter().map(Vec::len).sum::<usize>(),
            largest_free: largest,
            total_free: self.capacity - self.table.allocated,
        }
    }

    fn free_ranges(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> =
            self.free_pages.iter().map(|&p| (p * PAGE, PAGE)).collect();
        for (c, slots) in self.slots.iter().enumerate() {
            v.extend(slots.iter().map(|&off| (off, class_size(c))));
        }
        v.sort_unstable();
        // Merge touching ranges.
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(v.len());
        for (off, len) in v {
            match out.last_mut() {
                Some(last) if last.0 + last.1 == off => last.1 += len,
                _ => out.push((off, len)),
            }
        }
        out
    }

    /// Each class's live slots are packed into the lowest pages, class by
    /// class; the pages left over are returned.
    fn compact(&mut self) -> Vec<Move> {
        let live = self.table.live_by_offset();
        let mut by_class: Vec<Vec<(BlockId, Block)>> = vec![Vec::new(); CLASSES];
        for (id, b) in live {
            by_class[class_of(b.size).expect("class")].push((id, b));
        }
        self.pages.iter_mut().for_each(|p| *p = Page::default());
        self.free_pages = (0..self.pages.len()).collect();
        self.slots.iter_mut().for_each(Vec::clear);
        let mut moves = Vec::new();
        for (class, blocks) in by_class.into_iter().enumerate() {
            let size = class_size(class);
            let per_page = PAGE / size;
            for chunk in blocks.chunks(per_page) {
                let page = self
                    .free_pages
                    .pop_first()
                    .expect("the blocks fitted before");
                self.carve(page, class);
                for (k, (id, b)) in chunk.iter().enumerate() {
                    let to = page * PAGE + k * size;
                    // The carved stack hands out the lowest slots first.
                    let popped = self.slots[class].pop();
                    debug_assert_eq!(popped, Some(to));
                    self.pages[page].live += 1;
                    if to != b.offset {
                        moves.push(Move {
                            id: *id,
                            from: b.offset,
                            to,
                            len: size,
                        });
                        self.table.set_offset(*id, to);
                    }
                }
            }
        }
        self.release_empty_pages();
        moves
    }
}
