//! `particle-forge bench physics`: our physics step against what a Bevy
//! user would write, in one process, on the same scenes.
//!
//! Contenders, all stepping the same initial particles:
//! - ours: the SoA store and `Physics::step` on the worker system (one
//!   substep, one contact pass — the same amount of work per step as the
//!   peers; ours also does friction, mass scaling and the speed caps, which
//!   the peers skip, so the ratios understate ours);
//! - naive Bevy: one entity per particle with `Transform` and `Velocity`,
//!   `par_iter_mut` integration, a `HashMap` grid of entity lists and
//!   corrections applied through `Query::get_mut`;
//! - AoS: `Vec<Particle>` on rayon with our contact model and our grid —
//!   counting-sorted into bands one diameter tall, each band sorted by x —
//!   each particle gathering its corrections from the x window of the three
//!   bands around it (`vs_aos_rayon_*`); and a simpler AoS peer that only
//!   pushes overlaps apart, on a grid of cells one diameter wide, gathering
//!   from the 3×3 cells around (`vs_aos_simple_rayon_*`).
//!
//! Scenes: a dense settling pile, a sparse gas, and explosion bursts with
//! spawn/despawn churn (1% of the particles replaced every 5 steps).
//! It also measures a STREAM triad on the same workers and reports the
//! integration kernel's bandwidth as a fraction of it.

use super::{geomean, median, progress, round};
use crate::game::rng::Rng;
use crate::particles::{Kind, KindTable, NewParticle, ParticleStore};
use crate::physics::{Physics, PhysicsParams, StepTimings, integrate};
use crate::workers::WorkerPool;
use bevy::ecs::schedule::Schedule;
use bevy::prelude::{
    Component, Entity, IntoScheduleConfigs, Query, Res, Resource, Transform, Vec2, World,
};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// One step is one substep of the game's (three to a 1/60 s frame). A step
/// of a whole 1/60 s, as this benchmark took until session 16, is more
/// than one contact pass can hold a deep pile up in: the dense pile sank
/// into the floor, its bottom band holding 13,700 of the 100,000
/// particles after 100 steps (a row of the lattice is 622), and the
/// contact pass's cost piled into that one band.
const DT: f32 = 1.0 / 180.0;
const RADIUS: f32 = 1.0;
const GRAVITY: f32 = 500.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Scene {
    Pile,
    Gas,
    Bursts,
}

impl Scene {
    fn name(self) -> &'static str {
        match self {
            Scene::Pile => "dense pile",
            Scene::Gas => "sparse gas",
            Scene::Bursts => "bursts + churn",
        }
    }
}

/// One particle of a scene's initial state.
#[derive(Clone, Copy)]
struct Init {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
}

fn world_for(n: usize) -> (f32, f32) {
    if n > 200_000 {
        (4096.0, 2304.0)
    } else {
        (1280.0, 720.0)
    }
}

fn scene(kind: Scene, n: usize) -> (Vec<Init>, f32, f32, f32) {
    let (w, h) = world_for(n);
    let mut rng = Rng::new(n as u64 ^ kind as u64);
    let gravity = if kind == Scene::Gas { 0.0 } else { GRAVITY };
    let spacing = 2.05 * RADIUS;
    let mut v = Vec::with_capacity(n);
    match kind {
        Scene::Pile | Scene::Bursts => {
            let cols = ((w - 4.0) / spacing) as usize;
            for i in 0..n {
                let (c, r) = (i % cols, i / cols);
                v.push(Init {
                    x: 2.0 + c as f32 * spacing + rng.range(-0.05, 0.05),
                    y: 2.0 + r as f32 * spacing * 0.95,
                    vx: 0.0,
                    vy: 0.0,
                });
            }
        }
        Scene::Gas => {
            for _ in 0..n {
                let (vx, vy) = rng.in_disc(200.0);
                v.push(Init {
                    x: rng.range(RADIUS, w - RADIUS),
                    y: rng.range(RADIUS, h - RADIUS),
                    vx,
                    vy,
                });
            }
        }
    }
    (v, w, h, gravity)
}

/// Every 5 steps of the bursts scene: which particles die (by index modulo
/// the count) and where the new ones come from.
fn churn_plan(n: usize, step: usize, w: f32, h: f32) -> Option<(Vec<usize>, Vec<Init>)> {
    if step % 5 != 4 {
        return None;
    }
    let mut rng = Rng::new(step as u64);
    let k = (n / 100).max(1);
    let dead: Vec<usize> = (0..k)
        .map(|_| (rng.unit() * n as f32) as usize % n)
        .collect();
    let (cx, cy) = (rng.range(0.2 * w, 0.8 * w), rng.range(0.3 * h, 0.6 * h));
    let born = (0..k)
        .map(|_| {
            let (ox, oy) = rng.in_disc(20.0);
            let (vx, vy) = rng.in_disc(600.0);
            Init {
                x: cx + ox,
                y: cy + oy,
                vx,
                vy,
            }
        })
        .collect();
    Some((dead, born))
}

/// Applies a churn plan to a peer's particle array: swap-remove the dead
/// (by index modulo the count), append the born.
fn churn_vec<T>(
    items: &mut Vec<T>,
    churn: Option<&(Vec<usize>, Vec<Init>)>,
    make: impl Fn(&Init) -> T,
) {
    if let Some((dead, born)) = churn {
        for &d in dead {
            if !items.is_empty() {
                let n = items.len();
                items.swap_remove(d % n);
            }
        }
        items.extend(born.iter().map(make));
    }
}

// ---------------------------------------------------------------- ours

struct Ours {
    store: ParticleStore,
    physics: Physics,
    /// Phase times of every step taken.
    phases: Vec<StepTimings>,
}

/// Every kind the same size as the peers' particles, so the grid and the
/// contact reach are sized for them (the largest kind sets both).
fn kinds() -> KindTable {
    let mut k = KindTable::default();
    for kind in k.rows_mut() {
        kind.radius = RADIUS;
        kind.size_jitter = 0.0;
    }
    k
}

impl Ours {
    fn new(init: &[Init], w: f32, h: f32, gravity: f32) -> Self {
        let kinds = kinds();
        let mut p = PhysicsParams::new(w, h, gravity, &kinds);
        p.substeps = 1;
        p.iterations = 1;
        let mut store = ParticleStore::with_limit(init.len() * 2);
        for i in init {
            store.spawn(particle(i)).expect("room");
        }
        Self {
            store,
            physics: Physics::new(p),
            phases: Vec::new(),
        }
    }

