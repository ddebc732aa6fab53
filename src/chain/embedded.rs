//! The embedded chain: an in-process EVM (revm) that runs the real contract
//! bytecode on signed transactions, mines one block per transaction (like
//! anvil's automine), keeps receipts and logs, and persists its blocks, so
//! `cargo run --release` records on chain with no node installed.
//!
//! Persistence is the block log `embedded-chain.log` in the data directory:
//! each block is a record (see `record`) holding its number, timestamp,
//! sender and raw signed transaction. Opening the chain replays every block
//! through the EVM, which rebuilds the state, receipts and logs exactly; a
//! torn last block is cut with a warning, as a node would drop an
//! unfinished block. The sender is the one recovered from the signature
//! when the block was mined: a node trusts its own database, and recovering
//! it again was 85% of opening the chain (about half a millisecond a block,
//! a cost that grew with every session played). Blocks written before the
//! sender was kept are recovered as they replay. A block is written to the
//! log before its state is committed, so a block the disk refuses is not
//! mined. Damage inside the log cuts it there; the intact blocks after the
//! damage wait in an unclaimed cut file (`record`), and their batches are
//! handed to the recorder (`take_cut_events`), which puts them back in the
//! journal and then claims the file — at the next start if a crash came
//! first.

use super::OpenError;
use super::backend::{Backend, ChainError, Receipt};
use super::contract::RawLog;
use super::event::GameEvent;
use super::record::{self, PastDamage, RecordFile};
use super::wallet::{Fees, Wallet};
use alloy::consensus::TxEnvelope;
use alloy::consensus::transaction::SignerRecoverable;
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::result::ExecutionResult;
use revm::database::{CacheDB, EmptyDB};
use revm::state::AccountInfo;
use revm::{Context, DatabaseRef, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The embedded chain's id (a private development chain).
pub const EMBEDDED_CHAIN_ID: u64 = 1337;
const MAGIC: &[u8; 8] = b"PFCHAIN1";
/// Gas price every block charges (a fixed base fee of 1 gwei).
const BASE_FEE: u64 = 1_000_000_000;
const BLOCK_GAS_LIMIT: u64 = 30_000_000;
/// Marks a block record that carries its sender: the byte after the
/// number and timestamp. A raw transaction starts with its type (below
/// 0x80), so a record without the sender never starts so.
const WITH_SENDER: u8 = 0xFF;

type Db = CacheDB<EmptyDB>;
type Evm = revm::handler::MainnetEvm<revm::handler::MainnetContext<Db>>;

/// The in-process chain. The state lives in `db`; an EVM is built around
/// it for each transaction (revm's EVM is not `Send`, the chain must be: it
/// lives on the sender's worker).
pub struct EmbeddedChain {
    db: Db,
    cfg: CfgEnv,
    block: BlockEnv,
    /// The block log; `None` for a read-only copy.
    file: Option<RecordFile>,
    /// The last mined block (0 = genesis).
    number: u64,
    receipts: HashMap<B256, Receipt>,
    logs: Vec<RawLog>,
    where_: String,
    /// The batches of intact blocks cut from the log with damage before
    /// them and not yet claimed, by cut file (`take_cut_events`).
    cut_events: Vec<CutBlocks>,
}

impl EmbeddedChain {
    /// Opens (or starts) the chain persisted in `dir` and replays it.
    /// Returns a warning when a torn or damaged block was cut. Intact
    /// blocks after a damaged one cannot be replayed (each stands on the
    /// state before it), so they are cut too; the events their batches
    /// recorded are kept for the recorder to send again
    /// (`take_cut_events`).
    pub fn open(dir: &Path) -> Result<(Self, Option<String>), OpenError> {
        let path = dir.join("embedded-chain.log");
        let opened = RecordFile::open(&path, MAGIC, PastDamage::Cut).map_err(|source| {
            OpenError::Embedded {
                path: path.clone(),
                source,
            }
        })?;
        let mut chain = Self::genesis(format!("embedded EVM ({})", path.display()));
        chain.replay(&opened.records)?;
        chain.file = Some(opened.file);
        chain.cut_events = record::unclaimed_cuts(&path)
            .map_err(|source| OpenError::Embedded {
                path: path.clone(),
                source,
            })?
            .into_iter()
            .map(|(file, blocks)| CutBlocks {
                file,
                batches: batches_in(&blocks),
            })
            .collect();
        Ok((chain, opened.warning))
    }

    /// The batches in blocks cut with damage and not yet claimed, by cut
    /// file, oldest first (once; none after).
    pub fn take_cut_events(&mut self) -> Vec<CutBlocks> {
        std::mem::take(&mut self.cut_events)
    }

    /// Reads the chain in `dir` without writing to it (for `chain
    /// history` while a game may be recording).
    pub fn open_read_only(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join("embedded-chain.log");
        let records =
            RecordFile::read_only(&path, MAGIC).map_err(|source| OpenError::EmbeddedRead {
                path: path.clone(),
                source,
            })?;
        let mut chain = Self::genesis(format!("embedded EVM ({})", path.display()));
        chain.replay(&records)?;
        Ok(chain)
    }

    fn genesis(where_: String) -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        // The development account starts with a million ether.
        db.insert_account_info(
            Wallet::embedded_dev().address(),
            AccountInfo {
                balance: U256::from(10u128.pow(24)),
                ..Default::default()
            },
        );
        let mut cfg = CfgEnv::default();
        cfg.chain_id = EMBEDDED_CHAIN_ID;
        let block = BlockEnv {
            gas_limit: BLOCK_GAS_LIMIT,
            basefee: BASE_FEE,
            prevrandao: Some(B256::ZERO),
            ..Default::default()
        };
        Self {
            db,
            cfg,
            block,
            file: None,
            number: 0,
            receipts: HashMap::new(),
            logs: Vec::new(),
            where_,
            cut_events: Vec::new(),
        }
    }

    fn replay(&mut self, blocks: &[Vec<u8>]) -> Result<(), OpenError> {
        for (i, block) in blocks.iter().enumerate() {
            let bad = || OpenError::MalformedBlock(i as u64 + 1);
            let LoggedBlock {
                number,
                timestamp,
                sender,
                raw,
            } = LoggedBlock::parse(block).ok_or_else(bad)?;
            let raw = Bytes::copy_from_slice(raw);
            if number != self.number + 1 {
                return Err(bad());
            }
            self.mine(&raw, timestamp, sender)
                .map_err(|source| OpenError::Replay { number, source })?;
        }
        Ok(())
    }

    /// Executes one transaction as the next block; returns its hash and
    /// sender. The sender is recovered from the signature unless `sender`
    /// gives it (a block of our own log, recovered when it was mined). An
    /// invalid transaction (bad signature, chain, nonce, funds) mines
    /// nothing. With a block log, the block is written to it (and synced)
    /// before its changes are committed: a block the log refused (a full
    /// disk) leaves the chain as it was, so the log always replays to it.
    fn mine(
        &mut self,
        raw: &Bytes,
        timestamp: u64,
        sender: Option<Address>,
    ) -> Result<(B256, Address), ChainError> {
        let envelope = TxEnvelope::decode_2718(&mut raw.as_ref())
            .map_err(|e| ChainError::Rejected(format!("the transaction does not decode ({e})")))?;
        let from = match sender {
            Some(from) => from,
            None => envelope.recover_signer().map_err(|_| {
                ChainError::Rejected("the transaction's signature is invalid".into())
            })?,
        };
        let TxEnvelope::Eip1559(signed) = &envelope else {
            return Err(ChainError::Rejected(
                "the embedded chain takes EIP-1559 transactions only".into(),
            ));
        };
        let tx = signed.tx();
        if tx.chain_id != EMBEDDED_CHAIN_ID {
            return Err(ChainError::Rejected(format!(
                "the transaction is for chain {}, this is chain {EMBEDDED_CHAIN_ID}",
                tx.chain_id
            )));
        }
        let tx_env = TxEnv::builder()
            .tx_type(Some(2))
            .caller(from)
            .gas_limit(tx.gas_limit)
            .max_fee_per_gas(tx.max_fee_per_gas)
            .gas_priority_fee(Some(tx.max_priority_fee_per_gas))
            .kind(tx.to)
            .value(tx.value)
            .data(tx.input.clone())
            .nonce(tx.nonce)
            .chain_id(Some(tx.chain_id))
            .build()
            .map_err(|e| ChainError::Rejected(format!("the transaction is invalid ({e:?})")))?;
        let number = self.number + 1;
        self.block.number = U256::from(number);
        self.block.timestamp = U256::from(timestamp);
        let mut evm = self.evm();
        let result = evm.transact_one(tx_env);
        let changes = evm.finalize();
        let kept = match &result {
            Ok(_) => self.log_block(number, timestamp, from, raw),
            Err(_) => Ok(()),
        };
        if result.is_ok() && kept.is_ok() {
            evm.commit(changes);
        }
        self.db = evm.ctx.journaled_state.database;
        let result = result.map_err(|e| {
            ChainError::Rejected(format!("the chain refused the transaction ({e})"))
        })?;
        kept?;
        self.number = number;
        let hash = *envelope.tx_hash();
        let (success, revert) = match &result {
            ExecutionResult::Success { .. } => (true, None),
            ExecutionResult::Revert { output, .. } => (false, Some(output.clone())),
            ExecutionResult::Halt { .. } => (false, None),
        };
        for log in result.logs() {
            self.logs.push(RawLog {
                address: log.address,
                topics: log.data.topics().to_vec(),
                data: log.data.data.clone(),
                block: number,
                tx: hash,
            });
        }
        self.receipts.insert(
            hash,
            Receipt {
                block: number,
                gas_used: result.tx_gas_used(),
                success,
                revert,
            },
        );
        Ok((hash, from))
    }

    /// Appends block `number` to the block log and syncs it (nothing
    /// without one: a read-only copy, or a replay of the log itself).
    fn log_block(
        &mut self,
        number: u64,
        timestamp: u64,
        from: Address,
        raw: &Bytes,
    ) -> Result<(), ChainError> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let block = LoggedBlock {
            number,
            timestamp,
            sender: Some(from),
            raw,
        }
        .to_bytes();
        file.append([block.as_slice()])
            .and_then(|()| file.sync())
            .map_err(|e| {
                ChainError::Other(format!("cannot write the embedded chain's block log ({e})"))
            })
    }

    /// An EVM over the chain's state; hand the state back with
    /// `self.db = evm.ctx.journaled_state.database`.
    fn evm(&mut self) -> Evm {
        Context::mainnet()
            .with_cfg(self.cfg.clone())
            .with_block(self.block.clone())
            .with_db(std::mem::replace(
                &mut self.db,
                CacheDB::new(EmptyDB::default()),
            ))
            .build_mainnet()
    }

    fn account(&self, address: Address) -> AccountInfo {
        self.db
            .basic_ref(address)
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// A block record of the log:
/// number, timestamp, then the sender (marked `WITH_SENDER`; logs older
/// than that have none) and the raw signed transaction.
struct LoggedBlock<'a> {
    number: u64,
    timestamp: u64,
    sender: Option<Address>,
    raw: &'a [u8],
}

