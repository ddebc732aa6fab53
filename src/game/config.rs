//! The game's configuration: one TOML file holding every tunable, overridden
//! by command-line flags. `particle-forge --print-config` writes the defaults.

use crate::particles::{Kind, KindTable};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Every tunable of the game.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub window: WindowConfig,
    pub world: WorldConfig,
    pub particles: ParticlesConfig,
    pub physics: PhysicsConfig,
    pub tools: ToolsConfig,
    pub memory: MemoryConfig,
    pub chain: crate::chain::ChainConfig,
    pub kinds: KindTable,
}

/// The memory system: the buffer pool, leak watching, defragmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Buffers the pool maps at start (and keeps when idle).
    pub pool_buffers: usize,
    /// Size of one pool buffer, KiB.
    pub pool_buffer_kib: usize,
    /// Most the pool may map, MiB.
    pub pool_budget_mib: usize,
    /// Buffers kept for frame-critical requests.
    pub pool_reserve_buffers: usize,
    /// Seconds of low demand after which spare buffers go back to the OS.
    pub pool_decay_s: f32,
    /// Seconds per leak-watch epoch.
    pub epoch_s: f32,
    /// A call site whose live bytes grow this many epochs in a row is reported.
    pub leak_epochs: usize,
    /// The particle store is compacted when this fraction of its slots is dead.
    pub defrag_threshold: f32,
    /// How the particle columns are placed in their region: first-fit,
    /// best-fit or buddy.
    pub column_strategy: crate::memory::column_space::Strategy,
    /// Size of the columns' region, MiB (address space; pages are committed
    /// as they are touched; the heap takes over if it fills).
    pub column_space_mib: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            pool_buffers: 20,
            pool_buffer_kib: 1024,
            pool_budget_mib: 256,
            pool_reserve_buffers: 2,
            pool_decay_s: 5.0,
            epoch_s: 1.0,
            leak_epochs: 10,
            defrag_threshold: 0.5,
            column_strategy: Default::default(),
            column_space_mib: 1024,
        }
    }
}

