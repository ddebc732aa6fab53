//! Jobs as the deques see them: a type-erased pointer plus the function
//! that runs it, so that `join` can keep its second closure on the stack
//! (no allocation per fork) and a task graph can borrow the caller's data.
//!
//! This is the one place in `workers/` that erases types and lifetimes. The
//! rule that keeps it sound: whoever makes a [`JobRef`] waits, before the
//! data it points to goes away, for a latch that the job sets as its very
//! last action (`join`, `scope` and `TaskGraph::run` all do).

use super::latch::{CoreLatch, LockLatch};
use super::registry::{Registry, WorkerThread};
use crate::memory::CacheBlock;
use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;

/// Two words, like rayon's: what a deque slot holds. The priority is the
/// level of the queue a job sits in; top-level bookkeeping (latency,
/// outstanding count) is wrapped around the job by `Registry::submit`.
pub(crate) struct JobRef {
    data: *const (),
    exec: unsafe fn(*const ()),
}

// SAFETY: a JobRef is only made from jobs whose closures are `Send`
// (`StackJob::as_job_ref` and `heap_job` require it), so running it on
// another thread is what the closure allows.
unsafe impl Send for JobRef {}

impl JobRef {
    /// Runs the job.
    ///
    /// # Safety
    /// Each JobRef is executed at most once, while its data is alive (the
    /// maker's latch guarantees the latter).
    pub unsafe fn execute(self) {
        // SAFETY: the caller runs this JobRef once, while its data is alive;
        // `exec` was made for exactly this `data`'s type.
        unsafe { (self.exec)(self.data) }
    }

    /// Identifies the job (its data's address) while it is queued.
    pub fn id(&self) -> *const () {
        self.data
    }
}

/// How a job ended.
pub(crate) enum JobResult<R> {
    Pending,
    Ok(R),
    Panic(Box<dyn Any + Send>),
}

impl<R> JobResult<R> {
    /// The value, or the panic resumed on the calling thread.
    pub fn into_return_value(self) -> R {
        match self {
            JobResult::Ok(r) => r,
            JobResult::Panic(p) => panic::resume_unwind(p),
            JobResult::Pending => unreachable!("a job's result was read before the job ran"),
        }
    }
}

/// Something that signals a job's completion, set as the job's last act.
pub(crate) trait Latch {
    /// # Safety
    /// `this` must be valid on entry; it may dangle as soon as the flag is
    /// stored (the waiter may return), so no implementation touches `*this`
    /// after that.
    unsafe fn set(this: *const Self);
}

impl Latch for LockLatch {
    unsafe fn set(this: *const Self) {
        // A thread that is not a worker waits on this latch and may read the
        // metrics as soon as it returns: count the busy time first.
        super::registry::WorkerThread::count_busy_before_handover();
        // SAFETY: valid on entry (caller's contract). The waiter can only
        // return after taking the mutex, which `set` holds until it is done.
        unsafe { (*this).set() }
    }
}

impl Latch for CoreLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: valid on entry; the store is the last access.
        unsafe { (*this).set() }
    }
}

/// A job living in its maker's stack frame.
pub(crate) struct StackJob<L, F, R> {
    pub latch: L,
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<JobResult<R>>,
}

impl<L: Latch + Sync, F: FnOnce() -> R + Send, R: Send> StackJob<L, F, R> {
    pub fn new(func: F, latch: L) -> Self {
        Self {
            latch,
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(JobResult::Pending),
        }
    }

    /// # Safety
    /// The caller keeps `self` alive and unmoved until the job has run and
    /// set the latch, or until it took the JobRef back from its deque.
    pub unsafe fn as_job_ref(&self) -> JobRef {
        JobRef {
            data: self as *const Self as *const (),
            exec: Self::execute,
        }
    }

