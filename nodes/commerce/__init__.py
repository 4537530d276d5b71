"""A market regulator's node: report vendors selling unregistered cards, and their numbers.

A market regulator reports numbers the way police do and hears back the same way, so
its handlers are the police's (``nodes.police``); its own command is the channel report.
"""

from collections.abc import Mapping

from exchange.node import Handler
from nodes.commerce.commands import channel_report
from nodes.police.handlers import on_circular

HANDLERS: Mapping[str, Handler] = {"circular": on_circular}

__all__ = ["HANDLERS", "channel_report"]
