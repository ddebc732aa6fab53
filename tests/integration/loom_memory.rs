//! Loom model check of the pool buffers' reference count (the file the
//! library uses, compiled against loom's atomics).

#![allow(dead_code)]

mod sync {
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering, fence};
}

#[path = "../../src/memory/refcount.rs"]
mod refcount;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use refcount::RefCount;

struct Buf {
    refs: RefCount,
    data: UnsafeCell<u32>,
    /// One cell per handle in the first test.
    parts: [UnsafeCell<u32>; 2],
    reused: AtomicUsize,
}

fn buf() -> Arc<Buf> {
    Arc::new(Buf {
        refs: RefCount::new(),
        data: UnsafeCell::new(0),
        parts: [UnsafeCell::new(0), UnsafeCell::new(0)],
        reused: AtomicUsize::new(0),
    })
}

/// Two handles dropped on two threads, each after writing: exactly one
/// drop is the last, and it sees both writes before it reuses the buffer
/// (loom's cell checks the accesses are ordered, not racing).
#[test]
fn the_last_release_is_unique_and_sees_every_handles_writes() {
    loom::model(|| {
        let buf = buf();
        buf.refs.start();
        buf.refs.add();
        let release = |buf: Arc<Buf>, k: usize| {
            // Each handle writes its own part, then lets go.
            // SAFETY: each handle writes only its own part; loom checks the
            // accesses are ordered.
            buf.parts[k].with_mut(|d| unsafe { *d = k as u32 + 1 });
            if buf.refs.release() {
                // The last one reuses the buffer: it must see both writes
                // (loom reports a data race if the reads are not ordered
                // after them).
                // SAFETY: the last handle alone reads; loom reports it if
                // the reads are not ordered after the writes.
                let sum: u32 = buf.parts.iter().map(|p| p.with(|d| unsafe { *d })).sum();
                assert_eq!(sum, 3);
                buf.reused.fetch_add(1, Ordering::Relaxed);
            }
        };
        let other = {
            let buf = buf.clone();
            thread::spawn(move || release(buf, 0))
        };
        release(buf.clone(), 1);
        other.join().unwrap();
        assert_eq!(buf.reused.load(Ordering::Relaxed), 1);
        assert!(buf.refs.get() == 0);
    });
}

/// `is_unique` after the other handle's release sees that handle's write.
#[test]
fn a_unique_handle_sees_the_writes_of_handles_already_dropped() {
    loom::model(|| {
        let buf = buf();
        buf.refs.start();
        buf.refs.add();
        let other = {
            let buf = buf.clone();
            thread::spawn(move || {
                // The other handle writes and drops (not the last).
                // SAFETY: written before this handle lets go; loom checks it.
                buf.data.with_mut(|d| unsafe { *d = 7 });
                assert!(!buf.refs.release());
            })
        };
        loop {
            if buf.refs.is_unique() {
                // Now the bytes are ours alone, and the write is visible.
                // SAFETY: read only once the other handle let go (unique).
                let v = buf.data.with(|d| unsafe { *d });
                assert_eq!(v, 7);
                break;
            }
            thread::yield_now();
        }
        other.join().unwrap();
    });
}
