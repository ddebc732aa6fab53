//! Task graphs: named tasks with dependencies, run once all their
//! predecessors finished. A cycle is rejected before anything runs. A task
//! that panics is reported, its dependants (transitively) are cancelled with
//! an error, and the rest of the graph still runs.
//!
//! `WorkerPool::run` blocks until the graph is done, so tasks may borrow from
//! the caller (`'g`).

use super::events::WorkerEvent;
use super::job::{Latch, cached_job};
use super::latch::{Countdown, LockLatch};
use super::pool::{WorkerPool, run_reporting};
use super::registry::{Registry, SpinLatch, WorkerThread};
use super::task::{Capability, TaskError, TaskSpec};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

type Body<'g> = Box<dyn FnOnce() + Send + 'g>;

/// Task records the pool keeps for timelines.
const RECENT: usize = 4096;

/// A task's place in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(usize);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("the task graph has a dependency cycle through: {}", .tasks.join(", "))]
    Cycle { tasks: Vec<String> },
    #[error("task `{task}` needs a {capability} worker and the pool has none")]
    MissingCapability {
        task: String,
        capability: &'static str,
    },
}

struct Node<'g> {
    spec: TaskSpec,
    body: Body<'g>,
    successors: Vec<usize>,
    predecessors: usize,
}

#[derive(Default)]
pub struct TaskGraph<'g> {
    nodes: Vec<Node<'g>>,
}

/// When and where one task ran (for timelines).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub name: String,
    pub capability: Capability,
    pub worker: usize,
    /// Nanoseconds since the pool started.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// What happened to a graph's tasks.
#[derive(Clone, Debug, Default)]
pub struct GraphReport {
    pub ran: usize,
    /// Panicked tasks and the tasks cancelled because of them.
    pub errors: Vec<TaskError>,
    pub timeline: Vec<TaskRecord>,
}

impl GraphReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl<'g> TaskGraph<'g> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, spec: TaskSpec, f: impl FnOnce() + Send + 'g) -> TaskId {
        self.nodes.push(Node {
            spec,
            body: Box::new(f),
            successors: Vec::new(),
            predecessors: 0,
        });
        TaskId(self.nodes.len() - 1)
    }

    /// `task` starts only after `before` finished.
    pub fn depends_on(&mut self, task: TaskId, before: TaskId) {
        assert!(
            task.0 < self.nodes.len() && before.0 < self.nodes.len(),
            "TaskId from another graph"
        );
        self.nodes[before.0].successors.push(task.0);
        self.nodes[task.0].predecessors += 1;
    }

    /// Adds `f` to run after all of `after`.
    pub fn add_after(
        &mut self,
        spec: TaskSpec,
        after: &[TaskId],
        f: impl FnOnce() + Send + 'g,
    ) -> TaskId {
        let id = self.add(spec, f);
        for &a in after {
            self.depends_on(id, a);
        }
        id
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Rejects cycles (Kahn's algorithm: what never becomes ready is on or
    /// behind a cycle).
    pub fn check(&self) -> Result<(), GraphError> {
        let mut left: Vec<usize> = self.nodes.iter().map(|n| n.predecessors).collect();
        let mut ready: Vec<usize> = (0..self.nodes.len()).filter(|&i| left[i] == 0).collect();
        let mut seen = 0;
        while let Some(i) = ready.pop() {
            seen += 1;
            for &s in &self.nodes[i].successors {
                left[s] -= 1;
                if left[s] == 0 {
                    ready.push(s);
                }
            }
        }
        if seen == self.nodes.len() {
            return Ok(());
        }
        Err(GraphError::Cycle {
            tasks: (0..self.nodes.len())
                .filter(|&i| left[i] > 0)
                .map(|i| self.nodes[i].spec.name.clone())
                .collect(),
        })
    }
}

enum DoneLatch {
    Lock(LockLatch),
    Spin(SpinLatch),
}

impl Latch for DoneLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: valid on entry; each variant's set touches nothing after
        // its flag is stored.
        unsafe {
            match &*this {
                DoneLatch::Lock(l) => Latch::set(l),
                DoneLatch::Spin(l) => Latch::set(l),
            }
        }
    }
}

/// A graph being run, shared by its tasks.
struct Run<'g, 'r> {
    registry: &'r Registry,
    specs: Vec<TaskSpec>,
    successors: Vec<Vec<usize>>,
    bodies: Vec<Mutex<Option<Body<'g>>>>,
    waiting_on: Vec<AtomicUsize>,
    /// 0, or 1 + the failed task that cancels this one.
    poisoned_by: Vec<AtomicUsize>,
    unfinished: Countdown,
    done: DoneLatch,
    errors: Mutex<Vec<TaskError>>,
    timeline: Mutex<Vec<TaskRecord>>,
}

