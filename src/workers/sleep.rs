//! Parking an idle worker without losing a wake-up.
//!
//! The sleeper announces itself (`asleep = true`), then checks once more for
//! work; whoever publishes work (pushes a job, sets a latch) does so and then
//! checks `asleep`. Both sides put a SeqCst fence between their store and
//! their load, so at least one of them sees the other: either the sleeper
//! finds the work, or the publisher finds the sleeper and wakes it. The
//! sleeper holds `woken`'s mutex from before it announces itself until the
//! condvar releases it, so a wake cannot slip in between check and wait.
//!
//! This file uses only `super::sync`, so the loom tests can check it.

use super::sync::{AtomicBool, Condvar, Mutex, Ordering, fence};

pub(crate) struct Sleeper {
    asleep: AtomicBool,
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Sleeper {
    pub fn new() -> Self {
        Self {
            asleep: AtomicBool::new(false),
            woken: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// Parks the calling thread until [`Sleeper::wake`], unless `ready()`
    /// already holds after the thread announced itself. Returns whether it
    /// slept. May return without new work (a stale wake): callers rescan.
    pub fn sleep_unless(&self, ready: impl Fn() -> bool) -> bool {
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        self.asleep.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if ready() {
            self.asleep.store(false, Ordering::Relaxed);
            return false;
        }
        while !*woken {
            woken = self.cv.wait(woken).unwrap_or_else(|e| e.into_inner());
        }
        *woken = false;
        self.asleep.store(false, Ordering::Relaxed);
        true
    }

    /// Wakes the thread if it is parked or about to park. The caller must
    /// have published its work before (this fences). Returns whether the
    /// thread was asleep.
    pub fn wake(&self) -> bool {
        fence(Ordering::SeqCst);
        if !self.asleep.load(Ordering::SeqCst) {
            return false;
        }
        self.nudge_slow()
    }

    /// [`Sleeper::wake`] without the fence, for work that the publisher
    /// will run itself if nobody comes (the halves of a `join`, scope
    /// spawns): a missed wake-up there costs parallelism, never progress,
    /// and the fence would cost every fork.
    #[inline]
    pub fn nudge(&self) -> bool {
        if !self.asleep.load(Ordering::Relaxed) {
            return false;
        }
        self.nudge_slow()
    }

    #[cold]
    fn nudge_slow(&self) -> bool {
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        *woken = true;
        self.cv.notify_one();
        true
    }

    pub fn is_asleep(&self) -> bool {
        self.asleep.load(Ordering::Relaxed)
    }
}
