use super::*;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

fn fib(pool: &WorkerPool, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = pool.join(|| fib(pool, n - 1), || fib(pool, n - 2));
    a + b
}

#[test]
fn join_and_nested_join_compute_the_right_values() {
    let pool = WorkerPool::new(2, 1).unwrap();
    assert_eq!(fib(&pool, 20), 6765);
    let (a, b) = pool.join(|| 1 + 1, || "two");
    assert_eq!((a, b), (2, "two"));
}

#[test]
fn parallel_for_visits_every_index_once_and_respects_the_grain() {
    let pool = WorkerPool::new(2, 0).unwrap();
    for n in [0usize, 1, 7, 1000, 100_003] {
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        let smallest = AtomicUsize::new(usize::MAX);
        pool.parallel_for(0..n, 64, |r| {
            smallest.fetch_min(r.len(), Ordering::Relaxed);
            for i in r {
                hits[i].fetch_add(1, Ordering::Relaxed);
            }
        });
        assert!(
            hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
            "n = {n}"
        );
        if n >= 128 {
            // Halving a range above the grain never goes below half of it.
            assert!(smallest.load(Ordering::Relaxed) >= 32, "n = {n}");
        }
    }
}

#[test]
fn for_each_chunk_mut_hands_out_disjoint_chunks_with_their_offsets() {
    let pool = WorkerPool::new(2, 0).unwrap();
    let mut data = vec![0usize; 50_001];
    pool.for_each_chunk_mut(&mut data, 1000, |offset, chunk| {
        assert!(chunk.len() >= 500);
        for (k, v) in chunk.iter_mut().enumerate() {
            *v += offset + k;
        }
    });
    assert!(data.iter().enumerate().all(|(i, &v)| v == i));
}

