//! Loom model checks of the scheduler's lock-free parts: the very files the
//! library uses (`latch.rs`, `sleep.rs`), compiled here against loom's
//! atomics, mutexes and condvars. loom explores every interleaving (and
//! weak-memory outcome it models); a lost wake-up shows up as a deadlock.

#![allow(dead_code)]

mod sync {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
    pub(crate) use loom::sync::{Condvar, Mutex};
}

#[path = "../../src/workers/latch.rs"]
mod latch;
#[path = "../../src/workers/sleep.rs"]
mod sleep;

use latch::{CoreLatch, Countdown, LockLatch};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use sleep::Sleeper;

/// A worker parks unless work appeared; a producer publishes work and wakes
/// it. In no interleaving may the worker sleep through the work.
#[test]
fn a_parking_worker_never_misses_published_work() {
    loom::model(|| {
        let sleeper = Arc::new(Sleeper::new());
        let work = Arc::new(AtomicBool::new(false));
        let worker = {
            let (sleeper, work) = (sleeper.clone(), work.clone());
            thread::spawn(move || {
                while !work.load(Ordering::SeqCst) {
                    sleeper.sleep_unless(|| work.load(Ordering::SeqCst));
                }
            })
        };
        work.store(true, Ordering::SeqCst);
        sleeper.wake();
        worker.join().unwrap();
    });
}

/// The join protocol: the owner waits on a latch (parking when idle); the
/// thief that ran the stolen half sets the latch, then wakes the owner.
#[test]
fn a_latch_set_by_a_thief_always_releases_its_owner() {
    loom::model(|| {
        let latch = Arc::new(CoreLatch::new());
        let sleeper = Arc::new(Sleeper::new());
        let result = Arc::new(AtomicUsize::new(0));
        let thief = {
            let (latch, sleeper, result) = (latch.clone(), sleeper.clone(), result.clone());
            thread::spawn(move || {
                result.store(42, Ordering::Relaxed);
                latch.set();
                sleeper.wake();
            })
        };
        while !latch.probe() {
            sleeper.sleep_unless(|| latch.probe());
        }
        // The release/acquire pair makes the thief's result visible.
        assert_eq!(result.load(Ordering::Relaxed), 42);
        thief.join().unwrap();
    });
}

/// Graph predecessors and scope counts: of concurrent decrements, exactly
/// one sees zero, and it sees every other thread's writes.
#[test]
fn exactly_one_decrement_reaches_zero_and_sees_the_others_work() {
    loom::model(|| {
        let count = Arc::new(Countdown::new(3));
        let written = Arc::new(AtomicUsize::new(0));
        let zeros = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (count, written, zeros) = (count.clone(), written.clone(), zeros.clone());
                thread::spawn(move || {
                    written.fetch_add(1, Ordering::Relaxed);
                    if count.decrement() {
                        assert_eq!(written.load(Ordering::Relaxed), 2);
                        zeros.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        // The owner's own count (as a scope body does).
        if count.decrement() {
            assert_eq!(written.load(Ordering::Relaxed), 2);
            zeros.fetch_add(1, Ordering::Relaxed);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(zeros.load(Ordering::Relaxed), 1);
    });
}

/// A thread outside the pool blocks on a lock latch until a worker sets it.
#[test]
fn a_lock_latch_wakes_its_blocked_waiter() {
    loom::model(|| {
        let latch = Arc::new(LockLatch::new());
        let setter = {
            let latch = latch.clone();
            thread::spawn(move || latch.set())
        };
        latch.wait();
        setter.join().unwrap();
    });
}