impl<'a> LoggedBlock<'a> {
    fn to_bytes(&self) -> Vec<u8> {
        let mut block = Vec::with_capacity(37 + self.raw.len());
        block.extend_from_slice(&self.number.to_le_bytes());
        block.extend_from_slice(&self.timestamp.to_le_bytes());
        if let Some(sender) = self.sender {
            block.push(WITH_SENDER);
            block.extend_from_slice(sender.as_slice());
        }
        block.extend_from_slice(self.raw);
        block
    }

    /// `None` for a record too short for its parts.
    fn parse(block: &'a [u8]) -> Option<Self> {
        let number = u64::from_le_bytes(block.get(..8)?.try_into().ok()?);
        let timestamp = u64::from_le_bytes(block.get(8..16)?.try_into().ok()?);
        let (sender, raw) = match &block[16..] {
            [WITH_SENDER, rest @ ..] if rest.len() > 20 => {
                (Some(Address::from_slice(&rest[..20])), &rest[20..])
            }
            [WITH_SENDER, ..] => return None,
            rest => (None, rest),
        };
        Some(Self {
            number,
            timestamp,
            sender,
            raw,
        })
    }
}

/// The blocks of one unclaimed cut file (`record::claim_cut` it once
/// their events are safe).
#[derive(Debug, Clone, PartialEq)]
pub struct CutBlocks {
    pub file: PathBuf,
    pub batches: Vec<CutBatch>,
}

