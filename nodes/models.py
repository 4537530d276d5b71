"""The agencies' workflow tables, on the exchange's MetaData (one alembic history).

Every node's database has all of them (one schema, one migration history); each role
fills the ones its workflows use. Unlike the ledger, these tables change as work
progresses: the ledger is the record of what was said and done, these are the state
that the ledger's messages built. Times are integer microseconds since the epoch (UTC),
message ids the 16-byte UUIDv7 of the message that created the row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    false,
)

from exchange.schema import metadata
from exchange.storage.statements import DriverStatement

__all__ = ["metadata"]

NODE = 253  # longest node id (a DNS name)
NUMBER = 64  # a reported number as found; E.164 once normalised

# --- Number reports (police: sent; bureau: received or forwarded) -----------------

reports = Table(
    "wf_reports",
    metadata,
    Column("report_id", LargeBinary(16), primary_key=True),
    # The police or commerce unit that reported, even when a bureau forwarded it.
    Column("origin", String(NODE), nullable=False),
    # Who sent it to this node (the origin, or the bureau that forwarded it) or, on the
    # reporting node, the bureau it went to.
    Column("counterpart", String(NODE), nullable=False),
    Column("category", String(16), nullable=False),
    Column("case_number", String(128), nullable=False),
    Column("numbers_total", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("feedback_due_at", BigInteger, nullable=False),
    Column("withdrawn_at", BigInteger, nullable=True),
    Column("escalated_at", BigInteger, nullable=True),
)

# One row per number of a report: what became of it, from this node's point of view.
report_numbers = Table(
    "wf_report_numbers",
    metadata,
    Column("report_id", LargeBinary(16), primary_key=True),
    Column("number", String(NUMBER), primary_key=True),
    Column("status", String(24), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("carrier_node", String(NODE), nullable=False, default=""),
    # True once the outcome is final (shut down, refused, rejected, …) and, on a
    # bureau, fed back to the reporter; reports with a non-final number are open.
    Column("final", Boolean, nullable=False, default=False),
    # The Circular that told the reporter this status (sent by a bureau, received by police).
    Column("feedback_id", LargeBinary(16), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    # The bureau a forwarded number went to (status "forwarded"), else NULL.
    Column("forwarded_to", String(NODE), nullable=True),
    # The bureau already had the number from an earlier report (on the police side: as the
    # bureau's feedback said); status is then what that earlier report had come to.
    Column("already_known", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_wf_report_numbers_number", "number"),
    Index("ix_wf_report_numbers_open", "final", "report_id"),
)

# --- A bureau's view of each number in its province -------------------------------

numbers = Table(
    "wf_numbers",
    metadata,
    Column("number", String(NUMBER), primary_key=True),
    Column("status", String(24), nullable=False),
    Column("category", String(16), nullable=False),
    Column("carrier_node", String(NODE), nullable=False),
    Column("notice_id", LargeBinary(16), nullable=True),
    # Carriers already asked (comma-separated), so a porting hint cannot loop.
    Column("tried", Text, nullable=False, default=""),
    Column("outlet_code", String(64), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_wf_numbers_status", "status"),
)

# --- Shutdown notices (bureau: sent; carrier: received) ---------------------------

notices = Table(
    "wf_notices",
    metadata,
    Column("notice_id", LargeBinary(16), primary_key=True),
    Column("bureau", String(NODE), nullable=False),
    Column("carrier", String(NODE), nullable=False),
    Column("category", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("numbers_total", Integer, nullable=False),
    Column("answered", Integer, nullable=False, default=0),
    Column("closed_at", BigInteger, nullable=True),
    Column("escalated_at", BigInteger, nullable=True),
    Index("ix_wf_notices_open", "closed_at", "deadline"),
)

notice_numbers = Table(
    "wf_notice_numbers",
    metadata,
    Column("notice_id", LargeBinary(16), primary_key=True),
    Column("number", String(NUMBER), primary_key=True),
    Column("outcome", String(24), nullable=True),
    Column("detail", Text, nullable=False, default=""),
    Column("answered_at", BigInteger, nullable=True),
    # The ActionReport that answered for this number.
    Column("answer_id", LargeBinary(16), nullable=True),
    Index("ix_wf_notice_numbers_number", "number"),
)

# --- Case cooperation (police: sent; carrier: received) ---------------------------

case_requests = Table(
    "wf_case_requests",
    metadata,
    Column("request_id", LargeBinary(16), primary_key=True),
    Column("police", String(NODE), nullable=False),
    Column("carrier", String(NODE), nullable=False),
    Column("case_number", String(128), nullable=False),
    Column("legal_authorization", String(256), nullable=False),
    Column("numbers", Text, nullable=False),  # comma-separated E.164
    Column("questions", Text, nullable=False),  # comma-separated CaseQuestion values
    Column("created_at", BigInteger, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("answered_at", BigInteger, nullable=True),
    # The CaseResponse; its sealed answer stays in the ledger entry, opened only on demand.
    Column("response_id", LargeBinary(16), nullable=True),
    Column("escalated_at", BigInteger, nullable=True),
)

# --- Appeals (carrier: sent; bureau: received; police: told of the decision) -------

appeals = Table(
    "wf_appeals",
    metadata,
    Column("appeal_id", LargeBinary(16), primary_key=True),
    Column("carrier", String(NODE), nullable=False),
    Column("bureau", String(NODE), nullable=False),
    Column("number", String(NUMBER), nullable=False),
    Column("grounds", Text, nullable=False),
    Column("notice_id", LargeBinary(16), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("decide_by", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("reasoning", Text, nullable=False, default=""),
    Column("decision_id", LargeBinary(16), nullable=True),
    Column("escalated_at", BigInteger, nullable=True),
)

# --- Sales channels, penalties, ID concentration (bureau mostly) ------------------

channel_reports = Table(
    "wf_channel_reports",
    metadata,
    Column("report_id", LargeBinary(16), primary_key=True),
    Column("reporter", String(NODE), nullable=False),
    Column("outlet_code", String(64), nullable=False),
    Column("outlet_name", String(256), nullable=False),
    Column("agent", String(256), nullable=False),
    Column("address", String(512), nullable=False),
    Column("carrier_node", String(NODE), nullable=False),
    Column("numbers", Text, nullable=False),  # comma-separated E.164
    Column("findings", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("penalty_id", LargeBinary(16), nullable=True),
    Index("ix_wf_channel_reports_outlet", "outlet_code"),
)

penalties = Table(
    "wf_penalties",
    metadata,
    Column("penalty_id", LargeBinary(16), primary_key=True),
    Column("bureau", String(NODE), nullable=False),
    Column("carrier", String(NODE), nullable=False),
    Column("outlet_code", String(64), nullable=False),
    Column("violation", Text, nullable=False),
    Column("legal_basis", String(256), nullable=False),
    Column("measure", Text, nullable=False),
    Column("numbers_total", Integer, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
)

id_holders = Table(
    "wf_id_holders",
    metadata,
    Column("report_id", LargeBinary(16), primary_key=True),
    Column("id_hmac", LargeBinary(32), primary_key=True),
    Column("carrier", String(NODE), nullable=False),
    Column("province", String(8), nullable=False),
    Column("hmac_key_id", String(64), nullable=False),
    Column("card_count", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

# --- The office's inbox of obligations and progress --------------------------------

escalations = Table(
    "wf_escalations",
    metadata,
    Column("escalation_id", LargeBinary(16), primary_key=True),
    Column("raised_by", String(NODE), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("subject_node", String(NODE), nullable=False),
    Column("subject_message_id", LargeBinary(16), nullable=True),
    Column("detail", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

progress = Table(
    "wf_progress",
    metadata,
    Column("report_id", LargeBinary(16), primary_key=True),
    Column("bureau", String(NODE), nullable=False),
    Column("province", String(8), nullable=False),
    Column("as_of", BigInteger, nullable=False),
    Column("counts_json", Text, nullable=False),
)

# --- A carrier's subscriber system (nodes.carrier.subscribers.SqlSubscriberSystem) ---------
# Personal data (names, ID numbers) lives only here, in the carrier's own database:
# it leaves the carrier only HPKE-sealed to the police node that asked.

subscribers = Table(
    "sub_subscribers",
    metadata,
    Column("number", String(NUMBER), primary_key=True),
    # active, suspended, inactive (cancelled), ported_out
    Column("status", String(16), nullable=False),
    Column("ported_to", String(NODE), nullable=False, default=""),
    Column("subscriber_name", String(256), nullable=False, default=""),
    Column("id_number", String(64), nullable=False, default=""),
    Column("real_name_state", String(16), nullable=False),
    Column("province", String(8), nullable=False),
    Column("registered_at", BigInteger, nullable=True),
    Column("activated_at", BigInteger, nullable=True),
    Column("outlet_code", String(64), nullable=False, default=""),
    # A line the carrier will not cut on a notice alone (e.g. an emergency service's SIM).
    Column("protected_reason", Text, nullable=False, default=""),
    Column("suspended_at", BigInteger, nullable=True),
    Column("suspended_by", LargeBinary(16), nullable=True),
    Index("ix_sub_subscribers_id", "id_number"),
)

outlets = Table(
    "sub_outlets",
    metadata,
    Column("outlet_code", String(64), primary_key=True),
    Column("outlet_name", String(256), nullable=False),
    Column("agent", String(256), nullable=False),
    Column("address", String(512), nullable=False),
)


# --- Statements run once per message with many rows (executemany) --------------------
# Bulk reports carry thousands of numbers: one statement per number would cost far more
# than the messages themselves, so handlers pass lists of rows to these.
#
# The per-number ones go straight to the DBAPI cursor's executemany with positional
# rows: SQLAlchemy Core's per-row parameter processing (a dict per row, bind processors
# per value) cost 5-8 us a row against ~3 us for the driver alone, and a number takes
# several rows on its way report -> notice -> action -> feedback (measured on SQLite;
# psycopg's executemany pipelines the same rows): exchange.storage.statements.DriverStatement.


INSERT_REPORT_LINE = DriverStatement(
    "INSERT INTO wf_report_numbers (report_id, number, status, detail, carrier_node, final, "
    "feedback_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")

# A bureau's line of a report it received: with the bureau a forwarded number went to
# and whether the bureau held the number already.
INSERT_JUDGED_REPORT_LINE = DriverStatement(
    "INSERT INTO wf_report_numbers (report_id, number, status, detail, carrier_node, final, "
    "feedback_id, updated_at, forwarded_to, already_known) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

# A line's new status and the Circular that told it (NULL: none did, keep the last).
UPDATE_REPORT_LINE = DriverStatement(
    "UPDATE wf_report_numbers SET status = ?, detail = ?, carrier_node = ?, final = ?, "
    "feedback_id = COALESCE(?, feedback_id), updated_at = ? "
    "WHERE report_id = ? AND number = ?")

# The same, only while the line is still open (the last marker: False): a late
# acknowledgement never reopens a final outcome (the police node's rule for feedback).
UPDATE_OPEN_REPORT_LINE = DriverStatement(
    "UPDATE wf_report_numbers SET status = ?, detail = ?, carrier_node = ?, final = ?, "
    "forwarded_to = ?, already_known = ?, feedback_id = COALESCE(?, feedback_id), "
    "updated_at = ? WHERE report_id = ? AND number = ? AND final = ?")

INSERT_CASE = DriverStatement(
    "INSERT INTO wf_numbers (number, status, category, carrier_node, notice_id, tried, "
    "outlet_code, detail, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")

UPDATE_CASE = DriverStatement(
    "UPDATE wf_numbers SET status = ?, detail = ?, carrier_node = ?, outlet_code = ?, "
    "tried = ?, updated_at = ? WHERE number = ?")

INSERT_NOTICE_LINE = DriverStatement(
    "INSERT INTO wf_notice_numbers (notice_id, number, outcome, detail, answered_at, "
    "answer_id) VALUES (?, ?, ?, ?, ?, ?)")

UPDATE_NOTICE_LINE = DriverStatement(
    "UPDATE wf_notice_numbers SET outcome = ?, detail = ?, answered_at = ?, answer_id = ? "
    "WHERE notice_id = ? AND number = ?")
