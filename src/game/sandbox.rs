//! The sandbox: the particle store, the physics world and the player's tools
//! as one plain value that Bevy holds as a resource. Everything here is
//! deterministic: the same config and the same tool commands give the same
//! particles, bit for bit, for a given physics thread count.

use super::SetupError;
use super::config::{Config, ParticlesConfig, ToolsConfig};
use super::rng::Rng;
use crate::particles::{Kind, KindTable, NewParticle, ParticleStore};
use crate::physics::{Physics, PhysicsParams, StepTimings};
use crate::workers::WorkerPool;
use bevy::prelude::Resource;
use std::sync::Arc;

/// One use of a tool, at a point of the world.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ToolCommand {
    /// The spawn brush: `count` particles of `kind` in the brush disc.
    Spawn {
        x: f32,
        y: f32,
        kind: Kind,
        count: usize,
    },
    /// Pull particles towards the point (`repel`: push them away).
    Attract { x: f32, y: f32, repel: bool },
    /// A radial blast plus a burst of sparks.
    Explode { x: f32, y: f32 },
}

/// What a frame's tools and expiry did (fed to telemetry and, later, events).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrameCounts {
    pub spawned: u64,
    pub despawned: u64,
    pub explosions: u64,
    /// Spawns refused because the store or the box was full.
    pub refused: u64,
}

#[derive(Resource)]
pub struct Sandbox {
    pub store: ParticleStore,
    pub physics: Physics,
    pub kinds: KindTable,
    pub tools: ToolsConfig,
    initial: ParticlesConfig,
    pub rng: Rng,
    seed: u64,
    /// The job system: compute workers for physics, tools and instance
    /// packing, plus the two I/O workers.
    pub pool: Arc<WorkerPool>,
    pub frame: u64,
    pub last_step: StepTimings,
    pub counts: FrameCounts,
    /// Explosions not yet handed to the chain recorder: where, and how
    /// many particles each pushed.
    pub blasts: Vec<Blast>,
}

/// One explosion, as the chain records it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blast {
    pub frame: u64,
    pub x: f32,
    pub y: f32,
    pub hit: u64,
}

/// Blockchain workers: one runs the chain sender, the other takes the
/// frame's journal appends, so a slow node never delays a frame.
const IO_WORKERS: usize = 2;

/// Explosions kept for the recorder at most (it drains them every frame).
const MAX_UNCLAIMED_BLASTS: usize = 4096;

/// Blocks of the initial scene.
const BLOCKS: usize = 5;

/// Particles per task when a tool touches every particle.
const GRAIN: usize = 16384;
/// The most of the box the initial particles may cover before the player
/// is told they cannot rest in it (a settled pile covers about 0.8).
const CROWDED: f32 = 0.8;

impl Sandbox {
    /// Builds the sandbox and spawns the initial particles.
    pub fn new(config: &Config) -> Result<Self, SetupError> {
        let threads = config.physics_threads();
        let cores = crate::workers::cores();
        if threads > cores {
            bevy::log::warn!(
                "{threads} physics threads on {cores} cores: they take turns on the cores and the step gets slower, not faster (physics.threads = 0 uses one per core)"
            );
        }
        let pool = Self::worker_pool(threads)?;
        let mut params = PhysicsParams::new(
            config.world.width,
            config.world.height,
            config.world.gravity,
            &config.kinds,
        );
        params.walls = config.world.walls;
        params.substeps = config.physics.substeps;
        params.iterations = config.physics.iterations;
        params.relaxation = config.physics.relaxation;
        params.max_move = config.physics.max_move;
        params.speed_passed = config.physics.speed_passed;
        let mut sandbox = Self {
            store: ParticleStore::with_limit(config.particles.max),
            physics: Physics::new(params),
            kinds: config.kinds,
            tools: config.tools.clone(),
            initial: config.particles.clone(),
            rng: Rng::new(config.world.seed),
            seed: config.world.seed,
            pool: Arc::new(pool),
            frame: 0,
            last_step: StepTimings::default(),
            counts: FrameCounts::default(),
            blasts: Vec::new(),
        };
        sandbox.reset();
        if let Some(warning) = sandbox.crowding_warning() {
            bevy::log::warn!("{warning}");
        }
        Ok(sandbox)
    }

    /// The particles' area ÷ the box's: discs cannot lie side by side above
    /// ~0.9 (a hexagonal packing), a pile settles near 0.8.
    pub fn crowding(&self) -> f32 {
        // Eight running sums, so the loop vectorizes (the autoplay asks
        // every frame).
        let r = self.store.slices().radius;
        let mut lanes = [0f32; 8];
        let blocks = r.chunks_exact(8);
        let tail: f32 = blocks.remainder().iter().map(|r| r * r).sum();
        for block in blocks {
            for (sum, r) in lanes.iter_mut().zip(block) {
                *sum += r * r;
            }
        }
        let area = (lanes.iter().sum::<f32>() + tail) * std::f32::consts::PI;
        area / (self.width() * self.height())
    }

