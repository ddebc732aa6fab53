// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title Particle Forge's on-chain event log.
/// @notice One transaction records a batch of one game session's events.
/// The events travel packed (see src/chain/event.rs): the first two bytes
/// are the batch's event count, big-endian, then the events back to back.
/// The contract only checks order: a batch must start at the sequence
/// number the session expects next, so a batch sent twice (a resend after a
/// crash, a retry after a timeout) is rejected instead of recorded twice.
contract ParticleEvents {
    /// The account that deployed the log; only it may record.
    address public immutable owner;

    /// The next sequence number each session expects.
    mapping(uint64 => uint64) public nextSeq;

    /// A recorded batch: events firstSeq .. firstSeq + count - 1.
    event Batch(uint64 indexed session, uint64 firstSeq, bytes packed);

    error NotOwner();
    error EmptyBatch();
    error OutOfOrder(uint64 session, uint64 expected, uint64 got);

    constructor() {
        owner = msg.sender;
    }

    function recordBatch(uint64 session, uint64 firstSeq, bytes calldata packed) external {
        if (msg.sender != owner) revert NotOwner();
        if (packed.length < 2) revert EmptyBatch();
        uint64 count = uint64(uint16(bytes2(packed[0:2])));
        if (count == 0) revert EmptyBatch();
        uint64 expected = nextSeq[session];
        if (firstSeq != expected) revert OutOfOrder(session, expected, firstSeq);
        nextSeq[session] = expected + count;
        emit Batch(session, firstSeq, packed);
    }
}
