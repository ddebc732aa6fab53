//! The registry: the workers, their queues, and how a worker finds, runs and
//! waits for work.
//!
//! Queues, per priority level (frame-critical, normal, background):
//! - each worker's own deque (LIFO for its owner, FIFO for thieves): the
//!   halves of `join`, scope spawns, split ranges;
//! - each worker's mailbox: tasks sent to it by affinity or placement;
//! - one injector per capability: tasks from outside and graph tasks.
//!
//! A worker looks for work priority level by priority level: its deque, its
//! mailbox, the injectors of its capabilities, then its peers' deques and
//! mailboxes (peers = workers with the same capabilities, so anything
//! stolen can be run). Higher levels are always emptied first. Idle workers
//! spin a little, then park on their `Sleeper` — except that while a thread
//! outside the pool waits for a run (a frame's physics step), the compute
//! workers keep searching for up to a millisecond: the run's next phase
//! comes within that, and waking parked workers for every phase cost more
//! than the phases themselves on many cores.

use super::events::{EventBus, WorkerEvent};
use super::job::{JobRef, Latch, cached_job};
use super::latch::{CoreLatch, Countdown};
use super::metrics::{WorkerMetrics, bump};
use super::sleep::Sleeper;
use super::task::{Capabilities, Capability, Priority};
use crate::memory::{CacheBlock, LocalCache, SlabCache};
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// Rounds of fruitless searching before an idle worker parks...
const SPIN_ROUNDS: u32 = 64;
/// ...or, for a compute worker while a thread outside the pool waits for a
/// run, time searching on after those rounds before it parks. A step's
/// serial stretches between its parallel phases are shorter than this; a
/// 16-core server spent half its grid time waking workers that had parked
/// in them.
const WAITED_ON_SPIN_NS: u64 = 1_000_000;
/// Address space for the workers' job caches (mapped lazily by the OS).
const JOB_CACHE_BYTES: usize = 16 << 20;
/// Affinity table size (a power of two): key hash → worker that last ran it.
const AFFINITY_SLOTS: usize = 4096;

type Levels<T> = [T; Priority::COUNT];

pub(crate) struct WorkerInfo {
    pub name: String,
    pub caps: Capabilities,
    /// Workers with the same capabilities, self excluded: those it steals from.
    pub peers: Vec<usize>,
    stealers: Levels<Stealer<JobRef>>,
    mailbox: Levels<Injector<JobRef>>,
    pub sleeper: CachePadded<Sleeper>,
    /// Running a task (not searching, not parked); written by its worker.
    pub busy: CachePadded<AtomicBool>,
    pub metrics: CachePadded<WorkerMetrics>,
}

impl WorkerInfo {
    pub fn queue_depth(&self) -> usize {
        self.stealers.iter().map(Stealer::len).sum::<usize>()
            + self.mailbox.iter().map(Injector::len).sum::<usize>()
    }
}

pub(crate) struct Registry {
    pub workers: Vec<WorkerInfo>,
    injectors: Vec<Levels<Injector<JobRef>>>,
    affinity: Box<[AtomicUsize]>,
    /// Frame-critical jobs queued anywhere: a cheap "look first" flag.
    critical_pending: AtomicUsize,
    /// Top-level jobs submitted and not finished (shutdown waits for zero).
    outstanding: AtomicUsize,
    /// Threads outside the pool blocked until a run of theirs finishes.
    waiting_clients: AtomicUsize,
    quiet: (Mutex<()>, Condvar),
    pub terminate: AtomicBool,
    pub events: EventBus,
    epoch: Instant,
    /// The last graph tasks that ran (for timelines), oldest first.
    pub recent: Mutex<std::collections::VecDeque<super::graph::TaskRecord>>,
    /// Where the workers' boxed jobs come from: one local slab cache per
    /// worker (none if the OS refused the mapping; then jobs are boxed).
    pub cache: Option<SlabCache>,
}

