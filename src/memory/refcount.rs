//! The reference count behind a pool buffer handle: the last release is
//! told so and sees every write made through the other handles (release
//! decrements, an acquire fence before reuse), as `Arc` does.
//!
//! This file uses only `super::sync`, so the loom tests can check it.

use super::sync::{AtomicUsize, Ordering, fence};

pub(crate) struct RefCount {
    refs: AtomicUsize,
}

impl RefCount {
    pub fn new() -> Self {
        Self {
            refs: AtomicUsize::new(0),
        }
    }

    /// The first handle of a buffer just taken from the free list (the
    /// pool's mutex orders it after the previous owner's release).
    pub fn start(&self) {
        self.refs.store(1, Ordering::Relaxed);
    }

    pub fn add(&self) {
        self.refs.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops one reference; true for the last, which may then reuse the
    /// buffer.
    pub fn release(&self) -> bool {
        if self.refs.fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            true
        } else {
            false
        }
    }

    /// Exactly one reference (Acquire: every other handle's writes and
    /// drops happened before).
    pub fn is_unique(&self) -> bool {
        self.refs.load(Ordering::Acquire) == 1
    }

    pub fn get(&self) -> usize {
        self.refs.load(Ordering::Acquire)
    }
}
