"""Reading smaps fast: the block walk, its slower fallbacks, column reads, and the read-ahead helper."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from pytest_pmap import Mapping, NotSupported, SmapsParseError, _procfs, _smaps
from pytest_pmap.model import mappings_of

KERNEL_TEXT = Path("/proc/self/smaps").read_bytes()
NUMBER_KEYS = [b"\n" + k + b":" for k in (b"Size", b"Rss", b"Pss", b"Private_Dirty", b"Swap", b"THPeligible", b"Nope")]


def blocks(text: bytes) -> list[bytes]:
    """The mappings' texts, split at header lines the slow and simple way."""
    out: list[bytes] = []
    for line in text.splitlines(keepends=True):
        if _smaps._HEADER.fullmatch(line.rstrip(b"\n")):
            out.append(line)
        else:
            out[-1] += line
    return out


def check_reading(chunks: list[bytes]) -> list[Mapping]:
    """Parse `chunks` and compare every mapping and field with a block-by-block reading."""
    text = b"".join(chunks)
    got = mappings_of(_smaps.locate_smaps(chunks))
    assert [m.text for m in got] == blocks(text)
    for key in NUMBER_KEYS:
        expected = []
        for block in blocks(text):
            nl = block.find(b"\n")
            expected.append(_smaps.number_at(block, key, nl, len(block)))
        assert [m._run.numbers(key)[m._i] for m in got] == expected, key
    assert [m._parsed() for m in got] == [_smaps.parse_header(b.split(b"\n", 1)[0]) for b in blocks(text)]
    return got


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 333, 1000, 4096, 1 << 30])
def test_every_chunking_of_kernel_text_reads_the_same(size: int) -> None:
    text = b"".join(blocks(KERNEL_TEXT)[:12])
    check_reading([text[i : i + size] for i in range(0, len(text), size)])


def test_random_cuts_read_the_same() -> None:
    rng = random.Random(7)
    text = KERNEL_TEXT
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), 8))
        check_reading([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])])


def test_a_nine_digit_size_is_walked_by_line_count() -> None:
    parts = blocks(KERNEL_TEXT)[:8]
    size_line = parts[4].split(b"\n")[1]
    assert size_line.startswith(b"Size:") and size_line.endswith(b" kB")
    parts[4] = parts[4].replace(size_line, b"Size:          123456789 kB", 1)
    got = check_reading([b"".join(parts)])
    assert got[4].field("Size") == 123456789 << 10
    assert [m.field("Size") for m in got[:4]] == [m.end - m.start for m in got[:4]]


def test_a_field_line_after_vmflags_belongs_to_its_block() -> None:
    parts = blocks(KERNEL_TEXT)[:5]
    parts[2] += b"Extra:    4 kB\n"
    got = check_reading([b"".join(parts)])
    assert got[2].field("Extra") == 4096 and got[3].field("Extra") is None


def test_blocks_of_another_shape_are_read_line_by_line() -> None:
    parts = blocks(KERNEL_TEXT)[:6]
    parts[2] = parts[2].replace(b"\nRss:", b"\nNewField:       1 kB\nRss:", 1)
    parts[3] = b"".join(line for line in parts[3].splitlines(keepends=True) if not line.startswith(b"Pss:"))
    got = check_reading([b"".join(parts)])
    assert got[2].field("NewField") == 1024 and got[3].pss is None


@pytest.mark.parametrize("junk", [b"junk\n", b"\n", b"1000-2000 rw-p junk\n"])
def test_a_stray_line_between_blocks_is_an_error_naming_it(junk: bytes) -> None:
    parts = blocks(KERNEL_TEXT)[:5]
    text = b"".join(parts[:3]) + junk + b"".join(parts[3:])
    if junk == b"\n":  # a blank line is tolerated, as the line-by-line reader always has
        assert len(mappings_of(_smaps.locate_smaps([text]))) == 5
        return
    with pytest.raises(SmapsParseError, match=repr(junk.strip())[1:-1]):
        for m in mappings_of(_smaps.locate_smaps([text])):
            m.start  # noqa: B018 - headers are parsed when asked for


def test_columns_agree_with_reading_each_mapping_on_a_live_process(many_mappings: int) -> None:
    text = Path(f"/proc/{many_mappings}/smaps").read_bytes()
    got = check_reading([text[i : i + 65536] for i in range(0, len(text), 65536)])
    assert len(got) > 3000


# -- the read-ahead helper ----------------------------------------------------------------------


def helper_children() -> list[int]:
    """Children of this process that are the read-ahead helper."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if exe == os.path.realpath(_procfs.READ_AHEAD_HELPER):
                pids.append(int(pid))
    return pids


def test_read_ahead_gives_what_an_in_process_read_gives(many_mappings: int) -> None:
    ahead = _procfs.ProcFS(read_ahead=True)
    assert ahead.read_ahead, "the read-ahead helper is missing on this machine"
    chunks = list(ahead.chunks(many_mappings, "smaps"))
    assert len(chunks) > 2 and sum(map(len, chunks)) > 4 * _procfs.READ_AHEAD_AFTER
    ahead_text = b"".join(chunks)
    in_process = _procfs.ProcFS(read_ahead=False).read(many_mappings, "smaps")
    # The process is asleep, but Pss moves: the helper maps the same libc while it runs.
    assert re.sub(rb" *\d+ kB", b"", ahead_text) == re.sub(rb" *\d+ kB", b"", in_process)
    assert helper_children() == []


def test_abandoning_a_read_stops_and_reaps_the_helper(many_mappings: int) -> None:
    chunks = _procfs.ProcFS().chunks(many_mappings, "smaps")
    next(chunks)
    next(chunks)  # the helper is reading by now
    assert len(helper_children()) == 1
    chunks.close()
    assert helper_children() == []


def test_a_failing_helper_is_an_error_not_a_short_map(many_mappings: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_procfs, "_HELPER_ARGS", ["dd", "if=/nonexistent/file"])
    with pytest.raises(NotSupported, match="failed part way"):
        _procfs.ProcFS().read(many_mappings, "smaps")
    assert helper_children() == []


def test_without_the_helper_the_read_stays_in_process(many_mappings: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_procfs, "READ_AHEAD_HELPER", "/nonexistent/dd")
    fs = _procfs.ProcFS()
    assert not fs.read_ahead
    assert len(fs.read(many_mappings, "smaps")) > 4 * _procfs.READ_AHEAD_AFTER


def test_the_environment_can_turn_read_ahead_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_PMAP_READ_AHEAD", "0")
    assert not _procfs.default_procfs().read_ahead
    monkeypatch.setenv("PYTEST_PMAP_READ_AHEAD", "1")
    assert _procfs.default_procfs().read_ahead


def test_a_kept_open_reader_reads_afresh_each_time() -> None:
    read = _procfs.ProcFS().reader(os.getpid(), "status")
    before = int(re.search(rb"VmRSS:\s*(\d+)", read()).group(1))  # type: ignore[union-attr]
    ballast = bytearray(64 << 20)
    after = int(re.search(rb"VmRSS:\s*(\d+)", read()).group(1))  # type: ignore[union-attr]
    assert after - before >= 60 << 10 and ballast
    with pytest.raises(_procfs.ProcessGone):
        _procfs.ProcFS().reader(999_999_999, "status")
