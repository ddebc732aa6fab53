//! Particle kinds: what a kind is made of, as plain numbers the physics and the
//! renderer read from a small table (one row per kind).

use serde::{Deserialize, Serialize};

/// The kinds a player can pick with keys 1–4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Kind {
    Sand = 0,
    Water = 1,
    Spark = 2,
    Heavy = 3,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Sand, Kind::Water, Kind::Spark, Kind::Heavy];
    pub const COUNT: usize = 4;

    pub fn name(self) -> &'static str {
        match self {
            Kind::Sand => "sand",
            Kind::Water => "water",
            Kind::Spark => "spark",
            Kind::Heavy => "heavy",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one kind of particle is made of. Part of the config file.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindProperties {
    /// Collision radius in world units (pixels at the default zoom).
    pub radius: f32,
    /// Each particle's radius is `radius × (1 ± size_jitter)`, at random;
    /// mixed sizes keep piles from freezing into a crystal (water flows).
    pub size_jitter: f32,
    /// Mass per unit area; mass = density × π r².
    pub density: f32,
    /// Coulomb-like friction between touching particles, 0 (slippery) to 1.
    pub friction: f32,
    /// Fraction of velocity kept each second in free flight (air drag), 0 to 1.
    pub drag: f32,
    /// Scale on gravity (sparks float a little).
    pub gravity_scale: f32,
    /// Seconds a particle lives; 0 means forever.
    pub lifetime: f32,
    /// Base colour, sRGB 0–1.
    pub color: [f32; 3],
}

/// Properties of every kind, indexed by `Kind as usize`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindTable {
    pub sand: KindProperties,
    pub water: KindProperties,
    pub spark: KindProperties,
    pub heavy: KindProperties,
}

impl Default for KindTable {
    fn default() -> Self {
        Self {
            sand: KindProperties {
                radius: 0.9,
                size_jitter: 0.15,
                density: 2.0,
                friction: 0.5,
                drag: 0.98,
                gravity_scale: 1.0,
                lifetime: 0.0,
                color: [0.90, 0.74, 0.42],
            },
            water: KindProperties {
                radius: 1.0,
                size_jitter: 0.25,
                density: 1.0,
                friction: 0.0,
                drag: 0.995,
                gravity_scale: 1.0,
                lifetime: 0.0,
                color: [0.22, 0.52, 1.0],
            },
            spark: KindProperties {
                radius: 0.7,
                size_jitter: 0.2,
                density: 0.3,
                friction: 0.1,
                drag: 0.6,
                gravity_scale: 0.25,
                lifetime: 1.2,
                color: [1.0, 0.86, 0.35],
            },
            heavy: KindProperties {
                radius: 1.6,
                size_jitter: 0.1,
                density: 6.0,
                friction: 0.35,
                drag: 0.99,
                gravity_scale: 1.0,
                lifetime: 0.0,
                color: [0.62, 0.64, 0.74],
            },
        }
    }
}

/// A kind's value out of its range: `kinds.<kind>.<field> must be <rule>,
/// got <value>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kinds.{kind}.{field} must be {rule}{}", got.map(|v| format!(", got {v}")).unwrap_or_default())]
pub struct KindError {
    pub kind: &'static str,
    pub field: &'static str,
    pub rule: &'static str,
    pub got: Option<f32>,
}

impl KindTable {
    pub fn get(&self, kind: Kind) -> &KindProperties {
        match kind {
            Kind::Sand => &self.sand,
            Kind::Water => &self.water,
            Kind::Spark => &self.spark,
            Kind::Heavy => &self.heavy,
        }
    }

    pub fn rows(&self) -> [&KindProperties; Kind::COUNT] {
        [&self.sand, &self.water, &self.spark, &self.heavy]
    }

    /// Every kind's properties, in the order of `rows`, to change them
    /// all at once.
    pub fn rows_mut(&mut self) -> [&mut KindProperties; Kind::COUNT] {
        [
            &mut self.sand,
            &mut self.water,
            &mut self.spark,
            &mut self.heavy,
        ]
    }

    /// The largest radius any particle can have (jitter included).
    pub fn max_radius(&self) -> f32 {
        self.rows()
            .iter()
            .map(|k| k.radius * (1.0 + k.size_jitter))
            .fold(0.0, f32::max)
    }

    /// Whether every particle has the same radius (one size for all kinds,
    /// no jitter).
    pub fn one_size(&self) -> bool {
        let first = self.sand.radius;
        self.rows()
            .iter()
            .all(|k| k.radius == first && k.size_jitter == 0.0)
    }

    /// The radius the collision grid's small bands are sized for (a band is
    /// twice it tall). Normally the largest radius; but when one kind is
    /// much bigger than all the others (more than 1.25× the next, as heavy
    /// grains are by default), sizing the bands for it would make every
    /// small grain search a window sized for the big ones, so the bands
    /// follow the next kind and the bigger particles get bands of their own
    /// (`physics::grid`).
    pub fn band_radius(&self) -> f32 {
        let max = self.max_radius();
        let next = self
            .rows()
            .iter()
            .map(|k| k.radius * (1.0 + k.size_jitter))
            .filter(|&r| r < max)
            .fold(0.0, f32::max);
        if max > 1.25 * next && next > 0.0 {
            next
        } else {
            max
        }
    }

    /// Mass of a particle of `kind` with radius `r`.
    pub fn mass_at(&self, kind: Kind, r: f32) -> f32 {
        self.get(kind).density * std::f32::consts::PI * r * r
    }

    /// Mass of a particle of `kind` at its nominal radius.
    pub fn mass(&self, kind: Kind) -> f32 {
        self.mass_at(kind, self.get(kind).radius)
    }

    /// Checks every value; the error names the field and what it must be.
    pub fn validate(&self) -> Result<(), KindError> {
        for kind in Kind::ALL {
            let k = self.get(kind);
            let bad = |field, rule, got| KindError {
                kind: kind.name(),
                field,
                rule,
                got,
            };
            if !(k.radius.is_finite() && k.radius > 0.0 && k.radius <= 64.0) {
                return Err(bad("radius", "above 0 and at most 64", Some(k.radius)));
            }
            if !(k.density.is_finite() && k.density > 0.0) {
                return Err(bad("density", "above 0", Some(k.density)));
            }
            for (field, v) in [
                ("friction", k.friction),
                ("drag", k.drag),
                ("size_jitter", k.size_jitter),
            ] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(bad(field, "between 0 and 1", Some(v)));
                }
            }
            if !(k.lifetime.is_finite() && k.lifetime >= 0.0) {
                return Err(bad(
                    "lifetime",
                    "0 (forever) or more seconds",
                    Some(k.lifetime),
                ));
            }
            if !k.gravity_scale.is_finite() {
                return Err(bad("gravity_scale", "a number", None));
            }
            if k.color.iter().any(|c| !(0.0..=1.0).contains(c)) {
                return Err(bad("color", "three numbers between 0 and 1", None));
            }
        }
        Ok(())
    }
}
