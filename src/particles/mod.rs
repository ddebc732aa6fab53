//! Particles as plain data: a structure-of-arrays store (one dense, 64-byte
//! aligned column per field) with generational handles. Particles are never
//! Bevy entities; the game holds one `ParticleStore` as a resource.

pub mod column;
pub mod kind;
pub mod store;

pub use column::Column;
pub use kind::{Kind, KindError, KindProperties, KindTable};
pub use store::{
    Handle, NewParticle, PaddedSlices, ParticleSlices, ParticleSlicesMut, ParticleStore, StoreError,
};

#[cfg(test)]
mod tests;
