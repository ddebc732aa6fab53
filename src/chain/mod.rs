//! On-chain event recording: the game's notable events go into a durable
//! journal before their frame ends, and from there, batched, onto a chain —
//! never stalling a frame, never losing or duplicating an event.
//!
//! ```text
//! Blockchain set ──append──▶ journal ──batch──▶ sender ──tx──▶ chain
//!   (hands over)          (fsync per batch)   (owns nonce)   (contract checks order)
//! ```
//! - `event`: the events and their packed form; `contract`: the Solidity
//!   contract's bindings; `wallet`: signing.
//! - `record` + `journal`: the append-only outbox with CRCs and recovery.
//! - `backend`: the chain interface; `embedded` (revm, the default) and
//!   `rpc` (any JSON-RPC node) implement it; `client` drives the contract
//!   over either; `sender` is the task that sends; `status` its counters.
//!
//! Exactly once: sequence numbers are dense per session; the contract
//! accepts a batch only at the number it expects next, and the sender asks
//! for that number before every send, so events confirmed before a crash
//! are marked done instead of sent again, and a duplicate send reverts.

pub mod anvil;
pub mod backend;
pub mod client;
pub mod contract;
pub mod embedded;
pub mod event;
pub mod inspect;
pub mod journal;
pub mod record;
pub mod rpc;
pub mod sender;
pub mod status;
pub mod wallet;

pub use backend::{Backend, ChainError};
pub use event::{EventBody, GameEvent, Metric};
pub use status::ChainSnapshot;

use crate::workers::{Capability, Priority, TaskHandle, TaskSpec, WorkerPool};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Which chain records the events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ChainBackend {
    /// An in-process EVM persisted in the data directory.
    #[default]
    Embedded,
    /// A JSON-RPC node at `chain.rpc_url`.
    Rpc,
    /// No recording.
    Off,
}

impl ChainBackend {
    pub fn name(self) -> &'static str {
        match self {
            ChainBackend::Embedded => "embedded",
            ChainBackend::Rpc => "rpc",
            ChainBackend::Off => "off",
        }
    }
}

/// The `[chain]` section of the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// embedded, rpc or off.
    pub backend: ChainBackend,
    /// The node for `backend = "rpc"`.
    pub rpc_url: String,
    /// Journal and embedded chain live here; empty = the platform's data directory.
    pub data_dir: String,
    /// Use the contract at this address; empty = deploy one on first use.
    pub contract: String,
    /// Refuse a node with another chain id; 0 = accept any.
    pub chain_id: u64,
    /// The environment variable holding the RPC signing key.
    pub key_env: String,
    /// A batch is sent when it holds this many events...
    pub batch_events: usize,
    /// ...or this many packed bytes...
    pub batch_bytes: usize,
    /// ...or its oldest event waited this long (milliseconds).
    pub batch_ms: u64,
    /// Blocks a batch needs on top before it counts as confirmed (1 = mined).
    /// More than 1 needs a chain that makes blocks on its own (a testnet,
    /// anvil --block-time): an automining anvil makes one only per
    /// transaction, so the last batch would wait for the next. The embedded
    /// chain is final when mined and ignores this.
    pub confirmations: u64,
    /// Longest wait for one node call, milliseconds.
    pub timeout_ms: u64,
    /// Longest wait for a batch to be confirmed, milliseconds.
    pub confirm_timeout_ms: u64,
    /// At exit, keep sending pending events for up to this long (milliseconds).
    pub flush_on_exit_ms: u64,
    /// A key handed over in code (benchmarks, tests); never read from a
    /// file or a flag, never printed.
    #[serde(skip)]
    pub signing_key: Option<SecretKey>,
}

/// A private key that does not show in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub String);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<hidden>)")
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            backend: ChainBackend::Embedded,
            rpc_url: "http://127.0.0.1:8545".into(),
            data_dir: String::new(),
            contract: String::new(),
            chain_id: 0,
            key_env: "PARTICLE_FORGE_PRIVATE_KEY".into(),
            batch_events: 500,
            batch_bytes: 16 << 10,
            batch_ms: 1000,
            confirmations: 1,
            timeout_ms: 5000,
            confirm_timeout_ms: 30_000,
            flush_on_exit_ms: 3000,
            signing_key: None,
        }
    }
}

