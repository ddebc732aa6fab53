//! The memory system as the game and its users see it: the benchmark's
//! command line and JSON, and heap attribution through the global
//! allocator this test binary installs (as the game binary does).

use super::{assert_positive, bench_json, game, run};
use particle_forge::memory::{Component, LEDGER, enter};

#[test]
fn bench_memory_quick_json_reports_every_figure() {
    let (v, stdout, stderr) = bench_json("memory", 20);
    assert!(
        stderr.contains("bench: same-size churn"),
        "no progress: {stderr}"
    );
    assert_positive(
        &v,
        &[
            "slab_vs_slab_crate",
            "slab_vs_system_malloc",
            "slab_vs_mimalloc",
            "buddy_vs_buddy_system_allocator",
            "trace_peak_rss_mb",
        ],
    );
    let after = v["fragmentation_after_defrag"].as_f64().unwrap();
    let before = v["fragmentation_before_defrag"].as_f64().unwrap();
    assert!(after <= 0.05 && before > after, "{before} → {after}");
    // Idle pool memory came back within a few decay periods.
    let decay = v["pool_decay_s"].as_f64().unwrap();
    assert!(v["pool_returned_after_s"].as_f64().unwrap() <= 3.0 * decay);
    assert!(stdout.contains("ns per alloc+free pair"), "{stdout}");
}

#[test]
fn heap_bytes_are_charged_to_the_component_that_allocated_them() {
    let before = LEDGER.totals(Component::Chain).heap_live;
    let v = {
        let _tag = enter(Component::Chain);
        vec![7u8; 3 << 20]
    };
    let during = LEDGER.totals(Component::Chain).heap_live;
    assert!(during - before >= 3 << 20, "{before} → {during}");
    // Freed outside the scope, still taken off the chain's count.
    drop(v);
    let after = LEDGER.totals(Component::Chain).heap_live;
    assert!(after - before < 1 << 20, "{before} → {after}");
}

#[test]
fn a_headless_run_reports_memory_and_leaves_nothing_allocated() {
    let (code, stdout, stderr) = run(game().args([
        "--headless",
        "--frames",
        "40",
        "--particles",
        "20000",
        "--autoplay",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let m = &v["memory"];
    // The particle columns are the game's, the step's scratch is physics'.
    assert!(m["live_mb"]["game"].as_f64().unwrap() > 0.5, "{m}");
    assert!(m["live_mb"]["physics"].as_f64().unwrap() > 0.1, "{m}");
    assert!(m["resident_mb"].as_f64().unwrap() > m["live_mb"]["game"].as_f64().unwrap());
    assert_eq!(m["pool_buffers"].as_u64(), Some(20));
    // The job system's boxed jobs come from the workers' slab caches.
    let rates = m["job_cache_hit_rates"].as_array().unwrap();
    assert!(rates.iter().any(|r| r.as_f64().unwrap() > 0.5), "{m}");
    assert_eq!(
        m["outstanding_at_exit"].as_array().map(Vec::len),
        Some(0),
        "{m}"
    );
}

#[test]
fn pool_flags_reach_the_pool_and_bad_sizes_are_refused() {
    let (code, stdout, stderr) = run(game().args([
        "--headless",
        "--frames",
        "2",
        "--particles",
        "1000",
        "--pool-buffers",
        "3",
        "--pool-buffer-kib",
        "256",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["memory"]["pool_buffers"].as_u64(), Some(3));
    let (code, _, stderr) = run(game().args(["--headless", "--pool-buffer-kib", "1"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("memory.pool_buffer_kib must be between"),
        "{stderr}"
    );
}

#[test]
fn what_the_overlay_samples_is_counted_as_the_overlays() {
    use bevy::ecs::system::RunSystemOnce;
    use particle_forge::game::{Config, memory::MemorySystem};
    use particle_forge::overlay::windows::{OverlayState, sample_overlay};
    let config = Config::default();
    let mut world = bevy::prelude::World::new();
    world.insert_resource(MemorySystem::new(&config.memory).unwrap());
    world.insert_resource(OverlayState::default());
    // The first sample starts the overlay's 60-second history: its room
    // is the overlay's, whichever thread runs the system.
    let before = LEDGER.totals(Component::Overlay).heap_allocs;
    world.run_system_once(sample_overlay).unwrap();
    assert!(
        LEDGER.totals(Component::Overlay).heap_allocs > before,
        "nothing counted for the overlay"
    );
}
