//! Circle contacts: one Jacobi pass of position-based resolution, each
//! touching pair evaluated once.
//!
//! Pass 1: every particle `i` looks only forward: at the rows after it in
//! its own band up to a band's height to its right, and at the rows of the
//! band above within ± a band's height in x (`grid` keeps both runs
//! contiguous), so each pair is found once. The small particles' bands and
//! the big ones' (`grid`) are searched so, each set on its own; then each
//! big particle searches the small particles' bands within its reach, so a
//! pair of a big and a small particle is found once too, from the big
//! side. The pair is pushed apart along the line of centres and its
//! relative sliding this substep is removed up to the Coulomb bound
//! `friction × overlap`; the term goes to `i` and, opposite, to `j`, split
//! in inverse-mass proportion (with mass scaling for stacking under
//! gravity) and divided by the larger contact count of the two from the
//! last pass, so a particle pressed from many sides does not overshoot.
//!
//! The pair terms come in three forms. A grain whose two runs are both
//! short (at most `one_by_one` candidates each: two for particles of one
//! size, one where sizes vary) takes them one candidate at a time. Any
//! other grain, on a CPU with AVX2 and FMA, takes both runs in eight-lane
//! groups (`avx2`): its own band's run in the low four lanes, the band
//! above's in the high four, masks instead of branches. Without them, a
//! longer run goes four candidates per vector (as does a big particle's
//! search) and a short one one by one. Tests hold all three to the same
//! sums. The band loop is compiled for AVX-512VL, AVX2+FMA and plain SSE2
//! and picked at run time (`multiversion`); the vector forms gain from
//! AVX-512's 32 registers too (fewer spills), their lanes being
//! candidates.
//!
//! Writing to `j` is made race-free and deterministic by parity: a band's
//! particles write only to their own band and the next, so all even bands
//! run in parallel, then all odd ones, and every sum is added in the same
//! order whatever the thread count. The big-with-small search goes by
//! blocks of big bands the same way (`big_small_phase`).
//!
//! Pass 2 applies the sums to positions and, as position-based dynamics
//! does, to velocities (`Δx / h`), except that a correction may not make a
//! particle faster than it was or than `speed_passed` (0.9) of its fastest
//! neighbour's speed: pushing apart the overlap of a pile under its own
//! weight must not launch its top layer, and motion passed from grain to
//! grain loses a little at each, so a deep pile's churn dies out. Pair
//! terms are equal and opposite, so momentum is conserved up to that limit
//! and the per-particle correction cap.

#[cfg(target_arch = "x86_64")]
mod avx2;

use super::{PhysicsParams, grid::Grid};
use crate::particles::ParticleStore;
use crate::workers::{Balancer, Priority, WorkerPool};
use wide::f32x4;

const GRAIN: usize = 4096;

/// Per-particle corrections of one pass, and each particle's friction
/// (reused between passes); the balancers that learn what each band costs.
pub struct Scratch {
    dx: Vec<f32>,
    dy: Vec<f32>,
    speed2: Vec<f32>,
    /// Contacts found in this pass, stored into the store afterwards.
    n: Vec<f32>,
    /// Friction and 1 / max(last pass's contacts, 1), per particle, padded
    /// like the store's columns.
    mu: Vec<f32>,
    inv_n: Vec<f32>,
    /// One per band parity: a pile makes its bands far costlier than the
    /// air above it, so chunks are cut by measured cost.
    stripes: [Balancer; 2],
    /// The same for the blocks of the big-with-small search (the big
    /// particles may all sit in a few of them).
    big_small: [Balancer; 2],
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            dx: Vec::new(),
            dy: Vec::new(),
            speed2: Vec::new(),
            n: Vec::new(),
            mu: Vec::new(),
            inv_n: Vec::new(),
            stripes: [
                Balancer::new("physics.contacts.even", 0xC0_11DE),
                Balancer::new("physics.contacts.odd", 0xC0_11DF),
            ],
            big_small: [
                Balancer::new("physics.contacts.big_small.even", 0xC0_11E0),
                Balancer::new("physics.contacts.big_small.odd", 0xC0_11E1),
            ],
        }
    }
}

/// One particle's own values, each in every lane, as the contact kernel
/// reads them.
#[derive(Clone, Copy)]
struct Me {
    /// 1 / max(contacts in the last pass, 1).
    inv_n: f32x4,
    x: f32x4,
    y: f32x4,
    r: f32x4,
    w: f32x4,
    vx: f32x4,
    vy: f32x4,
    mu: f32x4,
    speed2: f32x4,
}

/// What one particle gathers over its candidate runs, lane by lane; reduced
/// once per particle.
struct Acc {
    ax: f32x4,
    ay: f32x4,
    hits: f32x4,
    speed2: f32x4,
}

impl Me {
    /// `one`'s values in every lane.
    #[inline(always)]
    fn splat(one: &One) -> Self {
        Self {
            inv_n: f32x4::splat(one.inv_n),
            x: f32x4::splat(one.x),
            y: f32x4::splat(one.y),
            r: f32x4::splat(one.r),
            w: f32x4::splat(one.w),
            vx: f32x4::splat(one.vx),
            vy: f32x4::splat(one.vy),
            mu: f32x4::splat(one.mu),
            speed2: f32x4::splat(one.speed2),
        }
    }
}

impl Acc {
    #[inline(always)]
    fn zero() -> Self {
        let zero = f32x4::ZERO;
        Self {
            ax: zero,
            ay: zero,
            hits: zero,
            speed2: zero,
        }
    }

    /// The lanes summed (the fastest neighbour: their largest), added to
    /// what the one-by-one path gathered for the same particle.
    #[inline(always)]
    fn reduce_onto(&self, one: &One) -> One {
        One {
            x: self.ax.reduce_add() + one.x,
            y: self.ay.reduce_add() + one.y,
            n: self.hits.reduce_add() + one.n,
            speed2: self.speed2.to_array().into_iter().fold(one.speed2, max),
            ..One::default()
        }
    }
}

/// The columns the contact kernel reads, whole (spans index into them).
/// Each holds at least `rows + LANES` values (checked in `new`): the
/// kernels read rows below `rows`, four lanes at a time too, without a
/// bounds check per candidate, once a task has checked its rows.
#[derive(Clone, Copy)]
struct Cols<'a> {
    rows: usize,
    x: &'a [f32],
    y: &'a [f32],
    r: &'a [f32],
    w: &'a [f32],
    vx: &'a [f32],
    vy: &'a [f32],
    mu: &'a [f32],
    inv_n: &'a [f32],
}

impl<'a> Cols<'a> {
    fn new(rows: usize, [x, y, r, w]: [&'a [f32]; 4], [vx, vy, mu, inv_n]: [&'a [f32]; 4]) -> Self {
        for col in [x, y, r, w, vx, vy, mu, inv_n] {
            assert!(
                col.len() >= rows + LANES,
                "a contact column holds {} values for {rows} rows",
                col.len()
            );
        }
        Self {
            rows,
            x,
            y,
            r,
            w,
            vx,
            vy,
            mu,
            inv_n,
        }
    }
}

