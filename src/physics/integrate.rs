//! Integration: drag, gravity and the speed cap, then `x += v h` and walls.

use super::PhysicsParams;
use crate::particles::ParticleStore;
use crate::workers::WorkerPool;

const GRAIN: usize = 8192;

pub fn integrate(store: &mut ParticleStore, p: &PhysicsParams, h: f32, pool: &WorkerPool) {
    let s = store.slices_mut();
    // Per-kind factors for this substep, computed once.
    let drag = p.drag.map(|d| d.powf(h));
    let dv = p.gravity_scale.map(|g| -p.gravity * g * h);
    let max_move = p.max_move;
    let (w, ht, walls) = (p.width, p.height, p.walls);
    let mut chunks: Vec<_> =
        s.x.chunks_mut(GRAIN)
            .zip(s.y.chunks_mut(GRAIN))
            .zip(s.vx.chunks_mut(GRAIN))
            .zip(s.vy.chunks_mut(GRAIN))
            .zip(s.radius.chunks(GRAIN))
            .zip(s.kind.chunks(GRAIN))
            .collect();
    pool.for_each_mut(&mut chunks, |(((((x, y), vx), vy), r), kind)| {
        for i in 0..x.len() {
            let k = kind[i] as usize & 3;
            let mut u = vx[i] * drag[k];
            let mut v = vy[i] * drag[k] + dv[k];
            // Cap the move per substep: nothing skips past a neighbour.
            let limit = max_move * r[i] / h;
            let sq = u * u + v * v;
            if sq > limit * limit {
                let f = limit / sq.sqrt();
                u *= f;
                v *= f;
            }
            let (mut nx, mut ny) = (x[i] + u * h, y[i] + v * h);
            if walls {
                let (cx, cy) = clamp_to_box(nx, ny, r[i], w, ht);
                // A wall stops the motion into it (inelastic).
                if cx != nx {
                    u = (cx - x[i]) / h;
                    nx = cx;
                }
                if cy != ny {
                    v = (cy - y[i]) / h;
                    ny = cy;
                }
            }
            x[i] = nx;
            y[i] = ny;
            vx[i] = u;
            vy[i] = v;
        }
    });
}

#[inline(always)]
pub fn clamp_to_box(x: f32, y: f32, r: f32, w: f32, h: f32) -> (f32, f32) {
    (x.clamp(r, w - r), y.clamp(r, h - r))
}
