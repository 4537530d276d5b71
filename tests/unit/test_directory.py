"""Tests for exchange.directory: which directory a node starts with, and reading the file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from fedharness import make_federation

from exchange import pki
from exchange.directory import choose_at_start, read_directory_file
from exchange.errors import DirectoryError, UnknownMemberError
from exchange.identity import Directory, SignedDirectory, verify_directory
from nodes.federation import build_directory, sign_with_office

OFFICE = "office.cn"
POLICE = "police.fj"


@dataclass(frozen=True)
class World:
    ca: x509.Certificate
    v1: SignedDirectory
    v2: SignedDirectory
    directory_file: Path

    def verify(self, signed: SignedDirectory) -> Directory:
        return verify_directory(signed, ca=self.ca, office_id=OFFICE, now=datetime.now(UTC))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("federation")
    fed = make_federation(root)
    ca = pki.load_certificate(fed.ca_cert)
    v1 = SignedDirectory.from_bytes(fed.directory_file.read_bytes())
    d1 = verify_directory(v1, ca=ca, office_id=OFFICE, now=datetime.now(UTC))
    d2 = build_directory(trust_domain=d1.trust_domain, members=d1.members, version=2)
    return World(ca, v1, sign_with_office(d2, root / OFFICE / "keys", ca),
                 fed.directory_file)


@pytest.mark.parametrize(("held", "from_file", "chosen", "record"), [
    (None, "v1", "v1", True),
    ("v1", None, "v1", False),
    ("v1", "v1", "v1", False),
    ("v1", "v2", "v2", True),
    ("v2", "v1", "v2", False),
], ids=["file-only", "database-only", "same-in-both", "file-newer", "file-older"])
def test_a_node_starts_with_the_newest_of_its_database_and_its_file(
        world: World, held: str | None, from_file: str | None, chosen: str,
        record: bool) -> None:
    def signed(name: str | None) -> SignedDirectory | None:
        return None if name is None else {"v1": world.v1, "v2": world.v2}[name]
    start = choose_at_start(signed(held), signed(from_file), None, verify=world.verify,
                            node_id=POLICE, file_name="directory.bcx")
    assert start.signed == signed(chosen)
    assert start.directory.version == int(chosen[1:])
    assert start.record is record


def test_a_file_that_does_not_verify_is_passed_over_for_the_one_held(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    def verify(signed: SignedDirectory) -> Directory:
        if signed == world.v2:
            raise DirectoryError("directory signature does not verify")
        return world.verify(signed)
    with caplog.at_level(logging.WARNING, logger="exchange.directory"):
        start = choose_at_start(world.v1, world.v2, None, verify=verify, node_id=POLICE,
                                file_name="directory.bcx")
    assert (start.signed, start.record) == (world.v1, False)
    assert "directory file directory.bcx not used: directory signature does not verify" \
        in caplog.text


@pytest.mark.parametrize(("file_error", "message"), [
    (DirectoryError("cannot read directory file d.bcx: No such file or directory"),
     "cannot read directory file d.bcx: No such file or directory"),
    (None, "no directory"),
], ids=["the-file's-error", "no-error-given"])
def test_with_nothing_held_and_no_file_the_node_does_not_start(
        world: World, file_error: DirectoryError | None, message: str) -> None:
    with pytest.raises(DirectoryError, match=f"^{message}$"):
        choose_at_start(None, None, file_error, verify=world.verify, node_id=POLICE,
                        file_name="d.bcx")


def test_a_directory_that_does_not_list_the_node_is_not_adopted(world: World) -> None:
    with pytest.raises(UnknownMemberError, match=r"stranger\.fj"):
        choose_at_start(None, world.v1, None, verify=world.verify, node_id="stranger.fj",
                        file_name="d.bcx")


def test_reading_the_directory_file(world: World, tmp_path: Path) -> None:
    assert read_directory_file(world.directory_file) == (world.v1, None)
    missing, error = read_directory_file(tmp_path / "absent.bcx")
    assert missing is None and error is not None
    assert str(error) == f"cannot read directory file {tmp_path / 'absent.bcx'}: " \
        "No such file or directory"
    (tmp_path / "garbage.bcx").write_bytes(b"not a directory")
    garbage, error = read_directory_file(tmp_path / "garbage.bcx")
    assert garbage is None and error is not None
    assert str(error).startswith(f"directory file {tmp_path / 'garbage.bcx'}: ")