/// Row `j` of a column, without a bounds check.
///
/// # Safety
/// `col` is a column of a `Cols` and `j` is below its `rows`.
#[inline(always)]
unsafe fn one(col: &[f32], j: usize) -> f32 {
    debug_assert!(j < col.len());
    // SAFETY: `j < rows <= col.len()` by the caller's contract.
    unsafe { *col.get_unchecked(j) }
}

/// The sums one band task may write: rows `base..base + dx.len()` (its own
/// band and the next).
struct Sums<'a> {
    base: usize,
    dx: &'a mut [f32],
    dy: &'a mut [f32],
    hits: &'a mut [f32],
    speed2: &'a mut [f32],
}

impl Sums<'_> {
    /// Adds what particle `i` gathered (`push`, contacts, fastest
    /// neighbour) to its own sums; returns its contacts.
    #[inline(always)]
    fn add_own(&mut self, i: usize, gathered: &One) -> u64 {
        let k = i - self.base;
        self.dx[k] += gathered.x;
        self.dy[k] += gathered.y;
        self.hits[k] += gathered.n;
        self.speed2[k] = max(self.speed2[k], gathered.speed2);
        gathered.n as u32 as u64
    }

    /// Whether rows `lo..hi` all have sums in this window.
    fn covers(&self, lo: usize, hi: usize) -> bool {
        let lens = [
            self.dx.len(),
            self.dy.len(),
            self.hits.len(),
            self.speed2.len(),
        ];
        lo >= self.base && hi >= lo && lens.into_iter().all(|len| hi - self.base <= len)
    }
}

/// Candidates handled side by side: one SSE register of f32.
const LANES: usize = 4;

/// `VALID[m]` keeps the first `m` lanes.
const VALID: [[f32; LANES]; LANES + 1] = {
    let on = f32::from_bits(u32::MAX);
    [
        [0.0, 0.0, 0.0, 0.0],
        [on, 0.0, 0.0, 0.0],
        [on, on, 0.0, 0.0],
        [on, on, on, 0.0],
        [on, on, on, on],
    ]
};

/// `LANES` consecutive values of a column from row `j`, without a bounds
/// check.
///
/// # Safety
/// `col` is a column of a `Cols` and `j` is below its `rows` (a column holds
/// `LANES` values past its rows).
#[inline(always)]
unsafe fn lanes(col: &[f32], j: usize) -> f32x4 {
    debug_assert!(j + LANES <= col.len());
    // SAFETY: `j + LANES <= col.len()` by the caller's contract; an
    // unaligned read of plain floats.
    f32x4::new(unsafe { col.as_ptr().add(j).cast::<[f32; LANES]>().read_unaligned() })
}

/// Adds `v` to `out[k..k + LANES]`, lane by lane where the slice ends early
/// (those lanes are masked, so `v` is zero there).
#[inline(always)]
fn add_lanes(out: &mut [f32], k: usize, v: f32x4) {
    match out.get_mut(k..k + LANES) {
        Some(s) => {
            let sum = f32x4::new((&*s).try_into().unwrap()) + v;
            s.copy_from_slice(&sum.to_array());
        }
        None => {
            for (o, x) in out[k..].iter_mut().zip(v.to_array()) {
                *o += x;
            }
        }
    }
}

/// Raises `out[k..k + LANES]` to at least `v`, lane by lane.
#[inline(always)]
fn max_lanes(out: &mut [f32], k: usize, v: f32x4) {
    match out.get_mut(k..k + LANES) {
        Some(s) => {
            let m = f32x4::new((&*s).try_into().unwrap()).fast_max(v);
            s.copy_from_slice(&m.to_array());
        }
        None => {
            for (o, x) in out[k..].iter_mut().zip(v.to_array()) {
                *o = o.max(x);
            }
        }
    }
}

/// All pairs between `me` (row `i`) and rows `lo..hi` (all after `i`),
/// `LANES` candidates at a time with masks instead of per-candidate
/// branches. Rows past `hi` are read (the columns are padded) and masked
/// out. Adds `me`'s share to `acc` and the opposite share to each
/// neighbour's sums.
///
/// # Safety
/// `hi <= c.rows`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn span_pairs(
    me: &Me,
    c: Cols<'_>,
    lo: usize,
    hi: usize,
    h: f32,
    stack: f32,
    sums: &mut Sums<'_>,
    acc: &mut Acc,
) {
    let mut j = lo;
    while j < hi {
        let valid = f32x4::new(VALID[(hi - j).min(LANES)]);
        // SAFETY: `j < hi <= c.rows` (this function's contract), here and
        // for the lanes below.
        let (x, y, r) = unsafe { (lanes(c.x, j), lanes(c.y, j), lanes(c.r, j)) };
        let dx = me.x - x;
        let dy = me.y - y;
        let d2 = dx * dx + dy * dy;
        let rr = me.r + r;
        let hit = valid & d2.simd_lt(rr * rr);
        // Most groups touch nothing: skip the rest of the work for them.
        if hit.any() {
            // Coincident centres (they touch): push `me`, the earlier row,
            // towards -x.
            let coincident = d2.simd_lt(f32x4::splat(1e-10));
            let dx = dx - (coincident & f32x4::splat(1e-4));
            let d2 = dx * dx + dy * dy;
            // SAFETY: as above.
            let (w, vx, vy, mu, inv_n) = unsafe {
                (
                    lanes(c.w, j),
                    lanes(c.vx, j),
                    lanes(c.vy, j),
                    lanes(c.mu, j),
                    lanes(c.inv_n, j),
                )
            };
            // Each pair's correction is divided by the larger contact count
            // of the two (from the last pass): a particle pressed from many
            // sides does not overshoot.
            // (1 / max(n, 1) is kept per particle: the larger count is
            // the smaller reciprocal.)
            let scale = inv_n.fast_min(me.inv_n);
            let d = d2.sqrt();
            let overlap = (rr - d) & hit;
            // Mass scaling for stacking: the particle above acts lighter by
            // about exp(stack × height difference), so a pile is held up from
            // the bottom in one pass instead of sagging until many passes
            // agree. The weight is the (2,2) Padé approximant of
            // exp(-stack × dy): positive, decreasing, and f(-x) = 1 / f(x),
            // so the two shares of a pair add up to one; far cheaper than
            // `exp`. Masked lanes may hold anything; `hit` zeroes their terms.
            let s = f32x4::splat(stack) * dy;
            let (twelve, six) = (f32x4::splat(12.0), f32x4::splat(6.0));
            let num = twelve - six * s + s * s;
            let den = twelve + six * s + s * s;
            // One division serves both 1 / d and the mass share
            // `frac = a / (a + b)`: q = 1 / (d (a + b)).
            let (a, ab) = (me.w * den, me.w * den + w * num);
            let q = f32x4::ONE / (d * ab);
            let inv_d = (ab * q) & hit;
            let frac = (a * d * q) & hit;
            let (nx, ny) = (dx * inv_d, dy * inv_d);
            // Relative tangential move this substep, removed up to the
            // Coulomb bound `mu × overlap`.
            let bound = f32x4::splat(0.5) * (me.mu + mu) * overlap;
            let slip = (((me.vx - vx) * -ny + (me.vy - vy) * nx) * f32x4::splat(h))
                .fast_max(-bound)
                .fast_min(bound);
            let tx = (nx * overlap + ny * slip) * scale;
            let ty = (ny * overlap - nx * slip) * scale;
            acc.ax += tx * frac;
            acc.ay += ty * frac;
            let k = j - sums.base;
            let other = f32x4::ONE - frac;
            add_lanes(sums.dx, k, -(tx * other));
            add_lanes(sums.dy, k, -(ty * other));
            let one = f32x4::ONE & hit;
            acc.hits += one;
            add_lanes(sums.hits, k, one);
            acc.speed2 = acc.speed2.fast_max((vx * vx + vy * vy) & hit);
            max_lanes(sums.speed2, k, me.speed2 & hit);
        }
        j += LANES;
    }
}

