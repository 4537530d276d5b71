"""The directory in force on one node (docs/architecture.md#the-directory).

``DirectoryHolder`` keeps the verified directory a node works with: chosen at start from
the one held in the database and the configured file (``DirectoryHolder.load``, the only
part that reads files), replaced by a newer one the office publishes, recorded in the
ledger (a DIRECTORY entry and a ``directories`` row) and served as the signed bytes it was
adopted from. Everything else about a node asks it for ``current_directory()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from sqlalchemy import Engine, insert, select

from exchange import envelope, identity
from exchange.errors import DirectoryError
from exchange.identity import Directory, Member, SignedDirectory
from exchange.ledger.entries import Entry, EntryKind, to_micros
from exchange.schema import directories
from exchange.storage.unitofwork import GroupCommitter, Transaction

log = logging.getLogger(__name__)

Verify = Callable[[SignedDirectory], Directory]


@dataclass(frozen=True, slots=True)
class StartingDirectory:
    """The directory a node starts with, and whether the database must still record it."""

    signed: SignedDirectory
    directory: Directory
    record: bool


def choose_at_start(held: SignedDirectory | None, from_file: SignedDirectory | None,
                    file_error: DirectoryError | None, *, verify: Verify, node_id: str,
                    file_name: object) -> StartingDirectory:
    """The newest directory held in the database, or the configured file's if that one is
    newer (how an operator hands a node, the office first, a new directory across a
    restart: one held in the database expires after its validity).

    ``verify`` checks a signed directory against the CA; ``file_error`` says why the file
    gave nothing, and is raised when the database holds nothing either.
    """
    if held is None:
        if from_file is None:
            raise file_error or DirectoryError("no directory")
        return _starting(from_file, verify, node_id, record=True)
    if from_file is not None:
        try:
            newer = verify(from_file)
        except DirectoryError as e:
            log.warning("directory file %s not used: %s", file_name, e)
        else:
            # The one held was verified when it was adopted (and is again below).
            held_version = identity.decode_directory(envelope.parse(held.envelope).payload).version
            if newer.version > held_version:
                log.info("directory file %s holds version %d, newer than the %d held: "
                         "adopting it", file_name, newer.version, held_version)
                return _starting(from_file, verify, node_id, record=True)
    return _starting(held, verify, node_id, record=False)


def _starting(signed: SignedDirectory, verify: Verify, node_id: str, *, record: bool
              ) -> StartingDirectory:
    d = verify(signed)
    d.member(node_id)  # this node must be listed
    return StartingDirectory(signed, d, record)


def read_directory_file(path: Path) -> tuple[SignedDirectory | None, DirectoryError | None]:
    """The signed directory in ``path``, or None and the error saying why there is none."""
    try:
        return SignedDirectory.from_bytes(path.read_bytes()), None
    except OSError as e:
        return None, DirectoryError(f"cannot read directory file {path}: {e.strerror}")
    except DirectoryError as e:
        return None, DirectoryError(f"directory file {path}: {e}")


def newest_held(reader: Engine) -> bytes | None:
    """The signed bytes of the newest directory the database holds."""
    with reader.connect() as conn:
        row = conn.execute(
            select(directories.c.signed).order_by(directories.c.version.desc()).limit(1)
        ).first()
    return bytes(row.signed) if row else None


def record_directory(txn: Transaction, signed: SignedDirectory, d: Directory, *,
                     office_id: str) -> None:
    """Store ``signed`` and log it (a DIRECTORY entry) in ``txn``."""
    txn.conn.execute(insert(directories), {"version": d.version, "signed": signed.to_bytes(),
                                           "loaded_at": to_micros(txn.now)})
    txn.append(Entry(EntryKind.DIRECTORY, office_id, txn.now,
                     detail=signed.to_bytes(), subject=f"directory v{d.version}"))


class DirectoryHolder:
    """The directory in force, and what adopting another one takes.

    Also what the server's interceptor needs (``current_directory`` and ``now``).
    """

    def __init__(self, start: StartingDirectory, *, node_id: str, office_id: str,
                 ca: x509.Certificate, clock: Callable[[], datetime],
                 committer: GroupCommitter, reader: Engine) -> None:
        self.node_id = node_id
        self.office_id = office_id
        self._ca = ca
        self._clock = clock
        self._committer = committer
        self._reader = reader
        self._current = start.directory
        # A directory not yet in the database is logged when the writer starts.
        self._unrecorded = (start.signed, start.directory) if start.record else None

    @classmethod
    def load(cls, *, node_id: str, office_id: str, directory_file: Path,
             ca: x509.Certificate, clock: Callable[[], datetime], committer: GroupCommitter,
             reader: Engine) -> DirectoryHolder:
        """Read the database and the directory file and adopt what ``choose_at_start`` says."""
        held_bytes = newest_held(reader)
        held = SignedDirectory.from_bytes(held_bytes) if held_bytes is not None else None
        from_file, file_error = read_directory_file(directory_file)

        def verify(signed: SignedDirectory) -> Directory:
            return identity.verify_directory(signed, ca=ca, office_id=office_id, now=clock())
        start = choose_at_start(held, from_file, file_error, verify=verify, node_id=node_id,
                                file_name=directory_file)
        return cls(start, node_id=node_id, office_id=office_id, ca=ca, clock=clock,
                   committer=committer, reader=reader)

    def current_directory(self) -> Directory:
        return self._current

    def now(self) -> datetime:
        return self._clock()

    @property
    def me(self) -> Member:
        return self._current.member(self.node_id)

    def record_at_start(self) -> None:
        """Log the directory adopted at start if the database did not hold it (the writer
        must be running)."""
        pending, self._unrecorded = self._unrecorded, None
        if pending is not None:
            signed, d = pending
            self._committer.run_sync(
                lambda txn: record_directory(txn, signed, d, office_id=self.office_id))

    async def replace(self, signed: SignedDirectory) -> Directory:
        """Adopt a newer directory if it verifies and its version is higher; log it."""
        d = identity.verify_directory(signed, ca=self._ca, office_id=self.office_id,
                                      now=self._clock(), current=self._current)
        d.member(self.node_id)
        await self._committer.run(
            lambda txn: record_directory(txn, signed, d, office_id=self.office_id))
        self._current = d
        log.info("directory version %d adopted", d.version)
        return d

    def signed_bytes(self) -> bytes:
        """The signed directory held newest, as adopted (a database read)."""
        held = newest_held(self._reader)
        if held is None:
            raise DirectoryError("no directory held")
        return held