impl MemoryConfig {
    /// The buffer pool's settings.
    pub fn pool(&self) -> crate::memory::PoolConfig {
        crate::memory::PoolConfig {
            buffer_bytes: self.pool_buffer_kib << 10,
            initial_buffers: self.pool_buffers,
            budget_bytes: self.pool_budget_mib << 20,
            reserve_buffers: self.pool_reserve_buffers,
            decay: std::time::Duration::from_secs_f32(self.pool_decay_s),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Window size in pixels.
    pub width: u32,
    pub height: u32,
    /// Wait for the display's refresh (no tearing, at most the refresh rate).
    pub vsync: bool,
    /// Start with the debug overlay (F3) open.
    pub overlay: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    /// The box is `[0, width] × [0, height]` world units; the camera fits it to the window.
    pub width: f32,
    pub height: f32,
    /// Downward acceleration, world units per second².
    pub gravity: f32,
    /// Keep particles inside the box.
    pub walls: bool,
    /// Seconds simulated per frame (a fixed step keeps runs reproducible).
    pub dt: f32,
    /// Seed of every random choice (spawn jitter, autoplay).
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParticlesConfig {
    /// Particles spawned at start and on reset.
    pub initial: usize,
    /// The store never holds more than this many.
    pub max: usize,
    /// Kind of the initial particles; `mix` is side-by-side blocks of sand, water and heavy.
    pub initial_kind: InitialKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialKind {
    Mix,
    Sand,
    Water,
    Spark,
    Heavy,
}

impl InitialKind {
    /// The kind of the initial particle in lattice column `col` of `cols`:
    /// `mix` makes side-by-side blocks of sand, water and heavy particles.
    pub fn kind_for(self, col: usize, cols: usize) -> Kind {
        match self {
            InitialKind::Mix => {
                const BLOCKS: [Kind; 5] = [
                    Kind::Sand,
                    Kind::Water,
                    Kind::Heavy,
                    Kind::Sand,
                    Kind::Water,
                ];
                BLOCKS[(col * BLOCKS.len() / cols.max(1)).min(BLOCKS.len() - 1)]
            }
            InitialKind::Sand => Kind::Sand,
            InitialKind::Water => Kind::Water,
            InitialKind::Spark => Kind::Spark,
            InitialKind::Heavy => Kind::Heavy,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhysicsConfig {
    pub substeps: u32,
    /// Contact passes per substep.
    pub iterations: u32,
    /// Scale on each contact pass's correction, (0, 2]; above 1 over-relaxes.
    pub relaxation: f32,
    /// Largest move per substep as a fraction of the radius (prevents tunnelling), (0, 1].
    pub max_move: f32,
    /// How fast a contact may make a particle, as a fraction of its fastest
    /// neighbour's speed, (0, 1]; below 1 a deep pile's churn dies out.
    pub speed_passed: f32,
    /// Physics threads; 0 means one per core.
    pub threads: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Radius of the spawn brush, world units.
    pub brush_radius: f32,
    /// Particles the brush spawns per frame while held.
    pub brush_per_frame: usize,
    pub attract_radius: f32,
    /// Acceleration towards (or, repelling, away from) the cursor, units/s².
    pub attract_strength: f32,
    pub explosion_radius: f32,
    /// Speed given to particles at the centre of an explosion, units/s.
    pub explosion_speed: f32,
    /// Sparks thrown out by each explosion.
    pub explosion_sparks: usize,
}

/// Most particles one use of a tool may add (`brush_per_frame`,
/// `explosion_sparks`).
pub const MAX_PER_USE: usize = 1_000_000;

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            vsync: true,
            overlay: false,
        }
    }
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            width: 1280.0,
            height: 720.0,
            gravity: 500.0,
            walls: true,
            dt: 1.0 / 60.0,
            seed: 1,
        }
    }
}

impl Default for ParticlesConfig {
    fn default() -> Self {
        Self {
            initial: 100_000,
            max: 2_000_000,
            initial_kind: InitialKind::Mix,
        }
    }
}

impl Default for PhysicsConfig {
    fn default() -> Self {
        Self {
            substeps: 3,
            iterations: 1,
            relaxation: 1.5,
            max_move: 0.9,
            speed_passed: 0.9,
            threads: 0,
        }
    }
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            brush_radius: 24.0,
            brush_per_frame: 400,
            attract_radius: 160.0,
            attract_strength: 2500.0,
            explosion_radius: 120.0,
            explosion_speed: 900.0,
            explosion_sparks: 600,
        }
    }
}

/// Overlays `over` onto `base`, key by key.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn one_line(s: &str) -> String {
    s.trim().replace('\n', " ")
}

fn located(text: &str, e: &toml::de::Error) -> ConfigError {
    let msg = one_line(e.message());
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].lines().count().max(1);
            ConfigError(format!("line {line}: {msg}"))
        }
        None => ConfigError(msg),
    }
}

/// A config problem, worded for the player.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<crate::particles::KindError> for ConfigError {
    fn from(e: crate::particles::KindError) -> Self {
        Self(e.to_string())
    }
}

impl From<crate::chain::ChainConfigError> for ConfigError {
    fn from(e: crate::chain::ChainConfigError) -> Self {
        Self(e.to_string())
    }
}

