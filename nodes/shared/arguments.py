"""Values an operator types, checked with an error that names the argument."""

from __future__ import annotations

from exchange.errors import OperationError
from exchange.messages import parse_message_id


def message_id_arg(text: str, what: str) -> bytes:
    """A message id an operator typed (32 hex digits, or dashed as a UUID)."""
    try:
        return parse_message_id(text.strip())
    except ValueError as e:
        raise OperationError(f"bad {what} id: {e}") from e
