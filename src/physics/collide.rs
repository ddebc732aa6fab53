//! Circle contacts: one Jacobi pass of position-based resolution.
//!
//! Pass 1 (parallel; every particle reads its neighbours and writes only its
//! own sums): each touching pair is pushed apart along the line of centres,
//! and the pair's relative sliding this substep is removed up to the Coulomb
//! bound `friction × overlap`. A pair's term is split in inverse-mass
//! proportion (with mass scaling for stacking under gravity) and divided by
//! the larger contact count of the two from the last pass, so a particle
//! pressed from many sides does not overshoot. Pass 2 applies the sums to
//! positions and, as position-based dynamics does, to velocities (`Δx / h`),
//! except that a correction may not make a particle faster than it or its
//! fastest neighbour was: pushing apart the overlap of a pile under its own
//! weight must not launch its top layer. Pair terms are equal and opposite,
//! so momentum is conserved up to those two per-particle limits.

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
    speed2: Vec<f32>,
    /// Contacts found in this pass, stored into the store afterwards.
    n: Vec<f32>,
    mu: Vec<f32>,
}

/// What the neighbours in one span do to a particle.
#[derive(Clone, Copy, Default)]
struct Push {
    dx: f32,
    dy: f32,
    hits: f32,
    /// Largest squared speed among the touching neighbours.
    speed2: f32,
}

/// One particle's own values, as the contact kernel reads them.
#[derive(Clone, Copy)]
struct Me {
    /// Row of the particle (to leave itself out).
    i: usize,
    /// Contacts in the last pass.
    n: f32,
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
    n: &'a [f32],
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

/// `AFTER[m]` selects lanes `m+1..`: the rows after the particle's own.
const AFTER: [[f32; LANES]; LANES] = {
    let on = f32::from_bits(u32::MAX);
    [
        [0.0, on, on, on],
        [0.0, 0.0, on, on],
        [0.0, 0.0, 0.0, on],
        [0.0, 0.0, 0.0, 0.0],
    ]
};

/// `LANES` consecutive values of a padded column from row `j`.
#[inline(always)]
fn lanes(col: &[f32], j: usize) -> f32x4 {
    f32x4::new(col[j..j + LANES].try_into().unwrap())
}

/// Sum of the pushes on `me` from rows `lo..hi`, `LANES` candidates at a
/// time with masks instead of per-candidate branches. Rows past `hi` are
/// read (the columns are padded) and masked out.
#[inline(always)]
fn span_push(me: Me, c: Cols<'_>, lo: usize, hi: usize, h: f32, stack: f32) -> Push {
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
    let (mut ax, mut ay, mut hits, mut speed2) = (zero, zero, zero, zero);
    let mut j = lo;
    while j < hi {
        let mut valid = VALID[(hi - j).min(LANES)];
        // Rows after the particle's own push it one way when centres
        // coincide, rows before it the other, so such pairs still separate.
        let after = if me.i < j {
            f32x4::new(VALID[LANES])
        } else if me.i < j + LANES {
            valid[me.i - j] = 0.0; // the particle itself
            f32x4::new(AFTER[me.i - j])
        } else {
            zero
        };
        let valid = f32x4::new(valid);
        let (x, y, r) = (lanes(c.x, j), lanes(c.y, j), lanes(c.r, j));
        let mut dx = mx - x;
        let dy = my - y;
        let coincident = (dx * dx + dy * dy).simd_lt(f32x4::splat(1e-10));
        dx += coincident & (f32x4::splat(1e-4) - (after & f32x4::splat(2e-4)));
        let d2 = dx * dx + dy * dy;
        let rr = mr + r;
        let hit = valid & d2.simd_lt(rr * rr);
        // Most groups touch nothing: skip the rest of the work for them.
        if hit.any() {
            let (w, vx, vy, mu) = (
                lanes(c.w, j),
                lanes(c.vx, j),
                lanes(c.vy, j),
                lanes(c.mu, j),
            );
            // Each pair's correction is divided by the larger contact count
            // of the two (from the last pass): a particle pressed from many
            // sides does not overshoot, and both sides of a pair still get
            // equal and opposite terms.
            let scale = f32x4::ONE / lanes(c.n, j).max(f32x4::splat(me.n)).max(f32x4::ONE);
            let d = d2.sqrt();
            let inv_d = (f32x4::ONE / d) & hit;
            let overlap = (rr - d) & hit;
            let (nx, ny) = (dx * inv_d, dy * inv_d);
            // Mass scaling for stacking: the particle above acts lighter by
            // about exp(stack × height difference), so a pile is held up from the
            // bottom in one pass instead of sagging until many passes agree.
            // Masked lanes may hold anything; `hit` zeroes their terms.
            // The weight is the (2,2) Padé approximant of exp(-stack × dy):
            // positive, decreasing, and f(-x) = 1 / f(x), so the two shares
            // of a pair still add up to one; far cheaper than `exp`.
            let s = f32x4::splat(stack) * dy;
            let (twelve, six) = (f32x4::splat(12.0), f32x4::splat(6.0));
            let num = twelve - six * s + s * s;
            let den = twelve + six * s + s * s;
            let share = scale * mw * den / (mw * den + w * num);
            // Relative tangential move this substep, removed up to the
            // Coulomb bound `mu × overlap`.
            let bound = f32x4::splat(0.5) * (mmu + mu) * overlap;
            let slip = (((mvx - vx) * -ny + (mvy - vy) * nx) * f32x4::splat(h))
                .max(-bound)
                .min(bound);
            ax += (nx * overlap + ny * slip) * share;
            ay += (ny * overlap - nx * slip) * share;
            hits += f32x4::ONE & hit;
            speed2 = speed2.max((vx * vx + vy * vy) & hit);
        }
        j += LANES;
    }
    Push {
        dx: ax.reduce_add(),
        dy: ay.reduce_add(),
        hits: hits.reduce_add(),
        speed2: speed2.to_array().into_iter().fold(0.0, f32::max),
    }
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
    scratch.speed2.resize(n, 0.0);
    scratch.n.resize(n, 0.0);
    // `mu` is padded like the store's columns.
    scratch.mu.resize(n + LANES, 0.0);
    let s = store.padded_slices();
    let (x, y, vx, vy, r, w) = (s.x, s.y, s.vx, s.vy, s.radius, s.inv_mass);
    let n_prev = s.contacts;
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
        n: n_prev,
    };
    let relax = p.relaxation;
    let max_move = p.max_move;
    // Reach of the widest contact: own radius plus the largest radius.
    let r_max = p.max_radius;
    // Mass scaling follows gravity; without gravity it is off (and momentum
    // is conserved exactly).
    let stack = if p.gravity == 0.0 {
        0.0
    } else {
        p.stacking * p.gravity.signum()
    };
    let touching: u64 = scratch
        .dx
        .par_chunks_mut(GRAIN)
        .zip(scratch.dy.par_chunks_mut(GRAIN))
        .zip(scratch.speed2.par_chunks_mut(GRAIN))
        .zip(scratch.n.par_chunks_mut(GRAIN))
        .enumerate()
        .map(|(chunk, (((out_x, out_y), out_s), out_n))| {
            let base = chunk * GRAIN;
            let mut touching = 0u64;
            for k in 0..out_x.len() {
                let i = base + k;
                let me = Me {
                    i,
                    n: n_prev[i],
                    x: x[i],
                    y: y[i],
                    r: r[i],
                    w: w[i],
                    vx: vx[i],
                    vy: vy[i],
                    mu: mu[i],
                };
                // Only the cells the particle's reach overlaps.
                let reach = r[i] + r_max;
                let (c0, r0) = grid.cell_coords(x[i] - reach, y[i] - reach);
                let (c1, r1) = grid.cell_coords(x[i] + reach, y[i] + reach);
                let mut sum = Push::default();
                for row in r0..=r1 {
                    let (lo, hi) = grid.row_range(row, c0, c1);
                    let p = span_push(me, cols, lo, hi, h, stack);
                    sum.dx += p.dx;
                    sum.dy += p.dy;
                    sum.hits += p.hits;
                    sum.speed2 = sum.speed2.max(p.speed2);
                }
                touching += sum.hits as u64;
                let (mut ax, mut ay) = (sum.dx * relax, sum.dy * relax);
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
                out_s[k] = sum.speed2;
                out_n[k] = sum.hits;
            }
            touching
        })
        .sum();
    let contacts = touching / 2;

