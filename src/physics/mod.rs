//! Physics kernels over the particle store: integration, the counting-sort
//! grid and circle collisions, run as a task graph on the worker system.
//!
//! One step of `dt` is `substeps` substeps of `h = dt / substeps`:
//! 1. integrate: drag, gravity, a speed cap, `x += v h`, walls;
//! 2. sort the store by grid band, then by x (`grid::Grid::rebuild`);
//! 3. `iterations` Jacobi passes of position-based contact resolution.
//!
//! Contacts are resolved on positions (position-based dynamics): overlaps
//! are pushed apart in inverse-mass proportion, friction removes sliding up
//! to the Coulomb bound, and every correction `Δ` also changes the velocity
//! by `Δ / h`, so piles settle without bouncing. `collide` explains the
//! scaling that keeps one pass per substep stable and the striped schedule
//! that adds every sum in the same order however the work is split: the
//! same seed gives the same state, bit for bit, on any thread count.
//!
//! A step is a chain of frame-critical Physics tasks (integrate → grid →
//! collide per substep, then ageing); each task splits its loop over the
//! compute workers. The graph's timeline gives the phase times.

pub mod collide;
pub mod grid;
pub mod integrate;

#[cfg(test)]
mod tests;

use crate::particles::{Kind, KindTable, ParticleStore};
use crate::workers::{Capability, Priority, TaskGraph, TaskId, TaskRecord, TaskSpec, WorkerPool};
use grid::Grid;
use std::sync::Mutex;
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
    /// How fast a contact correction may make a particle, as a fraction of
    /// its fastest neighbour's speed (its own speed is always allowed), in
    /// (0, 1]. Below 1 a push loses a little at every grain it passes, as
    /// in an inelastic collision, so the motion in a deep pile dies out
    /// instead of feeding itself: at 1, a 200-deep pool of frictionless
    /// water boiled up to the ceiling of its box (mean speed 52 units/s
    /// after 15 s, touching pairs overlapping by 0.3 of a radius); at 0.9
    /// it lies still at its packed height (speed ~10, overlap 0.11), and
    /// sand and water still collapse and flow as before.
    pub speed_passed: f32,
    pub friction: [f32; Kind::COUNT],
    /// Velocity kept per second in free flight, per kind.
    pub drag: [f32; Kind::COUNT],
    pub gravity_scale: [f32; Kind::COUNT],
    /// Mass scaling for stacking, per world unit of height: in a contact,
    /// the upper particle acts `exp(stacking × Δy)` times lighter. 0 is off.
    ///
    /// It is what holds a deep pile up with one Jacobi pass per substep,
    /// and it is also why every kind, frictionless water included, keeps a
    /// slope: the weight above no longer spreads the base. Measured on
    /// water alone (10 s, 3 substeps): a 3,000-particle dam break levels
    /// out at 0 (heights 17–21 across the box) but ends with a mean overlap
    /// of 0.53 radii, and 7,000 particles poured 250 deep are crushed to 37
    /// units (mean overlap 0.71); at 0.7 the same dam keeps a slope (82 → 3
    /// units) with a mean overlap of 0.10. 0.35 is a middle (64 → 5,
    /// overlap 0.15). The support is momentum: the upper particle's larger
    /// share, turned into velocity, cancels what gravity adds (giving the
    /// velocities true-mass shares and only the positions the weighted
    /// ones crushed the same piles to 0.5–0.7 overlap). Without friction
    /// to take it out again, that momentum kept deep water churning (a
    /// 7,000-particle pool still moved at 33 units/s after 10 s) until
    /// `speed_passed` took a little of it at every grain.
    pub stacking: f32,

    /// Candidate runs up to this long are evaluated one candidate at a time,
    /// longer ones four per vector (`collide`). Two where every particle has
    /// one size: a near-lattice pile's runs of two are predicted well one
    /// by one (the benchmark's 1M pile 19.4 against 21.0 ms with one). One
    /// where sizes vary, as in the game: runs are longer and less regular,
    /// and a run of two goes faster as a vector (its contact phase 3–5%
    /// faster than with two, interleaved at 100k and 200k).
    pub one_by_one: usize,

    /// Largest particle radius (twice it is the widest contact).
    pub max_radius: f32,
    /// The radius the grid's bands are sized for (`KindTable::band_radius`):
    /// a band is twice it tall; particles larger than it search for their
    /// contacts on their own (`collide`).
    pub band_radius: f32,
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
            speed_passed: 0.9,
            friction: rows.map(|k| k.friction),
            drag: rows.map(|k| k.drag),
            gravity_scale: rows.map(|k| k.gravity_scale),
            stacking: 0.7,
            one_by_one: if kinds.one_size() { 2 } else { 1 },

            max_radius: kinds.max_radius(),
            band_radius: kinds.band_radius(),
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
    /// Which task ran where and when in the last step.
    pub timeline: Vec<TaskRecord>,
}