#[test]
fn for_each_mut_and_scope_write_through_borrows() {
    let pool = WorkerPool::new(2, 0).unwrap();
    let mut items: Vec<u64> = (0..1000).collect();
    pool.for_each_mut(&mut items, |x| *x *= 2);
    assert!(items.iter().enumerate().all(|(i, &x)| x == 2 * i as u64));

    let mut parts = [0u64; 16];
    let total = AtomicUsize::new(0);
    pool.scope(|s| {
        for (i, p) in parts.iter_mut().enumerate() {
            let total = &total;
            s.spawn(move |_| {
                *p = i as u64 * 10;
                total.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), 16);
    assert_eq!(parts[15], 150);
}

#[test]
fn graph_runs_each_task_after_all_its_predecessors() {
    let pool = WorkerPool::new(2, 1).unwrap();
    let log = Mutex::new(Vec::new());
    let mut g = TaskGraph::new();
    let push = |name: &'static str| {
        let log = &log;
        move || {
            std::thread::sleep(Duration::from_micros(300));
            log.lock().unwrap().push(name);
        }
    };
    let a = g.add(TaskSpec::new("a", Capability::Management), push("a"));
    let b = g.add_after(TaskSpec::new("b", Capability::Physics), &[a], push("b"));
    let c = g.add_after(TaskSpec::new("c", Capability::Physics), &[a], push("c"));
    let d = g.add_after(
        TaskSpec::new("d", Capability::Rendering),
        &[b, c],
        push("d"),
    );
    g.add_after(TaskSpec::new("e", Capability::Blockchain), &[d], push("e"));
    let report = pool.run(g).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.ran, 5);
    let log = log.into_inner().unwrap();
    let at = |n| log.iter().position(|&x| x == n).unwrap();
    assert!(at("a") < at("b") && at("a") < at("c"));
    assert!(at("b") < at("d") && at("c") < at("d") && at("d") < at("e"));
    // The timeline says the same.
    let t = |n: &str| {
        report
            .timeline
            .iter()
            .find(|r| r.name == n)
            .unwrap()
            .clone()
    };
    assert!(t("a").end_ns <= t("b").start_ns && t("d").end_ns <= t("e").start_ns);
}

#[test]
fn a_cycle_is_rejected_before_anything_runs() {
    let pool = WorkerPool::new(1, 0).unwrap();
    let ran = AtomicUsize::new(0);
    let mut g = TaskGraph::new();
    let spec = |n: &str| TaskSpec::new(n, Capability::Physics);
    let work = || {
        ran.fetch_add(1, Ordering::Relaxed);
    };
    let free = g.add(spec("free"), work);
    let a = g.add_after(spec("a"), &[free], work);
    let b = g.add_after(spec("b"), &[a], work);
    let c = g.add_after(spec("c"), &[b], work);
    g.depends_on(a, c);
    let err = pool.run(g).unwrap_err();
    match &err {
        GraphError::Cycle { tasks } => assert_eq!(tasks, &["a", "b", "c"]),
        other => panic!("expected a cycle, got {other:?}"),
    }
    assert!(err.to_string().contains("cycle"));
    assert_eq!(ran.load(Ordering::Relaxed), 0);
}

#[test]
fn a_graph_needing_a_missing_capability_is_rejected() {
    let pool = WorkerPool::new(1, 0).unwrap();
    let mut g = TaskGraph::new();
    g.add(TaskSpec::new("send", Capability::Blockchain), || {});
    assert!(matches!(
        pool.run(g),
        Err(GraphError::MissingCapability { .. })
    ));
}

#[test]
fn a_panicking_task_is_reported_its_dependants_cancelled_and_the_worker_lives_on() {
    let pool = WorkerPool::new(2, 0).unwrap();
    let events = pool.events().subscribe();
    let ran = Mutex::new(HashSet::new());
    let mut g = TaskGraph::new();
    let spec = |n: &str| TaskSpec::new(n, Capability::Physics);
    let mark = |n: &'static str| {
        let ran = &ran;
        move || {
            ran.lock().unwrap().insert(n);
        }
    };
    let bad = g.add(spec("bad"), || panic!("boom"));
    let child = g.add_after(spec("child"), &[bad], mark("child"));
    g.add_after(spec("grandchild"), &[child], mark("grandchild"));
    g.add(spec("independent"), mark("independent"));
    let report = pool.run(g).unwrap();
    assert_eq!(
        report.errors.iter().filter(|e| matches!(e, TaskError::Panicked { task, message } if task == "bad" && message == "boom")).count(),
        1
    );
    let cancelled: HashSet<_> = report
        .errors
        .iter()
        .filter_map(|e| match e {
            TaskError::Cancelled { task, because } if because == "bad" => Some(task.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        cancelled,
        HashSet::from(["child".to_string(), "grandchild".to_string()])
    );
    assert_eq!(*ran.lock().unwrap(), HashSet::from(["independent"]));
    let seen: Vec<_> = events.try_iter().collect();
    assert!(seen.iter().any(|e| matches!(e, WorkerEvent::TaskFailed { task, message, .. } if task == "bad" && message == "boom")));
    assert!(
        seen.iter()
            .any(|e| matches!(e, WorkerEvent::TaskCancelled { task, .. } if task == "child"))
    );
    let failed: u64 = pool.metrics().workers.iter().map(|w| w.tasks_failed).sum();
    assert_eq!(failed, 1);
    // The pool still works, on every worker.
    assert_eq!(fib(&pool, 15), 610);
    let h = pool.spawn(TaskSpec::new("after", Capability::Physics), || 7);
    assert_eq!(h.join(), Ok(7));
}

#[test]
fn a_panic_in_join_reaches_the_caller_after_both_halves_finish() {
    let pool = WorkerPool::new(2, 0).unwrap();
    let other_done = AtomicBool::new(false);
    let r = catch_unwind(AssertUnwindSafe(|| {
        pool.join(
            || panic!("left"),
            || {
                std::thread::sleep(Duration::from_millis(5));
                other_done.store(true, Ordering::SeqCst);
            },
        )
    }));
    assert!(r.is_err());
    // Either the right half ran (stolen) or it was dropped unrun; it must
    // not still be running.
    let snapshot = other_done.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(other_done.load(Ordering::SeqCst), snapshot);
    assert_eq!(fib(&pool, 10), 55);
}

#[test]
fn higher_priority_is_always_taken_first() {
    // One compute worker, held busy while the queue fills.
    let pool = WorkerPool::new(1, 0).unwrap();
    let gate = Arc::new(Barrier::new(2));
    let g2 = gate.clone();
    let blocker = pool.spawn(TaskSpec::new("blocker", Capability::Physics), move || {
        g2.wait();
    });
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for round in 0..5 {
        for p in [
            Priority::Background,
            Priority::Normal,
            Priority::FrameCritical,
        ] {
            let order = order.clone();
            let spec = TaskSpec::new(format!("{p:?}-{round}"), Capability::Physics).priority(p);
            handles.push(pool.spawn(spec, move || order.lock().unwrap().push(p)));
        }
    }
    gate.wait();
    blocker.join().unwrap();
    for h in handles {
        h.join().unwrap();
    }
    let order = order.lock().unwrap().clone();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "ran in {order:?}");
}

#[test]
fn idle_workers_steal_from_a_busy_one() {
    let pool = WorkerPool::new(2, 0).unwrap();
    let before: u64 = pool.metrics().workers.iter().map(|w| w.tasks_stolen).sum();
    let ran_on = Mutex::new(HashSet::new());
    // All 64 jobs start on the deque of whichever worker runs the scope.
    pool.scope(|s| {
        for _ in 0..64 {
            let ran_on = &ran_on;
            let pool = &pool;
            s.spawn(move |_| {
                std::thread::sleep(Duration::from_micros(500));
                ran_on
                    .lock()
                    .unwrap()
                    .insert(pool.current_worker().unwrap());
            });
        }
    });
    let after: u64 = pool.metrics().workers.iter().map(|w| w.tasks_stolen).sum();
    assert!(after > before, "no task was stolen");
    assert_eq!(ran_on.lock().unwrap().len(), 2, "one worker did everything");
}

#[test]
fn shutdown_runs_every_pending_task_and_returns() {
    let pool = WorkerPool::new(2, 1).unwrap();
    let events = pool.events().subscribe();
    let handles: Vec<_> = (0..300u64)
        .map(|i| {
            let cap = if i % 10 == 0 {
                Capability::Blockchain
            } else {
                Capability::Physics
            };
            pool.spawn(TaskSpec::new(format!("t{i}"), cap), move || {
                std::thread::sleep(Duration::from_micros(100));
                i * 3
            })
        })
        .collect();
    let t0 = Instant::now();
    pool.shutdown();
    assert!(t0.elapsed() < Duration::from_secs(30));
    for (i, h) in handles.into_iter().enumerate() {
        assert!(h.is_finished());
        assert_eq!(h.join(), Ok(i as u64 * 3));
    }
    let left = events
        .try_iter()
        .filter(|e| matches!(e, WorkerEvent::WorkerLeft { .. }))
        .count();
    assert_eq!(left, 3);
}

#[test]
fn blockchain_tasks_run_only_on_the_io_worker() {
    let pool = WorkerPool::new(2, 1).unwrap();
    let names = pool.worker_names();
    let io = names.iter().position(|n| n == "io-0").unwrap();
    let pool = Arc::new(pool);
    let spawn_on = |cap| {
        let p = pool.clone();
        pool.spawn(TaskSpec::new("where", cap), move || {
            p.current_worker().unwrap()
        })
    };
    let chain: Vec<_> = (0..20).map(|_| spawn_on(Capability::Blockchain)).collect();
    let physics: Vec<_> = (0..20).map(|_| spawn_on(Capability::Physics)).collect();
    assert!(chain.into_iter().all(|h| h.join().unwrap() == io));
    assert!(physics.into_iter().all(|h| h.join().unwrap() != io));
    assert_eq!(pool.compute_workers(), 2);
    assert_eq!(pool.workers_with(Capability::Blockchain), 1);
}

#[test]
fn tasks_with_an_affinity_key_go_to_the_worker_that_last_ran_the_key() {
    let pool = Arc::new(WorkerPool::new(2, 0).unwrap());
    let mut followed = 0;
    for _ in 0..40 {
        let p = pool.clone();
        let spec = TaskSpec::new("chunk-7", Capability::Physics).affinity(7);
        let last = pool.registry().affine_worker(7);
        let ran = pool
            .spawn(spec, move || p.current_worker().unwrap())
            .join()
            .unwrap();
        assert_eq!(pool.registry().affine_worker(7), Some(ran));
        if last == Some(ran) {
            followed += 1;
        }
    }
    // A busy owner's mail may be stolen (and the key moves with it), so not
    // every task follows; on an idle pool nearly all do.
    assert!(followed >= 32, "only {followed} of 39 followed the key");
}

#[test]
fn metrics_count_tasks_latency_and_busy_time() {
    let pool = WorkerPool::new(2, 0).unwrap();
    let m0 = pool.metrics();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            pool.spawn(TaskSpec::new("spin", Capability::Physics), || {
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(200) {}
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let m1 = pool.metrics();
    let run: u64 = m1.workers.iter().map(|w| w.tasks_run).sum::<u64>()
        - m0.workers.iter().map(|w| w.tasks_run).sum::<u64>();
    assert!(run >= 50);
    let rates = m1.since(&m0);
    let busy: f64 = rates.iter().map(|r| r.utilization).sum();
    assert!(busy > 0.2, "utilization {busy}");
    assert!(m1.latency_percentile_us(0.5) > 0.0);
    assert!(m1.latency_percentile_us(0.99) >= m1.latency_percentile_us(0.5));
}

#[test]
fn busy_time_is_counted_before_a_result_is_handed_over() {
    let pool = WorkerPool::new(1, 0).unwrap();
    let busy =
        |pool: &WorkerPool| -> u64 { pool.metrics().workers.iter().map(|w| w.busy_ns).sum() };
    // Inside a running task: the count at handover adds the time so far,
    // before the task has ended.
    let (seen, ()) = pool.join(
        || {
            std::thread::sleep(Duration::from_millis(60));
            registry::WorkerThread::count_busy_before_handover();
            busy(&pool)
        },
        || {},
    );
    assert!(seen >= 50_000_000, "busy {seen} ns inside the task");
    // A spawned task's time is in the metrics as soon as `join` returns, and
    // counted once: the end of the task adds only what came after.
    let before = busy(&pool);
    pool.spawn(TaskSpec::new("sleep", Capability::Physics), || {
        std::thread::sleep(Duration::from_millis(60))
    })
    .join()
    .unwrap();
    let after = busy(&pool);
    assert!(after - before >= 50_000_000, "busy {} ns", after - before);
    std::thread::sleep(Duration::from_millis(20));
    let settled = busy(&pool);
    assert!(
        settled - before < 75_000_000,
        "counted twice: {} ns",
        settled - before
    );
}

#[test]
fn latency_buckets_are_monotone_and_tight() {
    use super::metrics::{BUCKETS, bucket_of, bucket_value, percentile};
    let mut last = 0;
    for ns in (0..100_000u64)
        .step_by(37)
        .chain([1 << 20, 1 << 30, u64::MAX])
    {
        let b = bucket_of(ns);
        assert!(b >= last && b < BUCKETS);
        last = b;
        if (16..1 << 30).contains(&ns) {
            let v = bucket_value(b);
            assert!((v - ns as f64).abs() / ns as f64 <= 0.07, "{ns} -> {v}");
        }
    }
    let mut h = vec![0u64; BUCKETS];
    for ns in 1..=100u64 {
        h[bucket_of(ns * 1000)] += 1;
    }
    let p50 = percentile(&h, 0.5);
    assert!((p50 - 50_000.0).abs() < 4_000.0, "{p50}");
}

#[test]
fn the_balancer_gives_costly_regions_smaller_chunks() {
    let pool = WorkerPool::new(2, 0).unwrap();
    let mut bal = Balancer::new("clustered", 1);
    let n = 20_000;
    // Items in 0..2000 cost ~50x the others.
    let work = |r: std::ops::Range<usize>| {
        let mut acc = 0u64;
        for i in r {
            let reps = if i < 2000 { 500 } else { 10 };
            for k in 0..reps {
                acc = acc.wrapping_mul(31).wrapping_add(k ^ i as u64);
            }
        }
        std::hint::black_box(acc);
    };
    for _ in 0..6 {
        bal.run(&pool, Priority::Normal, n, work);
    }
    let plan = bal.plan(n, 2);
    assert_eq!(plan.first().unwrap().start, 0);
    assert_eq!(plan.last().unwrap().end, n);
    let heavy = plan.iter().filter(|c| c.end <= 2000).count();
    assert!(heavy >= 3, "heavy region got {heavy} chunks: {plan:?}");
    assert!(bal.last_makespan_ns > 0);
}

#[test]
fn a_pool_needs_a_compute_worker() {
    assert!(matches!(
        WorkerPool::new(0, 1),
        Err(PoolError::NoComputeWorker)
    ));
}

#[test]
fn jobs_come_from_the_workers_slab_caches() {
    let pool = WorkerPool::new(2, 0).unwrap();
    let total = AtomicUsize::new(0);
    for _ in 0..20 {
        pool.scope(|s| {
            for k in 0..200 {
                let total = &total;
                s.spawn(move |_| {
                    total.fetch_add(k, Ordering::Relaxed);
                });
            }
        });
    }
    assert_eq!(total.load(Ordering::Relaxed), 20 * (0..200).sum::<usize>());
    // Graph tasks submitted from a worker use the cache too.
    pool.install(Capability::Physics, Priority::Normal, || {
        let mut g = TaskGraph::new();
        for k in 0..50 {
            let total = &total;
            g.add(
                TaskSpec::new(format!("t{k}"), Capability::Physics),
                move || {
                    total.fetch_add(1, Ordering::Relaxed);
                },
            );
        }
        assert!(pool.run(g).unwrap().is_ok());
    });
    let stats = pool.cache_stats();
    assert_eq!(stats.len(), 2);
    // 4,000 scope jobs from one worker: hits are published per 1,024 (up
    // to 1,023 may still be pending), so at least two batches show; the
    // first allocation was a miss.
    let hits: u64 = stats.iter().map(|s| s.hits).sum();
    let misses: u64 = stats.iter().map(|s| s.misses).sum();
    assert!(hits >= 2 * 1024, "{stats:?}");
    assert!(misses >= 1 && misses < hits / 10, "{stats:?}");
}

#[test]
fn only_compute_workers_search_on_and_only_while_a_client_waits() {
    use super::registry::keeps_searching_for_clients as searches;
    // A compute worker with a client waiting: up to a millisecond.
    assert!(searches(true, 1, 0));
    assert!(searches(true, 2, 999_999));
    assert!(!searches(true, 1, 1_000_000));
    // Nobody waiting (between frames), or an I/O worker: parks.
    assert!(!searches(true, 0, 10));
    assert!(!searches(false, 1, 10));
}

#[test]
fn a_run_from_outside_counts_as_a_waiting_client_until_it_returns() {
    let pool = WorkerPool::new(2, 1).unwrap();
    assert_eq!(pool.registry().waiting_clients(), 0);
    let seen = Mutex::new(Vec::new());
    let mut g = TaskGraph::new();
    let spec = || TaskSpec::new("probe", Capability::Physics);
    let (pool_ref, seen_ref) = (&pool, &seen);
    let first = g.add(spec(), move || {
        seen_ref
            .lock()
            .unwrap()
            .push(pool_ref.registry().waiting_clients());
        // A graph run from inside a worker is not a client: still one.
        let mut inner = TaskGraph::new();
        inner.add(spec(), move || {
            seen_ref
                .lock()
                .unwrap()
                .push(pool_ref.registry().waiting_clients());
        });
        pool_ref.run(inner).unwrap();
    });
    g.add_after(spec(), &[first], move || {
        seen_ref
            .lock()
            .unwrap()
            .push(pool_ref.registry().waiting_clients());
    });
    pool.run(g).unwrap();
    assert_eq!(*seen.lock().unwrap(), [1, 1, 1]);
    assert_eq!(pool.registry().waiting_clients(), 0);
    // `install` from outside counts too.
    let during = pool.install(Capability::Physics, Priority::Normal, || {
        pool.registry().waiting_clients()
    });
    assert_eq!(during, 1);
    assert_eq!(pool.registry().waiting_clients(), 0);
}