/// The same pair terms as `span_pairs` (a test holds the two to the same
/// results), one candidate at a time: cheaper
/// for the short runs of a uniform pile (one or two candidates), where a
/// vector group would be mostly masked lanes.
///
/// # Safety
/// `hi <= c.rows` and `sums.covers(lo, hi)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn span_pairs_one_by_one(
    me: &One,
    c: Cols<'_>,
    lo: usize,
    hi: usize,
    h: f32,
    stack: f32,
    sums: &mut Sums<'_>,
    acc: &mut One,
) {
    for j in lo..hi {
        // SAFETY: `lo <= j < hi <= c.rows` (this function's contract).
        let (xj, yj, rj) = unsafe { (one(c.x, j), one(c.y, j), one(c.r, j)) };
        let mut dx = me.x - xj;
        let dy = me.y - yj;
        let mut d2 = dx * dx + dy * dy;
        let rr = me.r + rj;
        if d2 >= rr * rr {
            continue;
        }
        if d2 < 1e-10 {
            // Coincident centres, as in `span_pairs`.
            dx -= 1e-4;
            d2 = dx * dx + dy * dy;
        }
        // SAFETY: as above.
        let (vx, vy, inv_n, w, mu) = unsafe {
            (
                one(c.vx, j),
                one(c.vy, j),
                one(c.inv_n, j),
                one(c.w, j),
                one(c.mu, j),
            )
        };
        let scale = min(inv_n, me.inv_n);
        let d = d2.sqrt();
        let overlap = rr - d;
        let s = stack * dy;
        let num = 12.0 - 6.0 * s + s * s;
        let den = 12.0 + 6.0 * s + s * s;
        let (a, ab) = (me.w * den, me.w * den + w * num);
        let q = 1.0 / (d * ab);
        let (inv_d, frac) = (ab * q, a * d * q);
        let (nx, ny) = (dx * inv_d, dy * inv_d);
        let bound = 0.5 * (me.mu + mu) * overlap;
        let slip = min(
            max(((me.vx - vx) * -ny + (me.vy - vy) * nx) * h, -bound),
            bound,
        );
        let tx = (nx * overlap + ny * slip) * scale;
        let ty = (ny * overlap - nx * slip) * scale;
        acc.x += tx * frac;
        acc.y += ty * frac;
        acc.n += 1.0;
        acc.speed2 = max(acc.speed2, vx * vx + vy * vy);
        let k = j - sums.base;
        let other = 1.0 - frac;
        // SAFETY: `sums.covers(lo, hi)` (this function's contract) and
        // `lo <= j < hi`, so `k` is inside all four windows.
        unsafe {
            *sums.dx.get_unchecked_mut(k) -= tx * other;
            *sums.dy.get_unchecked_mut(k) -= ty * other;
            *sums.hits.get_unchecked_mut(k) += 1.0;
            let s2 = sums.speed2.get_unchecked_mut(k);
            *s2 = max(*s2, me.speed2);
        }
    }
}

/// One particle's values (or, as an accumulator, its sums: push, contacts,
/// fastest neighbour) for the one-by-one path.
#[derive(Clone, Copy, Default)]
struct One {
    x: f32,
    y: f32,
    r: f32,
    w: f32,
    vx: f32,
    vy: f32,
    mu: f32,
    /// 1 / max(contacts, 1) as input; contacts found as an accumulator.
    inv_n: f32,
    n: f32,
    speed2: f32,
}

impl One {
    /// Row `i`'s own values, as the kernels read them (its x the caller
    /// has read already).
    ///
    /// # Safety
    /// `i` is below `c.rows`.
    #[inline(always)]
    unsafe fn of(c: Cols<'_>, i: usize, x: f32) -> Self {
        // SAFETY: `i < c.rows` (this function's contract).
        let (y, r, w, vx, vy, mu, inv_n) = unsafe {
            (
                one(c.y, i),
                one(c.r, i),
                one(c.w, i),
                one(c.vx, i),
                one(c.vy, i),
                one(c.mu, i),
                one(c.inv_n, i),
            )
        };
        Self {
            x,
            y,
            r,
            w,
            vx,
            vy,
            mu,
            inv_n,
            n: 0.0,
            speed2: vx * vx + vy * vy,
        }
    }
}

/// `max` and `min` without NaN handling (one instruction each); inputs are
/// finite.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

#[inline(always)]
fn min(a: f32, b: f32) -> f32 {
    if a < b { a } else { b }
}

/// The four sums from row `at` on, not yet handed out: cut front to back
/// into the disjoint windows of parallel tasks.
struct SumsLeft<'a> {
    at: usize,
    cols: [&'a mut [f32]; 4],
}

impl<'a> SumsLeft<'a> {
    /// `cols` (dx, dy, hits, speed2) hold the sums of rows `at..`.
    fn new(at: usize, cols: [&'a mut [f32]; 4]) -> Self {
        Self { at, cols }
    }

    /// The window of rows `start..end`, which begin at or after the end of
    /// the last window handed out.
    fn window(&mut self, start: usize, end: usize) -> Sums<'a> {
        let (skip, take) = (start - self.at, end - start);
        self.at = end;
        let [dx, dy, hits, speed2] = self.cols.each_mut().map(|rest| {
            let (_, tail) = std::mem::take(rest).split_at_mut(skip);
            let (window, tail) = tail.split_at_mut(take);
            *rest = tail;
            window
        });
        Sums {
            base: start,
            dx,
            dy,
            hits,
            speed2,
        }
    }
}