/// What the step's tasks share; the graph runs them one after another.
struct Work<'a> {
    store: &'a mut ParticleStore,
    grid: &'a mut Grid,
    scratch: &'a mut collide::Scratch,
    contacts: u64,
}

impl Physics {
    pub fn new(params: PhysicsParams) -> Self {
        let mut grid = Grid::default();
        grid.configure(params.height, params.band_radius, params.max_radius);
        Self {
            params,
            grid,
            scratch: collide::Scratch::default(),
            timeline: Vec::new(),
        }
    }

    /// Advances the store by `dt` seconds on `pool`'s compute workers.
    pub fn step(&mut self, store: &mut ParticleStore, dt: f32, pool: &WorkerPool) -> StepTimings {
        let started = Instant::now();
        let p = &self.params;
        let substeps = p.substeps.max(1);
        let h = dt / substeps as f32;
        let work = Mutex::new(Work {
            store,
            grid: &mut self.grid,
            scratch: &mut self.scratch,
            contacts: 0,
        });
        let lock = || work.lock().unwrap_or_else(|e| e.into_inner());
        let spec =
            |name: &str| TaskSpec::new(name, Capability::Physics).priority(Priority::FrameCritical);
        let mut graph = TaskGraph::new();
        let mut last: Option<TaskId> = None;
        for _ in 0..substeps {
            let after: Vec<TaskId> = last.into_iter().collect();
            let a = graph.add_after(spec("physics.integrate"), &after, move || {
                integrate::integrate(lock().store, p, h, pool);
            });
            let b = graph.add_after(spec("physics.grid"), &[a], move || {
                let w = &mut *lock();
                w.grid.rebuild(w.store, pool);
            });
            let c = graph.add_after(spec("physics.collide"), &[b], move || {
                let w = &mut *lock();
                for _ in 0..p.iterations {
                    w.contacts = collide::resolve(w.store, w.grid, p, h, w.scratch, pool);
                }
            });
            last = Some(c);
        }
        let after: Vec<TaskId> = last.into_iter().collect();
        graph.add_after(spec("physics.age"), &after, move || {
            let mut w = lock();
            pool.for_each_chunk_mut(w.store.slices_mut().age, 16_384, |_, ages| {
                for a in ages {
                    *a += dt;
                }
            });
        });
        let report = pool.run(graph).expect("the physics chain has no cycle");
        if let Some(err) = report.errors.first() {
            panic!("physics step failed: {err}");
        }
        let mut t = StepTimings {
            contacts: work
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .contacts,
            ..StepTimings::default()
        };
        for r in &report.timeline {
            let ms = (r.end_ns - r.start_ns) as f64 / 1e6;
            match r.name.as_str() {
                "physics.integrate" => t.integrate_ms += ms,
                "physics.grid" => t.grid_ms += ms,
                "physics.collide" => t.collide_ms += ms,
                _ => {}
            }
        }
        t.total_ms = started.elapsed().as_secs_f64() * 1e3;
        self.timeline = report.timeline;
        t
    }
}
