//! The event contract on one chain, driven by one account: finding or
//! deploying the contract, asking which event a session expects next,
//! submitting a batch under the nonce this client owns, waiting for
//! confirmations, and reading the recorded events back.

use super::backend::{Backend, ChainError, Receipt};
use super::contract::{self, RecordedBatch};
use super::journal::Batch;
use super::wallet::{Wallet, record_gas_limit};
use alloy::primitives::{Address, B256, TxKind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the client finds its contract and judges confirmations.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// Use the contract at this address instead of deploying one.
    pub contract: Option<Address>,
    /// Refuse a node whose chain id differs.
    pub chain_id: Option<u64>,
    /// Blocks on top of a receipt's before it counts (1 = mined).
    pub confirmations: u64,
    /// Where deployed addresses are remembered, per chain id.
    pub data_dir: Option<PathBuf>,
}

/// The contract client.
pub struct EventLog {
    backend: Box<dyn Backend>,
    wallet: Wallet,
    settings: ClientSettings,
    contract: Option<Address>,
    /// The next nonce; `None` until synced, and again after any send error.
    nonce: Option<u64>,
    /// The block the contract was deployed in (logs start there; 0 when
    /// unknown), so reading history does not scan a public chain from genesis.
    from_block: u64,
}

impl EventLog {
    pub fn new(backend: Box<dyn Backend>, wallet: Wallet, settings: ClientSettings) -> Self {
        Self {
            backend,
            wallet,
            settings,
            contract: None,
            nonce: None,
            from_block: 0,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    pub fn contract(&self) -> Option<Address> {
        self.contract
    }

    pub fn account(&self) -> Address {
        self.wallet.address()
    }

    /// Connects: checks the chain id, then finds the contract (configured,
    /// remembered from an earlier run, or deployed now).
    pub fn prepare(&mut self) -> Result<Address, ChainError> {
        match self.locate(true)? {
            Some(a) => Ok(a),
            None => unreachable!("locate(true) deploys when it finds nothing"),
        }
    }

    /// Finds the contract; deploys one only when `deploy` is set.
    fn locate(&mut self, deploy: bool) -> Result<Option<Address>, ChainError> {
        if let Some(a) = self.contract {
            return Ok(Some(a));
        }
        let id = self.backend.chain_id()?;
        if let Some(want) = self.settings.chain_id
            && want != id
        {
            return Err(ChainError::Misconfigured(format!(
                "{} is chain {id}, but chain.chain_id says {want}; point --rpc-url at the right node or fix the config",
                self.backend.describe()
            )));
        }
        self.wallet.chain_id = id;
        let address = match self.settings.contract {
            Some(a) => {
                if self.backend.code_at(a)?.is_empty() {
                    return Err(ChainError::Misconfigured(format!(
                        "there is no contract at {a} on chain {id}; fix chain.contract or leave it empty to deploy one"
                    )));
                }
                a
            }
            None => match self.remembered(id) {
                Some((a, block)) if !self.backend.code_at(a)?.is_empty() => {
                    self.from_block = block;
                    a
                }
                _ if deploy => self.deploy()?,
                _ => return Ok(None),
            },
        };
        self.contract = Some(address);
        Ok(Some(address))
    }

    fn remembered_path(&self, chain_id: u64) -> Option<PathBuf> {
        let dir = self.settings.data_dir.as_ref()?;
        Some(dir.join(format!("contract-{chain_id}.txt")))
    }

    /// The contract deployed on this chain by an earlier run: its address
    /// and deployment block (`ADDRESS BLOCK` in the file).
    fn remembered(&self, chain_id: u64) -> Option<(Address, u64)> {
        let text = std::fs::read_to_string(self.remembered_path(chain_id)?).ok()?;
        let mut words = text.split_whitespace();
        let address = words.next()?.parse().ok()?;
        let block = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        Some((address, block))
    }

    fn deploy(&mut self) -> Result<Address, ChainError> {
        let nonce = self.backend.pending_nonce(self.wallet.address())?;
        let fees = self.backend.fees()?;
        let tx = self.wallet.sign(
            nonce,
            TxKind::Create,
            contract::creation_code(),
            1_000_000,
            fees,
        )?;
        self.backend.send_raw(&tx.raw)?;
        let receipt = self
            .wait_confirmed(tx.hash, Duration::from_secs(60))?
            .ok_or_else(|| {
                ChainError::Unreachable(
                    "the contract's deployment was not mined within 60 s".into(),
                )
            })?;
        if !receipt.success {
            return Err(ChainError::Rejected(
                "deploying the event contract failed on chain".into(),
            ));
        }
        let address = self.wallet.address().create(nonce);
        self.nonce = Some(nonce + 1);
        self.from_block = receipt.block;
        if let Some(path) = self.remembered_path(self.wallet.chain_id) {
            // Losing this file only means deploying again next time.
            let _ = std::fs::write(path, format!("{address} {}\n", receipt.block));
        }
        Ok(address)
    }

    /// The sequence number the contract expects next for `session`.
    pub fn expected_seq(&mut self, session: u64) -> Result<u64, ChainError> {
        let address = self.prepare()?;
        let out = self.backend.call(
            self.wallet.address(),
            address,
            contract::next_seq_call(session),
        )?;
        contract::decode_next_seq(&out)
    }

    /// Forgets the nonce: the next send asks the node for its pending count.
    /// Called after any error on the way to a confirmation, since a lost or
    /// stuck transaction leaves the local count ahead of the chain's.
    pub fn forget_nonce(&mut self) {
        self.nonce = None;
    }

    /// Signs and sends a batch under the next nonce. After an error the
    /// nonce is resynced from the node's pending count on the next send.
    pub fn submit(&mut self, batch: &Batch) -> Result<B256, ChainError> {
        let address = self.prepare()?;
        let result = self.try_submit(address, batch);
        if result.is_err() {
            self.nonce = None;
        }
        result
    }

    fn try_submit(&mut self, address: Address, batch: &Batch) -> Result<B256, ChainError> {
        let nonce = match self.nonce {
            Some(n) => n,
            None => self.backend.pending_nonce(self.wallet.address())?,
        };
        let fees = self.backend.fees()?;
        let packed = super::event::pack_batch(&batch.events);
        let gas = record_gas_limit(packed.len());
        let input = contract::record_batch_call(batch.session, batch.first_seq, packed);
        let tx = self
            .wallet
            .sign(nonce, TxKind::Call(address), input, gas, fees)?;
        self.backend.send_raw(&tx.raw)?;
        self.nonce = Some(nonce + 1);
        Ok(tx.hash)
    }

    /// Waits until the transaction is mined and has the configured number
    /// of confirmations; `None` if that takes longer than `timeout`.
    pub fn wait_confirmed(
        &mut self,
        hash: B256,
        timeout: Duration,
    ) -> Result<Option<Receipt>, ChainError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(r) = self.backend.receipt(hash)? {
                if self.backend.final_when_mined() {
                    return Ok(Some(r));
                }
                let need = r.block + self.settings.confirmations.max(1) - 1;
                if self.backend.block_number()? >= need {
                    return Ok(Some(r));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Every recorded batch (of one session, or all), in chain order.
    /// Reading never deploys: no contract yet means no history.
    pub fn history(&mut self, session: Option<u64>) -> Result<Vec<RecordedBatch>, ChainError> {
        let Some(address) = self.locate(false)? else {
            return Ok(Vec::new());
        };
        let topics = [
            Some(contract::batch_topic()),
            session.map(contract::session_topic),
        ];
        let logs = self.backend.logs(address, topics, self.from_block)?;
        logs.iter()
            .filter_map(contract::decode_batch)
            .map(|r| {
                r.map_err(|e| ChainError::Other(format!("a recorded batch is unreadable ({e})")))
            })
            .collect()
    }
}
