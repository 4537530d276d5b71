"""How many numbers go in one message a node sends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

# Numbers per message a node sends (reports, notices, circulars): far below the
# receivers' limit, and small enough that one message is one quick transaction.
CHUNK = 1000

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for k in range(0, len(items), size):
        yield items[k:k + size]
