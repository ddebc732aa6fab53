//! The GPU instance record and the parallel packing of SoA columns into it.

use crate::particles::{Kind, KindTable, ParticleSlices};
use crate::workers::WorkerPool;
use bytemuck::{Pod, Zeroable};

/// One particle as the vertex shader reads it (16 bytes, step mode Instance).
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct ParticleInstance {
    pub x: f32,
    pub y: f32,
    pub radius: f32,
    /// sRGB colour and alpha, one byte each, red in the lowest byte.
    pub rgba: u32,
}

/// Particles per packing task.
pub const PACK_GRAIN: usize = 16384;

/// Per-kind colours and lifetimes the packer needs, computed once.
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    color: [[f32; 3]; Kind::COUNT],
    lifetime: [f32; Kind::COUNT],
}

impl Palette {
    pub fn new(kinds: &KindTable) -> Self {
        let rows = kinds.rows();
        Self {
            color: rows.map(|k| k.color),
            lifetime: rows.map(|k| k.lifetime),
        }
    }

    /// The colour of one particle: its kind's colour, lightened with speed
    /// (motion shows), and for short-lived kinds fading out with age.
    #[inline]
    pub fn rgba(&self, kind: u8, speed2: f32, age: f32) -> u32 {
        let k = kind as usize & 3;
        let c = self.color[k];
        let glow = (speed2 * (1.0 / (400.0 * 400.0))).min(1.0) * 0.35;
        let mut alpha = 1.0;
        let life = self.lifetime[k];
        if life > 0.0 {
            alpha = (1.0 - age / life).clamp(0.0, 1.0).sqrt();
        }
        let byte = |v: f32| ((v + (1.0 - v) * glow).clamp(0.0, 1.0) * 255.0 + 0.5) as u32;
        byte(c[0]) | byte(c[1]) << 8 | byte(c[2]) << 16 | ((alpha * 255.0 + 0.5) as u32) << 24
    }
}

/// Packs every live particle into `out` (resized to fit), in parallel chunks
/// on the pool's workers.
pub fn pack(
    s: &ParticleSlices<'_>,
    palette: &Palette,
    out: &mut Vec<ParticleInstance>,
    pool: &WorkerPool,
) {
    let n = s.x.len();
    out.resize(n, ParticleInstance::default());
    pool.for_each_chunk_mut(out, PACK_GRAIN, |base, chunk| {
        for (k, inst) in chunk.iter_mut().enumerate() {
            let i = base + k;
            let (vx, vy) = (s.vx[i], s.vy[i]);
            *inst = ParticleInstance {
                x: s.x[i],
                y: s.y[i],
                radius: s.radius[i],
                rgba: palette.rgba(s.kind[i], vx * vx + vy * vy, s.age[i]),
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::particles::{NewParticle, ParticleStore};

    #[test]
    fn packs_positions_and_kind_colours() {
        let kinds = KindTable::default();
        let mut store = ParticleStore::with_limit(100_000);
        for i in 0..40_000 {
            let kind = Kind::ALL[i % 4];
            store
                .spawn(NewParticle {
                    x: i as f32,
                    y: 2.0 * i as f32,
                    vx: 0.0,
                    vy: 0.0,
                    radius: kinds.get(kind).radius,
                    inv_mass: 1.0,
                    kind: kind as u8,
                })
                .unwrap();
        }
        let mut out = Vec::new();
        let pool = crate::workers::WorkerPool::new(2, 0).unwrap();
        pack(&store.slices(), &Palette::new(&kinds), &mut out, &pool);
        assert_eq!(out.len(), 40_000);
        assert_eq!(bytemuck::cast_slice::<_, u8>(&out).len(), 40_000 * 16);
        let sand = out[0];
        assert_eq!((sand.x, sand.y), (0.0, 0.0));
        let water = out[39_997];
        assert_eq!((water.x, water.y), (39_997.0, 79_994.0));
        assert_eq!(water.radius, kinds.water.radius);
        // Water is blue, sand is not; a fresh spark is opaque.
        let ch = |c: u32, s: u32| (c >> s) & 0xff;
        assert!(ch(water.rgba, 16) > ch(water.rgba, 0));
        assert!(ch(sand.rgba, 0) > ch(sand.rgba, 16));
        assert_eq!(ch(out[2].rgba, 24), 255);
    }

    #[test]
    fn sparks_fade_with_age() {
        let p = Palette::new(&KindTable::default());
        let young = p.rgba(Kind::Spark as u8, 0.0, 0.1) >> 24;
        let old = p.rgba(Kind::Spark as u8, 0.0, 1.1) >> 24;
        assert!(young > old, "{young} {old}");
        assert_eq!(p.rgba(Kind::Sand as u8, 0.0, 100.0) >> 24, 255);
    }
}