    unsafe fn execute(this: *const ()) {
        // SAFETY: `this` came from `as_job_ref` on a live StackJob of this
        // exact type, and a JobRef runs once, so nobody else touches `func`
        // or `result` until the latch is set.
        unsafe {
            let this = &*(this as *const Self);
            let func = (*this.func.get()).take().expect("a stack job ran twice");
            *this.result.get() = match panic::catch_unwind(AssertUnwindSafe(func)) {
                Ok(r) => JobResult::Ok(r),
                Err(p) => JobResult::Panic(p),
            };
            Latch::set(&this.latch);
        }
    }

    /// Runs the closure here: the JobRef was taken back before anyone else
    /// could run it.
    pub fn run_inline(self) -> R {
        let func = self.func.into_inner().expect("a stack job ran twice");
        func()
    }

    /// The result after the latch was seen set.
    pub fn into_result(self) -> R {
        self.result.into_inner().into_return_value()
    }
}

// SAFETY: the cells are only touched by the one thread that runs the job and,
// after the latch is set (a release/acquire pair), by its maker.
unsafe impl<L: Sync, F: Send, R: Send> Sync for StackJob<L, F, R> {}

/// A job in a block of the making worker's slab cache (memory system),
/// with what is needed to free the block when the job runs.
#[repr(C)]
struct CachedJob<F> {
    registry: *const Registry,
    class: u8,
    owner: u8,
    f: F,
}

/// A job allocated from the current worker's slab cache when the caller is
/// one of `registry`'s workers and the closure fits a size class; boxed
/// otherwise. Freed when it runs.
///
/// # Safety
/// As `heap_job`; and the job must be queued in `registry`.
pub(crate) unsafe fn cached_job<'a, F: FnOnce() + Send + 'a>(registry: &Registry, f: F) -> JobRef {
    unsafe fn exec<F: FnOnce()>(data: *const ()) {
        // SAFETY: `data` is the CachedJob written below, run exactly once:
        // the closure is moved out, then the block is freed before it runs.
        unsafe {
            let p = data as *mut CachedJob<F>;
            let CachedJob {
                registry,
                class,
                owner,
                f,
            } = p.read();
            let block = CacheBlock::from_raw(NonNull::new_unchecked(p as *mut u8), class, owner);
            match WorkerThread::current().filter(|w| std::ptr::eq(&*w.registry, registry)) {
                Some(w) => w.free_job(block),
                None => {
                    // The registry outlives its queued jobs (its workers hold it).
                    if let Some(cache) = &(*registry).cache {
                        cache.give_back(block);
                    }
                }
            }
            f();
        }
    }
    let fits = size_of::<CachedJob<F>>() <= crate::memory::slab::MAX_CLASS
        && align_of::<CachedJob<F>>() <= 16;
    if fits
        && let Some(w) = WorkerThread::current().filter(|w| std::ptr::eq(&*w.registry, registry))
        && let Some(block) = w.alloc_job(size_of::<CachedJob<F>>())
    {
        let (ptr, class, owner) = block.into_raw();
        let p = ptr.as_ptr() as *mut CachedJob<F>;
        // SAFETY: the block is at least `size_of::<CachedJob<F>>()` bytes,
        // aligned to its class size (≥ 16 ≥ the alignment checked above),
        // and owned by this job alone until `exec` frees it.
        unsafe {
            p.write(CachedJob {
                registry,
                class,
                owner,
                f,
            })
        };
        return JobRef {
            data: p as *const (),
            exec: exec::<F>,
        };
    }
    // SAFETY: the caller's contract is `heap_job`'s.
    unsafe { heap_job(f) }
}

/// A boxed job, freed when it runs.
///
/// # Safety
/// `f` may borrow data (`'a`): the caller must guarantee that the JobRef is
/// executed before that data goes away (its scope or graph waits for it).
pub(crate) unsafe fn heap_job<'a, F: FnOnce() + Send + 'a>(f: F) -> JobRef {
    unsafe fn exec<F: FnOnce()>(data: *const ()) {
        // SAFETY: `data` is the Box::into_raw below, executed exactly once.
        let f = unsafe { Box::from_raw(data as *mut F) };
        f();
    }
    JobRef {
        data: Box::into_raw(Box::new(f)) as *const (),
        exec: exec::<F>,
    }
}
