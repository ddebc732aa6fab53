//! Circle contacts: one Jacobi pass of position-based resolution.
//!
//! Pass 1 (parallel, read-only input): every particle sums the pushes from the
//! particles it overlaps in its 3×3 cell block, in inverse-mass proportion,
//! plus Coulomb friction on the relative tangential motion, bounded by
//! `friction × overlap`. Pass 2 applies the sums to positions and velocities.
//! Pair terms are equal and opposite, so momentum is conserved.

use super::{PhysicsParams, grid::Grid, integrate::clamp_to_box};
use crate::particles::ParticleStore;
use rayon::prelude::*;
use wide::f32x4;

const GRAIN: usize = 4096;

/// Per-particle corrections of one pass, and each particle's friction
/// (reused between passes).
#[derive(Default)]
pub struct Scratch {
    dx: Vec<f32>,
    dy: Vec<f32>,
    mu: Vec<f32>,
}

/// One particle's own values, as the contact kernel reads them.
#[derive(Clone, Copy)]
struct Me {
    x: f32,
    y: f32,
    r: f32,
    w: f32,
    vx: f32,
    vy: f32,
    mu: f32,
}

/// The columns the contact kernel reads, whole (spans index into them).
#[derive(Clone, Copy)]
struct Cols<'a> {
    x: &'a [f32],
    y: &'a [f32],
    r: &'a [f32],
    w: &'a [f32],
    vx: &'a [f32],
    vy: &'a [f32],
    mu: &'a [f32],
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

/// `LANES` consecutive values of a padded column from row `j`.
#[inline(always)]
fn lanes(col: &[f32], j: usize) -> f32x4 {
    f32x4::new(col[j..j + LANES].try_into().unwrap())
}

/// Sum of the pushes on `me` from rows `lo..hi`, `LANES` candidates at a
/// time with masks instead of per-candidate branches. Rows past `hi` are
/// read (the columns are padded) and masked out. Returns (push x, push y, touching candidates).
#[inline(always)]
fn span_push(me: Me, c: Cols<'_>, lo: usize, hi: usize, h: f32) -> (f32, f32, f32) {
    let zero = f32x4::ZERO;
    let (mx, my, mr, mw) = (
        f32x4::splat(me.x),
        f32x4::splat(me.y),
        f32x4::splat(me.r),
        f32x4::splat(me.w),
    );
    let (mvx, mvy, mmu) = (
        f32x4::splat(me.vx),
        f32x4::splat(me.vy),
        f32x4::splat(me.mu),
    );
    let (mut ax, mut ay, mut hits) = (zero, zero, zero);
    let mut j = lo;
    while j < hi {
        let valid = f32x4::new(VALID[(hi - j).min(LANES)]);
        let (x, y, r) = (lanes(c.x, j), lanes(c.y, j), lanes(c.r, j));
        let dx = mx - x;
        let dy = my - y;
        let d2 = dx * dx + dy * dy;
        let rr = mr + r;
        // `d2 > 0` leaves out the particle itself.
        let hit = valid & d2.simd_lt(rr * rr) & d2.simd_gt(f32x4::splat(1e-12));
        // Most groups touch nothing: skip the rest of the work for them.
        {
            let (w, vx, vy, mu) = (
                lanes(c.w, j),
                lanes(c.vx, j),
                lanes(c.vy, j),
                lanes(c.mu, j),
            );
            let d = d2.sqrt();
            let inv_d = (f32x4::ONE / d) & hit;
            let overlap = (rr - d) & hit;
            let (nx, ny) = (dx * inv_d, dy * inv_d);
            // Masked lanes may hold anything; `hit` zeroes their terms.
            let share = mw / (mw + w);
            // Relative tangential move this substep, removed up to the
            // Coulomb bound `mu × overlap`.
            let bound = f32x4::splat(0.5) * (mmu + mu) * overlap;
            let rt = (((mvx - vx) * -ny + (mvy - vy) * nx) * f32x4::splat(h))
                .max(-bound)
                .min(bound);
            ax += (nx * overlap + ny * rt) * share;
            ay += (ny * overlap - nx * rt) * share;
            hits += f32x4::ONE & hit;
        }
        j += LANES;
    }
    (ax.reduce_add(), ay.reduce_add(), hits.reduce_add())
}