impl Run<'_, '_> {
    fn submit(&self, i: usize) {
        let me = self as *const Self as usize;
        let body = move || {
            // SAFETY: `WorkerPool::run` keeps the Run alive until `done` is
            // set, which happens only after every task called `finish`.
            let run = unsafe { &*(me as *const Run) };
            run.execute(i);
        };
        let spec = &self.specs[i];
        // SAFETY: the job borrows the Run, which outlives it (see above).
        let job = unsafe { cached_job(self.registry, body) };
        self.registry
            .submit(job, spec.capability, spec.priority, spec.affinity);
    }

    fn execute(&self, i: usize) {
        let spec = &self.specs[i];
        let body = self.bodies[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a graph task ran twice");
        let start = self.registry.now_ns();
        let result = run_reporting(
            self.registry,
            &spec.name,
            spec.capability,
            spec.affinity,
            body,
        );
        let end = self.registry.now_ns();
        let worker = WorkerThread::current().map_or(usize::MAX, |w| w.index);
        let record = TaskRecord {
            name: spec.name.clone(),
            capability: spec.capability,
            worker,
            start_ns: start,
            end_ns: end,
        };
        {
            let mut recent = self
                .registry
                .recent
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(record.clone());
        }
        self.timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
        let failed = match result {
            Ok(()) => None,
            Err(e) => {
                self.errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(e);
                Some(i)
            }
        };
        self.finish(i, failed);
    }

    /// Releases `i`'s successors (cancelling them if `failed`), then counts
    /// `i` as finished. The final count is this task's last touch of `self`.
    fn finish(&self, i: usize, failed: Option<usize>) {
        for &s in &self.successors[i] {
            if let Some(root) = failed {
                let _ = self.poisoned_by[s].compare_exchange(
                    0,
                    root + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            if self.waiting_on[s].fetch_sub(1, Ordering::AcqRel) == 1 {
                match self.poisoned_by[s].load(Ordering::Acquire) {
                    0 => self.submit(s),
                    root => self.cancel(s, root - 1),
                }
            }
        }
        if self.unfinished.decrement() {
            // SAFETY: the Run is alive until this latch is set.
            unsafe { Latch::set(&self.done) };
        }
    }

    fn cancel(&self, i: usize, root: usize) {
        let (task, because) = (self.specs[i].name.clone(), self.specs[root].name.clone());
        self.registry.events.publish(WorkerEvent::TaskCancelled {
            task: task.clone(),
            because: because.clone(),
        });
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(TaskError::Cancelled { task, because });
        self.bodies[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.finish(i, Some(root));
    }
}

impl WorkerPool {
    /// Runs the graph and blocks until every task ran or was cancelled.
    /// From one of this pool's workers, the caller keeps working meanwhile.
    pub fn run(&self, graph: TaskGraph<'_>) -> Result<GraphReport, GraphError> {
        graph.check()?;
        let registry = self.registry();
        for n in &graph.nodes {
            if !registry.has_capability(n.spec.capability) {
                return Err(GraphError::MissingCapability {
                    task: n.spec.name.clone(),
                    capability: n.spec.capability.name(),
                });
            }
        }
        let n = graph.nodes.len();
        if n == 0 {
            return Ok(GraphReport::default());
        }
        let worker = WorkerThread::current().filter(|w| std::ptr::eq(&*w.registry, registry));
        let mut specs = Vec::with_capacity(n);
        let mut successors = Vec::with_capacity(n);
        let mut bodies = Vec::with_capacity(n);
        let mut waiting_on = Vec::with_capacity(n);
        for node in graph.nodes {
            waiting_on.push(AtomicUsize::new(node.predecessors));
            specs.push(node.spec);
            successors.push(node.successors);
            bodies.push(Mutex::new(Some(node.body)));
        }
        let run = Run {
            registry,
            specs,
            successors,
            bodies,
            waiting_on,
            poisoned_by: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            unfinished: Countdown::new(n),
            done: match worker {
                Some(w) => DoneLatch::Spin(SpinLatch::new(w)),
                None => DoneLatch::Lock(LockLatch::new()),
            },
            errors: Mutex::new(Vec::new()),
            timeline: Mutex::new(Vec::new()),
        };
        let roots: Vec<usize> = (0..n)
            .filter(|&i| run.waiting_on[i].load(Ordering::Relaxed) == 0)
            .collect();
        // From outside the pool: compute workers stay searching between the
        // graph's phases instead of parking (see `registry`).
        let _waiting = worker.is_none().then(|| registry.client_waits());
        for i in roots {
            run.submit(i);
        }
        match (&run.done, worker) {
            (DoneLatch::Spin(l), Some(w)) => w.wait_until(&l.core),
            (DoneLatch::Lock(l), _) => l.wait(),
            _ => unreachable!("latch kind follows the caller"),
        }
        let errors = run.errors.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut timeline = run.timeline.into_inner().unwrap_or_else(|e| e.into_inner());
        timeline.sort_by_key(|r| r.start_ns);
        Ok(GraphReport {
            ran: n - errors
                .iter()
                .filter(|e| matches!(e, TaskError::Cancelled { .. }))
                .count(),
            errors,
            timeline,
        })
    }
}
