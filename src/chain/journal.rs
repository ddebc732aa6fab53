//! The durable outbox: every event the game hands over is written here
//! before its frame ends, and leaves only when its batch is confirmed on
//! chain.
//!
//! The file (`journal.log` in the data directory) is a record file (see
//! `record`) of two record kinds: an event (session, sequence number,
//! packed event) and a done mark (session, next sequence number: everything
//! below it is confirmed) — and, after damage, two more for moves (below).
//! Opening it replays them, so the events still
//! pending, from this session or from a run that crashed, come back in
//! order and are sent again. Sequence numbers are per session and dense;
//! the contract accepts a session's batches only in order, which is what
//! makes a resend after a crash harmless. Damage inside the file (a bad
//! disk) loses only the records it hit: the intact ones after it are read
//! too (`PastDamage::Keep`), and a session's events after a lost one,
//! which its numbering could no longer carry on chain, go on under a new
//! session, with a warning that says which events were lost (should the
//! damage also have taken the done mark of events already confirmed after
//! it, the recorder asks the chain which of the moved events it holds and
//! marks those done: `Moved`). A move stays in the file (a record of its
//! own, kept through compaction, until a checked record follows it), so a
//! node that cannot be reached at start, or for the whole run, only
//! delays the question, never skips it. A
//! lock file keeps a second game on the same data directory from writing
//! into the same journal.
//!
//! Past 4 MiB, once most of it is confirmed, the file is compacted: the
//! pending events are written to a new file beside it while the game goes
//! on appending to the old one, and only the swap (copying those appends
//! over, the rename) holds the journal — never a write of the whole file,
//! an fsync or the freeing of the old file's blocks.

use super::OpenError;
use super::event::GameEvent;
use super::record::{PastDamage, RecordFile, Replaced, Rewrite};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"PFJRNL01";
const TAG_EVENT: u8 = 1;
const TAG_DONE: u8 = 2;
/// A move not yet checked against the chain: (to, from, the numbers in
/// `from` of `to`'s events 0, 1, …).
const TAG_MOVED: u8 = 3;
/// The chain was asked about the move to a session (to, 0).
const TAG_CHECKED: u8 = 4;
/// An event record's bytes before the packed event: tag, session, seq.
const EVENT_HEADER: usize = 1 + 8 + 8;
/// Past this size, and when most of it is confirmed, the journal is
/// rewritten with only its pending events.
const COMPACT_BYTES: u64 = 4 << 20;
/// A record's framing (length, CRC) before its body.
const FRAME: u64 = 8;

/// A run of one session's pending events, ready to go on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub session: u64,
    pub first_seq: u64,
    pub events: Vec<GameEvent>,
}

impl Batch {
    /// The sequence number after the batch's last event.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }
}

/// One session's state in the journal.
#[derive(Default)]
struct SessionLog {
    /// Every sequence number below this one is confirmed on chain.
    done: u64,
    /// The sequence number the next appended event gets.
    next: u64,
    /// Events at `done..next`, in order, with their packed size.
    pending: VecDeque<(GameEvent, usize)>,
    /// When the oldest pending event arrived (recovered ones count as old).
    oldest: Option<Instant>,
}

/// A session's (id, events confirmed below this number, events pending).
pub type SessionCount = (u64, u64, usize);

/// When a batch is worth sending.
#[derive(Debug, Clone, Copy)]
pub struct BatchRule {
    pub max_events: usize,
    pub max_bytes: usize,
    /// Send what is pending once its oldest event waited this long.
    pub max_wait: Duration,
}

/// The outbox journal.
pub struct Journal {
    file: RecordFile,
    sessions: BTreeMap<u64, SessionLog>,
    /// Moves the chain has not been asked about yet, by the session moved
    /// to.
    unchecked: BTreeMap<u64, Moved>,
    _lock: File,
}

/// Opening the journal: what it found.
pub struct OpenedJournal {
    pub journal: Journal,
    /// A torn tail cut, or an unreadable file set aside.
    pub warning: Option<String>,
    /// Events still pending from earlier runs.
    pub recovered: usize,
    /// Events moved to a new session past a lost one, with their numbers
    /// in the old session: for the recorder to ask the chain which of them
    /// it holds already (damage that took an event may have taken the done
    /// mark of events confirmed after it too). Moves found now, and those
    /// of earlier runs not yet checked (`Journal::mark_checked`).
    pub moved: Vec<Moved>,
}

/// A session's events after a lost one, moved to a new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub from: u64,
    pub to: u64,
    /// The number in `from` of `to`'s event 0, 1, … (ascending).
    pub seqs: Vec<u64>,
}

impl Moved {
    /// How many of the moved events the chain holds under `from`, when it
    /// expects `from`'s number `chain_next` next: the contract takes a
    /// session's events only in order, so all those below it.
    pub fn on_chain(&self, chain_next: u64) -> u64 {
        self.seqs
            .iter()
            .take_while(|&&seq| seq < chain_next)
            .count() as u64
    }
}

