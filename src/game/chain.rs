//! The Blockchain set: turns what happened in a frame into game events
//! (explosions, particle-count and collision records) and hands them to the
//! recorder, which journals them on a Blockchain worker and sends them from
//! there (see `crate::chain`). A session starts with the game and ends on
//! exit with a score.

use super::{GameSet, Sandbox};
use crate::chain::{ChainBackend, ChainSnapshot, EventBody, GameEvent, Metric, Recorder};
use crate::workers::WorkerPool;
use bevy::prelude::*;
use std::sync::Arc;

/// A new record must beat the old one by this factor to be an event.
const RECORD_STEP: f64 = 1.25;

/// The recorder and the session's running tallies.
#[derive(Resource)]
pub struct ChainRecorder {
    recorder: Option<Recorder>,
    backend: ChainBackend,
    /// Why recording is off although the config asks for it.
    pub error: Option<String>,
    best_particles: u64,
    best_contacts: u64,
    /// The session's score: particles pushed by explosions.
    score: u64,
    ended: Option<ChainSnapshot>,
}

impl ChainRecorder {
    /// Starts recording (unless the config says off) and records the
    /// session's start. Problems are logged, never fatal: the game runs on.
    pub fn start(config: &super::Config, pool: Arc<WorkerPool>, initial: usize) -> Self {
        let backend = config.chain.backend;
        let mut this = Self {
            recorder: None,
            backend,
            error: None,
            best_particles: initial as u64,
            best_contacts: 0,
            score: 0,
            ended: None,
        };
        if backend == ChainBackend::Off {
            return this;
        }
        let _tag = crate::memory::enter(crate::memory::Component::Chain);
        match Recorder::start(&config.chain, pool) {
            Ok((recorder, warnings)) => {
                for w in warnings {
                    warn!("chain: {w}");
                }
                let hash = alloy::primitives::keccak256(config.to_toml().as_bytes());
                let start = GameEvent::new(
                    0,
                    EventBody::SessionStart {
                        seed: config.world.seed,
                        config_hash: u64::from_be_bytes(hash[..8].try_into().unwrap_or_default()),
                    },
                );
                if let Err(e) = recorder.record(&[start]) {
                    error!("chain: {e}");
                }
                info!(
                    "chain: recording session {} ({})",
                    recorder.session(),
                    config.chain.backend.name()
                );
                this.recorder = Some(recorder);
            }
            Err(e) => {
                error!("chain: recording is off for this run: {e}");
                this.error = Some(e.to_string());
            }
        }
        this
    }

    /// Whether the config turned recording off (not: it failed to start).
    pub fn is_off(&self) -> bool {
        self.backend == ChainBackend::Off
    }

    pub fn session(&self) -> Option<u64> {
        self.recorder.as_ref().map(|r| r.session())
    }

    /// The recorder's status now (or at the session's end).
    pub fn snapshot(&self) -> ChainSnapshot {
        if let Some(done) = &self.ended {
            return done.clone();
        }
        match &self.recorder {
            Some(r) => r.snapshot(),
            None => ChainSnapshot {
                backend: self.backend.name().to_string(),
                last_error: self.error.clone(),
                ..Default::default()
            },
        }
    }

    /// Records the session's end, sends what is pending (up to the exit
    /// flush time) and stops the sender. Idempotent.
    pub fn end_session(&mut self, frame: u64) -> ChainSnapshot {
        if let Some(recorder) = self.recorder.take() {
            let _tag = crate::memory::enter(crate::memory::Component::Chain);
            let end = GameEvent::new(
                frame,
                EventBody::SessionEnd {
                    frames: frame,
                    score: self.score,
                },
            );
            if let Err(e) = recorder.record(&[end]) {
                error!("chain: {e}");
            }
            recorder.flush();
            self.ended = Some(recorder.finish());
        }
        self.snapshot()
    }

    /// This frame's events from the sandbox's tallies.
    fn collect(&mut self, sandbox: &mut Sandbox) -> Vec<GameEvent> {
        let frame = sandbox.frame;
        let mut events: Vec<GameEvent> = sandbox
            .blasts
            .drain(..)
            .map(|b| {
                self.score += b.hit;
                GameEvent::new(
                    b.frame,
                    EventBody::Explosion {
                        x: b.x.max(0.0) as u32,
                        y: b.y.max(0.0) as u32,
                        hit: b.hit,
                    },
                )
            })
            .collect();
        let alive = sandbox.store.len() as u64;
        if let Some(e) = record(&mut self.best_particles, alive, Metric::Particles, frame) {
            events.push(e);
        }
        let contacts = sandbox.last_step.contacts;
        if let Some(e) = record(&mut self.best_contacts, contacts, Metric::Collisions, frame) {
            events.push(e);
        }
        events
    }
}

/// A milestone when `value` beats the record `best` by `RECORD_STEP` (and
/// is at least 1000), which it then becomes.
fn record(best: &mut u64, value: u64, metric: Metric, frame: u64) -> Option<GameEvent> {
    if value < 1000 || (value as f64) < *best as f64 * RECORD_STEP {
        return None;
    }
    *best = value;
    Some(GameEvent::new(
        frame,
        EventBody::Milestone { metric, value },
    ))
}

/// Adds the Blockchain set's systems.
pub struct ChainPlugin;

impl Plugin for ChainPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, hand_over_events.in_set(GameSet::Blockchain))
            .add_systems(Last, end_session_on_exit.in_set(super::ExitSet));
    }
}

/// Hands the frame's events to the journal. The append runs on a
/// Blockchain worker; the frame waits only for that write. Called every
/// frame, events or not, so events the journal refused (a full disk) are
/// retried; the recorder's status says so once, not every frame. The
/// recorder follows the game's workers when the settings replace them.
fn hand_over_events(mut chain: ResMut<ChainRecorder>, mut sandbox: ResMut<Sandbox>) {
    // The events, and any held while the journal refuses writes, are the
    // chain's memory.
    let _tag = crate::memory::enter(crate::memory::Component::Chain);
    let events = chain.collect(&mut sandbox);
    if let Some(recorder) = &mut chain.recorder {
        recorder.follow_pool(&sandbox.pool);
        let _ = recorder.record(&events);
    }
}

fn end_session_on_exit(
    mut exits: MessageReader<AppExit>,
    mut chain: ResMut<ChainRecorder>,
    sandbox: Res<Sandbox>,
) {
    if exits.read().next().is_some() {
        chain.end_session(sandbox.frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_must_beat_the_last_by_a_quarter() {
        let mut best = 4000;
        assert!(record(&mut best, 4999, Metric::Particles, 1).is_none());
        let e = record(&mut best, 5000, Metric::Particles, 2).unwrap();
        assert_eq!(
            e,
            GameEvent::new(
                2,
                EventBody::Milestone {
                    metric: Metric::Particles,
                    value: 5000
                }
            )
        );
        assert_eq!(best, 5000);
        let mut none_yet = 0;
        assert!(record(&mut none_yet, 999, Metric::Collisions, 3).is_none());
        assert!(record(&mut none_yet, 1000, Metric::Collisions, 3).is_some());
    }
}