    /// Whether the box holds as many particles as can rest in it without
    /// overlapping (never, without walls).
    pub fn is_full(&self) -> bool {
        self.crowding_if_full().is_some()
    }

    /// The crowding, when the box is full.
    fn crowding_if_full(&self) -> Option<f32> {
        if !self.physics.params.walls {
            return None;
        }
        let crowding = self.crowding();
        (crowding > CROWDED).then_some(crowding)
    }

    /// What to tell a player whose initial particles cannot rest in the box
    /// without overlapping (they would stay packed and compressed).
    pub fn crowding_warning(&self) -> Option<String> {
        let crowding = self.crowding_if_full()?;
        let n = self.store.len();
        let fit = (n as f32 * CROWDED / crowding) as usize;
        Some(format!(
            "{n} particles cover {:.0}% of the {}×{} box, more than can rest in it without overlapping (about {fit} can): they stay packed and compressed; lower --particles or enlarge the box (world.width, world.height)",
            crowding * 100.0,
            self.width(),
            self.height()
        ))
    }

    pub fn width(&self) -> f32 {
        self.physics.params.width
    }

    pub fn height(&self) -> f32 {
        self.physics.params.height
    }

    /// Empties the box and spawns the initial particles again.
    pub fn reset(&mut self) {
        self.store.clear();
        self.rng = Rng::new(self.seed);
        let n = self.initial.initial.min(self.store.limit());
        self.store.reserve(n);
        // Five side-by-side blocks (for `mix`: sand, water, heavy, sand,
        // water) on a jittered hexagonal lattice a little looser than the
        // largest particle of each kind, so nothing starts overlapping; the
        // blocks then slump into piles (sand), spread (water) and sink
        // (heavy). Each block gets the same area, so big kinds get fewer
        // particles; if they cannot fit, the lattice is squeezed evenly.
        let (w, h) = (self.width(), self.height());
        let initial_kind = self.initial.initial_kind;
        let kinds = self.kinds;
        let kind_of = |block: usize| initial_kind.kind_for(block, BLOCKS);
        let spacing = |k: Kind| {
            let p = kinds.get(k);
            2.1 * p.radius * (1.0 + p.size_jitter)
        };
        let weights: Vec<f32> = (0..BLOCKS)
            .map(|b| 1.0 / spacing(kind_of(b)).powi(2))
            .collect();
        let total: f32 = weights.iter().sum();
        let (x0, y0) = (0.05 * w, 0.03 * h);
        let block_w = 0.9 * w / BLOCKS as f32;
        let room = 0.92 * h - y0;
        let mut spawned = 0;
        for (b, weight) in weights.iter().enumerate() {
            let count = if b == BLOCKS - 1 {
                n - spawned
            } else {
                (n as f32 * weight / total) as usize
            };
            spawned += count;
            let kind = kind_of(b);
            let mut s = spacing(kind);
            let row_h = 0.866;
            let needed = count as f32 * s * s * row_h / block_w;
            if needed > room {
                s *= (room / needed).sqrt();
            }
            let cols = ((block_w / s) as usize).max(1);
            for i in 0..count {
                let (row, col) = (i / cols, i % cols);
                let shift = if row % 2 == 1 { 0.5 } else { 0.0 };
                let jx = self.rng.range(-0.05, 0.05) * s;
                let jy = self.rng.range(-0.05, 0.05) * s;
                let x = x0 + b as f32 * block_w + (col as f32 + 0.25 + shift) * s + jx;
                let y = y0 + (row as f32 + 0.5) * s * row_h + jy;
                let _ = self.spawn_one(x, y, 0.0, 0.0, kind);
            }
        }
    }

    fn spawn_one(&mut self, x: f32, y: f32, vx: f32, vy: f32, kind: Kind) -> bool {
        let k = self.kinds.get(kind);
        let r = k.radius * (1.0 + k.size_jitter * self.rng.range(-1.0, 1.0));
        let p = &self.physics.params;
        let (x, y) = if p.walls {
            (x.clamp(r, p.width - r), y.clamp(r, p.height - r))
        } else {
            (x, y)
        };
        let ok = self
            .store
            .spawn(NewParticle {
                x,
                y,
                vx,
                vy,
                radius: r,
                inv_mass: 1.0 / self.kinds.mass_at(kind, r),
                kind: kind as u8,
            })
            .is_ok();
        if ok {
            self.counts.spawned += 1;
        } else {
            self.counts.refused += 1;
        }
        ok
    }

