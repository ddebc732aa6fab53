//! The GPU instance record and the parallel packing of SoA columns into it.
//!
//! Instances are packed into buffers of the memory system's pool (one
//! buffer holds `buffer bytes ÷ 16` particles). The render world takes
//! clones of the buffer handles at extraction (no copy) and uploads from
//! them; next frame the packer reuses a buffer it holds alone and takes a
//! fresh one where the render world still reads the old — double buffering
//! that follows from the reference counts.

use crate::memory::{Buffer, BufferPool, PoolError, Urgency};
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

/// This frame's instances: `count` of them across pool buffers.
#[derive(Default, Clone)]
pub struct InstanceChunks {
    pub buffers: Vec<Buffer>,
    pub count: usize,
}

impl InstanceChunks {
    /// Instances per buffer.
    pub fn per_buffer(buffer_bytes: usize) -> usize {
        buffer_bytes / size_of::<ParticleInstance>()
    }

    /// The instances, buffer by buffer.
    pub fn slices(&self) -> impl Iterator<Item = &[ParticleInstance]> {
        let mut left = self.count;
        self.buffers.iter().map(move |b| {
            let per = Self::per_buffer(b.len());
            let m = left.min(per);
            left -= m;
            bytemuck::cast_slice(&b.as_slice()[..m * size_of::<ParticleInstance>()])
        })
    }
}

/// Packs particles `first..first + out.len()` into `out`.
fn pack_range(
    s: &ParticleSlices<'_>,
    palette: &Palette,
    first: usize,
    out: &mut [ParticleInstance],
) {
    for (k, inst) in out.iter_mut().enumerate() {
        let i = first + k;
        let (vx, vy) = (s.vx[i], s.vy[i]);
        *inst = ParticleInstance {
            x: s.x[i],
            y: s.y[i],
            radius: s.radius[i],
            rgba: palette.rgba(s.kind[i], vx * vx + vy * vy, s.age[i]),
        };
    }
}

/// Packs every live particle into pool buffers, in parallel chunks on the
/// workers. If the pool refuses a buffer, the particles that fit are packed
/// (and drawn) and the error is returned.
pub fn pack(
    s: &ParticleSlices<'_>,
    palette: &Palette,
    out: &mut InstanceChunks,
    memory: &BufferPool,
    pool: &WorkerPool,
) -> Result<(), PoolError> {
    let n = s.x.len();
    let per = InstanceChunks::per_buffer(memory.buffer_bytes());
    let need = n.div_ceil(per);
    out.buffers.truncate(need);
    let mut refused = None;
    for b in out.buffers.iter_mut() {
        if b.get_mut().is_none() {
            // The render world still reads it: take another.
            match memory.acquire(Urgency::Critical) {
                Ok(fresh) => *b = fresh,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
    }
    if refused.is_some() {
        out.buffers.retain_mut(|b| b.get_mut().is_some());
    }
    while refused.is_none() && out.buffers.len() < need {
        match memory.acquire(Urgency::Critical) {
            Ok(b) => out.buffers.push(b),
            Err(e) => refused = Some(e),
        }
    }
    out.count = n.min(out.buffers.len() * per);
    let count = out.count;
    for (k, b) in out.buffers.iter_mut().enumerate() {
        let first = k * per;
        let m = count.saturating_sub(first).min(per);
        let bytes = b.get_mut().expect("every kept buffer is held alone");
        let inst: &mut [ParticleInstance] =
            bytemuck::cast_slice_mut(&mut bytes[..m * size_of::<ParticleInstance>()]);
        pool.for_each_chunk_mut(inst, PACK_GRAIN, |off, part| {
            pack_range(s, palette, first + off, part)
        });
    }
    refused.map_or(Ok(()), Err)
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
        let mut chunks = InstanceChunks::default();
        let pool = crate::workers::WorkerPool::new(2, 0).unwrap();
        // 64 KiB buffers: 4096 instances each, so 10 buffers.
        let memory = crate::memory::BufferPool::new(
            "test instances",
            crate::memory::Component::Render,
            crate::memory::PoolConfig {
                buffer_bytes: 64 << 10,
                initial_buffers: 2,
                budget_bytes: 64 << 20,
                ..Default::default()
            },
        )
        .unwrap();
        pack(
            &store.slices(),
            &Palette::new(&kinds),
            &mut chunks,
            &memory,
            &pool,
        )
        .unwrap();
        assert_eq!(chunks.buffers.len(), 10);
        let out: Vec<ParticleInstance> = chunks.slices().flatten().copied().collect();
        assert_eq!(out.len(), 40_000);
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

        // A handle kept elsewhere (the render world) makes the next pack
        // take a fresh buffer instead of writing under the reader.
        let reader = chunks.buffers[0].clone();
        let before = reader.as_slice()[..16].to_vec();
        store.slices_mut().x[0] = 123.0;
        pack(
            &store.slices(),
            &Palette::new(&kinds),
            &mut chunks,
            &memory,
            &pool,
        )
        .unwrap();
        assert_eq!(reader.as_slice()[..16], before[..]);
        assert_eq!(chunks.slices().next().unwrap()[0].x, 123.0);
        assert_eq!(memory.stats().in_use, 11);
        drop(reader);
        assert_eq!(memory.stats().in_use, 10);
    }

    #[test]
    fn an_exhausted_pool_packs_what_fits_and_says_so() {
        let kinds = KindTable::default();
        let mut store = ParticleStore::with_limit(100_000);
        for i in 0..10_000 {
            store
                .spawn(NewParticle {
                    x: i as f32,
                    y: 0.0,
                    vx: 0.0,
                    vy: 0.0,
                    radius: 1.0,
                    inv_mass: 1.0,
                    kind: 0,
                })
                .unwrap();
        }
        let memory = crate::memory::BufferPool::new(
            "tiny",
            crate::memory::Component::Render,
            crate::memory::PoolConfig {
                buffer_bytes: 64 << 10,
                initial_buffers: 1,
                budget_bytes: 2 * (64 << 10),
                reserve_buffers: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let pool = crate::workers::WorkerPool::new(1, 0).unwrap();
        let mut chunks = InstanceChunks::default();
        let e = pack(
            &store.slices(),
            &Palette::new(&kinds),
            &mut chunks,
            &memory,
            &pool,
        );
        assert!(e.is_err());
        assert_eq!(chunks.count, 2 * 4096);
        assert_eq!(chunks.slices().flatten().count(), 2 * 4096);
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
