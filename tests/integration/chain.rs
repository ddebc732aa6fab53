//! Event recording against real parts: a real anvil node (installed by
//! scripts/test from npm), real journal files, the real game binary killed
//! with SIGKILL, and the embedded EVM persisted across runs.

use crate::{game, run, scratch_dir};
use particle_forge::chain::{
    ChainBackend, ChainConfig, EventBody, GameEvent, Metric, Recorder, SecretKey, anvil::Anvil,
    anvil::DEV_KEY, open_client,
};
use particle_forge::workers::WorkerPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rpc_config(url: &str, dir: &std::path::Path) -> ChainConfig {
    ChainConfig {
        backend: ChainBackend::Rpc,
        rpc_url: url.to_string(),
        data_dir: dir.to_string_lossy().into_owned(),
        signing_key: Some(SecretKey(DEV_KEY.into())),
        batch_ms: 20,
        timeout_ms: 2000,
        ..ChainConfig::default()
    }
}

/// A varied stream: every kind, frames rising.
fn stream(n: u64, offset: u64) -> Vec<GameEvent> {
    (offset..offset + n)
        .map(|i| {
            let body = match i % 7 {
                0 => EventBody::Milestone {
                    metric: if i % 2 == 0 {
                        Metric::Particles
                    } else {
                        Metric::Collisions
                    },
                    value: i * 13,
                },
                1 => EventBody::SessionStart {
                    seed: i,
                    config_hash: i ^ 0xabcdef,
                },
                2 => EventBody::SessionEnd {
                    frames: i,
                    score: i * 3,
                },
                _ => EventBody::Explosion {
                    x: (i * 31 % 1280) as u32,
                    y: (i * 17 % 720) as u32,
                    hit: i % 300,
                },
            };
            GameEvent::new(i * 2, body)
        })
        .collect()
}

fn wait_confirmed(recorder: &Recorder, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let s = recorder.snapshot();
        if s.confirmed >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} confirmed; last error: {:?}",
            s.confirmed,
            s.last_error
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (seq → event) of one session, read back from the chain's logs; fails
/// on a sequence number seen twice.
fn on_chain(config: &ChainConfig, session: u64) -> BTreeMap<u64, GameEvent> {
    let (mut log, _) = open_client(config, true).unwrap();
    let mut seen = BTreeMap::new();
    for batch in log.history(Some(session)).unwrap() {
        assert_eq!(batch.session, session);
        for (i, e) in batch.events.into_iter().enumerate() {
            let seq = batch.first_seq + i as u64;
            assert!(seen.insert(seq, e).is_none(), "event {seq} recorded twice");
        }
    }
    seen
}

#[test]
fn ten_thousand_events_round_trip_through_anvil() {
    let node = Anvil::start(None, None).unwrap();
    let dir = scratch_dir("chain-10k");
    let config = rpc_config(&node.url, &dir);
    let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
    let (recorder, warnings) = Recorder::start(&config, pool).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let events = stream(10_000, 0);
    for frame in events.chunks(100) {
        recorder.record(frame).unwrap();
    }
    recorder.flush();
    wait_confirmed(&recorder, 10_000, Duration::from_secs(120));
    let session = recorder.session();
    let status = recorder.finish();
    assert_eq!(status.pending, 0);
    assert!(
        status.batches >= 20,
        "{} batches of at most 500",
        status.batches
    );
    assert!(
        status.gas_per_event > 0.0 && status.gas_per_event < 2000.0,
        "{status:?}"
    );
    let back = on_chain(&config, session);
    let seqs: Vec<u64> = back.keys().copied().collect();
    assert_eq!(seqs, (0..10_000).collect::<Vec<_>>());
    assert_eq!(back.into_values().collect::<Vec<_>>(), events);
}

