//! An arena: one block allocator plus the memory it carves, allocated once
//! (aligned to 4 KiB) and returned to the system when the arena is dropped.
//! Blocks are reached through their ids; `compact` moves the bytes of the
//! blocks the allocator relocated, so ids (relocatable handles) stay valid.

use super::block::{AllocError, AllocStats, BlockAllocator, BlockId};
use std::alloc::{self, Layout};
use std::ptr::NonNull;

pub const ARENA_ALIGN: usize = 4096;

pub struct Arena<A: BlockAllocator> {
    allocator: A,
    base: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the arena owns its memory exclusively (like a Box<[u8]>); the
// allocator is plain data.
unsafe impl<A: BlockAllocator + Send> Send for Arena<A> {}
// SAFETY: shared access only reads (`bytes`); writes need `&mut self`.
unsafe impl<A: BlockAllocator + Sync> Sync for Arena<A> {}

impl<A: BlockAllocator> Arena<A> {
    pub fn new(allocator: A) -> Self {
        let size = allocator.capacity().max(1);
        let layout = Layout::from_size_align(size, ARENA_ALIGN).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self {
            allocator,
            base,
            layout,
        }
    }

    pub fn allocator(&self) -> &A {
        &self.allocator
    }

    pub fn alloc(&mut self, size: usize, align: usize) -> Result<BlockId, AllocError> {
        self.allocator.alloc(size, align)
    }

    pub fn free(&mut self, id: BlockId) -> Result<(), AllocError> {
        self.allocator.free(id)
    }

    pub fn stats(&self) -> AllocStats {
        self.allocator.stats()
    }

    /// The block's requested bytes.
    pub fn bytes(&self, id: BlockId) -> Result<&[u8], AllocError> {
        let b = self.allocator.block(id)?;
        assert!(
            b.offset + b.size <= self.layout.size(),
            "block outside its arena"
        );
        // SAFETY: the block lies inside the arena's allocation (checked
        // above); `&self` excludes writers, which need `&mut self`.
        Ok(unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(b.offset), b.requested) })
    }

    /// The block's requested bytes, writable.
    pub fn bytes_mut(&mut self, id: BlockId) -> Result<&mut [u8], AllocError> {
        let b = self.allocator.block(id)?;
        assert!(
            b.offset + b.size <= self.layout.size(),
            "block outside its arena"
        );
        // SAFETY: inside the allocation (checked); `&mut self` makes this
        // the only reference into the arena; live blocks never overlap.
        Ok(
            unsafe {
                std::slice::from_raw_parts_mut(self.base.as_ptr().add(b.offset), b.requested)
            },
        )
    }

    /// The block's address (valid until the next `compact`).
    pub fn ptr(&self, id: BlockId) -> Result<NonNull<u8>, AllocError> {
        let b = self.allocator.block(id)?;
        // SAFETY: the offset is inside the allocation, so the pointer is too.
        Ok(unsafe { NonNull::new_unchecked(self.base.as_ptr().add(b.offset)) })
    }

    /// Compacts when external fragmentation has passed `threshold`
    /// (0..1); returns how many blocks moved, if it ran.
    pub fn compact_if(&mut self, threshold: f64) -> Option<usize> {
        (self.stats().external_fragmentation() > threshold).then(|| self.compact())
    }

    /// Compacts the allocator and moves the bytes along; returns how many
    /// blocks moved.
    pub fn compact(&mut self) -> usize {
        let moves = self.allocator.compact();
        let size = self.layout.size();
        // SAFETY: `&mut self`: nothing else reads or writes the arena.
        let mem = unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), size) };
        let saved: Vec<Vec<u8>> = moves
            .iter()
            .map(|m| mem[m.from..m.from + m.len].to_vec())
            .collect();
        for (m, data) in moves.iter().zip(saved) {
            mem[m.to..m.to + m.len].copy_from_slice(&data);
        }
        moves.len()
    }
}

impl<A: BlockAllocator> Drop for Arena<A> {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}
