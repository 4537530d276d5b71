"""A provincial communications bureau: reports in, notices out, outcomes back to the police.

``decisions`` holds the pure plans, ``tables`` the named queries, ``handlers`` the
message handlers (load → plan → persist → send), ``commands`` the operator commands and
``deadlines`` the overdue checks. What ``nodes.agency`` needs is named here.
"""

from __future__ import annotations

from nodes.bureau.commands import decide_appeal, issue_penalty, send_progress
from nodes.bureau.deadlines import overdue_notices
from nodes.bureau.handlers import HANDLERS

__all__ = ["HANDLERS", "decide_appeal", "issue_penalty", "overdue_notices", "send_progress"]
