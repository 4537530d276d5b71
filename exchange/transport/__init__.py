"""gRPC transport: the mTLS server, clients to peers and the delivery outbox."""
