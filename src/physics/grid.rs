//! The collision grid: full-width rows of cells ("bands") two radii tall,
//! built by counting sort, with the particles of each band sorted by x.
//!
//! Two sets of bands, one after the other in row order: the small
//! particles' bands, sized for the largest of them (`band_radius`), then,
//! when one kind is much bigger than the rest, the big particles' bands,
//! sized for the largest radius. A small grain so never searches a window
//! sized for the big ones, and a big particle's search among the small ones
//! is a pass of its own (`collide`).
//!
//! Why bands in x order rather than square cells: a particle's contacts lie
//! in its own band or the next one up (a band is as tall as the widest
//! contact), within ±2 largest radii in x. With each band sorted by x those
//! are two contiguous runs of rows, found by pointers that only move forward
//! as the particle's x grows — no cell table (a million particles would need
//! millions of square cells, most of them looked up per particle), and the
//! two bands being swept stay in cache.
//!
//! The sort is stable and depends only on the positions and the input order
//! (x ties keep the previous order), so the same input gives the same rows on
//! any thread count:
//! 1. each chunk of particles counts its band keys (in parallel);
//! 2. a prefix over (band, chunk) gives every chunk its own output slots, so
//!    the scatter also runs in parallel;
//! 3. each band is sorted by x. Last step's order was sorted already and
//!    particles move less than a radius per substep, so a band arrives as
//!    the particles that rose into it, its stayers and those that fell
//!    into it, each part in last substep's x order with small local swaps:
//!    the stayers are put in order by insertion, the few others by a sort
//!    of their own, and merged in (`sort_band`).

use crate::particles::ParticleStore;
use crate::workers::WorkerPool;
use std::sync::atomic::{AtomicU32, Ordering};
use wide::{f32x4, i32x4};

/// Grid geometry plus the per-step tables (reused, never shrunk).
#[derive(Default)]
pub struct Grid {
    /// Height of a small particles' band: their widest contact.
    pub band_height: f32,
    inv_height: f32,
    /// Height of a big particles' band: the widest contact of all.
    pub big_height: f32,
    inv_big_height: f32,
    /// Particles with a larger radius are big.
    pub cut: f32,
    /// Small particles' bands `0..small_bands`, then big ones' up to `bands`.
    pub small_bands: u32,
    pub bands: u32,
    /// `band_start[b]..band_start[b + 1]` are the rows of band `b` after
    /// sorting.
    pub band_start: Vec<u32>,
    /// `band_start` of the rebuild before: where each band's stayers come
    /// from (`sort_band`).
    last_start: Vec<u32>,
    /// Each particle's band, in the input order.
    band: Vec<u32>,
    /// Per chunk, per band: first the counts, then the output cursors.
    cursor: Vec<u32>,
    /// Output row → input row, written by the parallel scatter.
    scattered: Vec<AtomicU32>,
    /// The same, each band sorted by x: the store's permutation.
    order: Vec<u32>,
}

/// Most particles per chunk of the counting sort; few chunks keep the
/// (chunk × band) table small...
const SORT_CHUNK: usize = 1 << 16;
/// ...but every worker gets a couple of chunks to count and scatter, down to
/// chunks this small (at 200,000 particles, 64k-particle chunks made four
/// tasks, and the grid stopped scaling past four workers).
const MIN_SORT_CHUNK: usize = 1 << 13;
/// Particles per parallel task in the per-particle passes.
const GRAIN: usize = 8192;

impl Grid {
    /// Sets the geometry for a box `height` tall: small particles' bands
    /// for radii up to `band_radius`, big particles' bands for radii up to
    /// `max_radius` (none when the two are equal).
    pub fn configure(&mut self, height: f32, band_radius: f32, max_radius: f32) {
        self.band_height = 2.0 * band_radius;
        self.inv_height = 1.0 / self.band_height;
        self.small_bands = ((height / self.band_height).ceil() as u32).max(1);
        self.big_height = 2.0 * max_radius;
        self.inv_big_height = 1.0 / self.big_height;
        let big_bands = if max_radius > band_radius {
            self.cut = band_radius;
            ((height / self.big_height).ceil() as u32).max(1)
        } else {
            self.cut = f32::INFINITY;
            0
        };
        self.bands = self.small_bands + big_bands;
    }

