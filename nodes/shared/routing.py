"""Where a reported number goes: the carrier and province that serve it, and a bureau's
triage of each number of a report (reject, link, notice, forward, unroutable).

Pure apart from ``router_for``, which keeps one Router per directory version.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from exchange import numbers
from exchange.errors import NumberError, UnknownMemberError
from exchange.identity import Directory, Member, Role
from exchange.node import Context

# phonenumbers' carrier names for mainland blocks -> the carrier ids in node ids.
CARRIER_IDS = {"China Mobile": "cmcc", "China Unicom": "cucc", "China Telecom": "ctcc"}


@dataclass(frozen=True, slots=True)
class Router:
    """Which carrier node and province serve a number: the directory's plan over the default.

    The default plan is phonenumbers' offline data (host carrier and home province of
    every 7-digit block); the office's directory overrides it for reseller blocks,
    ported ranges and local corrections (docs/formats.md#numbers).
    """

    plan: numbers.NumberingPlan

    @classmethod
    def for_directory(cls, directory: Directory) -> Router:
        return cls(numbers.NumberingPlan(directory.numbering_plan))

    def route(self, number: str) -> numbers.Route:
        block = self.block_of(number)
        return numbers.Route(number=number, carrier_node=block.carrier_node,
                             province=block.province, reseller=block.reseller,
                             block=block.prefix)

    def block_of(self, number: str) -> numbers.NumberBlock:
        """The block serving ``number`` (what ``route`` says, without a Route per number)."""
        # The directory's plan holds a few override blocks: most numbers fall through to
        # the default plan, without an error built for each (block_of returns None).
        block = self.plan.block_of(number)
        if block is None:
            prefix = number[:_BLOCK_KEY]
            block = _BLOCKS.get(prefix)
            if block is None:
                block = numbers.default_block(number, carriers=CARRIER_IDS)
                if len(_BLOCKS) < _MAX_BLOCKS:
                    _BLOCKS[prefix] = block
        return block


# phonenumbers' data resolves mainland mobiles by their first 7 digits ("+86" and 7 = 10
# characters); its lookups cost more than the rest of a report's handling, so each block
# found is remembered (there are about 50,000 allocated blocks).
_BLOCK_KEY = 10
_MAX_BLOCKS = 1 << 16
_BLOCKS: dict[str, numbers.NumberBlock] = {}


@functools.lru_cache(maxsize=1 << 16)
def judge_number(raw: str) -> tuple[str, str]:
    """``(E.164, "")`` for an actionable number, ``("", reason)`` otherwise (pure, cached)."""
    try:
        return numbers.check_actionable(raw), ""
    except NumberError as e:
        return "", str(e)


class Disposition(enum.Enum):
    """What a bureau's triage does with one reported number."""

    REJECT = "reject"
    KNOWN = "known"  # already handled in this province: link, no second notice
    NOTICE = "notice"
    FORWARD = "forward"
    UNROUTABLE = "unroutable"


@dataclass(frozen=True, slots=True)
class Triage:
    """A bureau's decision on one reported number."""

    reported: str  # as the report gave it
    disposition: Disposition
    number: str = ""  # E.164, when it normalised
    target: str = ""  # carrier node (NOTICE) or bureau node (FORWARD)
    reason: str = ""


def is_member_carrier(directory: Directory, node_id: str) -> bool:
    """Whether ``node_id`` is a carrier the directory lists."""
    return directory.has_member(node_id) and directory.member(node_id).role is Role.CARRIER


def triage(
    reported: Iterable[str],
    *,
    province: str,
    known: Iterable[str],
    router: Router,
    directory: Directory,
) -> list[Triage]:
    """Decide, per number of a report, what this province's bureau does with it.

    Invalid and never-actionable numbers are rejected with the reason; a number this
    bureau already handles (``known``) or that appears twice in the report is linked,
    not noticed again; another province's number goes to that province's bureau; the
    rest go to the carrier the numbering plan names, if it is a member.
    """
    known_set = set(known)
    seen: set[str] = set()
    out: list[Triage] = []
    is_carrier: dict[str, bool] = {}  # per carrier node: a bulk report names a few
    for raw in reported:
        number, reason = judge_number(raw)
        if not number:
            out.append(Triage(raw, Disposition.REJECT, reason=reason))
        elif number in known_set or number in seen:
            out.append(Triage(raw, Disposition.KNOWN, number))
        else:
            seen.add(number)
            out.append(_route_new(raw, number, province=province, router=router,
                                  directory=directory, is_carrier=is_carrier))
    return out


def _route_new(raw: str, number: str, *, province: str, router: Router,
               directory: Directory, is_carrier: dict[str, bool]) -> Triage:
    """Where a valid number this bureau does not hold yet goes."""
    try:
        block = router.block_of(number)
    except NumberError as e:
        return Triage(raw, Disposition.UNROUTABLE, number, reason=str(e))
    if block.province != province:
        return _forward(raw, number, block.province, directory)
    carrier = block.carrier_node
    member_carrier = is_carrier.get(carrier)
    if member_carrier is None:
        member_carrier = is_carrier[carrier] = is_member_carrier(directory, carrier)
    if not member_carrier:
        return Triage(raw, Disposition.UNROUTABLE, number, reason=(
            f"block {block.prefix} is served by {carrier}, which is not a "
            "carrier in the directory"))
    return Triage(raw, Disposition.NOTICE, number, target=carrier)


def _forward(raw: str, number: str, province: str, directory: Directory) -> Triage:
    """Another province's number: to that province's bureau, if it has one."""
    try:
        bureau: Member | None = directory.bureau_of(province)
    except UnknownMemberError:
        bureau = None
    if bureau is None:
        return Triage(raw, Disposition.UNROUTABLE, number, reason=(
            f"served in province {province!r}, which has no bureau in the directory"))
    return Triage(raw, Disposition.FORWARD, number, target=bureau.node_id)


_routers: dict[tuple[int, int], Router] = {}


def router_for(ctx: Context) -> Router:
    """The Router of the directory in force on ``ctx``'s node (one per version)."""
    d = ctx.directory
    key = (id(d), d.version)
    r = _routers.get(key)
    if r is None:
        _routers.clear()
        r = _routers[key] = Router.for_directory(d)
    return r


def forward_thread(origin: str, report_id: bytes) -> str:
    """The thread of a report one bureau forwards to another: who reported, which report.

    For people reading a ledger only: no check reads it back; the origin is proven by the
    reporter's envelope the forward carries (rule forwarded-origin)."""
    return f"forwarded:{origin}:{report_id.hex()}"
