#!/usr/bin/env bash
# Run a command in a copy of this repository's tracked files, as they are in the working
# tree, placed alone in a new temporary directory: no sibling folders, no .git, no
# virtual environment, nothing generated or left over. A test or a build step that reads
# something outside the repository, or needs a file that was never committed, fails here
# the way it would fail in a stranger's clone.
#
#   scripts/in_fresh_copy.sh make test
#
# The copy is deleted afterwards; BCX_KEEP_COPY=1 keeps it (its path is printed).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARG…]" >&2
    exit 2
fi
base=$(mktemp -d "${TMPDIR:-/tmp}/bcx-fresh.XXXXXX")
if [[ -n "${BCX_KEEP_COPY:-}" ]]; then
    trap 'echo "copy kept in $base/bcx" >&2' EXIT
else
    trap 'rm -rf "$base"' EXIT
fi
copy="$base/bcx"
mkdir "$copy"
# Tracked files only, with their uncommitted changes; a tracked file deleted in the
# working tree is left out, as the next commit would leave it out.
git -C "$repo" ls-files -z --cached \
    | (cd "$repo" && tar -cf - --null --no-recursion --ignore-failed-read --files-from=-) \
    | tar -xf - -C "$copy"
echo "running '$*' in a fresh copy of the repository: $copy" >&2
cd "$copy"
"$@"
