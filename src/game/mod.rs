//! The game as Bevy plugins: the four system sets every frame flows through,
//! the sandbox resource, the player's tools and the headless runner.
//!
//! ```text
//! input ─▶ Management ─▶ Physics ─▶ Rendering ─▶ Blockchain
//! ```
//! Systems here are thin: they move commands and call into `Sandbox`, which
//! owns the particles and the physics and knows nothing of Bevy's schedule.

pub mod autoplay;
pub mod chain;
pub mod config;
pub mod headless;
pub mod input;
pub mod memory;
pub mod rng;
pub mod sandbox;

use bevy::prelude::*;
use std::sync::Mutex;

use crate::particles::Kind;
use crate::workers::{Capability, Priority, TaskGraph, TaskSpec};
pub use config::Config;

/// Why the game could not start, or a settings change made live in the
/// overlay could not apply (nothing changes then); worded for the player.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Columns(#[from] crate::memory::column_space::MapRefused),
    #[error("cannot start {workers} worker threads: {source}")]
    Workers {
        workers: usize,
        source: crate::workers::PoolError,
    },
    #[error("cannot set up the memory pool: {0}")]
    MemoryPool(#[source] crate::memory::PoolError),
}
pub use sandbox::{Sandbox, ToolCommand};

/// The four workers of a frame, run in this order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GameSet {
    /// Player tools, spawning and despawning, budgets.
    Management,
    /// The physics step.
    Physics,
    /// Packing particles for the GPU.
    Rendering,
    /// Handing game events to the chain recorder.
    Blockchain,
}

/// Systems that react to `AppExit` (the chain's session end, the frame
/// report), in `Last` after whatever decided to exit this frame.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitSet;

/// The effective configuration.
#[derive(Resource, Clone, Debug)]
pub struct GameConfig(pub Config);

/// Tool uses waiting for this frame's Management set.
#[derive(Resource, Default, Debug)]
pub struct ToolQueue(pub Vec<ToolCommand>);

/// What the player has chosen.
#[derive(Resource, Debug)]
pub struct PlayerState {
    pub kind: Kind,
    pub paused: bool,
    pub show_help: bool,
    pub show_overlay: bool,
    pub reset_requested: bool,
    /// Defragment the particle store this frame (C).
    pub compact_requested: bool,
}

impl Default for PlayerState {
    fn default() -> Self {
        Self {
            kind: Kind::Sand,
            paused: false,
            show_help: false,
            show_overlay: false,
            reset_requested: false,
            compact_requested: false,
        }
    }
}

/// Bevy's own task pools, sized so that they do not compete with the
/// worker system: every heavy loop runs on our compute workers (one per
/// core) and the chain's I/O on our I/O worker, and the game's systems run
/// in a chain, so Bevy's pools get one thread each (its minimum; they idle).
pub fn bevy_task_pools() -> bevy::app::TaskPoolPlugin {
    use bevy::app::{TaskPoolOptions, TaskPoolThreadAssignmentPolicy};
    let one = || TaskPoolThreadAssignmentPolicy {
        min_threads: 1,
        max_threads: 1,
        percent: 1.0,
        on_thread_spawn: None,
        on_thread_destroy: None,
    };
    bevy::app::TaskPoolPlugin {
        task_pool_options: TaskPoolOptions {
            min_total_threads: 1,
            max_total_threads: 3,
            io: one(),
            async_compute: one(),
            compute: one(),
        },
    }
}

/// The scripted player of `--autoplay`.
#[derive(Resource)]
pub struct AutoplayDriver(pub autoplay::Autoplay);

/// The game's simulation: system sets, sandbox, tools. Rendering, input and
/// the overlay are separate plugins, so the same game runs headless.
pub struct GamePlugin {
    config: Config,
    autoplay: bool,
    sandbox: Mutex<Option<(Sandbox, memory::MemorySystem, chain::ChainRecorder)>>,
}