/// A batch recorded in a block that was cut from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct CutBatch {
    pub session: u64,
    pub first_seq: u64,
    pub events: Vec<GameEvent>,
}

/// The batches that `recordBatch` transactions in these block records
/// carried; blocks and calls of any other kind are skipped.
fn batches_in(blocks: &[Vec<u8>]) -> Vec<CutBatch> {
    let mut found = Vec::new();
    for block in blocks {
        let Some(LoggedBlock { raw, .. }) = LoggedBlock::parse(block) else {
            continue;
        };
        let Ok(envelope) = TxEnvelope::decode_2718(&mut &raw[..]) else {
            continue;
        };
        let TxEnvelope::Eip1559(signed) = &envelope else {
            continue;
        };
        if let Some((session, first_seq, events)) =
            super::contract::decode_record_batch_call(&signed.tx().input)
        {
            found.push(CutBatch {
                session,
                first_seq,
                events,
            });
        }
    }
    found
}

impl Backend for EmbeddedChain {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn describe(&self) -> String {
        self.where_.clone()
    }

    fn final_when_mined(&self) -> bool {
        true
    }

    fn chain_id(&mut self) -> Result<u64, ChainError> {
        Ok(EMBEDDED_CHAIN_ID)
    }

    fn block_number(&mut self) -> Result<u64, ChainError> {
        Ok(self.number)
    }

