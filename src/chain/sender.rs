//! The sender: the one task that talks to the chain. It owns the client
//! (and so the nonce), takes the oldest ready batch from the journal,
//! makes the journal durable, sends, waits for confirmations and only then
//! marks the batch done. Every failure is a line in the status and a retry
//! with backoff; events stay pending in the journal meanwhile.

use super::backend::ChainError;
use super::client::EventLog;
use super::journal::{Batch, BatchRule, Compaction, Journal, Moved};
use super::record;
use super::status::ChainStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the game side and the sender share.
pub struct Shared {
    pub journal: Mutex<Journal>,
    pub status: ChainStatus,
    /// Set to end the sender (after flushing, until `flush_deadline`).
    pub stop: AtomicBool,
    /// Set to have the sender hand its client back between batches, so it
    /// can go on on another worker pool (`Recorder::follow_pool`).
    pub hand_back: AtomicBool,
    /// Send what is pending now, whatever the batch rule says.
    pub flush: AtomicBool,
    /// Events were appended since the journal was last synced.
    pub dirty: AtomicBool,
    pub flush_deadline: Mutex<Option<Instant>>,
    /// Moves the chain could not be asked about at start
    /// (`skip_moved_on_chain`): asked before any batch is sent.
    deferred_moves: Mutex<Vec<Moved>>,
    wake: Condvar,
    woken: Mutex<bool>,
}

impl Shared {
    pub fn new(journal: Journal) -> Self {
        Self {
            journal: Mutex::new(journal),
            status: ChainStatus::default(),
            stop: AtomicBool::new(false),
            hand_back: AtomicBool::new(false),
            flush: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            flush_deadline: Mutex::new(None),
            deferred_moves: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            woken: Mutex::new(false),
        }
    }

    pub fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves a move for the sender to ask the chain about before it sends
    /// anything (the chain did not answer at start).
    pub fn defer_move(&self, m: Moved) {
        self.deferred_moves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(m);
    }