/// Every pair with a particle of band `b` as its earlier row and one of
/// the same set of bands (`b + 1` is searched when it is below `top`);
/// returns how many touch. `sums` covers bands `b` and `b + 1`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
fn band_pairs(
    (b, top): (usize, usize),
    grid: &Grid,
    c: Cols<'_>,
    (reach, one_by_one): (f32, usize),
    h: f32,
    stack: f32,
    sums: &mut Sums<'_>,
) -> u64 {
    let (lo, hi) = grid.band_rows(b);
    let (up_lo, up_hi) = if b + 1 < top {
        grid.band_rows(b + 1)
    } else {
        (hi, hi)
    };
    // Every row read or written below lies in `lo..up_hi`: checked once
    // here, so the kernels need no check per candidate.
    assert!(
        up_hi <= c.rows && sums.covers(lo, up_hi),
        "band {b}: rows {lo}..{up_hi} outside the task's columns or sums"
    );
    let x = c.x;
    // Candidate runs: own band `i + 1..same`, band above `above..above_end`.
    // x grows with `i`, so all three bounds only move forward.
    let (mut same, mut above, mut above_end) = (lo, up_lo, up_lo);
    let mut touching = 0u64;
    for i in lo..hi {
        // SAFETY (every `one`, `span_pairs` and `span_pairs_one_by_one`
        // below): `i`, `same < hi`, `above`, `above_end < up_hi` and the runs
        // they bound all lie in `lo..up_hi`, checked above against the
        // columns' rows and the sums' window.
        let xi = unsafe { one(x, i) };
        // SAFETY (the three skips): each starts at or below its end, `hi`
        // or `up_hi`, both at most `c.rows`.
        same = unsafe {
            skip(x, same.max(i + 1), hi, |v| {
                v.simd_lt(f32x4::splat(xi + reach))
            })
        };
        above = unsafe { skip(x, above, up_hi, |v| v.simd_le(f32x4::splat(xi - reach))) };
        above_end = unsafe {
            skip(x, above_end.max(above), up_hi, |v| {
                v.simd_lt(f32x4::splat(xi + reach))
            })
        };
        if same == i + 1 && above == above_end {
            // No candidate at all (common in a sparse gas): nothing to add.
            continue;
        }
        // SAFETY: as above.
        let mine = unsafe { One::of(c, i, xi) };
        let mut acc1 = One::default();
        if same - i <= one_by_one + 1 && above_end - above <= one_by_one {
            // Short runs: one candidate at a time.
            // SAFETY: as above.
            unsafe {
                span_pairs_one_by_one(&mine, c, i + 1, same, h, stack, sums, &mut acc1);
                span_pairs_one_by_one(&mine, c, above, above_end, h, stack, sums, &mut acc1);
            }
            touching += sums.add_own(i, &acc1);
            continue;
        }
        // With AVX2 and FMA, both runs side by side in eight lanes (`avx2`).
        #[cfg(target_arch = "x86_64")]
        if multiversion::target::target_cfg_f!(all(target_feature = "avx2", target_feature = "fma"))
        {
            // SAFETY: this clone of the function runs only on CPUs with
            // AVX2 and FMA; both runs lie in `lo..up_hi`, as above.
            let theirs = unsafe {
                avx2::both_runs(&mine, c, (i + 1, same), (above, above_end), h, stack, sums)
            };
            touching += sums.add_own(i, &theirs);
            continue;
        }
        // A longer run goes four candidates at a time; the other, if short
        // (a small grain's own band usually holds one or two candidates
        // ahead while the band above holds three to five), still one by
        // one.
        let me = Me::splat(&mine);
        let mut acc = Acc::zero();
        // Opaque to the optimiser: otherwise it keeps a running pointer
        // per column for this path and steps all of them for every
        // particle, whichever path it takes (a tenth of the kernel's
        // instructions).
        let (first, above) = std::hint::black_box((i + 1, above));
        // SAFETY: as above.
        unsafe {
            if same - first <= one_by_one {
                span_pairs_one_by_one(&mine, c, first, same, h, stack, sums, &mut acc1);
            } else {
                span_pairs(&me, c, first, same, h, stack, sums, &mut acc);
            }
            if above_end - above <= one_by_one {
                span_pairs_one_by_one(&mine, c, above, above_end, h, stack, sums, &mut acc1);
            } else {
                span_pairs(&me, c, above, above_end, h, stack, sums, &mut acc);
            }
        }
        touching += sums.add_own(i, &acc.reduce_onto(&acc1));
    }
    touching
}

/// The first row from `from` on (at most `end`) whose x fails `passes`.
/// x grows along a band's rows, so the rows that pass are a prefix: four
/// are tested at once and the leading passes counted, so the usual move
/// of a row or two is one step with no branch on where it stops; a move
/// past four rows (a big grain's runs over the small bands, a band's first
/// grain) goes on by doubling steps, then halving. (Row by row, the three
/// pointers of `band_pairs` cost 3.0 ms of a 9.9 ms pass over the game's
/// 200k scene on one worker, mostly in loop exits no predictor can guess;
/// four at a time 1.1 ms.)
///
/// # Safety
/// `from <= end <= rows` of `x`'s `Cols` (a column holds `LANES` values
/// past its rows).
#[inline(always)]
unsafe fn skip(x: &[f32], mut from: usize, end: usize, passes: impl Fn(f32x4) -> f32x4) -> usize {
    // SAFETY: `from <= end <= rows` (this function's contract).
    let lead = passes(unsafe { lanes(x, from) })
        .to_bitmask()
        .trailing_ones() as usize;
    let step = lead.min(end - from);
    from += step;
    if step < LANES {
        return from;
    }
    // A long way (a big grain's runs over the small bands, a band's first
    // grain): doubling steps, then halving.
    // SAFETY: every `j` asked below is below `end <= rows`.
    let one = |j: usize| passes(f32x4::splat(unsafe { one(x, j) })).to_bitmask() & 1 != 0;
    let mut span = LANES;
    let mut hi = loop {
        let probe = from + span - 1;
        if probe >= end {
            break end;
        }
        if !one(probe) {
            break probe;
        }
        from = probe + 1;
        span *= 2;
    };
    while from < hi {
        let mid = from + (hi - from) / 2;
        if one(mid) {
            from = mid + 1;
        } else {
            hi = mid;
        }
    }
    from
}

/// The small particles' rows a big particle at height `y` may touch: the
/// small particles' bands within `reach` of it.
fn small_bands_near(grid: &Grid, y: f32, reach: f32) -> (usize, usize) {
    (
        grid.band_of(y - reach) as usize,
        grid.band_of(y + reach) as usize,
    )
}

