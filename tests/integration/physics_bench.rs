//! `particle-forge bench physics --quick --json`: every figure the physics
//! issue asks for, within the time `--quick` promises.

use super::{assert_positive, bench_json};

#[test]
fn bench_physics_quick_json_reports_every_figure() {
    let (v, _, stderr) = bench_json("physics", 30);
    assert!(stderr.contains("bench: dense pile at 100000"), "{stderr}");
    assert_positive(
        &v,
        &[
            "vs_naive_bevy_100k",
            "vs_aos_rayon_1m",
            "steps_per_s_1m",
            "ns_per_particle_1m",
            "bandwidth_fraction",
            "scaling_2_workers",
            "scaling_2_workers_100k",
            "triad_scaling_2_workers",
            "compute_scaling_2_workers",
        ],
    );
    // An entity per particle with a HashMap grid is far behind.
    assert!(v["vs_naive_bevy_100k"].as_f64().unwrap() > 3.0, "{v}");
    // The scaling figure is the median of its eight rounds, reported too.
    let mut rounds: Vec<f64> = v["scaling_2_workers_rounds"]
        .as_array()
        .unwrap_or_else(|| panic!("no rounds in {v}"))
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    assert_eq!(rounds.len(), 8, "{v}");
    rounds.sort_by(f64::total_cmp);
    let scaling = v["scaling_2_workers"].as_f64().unwrap();
    assert!(
        (scaling - rounds[4]).abs() < 0.002,
        "{scaling} vs {rounds:?}"
    );
}

#[test]
fn bench_physics_profile_steps_one_contender() {
    use super::{game, run};
    for (who, scene) in [
        ("ours", "pile"),
        ("aos", "gas"),
        ("aos-unordered", "bursts"),
    ] {
        let (code, out, err) = run(game().args([
            "bench",
            "physics",
            "--profile",
            who,
            "--profile-scene",
            scene,
            "--profile-particles",
            "3000",
            "--profile-steps",
            "2",
        ]));
        assert_eq!(code, 0, "{who}: {err}");
        let ms: f64 = out
            .split(": ")
            .last()
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{who}: no time in {out:?}"));
        assert!(ms > 0.0 && out.contains("3000 particles"), "{who}: {out}");
    }
    let (code, _, err) = run(game().args([
        "bench",
        "physics",
        "--profile",
        "ours",
        "--profile-particles",
        "0",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("--profile-particles must be between"), "{err}");
}
