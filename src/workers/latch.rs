//! Latches: one-shot signals that a waiter checks or blocks on.
//!
//! - [`CoreLatch`]: a flag a worker polls between jobs (the worker's sleeper
//!   is woken separately after setting it, see `registry::SpinLatch`).
//! - [`LockLatch`]: a flag a thread outside the pool blocks on.
//! - [`Countdown`]: counts outstanding work; exactly one decrement sees zero
//!   (scopes and task-graph predecessors).
//!
//! This file uses only `super::sync`, so the loom tests can check it.

use super::sync::{AtomicBool, AtomicUsize, Condvar, Mutex, Ordering};

pub(crate) struct CoreLatch {
    set: AtomicBool,
}

impl CoreLatch {
    pub fn new() -> Self {
        Self {
            set: AtomicBool::new(false),
        }
    }

    #[inline]
    pub fn probe(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Sets the flag. SeqCst, so that a later check of a sleeper's `asleep`
    /// flag cannot be ordered before it (see `sleep::Sleeper`).
    #[inline]
    pub fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
    }
}

/// A latch for a thread that is not a worker: it blocks on a condvar.
pub(crate) struct LockLatch {
    done: Mutex<bool>,
    cv: Condvar,
}

impl LockLatch {
    pub fn new() -> Self {
        Self {
            done: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    pub fn set(&self) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        *done = true;
        self.cv.notify_all();
    }

    pub fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = self.cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Outstanding work; the decrement that reaches zero is told so.
pub(crate) struct Countdown {
    left: AtomicUsize,
}

impl Countdown {
    pub fn new(n: usize) -> Self {
        Self {
            left: AtomicUsize::new(n),
        }
    }

    pub fn increment(&self) {
        self.left.fetch_add(1, Ordering::Relaxed);
    }

    /// True for exactly one caller: the one that takes the count to zero.
    /// AcqRel, so that caller sees everything the others did before.
    pub fn decrement(&self) -> bool {
        self.left.fetch_sub(1, Ordering::AcqRel) == 1
    }
}