/// Every pair of a big particle of big bands `b0..b1` with a small
/// particle; returns how many touch. A big particle `i` reaches
/// `r_i + cut`: it searches the small particles' bands within that height,
/// in each the x-sorted rows within `window` (the widest such reach), one
/// run per band found by pointers that only move forward as x grows, as in
/// `band_pairs`. `near` sums the small rows of bands `first..=last`;
/// `own` the big rows of `b0..b1`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
fn big_small_pairs(
    (b0, b1): (usize, usize),
    (first, last): (usize, usize),
    grid: &Grid,
    c: Cols<'_>,
    window: f32,
    h: f32,
    stack: f32,
    (near, own): (&mut Sums<'_>, &mut Sums<'_>),
) -> u64 {
    // Every small row read or written lies in the bands `first..=last`,
    // every big one in `b0..b1`: checked once here.
    let (near_lo, near_hi) = (grid.band_rows(first).0, grid.band_rows(last).1);
    let (own_lo, own_hi) = (grid.band_rows(b0).0, grid.band_rows(b1 - 1).1);
    assert!(
        near_hi <= c.rows && own_hi <= c.rows,
        "rows outside the columns"
    );
    assert!(near.covers(near_lo, near_hi) && own.covers(own_lo, own_hi));
    let mut touching = 0u64;
    let x = c.x;
    // Per small band `first + k`: its end and the run's two ends.
    let mut runs: Vec<(usize, usize, usize)> = Vec::with_capacity(last + 1 - first);
    for b in b0..b1 {
        let (lo, hi) = grid.band_rows(b);
        if lo == hi {
            continue;
        }
        // The runs start at the first big particle's window: the big ones
        // usually sit in a few places (a heavy pile), and walking the small
        // bands from the box's left wall to there cost more than the pairs.
        let left = x[lo] - window;
        runs.clear();
        runs.extend((first..=last).map(|band| {
            let (start, end) = grid.band_rows(band);
            let from = start + x[start..end].partition_point(|&v| v <= left);
            (end, from, from)
        }));
        for i in lo..hi {
            // SAFETY: `i` is a row of `b0..b1`, below `c.rows` (checked above).
            let mine = unsafe { One::of(c, i, one(x, i)) };
            let (xi, yi) = (mine.x, mine.y);
            let me = Me::splat(&mine);
            let mut acc = Acc::zero();
            let (lo_band, hi_band) = small_bands_near(grid, yi, mine.r + grid.cut);
            // Within the task's bands by construction; clamped all the same.
            let (from_k, to_k) = (
                lo_band.clamp(first, last) - first,
                hi_band.clamp(first, last) - first,
            );
            for run in &mut runs[from_k..=to_k] {
                let (end, from, to) = run;
                // SAFETY (both skips): `*from` and `*to` stay at or below
                // `*end`, the end of a band of `first..=last`, whose rows
                // are below `c.rows` (checked above).
                *from = unsafe { skip(x, *from, *end, |v| v.simd_le(f32x4::splat(xi - window))) };
                *to = unsafe {
                    skip(x, (*to).max(*from), *end, |v| {
                        v.simd_lt(f32x4::splat(xi + window))
                    })
                };
                // SAFETY: the run lies in a band of `first..=last`, whose
                // rows are below `c.rows` (checked above).
                unsafe { span_pairs(&me, c, *from, *to, h, stack, near, &mut acc) };
            }
            touching += own.add_own(i, &acc.reduce_onto(&One::default()));
        }
    }
    touching
}

/// The pairs of big particles with small ones. A big particle writes to
/// its own row and to small particles' rows within its reach, so big bands
/// go in fixed blocks tall enough that two blocks two apart never reach the
/// same small band: even blocks run in parallel, then odd ones. Blocks
/// whose reach would overlap anyway (at the box's edges, where heights
/// outside it share the border bands) are merged. The blocks depend only
/// on the geometry, so no sum's order depends on the thread count.
fn big_small_phase(
    grid: &Grid,
    cols: Cols<'_>,
    p: &PhysicsParams,
    (h, stack): (f32, f32),
    mut sums: [&mut [f32]; 4],
    balancers: &mut [Balancer; 2],
    pool: &WorkerPool,
) -> u64 {
    let (small, bands) = (grid.small_bands as usize, grid.bands as usize);
    let reach = p.max_radius + grid.cut;
    let block = ((2.0 * reach + grid.band_height) / grid.big_height).ceil() as usize;
    let small_rows = grid.band_rows(small).0;
    let mut touching = 0;
    for (parity, balancer) in balancers.iter_mut().enumerate() {
        // Per task: its big bands, the small bands they reach.
        let mut spans: Vec<((usize, usize), (usize, usize))> = Vec::new();
        for b0 in (small + parity * block..bands).step_by(2 * block) {
            let b1 = (b0 + block).min(bands);
            let y0 = (b0 - small) as f32 * grid.big_height;
            let y1 = (b1 - small) as f32 * grid.big_height;
            let (first, _) = small_bands_near(grid, y0, reach);
            let (_, last) = small_bands_near(grid, y1, reach);
            match spans.last_mut() {
                Some(((_, end), (_, top))) if first <= *top => {
                    *end = b1;
                    *top = (*top).max(last);
                }
                _ => spans.push(((b0, b1), (first, last))),
            }
        }
        // Small rows (the near windows) and big rows (the own windows).
        let [dx, dy, hits, sp] = sums.each_mut().map(|col| col.split_at_mut(small_rows));
        let mut small_left = SumsLeft::new(0, [dx.0, dy.0, hits.0, sp.0]);
        let mut big_left = SumsLeft::new(small_rows, [dx.1, dy.1, hits.1, sp.1]);
        let mut tasks = Vec::new();
        for &((b0, b1), (first, last)) in &spans {
            let near = small_left.window(grid.band_rows(first).0, grid.band_rows(last).1);
            let own = big_left.window(grid.band_rows(b0).0, grid.band_rows(b1 - 1).1);
            tasks.push(((b0, b1), (first, last), 0u64, near, own));
        }
        balancer.run_items(
            pool,
            Priority::FrameCritical,
            &mut tasks,
            |(bands, reach_bands, found, near, own)| {
                *found = big_small_pairs(
                    *bands,
                    *reach_bands,
                    grid,
                    cols,
                    reach,
                    h,
                    stack,
                    (near, own),
                );
            },
        );
        touching += tasks.iter().map(|t| t.2).sum::<u64>();
    }
    touching
}

