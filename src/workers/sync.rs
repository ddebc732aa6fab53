//! The synchronisation types that the scheduler's lock-free parts (`latch`,
//! `sleep`) are written against. The loom tests compile those files with
//! loom's types under the same names, so the model checks the real code.

pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
pub(crate) use std::sync::{Condvar, Mutex};