    /// The small particles' band of height `y`; heights outside the box go
    /// to the nearest border band (monotone, so neighbours stay neighbours).
    #[inline(always)]
    pub fn band_of(&self, y: f32) -> u32 {
        band_of(self.inv_height, self.small_bands, y)
    }

    /// The big particles' band of height `y`, counted from the first of
    /// them (add `small_bands` for its index among all bands).
    #[inline(always)]
    pub fn big_band_of(&self, y: f32) -> u32 {
        band_of(self.inv_big_height, self.bands - self.small_bands, y)
    }

    /// The rows of band `b` (empty past the top band).
    #[inline(always)]
    pub fn band_rows(&self, b: usize) -> (usize, usize) {
        match self.band_start.get(b + 1) {
            Some(&end) => (self.band_start[b] as usize, end as usize),
            None => {
                let n = *self.band_start.last().unwrap_or(&0) as usize;
                (n, n)
            }
        }
    }

    /// Sorts `store` by band (small particles' bands first), then by x
    /// within each band, and fills `band_start`.
    pub fn rebuild(&mut self, store: &mut ParticleStore, pool: &WorkerPool) {
        let n = store.len();
        let bands = self.bands as usize;
        // The result does not depend on the chunking: chunk c's particles of
        // band b go after every earlier chunk's, so each band keeps the input
        // order before its x sort.
        let chunk_len = n
            .div_ceil(2 * pool.compute_workers().max(1))
            .clamp(MIN_SORT_CHUNK, SORT_CHUNK);
        let chunks = n.div_ceil(chunk_len).max(1);
        let (x, y, radius) = {
            let s = store.slices();
            (s.x, s.y, s.radius)
        };

        // 1. Band keys and per-chunk counts.
        self.band.resize(n, 0);
        self.cursor.clear();
        self.cursor.resize(chunks * bands, 0);
        let geometry = Keys::of(self);
        {
            let mut work: Vec<(&mut [u32], &mut [u32], usize)> = self
                .band
                .chunks_mut(chunk_len)
                .zip(self.cursor.chunks_mut(bands))
                .enumerate()
                .map(|(c, (keys, counts))| (keys, counts, c * chunk_len))
                .collect();
            pool.for_each_mut(&mut work, |(keys, counts, base)| {
                let end = *base + keys.len();
                geometry.fill(keys, &y[*base..end], &radius[*base..end]);
                // Counted a run of one band at a time: the rows arrive in
                // last substep's band order, and one increment per row would
                // wait on the previous row's store to the same count.
                for (band, len) in band_runs(keys) {
                    counts[band as usize] += len;
                }
            });
        }

        // 2. Exclusive prefix in (band, chunk) order: chunk c's particles of
        // band b go after every earlier chunk's of band b.
        std::mem::swap(&mut self.last_start, &mut self.band_start);
        self.band_start.clear();
        self.band_start.resize(bands + 1, 0);
        let mut at = 0u32;
        for b in 0..bands {
            self.band_start[b] = at;
            for c in 0..chunks {
                let slot = &mut self.cursor[c * bands + b];
                let count = *slot;
                *slot = at;
                at += count;
            }
        }
        self.band_start[bands] = at;

        // Scatter. Each output row is claimed by exactly one (chunk, band)
        // cursor, so the relaxed stores never collide.
        self.scattered.resize_with(n, || AtomicU32::new(0));
        {
            let scattered = &self.scattered[..];
            let band = &self.band[..];
            let mut work: Vec<(&mut [u32], usize)> = self
                .cursor
                .chunks_mut(bands)
                .enumerate()
                .map(|(c, cursors)| (cursors, c * chunk_len))
                .collect();
            pool.for_each_mut(&mut work, |(cursors, base)| {
                let end = (*base + chunk_len).min(n);
                for (i, &b) in band[*base..end].iter().enumerate() {
                    let at = &mut cursors[b as usize];
                    scattered[*at as usize].store((*base + i) as u32, Ordering::Relaxed);
                    *at += 1;
                }
            });
        }

        // 3. Each band by x. Bands are cut into runs of whole bands, one
        // output slice each.
        self.order.resize(n, 0);
        {
            let mut work = Vec::new();
            let mut rest = &mut self.order[..];
            let mut b = 0;
            while b < bands {
                let first = b;
                let start = self.band_start[b] as usize;
                while b < bands && (self.band_start[b + 1] as usize - start) < GRAIN {
                    b += 1;
                }
                b = b.max(first + 1).min(bands);
                let end = self.band_start[b] as usize;
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(end - start);
                rest = tail;
                work.push((first..b, head));
            }
            let (scattered, band_start) = (&self.scattered[..], &self.band_start[..]);
            // The last rebuild's bands, if it had as many.
            let last = Some(&self.last_start[..]).filter(|l| l.len() == bands + 1);
            pool.for_each_mut(&mut work, |(range, out)| {
                let base = band_start[range.start] as usize;
                // Sized once for the longest band of the run.
                let longest = range
                    .clone()
                    .map(|b| band_start[b + 1] - band_start[b])
                    .max()
                    .unwrap_or(0);
                let mut keys = Vec::with_capacity(longest as usize);
                let mut movers = Vec::new();
                for b in range.clone() {
                    let (lo, hi) = (band_start[b] as usize, band_start[b + 1] as usize);
                    keys.clear();
                    keys.extend(scattered[lo..hi].iter().map(|r| {
                        let r = r.load(Ordering::Relaxed);
                        (sortable(x[r as usize]) << 32) | u64::from(r)
                    }));
                    let stayers = last.map(|l| (l[b], l[b + 1]));
                    sort_band(
                        &mut keys,
                        &mut movers,
                        stayers,
                        &mut out[lo - base..hi - base],
                    );
                }
            });
        }
        store.permute(&self.order, (n >= 4 * GRAIN).then_some(pool));
    }
}

