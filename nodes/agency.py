"""Building a node for an agency: the exchange runtime plus that agency's handlers."""

from __future__ import annotations

from exchange.config import NodeConfig
from exchange.node import Node


def make_node(config: NodeConfig) -> Node:
    """The node for ``config``. Agencies' workflow handlers register here as they land."""
    return Node(config)
