//! `particle-forge bench workers`: the job system against rayon, in one
//! process, on the same machine and thread counts.
//!
//! - spawn/join: a binary-tree sum with a fork at every node (1e3 and 1e6
//!   nodes) — pure scheduling overhead.
//! - parallel-for: 1e3 to 1e6 light items (`y = 2x + 1`).
//! - scaling: a compute-bound parallel-for on 1 worker ÷ on 2 workers.
//! - priority: frame-critical tasks submitted while a flood of background
//!   tasks runs; submit-to-start latency. rayon has no priorities: its
//!   critical task queues behind the same flood on the same pool.
//! - imbalance: clustered work (a tenth of the items carry most of the
//!   cost) through the cost balancer; makespan ÷ ideal (serial ÷ workers).

use super::{geomean, progress, quantile, round, side_by_side};
use crate::workers::{Balancer, Capability, Priority, TaskSpec, WorkerPool};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Serialize, Debug)]
pub struct WorkersReport {
    pub spawn_join_vs_rayon: f64,
    pub parallel_for_vs_rayon: f64,
    pub scaling_2_workers: f64,
    pub scaling_2_workers_rayon: f64,
    pub priority_p99_us: f64,
    pub priority_p99_us_rayon: f64,
    pub imbalance_makespan_vs_ideal: f64,
    pub imbalance_makespan_vs_ideal_rayon: f64,
    pub spawn_join: Vec<Row>,
    pub parallel_for: Vec<Row>,
    pub metrics_overhead_ns_per_task: f64,
    pub spawn_ns_per_task: f64,
    pub workers: usize,
    pub quick: bool,
}

#[derive(Serialize, Debug)]
pub struct Row {
    pub size: usize,
    pub ours_us: f64,
    pub rayon_us: f64,
    pub ratio: f64,
}

fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("rayon-{i}"))
        .build()
        .expect("rayon pool")
}

fn tree_ours(pool: &WorkerPool, depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let (a, b) = pool.join(|| tree_ours(pool, depth - 1), || tree_ours(pool, depth - 1));
    a + b + 1
}

fn tree_rayon(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let (a, b) = rayon::join(|| tree_rayon(depth - 1), || tree_rayon(depth - 1));
    a + b + 1
}

/// Spins for about `d` (a task of known length that keeps its core busy).
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// `n` compute-bound items (`heavy_item`) over `pool`'s workers: what a
/// second worker adds where memory is not in the way.
pub(super) fn compute_bound_loop(pool: &WorkerPool, n: usize) {
    let mut out = vec![0f32; n];
    pool.for_each_chunk_mut(&mut out, 2048, |off, chunk| {
        for (k, y) in chunk.iter_mut().enumerate() {
            *y = heavy_item(off + k, 64);
        }
    });
    std::hint::black_box(out);
}

/// A compute-bound item: a dependent chain of multiplies, adds and square
/// roots, no memory traffic.
#[inline]
fn heavy_item(i: usize, reps: u32) -> f32 {
    let mut x = i as f32 * 1e-3;
    for _ in 0..reps {
        x = x * 0.999_9 + 0.5;
        x = x.sqrt() + 0.25;
    }
    x
}

