//! The recorder's counters and last words, written by the sender and the
//! game, read once a frame by the overlay and at exit by the summary.

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters (atomics) and the latest hash and error.
#[derive(Default)]
pub struct ChainStatus {
    recorded: AtomicU64,
    sent: AtomicU64,
    confirmed: AtomicU64,
    batches: AtomicU64,
    gas_used: AtomicU64,
    gas_events: AtomicU64,
    errors: AtomicU64,
    held: AtomicU64,
    lost: AtomicU64,
    text: Mutex<Text>,
}

#[derive(Default, Clone)]
struct Text {
    contract: Option<String>,
    last_tx: Option<String>,
    last_error: Option<String>,
}

/// A copy of the status at one moment.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ChainSnapshot {
    /// "embedded", "rpc" or "off".
    pub backend: String,
    /// Where the chain is (file or URL).
    pub location: String,
    pub contract: Option<String>,
    /// Events handed to the journal by this run.
    pub recorded: u64,
    /// Events in transactions sent by this run.
    pub sent: u64,
    /// Events confirmed on chain by this run (earlier runs' included).
    pub confirmed: u64,
    /// Events in the journal not yet confirmed.
    pub pending: u64,
    /// Events found pending in the journal at start.
    pub recovered: u64,
    pub batches: u64,
    pub gas_used: u64,
    /// Gas per confirmed event, over the batches this run sent.
    pub gas_per_event: f64,
    pub errors: u64,
    /// Events waiting in memory because the journal refuses writes.
    pub held: u64,
    /// Events lost because the journal refused them past the memory's
    /// limit (`chain::MAX_HELD`) or at exit.
    pub lost: u64,
    pub last_tx: Option<String>,
    pub last_error: Option<String>,
}

impl ChainStatus {
    fn text(&self) -> std::sync::MutexGuard<'_, Text> {
        self.text.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn recorded(&self, n: u64) {
        self.recorded.fetch_add(n, Relaxed);
    }

    pub fn sent(&self, n: u64, tx: &str) {
        self.sent.fetch_add(n, Relaxed);
        self.text().last_tx = Some(tx.to_string());
    }

    /// `n` events confirmed by `batches` transactions that used `gas`.
    pub fn confirmed(&self, n: u64, batches: u64, gas: u64) {
        self.confirmed.fetch_add(n, Relaxed);
        self.batches.fetch_add(batches, Relaxed);
        if gas > 0 {
            self.gas_used.fetch_add(gas, Relaxed);
            self.gas_events.fetch_add(n, Relaxed);
        }
        self.text().last_error = None;
    }

    /// `held` events wait in memory for the journal; `lost` more were lost.
    pub fn hold(&self, held: u64, lost: u64) {
        self.held.store(held, Relaxed);
        self.lost.fetch_add(lost, Relaxed);
    }

    /// Records an error; logged once per distinct message.
    pub fn fail(&self, message: &str) {
        self.errors.fetch_add(1, Relaxed);
        let mut text = self.text();
        if text.last_error.as_deref() != Some(message) {
            tracing::warn!("chain: {message}");
        }
        text.last_error = Some(message.to_string());
    }

    pub fn set_contract(&self, address: &str) {
        let mut text = self.text();
        if text.contract.as_deref() != Some(address) {
            text.contract = Some(address.to_string());
        }
    }

    pub fn snapshot(
        &self,
        backend: &str,
        location: &str,
        pending: u64,
        recovered: u64,
    ) -> ChainSnapshot {
        let text = self.text().clone();
        let gas_used = self.gas_used.load(Relaxed);
        let gas_events = self.gas_events.load(Relaxed);
        ChainSnapshot {
            backend: backend.to_string(),
            location: location.to_string(),
            contract: text.contract,
            recorded: self.recorded.load(Relaxed),
            sent: self.sent.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
            pending,
            recovered,
            batches: self.batches.load(Relaxed),
            gas_used,
            gas_per_event: if gas_events > 0 {
                gas_used as f64 / gas_events as f64
            } else {
                0.0
            },
            errors: self.errors.load(Relaxed),
            held: self.held.load(Relaxed),
            lost: self.lost.load(Relaxed),
            last_tx: text.last_tx,
            last_error: text.last_error,
        }
    }
}
