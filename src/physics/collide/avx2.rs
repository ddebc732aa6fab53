//! The band kernel's eight-lane group, for CPUs with AVX2 and FMA: one
//! grain against both of its candidate runs at once, the rows ahead of it
//! in its own band in the low four lanes and the band above's in the high
//! four.
//!
//! Why: in the game's mixed sizes a grain's own run averages 1.8
//! candidates and the band above's 4.2, so as two four-lane runs most
//! grains paid for two groups, each half empty, and a branch on which
//! path each run takes. One 256-bit group costs about what a 128-bit one
//! does, so a grain now usually pays for one: the game's 200k contact
//! phase went from 15.2 to 12.4 ms a step (interleaved, 2 workers). The
//! pair terms are `span_pairs`', with fused multiply-adds where a product
//! is summed (12.4 → 12.1 ms; the touching test itself rounds as the other
//! paths do, so all find the same pairs); a test holds them to the
//! one-by-one path's sums.
//!
//! The sums are added in another order than the four-lane path's, and the
//! fused multiply-adds round once where it rounds twice, so a machine
//! without AVX2 and FMA (which runs that path) reaches a slightly different
//! state from the same seed; on any one machine the results stay the same
//! for every thread count.

use super::{Cols, One, Sums, VALID, add_lanes, max, max_lanes};
use std::arch::x86_64::*;
use wide::f32x4;

/// One grain's values, each in all eight lanes.
struct Me {
    inv_n: __m256,
    x: __m256,
    y: __m256,
    r: __m256,
    w: __m256,
    vx: __m256,
    vy: __m256,
    mu: __m256,
    speed2: __m256,
}

impl Me {
    /// # Safety
    /// The CPU has AVX2.
    #[inline(always)]
    unsafe fn splat(one: &One) -> Self {
        // SAFETY: AVX2 is there (this function's contract).
        unsafe {
            Self {
                inv_n: _mm256_set1_ps(one.inv_n),
                x: _mm256_set1_ps(one.x),
                y: _mm256_set1_ps(one.y),
                r: _mm256_set1_ps(one.r),
                w: _mm256_set1_ps(one.w),
                vx: _mm256_set1_ps(one.vx),
                vy: _mm256_set1_ps(one.vy),
                mu: _mm256_set1_ps(one.mu),
                speed2: _mm256_set1_ps(one.speed2),
            }
        }
    }
}

/// Four values of a column from row `own` in the low lanes, four from row
/// `up` in the high lanes, without a bounds check.
///
/// # Safety
/// The CPU has AVX2; `col` is a column of a `Cols` and `own`, `up` are at
/// most its `rows` (a column holds four values past its rows).
#[inline(always)]
unsafe fn two_runs(col: &[f32], own: usize, up: usize) -> __m256 {
    debug_assert!(own.max(up) + 4 <= col.len());
    // SAFETY: `own + 4` and `up + 4 <= col.len()` and AVX2 is there (this
    // function's contract); unaligned reads of plain floats.
    unsafe {
        let low = _mm_loadu_ps(col.as_ptr().add(own));
        let high = _mm_loadu_ps(col.as_ptr().add(up));
        _mm256_set_m128(high, low)
    }
}

/// `BOTH_VALID[5 a + b]` keeps the first `a` low lanes and the first `b`
/// high ones: one load per group.
const BOTH_VALID: [[f32; 8]; 25] = {
    let mut out = [[0.0; 8]; 25];
    let mut k = 0;
    while k < 25 {
        let (a, b) = (k / 5, k % 5);
        let mut lane = 0;
        while lane < 4 {
            out[k][lane] = VALID[a][lane];
            out[k][lane + 4] = VALID[b][lane];
            lane += 1;
        }
        k += 1;
    }
    out
};

