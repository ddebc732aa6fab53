//! `WorkerPool`: the threads, and the ways to hand them work — `install`,
//! `join`, `scope`, `parallel_for`, `for_each_mut`, `spawn` (detached, with
//! a handle) and task graphs (`graph.rs`).

use super::events::{EventBus, WorkerEvent};
use super::job::{Latch, StackJob, cached_job};
use super::latch::LockLatch;
use super::metrics::{PoolMetrics, WorkerSnapshot, bump};
use super::registry::{CountLatch, Registry, SpinLatch, WorkerThread};
use super::task::{Capabilities, Capability, Priority, TaskError, TaskSpec, panic_message};
use std::any::Any;
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// One worker to start: its name (shown in the metrics) and capabilities.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    pub name: String,
    pub capabilities: Capabilities,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("a worker pool needs at least one compute worker")]
    NoComputeWorker,
    #[error("no worker can run {0} tasks; give one worker that capability")]
    MissingCapability(&'static str),
    #[error("cannot start worker thread `{name}`: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
}

/// The project's job system. Dropping it waits for every submitted task to
/// finish (nothing queued is lost), then stops the threads.
pub struct WorkerPool {
    registry: Arc<Registry>,
    threads: Vec<JoinHandle<()>>,
    /// Unique in the process: tells two pools' metrics apart.
    id: u64,
}

