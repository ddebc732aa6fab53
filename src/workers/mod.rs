//! The job system: a fixed set of worker threads that run the game's
//! parallel work.
//!
//! - `task`: what a task asks for — a capability (Management, Physics,
//!   Rendering, Blockchain), a priority (frame-critical, normal,
//!   background), an optional affinity key.
//! - `registry`: the workers and their queues (own deque, mailbox, one
//!   injector per capability), how a worker finds work (highest priority
//!   first, stealing from peers), runs it, and parks when idle.
//! - `job`: type-erased jobs, so `join` forks without allocating and graphs
//!   can borrow the caller's data; `latch` and `sleep`: the signals between
//!   workers (checked with loom).
//! - `pool`: the public face — `install`, `join`, `scope`, `parallel_for`
//!   (adaptive splitting down to a minimum grain), `for_each_mut`, `spawn`.
//! - `graph`: task graphs with dependencies, cycle rejection, panic
//!   isolation and cancellation of dependants.
//! - `balance`: cost-measured chunking and placement for uneven work.
//! - `metrics`, `events`: per-worker counters and latency histograms
//!   (cache-line padded, written only by their worker), and the event bus.
//! - `cpu`: the CPU time each kind of thread in the process used (/proc),
//!   for comparing runs.
//!
//! Default layout (`WorkerPool::for_this_machine`): one compute worker per
//! core (Management + Physics + Rendering) and I/O workers (Blockchain),
//! so blocking chain I/O never occupies a compute worker.
//!
//! Unsafe code: `job.rs` erases the types and lifetimes of queued jobs and
//! `registry.rs` keeps a thread-local pointer to the running worker, as
//! rayon-core does; each block says why it is sound, and the tests here run
//! under valgrind too.

mod balance;
pub mod cpu;
mod events;
mod graph;
mod job;
mod latch;
mod metrics;
mod pool;
mod registry;
mod sleep;
mod sync;
mod task;

pub use balance::Balancer;
pub use events::{EventBus, WorkerEvent};
pub use graph::{GraphError, GraphReport, TaskGraph, TaskId, TaskRecord};
pub use metrics::{PoolMetrics, WorkerRates, WorkerSnapshot};
pub use pool::{PoolError, Scope, TaskHandle, WorkerPool, WorkerSpec, cores};
pub use task::{Capabilities, Capability, Priority, TaskError, TaskSpec};

#[cfg(test)]
mod tests;