/// Writes the rows of `keys` (x in the high bits, the row in the low ones:
/// all distinct) to `out` in key order.
///
/// A band arrives in row order, which is last substep's order: first the
/// particles that rose from the bands below, then the band's stayers
/// (rows `stayers.0..stayers.1` last time), then those that fell from
/// above and any spawned since, each part in last substep's x order. The
/// stayers, most of the band, moved less than a radius, so they are
/// nearly sorted: insertion sort puts them in order in about one pass.
/// The few movers are sorted on their own and each put in its place by a
/// galloping search from the last one's. (The standard library's stable
/// sort, which this replaced, found the same runs but paid for a general
/// merge: the game's 200k grid phase took 5.1 ms a step with it, 4.0 ms
/// with this; the same rows.) Any input order is sorted right, just
/// slower: a part that is not nearly sorted (the first rebuild, a reset)
/// falls back to a full sort.
fn sort_band(
    keys: &mut [u64],
    movers: &mut Vec<u64>,
    stayers: Option<(u32, u32)>,
    out: &mut [u32],
) {
    let row = |k: u64| k as u32;
    // Rows grow along `keys`, so the stayers are one stretch of it.
    let (from, to) = match stayers {
        Some((first, end)) => (
            keys.partition_point(|&k| row(k) < first),
            keys.partition_point(|&k| row(k) < end),
        ),
        None => (0, keys.len()),
    };
    let to = to.max(from);
    let settled = &mut keys[from..to];
    if !insertion_sort(settled, settled.len()) {
        settled.sort_unstable();
    }
    movers.clear();
    movers.extend_from_slice(&keys[..from]);
    movers.extend_from_slice(&keys[to..]);
    movers.sort_unstable();
    let settled = &keys[from..to];
    let mut at = 0;
    let mut put = 0;
    for &m in movers.iter() {
        let until = at + gallop(&settled[at..], m);
        for (o, &k) in out[put..].iter_mut().zip(&settled[at..until]) {
            *o = row(k);
        }
        put += until - at;
        out[put] = row(m);
        put += 1;
        at = until;
    }
    for (o, &k) in out[put..].iter_mut().zip(&settled[at..]) {
        *o = row(k);
    }
}