    fn step(&mut self, pool: &WorkerPool, churn: Option<&(Vec<usize>, Vec<Init>)>) {
        if let Some((dead, born)) = churn {
            let n = self.store.len();
            let mut kill = vec![false; n];
            for &d in dead {
                kill[d % n] = true;
            }
            let mut i = 0;
            self.store.despawn_where(|_, _| {
                i += 1;
                kill[i - 1]
            });
            for b in born {
                let _ = self.store.spawn(particle(b));
            }
        }
        let t = self.physics.step(&mut self.store, DT, pool);
        self.phases.push(t);
    }

    /// Median milliseconds of (integrate, grid, contacts) over the last
    /// `steps` steps.
    fn phase_medians(&self, steps: usize) -> [f64; 3] {
        let last = &self.phases[self.phases.len().saturating_sub(steps)..];
        let phase = |f: fn(&StepTimings) -> f64| {
            round(median(&mut last.iter().map(f).collect::<Vec<f64>>()), 2)
        };
        [
            phase(|t| t.integrate_ms),
            phase(|t| t.grid_ms),
            phase(|t| t.collide_ms),
        ]
    }
}

fn particle(i: &Init) -> NewParticle {
    NewParticle {
        x: i.x,
        y: i.y,
        vx: i.vx,
        vy: i.vy,
        radius: RADIUS,
        inv_mass: 1.0,
        kind: Kind::Sand as u8,
    }
}

// ---------------------------------------------------------------- AoS

/// The simple peers' grid: cells of one diameter, items counting-sorted by
/// cell, `start[c]..start[c + 1]` the items of `c` (our grid before it
/// became bands sorted by x: `BandSort`).
struct CellSort {
    cell: Vec<u32>,
    start: Vec<u32>,
    cols: usize,
    rows: usize,
    inv: f32,
}

impl CellSort {
    fn new(w: f32, h: f32) -> Self {
        let cs = 2.0 * RADIUS;
        let (cols, rows) = ((w / cs).ceil() as usize, (h / cs).ceil() as usize);
        Self {
            cell: Vec::new(),
            start: vec![0; cols * rows + 1],
            cols,
            rows,
            inv: 1.0 / cs,
        }
    }

    fn cell_of(&self, x: f32, y: f32) -> (usize, usize) {
        (
            ((x * self.inv) as usize).min(self.cols - 1),
            ((y * self.inv) as usize).min(self.rows - 1),
        )
    }

    /// Counts `items` per cell and fills `start`; returns each cell's first
    /// output slot (the scatter's cursors).
    fn count<T: Sync>(&mut self, items: &[T], pos: impl Fn(&T) -> (f32, f32) + Sync) -> Vec<u32> {
        let cols = self.cols;
        self.cell = items
            .par_iter()
            .map(|t| {
                let (x, y) = pos(t);
                let (cx, cy) = self.cell_of(x, y);
                (cy * cols + cx) as u32
            })
            .collect();
        self.start.iter_mut().for_each(|s| *s = 0);
        for &c in &self.cell {
            self.start[c as usize + 1] += 1;
        }
        for c in 0..self.start.len() - 1 {
            self.start[c + 1] += self.start[c];
        }
        self.start.clone()
    }

    /// Sorts `items` by cell (stable), using `spare` as the second buffer.
    fn sort<T: Copy + Default + Send + Sync>(
        &mut self,
        items: &mut Vec<T>,
        spare: &mut Vec<T>,
        pos: impl Fn(&T) -> (f32, f32) + Sync,
    ) {
        let mut cursor = self.count(items, pos);
        spare.resize(items.len(), T::default());
        for (i, &c) in self.cell.iter().enumerate() {
            spare[cursor[c as usize] as usize] = items[i];
            cursor[c as usize] += 1;
        }
        std::mem::swap(items, spare);
    }

    /// The item range of cells `cx-1..=cx+1` of grid row `row`.
    fn row_span(&self, row: usize, cx: usize) -> (usize, usize) {
        let a = self.start[row * self.cols + cx.saturating_sub(1)] as usize;
        let b = self.start[row * self.cols + (cx + 1).min(self.cols - 1) + 1] as usize;
        (a, b)
    }
}

/// The same-model peer's grid, ours (`physics::grid`): bands one diameter
/// tall, items counting-sorted by band in parallel (per-chunk counts, each
/// chunk scattering into its own slots of each band, so the order within a
/// band is the input's), then each band sorted by x, so a particle's
/// neighbours within a diameter are one x window in each of three bands.
/// `start[b]..start[b + 1]` are band `b`'s items.
struct BandSort {
    start: Vec<u32>,
    bands: usize,
    inv: f32,
}

impl BandSort {
    fn new(h: f32) -> Self {
        let bh = 2.0 * RADIUS;
        let bands = ((h / bh).ceil() as usize).max(1);
        Self {
            start: vec![0; bands + 1],
            bands,
            inv: 1.0 / bh,
        }
    }

    fn band_of(&self, y: f32) -> usize {
        ((y * self.inv) as usize).min(self.bands - 1)
    }

    /// Counting sort by band: `out` gets `make(i, item)` for every item, in
    /// band order (stable), and `start` the bands' ranges.
    fn place<T: Sync, U: Copy + Default + Send>(
        &mut self,
        items: &[T],
        out: &mut Vec<U>,
        y: impl Fn(&T) -> f32 + Sync,
        make: impl Fn(usize, &T) -> U + Sync,
    ) {
        let (n, bands) = (items.len(), self.bands);
        let chunk = n.div_ceil(2 * rayon::current_num_threads()).max(1);
        let keyed: Vec<(Vec<u32>, Vec<usize>)> = items
            .par_chunks(chunk)
            .map(|c| {
                let keys: Vec<u32> = c.iter().map(|t| self.band_of(y(t)) as u32).collect();
                let mut counts = vec![0; bands];
                for &b in &keys {
                    counts[b as usize] += 1;
                }
                (keys, counts)
            })
            .collect();
        // Each (band, chunk) piece of the output, band-major, handed to its
        // chunk.
        out.resize(n, U::default());
        let mut rest = &mut out[..];
        let mut pieces: Vec<Vec<&mut [U]>> =
            keyed.iter().map(|_| Vec::with_capacity(bands)).collect();
        let mut at = 0;
        for b in 0..bands {
            self.start[b] = at as u32;
            for (c, (_, counts)) in keyed.iter().enumerate() {
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(counts[b]);
                rest = tail;
                pieces[c].push(head);
                at += counts[b];
            }
        }
        self.start[bands] = at as u32;
        items
            .par_chunks(chunk)
            .enumerate()
            .zip(pieces)
            .zip(&keyed)
            .for_each(|(((c, part), mut outs), (keys, _))| {
                let mut filled = vec![0; bands];
                for (k, (t, &b)) in part.iter().zip(keys).enumerate() {
                    let b = b as usize;
                    outs[b][filled[b]] = make(c * chunk + k, t);
                    filled[b] += 1;
                }
            });
    }

