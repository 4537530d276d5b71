"""The national office's node: it hears every escalation and every bureau's progress.

``handlers`` stores what arrives, ``tables`` writes and lists it; the office has no
operator commands of its own and no deadlines.
"""

from nodes.office.handlers import HANDLERS

__all__ = ["HANDLERS"]
