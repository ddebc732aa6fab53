//! What the recorder needs of a chain, as plain blocking calls: the handful
//! of JSON-RPC methods a wallet uses. The embedded EVM and a remote node
//! both answer them, so everything above (deploying, batching, nonces,
//! reading history) is written once.

use super::contract::RawLog;
use super::wallet::Fees;
use alloy::primitives::{Address, B256, Bytes};

/// Why a chain call failed, sorted by what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The node did not answer (down, wrong URL, timed out).
    #[error("{0}")]
    Unreachable(String),
    /// The node refused the transaction (nonce, funds, gas, signature).
    #[error("{0}")]
    Rejected(String),
    /// The node answered but is not what the config names.
    #[error("{0}")]
    Misconfigured(String),
    /// Anything else the node said.
    #[error("{0}")]
    Other(String),
}

impl ChainError {
    /// The same kind of error, its message put in `wrap`'s words.
    pub fn reworded(self, wrap: impl FnOnce(&str) -> String) -> Self {
        match self {
            Self::Unreachable(m) => Self::Unreachable(wrap(&m)),
            Self::Rejected(m) => Self::Rejected(wrap(&m)),
            Self::Misconfigured(m) => Self::Misconfigured(wrap(&m)),
            Self::Other(m) => Self::Other(wrap(&m)),
        }
    }
}

/// A mined transaction's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub block: u64,
    pub gas_used: u64,
    pub success: bool,
    /// The revert data of a failed call, when the backend knows it.
    pub revert: Option<Bytes>,
}

/// A chain as the recorder sees it.
pub trait Backend: Send {
    /// "embedded" or "rpc".
    fn name(&self) -> &'static str;
    /// Where it is, for the log and the overlay (never a secret).
    fn describe(&self) -> String;
    /// A mined block can never be replaced (a single-node chain): waiting
    /// for more blocks on top would add nothing.
    fn final_when_mined(&self) -> bool {
        false
    }
    fn chain_id(&mut self) -> Result<u64, ChainError>;
    fn block_number(&mut self) -> Result<u64, ChainError>;
    fn code_at(&mut self, address: Address) -> Result<Bytes, ChainError>;
    /// The next nonce of `address`, counting transactions not yet mined.
    fn pending_nonce(&mut self, address: Address) -> Result<u64, ChainError>;
    fn fees(&mut self) -> Result<Fees, ChainError>;
    /// Submits a signed transaction; returns its hash.
    fn send_raw(&mut self, raw: &Bytes) -> Result<B256, ChainError>;
    fn receipt(&mut self, hash: B256) -> Result<Option<Receipt>, ChainError>;
    /// A read-only call against the latest state.
    fn call(&mut self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError>;
    /// The logs of `address` with these topics (`None` matches any), from
    /// block `from` on.
    fn logs(
        &mut self,
        address: Address,
        topics: [Option<B256>; 2],
        from: u64,
    ) -> Result<Vec<RawLog>, ChainError>;
}
