// SPDX-License-Identifier: Apache-2.0
// Stele batch-root anchor: docs/FORMAT.md §6. Records (batchId, root, size) once per batch id.
// Compiled by ingest/scripts/compile-contract.ts into SteleAnchor.json (checked in; a test recompiles it).
pragma solidity 0.8.37;

contract SteleAnchor {
    /// One anchored batch. Packed into two storage slots (root; size + blockNumber + timestamp).
    struct Anchor {
        bytes32 root;
        uint64 size;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// The deployer; the only account allowed to anchor.
    address public immutable owner;

    /// batchId -> the anchor; root == 0 means "not anchored" (EmptyRoot keeps that unambiguous).
    mapping(uint64 => Anchor) public anchors;

    /// The public proof of an anchor: verifiers find this log in the transaction receipt (FORMAT.md §6).
    event Anchored(uint64 indexed batchId, bytes32 indexed root, uint64 size, uint64 timestamp);

    error AlreadyAnchored(uint64 batchId);
    error NotOwner();
    error EmptyRoot();

    constructor() {
        owner = msg.sender;
    }

    function anchor(uint64 batchId, bytes32 root, uint64 size) external {
        if (msg.sender != owner) revert NotOwner();
        if (root == bytes32(0)) revert EmptyRoot();
        if (anchors[batchId].root != bytes32(0)) revert AlreadyAnchored(batchId);
        uint64 timestamp = uint64(block.timestamp);
        anchors[batchId] = Anchor(root, size, uint64(block.number), timestamp);
        emit Anchored(batchId, root, size, timestamp);
    }
}
