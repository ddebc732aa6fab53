//! Side-by-side benchmark suites behind `particle-forge bench`. Each suite
//! runs the project's code and its peer in the same process, on the same
//! data, alternating, and reports ratios (peer time ÷ our time: higher is
//! better for us). Progress goes to stderr; with `--json` the last stdout
//! line is one JSON object.

pub mod chain;
pub mod memory;
pub mod overlay;
pub mod physics;
pub mod workers;

use std::time::Instant;

/// Median wall time of `reps` runs of `f`, in seconds (after one warm-up).
pub fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut t)
}

/// The middle sample (the upper one of an even count), sorting in place; 0
/// for none.
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

/// Median times of two contenders, measured interleaved so that drift in
/// the machine (other load, frequency) hits both alike: (ours, peer).
pub fn side_by_side(reps: usize, mut ours: impl FnMut(), mut peer: impl FnMut()) -> (f64, f64) {
    ours();
    peer();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        ours();
        a.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        peer();
        b.push(t0.elapsed().as_secs_f64());
    }
    (median(&mut a), median(&mut b))
}

/// The `q` quantile of samples (sorted in place).
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i]
}

pub fn geomean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp()
}

/// One progress line on stderr.
pub fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}
