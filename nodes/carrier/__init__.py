"""A carrier's node: shut numbers down on notice, answer cases sealed, report channels and IDs.

``subscribers`` is the carrier's subscriber system (the interface a real one would
implement, and the SQL one the demo and the tests use); ``decisions`` holds the pure
plans, ``tables`` the named queries, ``handlers`` the received messages, ``commands``
the operator's, ``deadlines`` the overdue checks; what ``nodes.agency`` wires into a
node is here.
"""

from nodes.carrier.commands import appeal, id_concentration
from nodes.carrier.deadlines import overdue
from nodes.carrier.handlers import HANDLERS

__all__ = ["HANDLERS", "appeal", "id_concentration", "overdue"]