    /// `data` cut into the bands' pieces.
    fn pieces<'a, T>(&self, mut data: &'a mut [T]) -> Vec<&'a mut [T]> {
        let mut out = Vec::with_capacity(self.bands);
        for b in 0..self.bands {
            let len = (self.start[b + 1] - self.start[b]) as usize;
            let (head, tail) = std::mem::take(&mut data).split_at_mut(len);
            data = tail;
            out.push(head);
        }
        out
    }

    /// Sorts `items` by band, using `spare` as the second buffer, then each
    /// band by x, the bands in parallel.
    fn sort<T: Copy + Default + Send + Sync>(
        &mut self,
        items: &mut Vec<T>,
        spare: &mut Vec<T>,
        pos: impl Fn(&T) -> (f32, f32) + Sync,
    ) {
        self.place(items, spare, |t| pos(t).1, |_, t| *t);
        std::mem::swap(items, spare);
        self.pieces(items)
            .into_par_iter()
            .for_each(|band| band.sort_unstable_by(|a, b| pos(a).0.total_cmp(&pos(b).0)));
    }

    /// Sorts only an index of `items` the same way, leaving the items where
    /// they are.
    fn sort_index<T: Sync>(
        &mut self,
        items: &[T],
        index: &mut Vec<u32>,
        pos: impl Fn(&T) -> (f32, f32) + Sync,
    ) {
        self.place(items, index, |t| pos(t).1, |i, _| i as u32);
        let x = |i: &u32| pos(&items[*i as usize]).0;
        self.pieces(index)
            .into_par_iter()
            .for_each(|band| band.sort_unstable_by(|a, b| x(a).total_cmp(&x(b))));
    }

    /// Band `b`'s item range.
    fn span(&self, b: usize) -> (usize, usize) {
        (self.start[b] as usize, self.start[b + 1] as usize)
    }
}

#[derive(Clone, Copy, Default)]
struct P {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
}

struct Aos {
    p: Vec<P>,
    sorted: Vec<P>,
    grid: CellSort,
    corr: Vec<(f32, f32)>,
    w: f32,
    h: f32,
    gravity: f32,
}

impl Aos {
    fn new(init: &[Init], w: f32, h: f32, gravity: f32) -> Self {
        Self {
            p: init
                .iter()
                .map(|i| P {
                    x: i.x,
                    y: i.y,
                    vx: i.vx,
                    vy: i.vy,
                })
                .collect(),
            sorted: Vec::new(),
            grid: CellSort::new(w, h),
            corr: Vec::new(),
            w,
            h,
            gravity,
        }
    }

    fn step(&mut self, churn: Option<&(Vec<usize>, Vec<Init>)>) {
        churn_vec(&mut self.p, churn, |i| P {
            x: i.x,
            y: i.y,
            vx: i.vx,
            vy: i.vy,
        });
        let (w, h, g) = (self.w, self.h, self.gravity);
        self.p.par_iter_mut().for_each(|p| {
            p.vy -= g * DT;
            p.x += p.vx * DT;
            p.y += p.vy * DT;
            if p.x < RADIUS || p.x > w - RADIUS {
                p.x = p.x.clamp(RADIUS, w - RADIUS);
                p.vx = 0.0;
            }
            if p.y < RADIUS || p.y > h - RADIUS {
                p.y = p.y.clamp(RADIUS, h - RADIUS);
                p.vy = 0.0;
            }
        });
        self.grid
            .sort(&mut self.p, &mut self.sorted, |p| (p.x, p.y));
        // Each particle gathers its correction from the 3×3 cells.
        let (p, grid) = (&self.p, &self.grid);
        self.corr.resize(p.len(), (0.0, 0.0));
        self.corr.par_iter_mut().enumerate().for_each(|(i, c)| {
            let me = p[i];
            let (cx, cy) = grid.cell_of(me.x, me.y);
            let (mut ax, mut ay) = (0.0, 0.0);
            for row in cy.saturating_sub(1)..=(cy + 1).min(grid.rows - 1) {
                let (a, b) = grid.row_span(row, cx);
                for (j, o) in p[a..b].iter().enumerate() {
                    if a + j == i {
                        continue;
                    }
                    let (dx, dy) = (me.x - o.x, me.y - o.y);
                    let d2 = dx * dx + dy * dy;
                    let rr = 2.0 * RADIUS;
                    if d2 < rr * rr && d2 > 1e-12 {
                        let d = d2.sqrt();
                        let push = 0.5 * (rr - d) / d;
                        ax += dx * push;
                        ay += dy * push;
                    }
                }
            }
            *c = (ax, ay);
        });
        let corr = &self.corr;
        self.p.par_iter_mut().zip(corr).for_each(|(p, &(ax, ay))| {
            p.x = (p.x + ax).clamp(RADIUS, w - RADIUS);
            p.y = (p.y + ay).clamp(RADIUS, h - RADIUS);
            p.vx += ax / DT;
            p.vy += ay / DT;
        });
    }
}

// ---------------------------------------------------------------- AoS, same model

/// One particle with everything our contact model reads.
#[derive(Clone, Copy, Default)]
struct Q {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    /// Contacts in the last pass.
    n: f32,
}

/// The same physics as ours (drag, speed cap, Coulomb friction, stacking
/// weights, contact-count scaling, the correction and velocity caps) on an
/// array of structs with rayon and our grid (`BandSort`): each particle
/// gathers its share of every pair from the x window of the three bands
/// around it (the pair terms are those of our pair-once kernel, seen from
/// either side).
struct AosSame {
    q: Vec<Q>,
    sorted: Vec<Q>,
    grid: BandSort,
    out: Vec<(f32, f32, f32, f32)>,
    p: PhysicsParams,
    /// Whether the particles themselves are kept in band order; without,
    /// only an index is sorted and neighbours are read through it (the
    /// same algorithm without ordered memory, for the cache comparison).
    ordered: bool,
    index: Vec<u32>,
    /// `out` in item order, for the index-only variant.
    by_item: Vec<(f32, f32, f32, f32)>,
}

