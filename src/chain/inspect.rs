//! `particle-forge chain history` and `chain status`: the recorded events
//! read back from the chain's logs, and the journal's per-session counts.

use super::{ChainConfig, OpenError, journal::Journal, open_client};
use serde::Serialize;
use serde_json::{Value, json};

/// One recorded event as `chain history --json` prints it.
pub fn event_json(session: u64, seq: u64, event: &super::GameEvent, block: u64, tx: &str) -> Value {
    let mut v = serde_json::to_value(&event.body).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        map.insert("session".into(), json!(session));
        map.insert("seq".into(), json!(seq));
        map.insert("frame".into(), json!(event.frame));
        map.insert("block".into(), json!(block));
        map.insert("tx".into(), json!(tx));
    }
    v
}

/// The recorded events, oldest first, as lines (JSON or words). Reading
/// never writes to the chain or deploys anything.
pub fn history(
    config: &ChainConfig,
    session: Option<u64>,
    json: bool,
) -> Result<Vec<String>, OpenError> {
    let (mut log, _) = open_client(config, true)?;
    let batches = log.history(session)?;
    let mut lines = Vec::new();
    for b in &batches {
        for (i, e) in b.events.iter().enumerate() {
            let seq = b.first_seq + i as u64;
            let tx = b.tx.to_string();
            if json {
                lines.push(event_json(b.session, seq, e, b.block, &tx).to_string());
            } else {
                let fields = serde_json::to_value(&e.body)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| *k != "kind")
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                lines.push(format!(
                    "session {} #{seq:<6} frame {:<7} {:<14} {fields}  (block {}, tx {})",
                    b.session,
                    e.frame,
                    e.body.kind(),
                    b.block,
                    &tx[..12.min(tx.len())]
                ));
            }
        }
    }
    if lines.is_empty() && !json {
        lines.push(format!("no events recorded on {} yet", log.describe()));
    }
    Ok(lines)
}

/// The journal's view: per session, confirmed and pending counts.
#[derive(Debug, Serialize)]
pub struct JournalStatus {
    pub journal: String,
    pub pending: usize,
    pub sessions: Vec<SessionStatus>,
    pub warning: Option<String>,
    /// Files set aside in the data directory: bytes cut from a damaged
    /// journal or block log, and files that were not ours.
    pub kept_aside: Vec<KeptAside>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct KeptAside {
    pub path: String,
    pub bytes: u64,
}

/// The files `RecordFile::open` set aside in `dir`, by name.
pub fn kept_aside(dir: &std::path::Path) -> Vec<KeptAside> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<KeptAside> = entries
        .flatten()
        .filter(|e| super::record::is_set_aside(&e.file_name().to_string_lossy()))
        .map(|e| KeptAside {
            path: e.path().display().to_string(),
            bytes: e.metadata().map_or(0, |m| m.len()),
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

#[derive(Debug, Serialize)]
pub struct SessionStatus {
    pub session: u64,
    /// Events below this sequence number are confirmed on chain.
    pub confirmed: u64,
    pub pending: usize,
    /// Events the journal holds for the session in all.
    pub recorded: u64,
}

/// Reads the journal and counts, writing nothing: it works while a game
/// records into it.
pub fn status(config: &ChainConfig) -> Result<JournalStatus, OpenError> {
    let dir = config.data_dir();
    let path = super::journal::journal_path(&dir);
    if !path.exists() {
        return Err(OpenError::NoJournal(dir));
    }
    let (sessions, warning) = Journal::read(&dir)?;
    Ok(JournalStatus {
        journal: path.display().to_string(),
        pending: sessions.iter().map(|s| s.2).sum(),
        sessions: sessions
            .into_iter()
            .map(|(session, done, pending)| SessionStatus {
                session,
                confirmed: done,
                pending,
                recorded: done + pending as u64,
            })
            .collect(),
        warning,
        kept_aside: kept_aside(&dir),
    })
}

impl JournalStatus {
    pub fn describe(&self) -> String {
        let mut out = format!("journal {}: {} events pending", self.journal, self.pending);
        for s in &self.sessions {
            out += &format!(
                "\n  session {}: {} confirmed, {} pending",
                s.session, s.confirmed, s.pending
            );
        }
        if let Some(w) = &self.warning {
            out += &format!("\n  warning: {w}");
        }
        for k in &self.kept_aside {
            out += &format!(
                "\n  kept aside: {} ({} bytes; damaged bytes or a foreign file, kept as they were found)",
                k.path, k.bytes
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_set_aside_are_listed_with_their_sizes() {
        let dir = std::env::temp_dir().join(format!("pf-inspect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(kept_aside(&dir).is_empty());
        std::fs::write(dir.join("journal.log"), b"ours").unwrap();
        std::fs::write(dir.join("journal.cut-17"), b"12345").unwrap();
        std::fs::write(dir.join("embedded-chain.unreadable-9"), b"xy").unwrap();
        let found = kept_aside(&dir);
        let names: Vec<(String, u64)> = found
            .iter()
            .map(|k| {
                let name = std::path::Path::new(&k.path).file_name().unwrap();
                (name.to_string_lossy().into_owned(), k.bytes)
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("embedded-chain.unreadable-9".to_string(), 2),
                ("journal.cut-17".to_string(), 5)
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