/// Runs one pass; returns the number of touching pairs.
pub fn resolve(
    store: &mut ParticleStore,
    grid: &Grid,
    p: &PhysicsParams,
    h: f32,
    scratch: &mut Scratch,
    pool: &WorkerPool,
) -> u64 {
    let n = store.len();
    // Per-particle inputs in one parallel pass. The sums are zero here:
    // new rows come zeroed, and the last pass's apply zeroed each sum after
    // reading it (while its lines were in cache, instead of a pass of its
    // own over four columns).
    for v in [
        &mut scratch.dx,
        &mut scratch.dy,
        &mut scratch.speed2,
        &mut scratch.n,
    ] {
        v.resize(n, 0.0);
    }
    scratch.mu.resize(n + LANES, 0.0);
    scratch.inv_n.resize(n + LANES, 0.0);
    let s = store.padded_slices();
    let (x, y, vx, vy, r, w) = (s.x, s.y, s.vx, s.vy, s.radius, s.inv_mass);
    let n_prev = s.contacts;
    let kind = store.slices().kind;
    let friction = p.friction;
    let mut chunks: Vec<_> = scratch.mu[..n]
        .chunks_mut(GRAIN)
        .zip(scratch.inv_n[..n].chunks_mut(GRAIN))
        .enumerate()
        .collect();
    pool.for_each_mut(&mut chunks, |(chunk, (mu, inv_n))| {
        let base = *chunk * GRAIN;
        let end = base + mu.len();
        prepare_chunk(mu, inv_n, &kind[base..end], &n_prev[base..end], &friction);
    });
    let cols = Cols::new(n, [x, y, r, w], [vx, vy, &scratch.mu, &scratch.inv_n]);
    // The widest contact within a set of bands: its bands' height, and the
    // x window searched.
    let (small, bands) = (grid.small_bands as usize, grid.bands as usize);
    let reach = |b: usize| {
        if b < small {
            grid.band_height
        } else {
            grid.big_height
        }
    };
    // Mass scaling follows gravity; without gravity it is off (and momentum
    // is conserved exactly).
    let stack = if p.gravity == 0.0 {
        0.0
    } else {
        p.stacking * p.gravity.signum()
    };

    let mut touching = 0u64;
    for parity in 0..2 {
        // Carve the sums into disjoint windows: band b and b + 1, for every
        // b of this parity, in the small particles' bands and then in the
        // big ones'.
        let mut tasks = Vec::new();
        let mut left = SumsLeft::new(
            0,
            [
                &mut scratch.dx[..],
                &mut scratch.dy[..],
                &mut scratch.n[..],
                &mut scratch.speed2[..],
            ],
        );
        let small_firsts = (parity..small).step_by(2).map(|b| (b, small));
        let big_firsts = (small + parity..bands).step_by(2).map(|b| (b, bands));
        for (b, top) in small_firsts.chain(big_firsts) {
            let (start, end) = grid.band_rows(b);
            let end = if b + 1 < top {
                grid.band_rows(b + 1).1
            } else {
                end
            };
            tasks.push(((b, top), 0u64, left.window(start, end)));
        }
        let balancer = &mut scratch.stripes[parity];
        balancer.run_items(
            pool,
            Priority::FrameCritical,
            &mut tasks,
            |(bands, found, sums)| {
                let search = (reach(bands.0), p.one_by_one);
                *found = band_pairs(*bands, grid, cols, search, h, stack, sums);
            },
        );
        touching += tasks.iter().map(|t| t.1).sum::<u64>();
    }
    if bands > small {
        let sums = [
            &mut scratch.dx[..],
            &mut scratch.dy[..],
            &mut scratch.n[..],
            &mut scratch.speed2[..],
        ];
        let balancers = &mut scratch.big_small;
        touching += big_small_phase(grid, cols, p, (h, stack), sums, balancers, pool);
    }
    let contacts = touching;

    let (bw, bh, walls) = (p.width, p.height, p.walls);
    let s = store.slices_mut();
    let mut chunks: Vec<_> =
        s.x.chunks_mut(GRAIN)
            .zip(s.y.chunks_mut(GRAIN))
            .zip(s.vx.chunks_mut(GRAIN))
            .zip(s.vy.chunks_mut(GRAIN))
            .zip(s.radius.chunks(GRAIN))
            .zip(s.contacts.chunks_mut(GRAIN))
            .zip(
                scratch.dx[..n]
                    .chunks_mut(GRAIN)
                    .zip(scratch.dy[..n].chunks_mut(GRAIN))
                    .zip(scratch.speed2[..n].chunks_mut(GRAIN))
                    .zip(scratch.n[..n].chunks_mut(GRAIN)),
            )
            .collect();
    let cap = Caps {
        relax: p.relaxation,
        max_move: p.max_move,
        passed2: p.speed_passed * p.speed_passed,
        inv_h: 1.0 / h,
        width: bw,
        height: bh,
        walls,
    };
    pool.for_each_mut(
        &mut chunks,
        |((((((x, y), vx), vy), r), contacts), (((ddx, ddy), speed2), hits))| {
            contacts.copy_from_slice(hits);
            apply_chunk(x, y, vx, vy, r, (&ddx[..], &ddy[..], &speed2[..]), cap);
            // Zeroed for the next pass while in cache.
            ddx.fill(0.0);
            ddy.fill(0.0);
            speed2.fill(0.0);
            hits.fill(0.0);
        },
    );
    contacts
}

/// Friction and 1 / max(contacts, 1) per particle; selects instead of a
/// table lookup, so the loop vectorizes.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn prepare_chunk(
    mu: &mut [f32],
    inv_n: &mut [f32],
    kind: &[u8],
    n_prev: &[f32],
    friction: &[f32; 4],
) {
    let n = mu.len();
    let (inv_n, kind, n_prev) = (&mut inv_n[..n], &kind[..n], &n_prev[..n]);
    for i in 0..n {
        mu[i] = super::integrate::per_kind(friction, kind[i]);
        inv_n[i] = 1.0 / n_prev[i].max(1.0);
    }
}

/// What pass 2 needs besides the columns.
#[derive(Clone, Copy)]
struct Caps {
    relax: f32,
    max_move: f32,
    /// `speed_passed` squared.
    passed2: f32,
    inv_h: f32,
    width: f32,
    height: f32,
    walls: bool,
}

