//! The account that signs the game's transactions. Its key comes from the
//! environment (RPC) or is the embedded chain's fixed development key; it is
//! never printed, and errors about it never contain it.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;

/// Fees of an EIP-1559 transaction, wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    pub max_fee: u128,
    pub priority_fee: u128,
}

/// A signed transaction ready for `eth_sendRawTransaction`.
#[derive(Debug, Clone)]
pub struct SignedTx {
    pub hash: B256,
    pub raw: Bytes,
}

/// A signing key and the chain it signs for.
pub struct Wallet {
    signer: PrivateKeySigner,
    pub chain_id: u64,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wallet({}, chain {})", self.address(), self.chain_id)
    }
}

impl Wallet {
    /// Parses a hex private key (with or without 0x). The error names the
    /// variable it came from, never the key.
    pub fn from_hex(key: &str, source: &str) -> Result<Self, super::OpenError> {
        let key = key.trim();
        let signer: PrivateKeySigner = key
            .parse()
            .map_err(|_| super::OpenError::BadKey(source.to_string()))?;
        Ok(Self {
            signer,
            chain_id: 0,
        })
    }

    /// The embedded chain's development key: fixed, funded at genesis,
    /// worth nothing anywhere else.
    pub fn embedded_dev() -> Self {
        let key = alloy::primitives::keccak256(b"particle-forge embedded chain dev key");
        let signer = PrivateKeySigner::from_bytes(&key).expect("a keccak digest is a valid key");
        Self {
            signer,
            chain_id: 0,
        }
    }

    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// Signs an EIP-1559 transaction.
    pub fn sign(
        &self,
        nonce: u64,
        to: TxKind,
        input: Bytes,
        gas_limit: u64,
        fees: Fees,
    ) -> Result<SignedTx, super::ChainError> {
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: fees.max_fee,
            max_priority_fee_per_gas: fees.priority_fee.min(fees.max_fee),
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        };
        let signature = self.signer.sign_transaction_sync(&mut tx).map_err(|e| {
            super::ChainError::Other(format!("signing the transaction failed ({e})"))
        })?;
        let envelope = TxEnvelope::from(tx.into_signed(signature));
        Ok(SignedTx {
            hash: *envelope.tx_hash(),
            raw: envelope.encoded_2718().into(),
        })
    }
}

/// Gas for `recordBatch` with `packed_len` bytes of events: the calldata
/// floor of EIP-7623 (40 gas a byte), the log (8 a byte plus memory), and
/// the storage write, with room to spare. Unused gas is not charged.
pub fn record_gas_limit(packed_len: usize) -> u64 {
    80_000 + 96 * packed_len as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::consensus::transaction::SignerRecoverable;
    use alloy::eips::eip2718::Decodable2718;

    #[test]
    fn signed_transactions_recover_to_the_signer() {
        let mut wallet = Wallet::embedded_dev();
        wallet.chain_id = 1337;
        let fees = Fees {
            max_fee: 2_000_000_000,
            priority_fee: 1,
        };
        let tx = wallet
            .sign(3, TxKind::Create, Bytes::from_static(&[1, 2]), 90_000, fees)
            .unwrap();
        let envelope = TxEnvelope::decode_2718(&mut tx.raw.as_ref()).unwrap();
        assert_eq!(envelope.recover_signer().unwrap(), wallet.address());
        assert_eq!(*envelope.tx_hash(), tx.hash);
    }

    #[test]
    fn a_bad_key_is_named_by_its_source_not_echoed() {
        let err = Wallet::from_hex("0xnot-a-key-secret", "PARTICLE_FORGE_PRIVATE_KEY")
            .unwrap_err()
            .to_string();
        assert!(err.contains("PARTICLE_FORGE_PRIVATE_KEY"));
        assert!(!err.contains("secret"));
        let anvil0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        let w = Wallet::from_hex(anvil0, "test").unwrap();
        assert_eq!(
            w.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }
}
