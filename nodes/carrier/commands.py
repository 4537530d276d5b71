"""A carrier's operator commands: file a subscriber's appeal, report concentrated IDs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from exchange import messages
from exchange import numbers as numbering
from exchange.errors import OperationError
from exchange.messages import IdConcentrationReport
from exchange.node import Context
from nodes.carrier import decisions, tables
from nodes.carrier.subscribers import CONCENTRATION_THRESHOLD, hmac_key_id, id_hmac_key
from nodes.shared.batching import chunks


def appeal(ctx: Context, *, number: str, grounds: str) -> dict[str, Any]:
    """A subscriber contests a shutdown: appeal to the bureau whose notice cut the line."""
    decisions.check_grounds(grounds)
    e164 = numbering.normalise(number)
    notice_id = decisions.check_appeal(
        e164, tables.subscriber_system(ctx).lookup([e164]).get(e164))
    held = tables.notice(ctx.conn, notice_id)
    if held is None:
        raise OperationError(f"{e164} was suspended by {notice_id.hex()}, "
                             "which is no notice this node holds")
    decide_by = ctx.now + timedelta(hours=ctx.node.config.deadlines.appeal_hours)
    appeal_id = ctx.send(held.bureau, messages.Appeal(
        number=e164, grounds=grounds, notice_id=held.notice_id, decide_by=decide_by),
        in_reply_to=held.notice_id)
    tables.insert_appeal(ctx.conn, appeal_id=appeal_id, carrier=ctx.node.node_id, held=held,
                         number=e164, grounds=grounds, now=ctx.now, decide_by=decide_by)
    return {"appeal_id": appeal_id.hex(), "bureau": held.bureau, "number": e164,
            "decide_by": decide_by.isoformat()}


def id_concentration(ctx: Context, *, threshold: int = CONCENTRATION_THRESHOLD
                     ) -> dict[str, Any]:
    """Report ID holders with ``threshold``+ cards in this province to its bureau."""
    me = ctx.directory.member(ctx.node.node_id)
    bureau = ctx.directory.bureau_of(me.province)
    key = id_hmac_key(ctx.node.config.credentials_dir)
    holders = tables.subscriber_system(ctx).concentrated_holders(me.province, threshold)
    lines = decisions.holder_lines(holders, key=key)
    report_ids = [ctx.send(bureau.node_id, IdConcentrationReport(
        province=me.province, holders=tuple(part), hmac_key_id=hmac_key_id(key), as_of=ctx.now))
        for part in chunks(lines, 200)]
    return {"bureau": bureau.node_id, "holders": len(lines),
            "reports": [r.hex() for r in report_ids]}