    /// Applies one tool use for a frame of `dt` seconds.
    pub fn apply(&mut self, cmd: ToolCommand, dt: f32) {
        match cmd {
            ToolCommand::Spawn { x, y, kind, count } => {
                // A full box takes no more from the brush: more would only
                // pack tighter and slow the step (the status band says
                // "box full"). An explosion's sparks still fly; they burn
                // out.
                if self.is_full() {
                    self.counts.refused += count as u64;
                    return;
                }
                let radius = self.tools.brush_radius;
                for _ in 0..count {
                    let (ox, oy) = self.rng.in_disc(radius);
                    let (vx, vy) = self.rng.in_disc(20.0);
                    if !self.spawn_one(x + ox, y + oy, vx, vy, kind) {
                        break;
                    }
                }
            }
            ToolCommand::Attract { x, y, repel } => {
                let sign = if repel { -1.0 } else { 1.0 };
                let dv = sign * self.tools.attract_strength * dt;
                self.radial_impulse(x, y, self.tools.attract_radius, dv);
            }
            ToolCommand::Explode { x, y } => {
                self.counts.explosions += 1;
                let hit = self.radial_impulse(
                    x,
                    y,
                    self.tools.explosion_radius,
                    -self.tools.explosion_speed,
                );
                if self.blasts.len() < MAX_UNCLAIMED_BLASTS {
                    self.blasts.push(Blast {
                        frame: self.frame,
                        x,
                        y,
                        hit,
                    });
                }
                let speed = self.tools.explosion_speed;
                for _ in 0..self.tools.explosion_sparks {
                    let (ox, oy) = self.rng.in_disc(4.0);
                    let a = self.rng.unit() * std::f32::consts::TAU;
                    let s = speed * self.rng.range(0.2, 1.0);
                    if !self.spawn_one(x + ox, y + oy, s * a.cos(), s * a.sin(), Kind::Spark) {
                        break;
                    }
                }
            }
        }
    }

    /// Adds `dv × falloff` to the velocity of every particle within `radius`
    /// of the point, towards it (`dv > 0`) or away from it (`dv < 0`).
    /// Returns how many particles it reached.
    fn radial_impulse(&mut self, cx: f32, cy: f32, radius: f32, dv: f32) -> u64 {
        let reached = std::sync::atomic::AtomicU64::new(0);
        let s = self.store.slices_mut();
        let (x, y) = (&*s.x, &*s.y);
        let r2 = radius * radius;
        let mut chunks: Vec<_> =
            s.vx.chunks_mut(GRAIN)
                .zip(s.vy.chunks_mut(GRAIN))
                .enumerate()
                .collect();
        self.pool.for_each_mut(&mut chunks, |(c, (vx, vy))| {
            let base = *c * GRAIN;
            let mut n = 0;
            for k in 0..vx.len() {
                let dx = cx - x[base + k];
                let dy = cy - y[base + k];
                let d2 = dx * dx + dy * dy;
                if d2 < r2 && d2 > 1e-6 {
                    let d = d2.sqrt();
                    let f = dv * (1.0 - d / radius) / d;
                    vx[k] += dx * f;
                    vy[k] += dy * f;
                    n += 1;
                }
            }
            reached.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        });
        reached.into_inner()
    }

    /// Removes particles that outlived their kind's lifetime.
    pub fn expire(&mut self) -> usize {
        let lifetime = self.kinds.rows().map(|k| k.lifetime);
        if lifetime.iter().all(|&l| l <= 0.0) {
            return 0;
        }
        let n = self.store.despawn_where(|s, i| {
            let l = lifetime[s.kind[i] as usize & 3];
            l > 0.0 && s.age[i] >= l
        });
        self.counts.despawned += n as u64;
        n
    }

    /// A worker pool of `compute` compute workers and the I/O workers.
    pub fn worker_pool(compute: usize) -> Result<WorkerPool, SetupError> {
        WorkerPool::new(compute, IO_WORKERS).map_err(|source| SetupError::Workers {
            workers: compute,
            source,
        })
    }

    /// Runs the physics on `pool` from now on; the old pool finishes its
    /// work and stops once the chain recorder, which follows on its next
    /// frame (`Recorder::follow_pool`), has left it too.
    pub fn set_workers(&mut self, pool: WorkerPool) {
        self.pool = Arc::new(pool);
    }

    /// Advances physics by `dt`.
    pub fn step(&mut self, dt: f32) {
        let (physics, store) = (&mut self.physics, &mut self.store);
        self.last_step = physics.step(store, dt, &self.pool);
        self.frame += 1;
    }

