//! The worker system as the game uses it: the benchmark's command line and
//! JSON, and the threads a running game holds.

use super::{assert_positive, bench_json, game, run};
use std::time::{Duration, Instant};

#[test]
fn bench_workers_quick_json_reports_every_figure() {
    let (v, stdout, stderr) = bench_json("workers", 20);
    assert!(
        stderr.contains("bench: spawn/join"),
        "no progress on stderr: {stderr}"
    );
    assert_positive(
        &v,
        &[
            "spawn_join_vs_rayon",
            "parallel_for_vs_rayon",
            "scaling_2_workers",
            "priority_p99_us",
            "priority_p99_us_rayon",
            "imbalance_makespan_vs_ideal",
        ],
    );
    // The table for people comes first.
    assert!(stdout.contains("frame-critical p99"), "{stdout}");
}

#[test]
fn bench_without_a_suite_says_which_there_are() {
    let (code, stdout, stderr) = run(game().args(["bench"]));
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("bench workers") && lines[0].contains("bench physics"),
        "{stderr}"
    );
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
fn a_running_game_holds_one_compute_worker_per_core_and_two_io_workers() {
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
        if names.iter().filter(|n| n.starts_with("io-")).count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
    assert_eq!(count("compute-"), cores, "{names:?}");
    // The chain sender and the journal appends, one each.
    assert_eq!(count("io-"), 2, "{names:?}");
    // Bevy's pools are trimmed to one idle thread each; nothing else
    // computes: main + our workers + Bevy's three.
    assert!(names.len() <= 1 + cores + 2 + 3, "{names:?}");
}