/// I/O workers run at a lower OS priority (nice 10): on a machine with as
/// many compute workers as cores, signing and parsing for the chain then
/// take CPU time only when the frame's work leaves some.
fn yield_cpu_to_compute() {
    // SAFETY: gettid and setpriority act on this thread's scheduling
    // attributes only; they take no pointers.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

impl WorkerPool {
    /// `compute` workers (Management + Physics + Rendering) named
    /// `compute-N`, plus `io` workers (Blockchain) named `io-N`.
    pub fn new(compute: usize, io: usize) -> Result<Self, PoolError> {
        if compute == 0 {
            return Err(PoolError::NoComputeWorker);
        }
        let mut specs: Vec<WorkerSpec> = (0..compute)
            .map(|i| WorkerSpec {
                name: format!("compute-{i}"),
                capabilities: Capabilities::COMPUTE,
            })
            .collect();
        specs.extend((0..io).map(|i| WorkerSpec {
            name: format!("io-{i}"),
            capabilities: Capabilities::IO,
        }));
        Self::with_workers(specs)
    }

    /// One compute worker per core and one I/O worker.
    pub fn for_this_machine() -> Result<Self, PoolError> {
        Self::new(cores(), 1)
    }

    /// Starts exactly these workers.
    pub fn with_workers(specs: Vec<WorkerSpec>) -> Result<Self, PoolError> {
        if specs.is_empty() {
            return Err(PoolError::NoComputeWorker);
        }
        let pairs: Vec<_> = specs
            .iter()
            .map(|s| (s.name.clone(), s.capabilities))
            .collect();
        let (registry, deques) = Registry::new(&pairs);
        static POOLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut pool = WorkerPool {
            registry,
            threads: Vec::new(),
            id: POOLS.fetch_add(1, Ordering::Relaxed),
        };
        for (index, dq) in deques.into_iter().enumerate() {
            let reg = pool.registry.clone();
            let name = specs[index].name.clone();
            let io_only = !specs[index].capabilities.contains(Capability::Physics);
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    if io_only {
                        yield_cpu_to_compute();
                    }
                    WorkerThread::run(reg, index, dq)
                })
                .map_err(|source| PoolError::Spawn { name, source })?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Workers that can run `cap` tasks.
    pub fn workers_with(&self, cap: Capability) -> usize {
        self.registry.capable(cap).count()
    }

    /// Compute workers (those that run physics).
    pub fn compute_workers(&self) -> usize {
        self.workers_with(Capability::Physics)
    }

    pub fn worker_names(&self) -> Vec<String> {
        self.registry
            .workers
            .iter()
            .map(|w| w.name.clone())
            .collect()
    }

    pub fn events(&self) -> &EventBus {
        &self.registry.events
    }

    /// The index of the worker running the caller, when it is one of ours.
    pub fn current_worker(&self) -> Option<usize> {
        self.on_our_worker().map(|w| w.index)
    }

    fn on_our_worker(&self) -> Option<&WorkerThread> {
        WorkerThread::current().filter(|w| Arc::ptr_eq(&w.registry, &self.registry))
    }

    /// Runs `op` on a worker that has `cap` at `priority` and returns its
    /// result; inline when the caller already is such a worker.
    pub fn install<R: Send>(
        &self,
        cap: Capability,
        priority: Priority,
        op: impl FnOnce() -> R + Send,
    ) -> R {
        if let Some(w) = self.on_our_worker()
            && w.info().caps.contains(cap)
        {
            return op();
        }
        assert!(
            self.registry.has_capability(cap),
            "no worker can run {} tasks",
            cap.name()
        );
        let job = StackJob::new(op, LockLatch::new());
        // SAFETY: `job` stays on this frame until `wait` returns, which is
        // after the job set its latch as its last act.
        let job_ref = unsafe { job.as_job_ref() };
        let _waiting = self.registry.client_waits();
        self.registry.submit(job_ref, cap, priority, None);
        job.latch.wait();
        job.into_result()
    }

    /// Runs `op` on a compute worker unless the caller is already one of ours.
    fn on_worker<R: Send>(&self, op: impl FnOnce(&WorkerThread) -> R + Send) -> R {
        match self.on_our_worker() {
            Some(w) => op(w),
            None => self.install(Capability::Physics, Priority::Normal, || {
                op(WorkerThread::current().expect("install runs on a worker"))
            }),
        }
    }

    /// Runs both closures, potentially in parallel, and returns both results.
    /// A panic in either is resumed here after both finished.
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        self.on_worker(|w| join_on(w, a, b))
    }

    /// Runs `f`, which may spawn tasks borrowing from the caller; returns
    /// when all of them have finished.
    pub fn scope<'scope, R: Send>(&self, f: impl FnOnce(&Scope<'scope>) -> R + Send) -> R {
        self.on_worker(|w| scope_on(w, f))
    }

    /// Calls `f` on pieces of `range` in parallel, splitting adaptively (more
    /// pieces when workers steal) but never below `min_grain` items.
    pub fn parallel_for(
        &self,
        range: Range<usize>,
        min_grain: usize,
        f: impl Fn(Range<usize>) + Sync,
    ) {
        if range.is_empty() {
            return;
        }
        self.on_worker(|w| {
            let splits = w.team_size();
            split_range(range, min_grain.max(1), splits, &f)
        })
    }

    /// Calls `f` once per item in parallel (items are the grains: chunks of
    /// columns, stripes, tiles).
    pub fn for_each_mut<T: Send>(&self, items: &mut [T], f: impl Fn(&mut T) + Sync) {
        if items.is_empty() {
            return;
        }
        self.on_worker(|w| {
            let splits = w.team_size();
            split_items(items, splits, &f)
        })
    }

    /// Calls `f(offset, chunk)` on pieces of `data` in parallel, split
    /// adaptively like `parallel_for` but never below `min_grain` elements.
    /// `offset` is the chunk's first index in `data`.
    pub fn for_each_chunk_mut<T: Send>(
        &self,
        data: &mut [T],
        min_grain: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        if data.is_empty() {
            return;
        }
        self.on_worker(|w| {
            let splits = w.team_size();
            split_slice(data, 0, min_grain.max(1), splits, &f)
        })
    }

    /// Queues a detached task; its result comes through the handle.
    pub fn spawn<T: Send + 'static>(
        &self,
        spec: TaskSpec,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> TaskHandle<T> {
        assert!(
            self.registry.has_capability(spec.capability),
            "no worker can run {} tasks",
            spec.capability.name()
        );
        let slot = Arc::new(HandleSlot::default());
        let out = slot.clone();
        let registry = self.registry.clone();
        let name = spec.name.clone();
        let affinity = spec.affinity;
        let capability = spec.capability;
        let body = move || {
            let result = run_reporting(&registry, &name, capability, affinity, f);
            out.fill(result);
        };
        // SAFETY: the closure is 'static (owns everything it uses).
        let job = unsafe { cached_job(&self.registry, body) };
        self.registry
            .submit(job, spec.capability, spec.priority, spec.affinity);
        TaskHandle { slot }
    }

    /// Queues a top-level job on a given worker (placement).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Each worker's job-cache figures (hits, misses, remote frees, pages):
    /// the memory system's worker-local slab caches, which the pool's boxed
    /// jobs come from.
    pub fn cache_stats(&self) -> Vec<crate::memory::CacheStats> {
        self.registry
            .cache
            .as_ref()
            .map(|c| c.stats())
            .unwrap_or_default()
    }

    /// Graph tasks that finished at or after `since_ns` (pool time), oldest
    /// first: which task ran on which worker, when.
    pub fn recent_tasks(&self, since_ns: u64) -> Vec<super::TaskRecord> {
        self.registry
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.end_ns >= since_ns)
            .cloned()
            .collect()
    }

    /// Like `recent_tasks` without the names (cheap enough for every frame):
    /// (worker, capability, start ns, end ns).
    pub fn recent_spans(&self, since_ns: u64) -> Vec<(usize, Capability, u64, u64)> {
        self.registry
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .take_while(|r| r.end_ns >= since_ns)
            .map(|r| (r.worker, r.capability, r.start_ns, r.end_ns))
            .collect()
    }

    /// Nanoseconds since the pool started (the clock of task records).
    pub fn now_ns(&self) -> u64 {
        self.registry.now_ns()
    }

    /// The job caches' page map (true: held by a worker), if there is one.
    pub fn cache_page_map(&self) -> Vec<bool> {
        self.registry
            .cache
            .as_ref()
            .map(|c| c.page_map())
            .unwrap_or_default()
    }

    /// A snapshot of every worker's counters.
    pub fn metrics(&self) -> PoolMetrics {
        let reg = &*self.registry;
        PoolMetrics {
            pool: self.id,
            at_ns: reg.now_ns(),
            injector_depth: reg.injector_depth(),
            workers: reg
                .workers
                .iter()
                .map(|w| {
                    let m = &w.metrics;
                    WorkerSnapshot {
                        name: w.name.clone(),
                        capabilities: w.caps.to_string(),
                        tasks_run: m.tasks_run.load(Ordering::Relaxed),
                        tasks_stolen: m.tasks_stolen.load(Ordering::Relaxed),
                        tasks_failed: m.tasks_failed.load(Ordering::Relaxed),
                        busy_ns: m.busy_ns.load(Ordering::Relaxed),
                        queue_depth: w.queue_depth(),
                        asleep: w.sleeper.is_asleep(),
                        latency: m
                            .latency
                            .iter()
                            .map(|c| c.load(Ordering::Relaxed))
                            .collect(),
                    }
                })
                .collect(),
        }
    }

    /// Runs the per-task metrics bookkeeping of a top-level task `iters`
    /// times on worker 0's counters (for the benchmark that prices it).
    pub(crate) fn time_bookkeeping(&self, iters: usize) {
        let reg = &*self.registry;
        let m = &reg.workers[0].metrics;
        for _ in 0..iters {
            // `submit` stamps the task, its wrapper records the latency,
            // `execute` times the run.
            let submitted = reg.now_ns();
            m.record_latency(reg.now_ns().saturating_sub(submitted));
            let start = reg.now_ns();
            bump(&m.tasks_run, 1);
            bump(&m.tasks_stolen, 0);
            let end = reg.now_ns();
            bump(&m.busy_ns, end.saturating_sub(start));
        }
    }

    /// Waits for all submitted work, then stops the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.registry.wait_quiet();
        self.registry.terminate.store(true, Ordering::SeqCst);
        self.registry.wake_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The memory component a kind of work is charged to.