    /// Wakes the sender (new events, a flush, a stop).
    pub fn nudge(&self) {
        *self.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Sleeps up to `d`, or until nudged.
    fn doze(&self, d: Duration) {
        let guard = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) = self
            .wake
            .wait_timeout_while(guard, d, |woken| !*woken)
            .unwrap_or_else(|e| e.into_inner());
        *guard = false;
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// The sender's timing.
#[derive(Debug, Clone, Copy)]
pub struct SenderSettings {
    pub rule: BatchRule,
    /// How long one batch may take to be mined and confirmed.
    pub confirm_timeout: Duration,
    /// First and longest pause between retries.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Runs until `shared.stop` is set and either nothing is pending or the
/// flush deadline passed (then returns `None`), or until `shared.hand_back`
/// is set while not stopping (then returns the client, between two batches,
/// for a sender on another pool to go on with).
pub fn run(shared: &Shared, mut log: EventLog, settings: SenderSettings) -> Option<EventLog> {
    let mut backoff = settings.retry_min;
    loop {
        if !shared.stopping() && shared.hand_back.load(Ordering::Acquire) {
            return Some(log);
        }
        // While stopping, every pause ends at the flush deadline.
        let mut cap = Duration::MAX;
        if shared.stopping() {
            let deadline = *shared
                .flush_deadline
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let left = deadline.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() || shared.journal().pending() == 0 {
                return None;
            }
            cap = left;
        }
        // Appended events reach the disk within one turn of this loop even
        // while nothing can be sent (a dead node), not only before a send.
        if shared.dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = sync_journal(shared)
        {
            shared.status.fail(&e.to_string());
        }
        match step(shared, &mut log, &settings) {
            Ok(Progress::Sent) => backoff = settings.retry_min,
            Ok(Progress::Idle) => shared.doze(
                settings
                    .rule
                    .max_wait
                    .min(Duration::from_millis(100))
                    .min(cap),
            ),
            Err(e) => {
                log.forget_nonce();
                shared.status.fail(&e.to_string());
                shared.doze(backoff.min(cap));
                backoff = (backoff * 2).min(settings.retry_max);
            }
        }
    }
}

/// Asks the chain about the moves it could not be asked about at start,
/// oldest first, before any batch goes: a moved session's events must not
/// be sent before the chain has said which of them it holds.
fn ask_deferred_moves(shared: &Shared, log: &mut EventLog) -> Result<(), ChainError> {
    let deferred = || {
        shared
            .deferred_moves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    };
    loop {
        let Some(m) = deferred().first().cloned() else {
            return Ok(());
        };
        if let Some(note) = super::skip_moved_on_chain(shared, log, &m)? {
            tracing::warn!("chain: {note}");
        }
        deferred().retain(|d| d.to != m.to);
    }
}

enum Progress {
    Sent,
    Idle,
}

fn step(
    shared: &Shared,
    log: &mut EventLog,
    settings: &SenderSettings,
) -> Result<Progress, ChainError> {
    let address = log.prepare()?;
    shared.status.set_contract(&address.to_string());
    ask_deferred_moves(shared, log)?;
    let flush = shared.flush.load(Ordering::Acquire) || shared.stopping();
    let batch = shared.journal().next_batch(&settings.rule, flush);
    let Some(batch) = batch else {
        return Ok(Progress::Idle);
    };
    // Resync with the chain: a batch confirmed just before a crash (or a
    // retry that was mined after all) is already there.
    let expected = log.expected_seq(batch.session)?;
    if expected > batch.first_seq {
        let upto = expected.min(batch.end_seq()).max(batch.first_seq);
        mark_done(shared, &batch, upto, 0)?;
        return Ok(Progress::Sent);
    }
    if expected < batch.first_seq {
        return resume_elsewhere(shared, &batch, expected);
    }
    // Durable before it is on chain.
    shared.dirty.store(false, Ordering::Release);
    sync_journal(shared)?;
    let hash = log.submit(&batch)?;
    shared
        .status
        .sent(batch.events.len() as u64, &hash.to_string());
    match log.wait_confirmed(hash, settings.confirm_timeout)? {
        Some(r) if r.success => {
            mark_done(shared, &batch, batch.end_seq(), r.gas_used)?;
            Ok(Progress::Sent)
        }
        Some(r) => Err(ChainError::Rejected(format!(
            "batch {}..{} of session {} reverted: {}",
            batch.first_seq,
            batch.end_seq(),
            batch.session,
            r.revert
                .map(|o| super::contract::describe_revert(&o))
                .unwrap_or_else(|| "the contract refused it".into())
        ))),
        None => Err(ChainError::Unreachable(format!(
            "the batch's transaction {hash} was not confirmed within {:.0} s; it will be checked and resent",
            settings.confirm_timeout.as_secs_f32()
        ))),
    }
}

/// The chain holds fewer of the batch's session's events than the journal
/// saw confirmed (the contract was replaced or the chain reset: a node
/// restarted without its state): that numbering can never go on, so the
/// session's pending events move to a new session, written down before any
/// of them is sent. Without this the session would block every later one.
fn resume_elsewhere(shared: &Shared, batch: &Batch, expected: u64) -> Result<Progress, ChainError> {
    let moved = move_pending_durably(shared, batch.session).map_err(|e| {
        ChainError::Other(format!(
            "cannot write the event journal ({e}); check the disk"
        ))
    })?;
    let Some((id, pending)) = moved else {
        return Ok(Progress::Idle);
    };
    let message = format!(
        "the chain holds session {}'s events only up to {expected}, but the journal saw them confirmed up to {} (the contract was replaced or the chain reset); its {pending} pending events are recorded as session {id}",
        batch.session, batch.first_seq
    );
    // Logged there, and shown until the next confirmation.
    shared.status.fail(&message);
    Ok(Progress::Sent)
}

/// Moves `session`'s pending events to a new session, numbered from 0, and
/// writes the move down (a compaction) before any of them can be sent; if
/// the journal cannot be rewritten, the move is undone. Returns the new
/// session and how many events it holds (none if nothing was pending).
pub(super) fn move_pending_durably(
    shared: &Shared,
    session: u64,
) -> std::io::Result<Option<(u64, usize)>> {
    let moved = shared.journal().move_pending(session);
    let Some((id, compaction)) = moved else {
        return Ok(None);
    };
    if let Err(e) = compact(shared, compaction) {
        shared.journal().unmove(session, id);
        return Err(e);
    }
    Ok(Some((id, shared.journal().pending_of(id).len())))
}

/// Rewrites the journal with only its pending events, holding it only to
/// swap the files: the game's appends go on while the new file is written
/// and synced.
fn compact(shared: &Shared, mut c: Compaction) -> std::io::Result<()> {
    c.write()?;
    let path = c.path().to_path_buf();
    let old = shared.journal().finish_compaction(c)?;
    // Closing the old file frees its blocks: not under the lock.
    drop(old);
    record::sync_dir(&path)
}

/// fsync of the journal, without holding it (appends go on meanwhile).
fn sync_journal(shared: &Shared) -> Result<(), ChainError> {
    let handle = shared.journal().sync_handle();
    handle
        .and_then(|f| f.sync_data())
        .map_err(|e| ChainError::Other(format!("cannot sync the event journal ({e})")))
}

fn mark_done(shared: &Shared, batch: &Batch, upto: u64, gas: u64) -> Result<(), ChainError> {
    let compaction = shared
        .journal()
        .mark_done(batch.session, upto)
        .map_err(|e| ChainError::Other(format!("cannot write the event journal ({e})")))?;
    if let Some(c) = compaction
        && let Err(e) = compact(shared, c)
    {
        // The journal is whole either way; the next batch tries again.
        shared.status.fail(&format!(
            "cannot compact the event journal ({e}); check the disk"
        ));
    }
    sync_journal(shared)?;
    shared
        .status
        .confirmed(upto - batch.first_seq, if gas > 0 { 1 } else { 0 }, gas);
    Ok(())
}