impl AosSame {
    fn new(init: &[Init], w: f32, h: f32, gravity: f32) -> Self {
        let kinds = kinds();
        let mut p = PhysicsParams::new(w, h, gravity, &kinds);
        p.substeps = 1;
        Self {
            q: init
                .iter()
                .map(|i| Q {
                    x: i.x,
                    y: i.y,
                    vx: i.vx,
                    vy: i.vy,
                    n: 0.0,
                })
                .collect(),
            sorted: Vec::new(),
            grid: BandSort::new(h),
            out: Vec::new(),
            p,
            ordered: true,
            index: Vec::new(),
            by_item: Vec::new(),
        }
    }

    /// The same peer with only an index in band order.
    fn unordered(init: &[Init], w: f32, h: f32, gravity: f32) -> Self {
        Self {
            ordered: false,
            ..Self::new(init, w, h, gravity)
        }
    }

    fn step(&mut self, churn: Option<&(Vec<usize>, Vec<Init>)>) {
        churn_vec(&mut self.q, churn, |i| Q {
            x: i.x,
            y: i.y,
            vx: i.vx,
            vy: i.vy,
            n: 0.0,
        });
        let p = &self.p;
        let h = DT;
        let k = Kind::Sand as usize;
        let (drag, dv) = (p.drag[k].powf(h), -p.gravity * p.gravity_scale[k] * h);
        let (w, ht, max_move) = (p.width, p.height, p.max_move);
        self.q.par_iter_mut().for_each(|q| {
            let mut u = q.vx * drag;
            let mut v = q.vy * drag + dv;
            let limit = max_move * RADIUS / h;
            let sq = u * u + v * v;
            if sq > limit * limit {
                let f = limit / sq.sqrt();
                u *= f;
                v *= f;
            }
            let (nx, ny) = (q.x + u * h, q.y + v * h);
            let (cx, cy) = (nx.clamp(RADIUS, w - RADIUS), ny.clamp(RADIUS, ht - RADIUS));
            if cx != nx {
                u = (cx - q.x) / h;
            }
            if cy != ny {
                v = (cy - q.y) / h;
            }
            (q.x, q.y, q.vx, q.vy) = (cx, cy, u, v);
        });
        if self.ordered {
            self.grid
                .sort(&mut self.q, &mut self.sorted, |q| (q.x, q.y));
        } else {
            self.grid
                .sort_index(&self.q, &mut self.index, |q| (q.x, q.y));
        }
        let n = self.q.len();
        // Gather each particle's share of every pair.
        let stack = if p.gravity == 0.0 {
            0.0
        } else {
            p.stacking * p.gravity.signum()
        };
        let mu = p.friction[k];
        let (q, grid) = (&self.q, &self.grid);
        let (ordered, index) = (self.ordered, &self.index[..]);
        self.out.resize(n, (0.0, 0.0, 0.0, 0.0));
        let item = |k: usize| if ordered { k } else { index[k] as usize };
        let rr = 2.0 * RADIUS;
        // Band by band, in x order, as ours: in each of the three bands
        // around, the first item within a diameter to the left only moves
        // forward as x grows. `out` comes out in band order.
        let pieces = grid.pieces(&mut self.out);
        pieces.into_par_iter().enumerate().for_each(|(band, outs)| {
            let near = band.saturating_sub(1)..=(band + 1).min(grid.bands - 1);
            let mut runs: Vec<(usize, usize)> = near.map(|b| grid.span(b)).collect();
            let first = grid.span(band).0;
            for (k, o) in outs.iter_mut().enumerate() {
                let i = item(first + k);
                let me = q[i];
                let (mut ax, mut ay, mut hits, mut s2) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
                for (from, end) in runs.iter_mut() {
                    while *from < *end && q[item(*from)].x <= me.x - rr {
                        *from += 1;
                    }
                    for j in (*from..*end).map(item) {
                        let other = &q[j];
                        if other.x >= me.x + rr {
                            break;
                        }
                        if j == i {
                            continue;
                        }
                        let (dx, dy) = (me.x - other.x, me.y - other.y);
                        let d2 = dx * dx + dy * dy;
                        if d2 >= rr * rr || d2 < 1e-10 {
                            continue;
                        }
                        let scale = 1.0 / other.n.max(me.n).max(1.0);
                        let d = d2.sqrt();
                        let (nx, ny) = (dx / d, dy / d);
                        let overlap = rr - d;
                        let sdy = stack * dy;
                        let num = 12.0 - 6.0 * sdy + sdy * sdy;
                        let den = 12.0 + 6.0 * sdy + sdy * sdy;
                        let frac = den / (den + num); // equal masses
                        let bound = mu * overlap;
                        let slip = (((me.vx - other.vx) * -ny + (me.vy - other.vy) * nx) * h)
                            .clamp(-bound, bound);
                        let tx = (nx * overlap + ny * slip) * scale;
                        let ty = (ny * overlap - nx * slip) * scale;
                        ax += tx * frac;
                        ay += ty * frac;
                        hits += 1.0;
                        s2 = s2.max(other.vx * other.vx + other.vy * other.vy);
                    }
                }
                *o = (ax, ay, hits, s2);
            }
        });
        if !ordered {
            // Item `index[k]`'s sums are `out[k]`: back to item order.
            self.by_item.resize(n, (0.0, 0.0, 0.0, 0.0));
            for (k, &i) in index.iter().enumerate() {
                self.by_item[i as usize] = self.out[k];
            }
            std::mem::swap(&mut self.out, &mut self.by_item);
        }
        let (relax, passed2, out) = (p.relaxation, p.speed_passed * p.speed_passed, &self.out);
        self.q
            .par_iter_mut()
            .zip(out)
            .for_each(|(q, &(ax, ay, hits, s2))| {
                let (mut ax, mut ay) = (ax * relax, ay * relax);
                let limit = max_move * RADIUS;
                let sq = ax * ax + ay * ay;
                if sq > limit * limit {
                    let f = limit / sq.sqrt();
                    ax *= f;
                    ay *= f;
                }
                let nx = (q.x + ax).clamp(RADIUS, w - RADIUS);
                let ny = (q.y + ay).clamp(RADIUS, ht - RADIUS);
                let (mut u, mut v) = (q.vx + (nx - q.x) / h, q.vy + (ny - q.y) / h);
                let limit2 = (q.vx * q.vx + q.vy * q.vy).max(s2 * passed2);
                let sq = u * u + v * v;
                if sq > limit2 {
                    let f = (limit2 / sq).sqrt();
                    u *= f;
                    v *= f;
                }
                (q.x, q.y, q.vx, q.vy, q.n) = (nx, ny, u, v, hits);
            });
    }
}