#[test]
fn a_journal_compacted_mid_session_loses_and_repeats_nothing() {
    // Enough events for the journal to pass its 4 MiB compaction size
    // while the game goes on recording: the sender rewrites it between
    // batches, with appends landing while the new file is written.
    let dir = scratch_dir("chain-compaction");
    let config = ChainConfig {
        data_dir: dir.to_string_lossy().into_owned(),
        batch_ms: 20,
        ..ChainConfig::default()
    };
    assert_eq!(config.backend, ChainBackend::Embedded);
    let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
    let (recorder, warnings) = Recorder::start(&config, pool).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let n = 160_000;
    let events = stream(n, 0);
    let journal = dir.join("journal.log");
    let mut largest = 0;
    for frame in events.chunks(1000) {
        recorder.record(frame).unwrap();
        largest = largest.max(std::fs::metadata(&journal).unwrap().len());
    }
    recorder.flush();
    wait_confirmed(&recorder, n, Duration::from_secs(300));
    let session = recorder.session();
    let status = recorder.finish();
    assert_eq!(status.pending, 0, "{status:?}");
    assert!(status.last_error.is_none(), "{status:?}");
    let size = std::fs::metadata(&journal).unwrap().len();
    assert!(
        size < 4 << 20 && size < largest,
        "the journal was {largest} bytes at most and is {size} now: never compacted"
    );
    let back = on_chain(&config, session);
    let seqs: Vec<u64> = back.keys().copied().collect();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>());
    assert_eq!(back.into_values().collect::<Vec<_>>(), events);
}

