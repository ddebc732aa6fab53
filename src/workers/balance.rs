//! Dynamic rebalancing for data-parallel passes whose cost per item is
//! uneven (clustered particles): the balancer remembers what each part of
//! the index space cost last time, cuts the next run into chunks of equal
//! predicted cost, and places consecutive chunks on the same worker (so a
//! chunk tends to land where its data was last touched). Stealing mops up
//! whatever the prediction got wrong.

use super::graph::TaskGraph;
use super::pool::WorkerPool;
use super::task::{Capability, Priority, TaskSpec};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Cost buckets over the index space: more than the chunks of 16 workers
/// (128) times a few, so chunks can follow the cost closely.
const BUCKETS: usize = 1024;
/// Chunks per worker: enough slack for stealing to even out errors.
const CHUNKS_PER_WORKER: usize = 8;

/// A run of items and the buckets whose cost it stands for.
struct Chunk {
    items: Range<usize>,
    buckets: Range<usize>,
}

pub struct Balancer {
    name: String,
    key: u64,
    /// Predicted cost per bucket, nanoseconds.
    cost: Vec<f64>,
    n: usize,
    /// Chunks and makespan of the last run.
    pub last_chunks: usize,
    pub last_makespan_ns: u64,
}

impl Balancer {
    /// `key` keeps this balancer's affinity keys apart from other users'.
    pub fn new(name: impl Into<String>, key: u32) -> Self {
        Self {
            name: name.into(),
            key: u64::from(key) << 32,
            cost: vec![1.0; BUCKETS],
            n: 0,
            last_chunks: 0,
            last_makespan_ns: 0,
        }
    }

    /// The chunk boundaries (item ranges) for `n` items and `workers`.
    pub fn plan(&mut self, n: usize, workers: usize) -> Vec<Range<usize>> {
        self.chunks(n, workers)
            .into_iter()
            .map(|c| c.items)
            .collect()
    }

    /// Chunks of about equal predicted cost, each a run of whole buckets,
    /// so what a chunk measured is learned by exactly the buckets it
    /// covered. (Mapping an item range back to buckets instead rounded
    /// outwards once chunks were a few items long — 128 chunks of ~600
    /// stripes on 16 workers — and neighbouring chunks taught the same
    /// edge bucket two different costs: the predictions drifted apart
    /// and chunks planned as equal were not.)
    fn chunks(&mut self, n: usize, workers: usize) -> Vec<Chunk> {
        if n != self.n {
            // A different item count: the old shape no longer applies.
            self.cost.iter_mut().for_each(|c| *c = 1.0);
            self.n = n;
        }
        let at = |b: usize| b * n / BUCKETS;
        let total: f64 = self.cost.iter().sum();
        let target = total / (workers.max(1) * CHUNKS_PER_WORKER) as f64;
        let mut chunks = Vec::new();
        let (mut start, mut acc) = (0, 0.0);
        for b in 0..BUCKETS {
            acc += self.cost[b];
            // A bucket may hold no item (fewer items than buckets): it
            // joins the next chunk that does.
            if (acc >= target || b == BUCKETS - 1) && at(b + 1) > at(start) {
                chunks.push(Chunk {
                    items: at(start)..at(b + 1),
                    buckets: start..b + 1,
                });
                start = b + 1;
                acc = 0.0;
            }
        }
        chunks
    }

    /// Runs `f` over `0..n` in cost-balanced chunks on the compute workers,
    /// and learns from the measured chunk times.
    pub fn run(
        &mut self,
        pool: &WorkerPool,
        priority: Priority,
        n: usize,
        f: impl Fn(Range<usize>) + Sync,
    ) {
        if n == 0 {
            return;
        }
        let chunks = self.chunks(n, pool.compute_workers());
        let f = &f;
        let bodies = chunks
            .iter()
            .map(|c| {
                let r = c.items.clone();
                Box::new(move || f(r)) as Box<dyn FnOnce() + Send + '_>
            })
            .collect();
        self.dispatch(pool, priority, &chunks, bodies);
    }

    /// Calls `f` on every item, in cost-balanced chunks of consecutive items
    /// (for work already cut into items, like the contact pass's stripes).
    pub fn run_items<T: Send>(
        &mut self,
        pool: &WorkerPool,
        priority: Priority,
        items: &mut [T],
        f: impl Fn(&mut T) + Sync,
    ) {
        if items.is_empty() {
            return;
        }
        let chunks = self.chunks(items.len(), pool.compute_workers());
        let f = &f;
        let mut rest = items;
        let mut bodies = Vec::with_capacity(chunks.len());
        for c in &chunks {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(c.items.len());
            rest = tail;
            bodies.push(
                Box::new(move || head.iter_mut().for_each(f)) as Box<dyn FnOnce() + Send + '_>
            );
        }
        self.dispatch(pool, priority, &chunks, bodies);
    }