// ---------------------------------------------------------------- naive Bevy

#[derive(Component, Clone, Copy)]
struct Velocity(Vec2);

#[derive(Resource, Clone, Copy)]
struct Bounds {
    w: f32,
    h: f32,
    gravity: f32,
}

fn naive_integrate(mut q: Query<(&mut Transform, &mut Velocity)>, b: Res<Bounds>) {
    q.par_iter_mut().for_each(|(mut t, mut v)| {
        v.0.y -= b.gravity * DT;
        t.translation.x += v.0.x * DT;
        t.translation.y += v.0.y * DT;
        if t.translation.x < RADIUS || t.translation.x > b.w - RADIUS {
            t.translation.x = t.translation.x.clamp(RADIUS, b.w - RADIUS);
            v.0.x = 0.0;
        }
        if t.translation.y < RADIUS || t.translation.y > b.h - RADIUS {
            t.translation.y = t.translation.y.clamp(RADIUS, b.h - RADIUS);
            v.0.y = 0.0;
        }
    });
}

fn naive_collide(mut q: Query<(Entity, &mut Transform, &mut Velocity)>, b: Res<Bounds>) {
    let cell = |t: &Transform| {
        (
            (t.translation.x / (2.0 * RADIUS)) as i32,
            (t.translation.y / (2.0 * RADIUS)) as i32,
        )
    };
    let mut grid: HashMap<(i32, i32), Vec<Entity>> = HashMap::new();
    for (e, t, _) in q.iter() {
        grid.entry(cell(t)).or_default().push(e);
    }
    let mut corrections: Vec<(Entity, Vec2)> = Vec::new();
    for (e, t, _) in q.iter() {
        let (cx, cy) = cell(t);
        let me = t.translation.truncate();
        let mut acc = Vec2::ZERO;
        for dy in -1..=1 {
            for dx in -1..=1 {
                if let Some(list) = grid.get(&(cx + dx, cy + dy)) {
                    for &o in list {
                        if o == e {
                            continue;
                        }
                        let (_, ot, _) = q.get(o).expect("live entity");
                        let d = me - ot.translation.truncate();
                        let len = d.length();
                        if len < 2.0 * RADIUS && len > 1e-6 {
                            acc += d / len * (0.5 * (2.0 * RADIUS - len));
                        }
                    }
                }
            }
        }
        if acc != Vec2::ZERO {
            corrections.push((e, acc));
        }
    }
    for (e, c) in corrections {
        let (_, mut t, mut v) = q.get_mut(e).expect("live entity");
        t.translation.x = (t.translation.x + c.x).clamp(RADIUS, b.w - RADIUS);
        t.translation.y = (t.translation.y + c.y).clamp(RADIUS, b.h - RADIUS);
        v.0 += c / DT;
    }
}

struct Naive {
    world: World,
    schedule: Schedule,
    entities: Vec<Entity>,
}

impl Naive {
    fn new(init: &[Init], w: f32, h: f32, gravity: f32) -> Self {
        bevy::tasks::ComputeTaskPool::get_or_init(|| {
            bevy::tasks::TaskPoolBuilder::new()
                .num_threads(crate::workers::cores())
                .build()
        });
        let mut world = World::new();
        world.insert_resource(Bounds { w, h, gravity });
        let entities = init
            .iter()
            .map(|i| {
                world
                    .spawn((
                        Transform::from_xyz(i.x, i.y, 0.0),
                        Velocity(Vec2::new(i.vx, i.vy)),
                    ))
                    .id()
            })
            .collect();
        let mut schedule = Schedule::default();
        schedule.add_systems((naive_integrate, naive_collide).chain());
        Self {
            world,
            schedule,
            entities,
        }
    }

    fn step(&mut self, churn: Option<&(Vec<usize>, Vec<Init>)>) {
        if let Some((dead, born)) = churn {
            for &d in dead {
                if !self.entities.is_empty() {
                    let n = self.entities.len();
                    let e = self.entities.swap_remove(d % n);
                    self.world.despawn(e);
                }
            }
            for i in born {
                let e = self
                    .world
                    .spawn((
                        Transform::from_xyz(i.x, i.y, 0.0),
                        Velocity(Vec2::new(i.vx, i.vy)),
                    ))
                    .id();
                self.entities.push(e);
            }
        }
        self.schedule.run(&mut self.world);
    }
}

// ---------------------------------------------------------------- runs

#[derive(Serialize, Debug, Clone)]
pub struct Row {
    pub scene: Scene,
    pub particles: usize,
    pub ours_ms: f64,
    /// Our step's phases: integrate, grid (sort), contacts, in ms (medians).
    pub ours_phases_ms: [f64; 3],
    /// The AoS peer with our contact model.
    pub aos_same_ms: f64,
    /// The AoS peer with the simpler model (push apart half the overlap).
    pub aos_ms: f64,
    pub naive_bevy_ms: Option<f64>,
    pub vs_aos_same: f64,
    pub vs_aos: f64,
    pub vs_naive_bevy: Option<f64>,
}

#[derive(Serialize, Debug)]
pub struct PhysicsReport {
    pub vs_naive_bevy_100k: f64,
    /// Against the AoS peer with our contact model (like for like).
    pub vs_aos_rayon_100k: f64,
    pub vs_aos_rayon_1m: f64,
    /// Against the AoS peer with the simpler contact model.
    pub vs_aos_simple_rayon_100k: f64,
    pub vs_aos_simple_rayon_1m: f64,
    pub steps_per_s_1m: f64,
    pub ns_per_particle_1m: f64,
    pub bandwidth_fraction: f64,
    pub triad_gb_s: f64,
    pub integrate_gb_s: f64,
    pub bytes_per_particle_step: f64,
    /// The 1M pile's step, 1 worker's time ÷ 2 workers': the median of
    /// `scaling_2_workers_rounds`.
    pub scaling_2_workers: f64,
    /// Each round's ratio, in order: how far the machine's speed moved
    /// during the measurement.
    pub scaling_2_workers_rounds: Vec<f64>,
    /// What the machine itself gave a second worker in the same rounds: a
    /// compute-bound loop with no memory traffic, 1 worker's time ÷ 2
    /// workers' (median). Where it is below 1.8, no step can show 1.8.
    pub compute_scaling_2_workers: f64,
    /// The same for the 100k pile, whose columns fit in the last-level cache.
    pub scaling_2_workers_100k: f64,
    /// What the memory bus itself gives a second worker: the STREAM triad
    /// over arrays far larger than the caches, 2 workers' GB/s ÷ 1's. The
    /// 1M step's streaming passes cannot scale past it.
    pub triad_scaling_2_workers: f64,
    pub rows: Vec<Row>,
    pub workers: usize,
    pub quick: bool,
}