impl ChainConfig {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), ChainConfigError> {
        let ranges = [
            (
                "batch_events",
                1,
                event::MAX_BATCH_EVENTS as u64,
                self.batch_events as u64,
            ),
            ("batch_bytes", 64, 100_000, self.batch_bytes as u64),
            ("confirmations", 1, 64, self.confirmations),
        ];
        for (key, low, high, got) in ranges {
            if !(low..=high).contains(&got) {
                return Err(ChainConfigError::OutOfRange {
                    key,
                    low,
                    high,
                    got,
                });
            }
        }
        if self.timeout_ms == 0 || self.confirm_timeout_ms == 0 {
            return Err(ChainConfigError::ZeroTimeout);
        }
        if !self.contract.is_empty() && self.contract.parse::<alloy::primitives::Address>().is_err()
        {
            return Err(ChainConfigError::NotAnAddress(self.contract.clone()));
        }
        if self.backend == ChainBackend::Rpc {
            rpc::parse_url(&self.rpc_url).map_err(ChainConfigError::RpcUrl)?;
        }
        if self.key_env.is_empty() {
            return Err(ChainConfigError::NoKeyEnv);
        }
        Ok(())
    }

    /// The data directory: the configured one, else the platform's.
    pub fn data_dir(&self) -> PathBuf {
        if !self.data_dir.is_empty() {
            return PathBuf::from(&self.data_dir);
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("particle-forge")
    }

    fn client_settings(&self, dir: &Path) -> client::ClientSettings {
        client::ClientSettings {
            contract: self.contract.parse().ok(),
            chain_id: (self.chain_id != 0).then_some(self.chain_id),
            confirmations: self.confirmations,
            data_dir: Some(dir.to_path_buf()),
        }
    }

    fn sender_settings(&self) -> sender::SenderSettings {
        sender::SenderSettings {
            rule: journal::BatchRule {
                max_events: self.batch_events,
                max_bytes: self.batch_bytes,
                max_wait: Duration::from_millis(self.batch_ms),
            },
            confirm_timeout: Duration::from_millis(self.confirm_timeout_ms),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// The contract client for the configured chain. `read_only` opens the
/// embedded chain without writing (for `chain history`) and lets the RPC
/// backend do without a key. Warnings (a cut tail) come back with it.
pub fn open_client(
    config: &ChainConfig,
    read_only: bool,
) -> Result<(client::EventLog, Option<String>), OpenError> {
    open_backend(config, read_only).map(|(log, warning, _)| (log, warning))
}

/// Batches the embedded chain cut from its log with damage, by unclaimed
/// cut file (`EmbeddedChain::take_cut_events`).
type CutEvents = Vec<embedded::CutBlocks>;

/// `open_client`, with the events of the embedded chain's cut blocks.
fn open_backend(
    config: &ChainConfig,
    read_only: bool,
) -> Result<(client::EventLog, Option<String>, CutEvents), OpenError> {
    let dir = config.data_dir();
    let settings = config.client_settings(&dir);
    match config.backend {
        ChainBackend::Off => Err(OpenError::Off),
        ChainBackend::Embedded => {
            let (mut chain, warning) = if read_only {
                (embedded::EmbeddedChain::open_read_only(&dir)?, None)
            } else {
                create_data_dir(&dir)?;
                embedded::EmbeddedChain::open(&dir)?
            };
            let cut = chain.take_cut_events();
            let log =
                client::EventLog::new(Box::new(chain), wallet::Wallet::embedded_dev(), settings);
            Ok((log, warning, cut))
        }
        ChainBackend::Rpc => {
            let rpc =
                rpc::RpcChain::new(&config.rpc_url, Duration::from_millis(config.timeout_ms))?;
            let from_env = std::env::var(&config.key_env);
            let wallet = match (&config.signing_key, from_env) {
                (Some(key), _) => wallet::Wallet::from_hex(&key.0, "the signing key")?,
                (None, Ok(key)) => wallet::Wallet::from_hex(&key, &config.key_env)?,
                (None, Err(_)) if read_only => wallet::Wallet::embedded_dev(),
                (None, Err(_)) => return Err(OpenError::NoKey(config.key_env.clone())),
            };
            Ok((
                client::EventLog::new(Box::new(rpc), wallet, settings),
                None,
                Vec::new(),
            ))
        }
    }
}

/// The game's side of recording: one session, its journal and its sender.
pub struct Recorder {
    shared: Arc<sender::Shared>,
    pool: Arc<WorkerPool>,
    session: u64,
    backend: ChainBackend,
    location: String,
    recovered: u64,
    /// The sender task; it hands its client back when asked to move.
    sender: Option<TaskHandle<Option<client::EventLog>>>,
    /// The pool the sender is leaving, kept until it has left (dropping a
    /// pool waits for its tasks, and the sender is one).
    leaving: Option<Arc<WorkerPool>>,
    settings: sender::SenderSettings,
    flush_on_exit: Duration,
    /// Events the journal has not taken yet, in order: a frame's for the
    /// length of a call, more while it refuses writes.
    held: std::sync::Mutex<Held>,
}

/// Events waiting for the journal, and its last refusal with when to try
/// again.
#[derive(Default)]
struct Held {
    events: Vec<GameEvent>,
    refused: Option<(Arc<io::Error>, Instant)>,
}

/// The most events held in memory while the journal refuses writes: hours
/// of play at the game's event rate, a few tens of MiB.
pub const MAX_HELD: usize = 1_000_000;
/// How often a refused journal write is tried again.
pub const RETRY_EVERY: Duration = Duration::from_millis(250);
/// The most held events written in one frame once the journal takes
/// writes again (about a millisecond of encoding and writing).
pub const WRITE_AT_ONCE: usize = 10_000;

impl Recorder {
    /// Opens the journal (the only failure that stops recording: without it
    /// nothing could be kept) and starts the sender on a Blockchain worker.
    /// Chain problems (no node, a bad key) do not fail here: they show in
    /// the status and the events wait in the journal. Returns the warnings
    /// to log.
    pub fn start(
        config: &ChainConfig,
        pool: Arc<WorkerPool>,
    ) -> Result<(Self, Vec<String>), OpenError> {
        let dir = config.data_dir();
        let opened = journal::Journal::open(&dir)?;
        let mut warnings: Vec<String> = opened.warning.into_iter().collect();
        let mut recovered = opened.recovered as u64;
        let moved = opened.moved;
        let shared = Arc::new(sender::Shared::new(opened.journal));
        let (client, location) = match open_backend(config, false) {
            Ok((mut client, warning, cut)) => {
                warnings.extend(warning);
                let mut moves = moved.into_iter();
                for m in moves.by_ref() {
                    match skip_moved_on_chain(&shared, &mut client, &m) {
                        Ok(note) => warnings.extend(note),
                        Err(e) => {
                            warnings.push(format!(
                                "{e}; the events moved from session {} to session {} wait until that is settled, so none is recorded twice",
                                m.from, m.to
                            ));
                            shared.defer_move(m);
                            break;
                        }
                    }
                }
                // The chain did not answer: the sender asks before it sends.
                for m in moves {
                    shared.defer_move(m);
                }
                for blocks in cut {
                    warnings.extend(record_cut_again(&shared, blocks, &mut recovered));
                }
                let location = client.describe();
                (Some(client), location)
            }
            Err(e) => {
                shared.status.fail(&e.to_string());
                let location = match config.backend {
                    ChainBackend::Rpc => config.rpc_url.clone(),
                    _ => dir.display().to_string(),
                };
                (None, location)
            }
        };
        let settings = config.sender_settings();
        let sender = client.map(|client| spawn_sender(&pool, &shared, client, settings));
        Ok((
            Self {
                shared,
                pool,
                session: new_session_id(),
                backend: config.backend,
                location,
                recovered,
                sender,
                leaving: None,
                settings,
                flush_on_exit: Duration::from_millis(config.flush_on_exit_ms),
                held: std::sync::Mutex::new(Held::default()),
            },
            warnings,
        ))
    }

    pub fn session(&self) -> u64 {
        self.session
    }

    /// Moves the recorder's work to `pool` (the game's workers after a live
    /// change of their count), so the old pool's threads can end: journal
    /// writes go there at once; the sender when it is between two batches
    /// (it may be waiting for a confirmation — the frame never waits for
    /// it). Call every frame with the game's pool; nothing happens while it
    /// is the same.
    pub fn follow_pool(&mut self, pool: &Arc<WorkerPool>) {
        if !Arc::ptr_eq(&self.pool, pool) {
            let old = std::mem::replace(&mut self.pool, pool.clone());
            if self.sender.is_some() {
                // The first pool left is the one the sender runs on.
                self.leaving.get_or_insert(old);
                self.shared.hand_back.store(true, Ordering::Release);
                self.shared.nudge();
            }
        }
        if !self.shared.hand_back.load(Ordering::Acquire)
            || !self.sender.as_ref().is_some_and(|h| h.is_finished())
        {
            return;
        }
        let Some(handle) = self.sender.take() else {
            return;
        };
        self.shared.hand_back.store(false, Ordering::Release);
        match handle.join() {
            Ok(Some(client)) => {
                self.sender = Some(spawn_sender(
                    &self.pool,
                    &self.shared,
                    client,
                    self.settings,
                ));
            }
            Ok(None) => {}
            Err(e) => self
                .shared
                .status
                .fail(&format!("the chain sender failed ({e})")),
        }
        // Its threads end here (they are idle: the sender was its last task).
        self.leaving = None;
    }

    /// Whether the sender runs on `pool` (or there is none).
    pub fn sends_on(&self, pool: &Arc<WorkerPool>) -> bool {
        Arc::ptr_eq(&self.pool, pool) && !self.shared.hand_back.load(Ordering::Acquire)
    }

    /// Hands events over: they are in the journal (written, synced per
    /// batch) when this returns, after any held from earlier frames. Runs
    /// on a Blockchain worker; call it every frame, with no events if
    /// there are none.
    ///
    /// Should the journal refuse a write (a full disk), the events are
    /// held in memory, in order, and the error says how many wait; the
    /// write is tried again every `RETRY_EVERY`, and once the journal
    /// takes writes the held events go in, oldest first, at most
    /// `WRITE_AT_ONCE` a frame so no frame waits on a long write.
    pub fn record(&self, events: &[GameEvent]) -> Result<(), JournalWriteError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_HELD.saturating_sub(held.events.len());
        let dropped = events.len().saturating_sub(room);
        held.events
            .extend_from_slice(&events[..events.len() - dropped]);
        if held.events.is_empty() {
            return Ok(());
        }
        let refused = |held: &Held, source: Arc<io::Error>| JournalWriteError {
            source,
            held: held.events.len(),
            dropped,
        };
        if let Some((source, retry_at)) = &held.refused
            && Instant::now() < *retry_at
        {
            self.shared
                .status
                .hold(held.events.len() as u64, dropped as u64);
            return Err(refused(&held, source.clone()));
        }
        let n = held.events.len().min(WRITE_AT_ONCE);
        let shared = &self.shared;
        let session = self.session;
        let written = self
            .pool
            .install(Capability::Blockchain, Priority::FrameCritical, || {
                shared.journal().append(session, &held.events[..n])
            });
        if let Err(e) = written {
            let source = Arc::new(e);
            held.refused = Some((source.clone(), Instant::now() + RETRY_EVERY));
            self.shared
                .status
                .hold(held.events.len() as u64, dropped as u64);
            self.shared.status.fail(&format!(
                "cannot write the event journal ({source}); the events wait in memory and the write is retried every {} ms",
                RETRY_EVERY.as_millis()
            ));
            return Err(refused(&held, source));
        }
        held.events.drain(..n);
        self.shared.status.recorded(n as u64);
        self.shared
            .status
            .hold(held.events.len() as u64, dropped as u64);
        if held.events.is_empty() && held.refused.take().is_some() {
            // A long backlog's room goes back.
            held.events.shrink_to(1024);
            tracing::info!(
                "chain: the event journal takes writes again; the events held in memory are written"
            );
        }
        self.shared.dirty.store(true, Ordering::Release);
        self.shared.nudge();
        Ok(())
    }

    /// Sends what is pending now instead of waiting for a full batch.
    pub fn flush(&self) {
        self.shared.flush.store(true, Ordering::Release);
        self.shared.nudge();
    }

    pub fn snapshot(&self) -> ChainSnapshot {
        let pending = self.shared.journal().pending() as u64;
        self.shared
            .status
            .snapshot(self.backend.name(), &self.location, pending, self.recovered)
    }

    /// Stops the sender after it sent what is pending (or after the exit
    /// flush time), and returns the final status.
    pub fn finish(mut self) -> ChainSnapshot {
        self.stop();
        self.snapshot()
    }

    fn stop(&mut self) {
        // A move under way is called off: the sender flushes where it is.
        self.shared.hand_back.store(false, Ordering::Release);
        *self
            .shared
            .flush_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + self.flush_on_exit);
        self.shared.stop.store(true, Ordering::Release);
        self.shared.nudge();
        match self.sender.take().map(|h| h.join()) {
            // It handed its client back for a move before the stop: the
            // flush runs here.
            Some(Ok(Some(client))) => {
                sender::run(&self.shared, client, self.settings);
            }
            Some(Err(e)) => self
                .shared
                .status
                .fail(&format!("the chain sender failed ({e})")),
            Some(Ok(None)) | None => {}
        }
        let _ = self.shared.journal().sync();
        // Said last, so it is the status's last word.
        let held = std::mem::take(&mut self.held.lock().unwrap_or_else(|e| e.into_inner()).events);
        if !held.is_empty() {
            self.shared.status.hold(0, held.len() as u64);
            self.shared.status.fail(&format!(
                "{} events could not be written to the event journal before the game closed, and are lost",
                held.len()
            ));
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Events the journal moved to a new session past a lost one (`m`) that
/// the chain holds already under their old session — the damage took their
/// done mark too — are marked done, so they are not recorded twice, and the
/// rest move on to a session numbered from 0 (the contract takes a session
/// only from its start); then the journal notes that the chain was asked.
/// Returns the warning to log, if any, or the error of a chain that could
/// not be asked or a journal that could not take the done marks (the move
/// stays unchecked, in the journal too: ask again before sending).
fn skip_moved_on_chain(
    shared: &sender::Shared,
    client: &mut client::EventLog,
    m: &journal::Moved,
) -> Result<Option<String>, ChainError> {
    let chain_next = client.expected_seq(m.from).map_err(|e| {
        e.reworded(|e| {
            format!(
                "could not ask the chain which events of session {} it holds ({e})",
                m.from
            )
        })
    })?;
    let held = m.on_chain(chain_next);
    let note = if held > 0 {
        Some(mark_moved_held(shared, m, held)?)
    } else {
        None
    };
    let checked = {
        let mut journal = shared.journal();
        journal.mark_checked(m.to).and_then(|()| journal.sync())
    };
    Ok(match checked {
        Ok(()) => note,
        Err(e) => Some(format!(
            "{}the event journal could not note that the chain was asked about session {} ({e}); the next start asks again",
            note.map(|n| format!("{n}; ")).unwrap_or_default(),
            m.from
        )),
    })
}

/// Marks done the first `held` events moved to `m.to` (the chain has them
/// under `m.from`) and moves the rest to a session of their own; returns
/// the warning to log, or the error of a journal that could not take the
/// done marks (the move is then asked about again: nothing goes twice).
fn mark_moved_held(
    shared: &sender::Shared,
    m: &journal::Moved,
    held: u64,
) -> Result<String, ChainError> {
    let (from, to) = (m.from, m.to);
    let on = format!(
        "the chain holds {held} of the events moved from session {from} to session {to} already (the damage took their done mark too)"
    );
    let marked = {
        let mut journal = shared.journal();
        journal.mark_done(to, held).and_then(|_| journal.sync())
    };
    if let Err(e) = marked {
        return Err(ChainError::Other(format!(
            "{on}, but the event journal could not mark them done ({e}); the events of session {to} wait until it can"
        )));
    }
    Ok(match sender::move_pending_durably(shared, to) {
        Ok(None) => format!("{on}: they are not recorded again"),
        Ok(Some((id, rest))) => format!(
            "{on}: they are not recorded again, and the other {rest} are recorded as session {id}"
        ),
        Err(e) => format!(
            "{on}: they are not recorded again; the others wait, the event journal could not be rewritten ({e})"
        ),
    })
}

/// Starts the sender on one of `pool`'s Blockchain workers.
fn spawn_sender(
    pool: &WorkerPool,
    shared: &Arc<sender::Shared>,
    client: client::EventLog,
    settings: sender::SenderSettings,
) -> TaskHandle<Option<client::EventLog>> {
    let shared = shared.clone();
    pool.spawn(
        TaskSpec::new("chain.sender", Capability::Blockchain).priority(Priority::Background),
        move || sender::run(&shared, client, settings),
    )
}

/// Events confirmed once, then cut from the embedded chain with damage
/// before them, go on chain again under new sessions (the chain's state no
/// longer has their sessions' earlier events); those the journal still
/// holds (a crash before it marked them done) go on from there. Once they
/// are in the journal, synced, the cut file is claimed. Each new session
/// is named by the cut file and the old session (`recovery_session`), so
/// after a crash between the journal's sync and the claim the next start
/// finds them in the journal and does not add them twice. Returns the
/// warnings to log.
fn record_cut_again(
    shared: &sender::Shared,
    blocks: embedded::CutBlocks,
    recovered: &mut u64,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let file = blocks.file;
    let lost = lost_from_chain(&shared.journal(), blocks.batches);
    let mut all_safe = true;
    for (session, events) in lost {
        let n = events.len();
        let id = recovery_session(&file, session);
        let mut journal = shared.journal();
        if journal.sessions().iter().any(|s| s.0 == id) {
            warnings.push(format!(
                "the embedded chain's blocks cut with the damage held {n} events of session {session}; they were already back in the event journal as session {id}"
            ));
            continue;
        }
        let again = journal.append(id, &events).and_then(|_| journal.sync());
        warnings.push(match again {
            Ok(()) => {
                *recovered += n as u64;
                format!(
                    "the embedded chain's blocks cut with the damage held {n} events of session {session}; they are recorded again as session {id}"
                )
            }
            Err(e) => {
                all_safe = false;
                format!(
                    "the embedded chain's blocks cut with the damage held {n} events of session {session}, which could not be written to the event journal ({e}); they stay in {} and are tried again at the next start",
                    file.display()
                )
            }
        });
    }
    if all_safe && let Err(e) = record::claim_cut(&file) {
        warnings.push(format!(
            "{} could not be marked as recovered ({e}); the next start checks its events against the event journal again",
            file.display()
        ));
    }
    warnings
}

/// The session that the events of `session` cut with `file` are recorded
/// again under: the same for the same two at every start (FNV-1a, stable
/// across builds), never 0.
fn recovery_session(file: &Path, session: u64) -> u64 {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let bytes = name.unwrap_or_default().into_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes.iter().chain(&session.to_le_bytes()) {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// The events of `cut` batches that only the chain had (the journal saw
/// them confirmed), a session's joined, in order.
fn lost_from_chain(
    journal: &journal::Journal,
    cut: Vec<embedded::CutBatch>,
) -> Vec<(u64, Vec<GameEvent>)> {
    let confirmed: std::collections::HashMap<u64, u64> = journal
        .sessions()
        .into_iter()
        .map(|(id, done, _)| (id, done))
        .collect();
    let mut lost: Vec<(u64, Vec<GameEvent>)> = Vec::new();
    for batch in cut {
        let below = confirmed.get(&batch.session).copied().unwrap_or(u64::MAX);
        let only_on_chain = batch
            .events
            .into_iter()
            .zip(batch.first_seq..)
            .filter(|&(_, seq)| seq < below)
            .map(|(e, _)| e);
        match lost.last_mut() {
            Some((s, run)) if *s == batch.session => run.extend(only_on_chain),
            _ => lost.push((batch.session, only_on_chain.collect())),
        }
    }
    lost.retain(|(_, events)| !events.is_empty());
    lost
}

/// Creates the data directory (and its parents) if missing.
pub(crate) fn create_data_dir(dir: &Path) -> Result<(), OpenError> {
    if dir.exists() && !dir.is_dir() {
        return Err(OpenError::DataDirIsFile(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(|source| OpenError::DataDir {
        dir: dir.to_path_buf(),
        source,
    })
}

/// A `[chain]` value that cannot be.
#[derive(Debug, thiserror::Error)]
pub enum ChainConfigError {
    #[error("chain.{key} must be between {low} and {high}, got {got}")]
    OutOfRange {
        key: &'static str,
        low: u64,
        high: u64,
        got: u64,
    },
    #[error("chain.timeout_ms and chain.confirm_timeout_ms must be above 0")]
    ZeroTimeout,
    #[error(
        "chain.contract {0:?} is not an address (0x and 40 hex digits); fix it or leave it empty to deploy one"
    )]
    NotAnAddress(String),
    #[error(transparent)]
    RpcUrl(OpenError),
    #[error("chain.key_env must name an environment variable")]
    NoKeyEnv,
}

/// The journal could not take a frame's events (a full or failing disk):
/// they, and those of earlier frames it refused, wait in memory.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the event journal ({source}); {held} events wait in memory{}",
    if *dropped > 0 { format!(" and {dropped} more were lost (the memory's limit)") } else { String::new() }
)]
pub struct JournalWriteError {
    pub source: Arc<io::Error>,
    /// Events waiting in memory for the next try.
    pub held: usize,
    /// Events of this call that did not fit under `MAX_HELD`.
    pub dropped: usize,
}

/// Why the chain side could not open its files or its node client (or,
/// for `inspect`, read the chain), worded for the player: each message
/// says what to do. Node calls that fail once running are `ChainError`s.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the chain is off (--chain off); pick --chain embedded or --chain rpc")]
    Off,
    #[error("the data directory {} is a file, not a folder; pick another with --data-dir", .0.display())]
    DataDirIsFile(PathBuf),
    #[error("cannot create the data directory {} ({source}); pick another with --data-dir", dir.display())]
    DataDir { dir: PathBuf, source: io::Error },
    #[error("another Particle Forge is recording into {}; close it or pass another --data-dir", .0.display())]
    Locked(PathBuf),
    #[error("cannot create the lock file {} ({source})", path.display())]
    LockFile { path: PathBuf, source: io::Error },
    #[error("cannot lock {} ({source}); pass another --data-dir", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot open the event journal {} ({source}); check its permissions or pick another --data-dir", path.display())]
    Journal { path: PathBuf, source: io::Error },
    #[error("cannot compact the event journal {} ({source}); check the disk", path.display())]
    Compact { path: PathBuf, source: io::Error },
    #[error("there is no event journal in {}; run the game once or pass the right --data-dir", .0.display())]
    NoJournal(PathBuf),
    #[error("cannot open the embedded chain {} ({source}); check its permissions or pick another --data-dir", path.display())]
    Embedded { path: PathBuf, source: io::Error },
    #[error("cannot read the embedded chain {} ({source}); is --data-dir right?", path.display())]
    EmbeddedRead { path: PathBuf, source: io::Error },
    #[error("the embedded chain's block {0} is malformed")]
    MalformedBlock(u64),
    #[error(
        "replaying the embedded chain's block {number} failed ({source}); move the data directory aside to start a new chain"
    )]
    Replay { number: u64, source: ChainError },
    #[error(
        "set the environment variable {0} to the hex private key of the account that pays for gas (keys are never taken from the command line)"
    )]
    NoKey(String),
    #[error(
        "{0} does not hold a valid private key (expected 64 hex digits); set it to the key of the account that pays for gas"
    )]
    BadKey(String),
    #[error("chain.rpc_url {0:?} is not an http:// URL; give one like http://127.0.0.1:8545")]
    NotAUrl(String),
    #[error(
        "chain.rpc_url {0}: this build speaks plain http only (no TLS library); use an http:// node, or a local http proxy in front of the https one"
    )]
    Https(String),
    #[error("chain.rpc_url {url}: scheme {scheme}:// is not supported; use http://")]
    Scheme { url: String, scheme: String },
    #[error("cannot start the RPC client's runtime ({0})")]
    Runtime(io::Error),
    /// Reading the chain (`chain history`) failed.
    #[error(transparent)]
    Node(#[from] ChainError),
}