#[test]
fn anvil_killed_mid_stream_and_restarted_from_its_state_records_each_event_once() {
    let dir = scratch_dir("chain-anvil-restart");
    let state = dir.join("anvil-state.json");
    let node = Anvil::start(None, Some(&state)).unwrap();
    let port = node.port;
    let mut config = rpc_config(&node.url, &dir.join("data"));
    config.batch_events = 50;
    let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
    let (recorder, _) = Recorder::start(&config, pool).unwrap();
    let events = stream(3000, 0);
    // A first third, confirmed before the node goes down.
    for frame in events[..1000].chunks(10) {
        recorder.record(frame).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    // Stop the node between two transactions: anvil's `--state` dump can
    // keep a block's storage but not its logs when that block is mined
    // while it shuts down (the contract then counts events whose log is
    // gone). Everything the game hands over from here on meets a dead node.
    wait_confirmed(&recorder, 1000, Duration::from_secs(60));
    node.stop();
    // The game keeps handing events over while the node is down.
    for frame in events[1000..2000].chunks(10) {
        recorder.record(frame).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let down = recorder.snapshot();
    assert!(down.pending > 0, "events wait in the journal: {down:?}");
    assert!(down.last_error.is_some(), "the outage shows: {down:?}");
    let node = Anvil::start(Some(port), Some(&state)).unwrap();
    for frame in events[2000..].chunks(10) {
        recorder.record(frame).unwrap();
    }
    recorder.flush();
    wait_confirmed(&recorder, 3000, Duration::from_secs(120));
    let session = recorder.session();
    let status = recorder.finish();
    assert_eq!(status.pending, 0, "{status:?}");
    let back = on_chain(&config, session);
    let missing: Vec<u64> = (0..3000).filter(|s| !back.contains_key(s)).collect();
    assert!(
        missing.is_empty() && back.len() == 3000,
        "{} events on chain, {} missing (first {:?}); status {status:?}",
        back.len(),
        missing.len(),
        missing.first()
    );
    assert_eq!(back.into_values().collect::<Vec<_>>(), events);
    drop(node);
}

#[test]
fn a_node_restarted_without_its_state_gets_the_pending_events_under_a_new_session() {
    let dir = scratch_dir("chain-anvil-reset");
    let node = Anvil::start(None, None).unwrap();
    let port = node.port;
    let config = rpc_config(&node.url, &dir);
    let events = stream(30, 0);
    // Ten confirmed, then the node dies and ten more wait in the journal.
    let old_session = {
        let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
        let (recorder, _) = Recorder::start(&config, pool).unwrap();
        recorder.record(&events[..10]).unwrap();
        recorder.flush();
        wait_confirmed(&recorder, 10, Duration::from_secs(60));
        node.stop();
        recorder.record(&events[10..20]).unwrap();
        let session = recorder.session();
        let status = recorder.finish();
        assert_eq!(status.pending, 10, "{status:?}");
        session
    };
    // A fresh node on the same address: no contract, no history. The
    // recorder deploys a new contract; the old session's numbering (10
    // onwards) can never go on there, so its events move to a new session
    // instead of blocking every later one.
    let node = Anvil::start(Some(port), None).unwrap();
    let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
    let (recorder, _) = Recorder::start(&config, pool).unwrap();
    recorder.record(&events[20..]).unwrap();
    recorder.flush();
    wait_confirmed(&recorder, 20, Duration::from_secs(60));
    let session = recorder.session();
    let status = recorder.finish();
    assert_eq!(status.pending, 0, "{status:?}");
    let moved = particle_forge::chain::journal::Journal::open(&dir)
        .unwrap()
        .journal
        .sessions();
    assert!(
        moved.iter().all(|&(_, _, pending)| pending == 0),
        "{moved:?}"
    );
    let (mut log, _) = open_client(&config, true).unwrap();
    let mut by_session: BTreeMap<u64, Vec<GameEvent>> = BTreeMap::new();
    for batch in log.history(None).unwrap() {
        by_session
            .entry(batch.session)
            .or_default()
            .extend(batch.events);
    }
    assert!(!by_session.contains_key(&old_session), "{by_session:?}");
    assert_eq!(by_session.remove(&session), Some(events[20..].to_vec()));
    // The one other session on the new chain is the moved one.
    let rest: Vec<Vec<GameEvent>> = by_session.into_values().collect();
    assert_eq!(rest, vec![events[10..20].to_vec()]);
    drop(node);
}

#[test]
fn a_game_killed_mid_batch_resends_on_restart_and_records_each_event_once() {
    let node = Anvil::start(None, None).unwrap();
    let dir = scratch_dir("chain-kill9");
    let data = dir.to_string_lossy().into_owned();
    let config = rpc_config(&node.url, &dir);
    let flags = |frames: &str| {
        let mut cmd = game();
        cmd.env("PARTICLE_FORGE_PRIVATE_KEY", DEV_KEY).args([
            "--headless",
            "--autoplay",
            "--particles",
            "2000",
            "--frames",
            frames,
            "--rpc-url",
            &node.url,
            "--data-dir",
            &data,
            "--set",
            "chain.batch_events=4",
            "--set",
            "chain.batch_ms=5",
        ]);
        cmd
    };
    // Run "forever"; kill -9 once batches are landing.
    let mut child = flags("1000000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let session = loop {
        let (mut log, _) = open_client(&config, true).unwrap();
        let batches = log.history(None).unwrap_or_default();
        if batches.iter().map(|b| b.events.len()).sum::<usize>() >= 40 {
            break batches[0].session;
        }
        assert!(Instant::now() < deadline, "no batches landed in 120 s");
        assert!(child.try_wait().unwrap().is_none(), "the game exited early");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // What the killed game had journaled for its session.
    let (code, stdout, stderr) =
        run(game().args(["chain", "status", "--json", "--data-dir", &data]));
    assert_eq!(code, 0, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let recorded = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session"].as_u64() == Some(session))
        .expect("the killed session is in the journal")["recorded"]
        .as_u64()
        .unwrap();
    assert!(recorded >= 40);

    // Start again: the pending events go out before the new session's.
    let (code, stdout, stderr) = run(flags("30").arg("--json"));
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["chain"]["pending"], 0, "{summary}");
    let back = on_chain(&config, session);
    assert_eq!(
        back.keys().copied().collect::<Vec<_>>(),
        (0..recorded).collect::<Vec<_>>(),
        "every journaled event of the killed session exactly once"
    );
    assert!(matches!(back[&0].body, EventBody::SessionStart { .. }));
}

#[test]
fn the_embedded_chain_records_and_its_history_survives_a_restart() {
    let dir = scratch_dir("chain-embedded");
    let data = dir.to_string_lossy().into_owned();
    let headless = |extra: &[&str]| {
        run(game()
            .args([
                "--headless",
                "--autoplay",
                "--particles",
                "3000",
                "--frames",
                "240",
                "--json",
                "--data-dir",
                &data,
            ])
            .args(extra))
    };
    let (code, stdout, stderr) = headless(&[]);
    assert_eq!(code, 0, "{stderr}");
    let first: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let chain = &first["chain"];
    assert_eq!(chain["backend"], "embedded");
    let recorded = chain["recorded"].as_u64().unwrap();
    assert!(recorded >= 3, "start, explosions, end: {chain}");
    assert_eq!(chain["confirmed"].as_u64(), Some(recorded), "{chain}");
    assert_eq!(chain["pending"], 0);

    let history = || {
        let (code, stdout, stderr) =
            run(game().args(["chain", "history", "--json", "--data-dir", &data]));
        assert_eq!(code, 0, "{stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let once = history();
    assert_eq!(once.len() as u64, recorded);
    assert_eq!(once[0]["kind"], "session_start");
    assert_eq!(once.last().unwrap()["kind"], "session_end");
    assert!(
        once.iter().any(|e| e["kind"] == "explosion"),
        "autoplay explodes"
    );
    for (i, e) in once.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64));
        assert!(e["frame"].is_u64() && e["session"].is_u64());
    }

    // A second run on the same data directory: the first session's
    // history is still there, unchanged, and the second one follows. It
    // asks for three confirmations, which the embedded chain (final when
    // mined) meets at once.
    let (code, stdout, stderr) = headless(&["--set", "chain.confirmations=3"]);
    assert_eq!(code, 0, "{stderr}");
    let second: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(second["chain"]["pending"], 0, "{}", second["chain"]);
    let twice = history();
    assert!(
        twice.len() as u64 >= 2 * recorded - 1,
        "{} events",
        twice.len()
    );
    assert_eq!(&twice[..once.len()], &once[..]);
    assert_ne!(twice[once.len()]["session"], once[0]["session"]);
}

/// A short headless run of the game recording into `data`, with its
/// summary as JSON.
fn ten_frames_on(data: &str) -> (i32, String, String) {
    run(game().args([
        "--headless",
        "--particles",
        "1000",
        "--frames",
        "10",
        "--json",
        "--data-dir",
        data,
    ]))
}

#[test]
fn a_corrupt_journal_tail_is_cut_with_a_warning_and_its_events_still_go_out() {
    let dir = scratch_dir("chain-corrupt");
    let data = dir.to_string_lossy().into_owned();
    // A journal with pending events and a torn tail, as a crash leaves it.
    let session = {
        let opened = particle_forge::chain::journal::Journal::open(&dir).unwrap();
        let mut j = opened.journal;
        j.append(77, &stream(25, 0)).unwrap();
        77
    };
    let path = particle_forge::chain::journal::journal_path(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let keep = bytes.len();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();

    let (code, stdout, stderr) = ten_frames_on(&data);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("cut a torn or corrupt tail of 7 bytes"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["chain"]["recovered"], 25);
    assert_eq!(summary["chain"]["pending"], 0);
    let config = ChainConfig {
        data_dir: data.clone(),
        ..ChainConfig::default()
    };
    let back = on_chain(&config, session);
    assert_eq!(back.into_values().collect::<Vec<_>>(), stream(25, 0));
    // The cut left the intact records; the run then marked them done.
    let after = particle_forge::chain::journal::Journal::open(&dir).unwrap();
    assert!(after.warning.is_none(), "the tail stays clean");
    assert!(after.journal.pending_of(session).is_empty());
    assert!(keep > 8);
}

#[test]
fn damage_inside_the_journal_loses_only_the_event_it_hit() {
    let dir = scratch_dir("chain-damaged");
    let data = dir.to_string_lossy().into_owned();
    let path = particle_forge::chain::journal::journal_path(&dir);
    let events = stream(25, 0);
    // 25 pending events of session 78, then a bad disk flips a bit in the
    // eleventh one's record (number 10).
    let starts: Vec<u64> = {
        let mut j = particle_forge::chain::journal::Journal::open(&dir)
            .unwrap()
            .journal;
        events
            .iter()
            .map(|e| {
                let at = std::fs::metadata(&path).unwrap().len();
                j.append(78, std::slice::from_ref(e)).unwrap();
                at
            })
            .collect()
    };
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[starts[10] as usize + 20] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let (code, stdout, stderr) = ten_frames_on(&data);
    assert_eq!(code, 0, "{stderr}");
    let said = "1 event of session 78 from number 10 on was lost with the damaged bytes; the 14 intact events after it are recorded as session ";
    let at = stderr.find(said).unwrap_or_else(|| panic!("{stderr}")) + said.len();
    let moved: u64 = stderr[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["chain"]["recovered"], 24);
    assert_eq!(summary["chain"]["pending"], 0);
    // On chain: the ten before the damage under their session, the
    // fourteen after it under the new one, in order.
    let config = ChainConfig {
        data_dir: data.clone(),
        ..ChainConfig::default()
    };
    let before: Vec<_> = on_chain(&config, 78).into_values().collect();
    assert_eq!(before, events[..10]);
    let after: Vec<_> = on_chain(&config, moved).into_values().collect();
    assert_eq!(after, events[11..]);
}

#[test]
fn chain_status_reads_the_journal_while_a_game_records() {
    let dir = scratch_dir("chain-status-live");
    let data = dir.to_string_lossy().into_owned();
    let mut child = game()
        .args([
            "--headless",
            "--autoplay",
            "--particles",
            "1000",
            "--frames",
            "1000000",
            "--data-dir",
            &data,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = particle_forge::chain::journal::journal_path(&dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&journal).map_or(true, |m| m.len() <= 8) {
        assert!(
            Instant::now() < deadline,
            "the game journaled nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, stdout, stderr) =
        run(game().args(["chain", "status", "--json", "--data-dir", &data]));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the game is still running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(code, 0, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let sessions = status["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{status}");
    assert!(sessions[0]["recorded"].as_u64().unwrap() >= 1, "{status}");
}

#[test]
fn a_dead_node_or_a_bad_key_leaves_the_game_running_and_the_events_pending() {
    let dead = format!(
        "http://127.0.0.1:{}",
        particle_forge::chain::anvil::free_port().unwrap()
    );
    let dir = scratch_dir("chain-dead");
    let data = dir.to_string_lossy().into_owned();
    let args = [
        "--headless",
        "--autoplay",
        "--particles",
        "1000",
        "--frames",
        "60",
        "--json",
        "--chain",
        "rpc",
        "--rpc-url",
        &dead,
        "--data-dir",
        &data,
        "--set",
        "chain.flush_on_exit_ms=300",
    ];
    let (code, stdout, stderr) = run(game().env("PARTICLE_FORGE_PRIVATE_KEY", DEV_KEY).args(args));
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let chain = &summary["chain"];
    assert!(chain["pending"].as_u64().unwrap() >= 2, "{chain}");
    assert_eq!(chain["confirmed"], 0);
    let error = chain["last_error"].as_str().unwrap();
    assert!(error.contains("cannot reach the node"), "{error}");
    assert!(stderr.contains("cannot reach the node"), "logged too");

    // A malformed key: named, never echoed; events kept.
    let (code, stdout, stderr) = run(game()
        .env("PARTICLE_FORGE_PRIVATE_KEY", "0xnot-a-key-s3cret")
        .args(args));
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let error = summary["chain"]["last_error"].as_str().unwrap();
    assert!(error.contains("PARTICLE_FORGE_PRIVATE_KEY"), "{error}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
    assert!(
        summary["chain"]["pending"].as_u64().unwrap() >= 4,
        "both runs' events wait"
    );

    // A URL that is not one is a flag error.
    let (code, _, stderr) =
        run(game().args(["--headless", "--rpc-url", "nonsense", "--data-dir", &data]));
    assert_eq!(code, 2);
    assert!(stderr.contains("not an http:// URL"), "{stderr}");
}

#[test]
fn bench_chain_quick_reports_every_figure_and_batching_saves_gas() {
    let (v, stdout, stderr) = crate::bench_json("chain", 120);
    crate::assert_positive(
        &v,
        &[
            "events_per_s",
            "gas_per_event",
            "gas_vs_one_tx_per_event",
            "frame_p99_ms_with_chain",
            "frame_p99_ms_without_chain",
            "frame_p99_ms_dead_node",
        ],
    );
    assert_eq!(v["node"], "anvil", "scripts/test installs anvil: {stderr}");
    assert_eq!(v["events"], 5000);
    // Gas is counted, not timed: batching must beat one transaction per
    // event by the factor.
    let ratio = v["gas_vs_one_tx_per_event"].as_f64().unwrap();
    assert!(ratio >= 30.0, "{ratio}");
    assert!(stdout.contains("gas:"), "{stdout}");
}

#[test]
fn a_wrong_chain_id_or_a_missing_contract_is_one_clear_error_and_events_wait() {
    let node = Anvil::start(None, None).unwrap();
    let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
    let cases = [
        (
            ChainConfig {
                chain_id: 5,
                ..rpc_config(&node.url, &scratch_dir("chain-wrong-id"))
            },
            "is chain 31337, but chain.chain_id says 5",
        ),
        (
            ChainConfig {
                contract: "0x00000000000000000000000000000000000000aa".into(),
                ..rpc_config(&node.url, &scratch_dir("chain-no-contract"))
            },
            "there is no contract at 0x00000000000000000000000000000000000000AA",
        ),
        (
            // A key whose account holds no ether.
            ChainConfig {
                signing_key: Some(SecretKey(format!("0x{}", "11".repeat(32)))),
                ..rpc_config(&node.url, &scratch_dir("chain-no-funds"))
            },
            "insufficient funds",
        ),
    ];
    for (config, expected) in cases {
        let (recorder, _) = Recorder::start(&config, pool.clone()).unwrap();
        recorder.record(&stream(3, 0)).unwrap();
        recorder.flush();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            let s = recorder.snapshot();
            if s.last_error.is_some() || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let error = status.last_error.clone().unwrap_or_default();
        assert!(
            error.to_lowercase().contains(&expected.to_lowercase()),
            "{error:?} lacks {expected:?}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
        assert_eq!(status.pending, 3, "the events wait in the journal");
        assert_eq!(status.confirmed, 0);
        drop(recorder);
    }
}

#[test]
fn a_windowed_game_records_its_session_from_start_to_end() {
    let dir = scratch_dir("chain-windowed");
    let mut cmd = std::process::Command::new("xvfb-run");
    cmd.args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(game().get_program())
        .args([
            "--frames",
            "30",
            "--particles",
            "2000",
            "--autoplay",
            "--data-dir",
        ])
        .arg(&dir);
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(game()
        .args(["chain", "history", "--json", "--data-dir"])
        .arg(&dir));
    assert_eq!(code, 0, "{stderr}");
    let kinds: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("\"session_start\""));
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("\"session_end\""),
        "{kinds:?}"
    );
}