/// The lanes of `a` candidates in the low half and `b` in the high one.
///
/// # Safety
/// The CPU has AVX2; `a` and `b` are at most four.
#[inline(always)]
unsafe fn valid(a: usize, b: usize) -> __m256 {
    debug_assert!(a <= 4 && b <= 4);
    // SAFETY: `5 a + b < 25` (this function's contract), a row of eight
    // floats; an unaligned read.
    unsafe { _mm256_loadu_ps(BOTH_VALID.get_unchecked(5 * a + b).as_ptr()) }
}

/// Four lanes as an array.
#[inline(always)]
fn array(v: __m128) -> [f32; 4] {
    let mut out = [0.0; 4];
    // SAFETY: `out` holds four floats; an unaligned write (SSE).
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// Each neighbour's four sums to the rows from `at` (the four-lane path's
/// writes, the same where a window ends early).
#[inline(always)]
fn add_to_rows(sums: &mut Sums<'_>, at: usize, [dx, dy, hits, speed2]: [__m128; 4]) {
    let k = at - sums.base;
    let lanes = |v| f32x4::new(array(v));
    add_lanes(sums.dx, k, lanes(dx));
    add_lanes(sums.dy, k, lanes(dy));
    add_lanes(sums.hits, k, lanes(hits));
    max_lanes(sums.speed2, k, lanes(speed2));
}

/// The two halves of `v`, low first.
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
unsafe fn halves(v: __m256) -> [__m128; 2] {
    // SAFETY: AVX2 is there (this function's contract).
    unsafe { [_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)] }
}

/// The largest of the eight lanes (all at least zero).
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
unsafe fn largest(v: __m256) -> f32 {
    // SAFETY: AVX2 is there (this function's contract).
    let lanes = unsafe {
        let [low, high] = halves(v);
        array(_mm_max_ps(low, high))
    };
    lanes.into_iter().fold(0.0, max)
}