pub fn component_of(cap: Capability) -> crate::memory::Component {
    use crate::memory::Component;
    match cap {
        Capability::Management => Component::Game,
        Capability::Physics => Component::Physics,
        Capability::Rendering => Component::Render,
        Capability::Blockchain => Component::Chain,
    }
}

/// Runs a named task body: records its affinity, catches a panic and
/// reports it (metrics, event bus).
pub(crate) fn run_reporting<T>(
    registry: &Registry,
    name: &str,
    capability: Capability,
    affinity: Option<u64>,
    f: impl FnOnce() -> T,
) -> Result<T, TaskError> {
    let worker = WorkerThread::current().map(|w| w.index);
    // The heap the task allocates is charged to its kind of work.
    let _tag = crate::memory::enter(component_of(capability));
    if let (Some(key), Some(w)) = (affinity, worker) {
        registry.note_affinity(key, w);
    }
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = panic_message(&*payload);
        let worker_name = match worker {
            Some(w) => {
                bump(&registry.workers[w].metrics.tasks_failed, 1);
                registry.workers[w].name.clone()
            }
            None => "(outside the pool)".to_string(),
        };
        registry.events.publish(WorkerEvent::TaskFailed {
            task: name.to_string(),
            worker: worker_name,
            message: message.clone(),
        });
        TaskError::Panicked {
            task: name.to_string(),
            message,
        }
    })
}

