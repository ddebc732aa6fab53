//! The memory system: where every frequent allocation of the game comes
//! from, and the figures that explain memory byte by byte.
//!
//! - `block`: the one contract of a block allocator over a region (offsets,
//!   relocatable `BlockId`s with generations, the shared definition of
//!   fragmentation) — implemented by `free_list` (first-fit, best-fit),
//!   `buddy` and `slab` (size classes); `arena` pairs one with real memory
//!   and moves bytes when it compacts.
//! - `cache`: worker-local magazines in front of a shared slab.
//! - `column_space`: the mapped region the particle columns live in, placed
//!   by the strategy the player picks (the other strategies shadow it).
//! - `pool`: the adaptive buffer pool — fixed-size buffers behind
//!   reference-counted handles, geometric growth under a budget, decay back
//!   to the OS, priority-based refusal.
//! - `ledger`: bytes per component (physics, render, chain, overlay, game,
//!   other) and budgets; `tracking`: the global-allocator wrapper that
//!   attributes the Rust heap to the current component.
//! - `sites`: call-site hotspots and both kinds of leak detection.
//! - `snapshot`: all of it as plain data, sampled once per frame.
//!
//! Unsafe code lives in `arena` (the region), `pool` and `cache` (mapped
//! buffers, handles), `column_space` (the columns' lines) and `tracking`
//! (the allocator header); each block says
//! why it is sound, and `scripts/test` runs these tests under valgrind.

pub mod arena;
pub mod block;
pub mod buddy;
pub mod cache;
pub mod column_space;
pub mod free_list;
pub mod ledger;
pub mod os;
pub mod pool;
mod refcount;
pub mod sites;
pub mod slab;
pub mod snapshot;
mod sync;
pub mod tracking;

pub use arena::Arena;
pub use block::{AllocError, AllocStats, Block, BlockAllocator, BlockId, Move};
pub use buddy::Buddy;
pub use cache::{CacheBlock, CacheStats, LocalCache, SlabCache};
pub use column_space::{ColumnSpace, LineBuf};
pub use free_list::{BestFit, FirstFit};
pub use ledger::{Component, ComponentTotals, LEDGER, enter};
pub use pool::{Buffer, BufferPool, PoolConfig, PoolError, PoolStats, Urgency};
pub use sites::{Hotspot, LeakWarning, SITES};
pub use slab::Slab;
pub use snapshot::{MemorySnapshot, Sampler};
pub use tracking::TrackingAlloc;

#[cfg(test)]
mod tests;