impl GamePlugin {
    /// Builds the sandbox up front so a failure is an error, not a panic.
    pub fn new(config: Config, autoplay: bool) -> Result<Self, SetupError> {
        // The initial scene's memory is the game's.
        let _tag = crate::memory::enter(crate::memory::Component::Game);
        crate::memory::column_space::switch(
            config.memory.column_strategy,
            config.memory.column_space_mib << 20,
        )?;
        let sandbox = Sandbox::new(&config)?;
        let memory = memory::MemorySystem::new(&config.memory)?;
        let chain = chain::ChainRecorder::start(&config, sandbox.pool.clone(), sandbox.store.len());
        Ok(Self {
            config,
            autoplay,
            sandbox: Mutex::new(Some((sandbox, memory, chain))),
        })
    }
}

impl Plugin for GamePlugin {
    fn build(&self, app: &mut App) {
        let (sandbox, memory_system, chain_recorder) = self
            .sandbox
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .expect("GamePlugin is added once");
        let c = &self.config;
        if self.autoplay {
            app.insert_resource(AutoplayDriver(autoplay::Autoplay::new(
                c.world.seed,
                c.world.width,
                c.world.height,
                c.tools.brush_per_frame,
            )));
        }
        app.insert_resource(GameConfig(c.clone()))
            .insert_resource(sandbox)
            .insert_resource(memory_system)
            .insert_resource(chain_recorder)
            .add_plugins((memory::MemoryPlugin, chain::ChainPlugin))
            .init_resource::<ToolQueue>()
            .insert_resource(PlayerState {
                show_overlay: c.window.overlay,
                ..PlayerState::default()
            })
            .configure_sets(
                Update,
                (
                    GameSet::Management,
                    GameSet::Physics,
                    GameSet::Rendering,
                    GameSet::Blockchain,
                )
                    .chain(),
            )
            .add_systems(
                Update,
                (
                    reset_on_request,
                    run_autoplay.run_if(resource_exists::<AutoplayDriver>),
                    apply_tools,
                )
                    .chain()
                    .in_set(GameSet::Management),
            )
            .add_systems(Update, step_physics.in_set(GameSet::Physics));
    }
}

fn reset_on_request(mut player: ResMut<PlayerState>, mut sandbox: ResMut<Sandbox>) {
    if player.reset_requested {
        player.reset_requested = false;
        memory::report_outstanding("reset");
        sandbox.reset();
    }
}

fn run_autoplay(
    mut driver: ResMut<AutoplayDriver>,
    mut queue: ResMut<ToolQueue>,
    sandbox: Res<Sandbox>,
    config: Res<GameConfig>,
) {
    // The scripted player tops the box up to twice the initial count, but
    // not past what the box can hold at rest: beyond that the particles
    // only pack tighter (200,000 topped up to 400,000 in the default box
    // stepped at 133 ms, against 24 ms at 200,000).
    let room =
        sandbox.store.len() < (2 * config.0.particles.initial).max(20_000) && !sandbox.is_full();
    driver.0.next_frame(room, &mut queue.0);
}

/// The Management set's work as a task graph on the worker system: the
/// player's tools, then (unless paused) expiring particles that outlived
/// their kind's lifetime.
pub(crate) fn apply_tools(
    mut queue: ResMut<ToolQueue>,
    mut sandbox: ResMut<Sandbox>,
    player: Res<PlayerState>,
    config: Res<GameConfig>,
) {
    let dt = config.0.world.dt;
    let pool = sandbox.pool.clone();
    let commands: Vec<_> = queue.0.drain(..).collect();
    let shared = Mutex::new(&mut *sandbox);
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let spec =
        |name: &str| TaskSpec::new(name, Capability::Management).priority(Priority::FrameCritical);
    let mut graph = TaskGraph::new();
    let tools = graph.add(spec("management.tools"), || {
        let mut sandbox = lock();
        for cmd in commands {
            sandbox.apply(cmd, dt);
        }
    });
    if !player.paused {
        graph.add_after(spec("management.expire"), &[tools], || {
            lock().expire();
        });
    }
    match pool.run(graph) {
        Ok(report) if report.is_ok() => {}
        Ok(report) => error!("the management tasks failed: {}", report.errors[0]),
        Err(e) => error!("the management tasks failed: {e}"),
    }
}

fn step_physics(mut sandbox: ResMut<Sandbox>, player: Res<PlayerState>, config: Res<GameConfig>) {
    if !player.paused {
        sandbox.step(config.0.world.dt);
    }
}
