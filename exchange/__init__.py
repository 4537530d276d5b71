"""bcx protocol library: identity, envelopes, ledger and transport. Knows nothing of agencies."""
