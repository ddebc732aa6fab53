//! The real game plugins on Bevy's `MinimalPlugins`: no window, no GPU.

use particle_forge::game::{Config, Sandbox, headless};
use particle_forge::particles::Kind;

fn config(particles: usize, seed: u64) -> Config {
    let mut c = Config::default();
    c.particles.initial = particles;
    c.world.seed = seed;
    c.physics.threads = 2;
    // These tests are about the simulation; the chain has its own.
    c.chain.backend = particle_forge::chain::ChainBackend::Off;
    c
}

#[test]
fn the_system_sets_run_the_simulation_for_100_frames() {
    let c = config(4000, 1);
    let (w, h) = (c.world.width, c.world.height);
    let mut app = headless::build_app(c, false).unwrap();
    let mean_y = |app: &bevy::app::App| {
        let s = app.world().resource::<Sandbox>();
        let y = s.store.slices().y;
        y.iter().sum::<f32>() / y.len() as f32
    };
    app.update();
    let start_y = mean_y(&app);
    for _ in 1..100 {
        app.update();
    }
    let sandbox = app.world().resource::<Sandbox>();
    assert_eq!(sandbox.frame, 100, "Physics ran once per frame");
    assert_eq!(sandbox.store.len(), 4000, "no particle lost or added");
    let s = sandbox.store.slices();
    for i in 0..s.x.len() {
        assert!(s.x[i] > 0.0 && s.x[i] < w && s.y[i] > 0.0 && s.y[i] < h);
    }
    assert!(
        mean_y(&app) < start_y - 5.0,
        "gravity pulled the blocks down: {start_y} -> {}",
        mean_y(&app)
    );
}

#[test]
fn autoplay_spawns_explodes_and_sparks_expire() {
    let mut app = headless::build_app(config(3000, 5), true).unwrap();
    for _ in 0..400 {
        app.update();
    }
    let s = app.world().resource::<Sandbox>();
    assert!(s.counts.spawned > 3000, "{:?}", s.counts);
    assert!(s.counts.explosions > 0, "{:?}", s.counts);
    assert!(s.counts.despawned > 0, "sparks must die: {:?}", s.counts);
    assert_eq!(
        s.store.len() as u64,
        s.counts.spawned - s.counts.despawned,
        "every spawn and despawn is accounted for"
    );
}

#[test]
fn autoplay_stops_spawning_when_the_box_is_full() {
    // A box that holds about 6,000 grains at rest: twice the initial
    // 4,000 would pack it tight.
    let mut c = config(4000, 3);
    let (w, h) = (200.0, 120.0);
    (c.world.width, c.world.height) = (w, h);
    c.tools.brush_per_frame = 100;
    let (brush, largest) = (c.tools.brush_per_frame, c.kinds.max_radius());
    let mut app = headless::build_app(c, true).unwrap();
    // How much of the box the grains cover; the sparks an explosion throws
    // out are left out (they burn out in a second or two).
    let grains = |s: &Sandbox| {
        let p = s.store.slices();
        let area: f32 = (p.radius.iter().zip(p.kind))
            .filter(|&(_, &k)| k != Kind::Spark as u8)
            .map(|(r, _)| std::f32::consts::PI * r * r)
            .sum();
        area / (w * h)
    };
    let mut fullest: f32 = 0.0;
    for _ in 0..600 {
        app.update();
        fullest = fullest.max(grains(app.world().resource::<Sandbox>()));
    }
    // One frame's brush may land after the box has filled.
    let one_brush = brush as f32 * std::f32::consts::PI * largest * largest / (w * h);
    assert!(
        fullest > 0.7 && fullest <= 0.8 + one_brush,
        "the grains' crowding peaked at {fullest:.3}"
    );
}

#[test]
fn same_seed_same_game() {
    let run = |seed| {
        let mut app = headless::build_app(config(3000, seed), true).unwrap();
        for _ in 0..120 {
            app.update();
        }
        headless::checksum(app.world().resource::<Sandbox>())
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn the_chain_recorder_moves_to_workers_the_settings_replace() {
    // The overlay's Settings replace the worker pool live; the recorder
    // (journal writes and the sender, on Blockchain workers) must follow,
    // so the old pool's threads end, and keep recording from the new one.
    let dir = std::env::temp_dir().join(format!("pf-app-new-pool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = config(3000, 7);
    c.chain.backend = particle_forge::chain::ChainBackend::Embedded;
    c.chain.data_dir = dir.display().to_string();
    let mut app = headless::build_app(c, true).unwrap();
    for _ in 0..30 {
        app.update();
    }
    let old = {
        let mut sandbox = app.world_mut().resource_mut::<Sandbox>();
        let old = std::sync::Arc::downgrade(&sandbox.pool);
        sandbox.set_workers(Sandbox::worker_pool(1).unwrap());
        old
    };
    let mut frames = 0;
    while old.upgrade().is_some() {
        app.update();
        frames += 1;
        assert!(frames < 600, "the old worker pool outlived 600 frames");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Explosions keep coming (autoplay); every event reaches the chain.
    for _ in 0..200 {
        app.update();
    }
    let frame = app.world().resource::<Sandbox>().frame;
    let status = app
        .world_mut()
        .resource_mut::<particle_forge::game::chain::ChainRecorder>()
        .end_session(frame);
    assert!(status.recorded > 3, "{status:?}");
    assert_eq!(
        (status.confirmed, status.pending),
        (status.recorded, 0),
        "{status:?}"
    );
    assert_eq!(status.last_error, None);
    let _ = std::fs::remove_dir_all(&dir);
}
