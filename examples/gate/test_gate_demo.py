"""The baseline gate on a small suite: save a baseline, change nothing, change something.

    cd examples/gate
    pytest test_gate_demo.py --pmap-save-baseline base.json        # once, on main
    pytest test_gate_demo.py --pmap-baseline base.json             # passes: nothing changed
    PMAP_DEMO_LEAK=1 pytest test_gate_demo.py --pmap-baseline base.json
        # fails: test_lookup keeps 1 MiB more on every call, "confirmed 3/3"
    PMAP_DEMO_WARM=1 pytest test_gate_demo.py --pmap-baseline base.json
        # passes: test_warm_up fills a cache once; run again, it keeps nothing more (noise)

Every test is measured from before its setup to after its teardown. A test past its allowance is
run again three times before the gate fails it: a leak grows every time, a one-off does not.
"""

from __future__ import annotations

import os

import pytest

_CACHE: dict[int, bytes] = {}
_WARM: list[bytes] = []


def lookup(key: int) -> bytes:
    """A cache that never evicts, when the demo asks for a leak: every call adds an entry."""
    if os.environ.get("PMAP_DEMO_LEAK"):
        _CACHE[len(_CACHE)] = os.urandom(1 << 20)  # 1 MiB really written, kept for ever
    return b"%d" % key


def test_lookup() -> None:
    assert lookup(7) == b"7"


def test_warm_up() -> None:
    if os.environ.get("PMAP_DEMO_WARM") and not _WARM:  # filled by the first call only
        _WARM.append(os.urandom(4 << 20))
    assert len(_WARM) <= 1


@pytest.mark.pmap(tolerance="off")  # this test's memory is not gated (it is listed as not gated)
def test_not_gated() -> None:
    assert sorted(range(1000, 0, -1))[0] == 1


def test_steady() -> None:
    assert sum(range(10_000)) == 49_995_000