/// How many of `sorted`'s first values are below `m`: found by doubling
/// steps, then a binary search within the last step, so a mover that
/// lands close after the one before costs a few compares, however long
/// the band.
fn gallop(sorted: &[u64], m: u64) -> usize {
    let mut step = 1;
    while step <= sorted.len() && sorted[step - 1] < m {
        step *= 2;
    }
    let from = step / 2;
    let to = step.min(sorted.len());
    from + sorted[from..to].partition_point(|&k| k < m)
}

/// Sorts `v` by insertion while that moves at most `budget` values in
/// all; returns whether it finished (if not, `v` holds the same values in
/// some order).
fn insertion_sort(v: &mut [u64], budget: usize) -> bool {
    let mut moved = 0;
    for i in 1..v.len() {
        let k = v[i];
        let mut j = i;
        while j > 0 && v[j - 1] > k {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = k;
        moved += i - j;
        if moved > budget {
            return false;
        }
    }
    true
}

/// `keys` as runs of equal values: (value, length), in order.
fn band_runs(keys: &[u32]) -> impl Iterator<Item = (u32, u32)> + '_ {
    let mut rest = keys;
    std::iter::from_fn(move || {
        let &first = rest.first()?;
        let len = rest.iter().position(|&k| k != first).unwrap_or(rest.len());
        rest = &rest[len..];
        Some((first, len as u32))
    })
}

/// What a particle's band key depends on besides its height and radius.
#[derive(Clone, Copy)]
struct Keys {
    inv: f32,
    /// The top small particles' band.
    top: u32,
    inv_big: f32,
    /// The top big particles' band, counted from the first of them.
    big_top: u32,
    small: u32,
    cut: f32,
}

impl Keys {
    fn of(grid: &Grid) -> Self {
        let (small, big) = (grid.small_bands, grid.bands - grid.small_bands);
        Self {
            inv: grid.inv_height,
            top: small - 1,
            inv_big: grid.inv_big_height,
            // With no big bands no particle is big (`cut` is infinite).
            big_top: big.max(1) - 1,
            small,
            cut: grid.cut,
        }
    }

    /// Every particle's band: a small particle's among the small bands, a
    /// big one's (radius above `cut`) among the big ones. Four at a time,
    /// both keys computed and one picked: the same values as `band_of`.
    fn fill(&self, keys: &mut [u32], y: &[f32], radius: &[f32]) {
        let n = keys.len();
        let (y, radius) = (&y[..n], &radius[..n]);
        let lanes = |k: &mut [u32], y: &[f32], r: &[f32]| {
            let (y, r) = (
                f32x4::new(y.try_into().unwrap()),
                f32x4::new(r.try_into().unwrap()),
            );
            let as_small = band_lanes(self.inv, self.top, y);
            let as_big =
                band_lanes(self.inv_big, self.big_top, y) + i32x4::splat(self.small as i32);
            let big: i32x4 = bytemuck::cast(r.simd_gt(f32x4::splat(self.cut)));
            let key: [u32; 4] = bytemuck::cast((big & as_big) | (!big & as_small));
            k.copy_from_slice(&key);
        };
        let whole = n - n % 4;
        for ((k, y), r) in keys[..whole]
            .chunks_exact_mut(4)
            .zip(y[..whole].chunks_exact(4))
            .zip(radius[..whole].chunks_exact(4))
        {
            lanes(k, y, r);
        }
        for i in whole..n {
            keys[i] = if radius[i] > self.cut {
                self.small + band_of(self.inv_big, self.big_top + 1, y[i])
            } else {
                band_of(self.inv, self.top + 1, y[i])
            };
        }
    }
}

#[inline(always)]
fn band_of(inv_height: f32, bands: u32, y: f32) -> u32 {
    ((y * inv_height) as i32).clamp(0, bands as i32 - 1) as u32
}