/// A session id no earlier run used: the clock, the process and a count
/// of the ids this process made (two in one clock tick differ), mixed (53
/// bits, so JSON readers that use doubles keep it exact).
fn new_session_id() -> u64 {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut z = nanos.wrapping_add(made << 40) ^ ((std::process::id() as u64) << 32);
    // splitmix64's finaliser.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::record::full_disk;

    fn recorder_in(name: &str) -> (Recorder, ChainConfig, PathBuf) {
        let dir = std::env::temp_dir().join(format!("pf-chain-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = ChainConfig {
            data_dir: dir.display().to_string(),
            batch_ms: 20,
            ..ChainConfig::default()
        };
        let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
        let (recorder, _) = Recorder::start(&config, pool).unwrap();
        (recorder, config, dir)
    }

    fn blasts(n: u64) -> Vec<GameEvent> {
        (0..n)
            .map(|i| {
                GameEvent::new(
                    i,
                    EventBody::Explosion {
                        x: i as u32,
                        y: 1,
                        hit: 2,
                    },
                )
            })
            .collect()
    }

    /// Damage in the journal in `dir` takes the record of `session`'s
    /// event 3 and every done mark.
    fn damage_event_3_and_done_marks(dir: &Path, session: u64) {
        let event_3 = |b: &[u8]| {
            b[0] == 1 && b[1..9] == session.to_le_bytes() && b[9..17] == 3u64.to_le_bytes()
        };
        let done_mark = |b: &[u8]| b[0] == 2;
        let journal = journal::journal_path(dir);
        assert!(record::damage_records(&journal, |b| event_3(b) || done_mark(b)) >= 2);
    }

    /// Ten events confirmed on the embedded chain, then the journal's
    /// record of event 3 and every done mark damaged: (config, data dir,
    /// session).
    fn ten_confirmed_then_event_3_lost(name: &str) -> (ChainConfig, PathBuf, u64) {
        let (recorder, config, dir) = recorder_in(name);
        recorder.record(&blasts(10)).unwrap();
        recorder.flush();
        let session = recorder.session();
        let status = recorder.finish();
        assert_eq!((status.confirmed, status.pending), (10, 0), "{status:?}");
        damage_event_3_and_done_marks(&dir, session);
        (config, dir, session)
    }

    /// The chain holds `blasts(n)` once each, all under `session`.
    fn each_blast_once_under(config: &ChainConfig, session: u64, n: u32) {
        let (mut log, _) = open_client(config, true).unwrap();
        let on_chain: Vec<(u64, u32)> = log
            .history(None)
            .unwrap()
            .into_iter()
            .flat_map(|b| {
                let s = b.session;
                b.events.into_iter().map(move |e| match e.body {
                    EventBody::Explosion { x, .. } => (s, x),
                    _ => (s, u32::MAX),
                })
            })
            .collect();
        let expected: Vec<(u64, u32)> = (0..n).map(|x| (session, x)).collect();
        assert_eq!(on_chain, expected, "every event once, under its session");
    }

    #[test]
    fn events_confirmed_after_a_lost_one_are_not_recorded_twice() {
        // Ten events confirmed on chain; then damage takes the journal's
        // record of event 3 and every done mark, so the journal sees 0..2
        // pending, 3 lost and 4..9 pending after it (moved to a new
        // session). The chain holds all ten: nothing may go on twice.
        let (config, dir, session) = ten_confirmed_then_event_3_lost("double-damage");
        let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
        let (recorder, warnings) = Recorder::start(&config, pool).unwrap();
        let all = warnings.join("; ");
        assert!(all.contains("1 event of session"), "{all}");
        assert!(
            all.contains("the chain holds 6 of the events moved from session"),
            "{all}"
        );
        recorder.flush();
        let status = recorder.finish();
        assert_eq!(status.pending, 0, "{status:?}");
        each_blast_once_under(&config, session, 10);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn moved_events_wait_for_a_journal_that_cannot_mark_them_done() {
        // Ten events confirmed; damage moves 4..9 to a new session, and the
        // chain holds them all. When the chain is asked, the journal's disk
        // is full: the done marks cannot be written, so the move stays
        // unchecked and its events pending (not sent as if new); with room
        // again, the next start asks again and marks them: every event once.
        let (config, dir, session) = ten_confirmed_then_event_3_lost("moved-full-disk");
        let opened = journal::Journal::open(&dir).unwrap();
        let [m] = opened.moved.as_slice() else {
            panic!("one move expected: {:?}", opened.moved);
        };
        let m = m.clone();
        let shared = sender::Shared::new(opened.journal);
        let (mut client, _) = open_client(&config, false).unwrap();
        let path = journal::journal_path(&dir);
        full_disk::set(&path, true);
        let e = skip_moved_on_chain(&shared, &mut client, &m).unwrap_err();
        full_disk::set(&path, false);
        assert!(e.to_string().contains("could not mark them done"), "{e}");
        assert_eq!(shared.journal().pending_of(m.to).len(), 6);
        drop((shared, client));
        let said = start_and_finish(&config);
        assert!(
            said.contains("the chain holds 6 of the events moved from session"),
            "{said}"
        );
        each_blast_once_under(&config, session, 10);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn moved_events_wait_for_a_chain_that_cannot_be_asked_at_start() {
        // Ten events confirmed on a real anvil (its chain kept in a state
        // file); then damage takes event 3's record and every done mark, so
        // the journal moves 4..9 to a new session, and the node is down at
        // the next two starts. The chain is not asked, so the move stays in
        // the journal and nothing is sent; back up (same state) during the
        // second run, the sender asks before it sends: every event once.
        let dir = std::env::temp_dir().join(format!("pf-chain-{}-moved-down", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("anvil-state.json");
        let node = anvil::Anvil::start(None, Some(&state)).unwrap();
        let port = node.port;
        let config = ChainConfig {
            backend: ChainBackend::Rpc,
            rpc_url: node.url.clone(),
            data_dir: dir.join("data").display().to_string(),
            signing_key: Some(SecretKey(anvil::DEV_KEY.into())),
            batch_ms: 20,
            timeout_ms: 2000,
            flush_on_exit_ms: 200,
            ..ChainConfig::default()
        };
        let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
        let wait = |recorder: &Recorder, what: &str, done: &dyn Fn(&ChainSnapshot) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done(&recorder.snapshot()) {
                assert!(
                    Instant::now() < deadline,
                    "{what}: {:?}",
                    recorder.snapshot()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let (recorder, _) = Recorder::start(&config, pool.clone()).unwrap();
        recorder.record(&blasts(10)).unwrap();
        recorder.flush();
        wait(&recorder, "confirmed", &|s| s.confirmed == 10);
        let session = recorder.session();
        drop(recorder.finish());
        node.stop();
        damage_event_3_and_done_marks(&config.data_dir(), session);

        // Down for a whole run: nothing sent, the move kept.
        let (recorder, warnings) = Recorder::start(&config, pool.clone()).unwrap();
        let all = warnings.join("; ");
        assert!(all.contains("1 event of session"), "{all}");
        assert!(
            all.contains("could not ask the chain which events"),
            "{all}"
        );
        let status = recorder.finish();
        assert_eq!((status.confirmed, status.pending), (0, 9), "{status:?}");
        // Down at the next start too: the move, read back from the
        // journal, still waits; then the node comes back mid-run.
        let (recorder, warnings) = Recorder::start(&config, pool).unwrap();
        let all = warnings.join("; ");
        assert!(
            all.contains("could not ask the chain which events"),
            "{all}"
        );
        let node = anvil::Anvil::start(Some(port), Some(&state)).unwrap();
        recorder.flush();
        wait(&recorder, "sent", &|s| s.pending == 0);
        drop(recorder.finish());
        each_blast_once_under(&config, session, 10);
        node.stop();
        // Asked: no later start asks again.
        assert!(
            journal::Journal::open(&config.data_dir())
                .unwrap()
                .moved
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_recorder_follows_the_game_to_a_new_worker_pool() {
        let (mut recorder, _config, dir) = recorder_in("new-pool");
        let events = blasts(20);
        recorder.record(&events[..10]).unwrap();
        let old = recorder.pool.clone();
        let new = Arc::new(WorkerPool::new(1, 2).unwrap());
        // The move never waits: the sender comes over between two batches.
        let started = Instant::now();
        loop {
            let call = Instant::now();
            recorder.follow_pool(&new);
            assert!(
                call.elapsed() < Duration::from_millis(50),
                "a frame waited for the move"
            );
            if recorder.sends_on(&new) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the sender did not move"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // Nothing of the recorder holds the old pool: its threads end with
        // this last handle.
        assert_eq!(Arc::strong_count(&old), 1);
        let tasks =
            |pool: &WorkerPool| -> u64 { pool.metrics().workers.iter().map(|w| w.tasks_run).sum() };
        let old_tasks = tasks(&old);
        let new_tasks = tasks(&new);
        recorder.record(&events[10..]).unwrap();
        assert!(
            tasks(&new) > new_tasks,
            "the journal write ran on the new pool"
        );
        assert_eq!(tasks(&old), old_tasks, "the old pool ran nothing more");
        // The sender goes on from there: every event reaches the chain.
        recorder.flush();
        let status = recorder.finish();
        assert_eq!(
            (status.recorded, status.confirmed, status.pending),
            (20, 20, 0),
            "{status:?}"
        );
        assert_eq!(status.last_error, None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_stop_during_a_move_still_sends_what_is_pending() {
        let (mut recorder, _config, dir) = recorder_in("stop-moving");
        recorder.record(&blasts(5)).unwrap();
        // Asked to move, then stopped with the client handed back and the
        // move not completed (the next frame never comes): the stop flushes
        // with the handed-back client.
        recorder.follow_pool(&Arc::new(WorkerPool::new(1, 2).unwrap()));
        let started = Instant::now();
        while !recorder.sender.as_ref().is_some_and(|h| h.is_finished()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the sender did not hand back"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let status = recorder.finish();
        assert_eq!(
            (status.recorded, status.confirmed, status.pending),
            (5, 5, 0),
            "{status:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn events_a_full_disk_refuses_wait_in_memory_and_go_out_in_order() {
        let (recorder, config, dir) = recorder_in("full-disk");
        // Only the journal's writes fail: the sender, which writes the
        // embedded chain's blocks beside it, goes on unhindered.
        let journal = journal::journal_path(&dir);
        let events = blasts(30);
        recorder.record(&events[..10]).unwrap();
        full_disk::set(&journal, true);
        let e = recorder.record(&events[10..20]).unwrap_err();
        assert_eq!((e.held, e.dropped), (10, 0));
        assert!(e.to_string().contains("10 events wait in memory"), "{e}");
        // A frame with no events of its own tries again, and still waits.
        assert_eq!(recorder.record(&[]).unwrap_err().held, 10);
        let status = recorder.snapshot();
        assert_eq!((status.held, status.lost), (10, 0));
        // The disk has room again: at the next try the held events go
        // first.
        full_disk::set(&journal, false);
        std::thread::sleep(RETRY_EVERY);
        recorder.record(&events[20..]).unwrap();
        assert_eq!(recorder.snapshot().held, 0);
        recorder.flush();
        let session = recorder.session();
        let status = recorder.finish();
        assert_eq!((status.recorded, status.pending), (30, 0), "{status:?}");
        let (mut log, _) = open_client(&config, true).unwrap();
        let back: Vec<GameEvent> = log
            .history(Some(session))
            .unwrap()
            .into_iter()
            .flat_map(|b| b.events)
            .collect();
        assert_eq!(back, events);
    }

    #[test]
    fn a_long_backlog_goes_in_a_bounded_number_a_frame() {
        let (recorder, _, dir) = recorder_in("backlog");
        let journal = journal::journal_path(&dir);
        full_disk::set(&journal, true);
        let n = 2 * WRITE_AT_ONCE + WRITE_AT_ONCE / 2;
        assert!(recorder.record(&blasts(n as u64)).is_err());
        full_disk::set(&journal, false);
        std::thread::sleep(RETRY_EVERY);
        let mut left = Vec::new();
        for _ in 0..4 {
            recorder.record(&[]).unwrap();
            left.push(recorder.snapshot().held as usize);
        }
        let expect = [n - WRITE_AT_ONCE, n - 2 * WRITE_AT_ONCE, 0, 0];
        assert_eq!(left, expect);
        assert_eq!(recorder.snapshot().recorded, n as u64);
    }

    /// Each record's start in a record file.
    fn record_starts(path: &Path) -> Vec<usize> {
        let bytes = std::fs::read(path).unwrap();
        let mut starts = Vec::new();
        let mut at = 8;
        while at + 8 <= bytes.len() {
            starts.push(at);
            at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        }
        starts
    }

    /// Three batches of five events confirmed on the embedded chain, then a
    /// bit flipped in the second batch's block: (config, dir, the session,
    /// the events).
    fn damaged_block_log(name: &str) -> (ChainConfig, PathBuf, u64, Vec<GameEvent>) {
        let (recorder, config, dir) = recorder_in(name);
        let events = blasts(15);
        for (i, batch) in events.chunks(5).enumerate() {
            recorder.record(batch).unwrap();
            recorder.flush();
            let deadline = Instant::now() + Duration::from_secs(30);
            while recorder.snapshot().confirmed < 5 * (i as u64 + 1) {
                assert!(Instant::now() < deadline, "{:?}", recorder.snapshot());
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let session = recorder.session();
        drop(recorder.finish());
        // Blocks: the contract, then one batch each. A bad disk flips a bit
        // in the second batch's block.
        let log = dir.join("embedded-chain.log");
        let starts = record_starts(&log);
        assert_eq!(starts.len(), 4);
        let mut bytes = std::fs::read(&log).unwrap();
        bytes[starts[2] + 30] ^= 0x08;
        std::fs::write(&log, &bytes).unwrap();
        (config, dir, session, events)
    }

    /// Starts a recorder, sends all it holds, stops; returns its warnings.
    fn start_and_finish(config: &ChainConfig) -> String {
        let pool = Arc::new(WorkerPool::new(1, 2).unwrap());
        let (recorder, warnings) = Recorder::start(config, pool).unwrap();
        recorder.flush();
        let status = recorder.finish();
        assert_eq!(status.pending, 0, "{status:?}");
        warnings.join("; ")
    }

    /// The events on the chain in `dir`, by session.
    fn on_chain(config: &ChainConfig) -> std::collections::BTreeMap<u64, Vec<GameEvent>> {
        let (mut log, _) = open_client(config, true).unwrap();
        let mut by_session: std::collections::BTreeMap<u64, Vec<GameEvent>> = Default::default();
        for batch in log.history(None).unwrap() {
            by_session
                .entry(batch.session)
                .or_default()
                .extend(batch.events);
        }
        by_session
    }

    /// The chain after `damaged_block_log`'s recovery: the first batch
    /// under its session; the damaged block's lost; the one after it on
    /// chain again, once, under a session of its own.
    fn chain_holds_the_recovered_batch_once(
        config: &ChainConfig,
        session: u64,
        events: &[GameEvent],
    ) {
        let mut by_session = on_chain(config);
        assert_eq!(by_session.remove(&session), Some(events[..5].to_vec()));
        let rest: Vec<Vec<GameEvent>> = by_session.into_values().collect();
        assert_eq!(rest, vec![events[10..].to_vec()]);
    }

    #[test]
    fn batches_cut_from_a_damaged_block_log_are_recorded_again() {
        let (config, dir, session, events) = damaged_block_log("cut-blocks");
        let said = start_and_finish(&config);
        assert!(said.contains("cut a torn or corrupt tail"), "{said}");
        assert!(
            said.contains(&format!(
                "held 5 events of session {session}; they are recorded again as session"
            )),
            "{said}"
        );
        chain_holds_the_recovered_batch_once(&config, session, &events);
        // Claimed: the next start has nothing to recover.
        let log = dir.join("embedded-chain.log");
        assert!(record::unclaimed_cuts(&log).unwrap().is_empty());
        let said = start_and_finish(&config);
        assert!(!said.contains("cut with the damage"), "{said}");
        chain_holds_the_recovered_batch_once(&config, session, &events);
    }

    #[test]
    fn cut_batches_survive_a_crash_before_the_journal_has_them_and_after() {
        let (config, dir, session, events) = damaged_block_log("cut-crash");
        let log = dir.join("embedded-chain.log");
        // A crash right after the block log was cut: the chain opened (and
        // cut), the recorder never got its batches.
        let (chain, warning) = embedded::EmbeddedChain::open(&dir).unwrap();
        assert!(warning.unwrap().contains("cut a torn or corrupt tail"));
        drop(chain);
        let unclaimed = record::unclaimed_cuts(&log).unwrap();
        assert_eq!(unclaimed.len(), 1);
        // The next start finds them in the unclaimed cut.
        let said = start_and_finish(&config);
        assert!(
            said.contains(&format!(
                "held 5 events of session {session}; they are recorded again as session"
            )),
            "{said}"
        );
        chain_holds_the_recovered_batch_once(&config, session, &events);
        // A crash after the journal's sync but before the claim: the cut
        // is unclaimed again, its events already in the journal (and on
        // chain). The next start must not record them twice.
        let claimed = unclaimed[0].0.with_extension("");
        assert!(claimed.exists() && !unclaimed[0].0.exists());
        std::fs::rename(&claimed, &unclaimed[0].0).unwrap();
        let said = start_and_finish(&config);
        assert!(said.contains("already back in the event journal"), "{said}");
        chain_holds_the_recovered_batch_once(&config, session, &events);
        assert!(record::unclaimed_cuts(&log).unwrap().is_empty());
        // A cut left unclaimed through a long run whose journal let the
        // recovered session go (here: no journal at all): its events go
        // back under the same session, which the chain already holds, so
        // they are marked done, not sent again.
        std::fs::rename(&claimed, &unclaimed[0].0).unwrap();
        std::fs::remove_file(journal::journal_path(&dir)).unwrap();
        let said = start_and_finish(&config);
        assert!(
            said.contains("they are recorded again as session"),
            "{said}"
        );
        chain_holds_the_recovered_batch_once(&config, session, &events);
    }

    #[test]
    fn events_still_refused_at_exit_are_counted_as_lost() {
        let (recorder, _, dir) = recorder_in("full-at-exit");
        let journal = journal::journal_path(&dir);
        full_disk::set(&journal, true);
        assert!(recorder.record(&blasts(4)).is_err());
        let status = recorder.finish();
        full_disk::set(&journal, false);
        assert_eq!((status.held, status.lost), (0, 4));
        let said = status.last_error.unwrap();
        assert!(said.starts_with("4 events could not be written"), "{said}");
    }
}