/// All pairs between `mine` (row `i`) and its runs `a..a_end` (rows after
/// `i` in its band) and `b..b_end` (the band above), four of each per
/// group, with masks instead of per-candidate branches. Adds the opposite
/// share to each neighbour's sums and returns `mine`'s: push, contacts,
/// fastest neighbour.
///
/// Inlined into the AVX2 clones of `band_pairs`, so it gets their
/// registers (AVX-512's 32 where there; compiled on its own with AVX2's
/// 16 it spilled `mine`'s values to the stack and ran 8% slower than the
/// four-lane path).
///
/// # Safety
/// The CPU has AVX2 and FMA; both runs end at or below the columns'
/// `rows`, and `sums.covers` both.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn both_runs(
    mine: &One,
    c: Cols<'_>,
    (mut a, a_end): (usize, usize),
    (mut b, b_end): (usize, usize),
    h: f32,
    stack: f32,
    sums: &mut Sums<'_>,
) -> One {
    // SAFETY: every intrinsic below needs at most AVX2 and FMA, which the
    // CPU has;
    // every `two_runs` reads from `a <= a_end` and `b <= b_end`, both at
    // most the columns' rows (this function's contract).
    unsafe {
        let me = Me::splat(mine);
        let zero = _mm256_setzero_ps();
        let (mut ax, mut ay, mut hits, mut fastest) = (zero, zero, zero, zero);
        let splat = |v: f32| _mm256_set1_ps(v);
        let (one, half, twelve, six) = (splat(1.0), splat(0.5), splat(12.0), splat(6.0));
        let (h, stack, sign) = (splat(h), splat(stack), splat(-0.0));
        let add = |p, q| _mm256_add_ps(p, q);
        let sub = |p, q| _mm256_sub_ps(p, q);
        let mul = |p, q| _mm256_mul_ps(p, q);
        let and = |p, q| _mm256_and_ps(p, q);
        let neg = |p| _mm256_xor_ps(p, sign);
        // p × q + r and r - p × q, rounded once.
        let fma = |p, q, r| _mm256_fmadd_ps(p, q, r);
        let fnma = |p, q, r| _mm256_fnmadd_ps(p, q, r);
        while a < a_end || b < b_end {
            // An exhausted run stays at its end, whose four rows are
            // readable (the columns' padding) and masked.
            let (na, nb) = ((a_end - a).min(4), (b_end - b).min(4));
            let valid = valid(na, nb);
            let (x, y, r) = (
                two_runs(c.x, a, b),
                two_runs(c.y, a, b),
                two_runs(c.r, a, b),
            );
            let dx = sub(me.x, x);
            let dy = sub(me.y, y);
            let d2 = add(mul(dx, dx), mul(dy, dy));
            let rr = add(me.r, r);
            let hit = and(valid, _mm256_cmp_ps::<_CMP_LT_OQ>(d2, mul(rr, rr)));
            if _mm256_movemask_ps(hit) != 0 {
                // The terms as `span_pairs` computes them (see there for
                // why).
                let coincident = _mm256_cmp_ps::<_CMP_LT_OQ>(d2, splat(1e-10));
                // (Almost never: a branch is cheaper than the fix-up.)
                let (dx, d2) = if _mm256_movemask_ps(coincident) == 0 {
                    (dx, d2)
                } else {
                    let dx = sub(dx, and(coincident, splat(1e-4)));
                    (dx, fma(dx, dx, mul(dy, dy)))
                };
                let (w, vx, vy) = (
                    two_runs(c.w, a, b),
                    two_runs(c.vx, a, b),
                    two_runs(c.vy, a, b),
                );
                let (mu, inv_n) = (two_runs(c.mu, a, b), two_runs(c.inv_n, a, b));
                let scale = _mm256_min_ps(inv_n, me.inv_n);
                let d = _mm256_sqrt_ps(d2);
                let overlap = and(sub(rr, d), hit);
                let s = mul(stack, dy);
                // 12 ∓ 6 s + s², as (s ∓ 6) s + 12.
                let num = fma(sub(s, six), s, twelve);
                let den = fma(add(s, six), s, twelve);
                let mine_w = mul(me.w, den);
                let ab = fma(w, num, mine_w);
                let q = _mm256_div_ps(one, mul(d, ab));
                let inv_d = and(mul(ab, q), hit);
                let frac = and(mul(mul(mine_w, d), q), hit);
                let (nx, ny) = (mul(dx, inv_d), mul(dy, inv_d));
                let bound = mul(mul(half, add(me.mu, mu)), overlap);
                let rel = fnma(sub(me.vx, vx), ny, mul(sub(me.vy, vy), nx));
                let slip = _mm256_min_ps(_mm256_max_ps(mul(rel, h), neg(bound)), bound);
                let tx = mul(fma(nx, overlap, mul(ny, slip)), scale);
                let ty = mul(fnma(nx, slip, mul(ny, overlap)), scale);
                ax = fma(tx, frac, ax);
                ay = fma(ty, frac, ay);
                let other = sub(one, frac);
                let counted = and(one, hit);
                hits = add(hits, counted);
                fastest = _mm256_max_ps(fastest, and(fma(vx, vx, mul(vy, vy)), hit));
                let [dx_low, dx_high] = halves(neg(mul(tx, other)));
                let [dy_low, dy_high] = halves(neg(mul(ty, other)));
                let [n_low, n_high] = halves(counted);
                let [s_low, s_high] = halves(and(me.speed2, hit));
                if na > 0 {
                    add_to_rows(sums, a, [dx_low, dy_low, n_low, s_low]);
                }
                if nb > 0 {
                    add_to_rows(sums, b, [dx_high, dy_high, n_high, s_high]);
                }
            }
            a += na;
            b += nb;
        }
        // The three sums side by side: pairs of lanes added across the
        // three registers, then the halves.
        let pairs = _mm256_hadd_ps(_mm256_hadd_ps(ax, ay), _mm256_hadd_ps(hits, zero));
        let [low, high] = halves(pairs);
        let [x, y, n, _] = array(_mm_add_ps(low, high));
        One {
            x,
            y,
            n,
            speed2: largest(fastest),
            ..One::default()
        }
    }
}