    let (bw, bh, walls) = (p.width, p.height, p.walls);
    let s = store.slices_mut();
    let (ddx, ddy, speed2) = (&scratch.dx[..], &scratch.dy[..], &scratch.speed2[..]);
    s.contacts.copy_from_slice(&scratch.n);
    let inv_h = 1.0 / h;
    s.x.par_chunks_mut(GRAIN)
        .zip(s.y.par_chunks_mut(GRAIN))
        .zip(s.vx.par_chunks_mut(GRAIN))
        .zip(s.vy.par_chunks_mut(GRAIN))
        .zip(s.radius.par_chunks(GRAIN))
        .enumerate()
        .for_each(|(chunk, ((((x, y), vx), vy), r))| {
            let base = chunk * GRAIN;
            for i in 0..x.len() {
                let k = base + i;
                let (ox, oy) = (x[i], y[i]);
                let (mut nx, mut ny) = (ox + ddx[k], oy + ddy[k]);
                if walls {
                    (nx, ny) = clamp_to_box(nx, ny, r[i], bw, bh);
                }
                // Position-based dynamics: the correction is motion too. But
                // it may not make a particle faster than it or any particle
                // touching it was: pushing apart an old overlap (a pile under
                // its own weight) must not launch the top layer.
                let (u0, v0) = (vx[i], vy[i]);
                let (mut u, mut v) = (u0 + (nx - ox) * inv_h, v0 + (ny - oy) * inv_h);
                let limit2 = (u0 * u0 + v0 * v0).max(speed2[k]);
                let sq = u * u + v * v;
                if sq > limit2 {
                    let f = (limit2 / sq).sqrt();
                    u *= f;
                    v *= f;
                }
                vx[i] = u;
                vy[i] = v;
                x[i] = nx;
                y[i] = ny;
            }
        });
    contacts
}