fn join_on<A, B, RA, RB>(w: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let level = w.priority();
    let job_b = StackJob::new(b, SpinLatch::new(w));
    // SAFETY: `job_b` stays on this frame until it is either popped back
    // (and run here) or seen finished through its latch; both paths below
    // end that way even when `a` panics.
    let ref_b = unsafe { job_b.as_job_ref() };
    let id_b = ref_b.id();
    w.push(ref_b);
    let ra = panic::catch_unwind(AssertUnwindSafe(a));
    w.run_critical_first();
    loop {
        if job_b.latch.core.probe() {
            break;
        }
        match w.pop_local(level) {
            Some(job) if job.id() == id_b => {
                // Nobody took it: run it here (or drop it if `a` panicked).
                return match ra {
                    Ok(ra) => (ra, job_b.run_inline()),
                    Err(p) => panic::resume_unwind(p),
                };
            }
            Some(other) => w.execute(other, false, level),
            None => {
                w.wait_until(&job_b.latch.core);
                break;
            }
        }
    }
    let rb = job_b.into_result();
    match ra {
        Ok(ra) => (ra, rb),
        Err(p) => panic::resume_unwind(p),
    }
}

fn split_range(
    range: Range<usize>,
    grain: usize,
    splits: usize,
    f: &(impl Fn(Range<usize>) + Sync),
) {
    if range.len() <= grain || splits == 0 {
        f(range);
        return;
    }
    let w = WorkerThread::current().expect("split_range runs on a worker");
    let owner = w.index;
    let mid = range.start + range.len() / 2;
    let (left, right) = (range.start..mid, mid..range.end);
    join_on(
        w,
        || split_range(left, grain, splits / 2, f),
        || split_range(right, grain, next_splits(owner, splits), f),
    );
}

fn split_items<T: Send>(items: &mut [T], splits: usize, f: &(impl Fn(&mut T) + Sync)) {
    if items.len() == 1 || splits == 0 {
        items.iter_mut().for_each(f);
        return;
    }
    let w = WorkerThread::current().expect("split_items runs on a worker");
    let owner = w.index;
    let mid = items.len() / 2;
    let (left, right) = items.split_at_mut(mid);
    join_on(
        w,
        || split_items(left, splits / 2, f),
        || split_items(right, next_splits(owner, splits), f),
    );
}

