"""Print the test files of one shard of the suite, for `pytest $(python shard.py 2 4)`.

    python examples/github/shard.py INDEX COUNT [FOLDER]

The files under FOLDER (default `tests`) named test_*.py, sorted, every COUNT-th from INDEX: each
file in exactly one shard, the same split on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not all(a.isdigit() for a in argv[:2]) or int(argv[0]) >= int(argv[1]):
        print("usage: python shard.py INDEX COUNT [FOLDER]  (0 <= INDEX < COUNT)", file=sys.stderr)
        return 2
    index, count = int(argv[0]), int(argv[1])
    files = sorted(str(p) for p in Path(argv[2] if len(argv) == 3 else "tests").rglob("test_*.py"))
    print(" ".join(files[index::count]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
