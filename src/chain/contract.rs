//! The `ParticleEvents` contract (contracts/ParticleEvents.sol) as Rust:
//! alloy's `sol!` bindings generated from the committed artifact, the
//! calldata of its calls and the decoding of its `Batch` logs.

use super::event::{DecodeError, GameEvent, unpack_batch};
use alloy::primitives::{Address, B256, Bytes};
use alloy::sol_types::{SolCall, SolEvent};

alloy::sol!(
    #[allow(missing_docs, clippy::too_many_arguments)]
    #[derive(Debug)]
    ParticleEvents,
    "assets/contracts/ParticleEvents.json"
);

/// The contract's creation code.
pub fn creation_code() -> Bytes {
    ParticleEvents::BYTECODE.clone()
}

/// Calldata of `recordBatch(session, firstSeq, packed)`.
pub fn record_batch_call(session: u64, first_seq: u64, packed: Vec<u8>) -> Bytes {
    ParticleEvents::recordBatchCall {
        session,
        firstSeq: first_seq,
        packed: packed.into(),
    }
    .abi_encode()
    .into()
}

/// The session, first sequence number and events of `recordBatch`
/// calldata; `None` for any other call or calldata that does not decode.
pub fn decode_record_batch_call(input: &[u8]) -> Option<(u64, u64, Vec<GameEvent>)> {
    let call = ParticleEvents::recordBatchCall::abi_decode(input).ok()?;
    let events = unpack_batch(&call.packed).ok()?;
    Some((call.session, call.firstSeq, events))
}

/// Calldata of `nextSeq(session)`.
pub fn next_seq_call(session: u64) -> Bytes {
    <ParticleEvents::nextSeqCall as SolCall>::new((session,))
        .abi_encode()
        .into()
}

/// Decodes what `nextSeq` returned.
pub fn decode_next_seq(output: &[u8]) -> Result<u64, super::ChainError> {
    ParticleEvents::nextSeqCall::abi_decode_returns(output).map_err(|e| {
        super::ChainError::Other(format!(
            "the contract's nextSeq answer did not decode ({e})"
        ))
    })
}

/// The `Batch` event's topic 0.
pub fn batch_topic() -> B256 {
    ParticleEvents::Batch::SIGNATURE_HASH
}

/// A session id as the indexed topic the node filters on.
pub fn session_topic(session: u64) -> B256 {
    B256::left_padding_from(&session.to_be_bytes())
}

/// One recorded batch, read back from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedBatch {
    pub session: u64,
    pub first_seq: u64,
    pub events: Vec<GameEvent>,
    pub block: u64,
    pub tx: B256,
}

/// A raw log of the contract, as a backend returns it.
#[derive(Debug, Clone)]
pub struct RawLog {
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Bytes,
    pub block: u64,
    pub tx: B256,
}

/// Decodes a `Batch` log; other logs are `None`.
pub fn decode_batch(log: &RawLog) -> Option<Result<RecordedBatch, DecodeError>> {
    if log.topics.first() != Some(&batch_topic()) {
        return None;
    }
    let data = alloy::primitives::LogData::new(log.topics.clone(), log.data.clone())?;
    let event = match ParticleEvents::Batch::decode_log_data(&data) {
        Ok(e) => e,
        Err(_) => return Some(Err(DecodeError("a Batch log that does not decode"))),
    };
    Some(unpack_batch(&event.packed).map(|events| RecordedBatch {
        session: event.session,
        first_seq: event.firstSeq,
        events,
        block: log.block,
        tx: log.tx,
    }))
}

/// A revert's reason in words, from the contract's custom errors.
pub fn describe_revert(output: &[u8]) -> String {
    use ParticleEvents::ParticleEventsErrors as E;
    use alloy::sol_types::SolInterface;
    match E::abi_decode(output) {
        Ok(E::OutOfOrder(e)) => format!(
            "the contract expects event {} of session {} next, not {}",
            e.expected, e.session, e.got
        ),
        Ok(E::NotOwner(_)) => {
            "the signing account is not the one that deployed the contract".to_string()
        }
        Ok(E::EmptyBatch(_)) => "the batch was empty".to_string(),
        Err(_) => format!(
            "the transaction reverted (0x{})",
            alloy::hex::encode(output)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::event::{EventBody, pack_batch};

    #[test]
    fn calldata_and_logs_round_trip() {
        let events = vec![GameEvent::new(
            4,
            EventBody::SessionStart {
                seed: 42,
                config_hash: 7,
            },
        )];
        let call = record_batch_call(9, 0, pack_batch(&events));
        let decoded = ParticleEvents::recordBatchCall::abi_decode(&call).unwrap();
        assert_eq!((decoded.session, decoded.firstSeq), (9, 0));
        let log = ParticleEvents::Batch {
            session: 9,
            firstSeq: 0,
            packed: pack_batch(&events).into(),
        }
        .encode_log_data();
        let raw = RawLog {
            address: Address::ZERO,
            topics: log.topics().to_vec(),
            data: log.data.clone(),
            block: 3,
            tx: B256::ZERO,
        };
        assert_eq!(raw.topics[1], session_topic(9));
        let batch = decode_batch(&raw).unwrap().unwrap();
        assert_eq!((batch.session, batch.events), (9, events));
        assert!(!creation_code().is_empty());
    }
}
