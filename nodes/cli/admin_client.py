"""Operator commands to the running node, as `bcx` sends them (exchange.transport.admin),
with the node's answer shown in the display zone."""

from __future__ import annotations

from typing import Any

from exchange.transport import admin
from nodes.cli import render


class AdminClient(admin.AdminClient):
    """``call("report", numbers_found=[…], …)``: the node's answer, its times in the
    display zone (node.timezone) to the second, as every listing shows them."""

    def call(self, operation: str, **arguments: Any) -> Any:
        return render.localize_times(self.operate(operation, arguments))