    /// Places the chunks (consecutive chunks of about equal predicted total
    /// on the same worker), runs them as one graph, learns their costs.
    fn dispatch<'a>(
        &mut self,
        pool: &WorkerPool,
        priority: Priority,
        chunks: &[Chunk],
        bodies: Vec<Box<dyn FnOnce() + Send + 'a>>,
    ) {
        let workers: Vec<usize> = (0..pool.worker_names().len())
            .filter(|&w| {
                pool.registry().workers[w]
                    .caps
                    .contains(Capability::Physics)
            })
            .collect();
        let pred: Vec<f64> = chunks
            .iter()
            .map(|c| self.cost[c.buckets.clone()].iter().sum())
            .collect();
        let total: f64 = pred.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut acc = 0.0;
        for (c, p) in pred.iter().enumerate() {
            let mid = (acc + p / 2.0) / total;
            acc += p;
            let w = workers[((mid * workers.len() as f64) as usize).min(workers.len() - 1)];
            pool.registry().note_affinity(self.key | c as u64, w);
        }
        let measured: Vec<AtomicU64> = chunks.iter().map(|_| AtomicU64::new(0)).collect();
        let mut graph = TaskGraph::new();
        for (c, body) in bodies.into_iter().enumerate() {
            let measured = &measured;
            let registry = pool.registry();
            graph.add(
                TaskSpec::new(self.name.clone(), Capability::Physics)
                    .priority(priority)
                    .affinity(self.key | c as u64),
                move || {
                    let t0 = registry.now_ns();
                    body();
                    measured[c].store(registry.now_ns() - t0, Ordering::Relaxed);
                },
            );
        }
        let report = pool
            .run(graph)
            .expect("a graph of independent tasks has no cycle");
        if let Some(err) = report.errors.first() {
            panic!("{err}");
        }
        self.last_chunks = chunks.len();
        self.last_makespan_ns = match (
            report.timeline.first(),
            report.timeline.iter().map(|r| r.end_ns).max(),
        ) {
            (Some(first), Some(end)) => end - first.start_ns,
            _ => 0,
        };
        for (c, m) in chunks.iter().zip(&measured) {
            self.learn(c.buckets.clone(), m.load(Ordering::Relaxed) as f64);
        }
    }

    /// Spreads a chunk's measured time over its buckets in the proportions
    /// predicted, averaged with the old prediction.
    fn learn(&mut self, b: Range<usize>, ns: f64) {
        let old: f64 = self.cost[b.clone()].iter().sum();
        if old <= 0.0 || ns <= 0.0 {
            return;
        }
        let scale = ns / old;
        for c in &mut self.cost[b] {
            *c = 0.5 * *c + 0.5 * (*c * scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Teaches `bal` `rounds` times what its own chunks of `n` items
    /// cost, with `cost(i)` per item, as `dispatch` does from measured
    /// times.
    fn teach(
        bal: &mut Balancer,
        n: usize,
        workers: usize,
        rounds: usize,
        cost: impl Fn(usize) -> f64,
    ) {
        for _ in 0..rounds {
            for c in bal.chunks(n, workers) {
                let ns = c.items.clone().map(&cost).sum();
                bal.learn(c.buckets, ns);
            }
        }
    }

    #[test]
    fn even_work_in_small_chunks_stays_predicted_even() {
        // The contact pass's shape on 16 workers: ~600 bands, 128 chunks
        // of four or five, every band costing the same.
        let (n, workers) = (576, 16);
        let mut bal = Balancer::new("even", 7);
        teach(&mut bal, n, workers, 30, |_| 1000.0);
        let plan = bal.plan(n, workers);
        let longest = plan.iter().map(|c| c.len()).max().unwrap();
        assert!(
            plan.len() >= 100 && longest <= 2 * n / (workers * CHUNKS_PER_WORKER),
            "{} chunks, the longest {longest} items: {plan:?}",
            plan.len()
        );
    }

    #[test]
    fn a_costly_region_learned_in_small_chunks_gets_its_share() {
        let (n, workers) = (576, 16);
        let mut bal = Balancer::new("clustered", 8);
        // Items 100..140 cost twenty times the rest.
        let cost = |i: usize| {
            if (100..140).contains(&i) {
                20_000.0
            } else {
                1000.0
            }
        };
        teach(&mut bal, n, workers, 30, cost);
        let chunks = bal.chunks(n, workers);
        let total: f64 = (0..n).map(cost).sum();
        let largest = chunks
            .iter()
            .map(|c| c.items.clone().map(cost).sum::<f64>())
            .fold(0.0, f64::max);
        // A chunk's target is a 128th of the total; allow for the items
        // being whole.
        assert!(
            largest <= 3.0 * total / (workers * CHUNKS_PER_WORKER) as f64,
            "the costliest chunk holds {:.1}% of the work",
            100.0 * largest / total
        );
    }
}
