"""A police unit's node: report numbers, ask carriers about cases, hear what became of each.

The police node keeps, per report and number, the last outcome its bureau fed back;
a report is open until every number has a final outcome, and the scheduler escalates
a report whose feedback is overdue. A market regulator (``nodes.commerce``) reports
and hears back the same way.

``decisions`` holds the pure plans, ``tables`` the named queries, ``handlers`` the
received messages, ``commands`` the operator's, ``deadlines`` the overdue checks; what
``nodes.agency`` wires into a node is here.
"""

from nodes.police.commands import ask, report, withdraw
from nodes.police.deadlines import overdue
from nodes.police.handlers import HANDLERS

__all__ = ["HANDLERS", "ask", "overdue", "report", "withdraw"]