/// Runs one pass; returns the number of touching pairs.
pub fn resolve(
    store: &mut ParticleStore,
    grid: &Grid,
    p: &PhysicsParams,
    h: f32,
    scratch: &mut Scratch,
) -> u64 {
    let n = store.len();
    scratch.dx.resize(n, 0.0);
    scratch.dy.resize(n, 0.0);
    // `mu` is padded like the store's columns.
    scratch.mu.resize(n + LANES, 0.0);
    let s = store.padded_slices();
    let (x, y, vx, vy, r, w) = (s.x, s.y, s.vx, s.vy, s.radius, s.inv_mass);
    let kind = store.slices().kind;
    let friction = p.friction;
    scratch
        .mu
        .par_chunks_mut(GRAIN)
        .zip(kind.par_chunks(GRAIN))
        .for_each(|(mu, kind)| {
            for (m, &k) in mu.iter_mut().zip(kind) {
                *m = friction[k as usize & 3];
            }
        });
    let mu = &scratch.mu[..];
    let cols = Cols {
        x,
        y,
        r,
        w,
        vx,
        vy,
        mu,
    };
    let relax = p.relaxation;
    let max_move = p.max_move;
    // Reach of the widest contact: own radius plus the largest radius.
    let r_max = p.max_radius;
    let touching: u64 = scratch
        .dx
        .par_chunks_mut(GRAIN)
        .zip(scratch.dy.par_chunks_mut(GRAIN))
        .enumerate()
        .map(|(chunk, (out_x, out_y))| {
            let base = chunk * GRAIN;
            let mut touching = 0u64;
            for k in 0..out_x.len() {
                let i = base + k;
                let me = Me {
                    x: x[i],
                    y: y[i],
                    r: r[i],
                    w: w[i],
                    vx: vx[i],
                    vy: vy[i],
                    mu: mu[i],
                };
                // Only the cells the particle's reach overlaps (2×2 mostly,
                // never more than 3×3).
                let reach = r[i] + r_max;
                let (c0, r0) = grid.cell_coords(x[i] - reach, y[i] - reach);
                let (c1, r1) = grid.cell_coords(x[i] + reach, y[i] + reach);
                let (mut ax, mut ay) = (0.0f32, 0.0f32);
                for row in r0..=r1 {
                    let (lo, hi) = grid.row_range(row, c0, c1);
                    let (px, py, hits) = span_push(me, cols, lo, hi, h);
                    ax += px;
                    ay += py;
                    touching += hits as u64;
                }
                ax *= relax;
                ay *= relax;
                // Deep overlaps (a spawn inside a pile) are pushed out over
                // several substeps instead of all at once.
                let limit = max_move * r[i];
                let sq = ax * ax + ay * ay;
                if sq > limit * limit {
                    let f = limit / sq.sqrt();
                    ax *= f;
                    ay *= f;
                }
                out_x[k] = ax;
                out_y[k] = ay;
            }
            touching
        })
        .sum();
    let contacts = touching / 2;

    let inv_h = 1.0 / h;
    let (bw, bh, walls) = (p.width, p.height, p.walls);
    let s = store.slices_mut();
    s.x.par_chunks_mut(GRAIN)
        .zip(s.y.par_chunks_mut(GRAIN))
        .zip(s.vx.par_chunks_mut(GRAIN))
        .zip(s.vy.par_chunks_mut(GRAIN))
        .zip(s.radius.par_chunks(GRAIN))
        .zip(
            scratch
                .dx
                .par_chunks(GRAIN)
                .zip(scratch.dy.par_chunks(GRAIN)),
        )
        .for_each(|(((((x, y), vx), vy), r), (dx, dy))| {
            for i in 0..x.len() {
                let (ox, oy) = (x[i], y[i]);
                let (mut nx, mut ny) = (ox + dx[i], oy + dy[i]);
                if walls {
                    (nx, ny) = clamp_to_box(nx, ny, r[i], bw, bh);
                }
                vx[i] += (nx - ox) * inv_h;
                vy[i] += (ny - oy) * inv_h;
                x[i] = nx;
                y[i] = ny;
            }
        });
    contacts
}
