//! The memory system as the game and its users see it: the benchmark's
//! command line and JSON, and heap attribution through the global
//! allocator this test binary installs (as the game binary does).

use super::{game, run};
use particle_forge::memory::{Component, LEDGER, enter};
use std::time::{Duration, Instant};

#[test]
fn bench_memory_quick_json_reports_every_figure() {
    let t0 = Instant::now();
    let (code, stdout, stderr) = run(game().args(["bench", "memory", "--quick", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "--quick took {:?}",
        t0.elapsed()
    );
    assert!(
        stderr.contains("bench: same-size churn"),
        "no progress: {stderr}"
    );
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    for key in [
        "slab_vs_slab_crate",
        "slab_vs_system_malloc",
        "slab_vs_mimalloc",
        "buddy_vs_buddy_system_allocator",
        "trace_peak_rss_mb",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {last}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
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