pub fn run(quick: bool) -> WorkersReport {
    let workers = crate::workers::cores();
    let ours = WorkerPool::new(workers, 1).expect("worker pool");
    let theirs = rayon_pool(workers);
    let reps = if quick { 5 } else { 15 };

    // Spawn/join.
    let mut spawn_join = Vec::new();
    for depth in [9u32, 19] {
        let size = (1usize << (depth + 1)) - 1;
        progress(&format!("spawn/join tree of {size} nodes"));
        assert_eq!(tree_ours(&ours, depth) as usize, size);
        let (a, b) = side_by_side(
            reps,
            || {
                std::hint::black_box(ours.install(Capability::Physics, Priority::Normal, || {
                    tree_ours(&ours, depth)
                }));
            },
            || {
                std::hint::black_box(theirs.install(|| tree_rayon(depth)));
            },
        );
        spawn_join.push(Row {
            size,
            ours_us: round(a * 1e6, 1),
            rayon_us: round(b * 1e6, 1),
            ratio: round(b / a, 3),
        });
    }

    // Parallel-for over light items.
    let mut parallel_for = Vec::new();
    for size in [1_000usize, 10_000, 100_000, 1_000_000] {
        progress(&format!("parallel-for over {size} items"));
        let input: Vec<f32> = (0..size).map(|i| i as f32).collect();
        let mut out_a = vec![0f32; size];
        let mut out_b = vec![0f32; size];
        let (a, b) = side_by_side(
            reps * 4,
            || {
                ours.for_each_chunk_mut(&mut out_a, 4096, |off, chunk| {
                    let x = &input[off..off + chunk.len()];
                    for (y, &x) in chunk.iter_mut().zip(x) {
                        *y = 2.0 * x + 1.0;
                    }
                })
            },
            || {
                theirs.install(|| {
                    out_b
                        .par_iter_mut()
                        .zip(&input)
                        .for_each(|(y, &x)| *y = 2.0 * x + 1.0)
                })
            },
        );
        assert_eq!(out_a, out_b);
        parallel_for.push(Row {
            size,
            ours_us: round(a * 1e6, 2),
            rayon_us: round(b * 1e6, 2),
            ratio: round(b / a, 3),
        });
    }

    // Scaling: the same compute-bound loop on 1 and on 2 workers.
    progress("scaling, 1 worker vs 2");
    let n = if quick { 200_000 } else { 400_000 };
    let scaling_job = |pool: &WorkerPool| compute_bound_loop(pool, n);
    let one = WorkerPool::new(1, 0).expect("pool");
    let two = WorkerPool::new(2, 0).expect("pool");
    let (t2, t1) = side_by_side(reps, || scaling_job(&two), || scaling_job(&one));
    let scaling = t1 / t2;
    let (r1p, r2p) = (rayon_pool(1), rayon_pool(2));
    let rayon_job = |pool: &rayon::ThreadPool| {
        let mut out = vec![0f32; n];
        pool.install(|| {
            out.par_iter_mut()
                .enumerate()
                .for_each(|(i, y)| *y = heavy_item(i, 64))
        });
        std::hint::black_box(out);
    };
    let (rt2, rt1) = side_by_side(reps, || rayon_job(&r2p), || rayon_job(&r1p));
    drop((one, two, r1p, r2p));

    // Priority under a background flood.
    progress("frame-critical latency under a background flood");
    let rounds = if quick { 4 } else { 12 };
    let (ours_lat, rayon_lat) = priority_latency(&ours, &theirs, rounds);

    // Imbalanced, clustered work.
    progress("clustered, imbalanced work");
    let (vs_ideal, vs_ideal_rayon) = imbalance(&ours, &theirs, quick);

    // Cost of the metrics: a task with and without the bookkeeping is not
    // separable at run time, so measure the bookkeeping's parts directly.
    let overhead = metrics_overhead_ns(&ours);
    let per_task = spawn_cost_ns(&ours);

    WorkersReport {
        spawn_join_vs_rayon: round(
            geomean(&spawn_join.iter().map(|r| r.ratio).collect::<Vec<_>>()),
            3,
        ),
        parallel_for_vs_rayon: round(
            geomean(&parallel_for.iter().map(|r| r.ratio).collect::<Vec<_>>()),
            3,
        ),
        scaling_2_workers: round(scaling, 3),
        scaling_2_workers_rayon: round(rt1 / rt2, 3),
        priority_p99_us: round(ours_lat, 1),
        priority_p99_us_rayon: round(rayon_lat, 1),
        imbalance_makespan_vs_ideal: round(vs_ideal, 3),
        imbalance_makespan_vs_ideal_rayon: round(vs_ideal_rayon, 3),
        spawn_join,
        parallel_for,
        metrics_overhead_ns_per_task: round(overhead, 1),
        spawn_ns_per_task: round(per_task, 1),
        workers,
        quick,
    }
}

/// p99 submit-to-start latency (µs) of frame-critical tasks sent while a
/// flood of 250 µs background tasks keeps every worker busy: (ours, rayon).
fn priority_latency(ours: &WorkerPool, theirs: &rayon::ThreadPool, rounds: usize) -> (f64, f64) {
    const FLOOD: usize = 200;
    const PROBES: usize = 20;
    let task = Duration::from_micros(250);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        // Ours.
        let flood: Vec<_> = (0..FLOOD)
            .map(|_| {
                let spec =
                    TaskSpec::new("flood", Capability::Physics).priority(Priority::Background);
                ours.spawn(spec, move || spin(task))
            })
            .collect();
        let (tx, rx) = mpsc::channel();
        for _ in 0..PROBES {
            std::thread::sleep(Duration::from_micros(600));
            let tx = tx.clone();
            let t0 = Instant::now();
            let spec =
                TaskSpec::new("critical", Capability::Physics).priority(Priority::FrameCritical);
            drop(ours.spawn(spec, move || {
                let _ = tx.send(t0.elapsed().as_secs_f64() * 1e6);
            }));
        }
        for h in flood {
            let _ = h.join();
        }
        drop(tx);
        a.extend(rx.iter());

        // rayon: the same flood and probes on one pool.
        for _ in 0..FLOOD {
            theirs.spawn(move || spin(task));
        }
        let (tx, rx) = mpsc::channel();
        for _ in 0..PROBES {
            std::thread::sleep(Duration::from_micros(600));
            let tx = tx.clone();
            let t0 = Instant::now();
            theirs.spawn(move || {
                let _ = tx.send(t0.elapsed().as_secs_f64() * 1e6);
            });
        }
        drop(tx);
        b.extend(rx.iter());
        // Let the rayon flood drain before the next round.
        theirs.install(|| ());
        let (dtx, drx) = mpsc::channel::<()>();
        theirs.spawn(move || {
            let _ = dtx.send(());
        });
        let _ = drx.recv();
    }
    (quantile(&mut a, 0.99), quantile(&mut b, 0.99))
}

