//! Particle Forge: a particle-simulation sandbox on Bevy.
//!
//! Engine-independent cores first (`particles`, `physics`), then the Bevy
//! side (`game`, `render`, `overlay`, `app`). See `shared/DESIGN.md` for the
//! map and the rules.

pub mod app;
pub mod bench;
pub mod chain;
pub mod cli;
pub mod game;
pub mod memory;
pub mod overlay;
pub mod particles;
pub mod physics;
pub mod render;
pub mod workers;