/// Whether a worker `idle_ns` past its spin rounds searches on:
/// only a compute worker, only while `clients` threads outside the pool
/// wait for a run, and only for `WAITED_ON_SPIN_NS`.
pub(crate) fn keeps_searching_for_clients(compute: bool, clients: usize, idle_ns: u64) -> bool {
    compute && clients > 0 && idle_ns < WAITED_ON_SPIN_NS
}

/// A worker's run of fruitless searches since it last ran or parked.
#[derive(Default)]
struct IdleSpell {
    rounds: u32,
    /// When the spin rounds ran out.
    rounds_spent_at: u64,
}

/// A thread outside the pool waiting for a run (`Registry::client_waits`).
pub(crate) struct ClientWait<'a>(&'a Registry);

impl Drop for ClientWait<'_> {
    fn drop(&mut self) {
        self.0.waiting_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

fn levels<T>(f: impl Fn() -> T) -> Levels<T> {
    [f(), f(), f()]
}

impl Registry {
    /// The registry and, for each worker, the owner ends of its deques.
    pub fn new(specs: &[(String, Capabilities)]) -> (Arc<Registry>, Vec<Levels<Worker<JobRef>>>) {
        let deques: Vec<Levels<Worker<JobRef>>> =
            specs.iter().map(|_| levels(Worker::new_lifo)).collect();
        let workers = specs
            .iter()
            .zip(&deques)
            .enumerate()
            .map(|(i, ((name, caps), dq))| WorkerInfo {
                name: name.clone(),
                caps: *caps,
                peers: (0..specs.len())
                    .filter(|&j| j != i && specs[j].1 == *caps)
                    .collect(),
                stealers: [dq[0].stealer(), dq[1].stealer(), dq[2].stealer()],
                mailbox: levels(Injector::new),
                sleeper: CachePadded::new(Sleeper::new()),
                busy: CachePadded::new(AtomicBool::new(false)),
                metrics: CachePadded::new(WorkerMetrics::default()),
            })
            .collect();
        let registry = Registry {
            workers,
            injectors: Capability::ALL
                .iter()
                .map(|_| levels(Injector::new))
                .collect(),
            affinity: (0..AFFINITY_SLOTS).map(|_| AtomicUsize::new(0)).collect(),
            critical_pending: AtomicUsize::new(0),
            outstanding: AtomicUsize::new(0),
            waiting_clients: AtomicUsize::new(0),
            quiet: (Mutex::new(()), Condvar::new()),
            terminate: AtomicBool::new(false),
            events: EventBus::default(),
            epoch: Instant::now(),
            cache: SlabCache::new(JOB_CACHE_BYTES, specs.len()).ok(),
            recent: Mutex::new(std::collections::VecDeque::new()),
        };
        (Arc::new(registry), deques)
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Marks the calling thread, from outside the pool, as waiting for a run
    /// until the guard drops: compute workers then search longer before
    /// parking.
    pub fn client_waits(&self) -> ClientWait<'_> {
        self.waiting_clients.fetch_add(1, Ordering::SeqCst);
        ClientWait(self)
    }

    /// Threads outside the pool waiting for a run now.
    pub fn waiting_clients(&self) -> usize {
        self.waiting_clients.load(Ordering::Relaxed)
    }

    pub fn has_capability(&self, cap: Capability) -> bool {
        self.workers.iter().any(|w| w.caps.contains(cap))
    }

    /// Workers that can run `cap`.
    pub fn capable(&self, cap: Capability) -> impl Iterator<Item = usize> + '_ {
        (0..self.workers.len()).filter(move |&i| self.workers[i].caps.contains(cap))
    }

    pub fn injector_depth(&self) -> usize {
        self.injectors.iter().flatten().map(Injector::len).sum()
    }

    #[inline]
    fn count_in(&self, level: Priority) {
        if level == Priority::FrameCritical {
            self.critical_pending.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[inline]
    fn count_out(&self, level: Priority) {
        if level == Priority::FrameCritical {
            self.critical_pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Queues a top-level job for any worker with `cap`, or for the worker
    /// that last ran `affinity`'s key when it can. Wakes a worker for it.
    /// The job is wrapped to record its submit-to-start latency and to count
    /// it out of `outstanding` when done.
    pub fn submit(&self, job: JobRef, cap: Capability, priority: Priority, affinity: Option<u64>) {
        let submitted = self.now_ns();
        let registry = self as *const Registry as usize;
        let wrapped = move || {
            // SAFETY: only this registry's workers run its jobs, and they
            // hold it alive.
            let registry = unsafe { &*(registry as *const Registry) };
            if let Some(w) = WorkerThread::current() {
                w.info()
                    .metrics
                    .record_latency(registry.now_ns().saturating_sub(submitted));
            }
            // SAFETY: the wrapper runs once, so the inner job runs once; its
            // maker keeps its data alive until it sets its latch.
            unsafe { job.execute() };
            registry.finish_top_level();
        };
        // SAFETY: the closure owns everything it uses ('static).
        let job = unsafe { cached_job(self, wrapped) };
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        self.count_in(priority);
        let target = affinity
            .and_then(|k| self.affine_worker(k))
            .filter(|&w| self.workers[w].caps.contains(cap));
        if let Some(w) = target {
            self.send_to(w, job, priority);
            return;
        }
        let level = priority.index();
        self.injectors[cap.index()][level].push(job);
        for w in self.capable(cap) {
            if self.workers[w].sleeper.wake() {
                break;
            }
        }
    }

    /// Puts a top-level job in worker `w`'s mailbox (counted by the caller
    /// or by `submit`) and wakes `w`, or a peer that can steal it.
    fn send_to(&self, w: usize, job: JobRef, priority: Priority) {
        self.workers[w].mailbox[priority.index()].push(job);
        if !self.workers[w].sleeper.wake() {
            self.wake_a_peer(w);
        }
    }

    fn wake_a_peer(&self, w: usize) {
        for &p in &self.workers[w].peers {
            if self.workers[p].sleeper.wake() {
                break;
            }
        }
    }

    fn slot(key: u64) -> usize {
        // Fibonacci hashing spreads sequential keys over the table.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize & (AFFINITY_SLOTS - 1)
    }

    pub fn affine_worker(&self, key: u64) -> Option<usize> {
        match self.affinity[Self::slot(key)].load(Ordering::Relaxed) {
            0 => None,
            w => Some(w - 1),
        }
    }

    pub fn note_affinity(&self, key: u64, worker: usize) {
        self.affinity[Self::slot(key)].store(worker + 1, Ordering::Relaxed);
    }

    fn finish_top_level(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _guard = self.quiet.0.lock().unwrap_or_else(|e| e.into_inner());
            self.quiet.1.notify_all();
        }
    }

    /// Blocks until no top-level job is queued or running.
    pub fn wait_quiet(&self) {
        let mut guard = self.quiet.0.lock().unwrap_or_else(|e| e.into_inner());
        while self.outstanding.load(Ordering::SeqCst) != 0 {
            guard = self.quiet.1.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub fn wake_all(&self) {
        for w in &self.workers {
            w.sleeper.wake();
        }
    }
}

/// A latch a worker waits on while it keeps working; setting it wakes that
/// worker if it parked.
pub(crate) struct SpinLatch {
    pub core: CoreLatch,
    /// The owner's registry. Only jobs queued in this registry set the latch,
    /// and they run on its workers, which hold it alive (`WorkerThread`'s Arc).
    registry: *const Registry,
    owner: usize,
}

// SAFETY: the pointer is only used to reach the registry, which is Sync and
// outlives every setter (see the field's comment).
unsafe impl Sync for SpinLatch {}
// SAFETY: as above; moving the latch does not touch the registry.
unsafe impl Send for SpinLatch {}

impl SpinLatch {
    pub fn new(owner: &WorkerThread) -> Self {
        Self {
            core: CoreLatch::new(),
            registry: &*owner.registry,
            owner: owner.index,
        }
    }
}

impl Latch for SpinLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: `this` is valid on entry. Copy out what the wake needs
        // before the store: once the flag is set, the owner may return and
        // free the latch. The registry outlives every worker thread that
        // could be running this (they hold it through an Arc).
        unsafe {
            let (registry, owner) = ((*this).registry, (*this).owner);
            (*this).core.set();
            let registry: &Registry = &*registry;
            registry.workers[owner].sleeper.wake();
        }
    }
}

/// A counter of outstanding jobs whose last decrement sets a `SpinLatch`.
pub(crate) struct CountLatch {
    count: Countdown,
    pub latch: SpinLatch,
}

impl CountLatch {
    pub fn new(owner: &WorkerThread) -> Self {
        Self {
            count: Countdown::new(1),
            latch: SpinLatch::new(owner),
        }
    }

    pub fn increment(&self) {
        self.count.increment();
    }
}

impl Latch for CountLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: valid on entry; the owner waits on `latch`, which is set
        // only by the last decrement, so `*this` lives until then.
        unsafe {
            if (*this).count.decrement() {
                SpinLatch::set(&(*this).latch);
            }
        }
    }
}

thread_local! {
    static CURRENT: Cell<*const WorkerThread> = const { Cell::new(std::ptr::null()) };
}

/// The state a worker thread keeps to itself.
pub(crate) struct WorkerThread {
    pub index: usize,
    pub registry: Arc<Registry>,
    deques: Levels<Worker<JobRef>>,
    priority: Cell<Priority>,
    depth: Cell<u32>,
    /// Since when the running outer task's busy time is not yet counted.
    busy_from: Cell<u64>,
    slept_ns: Cell<u64>,
    rotate: Cell<usize>,
    cache: RefCell<Option<LocalCache>>,
}

impl WorkerThread {
    /// A block for a job from this worker's cache.
    pub fn alloc_job(&self, bytes: usize) -> Option<CacheBlock> {
        self.cache
            .try_borrow_mut()
            .ok()?
            .as_mut()?
            .alloc(bytes)
            .ok()
    }

    /// Frees a job's block: into this worker's cache, or back to its
    /// owner when this worker's cache is busy or absent.
    pub fn free_job(&self, b: CacheBlock) {
        match self.cache.try_borrow_mut() {
            Ok(mut c) => match c.as_mut() {
                Some(c) => {
                    let _ = c.free(b);
                }
                None => {
                    if let Some(shared) = &self.registry.cache {
                        shared.give_back(b);
                    }
                }
            },
            Err(_) => {
                if let Some(shared) = &self.registry.cache {
                    shared.give_back(b);
                }
            }
        }
    }

    /// The worker running on this thread, if any.
    pub fn current<'a>() -> Option<&'a WorkerThread> {
        let ptr = CURRENT.with(Cell::get);
        // SAFETY: CURRENT is set by `run` to a WorkerThread that lives on
        // that thread's stack for as long as the pointer is set, and is
        // cleared before it goes away. `WorkerThread` is !Sync (it holds
        // Cells and deque owners), so the reference cannot leave the thread,
        // and every caller on the thread runs inside `run`'s lifetime.
        unsafe { ptr.as_ref() }
    }

    pub fn info(&self) -> &WorkerInfo {
        &self.registry.workers[self.index]
    }

    pub fn priority(&self) -> Priority {
        self.priority.get()
    }

    /// Workers that can take this worker's local jobs (itself included).
    pub fn team_size(&self) -> usize {
        self.info().peers.len() + 1
    }

    /// Pushes a job on the own deque at its priority and nudges a parked
    /// peer to steal it. Only for jobs this worker waits for (it runs them
    /// itself if no peer comes), so the cheap `nudge` is enough.
    #[inline]
    pub fn push(&self, job: JobRef) {
        let reg = &*self.registry;
        let level = self.priority.get();
        reg.count_in(level);
        self.deques[level.index()].push(job);
        for &p in &reg.workers[self.index].peers {
            if reg.workers[p].sleeper.nudge() {
                break;
            }
        }
    }

    /// Takes the newest job of the current level back off the own deque.
    #[inline]
    pub fn pop_local(&self, level: Priority) -> Option<JobRef> {
        let job = self.deques[level.index()].pop()?;
        self.registry.count_out(level);
        Some(job)
    }

    fn steal_from(q: &Injector<JobRef>) -> Option<JobRef> {
        loop {
            match q.steal() {
                Steal::Success(j) => return Some(j),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    fn steal_peer(s: &Stealer<JobRef>) -> Option<JobRef> {
        loop {
            match s.steal() {
                Steal::Success(j) => return Some(j),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// The next job at one priority level, and whether it was stolen.
    /// A peer's mailbox is raided only by a thief that has searched a while
    /// (`patient`) and only while that peer is busy running a task: an idle
    /// or parked owner (the sender wakes it) takes its mail itself, which is
    /// what affinity asks for.
    fn find_at(&self, level: usize, patient: bool) -> Option<(JobRef, bool)> {
        let reg = &*self.registry;
        let me = &reg.workers[self.index];
        if let Some(j) = self.deques[level].pop() {
            return Some((j, false));
        }
        if let Some(j) = Self::steal_from(&me.mailbox[level]) {
            return Some((j, false));
        }
        for cap in me.caps.iter() {
            if let Some(j) = Self::steal_from(&reg.injectors[cap.index()][level]) {
                return Some((j, false));
            }
        }
        let peers = &me.peers;
        if !peers.is_empty() {
            let start = self.rotate.get();
            self.rotate.set(start.wrapping_add(1));
            for k in 0..peers.len() {
                let p = &reg.workers[peers[(start + k) % peers.len()]];
                if let Some(j) = Self::steal_peer(&p.stealers[level]) {
                    return Some((j, true));
                }
                if patient
                    && p.busy.load(Ordering::Relaxed)
                    && let Some(j) = Self::steal_from(&p.mailbox[level])
                {
                    return Some((j, true));
                }
            }
        }
        None
    }

    /// The highest-priority job this worker may run.
    pub fn find_work(&self, idle_rounds: u32) -> Option<(JobRef, bool, Priority)> {
        let critical = self.registry.critical_pending.load(Ordering::Acquire) > 0;
        let first = if critical { 0 } else { 1 };
        let patient = idle_rounds >= SPIN_ROUNDS / 2;
        for level in &Priority::ALL[first..] {
            if let Some((job, stolen)) = self.find_at(level.index(), patient) {
                self.registry.count_out(*level);
                return Some((job, stolen, *level));
            }
        }
        None
    }

    /// Runs queued frame-critical jobs before going on with lower work.
    #[inline]
    pub fn run_critical_first(&self) {
        if self.priority.get() == Priority::FrameCritical
            || self.registry.critical_pending.load(Ordering::Acquire) == 0
        {
            return;
        }
        while let Some((job, stolen)) = self.find_at(0, true) {
            self.registry.count_out(Priority::FrameCritical);
            self.execute(job, stolen, Priority::FrameCritical);
        }
    }

    /// Whether any queue this worker reads holds a job (no job is taken).
    pub fn has_work(&self) -> bool {
        let reg = &*self.registry;
        let me = &reg.workers[self.index];
        (0..Priority::COUNT).any(|l| {
            !self.deques[l].is_empty()
                || !me.mailbox[l].is_empty()
                || me
                    .caps
                    .iter()
                    .any(|c| !reg.injectors[c.index()][l].is_empty())
                || me.peers.iter().any(|&p| {
                    !reg.workers[p].stealers[l].is_empty() || !reg.workers[p].mailbox[l].is_empty()
                })
        })
    }

    /// Runs one job taken from a queue of `level`, with the bookkeeping:
    /// counters, current priority, busy time.
    pub fn execute(&self, job: JobRef, stolen: bool, level: Priority) {
        let reg = &*self.registry;
        let m = &reg.workers[self.index].metrics;
        bump(&m.tasks_run, 1);
        if stolen {
            bump(&m.tasks_stolen, 1);
        }
        let outer = self.depth.get() == 0;
        if outer {
            self.busy_from.set(reg.now_ns());
            self.slept_ns.set(0);
            self.info().busy.store(true, Ordering::Relaxed);
        }
        let prev = self.priority.replace(level);
        self.depth.set(self.depth.get() + 1);
        // SAFETY: the job came off a queue, so this is its one execution;
        // its maker keeps its data alive until the job sets its latch.
        unsafe { job.execute() };
        self.depth.set(self.depth.get() - 1);
        self.priority.set(prev);
        if outer {
            self.info().busy.store(false, Ordering::Relaxed);
            self.count_busy();
        }
    }

    /// Adds the busy time since the last count (less the time parked in
    /// nested waits) to this worker's metrics.
    fn count_busy(&self) {
        let now = self.registry.now_ns();
        let busy = now
            .saturating_sub(self.busy_from.get())
            .saturating_sub(self.slept_ns.get());
        bump(&self.registry.workers[self.index].metrics.busy_ns, busy);
        self.busy_from.set(now);
        self.slept_ns.set(0);
    }

    /// Called just before a task's result is handed to a thread that is
    /// not a worker: counts the busy time so far, so that thread, reading
    /// the metrics once it has the result, finds this task's time in them.
    pub fn count_busy_before_handover() {
        if let Some(w) = Self::current()
            && w.depth.get() > 0
        {
            w.count_busy();
        }
    }

    /// Counts a fruitless search of `spell`; whether the worker searches on
    /// (it yields its core first) rather than parks. The clock is read only
    /// once the spin rounds are spent.
    fn search_on(&self, spell: &mut IdleSpell) -> bool {
        spell.rounds += 1;
        let on = spell.rounds < SPIN_ROUNDS || {
            let now = self.registry.now_ns();
            if spell.rounds == SPIN_ROUNDS {
                spell.rounds_spent_at = now;
            }
            keeps_searching_for_clients(
                self.info().caps.contains(Capability::Physics),
                self.registry.waiting_clients(),
                now - spell.rounds_spent_at,
            )
        };
        if on {
            std::thread::yield_now();
        }
        on
    }

    /// Keeps working until `latch` is set; parks when there is nothing to do.
    pub fn wait_until(&self, latch: &CoreLatch) {
        let mut spell = IdleSpell::default();
        while !latch.probe() {
            if let Some((job, stolen, level)) = self.find_work(spell.rounds) {
                self.execute(job, stolen, level);
                spell = IdleSpell::default();
                continue;
            }
            if self.search_on(&mut spell) {
                continue;
            }
            let t0 = self.registry.now_ns();
            self.info()
                .sleeper
                .sleep_unless(|| latch.probe() || self.has_work());
            self.slept_ns
                .set(self.slept_ns.get() + self.registry.now_ns().saturating_sub(t0));
            spell = IdleSpell::default();
        }
    }

    /// A worker thread's whole life.
    pub fn run(registry: Arc<Registry>, index: usize, deques: Levels<Worker<JobRef>>) {
        let worker = WorkerThread {
            index,
            registry,
            deques,
            priority: Cell::new(Priority::Normal),
            depth: Cell::new(0),
            busy_from: Cell::new(0),
            slept_ns: Cell::new(0),
            rotate: Cell::new(index),
            cache: RefCell::new(None),
        };
        *worker.cache.borrow_mut() = worker.registry.cache.as_ref().map(|c| c.local(index));
        CURRENT.with(|c| c.set(&worker));
        let reg = &*worker.registry;
        reg.events.publish(WorkerEvent::WorkerJoined {
            worker: reg.workers[index].name.clone(),
        });
        let mut spell = IdleSpell::default();
        loop {
            if let Some((job, stolen, level)) = worker.find_work(spell.rounds) {
                worker.execute(job, stolen, level);
                spell = IdleSpell::default();
                continue;
            }
            if reg.terminate.load(Ordering::SeqCst) {
                break;
            }
            if worker.search_on(&mut spell) {
                continue;
            }
            reg.workers[index]
                .sleeper
                .sleep_unless(|| worker.has_work() || reg.terminate.load(Ordering::SeqCst));
            spell = IdleSpell::default();
        }
        reg.events.publish(WorkerEvent::WorkerLeft {
            worker: reg.workers[index].name.clone(),
        });
        CURRENT.with(|c| c.set(std::ptr::null()));
    }
}
