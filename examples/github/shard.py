"""Print the test files of one shard of the suite, for `pytest $(python shard.py 2 4 tests)`.

    python examples/github/shard.py INDEX COUNT [FOLDER]
    python examples/github/shard.py --count COUNT [FOLDER]

FOLDER (default `tests`) is the folder the suite's test files are in: those named `test_*.py` or
`*_test.py` (pytest's default), found at any depth, sorted; shard INDEX (0 <= INDEX < COUNT) has
every COUNT-th from INDEX: each file in exactly one shard, the same split on every machine.

A shard with no file (a suite of fewer files than shards) prints nothing, says "nothing to run"
on standard error and exits 0: the workflow then skips pytest, which given no file would run the
whole suite. No test file under FOLDER at all, or no FOLDER, is an error (exit status 2).
`--count COUNT` prints how many of the COUNT shards have a file: the number of results files
`pytest-pmap merge --expect` must get.
"""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = "usage: python shard.py INDEX COUNT [FOLDER]  (0 <= INDEX < COUNT)\n   or: python shard.py --count COUNT [FOLDER]"


def test_files(folder: str) -> list[str]:
    """The suite's test files under `folder`, sorted; exits with status 2 when there are none."""
    files = sorted({str(p) for pattern in ("test_*.py", "*_test.py") for p in Path(folder).rglob(pattern)})
    if not files:
        why = f"no test file (test_*.py or *_test.py) under {folder!r}" if Path(folder).is_dir() else f"no folder {folder!r} here"
        print(f"shard.py: {why}: give the folder of the suite's test files as FOLDER\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    return files


def main(argv: list[str]) -> int:
    if argv[:1] == ["--count"] and len(argv) in (2, 3) and argv[1].isdigit() and int(argv[1]) > 0:
        print(min(int(argv[1]), len(test_files(argv[2] if len(argv) == 3 else "tests"))))
        return 0
    if len(argv) not in (2, 3) or not all(a.isdigit() for a in argv[:2]) or int(argv[0]) >= int(argv[1]):
        print(USAGE, file=sys.stderr)
        return 2
    index, count = int(argv[0]), int(argv[1])
    folder = argv[2] if len(argv) == 3 else "tests"
    files = test_files(folder)
    mine = files[index::count]
    if not mine:
        print(f"shard.py: shard {index} of {count} has nothing to run: {folder!r} holds {len(files)} test "
              f"file{'s' if len(files) != 1 else ''}, fewer than the {count} shards", file=sys.stderr)
        return 0
    print(" ".join(mine))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