/// Runs `warm` unmeasured steps, then `steps` timed ones, adding their
/// milliseconds to `times`; `at` counts the steps taken (churn plans key on
/// it).
fn time_into(
    times: &mut Vec<f64>,
    at: &mut usize,
    warm: usize,
    steps: usize,
    mut step: impl FnMut(usize),
) {
    for _ in 0..warm {
        step(*at);
        *at += 1;
    }
    for _ in 0..steps {
        let t0 = Instant::now();
        step(*at);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        *at += 1;
    }
}

/// Median milliseconds per step over `steps` steps (after `warm`).
fn time_steps(steps: usize, warm: usize, step: impl FnMut(usize)) -> f64 {
    let mut t = Vec::with_capacity(steps);
    time_into(&mut t, &mut 0, warm, steps, step);
    median(&mut t)
}

fn run_scene(
    pool: &WorkerPool,
    theirs: &rayon::ThreadPool,
    kind: Scene,
    n: usize,
    steps: usize,
    naive: bool,
) -> Row {
    progress(&format!("{} at {n} particles", kind.name()));
    let (init, w, h, g) = scene(kind, n);
    let plan = |s: usize| {
        if kind == Scene::Bursts {
            churn_plan(n, s, w, h)
        } else {
            None
        }
    };
    // The three run in interleaved rounds (each round: one unmeasured step,
    // then `steps / ROUNDS` measured ones per contender), so a slow spell of
    // the machine lands on all of them instead of on whoever ran then.
    const ROUNDS: usize = 4;
    let per = steps.div_ceil(ROUNDS).max(1);
    let mut ours = Ours::new(&init, w, h, g);
    let mut same = AosSame::new(&init, w, h, g);
    let mut aos = Aos::new(&init, w, h, g);
    let (mut t_ours, mut t_same, mut t_aos) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = [0usize; 3];
    for _ in 0..ROUNDS {
        time_into(&mut t_ours, &mut at[0], 1, per, |s| {
            ours.step(pool, plan(s).as_ref())
        });
        theirs.install(|| {
            time_into(&mut t_same, &mut at[1], 1, per, |s| {
                same.step(plan(s).as_ref())
            });
            time_into(&mut t_aos, &mut at[2], 1, per, |s| {
                aos.step(plan(s).as_ref())
            });
        });
    }
    let ours_phases_ms = ours.phase_medians(ours.phases.len());
    let (ours_ms, aos_same_ms, aos_ms) =
        (median(&mut t_ours), median(&mut t_same), median(&mut t_aos));
    drop((ours, same, aos));
    let naive_bevy_ms = naive.then(|| {
        let mut nb = Naive::new(&init, w, h, g);
        time_steps(steps.min(5), 1, |s| nb.step(plan(s).as_ref()))
    });
    Row {
        scene: kind,
        particles: n,
        ours_ms: round(ours_ms, 2),
        ours_phases_ms,
        aos_same_ms: round(aos_same_ms, 2),
        aos_ms: round(aos_ms, 2),
        naive_bevy_ms: naive_bevy_ms.map(|m| round(m, 1)),
        vs_aos_same: round(aos_same_ms / ours_ms, 3),
        vs_aos: round(aos_ms / ours_ms, 3),
        vs_naive_bevy: naive_bevy_ms.map(|m| round(m / ours_ms, 2)),
    }
}

/// Who `bench physics --profile` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Contender {
    /// Our SoA store and step on the worker system.
    Ours,
    /// The AoS peer with our contact model, particles kept in band order.
    Aos,
    /// The same AoS peer with only an index kept in band order.
    AosUnordered,
    /// One entity per particle.
    NaiveBevy,
}

/// Steps one contender on one scene, spawned in random order (one warm-up
/// step, then `steps`), and says its median time per step: the run to put
/// under a profiler.
pub fn profile(who: Contender, kind: Scene, n: usize, steps: usize) -> anyhow::Result<String> {
    if !(1..=2_000_000).contains(&n) {
        anyhow::bail!("--profile-particles must be between 1 and 2000000");
    }
    if steps == 0 {
        anyhow::bail!("--profile-steps must be at least 1");
    }
    let workers = crate::workers::cores();
    let (mut init, w, h, g) = scene(kind, n);
    // Spawned in random order, as a store is after a while of play (bursts
    // spawn, sparks die): memory order says nothing about position until
    // someone sorts.
    let mut rng = Rng::new(7);
    for i in (1..init.len()).rev() {
        let j = (rng.unit() * (i + 1) as f32) as usize;
        init.swap(i, j.min(i));
    }
    let rayon_pool = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .map_err(|e| anyhow::anyhow!("could not start the rayon threads: {e}"))
    };
    let plan = |s: usize| {
        if kind == Scene::Bursts {
            churn_plan(n, s, w, h)
        } else {
            None
        }
    };
    let ms = match who {
        Contender::Ours => {
            let pool = WorkerPool::new(workers, 0)
                .map_err(|e| anyhow::anyhow!("could not start the workers: {e}"))?;
            let mut ours = Ours::new(&init, w, h, g);
            time_steps(steps, 1, |s| ours.step(&pool, plan(s).as_ref()))
        }
        Contender::Aos | Contender::AosUnordered => {
            let mut aos = if who == Contender::Aos {
                AosSame::new(&init, w, h, g)
            } else {
                AosSame::unordered(&init, w, h, g)
            };
            rayon_pool()?.install(|| time_steps(steps, 1, |s| aos.step(plan(s).as_ref())))
        }
        Contender::NaiveBevy => {
            let mut naive = Naive::new(&init, w, h, g);
            time_steps(steps, 1, |s| naive.step(plan(s).as_ref()))
        }
    };
    Ok(format!(
        "{who:?}: {} spawned in random order, {n} particles, {workers} workers: {ms:.2} ms per step (median of {steps})",
        kind.name()
    ))
}