/// Pass 2 over one chunk: the sums applied to positions and velocities.
/// Branch-free (the caps are `min`s), so it vectorizes.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn apply_chunk(
    x: &mut [f32],
    y: &mut [f32],
    vx: &mut [f32],
    vy: &mut [f32],
    r: &[f32],
    (ddx, ddy, speed2): (&[f32], &[f32], &[f32]),
    c: Caps,
) {
    let n = x.len();
    let (y, vx, vy, r) = (&mut y[..n], &mut vx[..n], &mut vy[..n], &r[..n]);
    let (ddx, ddy, speed2) = (&ddx[..n], &ddy[..n], &speed2[..n]);
    for i in 0..n {
        let (ox, oy) = (x[i], y[i]);
        let (mut ax, mut ay) = (ddx[i] * c.relax, ddy[i] * c.relax);
        // Deep overlaps (a spawn inside a pile) are pushed out over several
        // substeps instead of all at once: scale down to the cap (a factor
        // of at most 1; an infinite one, for no push, also gives 1).
        let limit = c.max_move * r[i];
        let f = (limit / (ax * ax + ay * ay).sqrt()).min(1.0);
        ax *= f;
        ay *= f;
        let (mut nx, mut ny) = (ox + ax, oy + ay);
        if c.walls {
            nx = nx.max(r[i]).min(c.width - r[i]);
            ny = ny.max(r[i]).min(c.height - r[i]);
        }
        // Position-based dynamics: the correction is motion too. But it may
        // not make a particle faster than it was, or than a share of the
        // fastest particle touching it: pushing apart an old overlap (a pile
        // under its own weight) must not launch the top layer, nor a push
        // passed from grain to grain keep a deep pile churning.
        let (u0, v0) = (vx[i], vy[i]);
        let (u, v) = (u0 + (nx - ox) * c.inv_h, v0 + (ny - oy) * c.inv_h);
        let limit2 = (u0 * u0 + v0 * v0).max(speed2[i] * c.passed2);
        let g = (limit2 / (u * u + v * v)).sqrt().min(1.0);
        vx[i] = u * g;
        vy[i] = v * g;
        x[i] = nx;
        y[i] = ny;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::rng::Rng;

    /// Random particles, some coincident, as columns padded like the
    /// store's.
    struct Cloud {
        n: usize,
        x: Vec<f32>,
        y: Vec<f32>,
        r: Vec<f32>,
        w: Vec<f32>,
        vx: Vec<f32>,
        vy: Vec<f32>,
        mu: Vec<f32>,
        inv_n: Vec<f32>,
    }

    impl Cloud {
        fn new(n: usize, (width, height): (f32, f32), radii: (f32, f32), seed: u64) -> Self {
            let mut rng = Rng::new(seed);
            let mut col = |lo: f32, hi: f32| -> Vec<f32> {
                let mut v: Vec<f32> = (0..n).map(|_| rng.range(lo, hi)).collect();
                v.resize(n + LANES, 0.0);
                v
            };
            let (mut x, mut y, r) = (col(0.0, width), col(0.0, height), col(radii.0, radii.1));
            let (w, vx, vy) = (col(0.2, 2.0), col(-30.0, 30.0), col(-30.0, 30.0));
            let (mu, inv_n) = (col(0.0, 0.6), col(0.1, 1.0));
            // A few pairs on the same spot: the coincident-centre rule.
            for k in (0..n / 2).step_by(17) {
                x[k + 1] = x[k];
                y[k + 1] = y[k];
            }
            Self {
                n,
                x,
                y,
                r,
                w,
                vx,
                vy,
                mu,
                inv_n,
            }
        }

        fn cols(&self) -> Cols<'_> {
            Cols::new(
                self.n,
                [&self.x, &self.y, &self.r, &self.w],
                [&self.vx, &self.vy, &self.mu, &self.inv_n],
            )
        }

        /// Row `i`'s share of its contact with row `j`, written out
        /// plainly: push, and whether they touch.
        fn share(&self, i: usize, j: usize, h: f32, stack: f32) -> Option<(f32, f32)> {
            let mut dx = self.x[i] - self.x[j];
            let dy = self.y[i] - self.y[j];
            let rr = self.r[i] + self.r[j];
            if i == j || dx * dx + dy * dy >= rr * rr {
                return None;
            }
            if dx * dx + dy * dy < 1e-10 {
                dx += if i < j { -1e-4 } else { 1e-4 };
            }
            let d = (dx * dx + dy * dy).sqrt();
            let (nx, ny) = (dx / d, dy / d);
            let overlap = rr - d;
            let pade = |s: f32| (12.0 - 6.0 * s + s * s) / (12.0 + 6.0 * s + s * s);
            // i's weight against j's: j acts lighter by pade(stack dy).
            let (wi, wj) = (self.w[i], self.w[j] * pade(stack * dy));
            let frac = wi / (wi + wj);
            let bound = 0.5 * (self.mu[i] + self.mu[j]) * overlap;
            let rel = (self.vx[i] - self.vx[j]) * -ny + (self.vy[i] - self.vy[j]) * nx;
            let slip = (rel * h).clamp(-bound, bound);
            let scale = self.inv_n[i].min(self.inv_n[j]);
            let tx = (nx * overlap + ny * slip) * scale;
            let ty = (ny * overlap - nx * slip) * scale;
            Some((tx * frac, ty * frac))
        }

        /// Row `i`'s sums over every other row, by brute force.
        fn sums(&self, i: usize, h: f32, stack: f32) -> [f32; 4] {
            let mut out = [0.0; 4];
            for j in 0..self.n {
                if let Some((px, py)) = self.share(i, j, h, stack) {
                    out[0] += px;
                    out[1] += py;
                    out[2] += 1.0;
                    out[3] = out[3].max(self.vx[j] * self.vx[j] + self.vy[j] * self.vy[j]);
                }
            }
            out
        }
    }

    fn close(p: f32, q: f32) -> bool {
        (p - q).abs() <= 1e-4 * (1.0 + p.abs().max(q.abs()))
    }

    fn sums_of(s: &mut [Vec<f32>; 4]) -> Sums<'_> {
        let [dx, dy, hits, speed2] = s;
        Sums {
            base: 0,
            dx,
            dy,
            hits,
            speed2,
        }
    }

    /// Row `i`'s pairs with rows `lo..hi` through the four-candidate
    /// kernel: the neighbours' shares go to `out`, `i`'s own is returned.
    fn vector_run(
        c: Cols<'_>,
        i: usize,
        (lo, hi): (usize, usize),
        (h, stack): (f32, f32),
        out: &mut [Vec<f32>; 4],
    ) -> Acc {
        assert!(i < c.rows && hi <= c.rows && out.iter().all(|o| o.len() >= hi));
        // SAFETY: `i < rows` (checked above).
        let one = unsafe { One::of(c, i, c.x[i]) };
        let mut acc = Acc::zero();
        // SAFETY: `hi <= rows` (checked above).
        unsafe {
            span_pairs(
                &Me::splat(&one),
                c,
                lo,
                hi,
                h,
                stack,
                &mut sums_of(out),
                &mut acc,
            )
        };
        acc
    }

    /// The band kernel gives every particle the sums of all its contacts,
    /// as brute force over all pairs does: none missed or found twice
    /// across bands, both paths (one by one, four at a time) agreeing with
    /// it, coincident pairs pushed apart.
    #[test]
    #[allow(clippy::needless_range_loop)]
    fn band_pairs_match_brute_force() {
        let (width, height) = (40.0, 12.0);
        let (h, stack) = (1.0 / 180.0, 0.7);
        // Dense enough that blocks of eight overlap their neighbours'.
        let mut cloud = Cloud::new(700, (width, height), (0.4, 1.0), 5);
        let mut grid = Grid::default();
        grid.configure(height, 1.0, 1.0);
        // Rows sorted by band, then x, as `Grid::rebuild` leaves them.
        let mut order: Vec<usize> = (0..cloud.n).collect();
        order.sort_by(|&a, &b| {
            (grid.band_of(cloud.y[a]), cloud.x[a])
                .partial_cmp(&(grid.band_of(cloud.y[b]), cloud.x[b]))
                .unwrap()
        });
        for col in [
            &mut cloud.x,
            &mut cloud.y,
            &mut cloud.r,
            &mut cloud.w,
            &mut cloud.vx,
            &mut cloud.vy,
            &mut cloud.mu,
            &mut cloud.inv_n,
        ] {
            let sorted: Vec<f32> = order.iter().map(|&i| col[i]).collect();
            col[..sorted.len()].copy_from_slice(&sorted);
        }
        let bands = grid.bands as usize;
        grid.band_start = (0..=bands)
            .map(|b| {
                (0..cloud.n)
                    .filter(|&i| (grid.band_of(cloud.y[i]) as usize) < b)
                    .count() as u32
            })
            .collect();
        // Every run four at a time (0), and one by one up to one, two or
        // three candidates.
        for one_by_one in 0..=3 {
            let mut out: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; cloud.n]);
            let mut touching = 0;
            for b in (0..bands).step_by(2).chain((1..bands).step_by(2)) {
                touching += band_pairs(
                    (b, bands),
                    &grid,
                    cloud.cols(),
                    (grid.band_height, one_by_one),
                    h,
                    stack,
                    &mut sums_of(&mut out),
                );
            }
            let mut pairs = 0;
            for i in 0..cloud.n {
                let want = cloud.sums(i, h, stack);
                for (k, what) in ["push x", "push y", "contacts", "fastest"]
                    .iter()
                    .enumerate()
                {
                    assert!(
                        close(out[k][i], want[k]),
                        "one by one up to {one_by_one}, row {i}: {what} {} vs {}",
                        out[k][i],
                        want[k]
                    );
                }
                pairs += want[2] as u64;
            }
            assert_eq!(2 * touching, pairs, "each pair is found once");
            assert!(pairs > 1000, "the cloud must be dense: {pairs}");
        }
    }

    /// The eight-lane group (own run in the low lanes, the band above's in
    /// the high ones) gives the same sums as the one-by-one path, for runs
    /// of 0 to 9 rows each, ending anywhere (also at the columns' end).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn both_runs_in_eight_lanes_match_one_by_one() {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            eprintln!("no AVX2 and FMA on this CPU: the eight-lane group never runs here");
            return;
        }
        let cloud = Cloud::new(60, (6.0, 3.0), (0.6, 1.8), 13);
        let (n, c) = (cloud.n, cloud.cols());
        let (h, stack) = (1.0 / 180.0, 0.7);
        let mut touching = 0.0;
        for i in 0..n - 1 {
            // Own run after `i`; the other from a later row on, disjoint.
            let own = (i + 1, n.min(i + 1 + i % 7));
            let up_lo = (own.1 + (i % 3)).min(n);
            let up = (up_lo, n.min(up_lo + (i * 5) % 10));
            let mut out: [[Vec<f32>; 4]; 2] =
                std::array::from_fn(|_| std::array::from_fn(|_| vec![0.0; n]));
            let [a, b] = &mut out;
            // SAFETY: `i < n`, the rows of `c`.
            let one = unsafe { One::of(c, i, c.x[i]) };
            // SAFETY: AVX2 and FMA are there (checked above); both runs end at or
            // below `n` and the sums cover every row.
            let got = unsafe { avx2::both_runs(&one, c, own, up, h, stack, &mut sums_of(a)) };
            let mut want = One::default();
            let mut sums = sums_of(b);
            for (lo, hi) in [own, up] {
                assert!(sums.covers(lo, hi));
                // SAFETY: `hi <= n`, the rows of `c`, and the sums cover them.
                unsafe { span_pairs_one_by_one(&one, c, lo, hi, h, stack, &mut sums, &mut want) };
            }
            let close = |p: f32, q: f32| (p - q).abs() <= 1e-5 * (1.0 + p.abs().max(q.abs()));
            assert!(
                close(got.x, want.x) && close(got.y, want.y),
                "row {i}: own push"
            );
            assert_eq!(got.n, want.n, "row {i}: contacts");
            assert!(close(got.speed2, want.speed2), "row {i}: fastest neighbour");
            touching += want.n;
            let [eight, one_by_one] = &out;
            for (k, (p, q)) in eight.iter().zip(one_by_one).enumerate() {
                for (j, (&p, &q)) in p.iter().zip(q).enumerate() {
                    assert!(close(p, q), "row {i}: sum {k} of row {j}: {p} vs {q}");
                }
            }
        }
        assert!(touching > 60.0, "the runs must touch: {touching} pairs");
    }

    /// `skip` stops where a row-by-row walk does: at the first row that
    /// fails, or at the end, however far that is (runs of 0 to 70 rows,
    /// ends inside and past them, ties).
    #[test]
    fn skip_stops_where_a_row_by_row_walk_does() {
        let mut rng = Rng::new(7);
        for case in 0..2000 {
            let n = 1 + case % 70;
            let mut x: Vec<f32> = (0..n)
                .map(|_| (rng.range(0.0, 8.0) * 2.0).floor())
                .collect();
            x.sort_by(f32::total_cmp);
            x.resize(n + LANES, -1.0);
            let from = case % n;
            let end = from + (case / 7) % (n + 1 - from);
            let t = (rng.range(0.0, 8.0) * 2.0).floor();
            let mut walk = from;
            while walk < end && x[walk] < t {
                walk += 1;
            }
            // SAFETY: `from <= end <= n`, and `x` holds `LANES` values past
            // its `n` rows.
            let got = unsafe { skip(&x, from, end, |v| v.simd_lt(f32x4::splat(t))) };
            assert_eq!(got, walk, "x {x:?} from {from} to {end}, below {t}");
            let mut walk = from;
            while walk < end && x[walk] <= t {
                walk += 1;
            }
            // SAFETY: as above.
            let got = unsafe { skip(&x, from, end, |v| v.simd_le(f32x4::splat(t))) };
            assert_eq!(got, walk, "x {x:?} from {from} to {end}, at most {t}");
        }
    }

    /// The four-candidate kernel gives both particles of each pair the
    /// share brute force gives them.
    #[test]
    #[allow(clippy::needless_range_loop)]
    fn span_pairs_match_brute_force() {
        let cloud = Cloud::new(40, (6.0, 3.0), (0.6, 1.8), 11);
        let c = cloud.cols();
        let (h, stack) = (1.0 / 180.0, 0.7);
        let mut touching = 0;
        for i in 0..cloud.n - 1 {
            let (lo, hi) = (i + 1, cloud.n.min(i + 1 + (i % 9)));
            let mut out: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; cloud.n]);
            let acc = vector_run(c, i, (lo, hi), (h, stack), &mut out);
            let mine = acc.reduce_onto(&One::default());
            let (mut want_x, mut want_y) = (0.0, 0.0);
            for j in lo..hi {
                let theirs = cloud.share(j, i, h, stack);
                if let Some((px, py)) = cloud.share(i, j, h, stack) {
                    want_x += px;
                    want_y += py;
                    touching += 1;
                    let (qx, qy) = theirs.unwrap();
                    assert!(
                        close(out[0][j], qx) && close(out[1][j], qy),
                        "row {j}'s share from {i}"
                    );
                    assert_eq!(out[2][j], 1.0);
                } else {
                    assert!(theirs.is_none());
                    assert_eq!(out[2][j], 0.0);
                }
            }
            assert!(
                close(mine.x, want_x) && close(mine.y, want_y),
                "row {i}'s own share"
            );
        }
        assert!(touching > 40, "the runs must touch: {touching} pairs");
    }

    /// Both forms of the pair kernel give the same sums for the same run.
    #[test]
    fn vector_and_one_by_one_pairs_agree() {
        let cloud = Cloud::new(40, (6.0, 3.0), (0.6, 1.8), 11);
        let (n, c) = (cloud.n, cloud.cols());
        let (h, stack) = (1.0 / 180.0, 0.7);
        let mut touching = 0.0;
        for i in 0..n - 1 {
            let (lo, hi) = (i + 1, n.min(i + 1 + (i % 9)));
            let mut out: [[Vec<f32>; 4]; 2] =
                std::array::from_fn(|_| std::array::from_fn(|_| vec![0.0; n]));
            let [a, b] = &mut out;
            let acc = vector_run(c, i, (lo, hi), (h, stack), a);
            // SAFETY: `i < n`, the rows of `c`.
            let one = unsafe { One::of(c, i, c.x[i]) };
            let mut acc1 = One::default();
            let mut sums = sums_of(b);
            assert!(sums.covers(lo, hi));
            // SAFETY: `hi <= n`, the rows of `c`, and the sums cover them.
            unsafe { span_pairs_one_by_one(&one, c, lo, hi, h, stack, &mut sums, &mut acc1) };
            let close = |p: f32, q: f32| (p - q).abs() <= 1e-5 * (1.0 + p.abs().max(q.abs()));
            assert!(close(acc.ax.reduce_add(), acc1.x), "row {i}: own push x");
            assert!(close(acc.ay.reduce_add(), acc1.y), "row {i}: own push y");
            assert_eq!(acc.hits.reduce_add(), acc1.n, "row {i}: contacts");
            touching += acc1.n;
            let fastest = acc.speed2.to_array().into_iter().fold(0.0, max);
            assert!(close(fastest, acc1.speed2), "row {i}: fastest neighbour");
            let [vector, one_by_one] = &out;
            for (k, (p, q)) in vector.iter().zip(one_by_one).enumerate() {
                for (j, (&p, &q)) in p.iter().zip(q).enumerate() {
                    assert!(close(p, q), "row {i}: sum {k} of row {j}");
                }
            }
        }
        assert!(touching > 40.0, "the runs must touch: {touching} pairs");
    }
}
