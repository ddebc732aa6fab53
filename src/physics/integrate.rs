//! Integration: drag, gravity and the speed cap, then `x += v h` and walls.
//!
//! The loop body has no branches and no table lookups (per-kind factors are
//! picked with selects, the speed cap is a `min`, walls are clamps), so the
//! compiler vectorizes it: four particles per SSE instruction in the
//! portable build, eight per AVX2 instruction where the CPU has it (chosen
//! at run time). It then runs at memory speed.

use super::PhysicsParams;
use crate::particles::ParticleStore;
use crate::workers::WorkerPool;

const GRAIN: usize = 8192;

/// Per-kind factors for one substep, computed once.
#[derive(Clone, Copy)]
struct Factors {
    /// Velocity kept over the substep.
    drag: [f32; 4],
    /// Velocity gained from gravity over the substep.
    dv: [f32; 4],
    /// Largest speed, per unit of radius.
    limit: f32,
    h: f32,
    inv_h: f32,
    width: f32,
    height: f32,
    walls: bool,
}

pub fn integrate(store: &mut ParticleStore, p: &PhysicsParams, h: f32, pool: &WorkerPool) {
    let s = store.slices_mut();
    let f = Factors {
        drag: p.drag.map(|d| d.powf(h)),
        dv: p.gravity_scale.map(|g| -p.gravity * g * h),
        // Cap the move per substep: nothing skips past a neighbour.
        limit: p.max_move / h,
        h,
        inv_h: 1.0 / h,
        width: p.width,
        height: p.height,
        walls: p.walls,
    };
    let mut chunks: Vec<_> =
        s.x.chunks_mut(GRAIN)
            .zip(s.y.chunks_mut(GRAIN))
            .zip(s.vx.chunks_mut(GRAIN))
            .zip(s.vy.chunks_mut(GRAIN))
            .zip(s.radius.chunks(GRAIN))
            .zip(s.kind.chunks(GRAIN))
            .collect();
    pool.for_each_mut(&mut chunks, |(((((x, y), vx), vy), r), kind)| {
        integrate_chunk(x, y, vx, vy, r, kind, f);
    });
}

/// Picks `table[k]` for a kind `k` in 0..4 with selects, which vectorize
/// (an indexed load would not).
#[inline(always)]
pub(super) fn per_kind(table: &[f32; 4], k: u8) -> f32 {
    let k = k & 3;
    let low = if k & 1 == 0 { table[0] } else { table[1] };
    let high = if k & 1 == 0 { table[2] } else { table[3] };
    if k & 2 == 0 { low } else { high }
}

#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn integrate_chunk(
    x: &mut [f32],
    y: &mut [f32],
    vx: &mut [f32],
    vy: &mut [f32],
    r: &[f32],
    kind: &[u8],
    f: Factors,
) {
    let n = x.len();
    let (y, vx, vy, r, kind) = (&mut y[..n], &mut vx[..n], &mut vy[..n], &r[..n], &kind[..n]);
    for i in 0..n {
        let k = kind[i];
        let mut u = vx[i] * per_kind(&f.drag, k);
        let mut v = vy[i] * per_kind(&f.drag, k) + per_kind(&f.dv, k);
        // Scale down to the cap: a factor of at most 1 (an infinite one,
        // from a particle at rest, also gives 1).
        let limit = f.limit * r[i];
        let scale = (limit / (u * u + v * v).sqrt()).min(1.0);
        u *= scale;
        v *= scale;
        let (ox, oy) = (x[i], y[i]);
        let (mut nx, mut ny) = (ox + u * f.h, oy + v * f.h);
        if f.walls {
            // A wall stops the motion into it (inelastic).
            // (`max` then `min`, not `clamp`: clamp's bound check would
            // stop the vectorizer.)
            let cx = nx.max(r[i]).min(f.width - r[i]);
            let cy = ny.max(r[i]).min(f.height - r[i]);
            u = if cx != nx { (cx - ox) * f.inv_h } else { u };
            v = if cy != ny { (cy - oy) * f.inv_h } else { v };
            (nx, ny) = (cx, cy);
        }
        x[i] = nx;
        y[i] = ny;
        vx[i] = u;
        vy[i] = v;
    }
}
