//! Physics kernels over the particle store: integration, the counting-sort
//! grid and circle collisions, parallel over rayon's current pool.
//!
//! One step of `dt` is `substeps` substeps of `h = dt / substeps`:
//! 1. integrate: drag, gravity, a speed cap, `x += v h`, walls;
//! 2. sort the store by grid cell (`grid::Grid::rebuild`);
//! 3. `iterations` Jacobi passes of position-based contact resolution.
//!
//! Contacts are resolved on positions (position-based dynamics): overlaps
//! are pushed apart in inverse-mass proportion, friction removes sliding up
//! to the Coulomb bound, and every correction `Δ` also changes the velocity
//! by `Δ / h`, so piles settle without bouncing. `collide` explains the
//! scaling that keeps one pass per substep stable and the striped schedule
//! that adds every sum in the same order however the work is split: the
//! same seed gives the same state, bit for bit, on any thread count.

pub mod collide;
pub mod grid;
pub mod integrate;

#[cfg(test)]
mod tests;

use crate::particles::{Kind, KindTable, ParticleStore};
use grid::Grid;
use std::time::Instant;

/// Everything the kernels read besides the particles.
#[derive(Clone, Debug, PartialEq)]
pub struct PhysicsParams {
    /// The box is `[0, width] × [0, height]`, y up.
    pub width: f32,
    pub height: f32,
    /// Downward acceleration, world units per second².
    pub gravity: f32,
    /// Keep particles inside the box.
    pub walls: bool,
    pub substeps: u32,
    pub iterations: u32,
    /// Scale on each Jacobi pass's correction, (0, 2]: each pair's term is
    /// already divided by the larger contact count of the two, so some
    /// over-relaxation converges faster.
    pub relaxation: f32,
    /// Largest move per substep, as a fraction of the particle's radius; this
    /// is what keeps particles from tunnelling through each other.
    pub max_move: f32,
    pub friction: [f32; Kind::COUNT],
    /// Velocity kept per second in free flight, per kind.
    pub drag: [f32; Kind::COUNT],
    pub gravity_scale: [f32; Kind::COUNT],
    /// Mass scaling for stacking, per world unit of height: in a contact,
    /// the upper particle acts `exp(stacking × Δy)` times lighter. 0 is off.
    pub stacking: f32,

    /// Largest particle radius: how far beyond its own radius a particle
    /// must look for contacts.
    pub max_radius: f32,
    /// Side of a grid cell. Any size is correct (each particle searches the
    /// cells its reach overlaps); 1.4 × the largest radius measured fastest
    /// (smaller cells cost more spans, larger ones more candidates).
    pub cell_size: f32,
}

impl PhysicsParams {
    pub fn new(width: f32, height: f32, gravity: f32, kinds: &KindTable) -> Self {
        let rows = kinds.rows();
        Self {
            width,
            height,
            gravity,
            walls: true,
            substeps: 3,
            iterations: 1,
            relaxation: 1.5,
            max_move: 0.9,
            friction: rows.map(|k| k.friction),
            drag: rows.map(|k| k.drag),
            gravity_scale: rows.map(|k| k.gravity_scale),
            stacking: 0.7,

            max_radius: kinds.max_radius(),
            cell_size: 1.4 * kinds.max_radius(),
        }
    }
}

/// Wall-clock time of each phase of the last step, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTimings {
    pub integrate_ms: f64,
    pub grid_ms: f64,
    pub collide_ms: f64,
    pub total_ms: f64,
    /// Touching pairs found in the last pass (each pair counted once).
    pub contacts: u64,
}

/// The physics world: parameters plus the reusable grid and scratch space.
pub struct Physics {
    pub params: PhysicsParams,
    pub grid: Grid,
    scratch: collide::Scratch,
}

impl Physics {
    pub fn new(params: PhysicsParams) -> Self {
        let mut grid = Grid::default();
        grid.configure(params.width, params.height, params.cell_size);
        Self {
            params,
            grid,
            scratch: collide::Scratch::default(),
        }
    }

    /// Advances the store by `dt` seconds on rayon's current thread pool.
    pub fn step(&mut self, store: &mut ParticleStore, dt: f32) -> StepTimings {
        let p = &self.params;
        let substeps = p.substeps.max(1);
        let h = dt / substeps as f32;
        let mut t = StepTimings::default();
        let start = Instant::now();
        for _ in 0..substeps {
            let t0 = Instant::now();
            integrate::integrate(store, p, h);
            let t1 = Instant::now();
            self.grid.rebuild(store);
            let t2 = Instant::now();
            for _ in 0..p.iterations {
                t.contacts = collide::resolve(store, &self.grid, p, h, &mut self.scratch);
            }
            let t3 = Instant::now();
            t.integrate_ms += ms(t1 - t0);
            t.grid_ms += ms(t2 - t1);
            t.collide_ms += ms(t3 - t2);
        }
        for a in store.slices_mut().age {
            *a += dt;
        }
        t.total_ms = ms(start.elapsed());
        t
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