/// STREAM triad `a = b + s·c` over `n` floats on the workers; bytes/s.
fn triad(pool: &WorkerPool, n: usize) -> f64 {
    let b: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let c: Vec<f32> = (0..n).map(|i| (n - i) as f32).collect();
    let mut a = vec![0f32; n];
    let mut best = f64::MAX;
    for _ in 0..6 {
        let t0 = Instant::now();
        pool.for_each_chunk_mut(&mut a, 1 << 16, |off, out| {
            let (b, c) = (&b[off..off + out.len()], &c[off..off + out.len()]);
            for ((a, &b), &c) in out.iter_mut().zip(b).zip(c) {
                *a = b + 3.0 * c;
            }
        });
        best = best.min(t0.elapsed().as_secs_f64());
    }
    std::hint::black_box(&a);
    (3 * 4 * n) as f64 / best
}

/// Bytes one step streams per particle (one substep): what each pass reads
/// and writes of the columns, not counting neighbour re-reads that hit in
/// cache. integrate 37 (x, y, vx, vy both ways, radius, kind); grid 100
/// (cell 12, histogram 4, scatter 8, reorder 76); contacts 96 (friction 5,
/// pass 1 reads 32 and clears/writes 32, apply reads 32 writes 16, counts
/// 8 — minus overlap); age 8.
const BYTES_PER_PARTICLE_STEP: f64 = 37.0 + 100.0 + 96.0 + 8.0;

/// Two copies of a pile, one per pool, stepped in lockstep: the step gives
/// the same state on any worker count, so both time the same work (one
/// pile stepped by both pools in turn would hand the 1-worker steps a
/// younger pile, and a settling pile grows dearer step by step). The
/// figure is the median of eight rounds' ratios (`steps` steps each), 1
/// worker's time ÷ 2 workers': each round's two halves run back to back,
/// so a slow spell of the machine lands on both (three rounds' median
/// moved between 1.2 and 1.9 on a VM whose vCPUs change speed).
fn lockstep_scaling(
    init: &[Init],
    (w, h, g): (f32, f32, f32),
    (one, two): (&WorkerPool, &WorkerPool),
    steps: usize,
) -> Scaling {
    let mut alone = Ours::new(init, w, h, g);
    let mut paired = Ours::new(init, w, h, g);
    let (mut ratios, mut machine) = (Vec::new(), Vec::new());
    for _ in 0..8 {
        let t1 = time_steps(steps, 1, |_| {
            alone.physics.step(&mut alone.store, DT, one);
        });
        let t2 = time_steps(steps, 1, |_| {
            paired.physics.step(&mut paired.store, DT, two);
        });
        ratios.push(t1 / t2);
        machine.push(compute_seconds(one) / compute_seconds(two));
    }
    let rounds = ratios.iter().map(|r| round(*r, 3)).collect();
    Scaling {
        step: median(&mut ratios),
        rounds,
        machine: median(&mut machine),
    }
}

/// A step's 2-worker scaling, round by round, and what the machine gave a
/// second worker in the same rounds.
struct Scaling {
    /// The median of the rounds' ratios.
    step: f64,
    rounds: Vec<f64>,
    /// A compute-bound loop (no memory traffic) on 1 worker ÷ on 2, timed
    /// in each round right after the steps: the vCPUs' own scaling then.
    machine: f64,
}

/// Seconds a compute-bound parallel loop takes on `pool` (~80 ms on one
/// worker here: long enough that waking the second worker does not count).
fn compute_seconds(pool: &WorkerPool) -> f64 {
    let t = Instant::now();
    super::workers::compute_bound_loop(pool, 262_144);
    t.elapsed().as_secs_f64()
}

pub fn run(quick: bool) -> PhysicsReport {
    let workers = crate::workers::cores();
    let pool = WorkerPool::new(workers, 0).expect("worker pool");
    let theirs = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("rayon");
    let steps = if quick { 8 } else { 24 };
    let mut rows = Vec::new();
    let scenes_100k: &[Scene] = if quick {
        &[Scene::Pile]
    } else {
        &[Scene::Pile, Scene::Gas, Scene::Bursts]
    };
    for &s in scenes_100k {
        rows.push(run_scene(&pool, &theirs, s, 100_000, steps, true));
    }
    let scenes_1m: &[Scene] = if quick {
        &[Scene::Pile]
    } else {
        &[Scene::Pile, Scene::Gas, Scene::Bursts]
    };
    for &s in scenes_1m {
        rows.push(run_scene(
            &pool,
            &theirs,
            s,
            1_000_000,
            if quick { 4 } else { 8 },
            false,
        ));
    }
    progress("STREAM triad and the integration kernel's bandwidth");
    let triad_bps = triad(&pool, if quick { 1 << 23 } else { 1 << 24 });
    let (init, w, h, g) = scene(Scene::Pile, 1_000_000);
    let mut ours = Ours::new(&init, w, h, g);
    let p = ours.physics.params.clone();
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t0 = Instant::now();
        integrate::integrate(&mut ours.store, &p, DT, &pool);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let integrate_bps = 37.0 * ours.store.len() as f64 / best;
    progress("scaling, 1 worker vs 2");
    // Only the two pools being compared keep threads from here on.
    pool.shutdown();
    drop(theirs);
    drop(ours);
    let one = WorkerPool::new(1, 0).expect("pool");
    let two = WorkerPool::new(2, 0).expect("pool");
    let scaling = lockstep_scaling(&init, (w, h, g), (&one, &two), 4);
    // A 100k step is a tenth as long: more of them per round.
    let (init_100k, w, h, g) = scene(Scene::Pile, 100_000);
    let scaling_100k = lockstep_scaling(&init_100k, (w, h, g), (&one, &two), 16).step;
    // The triad in alternating pairs too, for the same reason.
    let triad_n = if quick { 1 << 23 } else { 1 << 24 };
    let mut triad_ratios: Vec<f64> = (0..5)
        .map(|_| {
            let alone = triad(&one, triad_n);
            triad(&two, triad_n) / alone
        })
        .collect();
    let triad_scaling = median(&mut triad_ratios);
    let m = |s: Scene, n: usize| rows.iter().find(|r| r.scene == s && r.particles == n);
    let naive: Vec<f64> = rows
        .iter()
        .filter(|r| r.particles == 100_000)
        .filter_map(|r| r.vs_naive_bevy)
        .collect();
    let ratios = |n: usize, pick: fn(&Row) -> f64| -> Vec<f64> {
        rows.iter().filter(|r| r.particles == n).map(pick).collect()
    };
    let aos_100k = ratios(100_000, |r| r.vs_aos_same);
    let aos_1m = ratios(1_000_000, |r| r.vs_aos_same);
    let simple_100k = ratios(100_000, |r| r.vs_aos);
    let simple_1m = ratios(1_000_000, |r| r.vs_aos);
    let pile_1m = m(Scene::Pile, 1_000_000).expect("the 1M pile ran").ours_ms;
    PhysicsReport {
        vs_naive_bevy_100k: round(geomean(&naive), 2),
        vs_aos_rayon_100k: round(geomean(&aos_100k), 3),
        vs_aos_rayon_1m: round(geomean(&aos_1m), 3),
        vs_aos_simple_rayon_100k: round(geomean(&simple_100k), 3),
        vs_aos_simple_rayon_1m: round(geomean(&simple_1m), 3),
        steps_per_s_1m: round(1000.0 / pile_1m, 2),
        ns_per_particle_1m: round(pile_1m * 1e6 / 1e6, 1),
        bandwidth_fraction: round(integrate_bps / triad_bps, 3),
        triad_gb_s: round(triad_bps / 1e9, 2),
        integrate_gb_s: round(integrate_bps / 1e9, 2),
        bytes_per_particle_step: BYTES_PER_PARTICLE_STEP,
        scaling_2_workers: round(scaling.step, 3),
        scaling_2_workers_rounds: scaling.rounds,
        compute_scaling_2_workers: round(scaling.machine, 3),
        scaling_2_workers_100k: round(scaling_100k, 3),
        triad_scaling_2_workers: round(triad_scaling, 3),
        rows,
        workers,
        quick,
    }
}

