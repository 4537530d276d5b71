"""No file of the project refers to anything outside the repository: no sibling folder, no
path of the machine it was written on. A clone has nothing beside it (CI runs the whole
suite from such a copy, .ci/run), so any such reference is a file that cannot be found.

Nothing is allow-listed. The patterns are spelled in pieces so that this file does not
match itself.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_SLASH = "/"
FORBIDDEN: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("a sibling folder of the repository", re.compile(rb"\.\./" + b"shared")),
    ("the machine's work folder", re.compile(re.escape((_SLASH + "work" + _SLASH).encode()))),
    ("a home directory", re.compile(
        rb"(?<![\w.-])/(?:" + b"home" + rb"|" + b"Users" + rb")/[A-Za-z0-9_.-]+")),
    ("root's home directory", re.compile(rb"(?<![\w.-])/" + b"root" + rb"/")),
    ("a Windows home directory", re.compile(rb"[A-Za-z]:\\\\?" + b"Users" + rb"\\")),
    # The design lives in docs/; the file it started from is not in the repository.
    ("a citation of a design file the repository does not hold",
     re.compile(rb"\b" + b"DESIGN" + rb"(?:\.md\b|\s*\xc2\xa7)")),
)


def offences(data: bytes) -> list[tuple[int, str, str]]:
    """(line number, what, the line) for every forbidden reference in ``data``."""
    out = []
    for number, line in enumerate(data.splitlines(), 1):
        for what, pattern in FORBIDDEN:
            if pattern.search(line):
                out.append((number, what, line.decode("utf-8", "replace").strip()[:160]))
    return out


def _gitignore_patterns(root: Path) -> list[str]:
    path = root / ".gitignore"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _ignored(relative: str, is_dir: bool, patterns: list[str]) -> bool:
    """Whether .gitignore's patterns (the forms this repository uses) ignore a path."""
    name = relative.rsplit("/", 1)[-1]
    for line in patterns:
        pattern = line.rstrip("/")
        if line.endswith("/") and not is_dir:
            continue
        if "/" in pattern:  # anchored at the root
            if fnmatch.fnmatchcase(relative, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def walk_files(root: Path) -> list[Path]:
    """The files of a copy without git: everything .gitignore does not ignore."""
    patterns = _gitignore_patterns(root)
    out = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(root).as_posix()
            if entry.name == ".git" or _ignored(relative, entry.is_dir(), patterns):
                continue
            if entry.is_dir() and not entry.is_symlink():
                stack.append(entry)
            elif entry.is_file():
                out.append(entry)
    return out


def tracked_files(root: Path) -> list[Path]:
    """The repository's tracked files (git ls-files); in a copy without git, its files."""
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return walk_files(root)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
        return walk_files(root)
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True,
                            check=True).stdout
    paths = (root / name for name in listed.decode().split("\0") if name)
    return [p for p in paths if p.is_file()]


def test_no_tracked_file_refers_outside_the_repository() -> None:
    files = tracked_files(ROOT)
    assert len(files) > 100, f"found only {len(files)} files under {ROOT}"
    found = [f"{path.relative_to(ROOT)}:{number}: {what}: {line}"
             for path in files for number, what, line in offences(path.read_bytes())]
    assert not found, "references outside the repository:\n" + "\n".join(found)


@pytest.mark.parametrize(("line", "what"), [
    (b"VECTORS = ROOT / '../" + b"shared/vectors'", "a sibling folder of the repository"),
    (b"see /" + b"work/main/README.md", "the machine's work folder"),
    (b"cd /" + b"home/alice/bcx", "a home directory"),
    (b"open('/" + b"Users/bob/x.json')", "a home directory"),
    (b"export PATH=/" + b"root/.local/bin:$PATH", "root's home directory"),
    (b"C:\\" + b"Users\\carol\\bcx", "a Windows home directory"),
    (b'"""The receive checks (' + b"DESIGN" + b".md \xc2\xa74)." + b'"""',
     "a citation of a design file the repository does not hold"),
    (b"# see " + b"DESIGN \xc2\xa73a", "a citation of a design file the repository does not hold"),
])
def test_each_kind_of_outside_reference_is_found(line: bytes, what: str) -> None:
    assert [w for _, w, _ in offences(b"fine\n" + line + b"\n")] == [what]


@pytest.mark.parametrize("line", [
    b"tmp = Path('/tmp/bcx-demo')",
    b"DIR/<node-id>/node.toml",
    b"runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb",
    b"the workspace is in ./workspace/ (ignored)",
    b"an ID holder's home/work address is never sent",
    b"(docs/who-may-send-what.md#state-rules); RFC 9162 \xc2\xa72.1.1",
])
def test_ordinary_paths_are_not_outside_references(line: bytes) -> None:
    assert offences(line) == []


def test_walk_without_git_skips_what_gitignore_ignores(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text(".venv/\n__pycache__/\n*.db\n/build/\nbench/out/\n")
    for name in ("a.py", "pkg/b.py", "pkg/__pycache__/b.pyc", ".venv/lib/x.py", "node.db",
                 "build/lib/c.py", "pkg/build/d.py", "bench/out/r.json", "bench/e.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in walk_files(tmp_path))
    assert found == [".gitignore", "a.py", "bench/e.py", "pkg/b.py", "pkg/build/d.py"]
