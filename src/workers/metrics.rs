//! Per-worker counters, written only by their worker (plain load + store, no
//! locked instructions) and read by anyone as a [`PoolMetrics`] snapshot.
//! Each worker's block is padded to a cache line so counting never causes
//! false sharing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Log-linear latency buckets: exact below 16 ns, then 8 per power of two.
const SUB: usize = 8;
const LINEAR: usize = 16;
const OCTAVES: usize = 40;
pub(crate) const BUCKETS: usize = LINEAR + (OCTAVES - 4) * SUB;

pub(crate) fn bucket_of(ns: u64) -> usize {
    if ns < LINEAR as u64 {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros() as usize; // ≥ 4
    let sub = (ns >> (octave - 3)) as usize & (SUB - 1);
    (LINEAR + (octave - 4) * SUB + sub).min(BUCKETS - 1)
}

/// The middle of a bucket's range, in nanoseconds.
pub(crate) fn bucket_value(b: usize) -> f64 {
    if b < LINEAR {
        return b as f64;
    }
    let octave = (b - LINEAR) / SUB + 4;
    let sub = (b - LINEAR) % SUB;
    let lo = (1u64 << octave) + ((sub as u64) << (octave - 3));
    lo as f64 + (1u64 << (octave - 3)) as f64 / 2.0
}

pub(crate) struct WorkerMetrics {
    pub tasks_run: AtomicU64,
    pub tasks_stolen: AtomicU64,
    pub tasks_failed: AtomicU64,
    pub busy_ns: AtomicU64,
    pub latency: Box<[AtomicU64]>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self {
            tasks_run: AtomicU64::new(0),
            tasks_stolen: AtomicU64::new(0),
            tasks_failed: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// `+= by` for a counter that only its owning worker writes.
#[inline]
pub(crate) fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Relaxed).wrapping_add(by), Relaxed);
}

impl WorkerMetrics {
    pub fn record_latency(&self, ns: u64) {
        bump(&self.latency[bucket_of(ns)], 1);
    }
}

/// One worker's figures at one instant; rates come from two snapshots.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WorkerSnapshot {
    pub name: String,
    pub capabilities: String,
    pub tasks_run: u64,
    pub tasks_stolen: u64,
    pub tasks_failed: u64,
    pub busy_ns: u64,
    pub queue_depth: usize,
    pub asleep: bool,
    #[serde(skip)]
    pub latency: Vec<u64>,
}

/// The whole pool at one instant.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PoolMetrics {
    /// Which pool (unique in the process): rates come only from two
    /// snapshots of the same one.
    pub pool: u64,
    /// Nanoseconds since the pool started.
    pub at_ns: u64,
    pub workers: Vec<WorkerSnapshot>,
    pub injector_depth: usize,
}

/// Per-worker rates between two snapshots.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WorkerRates {
    pub name: String,
    /// Busy time ÷ wall time, 0..1.
    pub utilization: f64,
    pub tasks_per_s: f64,
    pub stolen_per_s: f64,
    pub failed: u64,
    pub queue_depth: usize,
    /// Submit-to-start latency over the interval (tasks that were timed).
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
}

impl PoolMetrics {
    /// Rates from `earlier` to `self` (same pool).
    pub fn since(&self, earlier: &PoolMetrics) -> Vec<WorkerRates> {
        let wall = (self.at_ns.saturating_sub(earlier.at_ns)).max(1) as f64;
        self.workers
            .iter()
            .zip(&earlier.workers)
            .map(|(now, then)| {
                let lat: Vec<u64> = now
                    .latency
                    .iter()
                    .zip(&then.latency)
                    .map(|(a, b)| a.saturating_sub(*b))
                    .collect();
                WorkerRates {
                    name: now.name.clone(),
                    utilization: (now.busy_ns.saturating_sub(then.busy_ns) as f64 / wall).min(1.0),
                    tasks_per_s: now.tasks_run.saturating_sub(then.tasks_run) as f64 * 1e9 / wall,
                    stolen_per_s: now.tasks_stolen.saturating_sub(then.tasks_stolen) as f64 * 1e9
                        / wall,
                    failed: now.tasks_failed,
                    queue_depth: now.queue_depth,
                    latency_p50_us: percentile(&lat, 0.50) / 1e3,
                    latency_p99_us: percentile(&lat, 0.99) / 1e3,
                }
            })
            .collect()
    }

    /// Submit-to-start latency percentile over all workers since the start, µs.
    pub fn latency_percentile_us(&self, q: f64) -> f64 {
        let mut all = vec![0u64; BUCKETS];
        for w in &self.workers {
            for (a, b) in all.iter_mut().zip(&w.latency) {
                *a += b;
            }
        }
        percentile(&all, q) / 1e3
    }
}

/// The `q` quantile of a bucket histogram, in nanoseconds (0 when empty).
pub(crate) fn percentile(buckets: &[u64], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (b, &c) in buckets.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return bucket_value(b);
        }
    }
    bucket_value(BUCKETS - 1)
}
