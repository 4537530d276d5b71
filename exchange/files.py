"""Files only their owner may read: private keys, a node's database, evidence bundles.

A carrier's database holds subscriber names and ID numbers, an evidence bundle a whole
message; they are made 0600 from the start (never created wider and narrowed later) and
a file group or others may open is refused, the same way for all of them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

PRIVATE_MODE: Final = 0o600
# Bits that let anyone but the owner at a file.
_NOT_OWNER: Final = 0o077


def private_mode_problem(path: Path, mode: int) -> str | None:
    """Why a file with permission bits ``mode`` is not private to its owner, or None.

    Pure: the caller stats the file and raises its own error type with this text.
    """
    mode = stat.S_IMODE(mode)
    if not mode & _NOT_OWNER:
        return None
    how = "readable" if mode & 0o044 else "accessible"
    return f"{path} is {how} by others (mode {mode:04o}); chmod 600 {path}"


def check_private(path: Path) -> str | None:
    """``private_mode_problem`` of the file at ``path`` as it is now; None if it is
    private or does not exist (a file not yet created is made private by its creator)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    return private_mode_problem(path, mode)


def create_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path``, mode 0600, refusing to follow a symbolic
    link or to replace anything already there (FileExistsError names the path).

    O_EXCL with O_CREAT fails on any existing name, a dangling symbolic link included, so
    a link planted where the file is to go never redirects the write; O_NOFOLLOW says so
    twice on systems where O_EXCL alone would not.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, PRIVATE_MODE)
    except FileExistsError:
        what = "a symbolic link" if path.is_symlink() else "a file"
        raise FileExistsError(f"{path} is {what} already there; refusing to write over it "
                              "(choose a new --out path)") from None
    try:
        os.fchmod(fd, PRIVATE_MODE)  # the umask may have taken bits away, never added them
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def precreate_private(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 if nothing is there; True if it was created.

    For files a library creates on its own with the process umask (SQLite creates its
    database 0644 by default): an empty file is an empty SQLite database, and SQLite
    gives its -wal and -shm files the mode of the database file.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     PRIVATE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)
    return True