fn split_slice<T: Send>(
    data: &mut [T],
    offset: usize,
    grain: usize,
    splits: usize,
    f: &(impl Fn(usize, &mut [T]) + Sync),
) {
    if data.len() <= grain || splits == 0 {
        f(offset, data);
        return;
    }
    let w = WorkerThread::current().expect("split_slice runs on a worker");
    let owner = w.index;
    let mid = data.len() / 2;
    let (left, right) = data.split_at_mut(mid);
    join_on(
        w,
        || split_slice(left, offset, grain, splits / 2, f),
        || split_slice(right, offset + mid, grain, next_splits(owner, splits), f),
    );
}

/// Halve the split budget, but refill it when the half was stolen: a thief
/// means a worker ran dry, so finer pieces are worth it (rayon's heuristic).
fn next_splits(owner: usize, splits: usize) -> usize {
    match WorkerThread::current() {
        Some(w) if w.index != owner => (splits / 2).max(w.team_size()),
        _ => splits / 2,
    }
}

/// Tasks spawned in a scope may borrow anything that outlives it.
pub struct Scope<'scope> {
    latch: CountLatch,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    marker: PhantomData<fn(&'scope ()) -> &'scope ()>,
}

impl<'scope> Scope<'scope> {
    /// Queues `f` on the spawning worker's deque (peers steal it).
    pub fn spawn(&self, f: impl FnOnce(&Scope<'scope>) + Send + 'scope) {
        let w = WorkerThread::current().expect("a scope runs on a worker");
        self.latch.increment();
        let scope = self as *const Scope<'scope> as usize;
        let body = move || {
            // SAFETY: the scope waits for its latch, which this job
            // decrements as its last act, so `scope` is alive here.
            let scope = unsafe { &*(scope as *const Scope<'scope>) };
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| f(scope))) {
                let mut slot = scope.panic.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(p);
            }
            // SAFETY: the latch lives in the scope, alive until set.
            unsafe { CountLatch::set(&scope.latch) };
        };
        // SAFETY: the job borrows 'scope data; `scope_on` waits for every
        // spawned job before the scope (and 'scope) ends.
        let job = unsafe { cached_job(&w.registry, body) };
        w.push(job);
    }
}

fn scope_on<'scope, R: Send>(w: &WorkerThread, f: impl FnOnce(&Scope<'scope>) -> R) -> R {
    let scope = Scope {
        latch: CountLatch::new(w),
        panic: Mutex::new(None),
        marker: PhantomData,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    // The body's own count.
    // SAFETY: `scope` is alive; other holders are jobs that we wait for next.
    unsafe { CountLatch::set(&scope.latch) };
    w.wait_until(&scope.latch.latch.core);
    if let Some(p) = scope.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
        panic::resume_unwind(p);
    }
    match result {
        Ok(r) => r,
        Err(p) => panic::resume_unwind(p),
    }
}

/// Where a detached task's result lands (a one-shot channel).
struct HandleSlot<T> {
    value: Mutex<Option<Result<T, TaskError>>>,
    ready: Condvar,
}

impl<T> Default for HandleSlot<T> {
    fn default() -> Self {
        Self {
            value: Mutex::new(None),
            ready: Condvar::new(),
        }
    }
}

impl<T> HandleSlot<T> {
    fn fill(&self, v: Result<T, TaskError>) {
        super::registry::WorkerThread::count_busy_before_handover();
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
        self.ready.notify_all();
    }
}

/// The result of a task queued with [`WorkerPool::spawn`].
pub struct TaskHandle<T> {
    slot: Arc<HandleSlot<T>>,
}

impl<T> TaskHandle<T> {
    /// Blocks until the task finished.
    pub fn join(self) -> Result<T, TaskError> {
        let mut v = self.slot.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = v.take() {
                return r;
            }
            v = self.slot.ready.wait(v).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub fn is_finished(&self) -> bool {
        self.slot
            .value
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}