impl PhysicsReport {
    pub fn describe(&self) -> String {
        let mut s = format!(
            "physics bench ({} workers{}; a step is one substep of 1/180 s, the game's, with one contact pass)\n  AoS = the same contact model on an array of structs; simple AoS = push apart half the overlap\n  scene            particles    ours ms    AoS ms  simple AoS  naive Bevy   vs AoS  vs simple  vs naive\n",
            self.workers,
            if self.quick { ", quick" } else { "" }
        );
        for r in &self.rows {
            s.push_str(&format!(
                "  {:<15} {:>10} {:>10.2} {:>9.2} {:>11.2} {:>11} {:>8.2} {:>10.2} {:>9}\n",
                r.scene.name(),
                r.particles,
                r.ours_ms,
                r.aos_same_ms,
                r.aos_ms,
                r.naive_bevy_ms.map_or("-".into(), |m| format!("{m:.1}")),
                r.vs_aos_same,
                r.vs_aos,
                r.vs_naive_bevy.map_or("-".into(), |x| format!("×{x:.1}"))
            ));
        }
        s.push_str("  ours by phase (integrate / grid / contacts, ms):");
        for r in &self.rows {
            let [i, g, c] = r.ours_phases_ms;
            s.push_str(&format!(
                " {} {}: {i:.1} / {g:.1} / {c:.1};",
                r.scene.name(),
                r.particles
            ));
        }
        s.push('\n');
        s.push_str(&format!(
            "  1M pile: {:.1} steps/s, {:.1} ns per particle per step; 2-worker scaling ×{:.2} (rounds {:.2}–{:.2}; 100k pile ×{:.2}; the machine, compute-bound ×{:.2}; the memory bus ×{:.2})\n  STREAM triad {:.2} GB/s; integration {:.2} GB/s = {:.2} of it; ~{:.0} bytes streamed per particle per step",
            self.steps_per_s_1m,
            self.ns_per_particle_1m,
            self.scaling_2_workers,
            self.scaling_2_workers_rounds.iter().copied().fold(f64::INFINITY, f64::min),
            self.scaling_2_workers_rounds.iter().copied().fold(0.0, f64::max),
            self.scaling_2_workers_100k,
            self.compute_scaling_2_workers,
            self.triad_scaling_2_workers,
            self.triad_gb_s,
            self.integrate_gb_s,
            self.bandwidth_fraction,
            self.bytes_per_particle_step
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same-model AoS peer, whose grid is ours (bands sorted by x),
    /// finds the touching pairs ours does: one step from the same pile,
    /// the same count, in both its forms.
    #[test]
    fn the_aos_peer_finds_the_pairs_ours_does() {
        let (init, w, h, g) = scene(Scene::Pile, 20_000);
        let pool = WorkerPool::new(2, 0).expect("a worker pool");
        let mut ours = Ours::new(&init, w, h, g);
        ours.step(&pool, None);
        let mine = ours.phases.last().expect("one step").contacts;
        assert!(mine > 20_000, "a fresh pile touches: {mine} pairs");
        for mut peer in [
            AosSame::new(&init, w, h, g),
            AosSame::unordered(&init, w, h, g),
        ] {
            peer.step(None);
            let theirs = peer.q.iter().map(|q| q.n as u64).sum::<u64>();
            // Each pair is counted from both sides; the two integrations
            // may round a coordinate differently, so a grazing pair or two
            // may differ.
            let theirs = theirs / 2;
            assert!(
                mine.abs_diff(theirs) <= mine / 1000,
                "ours {mine} pairs, the peer {theirs}"
            );
        }
    }

    /// The dense pile stays a pile: after 120 steps no more than two rows
    /// of the lattice lie within a diameter of the floor. With a step of
    /// 1/60 s it sank: 14,916 did by then.
    #[test]
    fn the_dense_pile_holds_up() {
        let (init, w, h, g) = scene(Scene::Pile, 100_000);
        let row = ((w - 4.0) / (2.05 * RADIUS)) as usize;
        let pool = WorkerPool::new(2, 0).expect("a worker pool");
        let mut ours = Ours::new(&init, w, h, g);
        for _ in 0..120 {
            ours.step(&pool, None);
        }
        let low = ours
            .store
            .slices()
            .y
            .iter()
            .filter(|&&y| y < 2.0 * RADIUS)
            .count();
        assert!(
            low <= 2 * row,
            "{low} particles within a diameter of the floor, more than two rows of {row}"
        );
    }
}