/// `band_of` for four heights: clamped as floats first (NaN to 0, as the
/// scalar cast does), so the truncating conversion needs no saturation.
#[inline(always)]
fn band_lanes(inv_height: f32, top: u32, y: f32x4) -> i32x4 {
    let v = y * f32x4::splat(inv_height);
    let v = v & v.simd_eq(v);
    v.fast_max(f32x4::ZERO)
        .fast_min(f32x4::splat(top as f32))
        .fast_trunc_int()
}

/// `x`'s bits, mapped so that unsigned order is float order.
#[inline(always)]
fn sortable(x: f32) -> u64 {
    let b = x.to_bits();
    u64::from(if b >> 31 == 1 { !b } else { b | 1 << 31 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sort_band` writes every row once, in key order, whatever the
    /// input: nearly sorted stayers with movers around them (the usual
    /// case), stayers far from sorted (the insertion budget runs out),
    /// stayers named wrongly or not at all, empty bands.
    #[test]
    fn bands_come_out_in_key_order() {
        let mut rng = crate::game::rng::Rng::new(9);
        let mut movers = Vec::new();
        for case in 0..400 {
            let n = case % 97;
            // Rows in increasing order (as the scatter leaves them); x
            // nearly sorted in the middle third, anywhere outside it.
            let (first, end) = (n / 3, 2 * n / 3);
            let mut keys: Vec<u64> = (0..n)
                .map(|r| {
                    let x = if (first..end).contains(&r) && case % 5 != 0 {
                        r as f32 + rng.range(-3.0, 3.0)
                    } else {
                        rng.range(-50.0, 150.0)
                    };
                    (sortable(x) << 32) | (r as u64 + 7)
                })
                .collect();
            let mut want = keys.clone();
            want.sort_unstable();
            let want: Vec<u32> = want.iter().map(|&k| k as u32).collect();
            let stayers = match case % 3 {
                0 => None,
                1 => Some((first as u32 + 7, end as u32 + 7)),
                // Not what the band holds: still sorted right.
                _ => Some((end as u32, first as u32 + 2)),
            };
            let mut out = vec![u32::MAX; n];
            sort_band(&mut keys, &mut movers, stayers, &mut out);
            assert_eq!(out, want, "case {case}: {n} rows, stayers {stayers:?}");
        }
    }

    #[test]
    fn gallop_counts_the_values_below() {
        let sorted: Vec<u64> = (0..40).map(|i| 3 * i).collect();
        for n in 0..sorted.len() {
            for m in 0..125 {
                let want = sorted[..n].partition_point(|&k| k < m);
                assert_eq!(gallop(&sorted[..n], m), want, "{n} values, below {m}");
            }
        }
    }

    #[test]
    fn insertion_sort_stops_at_its_budget() {
        let mut v: Vec<u64> = (0..50).rev().collect();
        assert!(!insertion_sort(&mut v, 100));
        let mut sorted: Vec<u64> = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "the same values");
        let mut w: Vec<u64> = (0..50).map(|i| i ^ 1).collect();
        assert!(insertion_sort(&mut w, 50));
        assert_eq!(w, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn sortable_keys_follow_float_order() {
        let xs = [-1e9f32, -3.5, -0.0, 0.0, 1e-30, 2.0, 2.5, 1e9];
        for w in xs.windows(2) {
            assert!(sortable(w[0]) <= sortable(w[1]), "{} vs {}", w[0], w[1]);
        }
    }

    #[test]
    fn keys_four_at_a_time_match_one_at_a_time() {
        let mut rng = crate::game::rng::Rng::new(5);
        let mut y: Vec<f32> = (0..1_003).map(|_| rng.range(-20.0, 220.0)).collect();
        // Heights a broken particle may have, and band borders.
        let odd = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            2.0,
            198.0,
            199.99,
            1e30,
            -1e30,
        ];
        y[..odd.len()].copy_from_slice(&odd);
        let radius: Vec<f32> = (0..y.len())
            .map(|i| if i % 3 == 0 { 1.9 } else { 1.0 })
            .collect();
        for (band_radius, max_radius) in [(1.0, 1.9), (1.0, 1.0)] {
            let mut grid = Grid::default();
            grid.configure(200.0, band_radius, max_radius);
            let small = grid.small_bands;
            let keys = Keys::of(&grid);
            let mut got = vec![u32::MAX; y.len()];
            keys.fill(&mut got, &y, &radius);
            for (i, (&y, &r)) in y.iter().zip(&radius).enumerate() {
                let want = if r > grid.cut {
                    small + grid.big_band_of(y)
                } else {
                    grid.band_of(y)
                };
                assert_eq!(got[i], want, "y {y}, radius {r}, cut {}", grid.cut);
            }
        }
    }

    #[test]
    fn rebuild_orders_rows_by_band_then_x() {
        let mut rng = crate::game::rng::Rng::new(9);
        let mut store = ParticleStore::with_limit(20_000);
        let (w, h) = (300.0, 200.0);
        for i in 0..20_000 {
            store
                .spawn(crate::particles::NewParticle {
                    // Some outside the box: they go to the border bands.
                    x: rng.range(-5.0, w + 5.0),
                    y: rng.range(-5.0, h + 5.0),
                    vx: 0.0,
                    vy: 0.0,
                    // One in five is big.
                    radius: if i % 5 == 0 { 1.9 } else { 1.0 },
                    inv_mass: 1.0,
                    kind: 0,
                })
                .unwrap();
        }
        let pool = WorkerPool::new(2, 0).unwrap();
        let mut grid = Grid::default();
        grid.configure(h, 1.0, 1.9);
        assert_eq!(grid.small_bands, 100);
        assert_eq!(grid.bands, 100 + 53);
        for round in 0..3 {
            grid.rebuild(&mut store, &pool);
            store.check_invariants().unwrap();
            let s = store.slices();
            assert_eq!(grid.band_start[grid.bands as usize] as usize, s.x.len());
            assert_eq!(grid.band_start[grid.small_bands as usize], 16_000);
            for b in 0..grid.bands as usize {
                let (lo, hi) = grid.band_rows(b);
                for i in lo..hi {
                    let (small, band) = (b < grid.small_bands as usize, grid.band_of(s.y[i]));
                    let big_band = grid.small_bands + grid.big_band_of(s.y[i]);
                    assert_eq!(small, s.radius[i] <= grid.cut, "round {round}: row {i}");
                    assert_eq!(
                        if small { band } else { big_band } as usize,
                        b,
                        "round {round}: row {i}"
                    );
                    if i > lo {
                        assert!(
                            s.x[i - 1] <= s.x[i],
                            "round {round}: band {b} not in x order"
                        );
                    }
                }
            }
            // Move everything a little, as a substep does, and sort again.
            let m = store.slices_mut();
            for (i, (x, y)) in m.x.iter_mut().zip(m.y.iter_mut()).enumerate() {
                *x += ((i * 7919) % 13) as f32 * 0.1 - 0.6;
                *y += ((i * 104_729) % 11) as f32 * 0.1 - 0.5;
            }
        }
    }

    #[test]
    fn the_order_does_not_depend_on_the_chunking() {
        // 1 worker sorts 30,000 particles in two chunks, 4 workers in four,
        // 8 in four of the smallest size: the same rows either way.
        let build = || {
            let mut rng = crate::game::rng::Rng::new(4);
            let mut store = ParticleStore::with_limit(30_000);
            for i in 0..30_000 {
                store
                    .spawn(crate::particles::NewParticle {
                        // Few bands, so every band spans several chunks.
                        x: rng.range(0.0, 400.0),
                        y: rng.range(0.0, 12.0),
                        vx: 0.0,
                        vy: 0.0,
                        radius: if i % 7 == 0 { 1.9 } else { 1.0 },
                        inv_mass: 1.0,
                        kind: 0,
                    })
                    .unwrap();
            }
            store
        };
        let rows = |workers: usize| {
            let mut store = build();
            let pool = WorkerPool::new(workers, 0).unwrap();
            let mut grid = Grid::default();
            grid.configure(12.0, 1.0, 1.9);
            grid.rebuild(&mut store, &pool);
            let s = store.slices();
            (grid.band_start.clone(), s.x.to_vec(), s.y.to_vec())
        };
        let one = rows(1);
        assert_eq!(one, rows(4));
        assert_eq!(one, rows(8));
    }
}
