//! The contract every block allocator keeps, and the handle table they
//! share.
//!
//! An allocator manages offsets in a region of `capacity` bytes; it never
//! touches the bytes (`Arena` pairs one with real memory). Blocks are named
//! by [`BlockId`]s — an index into a table plus a generation — never by
//! offset, so compaction can move a block and its id stays valid, while a
//! stale or double-freed id is caught by its generation.
//!
//! Fragmentation, defined the same way for every strategy (and in the docs):
//! - external = 1 − largest free block ÷ total free (0 when nothing is free);
//! - internal = (allocated − requested) ÷ allocated (padding, rounding).

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockId {
    index: u32,
    generation: u32,
}

impl BlockId {
    pub fn index(self) -> usize {
        self.index as usize
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {}#{}", self.index, self.generation)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("out of memory: no free block of {size} bytes (align {align}) in {allocator}")]
    OutOfMemory {
        allocator: &'static str,
        size: usize,
        align: usize,
    },
    #[error("{size} bytes is above the largest size {allocator} serves ({max})")]
    TooLarge {
        allocator: &'static str,
        size: usize,
        max: usize,
    },
    #[error("alignment {align} is not a power of two up to {max}")]
    BadAlign { align: usize, max: usize },
    #[error("{0} is stale: it was freed already (double free) or never allocated here")]
    Stale(BlockId),
    #[error("a zero-byte block was requested")]
    ZeroSize,
}

/// Where a live block sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub offset: usize,
    /// Bytes taken from the region (requested + rounding).
    pub size: usize,
    pub requested: usize,
    /// The alignment asked for (compaction keeps it).
    pub align: usize,
}

/// Every allocator's figures, defined the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct AllocStats {
    pub requested: usize,
    pub allocated: usize,
    pub reserved: usize,
    pub live_blocks: usize,
    pub free_blocks: usize,
    pub largest_free: usize,
    pub total_free: usize,
}

impl AllocStats {
    pub fn external_fragmentation(&self) -> f64 {
        if self.total_free == 0 {
            0.0
        } else {
            1.0 - self.largest_free as f64 / self.total_free as f64
        }
    }

    pub fn internal_fragmentation(&self) -> f64 {
        if self.allocated == 0 {
            0.0
        } else {
            (self.allocated - self.requested) as f64 / self.allocated as f64
        }
    }
}

/// A block that compaction moved: its `len` bytes go from `from` to `to`.
/// Moves may overlap each other's old places, so apply them through a copy
/// (read every moved block first, then write), as `Arena::compact` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub id: BlockId,
    pub from: usize,
    pub to: usize,
    pub len: usize,
}

/// A strategy for carving blocks out of a region.
pub trait BlockAllocator {
    fn name(&self) -> &'static str;
    fn capacity(&self) -> usize;
    fn alloc(&mut self, size: usize, align: usize) -> Result<BlockId, AllocError>;
    fn free(&mut self, id: BlockId) -> Result<(), AllocError>;
    fn block(&self, id: BlockId) -> Result<Block, AllocError>;
    fn stats(&self) -> AllocStats;
    /// The free ranges `(offset, len)` in address order (the memory map).
    fn free_ranges(&self) -> Vec<(usize, usize)>;
    /// Moves live blocks towards the start so that free space is one range
    /// (or as few as the strategy allows); ids stay valid.
    fn compact(&mut self) -> Vec<Move>;
}

pub(crate) fn check_request(size: usize, align: usize, max_align: usize) -> Result<(), AllocError> {
    if size == 0 {
        return Err(AllocError::ZeroSize);
    }
    if !align.is_power_of_two() || align > max_align {
        return Err(AllocError::BadAlign {
            align,
            max: max_align,
        });
    }
    Ok(())
}

pub(crate) fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// The id → block table with generations, shared by all strategies.
#[derive(Default, Clone)]
pub(crate) struct BlockTable {
    entries: Vec<Entry>,
    free_ids: Vec<u32>,
    pub requested: usize,
    pub allocated: usize,
    pub live: usize,
}

#[derive(Clone, Copy)]
struct Entry {
    generation: u32,
    live: bool,
    block: Block,
}

impl BlockTable {
    #[inline]
    pub fn insert(&mut self, block: Block) -> BlockId {
        self.requested += block.requested;
        self.allocated += block.size;
        self.live += 1;
        match self.free_ids.pop() {
            Some(index) => {
                let e = &mut self.entries[index as usize];
                e.live = true;
                e.block = block;
                BlockId {
                    index,
                    generation: e.generation,
                }
            }
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    live: true,
                    block,
                });
                BlockId {
                    index: self.entries.len() as u32 - 1,
                    generation: 0,
                }
            }
        }
    }

    #[inline]
    pub fn get(&self, id: BlockId) -> Result<Block, AllocError> {
        match self.entries.get(id.index as usize) {
            Some(e) if e.live && e.generation == id.generation => Ok(e.block),
            _ => Err(AllocError::Stale(id)),
        }
    }

    /// Ends the block's life: later uses of `id` are caught.
    #[inline]
    pub fn remove(&mut self, id: BlockId) -> Result<Block, AllocError> {
        let e = match self.entries.get_mut(id.index as usize) {
            Some(e) if e.live && e.generation == id.generation => e,
            _ => return Err(AllocError::Stale(id)),
        };
        e.live = false;
        e.generation = e.generation.wrapping_add(1);
        self.free_ids.push(id.index);
        self.requested -= e.block.requested;
        self.allocated -= e.block.size;
        self.live -= 1;
        Ok(e.block)
    }

    pub fn set_offset(&mut self, id: BlockId, offset: usize) {
        self.entries[id.index as usize].block.offset = offset;
    }

    /// Live blocks with their ids, in address order.
    pub fn live_by_offset(&self) -> Vec<(BlockId, Block)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.live)
            .map(|(i, e)| {
                (
                    BlockId {
                        index: i as u32,
                        generation: e.generation,
                    },
                    e.block,
                )
            })
            .collect();
        v.sort_by_key(|(_, b)| b.offset);
        v
    }
}
