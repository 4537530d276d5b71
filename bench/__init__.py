"""bcx benchmarks (`make bench`): bcx measured against baselines run in the same invocation."""