impl Journal {
    /// Opens the journal in `dir` (created if missing), takes its lock and
    /// replays it.
    pub fn open(dir: &Path) -> Result<OpenedJournal, OpenError> {
        super::create_data_dir(dir)?;
        let lock = lock_dir(dir)?;
        let path = journal_path(dir);
        let opened = RecordFile::open(&path, MAGIC, PastDamage::Keep).map_err(|source| {
            OpenError::Journal {
                path: path.clone(),
                source,
            }
        })?;
        let (mut sessions, bad, gaps, mut unchecked) = replay(&opened.records);
        // A move whose session has nothing pending is settled.
        unchecked.retain(|to, _| has_pending(&sessions, *to));
        let mut moved = Vec::new();
        let mut notes = Vec::new();
        for gap in gaps {
            // The contract takes a session's events only in order, so the
            // ones after a lost event could never go on chain under their
            // own session: they go under a new one, in their order.
            let (seqs, after): (Vec<u64>, VecDeque<_>) = gap.after.into_iter().unzip();
            let id = new_session(&mut sessions, after);
            moved.push(Moved {
                from: gap.session,
                to: id,
                seqs,
            });
            let lost = match gap.lost {
                1 => "1 event".to_string(),
                n => format!("{n} events"),
            };
            notes.push(format!(
                "{lost} of session {} from number {} on {} lost with the damaged bytes; the {} intact events after {} are recorded as session {id}",
                gap.session,
                gap.first_lost,
                if gap.lost == 1 { "was" } else { "were" },
                sessions[&id].pending.len(),
                if gap.lost == 1 { "it" } else { "them" },
            ));
        }
        let recovered: usize = sessions.values().map(|s| s.pending.len()).sum();
        // Recovered events are overdue: send them at once.
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(3600))
            .unwrap_or_else(Instant::now);
        for s in sessions.values_mut() {
            if !s.pending.is_empty() {
                s.oldest = Some(long_ago);
            }
        }
        if bad > 0 {
            notes.push(format!(
                "{}: skipped {bad} records it could not place",
                path.display()
            ));
        }
        let warning = opened
            .warning
            .into_iter()
            .chain(notes)
            .reduce(|first, w| format!("{first}; {w}"));
        let found_now = !moved.is_empty();
        for m in moved {
            unchecked.insert(m.to, m);
        }
        let moved = unchecked.values().cloned().collect();
        let mut journal = Journal {
            file: opened.file,
            sessions,
            unchecked,
            _lock: lock,
        };
        // Moved events are written under their new session before any of
        // them can be sent, so a second opening cannot move them again.
        if found_now || journal.worth_compacting(64 << 10) {
            journal
                .compact_now()
                .map_err(|source| OpenError::Compact { path, source })?;
        }
        Ok(OpenedJournal {
            journal,
            warning,
            recovered,
            moved,
        })
    }

    /// Appends a session's events with one write (the caller syncs per
    /// batch) and returns the first sequence number they got.
    pub fn append(&mut self, session: u64, events: &[GameEvent]) -> io::Result<u64> {
        let s = self.sessions.entry(session).or_default();
        let first = s.next;
        let packed: Vec<Vec<u8>> = events
            .iter()
            .enumerate()
            .map(|(i, e)| encode_event(session, first + i as u64, e))
            .collect();
        self.file.append(packed.iter().map(|p| p.as_slice()))?;
        if s.pending.is_empty() && !events.is_empty() {
            s.oldest = Some(Instant::now());
        }
        for (e, body) in events.iter().zip(&packed) {
            s.pending.push_back((e.clone(), body.len() - EVENT_HEADER));
        }
        s.next = first + events.len() as u64;
        Ok(first)
    }

    /// Records that `session`'s events below `next` are confirmed and drops
    /// them from memory. The caller syncs outside the journal's lock, so a
    /// frame's append never waits for an fsync; a done mark lost in a crash
    /// only means the batch is checked against the contract again and
    /// marked done then.
    ///
    /// Past a size, with most of the file confirmed, it also returns a
    /// compaction: the file rewritten with only the pending events. Its
    /// slow part (`Compaction::write`: writing and syncing the new file)
    /// needs no access to the journal, so the caller runs it without the
    /// lock and then hands it back to [`Journal::finish_compaction`].
    pub fn mark_done(&mut self, session: u64, next: u64) -> io::Result<Option<Compaction>> {
        self.file.append([encode_done(session, next).as_slice()])?;
        if let Some(s) = self.sessions.get_mut(&session) {
            while s.done < next && !s.pending.is_empty() {
                s.pending.pop_front();
                s.done += 1;
            }
            s.done = s.done.max(next);
            s.oldest = if s.pending.is_empty() {
                None
            } else {
                Some(Instant::now())
            };
        }
        Ok(self
            .worth_compacting(COMPACT_BYTES)
            .then(|| self.begin_compaction()))
    }

    /// Records that the chain was asked about the move to session `to`
    /// (`Moved`), so no later opening reports it again. The caller syncs.
    pub fn mark_checked(&mut self, to: u64) -> io::Result<()> {
        let Some(m) = self.unchecked.remove(&to) else {
            return Ok(());
        };
        self.file
            .append([encode_checked(to).as_slice()])
            .inspect_err(|_| {
                self.unchecked.insert(to, m);
            })
    }

    /// Each session's (id, confirmed below, pending) as the journal in
    /// `dir` holds them, read without its lock and without writing (a game
    /// may be recording into it), and a note when the file is damaged
    /// inside (the events past the damage are counted as pending in their
    /// session; the game sets the damage aside when it next opens it).
    pub fn read(dir: &Path) -> Result<(Vec<SessionCount>, Option<String>), OpenError> {
        let path = journal_path(dir);
        let (mut records, after) =
            RecordFile::read_only_past_damage(&path, MAGIC).map_err(|source| {
                OpenError::Journal {
                    path: path.clone(),
                    source,
                }
            })?;
        let note = (!after.is_empty()).then(|| {
            format!(
                "{} is damaged inside; {} intact records follow the damage (the game sets the damaged bytes aside when it next opens the journal)",
                path.display(),
                after.len()
            )
        });
        records.extend(after);
        let (sessions, _, gaps, _) = replay(&records);
        let mut counts: Vec<SessionCount> = sessions
            .iter()
            .map(|(&id, s)| (id, s.done, s.pending.len()))
            .collect();
        for gap in gaps {
            if let Some(c) = counts.iter_mut().find(|c| c.0 == gap.session) {
                c.2 += gap.after.len();
            }
        }
        Ok((counts, note))
    }

    /// Moves `session`'s pending events to a new session, numbered from 0,
    /// and closes `session`: for a chain that no longer holds the events
    /// the journal saw confirmed before them (the contract was replaced or
    /// the chain reset), so the old numbering can never go on. Returns the
    /// new session and a compaction that makes the move durable: write it
    /// and put it in place (or `unmove` if that fails) before any of the
    /// moved events is sent.
    pub fn move_pending(&mut self, session: u64) -> Option<(u64, Compaction)> {
        let s = self.sessions.get_mut(&session)?;
        if s.pending.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut s.pending);
        s.done = s.next;
        s.oldest = None;
        let id = new_session(&mut self.sessions, pending);
        Some((id, self.begin_compaction()))
    }

    /// Undoes `move_pending(from)`, which made `to`, when its compaction
    /// could not be put in place.
    pub fn unmove(&mut self, from: u64, to: u64) {
        let Some(moved) = self.sessions.remove(&to) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&from) {
            s.done = s.next - moved.pending.len() as u64;
            s.pending = moved.pending;
            s.oldest = moved.oldest;
        }
    }

    /// Puts a written compaction in place: the events appended while it was
    /// written are carried over. The caller then, again without the lock,
    /// closes the old file (dropping what this returns) and makes the
    /// rename durable (`record::sync_dir` on [`Compaction::path`]) before it
    /// syncs anything appended since.
    pub fn finish_compaction(&mut self, compaction: Compaction) -> io::Result<Replaced> {
        self.file.finish_rewrite(compaction.rewrite)
    }

    /// The oldest session's next batch, if the rule (or `flush`) says it is
    /// time: full by count or bytes, or its oldest event waited long enough.
    pub fn next_batch(&self, rule: &BatchRule, flush: bool) -> Option<Batch> {
        let (&session, s) = self.sessions.iter().find(|(_, s)| !s.pending.is_empty())?;
        let mut bytes = 2;
        let mut take = 0;
        for (_, size) in &s.pending {
            if take == rule.max_events.min(super::event::MAX_BATCH_EVENTS)
                || (take > 0 && bytes + size > rule.max_bytes)
            {
                break;
            }
            bytes += size;
            take += 1;
        }
        let full = take < s.pending.len() || take >= rule.max_events || bytes + 16 > rule.max_bytes;
        let waited = s.oldest.is_some_and(|t| t.elapsed() >= rule.max_wait);
        if !(full || waited || flush) {
            return None;
        }
        Some(Batch {
            session,
            first_seq: s.done,
            events: s
                .pending
                .iter()
                .take(take)
                .map(|(e, _)| e.clone())
                .collect(),
        })
    }

    /// Events not yet confirmed, over all sessions.
    pub fn pending(&self) -> usize {
        self.sessions.values().map(|s| s.pending.len()).sum()
    }

    /// (session, confirmed below, pending) for each session in the journal.
    pub fn sessions(&self) -> Vec<SessionCount> {
        self.sessions
            .iter()
            .map(|(&id, s)| (id, s.done, s.pending.len()))
            .collect()
    }

    /// The pending events of one session, with their sequence numbers.
    pub fn pending_of(&self, session: u64) -> Vec<(u64, GameEvent)> {
        self.sessions
            .get(&session)
            .map(|s| {
                s.pending
                    .iter()
                    .enumerate()
                    .map(|(i, (e, _))| (s.done + i as u64, e.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A handle that syncs the file without holding the journal.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.file.sync_handle()
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync()
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Whether the file is past `size` and mostly confirmed events: a file
    /// that is mostly pending would shrink little, and be rewritten again
    /// after every batch while a backlog drains.
    fn worth_compacting(&self, size: u64) -> bool {
        self.file.len() > size && self.file.len() > 2 * self.pending_bytes()
    }

    /// Bytes the pending events' records take in the file.
    fn pending_bytes(&self) -> u64 {
        self.sessions
            .values()
            .flat_map(|s| &s.pending)
            .map(|(_, size)| (size + EVENT_HEADER) as u64 + FRAME)
            .sum()
    }

    /// Rewrites the file with only the pending events, in one go.
    fn compact_now(&mut self) -> io::Result<()> {
        let records = self.pending_records();
        self.file
            .rewrite(MAGIC, records.iter().map(|b| b.as_slice()))
    }

    /// A rewrite holding the pending events as they are now.
    fn begin_compaction(&mut self) -> Compaction {
        let records = self.pending_records();
        let path = self.path().to_path_buf();
        Compaction {
            rewrite: self
                .file
                .begin_rewrite(MAGIC, records.iter().map(|b| b.as_slice())),
            path,
        }
    }

    /// What a compacted file holds: the moves not yet checked, a done mark
    /// per session with events pending (it keeps the session's numbering;
    /// sessions with nothing pending are finished and leave the file), then
    /// those events.
    fn pending_records(&self) -> Vec<Vec<u8>> {
        let open = self.sessions.iter().filter(|(_, s)| !s.pending.is_empty());
        let moves = self
            .unchecked
            .values()
            .filter(|m| has_pending(&self.sessions, m.to))
            .map(encode_moved);
        let marks = moves.chain(open.clone().map(|(&id, s)| encode_done(id, s.done)));
        let events = open.flat_map(|(&id, s)| {
            s.pending
                .iter()
                .enumerate()
                .map(move |(i, (e, _))| encode_event(id, s.done + i as u64, e))
        });
        marks.chain(events).collect()
    }
}

/// The journal rewritten with only its pending events, being made while
/// the game goes on appending (`Journal::mark_done`).
pub struct Compaction {
    rewrite: Rewrite,
    path: PathBuf,
}

impl Compaction {
    /// Writes and syncs the new file beside the journal.
    pub fn write(&mut self) -> io::Result<()> {
        self.rewrite.write()
    }

    /// The journal it replaces.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The journal's file in a data directory.
pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join("journal.log")
}

/// Whether `session` has events pending (a move to it still matters).
fn has_pending(sessions: &BTreeMap<u64, SessionLog>, session: u64) -> bool {
    sessions
        .get(&session)
        .is_some_and(|s| !s.pending.is_empty())
}

/// Puts `pending` under a session new to the journal, numbered from 0;
/// returns its id.
fn new_session(
    sessions: &mut BTreeMap<u64, SessionLog>,
    pending: VecDeque<(GameEvent, usize)>,
) -> u64 {
    let id = loop {
        let id = super::new_session_id();
        if !sessions.contains_key(&id) {
            break id;
        }
    };
    let log = SessionLog {
        done: 0,
        next: pending.len() as u64,
        oldest: (!pending.is_empty()).then(Instant::now),
        pending,
    };
    sessions.insert(id, log);
    id
}

/// A session whose pending events stop at a lost one.
struct Gap {
    session: u64,
    first_lost: u64,
    lost: u64,
    /// The intact events after the first lost one, in order: their
    /// number, and the event with its packed size.
    after: Vec<(u64, (GameEvent, usize))>,
}

/// Each session's state from the journal's records, the records that fit
/// no session, and the sessions whose pending events have holes (damage in
/// the file took some): their `pending` stops at the first hole, and what
/// came after is in the `Gap`.
fn replay(
    records: &[Vec<u8>],
) -> (
    BTreeMap<u64, SessionLog>,
    usize,
    Vec<Gap>,
    BTreeMap<u64, Moved>,
) {
    let mut done: BTreeMap<u64, u64> = BTreeMap::new();
    let mut unchecked = BTreeMap::new();
    let mut events: BTreeMap<u64, BTreeMap<u64, (GameEvent, usize)>> = BTreeMap::new();
    let mut bad = 0;
    // A done mark may come after events it confirms, so every record is
    // read before any event is placed.
    for body in records {
        match decode(body) {
            Some(Entry::Event(session, seq, event)) => {
                let size = body.len() - EVENT_HEADER;
                if events
                    .entry(session)
                    .or_default()
                    .insert(seq, (event, size))
                    .is_some()
                {
                    // Two events under one number cannot come from our own
                    // writes; the later one is kept.
                    bad += 1;
                }
                done.entry(session).or_default();
            }
            Some(Entry::Done(session, next)) => {
                let d = done.entry(session).or_default();
                *d = (*d).max(next);
            }
            Some(Entry::Moved(m)) => {
                unchecked.insert(m.to, m);
            }
            Some(Entry::Checked(to)) => {
                unchecked.remove(&to);
            }
            None => bad += 1,
        }
    }
    let mut sessions = BTreeMap::new();
    let mut gaps = Vec::new();
    for (session, done) in done {
        let mut s = SessionLog {
            done,
            next: done,
            ..SessionLog::default()
        };
        let mut later = events
            .remove(&session)
            .unwrap_or_default()
            .split_off(&done)
            .into_iter()
            .peekable();
        while let Some((_, event)) = later.next_if(|(seq, _)| *seq == s.next) {
            s.pending.push_back(event);
            s.next += 1;
        }
        let after: Vec<_> = later.collect();
        if let Some(&(last, _)) = after.last() {
            gaps.push(Gap {
                session,
                first_lost: s.next,
                lost: last + 1 - s.next - after.len() as u64,
                after,
            });
        }
        sessions.insert(session, s);
    }
    (sessions, bad, gaps, unchecked)
}

enum Entry {
    Event(u64, u64, GameEvent),
    Done(u64, u64),
    Moved(Moved),
    Checked(u64),
}

/// A move not yet checked against the chain.
fn encode_moved(m: &Moved) -> Vec<u8> {
    let mut body = vec![TAG_MOVED];
    body.extend_from_slice(&m.to.to_le_bytes());
    body.extend_from_slice(&m.from.to_le_bytes());
    for seq in &m.seqs {
        body.extend_from_slice(&seq.to_le_bytes());
    }
    body
}

/// The chain was asked about the move to `to`.
fn encode_checked(to: u64) -> Vec<u8> {
    let mut body = vec![TAG_CHECKED];
    body.extend_from_slice(&to.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    body
}

/// A done mark: `session`'s events below `next` are confirmed.
fn encode_done(session: u64, next: u64) -> Vec<u8> {
    let mut body = vec![TAG_DONE];
    body.extend_from_slice(&session.to_le_bytes());
    body.extend_from_slice(&next.to_le_bytes());
    body
}

fn encode_event(session: u64, seq: u64, event: &GameEvent) -> Vec<u8> {
    let mut body = Vec::with_capacity(24);
    body.push(TAG_EVENT);
    body.extend_from_slice(&session.to_le_bytes());
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&event.pack());
    body
}

fn decode(body: &[u8]) -> Option<Entry> {
    let (&tag, rest) = body.split_first()?;
    if rest.len() < 16 {
        return None;
    }
    let session = u64::from_le_bytes(rest[..8].try_into().ok()?);
    let n = u64::from_le_bytes(rest[8..16].try_into().ok()?);
    match tag {
        TAG_EVENT => Some(Entry::Event(
            session,
            n,
            GameEvent::unpack(&rest[16..]).ok()?,
        )),
        TAG_DONE if rest.len() == 16 => Some(Entry::Done(session, n)),
        TAG_MOVED if rest.len() % 8 == 0 => Some(Entry::Moved(Moved {
            to: session,
            from: n,
            seqs: rest[16..]
                .chunks_exact(8)
                .map(|b| {
                    let mut seq = [0u8; 8];
                    seq.copy_from_slice(b);
                    u64::from_le_bytes(seq)
                })
                .collect(),
        })),
        TAG_CHECKED if rest.len() == 16 => Some(Entry::Checked(session)),
        _ => None,
    }
}

/// An exclusive lock on the data directory for as long as the file lives.
fn lock_dir(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join("lock");
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(source) => return Err(OpenError::LockFile { path, source }),
    };
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(OpenError::Lock { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::event::EventBody;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pf-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn boom(frame: u64) -> GameEvent {
        GameEvent::new(
            frame,
            EventBody::Explosion {
                x: frame as u32,
                y: 7,
                hit: 3,
            },
        )
    }

    const NOW: BatchRule = BatchRule {
        max_events: 3,
        max_bytes: 1 << 20,
        max_wait: Duration::ZERO,
    };

    #[test]
    fn pending_events_come_back_after_a_crash_and_done_ones_do_not() {
        let dir = temp("crash");
        {
            let mut j = Journal::open(&dir).unwrap().journal;
            assert_eq!(j.append(1, &[boom(1), boom(2)]).unwrap(), 0);
            assert_eq!(j.append(1, &[boom(3), boom(4), boom(5)]).unwrap(), 2);
            j.mark_done(1, 2).unwrap();
            // No sync after the last appends: a crash now loses nothing
            // the OS already has.
        }
        let opened = Journal::open(&dir).unwrap();
        assert_eq!(opened.recovered, 3);
        let mut j = opened.journal;
        let batch = j.next_batch(&NOW, false).unwrap();
        assert_eq!((batch.session, batch.first_seq), (1, 2));
        assert_eq!(batch.events, vec![boom(3), boom(4), boom(5)]);
        // New events of the same session keep its numbering.
        assert_eq!(j.append(1, &[boom(6)]).unwrap(), 5);
        j.mark_done(1, 5).unwrap();
        assert_eq!(j.pending_of(1), vec![(5, boom(6))]);
    }

    #[test]
    fn batches_follow_the_rule() {
        let dir = temp("rule");
        let mut j = Journal::open(&dir).unwrap().journal;
        let patient = BatchRule {
            max_events: 3,
            max_bytes: 1 << 20,
            max_wait: Duration::from_secs(3600),
        };
        j.append(9, &[boom(1), boom(2)]).unwrap();
        assert!(j.next_batch(&patient, false).is_none(), "not full, not old");
        assert_eq!(j.next_batch(&patient, true).unwrap().events.len(), 2);
        j.append(9, &[boom(3), boom(4)]).unwrap();
        let full = j.next_batch(&patient, false).unwrap();
        assert_eq!(full.events.len(), 3, "full by count");
        let tiny = BatchRule {
            max_bytes: 2 + 2 * boom(1).pack().len(),
            ..patient
        };
        assert_eq!(
            j.next_batch(&tiny, false).unwrap().events.len(),
            2,
            "full by bytes"
        );
        // Sessions go oldest first.
        j.append(4, &[boom(1)]).unwrap();
        assert_eq!(j.next_batch(&NOW, false).unwrap().session, 4);
    }

    #[test]
    fn a_data_directory_that_is_a_file_is_named_as_such() {
        let dir = temp("a-file");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let e = Journal::open(&file).err().unwrap();
        assert!(
            matches!(&e, OpenError::DataDirIsFile(p) if *p == file),
            "{e}"
        );
        let e = e.to_string();
        assert!(e.contains("is a file, not a folder"), "{e}");
        assert!(e.contains("--data-dir"), "{e}");
    }

    #[test]
    fn a_second_game_on_the_same_directory_is_refused() {
        let dir = temp("lock");
        let first = Journal::open(&dir).unwrap();
        let second = Journal::open(&dir).err().unwrap();
        assert!(matches!(second, OpenError::Locked(_)), "{second}");
        assert!(
            second.to_string().contains("another Particle Forge"),
            "{second}"
        );
        // The lock goes with the first game.
        drop(first);
        assert!(Journal::open(&dir).is_ok());
    }

    #[test]
    fn a_corrupt_tail_is_cut_and_the_rest_kept() {
        let dir = temp("corrupt");
        {
            let mut j = Journal::open(&dir).unwrap().journal;
            j.append(2, &[boom(1), boom(2), boom(3)]).unwrap();
        }
        let path = journal_path(&dir);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0x55; 13]);
        std::fs::write(&path, &bytes).unwrap();
        let opened = Journal::open(&dir).unwrap();
        assert!(
            opened
                .warning
                .unwrap()
                .contains("cut a torn or corrupt tail of 13 bytes")
        );
        assert_eq!(opened.recovered, 3);
    }

    /// Where each event's record lies in the journal file: appended one
    /// by one to session `session`.
    fn append_one_by_one(j: &mut Journal, session: u64, events: &[GameEvent]) -> Vec<u64> {
        events
            .iter()
            .map(|e| {
                let at = j.file.len();
                j.append(session, std::slice::from_ref(e)).unwrap();
                at
            })
            .collect()
    }

    /// Flips a bit in the body of the record at `at` in `dir`'s journal.
    fn damage(dir: &Path, at: u64) {
        let path = journal_path(dir);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at as usize + FRAME as usize + 3] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
    }

    #[test]
    fn events_after_a_damaged_one_go_on_under_a_new_session() {
        let dir = temp("damaged-event");
        let events: Vec<_> = (1..=6).map(boom).collect();
        {
            let mut j = Journal::open(&dir).unwrap().journal;
            let at = append_one_by_one(&mut j, 2, &events);
            drop(j);
            damage(&dir, at[2]);
        }
        let mut opened = Journal::open(&dir).unwrap();
        let warning = opened.warning.take().unwrap();
        assert!(warning.contains("skipped"), "{warning}");
        assert!(
            warning.contains("1 event of session 2 from number 2 on was lost"),
            "{warning}"
        );
        assert_eq!(opened.recovered, 5);
        let j = opened.journal;
        assert_eq!(j.pending_of(2), vec![(0, boom(1)), (1, boom(2))]);
        let sessions = j.sessions();
        assert_eq!(sessions.len(), 2);
        let (moved, done, pending) = *sessions.iter().find(|s| s.0 != 2).unwrap();
        assert!(
            warning.contains(&format!("recorded as session {moved}")),
            "{warning}"
        );
        assert_eq!((done, pending), (0, 3));
        assert_eq!(
            j.pending_of(moved),
            vec![(0, boom(4)), (1, boom(5)), (2, boom(6))]
        );
        // Their numbers in session 2, for asking the chain which it holds.
        assert_eq!(
            opened.moved,
            vec![Moved {
                from: 2,
                to: moved,
                seqs: vec![3, 4, 5]
            }]
        );
        // Session 2 sends what it has and stops; the new one starts at 0.
        let rule = BatchRule {
            max_events: 100,
            max_bytes: 1 << 20,
            max_wait: Duration::ZERO,
        };
        let first = j.next_batch(&rule, true).unwrap();
        assert_eq!(
            (first.session, first.first_seq, first.events.len()),
            (2, 0, 2)
        );
        drop(j);
        // Opening again finds the same, written down: nothing moves twice.
        let again = Journal::open(&dir).unwrap();
        assert!(again.warning.is_none(), "{:?}", again.warning);
        assert_eq!(again.journal.sessions(), sessions);
        assert_eq!(again.journal.pending_of(moved).len(), 3);
        // The chain was not asked yet: the move is reported again (the
        // first opening's rewrite kept it), until it is marked checked.
        let unchecked = vec![Moved {
            from: 2,
            to: moved,
            seqs: vec![3, 4, 5],
        }];
        assert_eq!(again.moved, unchecked);
        let mut j = again.journal;
        j.mark_checked(moved).unwrap();
        j.sync().unwrap();
        drop(j);
        let checked = Journal::open(&dir).unwrap();
        assert!(checked.moved.is_empty());
        assert_eq!(checked.journal.pending_of(moved).len(), 3);
    }

    #[test]
    fn moved_events_the_chain_holds_are_those_below_its_next_number() {
        // Numbers 3, 4 and 6 moved (5 was lost too).
        let m = Moved {
            from: 1,
            to: 2,
            seqs: vec![3, 4, 6],
        };
        assert_eq!(m.on_chain(0), 0);
        assert_eq!(m.on_chain(3), 0);
        assert_eq!(m.on_chain(4), 1);
        // The chain holds 0..6: the lost 5 too, but not 6.
        assert_eq!(m.on_chain(6), 2);
        assert_eq!(m.on_chain(7), 3);
        assert_eq!(m.on_chain(100), 3);
    }

    #[test]
    fn damage_to_a_confirmed_event_loses_nothing_pending() {
        let dir = temp("damaged-confirmed");
        let events: Vec<_> = (1..=6).map(boom).collect();
        {
            let mut j = Journal::open(&dir).unwrap().journal;
            let at = append_one_by_one(&mut j, 4, &events);
            j.mark_done(4, 3).unwrap();
            drop(j);
            damage(&dir, at[1]);
        }
        let opened = Journal::open(&dir).unwrap();
        let warning = opened.warning.unwrap();
        assert!(warning.contains("kept the"), "{warning}");
        assert!(!warning.contains("lost"), "{warning}");
        assert_eq!(opened.journal.sessions(), vec![(4, 3, 3)]);
        assert_eq!(
            opened.journal.pending_of(4),
            vec![(3, boom(4)), (4, boom(5)), (5, boom(6))]
        );
    }

    #[test]
    fn reading_needs_no_lock_and_writes_nothing() {
        let dir = temp("read");
        let mut j = Journal::open(&dir).unwrap().journal;
        let at = append_one_by_one(&mut j, 3, &(1..=6).map(boom).collect::<Vec<_>>());
        j.mark_done(3, 1).unwrap();
        // The game holds the journal; a reader still counts.
        let (counts, note) = Journal::read(&dir).unwrap();
        assert_eq!((counts, note), (vec![(3, 1, 5)], None));
        drop(j);
        // Damage inside: counted past it, reported, and left as it is.
        damage(&dir, at[2]);
        let before = std::fs::read(journal_path(&dir)).unwrap();
        let (counts, note) = Journal::read(&dir).unwrap();
        assert_eq!(counts, vec![(3, 1, 4)]);
        let note = note.unwrap();
        assert!(
            note.contains("damaged inside; 4 intact records follow"),
            "{note}"
        );
        assert_eq!(std::fs::read(journal_path(&dir)).unwrap(), before);
    }

    #[test]
    fn pending_events_move_to_a_new_session_durably_or_not_at_all() {
        let dir = temp("move");
        let mut j = Journal::open(&dir).unwrap().journal;
        j.append(6, &[boom(1), boom(2), boom(3), boom(4)]).unwrap();
        j.mark_done(6, 2).unwrap();
        assert!(j.move_pending(99).is_none(), "no such session");
        // A compaction that is never put in place: the move is undone.
        let (id, _) = j.move_pending(6).unwrap();
        assert_eq!(j.pending_of(id), vec![(0, boom(3)), (1, boom(4))]);
        assert!(j.pending_of(6).is_empty());
        j.unmove(6, id);
        assert_eq!(j.pending_of(6), vec![(2, boom(3)), (3, boom(4))]);
        assert!(j.pending_of(id).is_empty());
        // Written and put in place: it survives reopening, and the game's
        // appends made meanwhile are kept.
        let (id, mut c) = j.move_pending(6).unwrap();
        j.append(7, &[boom(9)]).unwrap();
        c.write().unwrap();
        drop(j.finish_compaction(c).unwrap());
        drop(j);
        let opened = Journal::open(&dir).unwrap();
        assert!(opened.warning.is_none(), "{:?}", opened.warning);
        let j = opened.journal;
        assert_eq!(j.pending_of(id), vec![(0, boom(3)), (1, boom(4))]);
        assert!(j.pending_of(6).is_empty());
        assert_eq!(j.pending_of(7), vec![(0, boom(9))]);
    }

    /// A journal past the compaction size with `extra` events pending
    /// after the first `done`, all of session 5.
    fn grown(dir: &Path, extra: &[GameEvent]) -> (Journal, u64) {
        let mut j = Journal::open(dir).unwrap().journal;
        let many: Vec<_> = (0..1000).map(boom).collect();
        let mut done = 0;
        while j.file.len() <= COMPACT_BYTES {
            done = j.append(5, &many).unwrap() + many.len() as u64;
        }
        j.append(5, extra).unwrap();
        (j, done)
    }

    #[test]
    fn compaction_keeps_pending_events_and_numbering() {
        let dir = temp("compact");
        let (mut j, done) = grown(&dir, &[boom(7)]);
        let mut c = j.mark_done(5, done).unwrap().expect("worth compacting");
        c.write().unwrap();
        drop(j.finish_compaction(c).unwrap());
        assert!(j.file.len() < 4096, "compacted to {} bytes", j.file.len());
        drop(j);
        let opened = Journal::open(&dir).unwrap();
        assert_eq!(opened.journal.pending_of(5), vec![(done, boom(7))]);
    }

    #[test]
    fn events_appended_while_a_compaction_is_written_are_kept() {
        let dir = temp("compact-appends");
        let (mut j, done) = grown(&dir, &[boom(7)]);
        let mut c = j.mark_done(5, done).unwrap().expect("worth compacting");
        // The game goes on appending (the sender writes the new file
        // without holding the journal), in two frames.
        j.append(5, &[boom(8), boom(9)]).unwrap();
        c.write().unwrap();
        j.append(5, &[boom(10)]).unwrap();
        drop(j.finish_compaction(c).unwrap());
        assert!(j.file.len() < 4096, "compacted to {} bytes", j.file.len());
        // Appends go to the new file.
        j.append(5, &[boom(11)]).unwrap();
        j.sync().unwrap();
        let expect: Vec<_> = (7..12)
            .enumerate()
            .map(|(i, e)| (done + i as u64, boom(e)))
            .collect();
        assert_eq!(j.pending_of(5), expect);
        drop(j);
        let opened = Journal::open(&dir).unwrap();
        assert!(opened.warning.is_none(), "{:?}", opened.warning);
        assert_eq!(opened.journal.pending_of(5), expect);
        // And the numbering goes on after them.
        let mut j = opened.journal;
        assert_eq!(j.append(5, &[boom(12)]).unwrap(), done + 5);
    }

    #[test]
    fn a_stale_compaction_is_refused_and_the_journal_kept() {
        let dir = temp("compact-stale");
        let (mut j, done) = grown(&dir, &[boom(7), boom(8)]);
        let mut first = j.mark_done(5, done).unwrap().expect("worth compacting");
        let mut second = j.mark_done(5, done + 1).unwrap().expect("still big");
        first.write().unwrap();
        second.write().unwrap();
        drop(j.finish_compaction(second).unwrap());
        // `first` was made from the file `second` replaced: putting it in
        // place would bring back the event confirmed since.
        assert!(j.finish_compaction(first).is_err());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("rewrite"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        j.append(5, &[boom(9)]).unwrap();
        drop(j);
        let opened = Journal::open(&dir).unwrap();
        assert_eq!(
            opened.journal.pending_of(5),
            vec![(done + 1, boom(8)), (done + 2, boom(9))]
        );
    }

    #[test]
    fn opening_compacts_a_mostly_confirmed_journal_only() {
        let dir = temp("compact-open");
        let path = journal_path(&dir);
        let many: Vec<_> = (0..4000).map(boom).collect();
        {
            let mut j = Journal::open(&dir).unwrap().journal;
            j.append(3, &many).unwrap();
            // Under the running game's size: stays as it is.
            assert!(j.mark_done(3, 3990).unwrap().is_none());
        }
        let before = std::fs::metadata(&path).unwrap().len();
        assert!(before > 64 << 10, "{before} bytes");
        let opened = Journal::open(&dir).unwrap();
        assert_eq!(opened.recovered, 10);
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < 4096, "{before} → {after} bytes");
        assert_eq!(opened.journal.pending_of(3)[0], (3990, boom(3990)));
        drop(opened);
        // Mostly pending: opening leaves it alone.
        let dir = temp("compact-open-pending");
        let path = journal_path(&dir);
        {
            let mut j = Journal::open(&dir).unwrap().journal;
            j.append(3, &many).unwrap();
            j.mark_done(3, 10).unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        let opened = Journal::open(&dir).unwrap();
        assert_eq!(opened.recovered, 3990);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    }

    #[test]
    fn a_journal_of_mostly_pending_events_is_not_rewritten() {
        let dir = temp("compact-backlog");
        let (mut j, done) = grown(&dir, &[]);
        // A chain that was down: nearly everything still pending, so a
        // rewrite would shrink the file by one batch and come again after
        // every batch while the backlog drains.
        assert!(j.mark_done(5, 1000).unwrap().is_none());
        assert_eq!(j.pending(), (done - 1000) as usize);
        assert!(j.mark_done(5, done).unwrap().is_some());
    }
}