impl Config {
    /// Reads a config file; the error says which file and line and what to do.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ConfigError(format!(
                    "config file {} not found: check the path, or leave out --config to use the defaults",
                    path.display()
                ))
            } else if path.is_dir() {
                ConfigError(format!(
                    "--config {} is a folder; give the path of a TOML file",
                    path.display()
                ))
            } else {
                ConfigError(format!(
                    "cannot read config file {}: {e}; check its permissions",
                    path.display()
                ))
            }
        })?;
        Self::parse(&text).map_err(|e| {
            ConfigError(format!(
                "config file {} is not valid: {}; fix it, or see `particle-forge --print-config` for every key",
                path.display(),
                e.0
            ))
        })
    }

    /// Parses TOML text (missing keys, at any depth, take their defaults) and
    /// validates it.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let user: toml::Table = toml::from_str(text).map_err(|e| located(text, &e))?;
        let mut root =
            toml::Value::try_from(Config::default()).map_err(|e| ConfigError(e.to_string()))?;
        merge(&mut root, toml::Value::Table(user));
        let config: Config = root.try_into().map_err(|e: toml::de::Error| {
            // Parsing the text directly finds the same mistake with its line.
            match toml::from_str::<Config>(text) {
                Err(direct)
                    if direct.span().is_some() && !direct.message().contains("missing field") =>
                {
                    located(text, &direct)
                }
                _ => ConfigError(one_line(e.message())),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Sets one key from a `section.key=value` override (value in TOML syntax).
    pub fn set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let bad = || {
            ConfigError(format!(
                "--set {assignment:?} is not of the form section.key=value (for example physics.substeps=3)"
            ))
        };
        let (path, value) = assignment.split_once('=').ok_or_else(bad)?;
        let keys: Vec<&str> = path.trim().split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(bad());
        }
        let value_text = value.trim();
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value_text}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            // Bare words are strings: `particles.initial_kind=sand`.
            .unwrap_or_else(|| toml::Value::String(value_text.to_string()));
        let mut root = toml::Value::try_from(&*self).map_err(|e| ConfigError(e.to_string()))?;
        let mut node = &mut root;
        for (depth, key) in keys.iter().enumerate() {
            let table = node.as_table_mut().ok_or_else(bad)?;
            let Some(next) = table.get_mut(*key) else {
                return Err(ConfigError(format!(
                    "--set: there is no config key {}; see `particle-forge --print-config` for every key",
                    keys[..=depth].join(".")
                )));
            };
            node = next;
        }
        *node = parsed;
        let updated: Config = root.try_into().map_err(|e: toml::de::Error| {
            ConfigError(format!("--set {assignment}: {}", one_line(e.message())))
        })?;
        updated.validate()?;
        *self = updated;
        Ok(())
    }

    /// Checks ranges; the message names the key and the allowed values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        let w = &self.world;
        if !(w.width >= 16.0 && w.height >= 16.0 && w.width <= 100_000.0 && w.height <= 100_000.0) {
            return err(format!(
                "world.width and world.height must be between 16 and 100000, got {} × {}",
                w.width, w.height
            ));
        }
        if !w.gravity.is_finite() {
            return err("world.gravity must be a number".into());
        }
        if !(w.dt > 0.0 && w.dt <= 0.1) {
            return err(format!(
                "world.dt must be above 0 and at most 0.1 seconds, got {}",
                w.dt
            ));
        }
        if self.window.width < 64 || self.window.height < 64 {
            return err("window.width and window.height must be at least 64 pixels".into());
        }
        let p = &self.particles;
        if p.max == 0 || p.max > 50_000_000 {
            return err(format!(
                "particles.max must be between 1 and 50000000, got {}",
                p.max
            ));
        }
        if p.initial > p.max {
            return err(format!(
                "particles.initial ({}) is above particles.max ({}); lower it or raise particles.max",
                p.initial, p.max
            ));
        }
        self.chain.validate()?;
        if !(1..=65_536).contains(&self.memory.column_space_mib) {
            return err(format!(
                "memory.column_space_mib must be between 1 and 65536, got {}",
                self.memory.column_space_mib
            ));
        }
        let ph = &self.physics;
        if !(1..=64).contains(&ph.substeps) {
            return err(format!(
                "physics.substeps must be between 1 and 64, got {}",
                ph.substeps
            ));
        }
        if !(1..=64).contains(&ph.iterations) {
            return err(format!(
                "physics.iterations must be between 1 and 64, got {}",
                ph.iterations
            ));
        }
        if !(ph.relaxation > 0.0 && ph.relaxation <= 2.0) {
            return err(format!(
                "physics.relaxation must be in (0, 2], got {}",
                ph.relaxation
            ));
        }
        if !(ph.max_move > 0.0 && ph.max_move <= 1.0) {
            return err(format!(
                "physics.max_move must be in (0, 1], got {}",
                ph.max_move
            ));
        }
        if !(ph.speed_passed > 0.0 && ph.speed_passed <= 1.0) {
            return err(format!(
                "physics.speed_passed must be in (0, 1], got {}",
                ph.speed_passed
            ));
        }
        if ph.threads > 1024 {
            return err(format!(
                "physics.threads must be 0 (all cores) to 1024, got {}",
                ph.threads
            ));
        }
        let t = &self.tools;
        for (name, v) in [
            ("brush_radius", t.brush_radius),
            ("attract_radius", t.attract_radius),
            ("explosion_radius", t.explosion_radius),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return err(format!("tools.{name} must be above 0, got {v}"));
            }
        }
        for (name, v) in [
            ("attract_strength", t.attract_strength),
            ("explosion_speed", t.explosion_speed),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(format!("tools.{name} must be 0 or more, got {v}"));
            }
        }
        // A guard against a slip of the keyboard: one use of a tool adding
        // millions of particles stalls the game for seconds (the store's
        // limit caps what is really added anyway).
        for (name, v) in [
            ("brush_per_frame", t.brush_per_frame),
            ("explosion_sparks", t.explosion_sparks),
        ] {
            if v > MAX_PER_USE {
                return err(format!(
                    "tools.{name} must be at most {MAX_PER_USE}, got {v}"
                ));
            }
        }
        let m = &self.memory;
        if !(4..=1 << 20).contains(&m.pool_buffer_kib) {
            return err(format!(
                "memory.pool_buffer_kib must be between 4 and 1048576, got {}",
                m.pool_buffer_kib
            ));
        }
        if m.pool_buffers > 4096 {
            return err(format!(
                "memory.pool_buffers must be at most 4096, got {}",
                m.pool_buffers
            ));
        }
        if (m.pool_budget_mib << 20) < (m.pool_buffers.max(1) * m.pool_buffer_kib) << 10 {
            return err(format!(
                "memory.pool_budget_mib ({} MiB) cannot hold memory.pool_buffers ({}) of {} KiB; raise the budget or lower the count",
                m.pool_budget_mib, m.pool_buffers, m.pool_buffer_kib
            ));
        }
        if !(m.pool_decay_s.is_finite()
            && m.pool_decay_s > 0.0
            && m.epoch_s.is_finite()
            && m.epoch_s > 0.0)
        {
            return err("memory.pool_decay_s and memory.epoch_s must be above 0".into());
        }
        if !(2..=1000).contains(&m.leak_epochs) {
            return err(format!(
                "memory.leak_epochs must be between 2 and 1000, got {}",
                m.leak_epochs
            ));
        }
        if !(m.defrag_threshold > 0.0 && m.defrag_threshold <= 1.0) {
            return err(format!(
                "memory.defrag_threshold must be in (0, 1], got {}",
                m.defrag_threshold
            ));
        }
        self.kinds.validate()?;
        if 2.0 * self.kinds.max_radius() > w.width.min(w.height) / 4.0 {
            return err(
                "the largest kinds.*.radius is too big for the world; make it smaller".into(),
            );
        }
        Ok(())
    }

    /// Physics threads to use (resolving 0 to the core count).
    pub fn physics_threads(&self) -> usize {
        match self.physics.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let c = Config::default();
        let back = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let c = Config::parse("[physics]\nsubsteps = 3\n").unwrap();
        assert_eq!(c.physics.substeps, 3);
        assert_eq!(c.particles.initial, 100_000);
        let c = Config::parse("[kinds.sand]\nradius = 1.5\n").unwrap();
        assert_eq!(c.kinds.sand.radius, 1.5);
        assert_eq!(c.kinds.sand.friction, KindTable::default().sand.friction);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let e = Config::parse("[physics]\nsubsteps = \"x\"\n").unwrap_err();
        assert!(e.0.contains("line 2"), "{}", e.0);
        let e = Config::parse("[physics]\nsubstep = 3\n").unwrap_err();
        assert!(e.0.contains("substep"), "{}", e.0);
        let e = Config::parse("[physics]\nsubsteps = 0\n").unwrap_err();
        assert!(e.0.contains("physics.substeps"), "{}", e.0);
    }

    #[test]
    fn a_config_path_that_is_a_folder_says_so() {
        let e = Config::load(&std::env::temp_dir()).unwrap_err();
        assert!(
            e.0.contains("is a folder") && e.0.contains("TOML file"),
            "{}",
            e.0
        );
    }

    #[test]
    fn kind_values_out_of_range_name_the_key_and_the_range() {
        for (bad, key, range) in [
            (
                "radius = 0.0",
                "kinds.water.radius",
                "above 0 and at most 64",
            ),
            (
                "radius = 65.0",
                "kinds.water.radius",
                "above 0 and at most 64",
            ),
            ("friction = 1.5", "kinds.water.friction", "between 0 and 1"),
            (
                "lifetime = -1.0",
                "kinds.water.lifetime",
                "0 (forever) or more",
            ),
        ] {
            let e = Config::parse(&format!("[kinds.water]\n{bad}\n")).unwrap_err();
            assert!(e.0.contains(key) && e.0.contains(range), "{bad}: {}", e.0);
        }
        assert!(Config::parse("[kinds.water]\nradius = 64.0\n").is_ok());
    }

    #[test]
    fn a_tool_use_adds_at_most_a_million_particles() {
        let e = Config::parse("[tools]\nexplosion_sparks = 100000000\n").unwrap_err();
        assert!(
            e.0.contains("tools.explosion_sparks must be at most 1000000, got 100000000"),
            "{}",
            e.0
        );
        let e = Config::parse("[tools]\nbrush_per_frame = 1000001\n").unwrap_err();
        assert!(e.0.contains("tools.brush_per_frame"), "{}", e.0);
        assert!(Config::parse("[tools]\nbrush_per_frame = 1000000\n").is_ok());
    }

    #[test]
    fn set_overrides_one_key() {
        let mut c = Config::default();
        c.set("physics.substeps=4").unwrap();
        c.set("particles.initial_kind=water").unwrap();
        c.set("kinds.sand.color=[1.0, 0.0, 0.0]").unwrap();
        assert_eq!(c.physics.substeps, 4);
        assert_eq!(c.particles.initial_kind, InitialKind::Water);
        assert_eq!(c.kinds.sand.color, [1.0, 0.0, 0.0]);
        assert!(
            c.set("physics.nope=1")
                .unwrap_err()
                .0
                .contains("physics.nope")
        );
        assert!(c.set("physics.substeps=0").is_err());
        assert!(c.set("garbage").is_err());
        // The share of a neighbour's speed a contact may pass on.
        c.set("physics.speed_passed=0.8").unwrap();
        assert_eq!(c.physics.speed_passed, 0.8);
        for bad in ["0", "1.5", "-0.1"] {
            let e = c.set(&format!("physics.speed_passed={bad}")).unwrap_err();
            assert!(
                e.0.contains("physics.speed_passed must be in (0, 1]"),
                "{}",
                e.0
            );
        }
        assert_eq!(c.physics.speed_passed, 0.8);
        assert_eq!(
            c.physics.substeps, 4,
            "a failed --set leaves the config alone"
        );
    }
}
