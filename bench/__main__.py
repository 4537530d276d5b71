"""`make bench`: not yet written; the benchmark issue fills this in."""

import sys

print("bench: the benchmark suite is not written yet (see the benchmarks issue)", file=sys.stderr)
sys.exit(2)
