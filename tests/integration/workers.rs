//! The worker system as the game uses it: the benchmark's command line and
//! JSON, and the threads a running game holds.

use super::{game, run};
use std::time::{Duration, Instant};

#[test]
fn bench_workers_quick_json_reports_every_figure() {
    let t0 = Instant::now();
    let (code, stdout, stderr) = run(game().args(["bench", "workers", "--quick", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "--quick took {:?}",
        t0.elapsed()
    );
    assert!(
        stderr.contains("bench: spawn/join"),
        "no progress on stderr: {stderr}"
    );
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    for key in [
        "spawn_join_vs_rayon",
        "parallel_for_vs_rayon",
        "scaling_2_workers",
        "priority_p99_us",
        "priority_p99_us_rayon",
        "imbalance_makespan_vs_ideal",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {last}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    // The table for people comes first.
    assert!(stdout.contains("frame-critical p99"), "{stdout}");
}

#[test]
fn bench_needs_a_known_suite() {
    let (code, _, stderr) = run(game().args(["bench", "nosuch"]));
    assert_eq!(code, 2);
    let line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap();
    assert!(line.contains("nosuch") && line.contains("--help"), "{line}");
}

/// Names of the threads of a running process.
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn a_running_game_holds_one_compute_worker_per_core_and_one_io_worker() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let mut child = game()
        .args(["--headless", "--frames", "100000", "--particles", "20000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut names = Vec::new();
    while Instant::now() < deadline {
        names = thread_names(child.id());
        if names.iter().any(|n| n.starts_with("io-")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
    assert_eq!(count("compute-"), cores, "{names:?}");
    assert_eq!(count("io-"), 1, "{names:?}");
    // Bevy's pools are trimmed to one idle thread each; nothing else
    // computes: main + our workers + Bevy's three.
    assert!(names.len() <= 1 + cores + 1 + 3, "{names:?}");
}