    fn code_at(&mut self, address: Address) -> Result<Bytes, ChainError> {
        let info = self.account(address);
        let code = match info.code {
            Some(code) => code,
            None => self.db.code_by_hash_ref(info.code_hash).unwrap_or_default(),
        };
        Ok(code.original_bytes())
    }

    fn pending_nonce(&mut self, address: Address) -> Result<u64, ChainError> {
        Ok(self.account(address).nonce)
    }

    fn fees(&mut self) -> Result<Fees, ChainError> {
        Ok(Fees {
            max_fee: 2 * BASE_FEE as u128,
            priority_fee: 0,
        })
    }

    fn send_raw(&mut self, raw: &Bytes) -> Result<B256, ChainError> {
        let (hash, _) = self.mine(raw, super::record::unix_secs(), None)?;
        Ok(hash)
    }

    fn receipt(&mut self, hash: B256) -> Result<Option<Receipt>, ChainError> {
        Ok(self.receipts.get(&hash).cloned())
    }

    fn call(&mut self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        // `transact` runs the call on the latest state and commits nothing.
        let tx = TxEnv::builder()
            .tx_type(Some(2))
            .caller(from)
            .gas_limit(1_000_000)
            .max_fee_per_gas(BASE_FEE as u128)
            .gas_priority_fee(Some(0))
            .kind(TxKind::Call(to))
            .data(data)
            .nonce(self.account(from).nonce)
            .chain_id(Some(EMBEDDED_CHAIN_ID))
            .build()
            .map_err(|e| ChainError::Other(format!("the call is invalid ({e:?})")))?;
        let mut evm = self.evm();
        let result = evm.transact(tx);
        self.db = evm.ctx.journaled_state.database;
        let result = result.map_err(|e| ChainError::Other(format!("the call failed ({e})")))?;
        match result.result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(ChainError::Other(format!(
                "the call reverted: {}",
                super::contract::describe_revert(&output)
            ))),
            ExecutionResult::Halt { reason, .. } => {
                Err(ChainError::Other(format!("the call halted ({reason:?})")))
            }
        }
    }

    fn logs(
        &mut self,
        address: Address,
        topics: [Option<B256>; 2],
        from: u64,
    ) -> Result<Vec<RawLog>, ChainError> {
        Ok(self
            .logs
            .iter()
            .filter(|l| l.address == address && l.block >= from)
            .filter(|l| {
                topics
                    .iter()
                    .enumerate()
                    .all(|(i, t)| t.is_none() || l.topics.get(i) == t.as_ref())
            })
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pf-embedded-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_block_the_log_refuses_is_not_mined() {
        let dir = scratch("full-disk");
        let dev = Wallet::embedded_dev().address();
        let (mut chain, _) = EmbeddedChain::open(&dir).unwrap();
        chain.send_raw(&tx(0)).unwrap();
        // The disk fills up: the block is refused, and the chain stays as
        // its log has it (the same nonce is still the next one).
        crate::chain::record::full_disk::set(&dir, true);
        let e = chain.send_raw(&tx(1)).unwrap_err();
        assert!(e.to_string().contains("block log"), "{e}");
        assert_eq!(chain.block_number().unwrap(), 1);
        assert_eq!(chain.pending_nonce(dev).unwrap(), 1);
        // Room again: the same transaction goes through, and the log
        // replays to the same chain.
        crate::chain::record::full_disk::set(&dir, false);
        let hash = chain.send_raw(&tx(1)).unwrap();
        assert_eq!(chain.block_number().unwrap(), 2);
        drop(chain);
        let (mut again, warning) = EmbeddedChain::open(&dir).unwrap();
        assert!(warning.is_none(), "{warning:?}");
        assert_eq!(again.block_number().unwrap(), 2);
        assert_eq!(again.pending_nonce(dev).unwrap(), 2);
        assert!(again.receipt(hash).unwrap().unwrap().success);
    }

    /// A signed call from the development account with `nonce`: a contract
    /// creation that stores nothing, enough to move state and mine a block.
    fn tx(nonce: u64) -> Bytes {
        let mut wallet = Wallet::embedded_dev();
        wallet.chain_id = EMBEDDED_CHAIN_ID;
        let fees = Fees {
            max_fee: 2 * BASE_FEE as u128,
            priority_fee: 0,
        };
        // Init code: return nothing (PUSH1 0, PUSH1 0, RETURN).
        let init = Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xf3]);
        wallet
            .sign(nonce, TxKind::Create, init, 100_000, fees)
            .unwrap()
            .raw
    }

    #[test]
    fn reopening_replays_blocks_with_their_sender_and_older_blocks_without() {
        let dir = scratch("replay");
        let dev = Wallet::embedded_dev().address();
        let (mut chain, warning) = EmbeddedChain::open(&dir).unwrap();
        assert!(warning.is_none());
        let hashes: Vec<B256> = (0..3).map(|n| chain.send_raw(&tx(n)).unwrap()).collect();
        assert_eq!(chain.block_number().unwrap(), 3);
        drop(chain);

        // The blocks on disk carry their sender after the number and time.
        let path = dir.join("embedded-chain.log");
        let records = RecordFile::read_only(&path, MAGIC).unwrap();
        assert_eq!(records.len(), 3);
        for r in &records {
            assert_eq!(r[16], WITH_SENDER);
            assert_eq!(Address::from_slice(&r[17..37]), dev);
        }

        // A log as older versions wrote it (no sender) replays the same.
        let old: Vec<Vec<u8>> = records
            .iter()
            .map(|r| [&r[..16], &r[37..]].concat())
            .collect();
        let old_dir = scratch("replay-old");
        {
            let mut file =
                RecordFile::open(&old_dir.join("embedded-chain.log"), MAGIC, PastDamage::Cut)
                    .unwrap()
                    .file;
            file.append(old.iter().map(|r| r.as_slice())).unwrap();
            file.sync().unwrap();
        }
        for dir in [&dir, &old_dir] {
            let (mut chain, _) = EmbeddedChain::open(dir).unwrap();
            assert_eq!(chain.block_number().unwrap(), 3);
            assert_eq!(chain.pending_nonce(dev).unwrap(), 3);
            for h in &hashes {
                let receipt = chain.receipt(*h).unwrap().expect("a receipt after replay");
                assert!(receipt.success);
            }
            // And it goes on from there.
            chain.send_raw(&tx(3)).unwrap();
            assert_eq!(chain.block_number().unwrap(), 4);
        }

        // A sender-marked block cut short is refused with a clear message.
        let bad_dir = scratch("replay-bad");
        {
            let mut file =
                RecordFile::open(&bad_dir.join("embedded-chain.log"), MAGIC, PastDamage::Cut)
                    .unwrap()
                    .file;
            let short = [&records[0][..17], &[1, 2, 3][..]].concat();
            file.append([short.as_slice()]).unwrap();
            file.sync().unwrap();
        }
        let err = EmbeddedChain::open(&bad_dir)
            .err()
            .expect("a malformed block");
        assert!(matches!(err, OpenError::MalformedBlock(1)), "{err}");
        assert!(err.to_string().contains("malformed"), "{err}");
        for d in [dir, old_dir, bad_dir] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