    /// Particles alive per kind.
    pub fn count_by_kind(&self) -> [usize; Kind::COUNT] {
        // One pass per kind: each is a compare-and-count the compiler
        // vectorizes, where one pass bumping four counters is a chain of
        // dependent adds (the overlay asks every pass: 0.36 → 0.05 ms at
        // 200,000 particles with the byte-lane count).
        let kinds = self.store.slices().kind;
        std::array::from_fn(|k| count_where(kinds, |x| x & 3 == k as u8))
    }
}

/// How many of `bytes` pass `test`. Counted in byte lanes, 255 bytes at a
/// time (a byte counter cannot overflow in 255), so the compiler adds 16
/// or 32 flags per instruction; a `usize` count per byte ran ten times
/// slower.
#[inline(always)]
fn count_where(bytes: &[u8], test: impl Fn(u8) -> bool) -> usize {
    bytes
        .chunks(255)
        .map(|c| c.iter().fold(0u8, |n, &x| n + u8::from(test(x))) as usize)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Config;

    #[test]
    fn particles_are_counted_by_kind() {
        let mut config = Config::default();
        config.particles.initial = 2000;
        let sandbox = Sandbox::new(&config).unwrap();
        let kinds = sandbox.store.slices().kind;
        let by_kind = sandbox.count_by_kind();
        for k in Kind::ALL {
            let expected = kinds.iter().filter(|&&x| x == k as u8).count();
            assert_eq!(by_kind[k as usize], expected, "{k}");
        }
        assert_eq!(by_kind.iter().sum::<usize>(), sandbox.store.len());
        // The default scene mixes three kinds.
        assert!(
            by_kind.iter().filter(|&&n| n > 0).count() >= 3,
            "{by_kind:?}"
        );
    }

    #[test]
    fn the_physics_section_of_the_config_reaches_the_step() {
        let mut config = Config::default();
        config.particles.initial = 100;
        config.physics.substeps = 5;
        config.physics.relaxation = 1.2;
        config.physics.max_move = 0.5;
        config.physics.speed_passed = 0.75;
        let p = Sandbox::new(&config).unwrap().physics.params;
        assert_eq!(
            (p.substeps, p.relaxation, p.max_move, p.speed_passed),
            (5, 1.2, 0.5, 0.75)
        );
    }

    #[test]
    fn a_box_too_small_for_its_particles_is_named() {
        // The headless target's scene fits its box.
        let mut config = Config::default();
        config.particles.initial = 200_000;
        let fits = Sandbox::new(&config).unwrap();
        assert!(fits.crowding() < CROWDED, "{}", fits.crowding());
        assert_eq!(fits.crowding_warning(), None);
        // Ten times as many in a tenth of the area: far too many.
        config.particles.initial = 20_000;
        config.world.width = 128.0;
        config.world.height = 72.0;
        let crowded = Sandbox::new(&config).unwrap();
        let c = crowded.crowding();
        assert!(c > 2.0, "{c}");
        let w = crowded.crowding_warning().unwrap();
        assert!(w.starts_with("20000 particles cover"), "{w}");
        assert!(w.contains("128×72 box"), "{w}");
        let fit: usize = w
            .split("(about ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((fit as f32 - 20_000.0 * CROWDED / c).abs() <= 1.0, "{w}");
        // Without walls they spread out: nothing to say.
        config.world.walls = false;
        assert_eq!(Sandbox::new(&config).unwrap().crowding_warning(), None);
    }

    #[test]
    fn the_brush_stops_at_a_full_box_and_sparks_still_fly() {
        let mut config = Config::default();
        config.particles.initial = 0;
        config.world.width = 100.0;
        config.world.height = 60.0;
        let mut sandbox = Sandbox::new(&config).unwrap();
        let brush = ToolCommand::Spawn {
            x: 50.0,
            y: 30.0,
            kind: Kind::Sand,
            count: 50,
        };
        // Filled stroke by stroke until the box is full: every stroke lands
        // whole until then.
        let mut strokes = 0;
        while !sandbox.is_full() {
            let before = sandbox.store.len();
            sandbox.apply(brush, 1.0 / 60.0);
            assert_eq!(sandbox.store.len(), before + 50);
            strokes += 1;
            assert!(strokes < 1000, "the box never filled");
        }
        let (n, refused) = (sandbox.store.len(), sandbox.counts.refused);
        assert_eq!(refused, 0);
        assert!(sandbox.crowding() < CROWDED + 0.1, "{}", sandbox.crowding());
        // Full: the brush adds nothing and says so in the counts.
        sandbox.apply(brush, 1.0 / 60.0);
        assert_eq!(sandbox.store.len(), n);
        assert_eq!(sandbox.counts.refused, refused + 50);
        // An explosion's sparks still come (they burn out).
        sandbox.apply(ToolCommand::Explode { x: 50.0, y: 30.0 }, 1.0 / 60.0);
        assert_eq!(sandbox.store.len(), n + config.tools.explosion_sparks);
    }
}
