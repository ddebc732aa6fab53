//! `particle-forge bench overlay`: the open overlay's CPU on the frame,
//! against the physics step and against laying it out every frame.

use super::{assert_positive, bench_json};

#[test]
fn bench_overlay_quick_json_reports_the_rise_and_the_pass_rate() {
    let (v, stdout, stderr) = bench_json("overlay", 30);
    assert!(
        stderr.contains("bench: overlay: frame"),
        "no progress: {stderr}"
    );
    assert!(stdout.contains("laid out every frame"), "{stdout}");
    assert_positive(
        &v,
        &[
            "step_ms_p50",
            "pass_ms_p50",
            "pack_ms_p50",
            "replay_ms_p50",
            "passes_per_s",
            "overlay_ms_per_frame",
            "every_frame_ms_per_frame",
            "frame_rise",
            "every_frame_rise",
            "vs_every_frame",
            "vertices",
        ],
    );
    assert_eq!(v["particles"], 200_000);
    // About ten passes a second whatever the frame rate (the rule picks the
    // frame nearest to each tenth of a second: 6.7 to 15 a second), or
    // every frame when frames are longer than that (a machine busy with
    // other tests).
    let step = v["step_ms_p50"].as_f64().unwrap();
    let rate = v["passes_per_s"].as_f64().unwrap();
    assert!(
        rate <= 15.5 && rate >= 6.0_f64.min(500.0 / step),
        "{rate} passes a second at a {step} ms step"
    );
    // A replay (a paint callback that draws the kept triangles) is far
    // cheaper than a pass, and than packing a pass's triangles for the
    // upload, so passing a third of the frames or fewer costs well under
    // every frame.
    let pass = v["pass_ms_p50"].as_f64().unwrap();
    let pack = v["pack_ms_p50"].as_f64().unwrap();
    assert!(pack < pass, "{v}");
    assert!(v["replay_ms_p50"].as_f64().unwrap() < pack / 4.0, "{v}");
    let (ours, every) = (
        v["frame_rise"].as_f64().unwrap(),
        v["every_frame_rise"].as_f64().unwrap(),
    );
    assert!(ours < every, "{v}");
    // The rise is the overlay's ms a frame over the step's: consistent.
    let per_frame = v["overlay_ms_per_frame"].as_f64().unwrap();
    assert!((ours - per_frame / step).abs() < 1e-3, "{v}");
}
