"""The accountability ledger: RFC 9162 Merkle tree, checkpoints, proofs and their store."""
