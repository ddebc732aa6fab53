//! The command line: good runs and every kind of bad input (exit code 2 and
//! one sentence that says what to do).

use super::{game, run, scratch_dir};

/// Runs the game expecting a user error; returns the one line it printed.
fn user_error(args: &[&str]) -> String {
    user_error_of(game().args(args))
}

/// `user_error` for a command set up beyond its flags (its environment).
fn user_error_of(cmd: &mut std::process::Command) -> String {
    let args: Vec<_> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (code, stdout, stderr) = run(cmd);
    assert_eq!(code, 2, "{args:?} should exit 2; stderr: {stderr}");
    assert!(stdout.is_empty(), "{args:?} printed to stdout: {stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} should print one line, got: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_string()
}

#[test]
fn unknown_flag_names_the_flag_and_the_help() {
    let line = user_error(&["--headless", "--bogus"]);
    assert!(
        line.contains("--bogus") && line.contains("--help"),
        "{line}"
    );
}

#[test]
fn particle_counts_out_of_range_are_refused() {
    let line = user_error(&["--headless", "--particles", "0"]);
    assert!(line.contains("--particles must be at least 1"), "{line}");
    let line = user_error(&[
        "--headless",
        "--particles",
        "5000",
        "--max-particles",
        "1000",
    ]);
    assert!(
        line.contains("above the maximum of 1000") && line.contains("--max-particles"),
        "{line}"
    );
    let line = user_error(&["--headless", "--particles", "abc"]);
    assert!(line.contains("abc"), "{line}");
    // A negative count is a bad value of --particles, not an unknown flag.
    let line = user_error(&["--headless", "--particles", "-5"]);
    assert!(
        line.contains("'-5'") && line.contains("--particles"),
        "{line}"
    );
}

#[test]
fn config_file_problems_say_which_file_and_line() {
    let dir = scratch_dir("cli-config");
    let missing = dir.join("missing.toml");
    let line = user_error(&["--headless", "--config", missing.to_str().unwrap()]);
    assert!(
        line.contains("not found") && line.contains("missing.toml"),
        "{line}"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[physics]\nsubsteps = 2\niterations = \"many\"\n").unwrap();
    let line = user_error(&["--headless", "--config", bad.to_str().unwrap()]);
    assert!(
        line.contains("line 3") && line.contains("bad.toml"),
        "{line}"
    );

    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[physics\nsubsteps = 2\n").unwrap();
    let line = user_error(&["--headless", "--config", broken.to_str().unwrap()]);
    assert!(line.contains("line 1"), "{line}");

    let line = user_error(&["--headless", "--set", "physics.substeps=0"]);
    assert!(line.contains("physics.substeps"), "{line}");
}

#[test]
fn a_good_config_file_is_used() {
    let dir = scratch_dir("cli-good-config");
    let file = dir.join("game.toml");
    std::fs::write(&file, "[particles]\ninitial = 1234\n").unwrap();
    let (code, stdout, stderr) = run(game().args([
        "--headless",
        "--frames",
        "3",
        "--json",
        "--config",
        file.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["particles"], 1234);
}

#[test]
fn screenshot_path_must_be_writable_png() {
    let line = user_error(&["--screenshot", "/no/such/folder/shot.png"]);
    assert!(line.contains("does not exist"), "{line}");
    let dir = scratch_dir("cli-shot");
    let txt = dir.join("shot.jpg");
    let line = user_error(&["--screenshot", txt.to_str().unwrap()]);
    assert!(line.contains(".png"), "{line}");
    let line = user_error(&[
        "--headless",
        "--screenshot",
        dir.join("a.png").to_str().unwrap(),
    ]);
    assert!(line.contains("drop --headless"), "{line}");
}

#[test]
fn no_display_without_headless_is_explained() {
    let (code, _, stderr) = run(game().env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no display") && stderr.contains("--headless"),
        "{stderr}"
    );
    let (code, _, stderr) = run(game().env("DISPLAY", ":4242"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("DISPLAY=:4242"), "{stderr}");
}

#[test]
fn headless_json_summary_has_the_promised_fields() {
    let (code, stdout, stderr) = run(game().args([
        "--headless",
        "--frames",
        "20",
        "--particles",
        "3000",
        "--seed",
        "7",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let last = stdout.lines().last().expect("a summary");
    let v: serde_json::Value = serde_json::from_str(last).expect("the last line is JSON");
    assert_eq!(v["frames"], 20);
    assert_eq!(v["particles"], 3000);
    for key in ["p50", "p99", "max"] {
        assert!(v["frame_ms"][key].as_f64().unwrap() > 0.0, "frame_ms.{key}");
    }
    for key in ["p50", "p99"] {
        assert!(v["step_ms"][key].as_f64().unwrap() > 0.0, "step_ms.{key}");
    }
    assert!(v["frame_ms"]["p50"].as_f64() <= v["frame_ms"]["max"].as_f64());
    assert_eq!(v["seed"], 7);
    // Not a terminal: no progress bar on stderr.
    assert!(!stderr.contains("frames"), "{stderr}");
}

#[test]
fn autoplay_runs_are_repeatable() {
    let args = [
        "--headless",
        "--frames",
        "90",
        "--particles",
        "2000",
        "--autoplay",
        "--threads",
        "2",
        "--json",
    ];
    let summary = |extra: &[&str]| {
        let (code, stdout, stderr) = run(game().args(args).args(extra));
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(stdout.lines().last().unwrap()).unwrap()
    };
    let a = summary(&["--seed", "3"]);
    let b = summary(&["--seed", "3"]);
    let c = summary(&["--seed", "4"]);
    assert_eq!(a["checksum"], b["checksum"]);
    assert_eq!(a["particles"], b["particles"]);
    assert_ne!(a["checksum"], c["checksum"]);
    assert!(
        a["spawned"].as_u64().unwrap() > 2000,
        "autoplay spawned nothing: {a}"
    );
}

#[test]
fn help_and_print_config_document_everything() {
    let (code, stdout, _) = run(game().arg("--help"));
    assert_eq!(code, 0);
    for flag in [
        "--headless",
        "--frames",
        "--particles",
        "--seed",
        "--json",
        "--autoplay",
        "--screenshot",
        "--config",
        "--set",
        "--print-config",
        "spawn brush",
        "explosion",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}");
    }
    let (code, stdout, _) = run(game().arg("--print-config"));
    assert_eq!(code, 0);
    let config =
        particle_forge::game::Config::parse(&stdout).expect("--print-config is valid TOML");
    assert_eq!(config, particle_forge::game::Config::default());
}

#[test]
fn a_terminal_gets_a_progress_bar() {
    // `script` gives the run a pseudo-terminal, as a player's shell would.
    let bin = super::game().get_program().to_string_lossy().into_owned();
    let (code, out, err) = run(std::process::Command::new("script").args([
        "-qec",
        &format!("{bin} --headless --frames 30 --particles 2000"),
        "/dev/null",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[#") || out.contains("/30 frames"),
        "no progress bar in: {out}"
    );
    assert!(out.contains("30 frames, 2000 particles"), "{out}");
}

#[test]
fn overlay_needs_a_window() {
    let line = user_error(&["--headless", "--overlay"]);
    assert!(line.contains("--overlay needs a window"), "{line}");
}

#[test]
fn offscreen_and_headless_do_not_mix() {
    let line = user_error(&["--headless", "--offscreen"]);
    assert!(line.contains("pick one"), "{line}");
    // With no display, the window's error points at the offscreen mode.
    let line = user_error(&["--headless", "--screenshot", "shot.png"]);
    assert!(line.contains("--offscreen"), "{line}");
}

#[test]
fn no_vulkan_device_is_explained() {
    // The Vulkan loader finds no driver at all.
    let line = user_error_of(
        game()
            .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
            .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .args(["--offscreen", "--frames", "5", "--particles", "2000"]),
    );
    assert!(line.contains("no Vulkan device found"), "{line}");
}

#[test]
fn an_offscreen_image_too_large_for_the_device_is_refused() {
    // lavapipe draws at most 16384 pixels a side. A desktop session has
    // XDG_RUNTIME_DIR; without it the system's Wayland client library,
    // loaded by the Vulkan driver, prints its own complaint to stderr.
    let runtime = scratch_dir("xdg-runtime");
    let line = user_error_of(game().env("XDG_RUNTIME_DIR", &runtime).args([
        "--offscreen",
        "--frames",
        "3",
        "--particles",
        "2000",
        "--width",
        "20000",
        "--height",
        "20000",
    ]));
    assert!(line.contains("larger than this device draws"), "{line}");
    assert!(line.contains("--width/--height"), "{line}");
}

#[test]
fn more_threads_than_cores_runs_with_a_warning() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let more = (cores + 1).to_string();
    let fewer = cores.to_string();
    let warns = |threads: &str| {
        let (code, _, stderr) = run(game().args([
            "--headless",
            "--frames",
            "2",
            "--particles",
            "500",
            "--chain",
            "off",
            "--threads",
            threads,
        ]));
        assert_eq!(code, 0, "{stderr}");
        stderr.contains("the step gets slower, not faster")
    };
    assert!(warns(&more), "{more} threads on {cores} cores: no warning");
    assert!(!warns(&fewer), "{fewer} threads on {cores} cores warned");
}
