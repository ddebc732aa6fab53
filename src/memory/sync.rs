//! The synchronisation types `refcount` is written against; the loom tests
//! compile it with loom's versions of the same names.

pub(crate) use std::sync::atomic::{AtomicUsize, Ordering, fence};
