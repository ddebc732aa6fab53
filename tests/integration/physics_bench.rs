//! `particle-forge bench physics --quick --json`: every figure the physics
//! issue asks for, within the time `--quick` promises.

use super::{game, run};
use std::time::{Duration, Instant};

#[test]
fn bench_physics_quick_json_reports_every_figure() {
    let t0 = Instant::now();
    let (code, stdout, stderr) = run(game().args(["bench", "physics", "--quick", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "--quick took {:?}",
        t0.elapsed()
    );
    assert!(stderr.contains("bench: dense pile at 100000"), "{stderr}");
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    for key in [
        "vs_naive_bevy_100k",
        "vs_aos_rayon_1m",
        "steps_per_s_1m",
        "ns_per_particle_1m",
        "bandwidth_fraction",
        "scaling_2_workers",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {last}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    // An entity per particle with a HashMap grid is far behind.
    assert!(v["vs_naive_bevy_100k"].as_f64().unwrap() > 3.0, "{last}");
}
