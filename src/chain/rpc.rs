//! A remote chain over JSON-RPC (anvil in the tests, a testnet for real
//! use), through alloy's HTTP provider. Every call is bounded by a timeout,
//! so a hung node costs the sender a retry, never a stuck thread. The
//! provider is async; the recorder's sender is one blocking thread, so each
//! call runs on a small current-thread tokio runtime this backend owns.

use super::OpenError;
use super::backend::{Backend, ChainError, Receipt};
use super::contract::RawLog;
use super::wallet::Fees;
use alloy::network::{Ethereum, ReceiptResponse};
use alloy::primitives::{Address, B256, Bytes, TxKind};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, TransactionInput, TransactionRequest};
use alloy::transports::{RpcError, TransportErrorKind};
use std::future::Future;
use std::time::Duration;

/// A JSON-RPC node.
pub struct RpcChain {
    runtime: tokio::runtime::Runtime,
    provider: RootProvider<Ethereum>,
    url: String,
    timeout: Duration,
}

impl RpcChain {
    /// Checks the URL and prepares the client; does not touch the network.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, OpenError> {
        let parsed = parse_url(url)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OpenError::Runtime)?;
        let provider = {
            let _inside = runtime.enter();
            RootProvider::<Ethereum>::new_http(parsed)
        };
        Ok(Self {
            runtime,
            provider,
            url: url.to_string(),
            timeout,
        })
    }

    fn run<T, E: std::fmt::Display + IntoChainError>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ChainError> {
        match self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, call).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into_chain_error(&self.url, what)),
            Err(_) => Err(ChainError::Unreachable(format!(
                "the node at {} did not answer {what} within {:.1} s; check that it is up",
                self.url,
                self.timeout.as_secs_f32()
            ))),
        }
    }
}

/// The node's URL, if this build can talk to it (plain http: no TLS
/// library is linked).
pub fn parse_url(url: &str) -> Result<alloy::transports::http::reqwest::Url, OpenError> {
    let parsed: alloy::transports::http::reqwest::Url = url
        .parse()
        .map_err(|_| OpenError::NotAUrl(url.to_string()))?;
    match parsed.scheme() {
        "http" => Ok(parsed),
        "https" => Err(OpenError::Https(url.to_string())),
        other => Err(OpenError::Scheme {
            url: url.to_string(),
            scheme: other.to_string(),
        }),
    }
}

/// Sorting a transport error into what the user can do.
trait IntoChainError {
    fn into_chain_error(self, url: &str, what: &str) -> ChainError;
}

impl IntoChainError for RpcError<TransportErrorKind> {
    fn into_chain_error(self, url: &str, what: &str) -> ChainError {
        let text = first_line(&self.to_string());
        match &self {
            RpcError::Transport(_) => ChainError::Unreachable(format!(
                "cannot reach the node at {url} ({text}); start it or fix --rpc-url"
            )),
            RpcError::ErrorResp(payload) => {
                let msg = payload.message.to_lowercase();
                if msg.contains("insufficient funds") {
                    ChainError::Rejected(
                        "the signing account cannot pay for gas (insufficient funds); fund it or use another key".into(),
                    )
                } else if msg.contains("nonce") {
                    ChainError::Rejected(format!(
                        "the node refused the nonce ({})",
                        payload.message
                    ))
                } else {
                    ChainError::Other(format!("the node refused {what}: {}", payload.message))
                }
            }
            _ => ChainError::Other(format!("{what} failed: {text}")),
        }
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}

impl Backend for RpcChain {
    fn name(&self) -> &'static str {
        "rpc"
    }

    fn describe(&self) -> String {
        format!("JSON-RPC node at {}", self.url)
    }

    fn chain_id(&mut self) -> Result<u64, ChainError> {
        self.run("eth_chainId", self.provider.get_chain_id().into_future())
    }

    fn block_number(&mut self) -> Result<u64, ChainError> {
        self.run(
            "eth_blockNumber",
            self.provider.get_block_number().into_future(),
        )
    }

    fn code_at(&mut self, address: Address) -> Result<Bytes, ChainError> {
        self.run(
            "eth_getCode",
            self.provider.get_code_at(address).into_future(),
        )
    }

    fn pending_nonce(&mut self, address: Address) -> Result<u64, ChainError> {
        self.run(
            "eth_getTransactionCount",
            self.provider
                .get_transaction_count(address)
                .pending()
                .into_future(),
        )
    }

    fn fees(&mut self) -> Result<Fees, ChainError> {
        let estimate = self.run("eth_feeHistory", self.provider.estimate_eip1559_fees())?;
        Ok(Fees {
            max_fee: estimate.max_fee_per_gas,
            priority_fee: estimate.max_priority_fee_per_gas,
        })
    }

    fn send_raw(&mut self, raw: &Bytes) -> Result<B256, ChainError> {
        let pending = self.run(
            "eth_sendRawTransaction",
            self.provider.send_raw_transaction(raw),
        )?;
        Ok(*pending.tx_hash())
    }

    fn receipt(&mut self, hash: B256) -> Result<Option<Receipt>, ChainError> {
        let receipt = self.run(
            "eth_getTransactionReceipt",
            self.provider.get_transaction_receipt(hash).into_future(),
        )?;
        Ok(receipt.and_then(|r| {
            Some(Receipt {
                block: r.block_number()?,
                gas_used: r.gas_used(),
                success: r.status(),
                revert: None,
            })
        }))
    }

    fn call(&mut self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        let request = TransactionRequest {
            from: Some(from),
            to: Some(TxKind::Call(to)),
            input: TransactionInput::new(data),
            ..Default::default()
        };
        self.run("eth_call", self.provider.call(request).into_future())
    }

    fn logs(
        &mut self,
        address: Address,
        topics: [Option<B256>; 2],
        from: u64,
    ) -> Result<Vec<RawLog>, ChainError> {
        let mut filter = Filter::new().address(address).from_block(from);
        if let Some(t) = topics[0] {
            filter = filter.event_signature(t);
        }
        if let Some(t) = topics[1] {
            filter = filter.topic1(t);
        }
        let logs = self.run("eth_getLogs", self.provider.get_logs(&filter))?;
        Ok(logs
            .into_iter()
            .map(|l| RawLog {
                address: l.inner.address,
                topics: l.inner.data.topics().to_vec(),
                data: l.inner.data.data.clone(),
                block: l.block_number.unwrap_or(0),
                tx: l.transaction_hash.unwrap_or_default(),
            })
            .collect())
    }
}