/// Item costs: the first tenth of the items cost 40× the rest. Opaque to
/// the optimiser, so no variant gets vectorised across items.
fn clustered_cost(i: usize, n: usize) -> u32 {
    std::hint::black_box(if i < n / 10 { 200 } else { 5 })
}

fn imbalance(ours: &WorkerPool, theirs: &rayon::ThreadPool, quick: bool) -> (f64, f64) {
    let n = if quick { 100_000 } else { 200_000 };
    let workers = ours.compute_workers() as f64;
    let work = |r: std::ops::Range<usize>| {
        let mut acc = 0f32;
        for i in r {
            acc += heavy_item(i, clustered_cost(i, n));
        }
        std::hint::black_box(acc);
    };
    // Ideal: the serial time split evenly.
    let serial = super::median_secs(3, || work(0..n));
    let mut bal = Balancer::new("imbalance", 0xB0B);
    for _ in 0..5 {
        bal.run(ours, Priority::Normal, n, work);
    }
    let reps = if quick { 5 } else { 11 };
    let rayon_run = |pool: &rayon::ThreadPool| {
        let sum: f32 = pool.install(|| {
            (0..n)
                .into_par_iter()
                .fold(|| 0f32, |acc, i| acc + heavy_item(i, clustered_cost(i, n)))
                .sum()
        });
        std::hint::black_box(sum);
    };
    let (t_ours, t_rayon) = side_by_side(
        reps,
        || bal.run(ours, Priority::Normal, n, work),
        || rayon_run(theirs),
    );
    // rayon's ideal from rayon's own code on one thread.
    let one = rayon_pool(1);
    let serial_rayon = super::median_secs(3, || rayon_run(&one));
    let ideal = serial / workers;
    (t_ours / ideal, t_rayon / (serial_rayon / workers))
}

/// Wall nanoseconds per detached task (submit, run, handle), for scale.
fn spawn_cost_ns(pool: &WorkerPool) -> f64 {
    let n = 20_000;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| pool.spawn(TaskSpec::new("empty", Capability::Physics), move || i))
        .collect();
    for h in handles {
        let _ = h.join();
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

/// Nanoseconds per task that the metrics cost: the very calls `execute`
/// makes (two clock reads, a latency bucket, counter bumps), timed in a loop.
fn metrics_overhead_ns(pool: &WorkerPool) -> f64 {
    let iters = 200_000;
    let t0 = Instant::now();
    pool.time_bookkeeping(iters);
    t0.elapsed().as_nanos() as f64 / iters as f64
}

impl WorkersReport {
    pub fn describe(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "workers bench ({} compute workers{})\n",
            self.workers,
            if self.quick { ", quick" } else { "" }
        ));
        s.push_str("  spawn/join (rayon time ÷ ours):\n");
        for r in &self.spawn_join {
            s.push_str(&format!(
                "    {:>9} nodes  ours {:>10.1} µs  rayon {:>10.1} µs  ×{:.2}\n",
                r.size, r.ours_us, r.rayon_us, r.ratio
            ));
        }
        s.push_str("  parallel-for (rayon time ÷ ours):\n");
        for r in &self.parallel_for {
            s.push_str(&format!(
                "    {:>9} items  ours {:>10.2} µs  rayon {:>10.2} µs  ×{:.2}\n",
                r.size, r.ours_us, r.rayon_us, r.ratio
            ));
        }
        s.push_str(&format!(
            "  scaling 1→2 workers: ours ×{:.2}, rayon ×{:.2}\n  frame-critical p99 latency under a background flood: ours {:.1} µs, rayon {:.1} µs\n  clustered work makespan ÷ ideal: ours {:.2}, rayon {:.2}\n  metrics bookkeeping: {:.1} ns per task (a detached task costs {:.0} ns in all)",
            self.scaling_2_workers,
            self.scaling_2_workers_rayon,
            self.priority_p99_us,
            self.priority_p99_us_rayon,
            self.imbalance_makespan_vs_ideal,
            self.imbalance_makespan_vs_ideal_rayon,
            self.metrics_overhead_ns_per_task,
            self.spawn_ns_per_task
        ));
        s
    }
}
