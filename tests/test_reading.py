"""Reading smaps fast: the block walk, its slower fallbacks, column reads, and the read-ahead helper."""

from __future__ import annotations

import os
import random
import re
import threading
from pathlib import Path

import pytest

from pytest_pmap import Mapping, ProcessGone, SmapsParseError, snapshot
from pytest_pmap._engine import procfs as _procfs
from pytest_pmap._engine.mapping import mappings_of
from pytest_pmap._engine.parse import fields, locate
from pytest_pmap._engine.procfs import BATCH, ProcFS

KERNEL_TEXT = Path("/proc/self/smaps").read_bytes()
NUMBER_KEYS = [b"\n" + k + b":" for k in (b"Size", b"Rss", b"Pss", b"Private_Dirty", b"Swap", b"THPeligible", b"Nope")]


def blocks(text: bytes) -> list[bytes]:
    """The mappings' texts, split at header lines the slow and simple way."""
    out: list[bytes] = []
    for line in text.splitlines(keepends=True):
        if fields.HEADER.fullmatch(line.rstrip(b"\n")):
            out.append(line)
        else:
            out[-1] += line
    return out


def check_reading(chunks: list[bytes]) -> list[Mapping]:
    """Parse `chunks` and compare every mapping and field with a block-by-block reading."""
    text = b"".join(chunks)
    got = mappings_of(locate.locate_smaps(chunks))
    assert [m.text for m in got] == blocks(text)
    for key in NUMBER_KEYS:
        expected = []
        for block in blocks(text):
            nl = block.find(b"\n")
            expected.append(fields.number_at(block, key, nl, len(block)))
        assert [m._run.numbers(key)[m._i] for m in got] == expected, key
    assert [m._parsed() for m in got] == [fields.parse_header(b.split(b"\n", 1)[0]) for b in blocks(text)]
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
        assert len(mappings_of(locate.locate_smaps([text]))) == 5
        return
    with pytest.raises(SmapsParseError, match=repr(junk.strip())[1:-1]):
        [m.start for m in mappings_of(locate.locate_smaps([text]))]  # headers are parsed when asked for


def test_columns_agree_with_reading_each_mapping_on_a_live_process(many_mappings: int) -> None:
    text = Path(f"/proc/{many_mappings}/smaps").read_bytes()
    got = check_reading([text[i : i + 65536] for i in range(0, len(text), 65536)])
    assert len(got) > 3000


# -- reading in this process --------------------------------------------------------------------


def test_a_snapshot_starts_no_process(many_mappings: int) -> None:
    """Measuring must not change what is measured: reading a large map starts no helper."""
    seen: set[int] = set()
    done = threading.Event()

    def look() -> None:
        for task in Path("/proc/self/task").iterdir():
            try:
                seen.update(int(pid) for pid in (task / "children").read_text().split())
            except OSError:
                continue

    def watch() -> None:
        while not done.is_set():
            look()

    look()
    known = {many_mappings, *seen}

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            snap = snapshot(many_mappings)
            assert len(snap.mappings) > 1000 and len(ProcFS().read(many_mappings, "smaps")) > 4 * BATCH
    finally:
        done.set()
        watcher.join()
    assert seen - known == set()


def test_the_file_comes_whole_in_batches(many_mappings: int) -> None:
    chunks = list(ProcFS().chunks(many_mappings, "smaps"))
    assert len(chunks) > 2 and all(len(c) >= BATCH for c in chunks[:-1])
    assert b"".join(chunks).count(b"\nVmFlags:") == len(snapshot(many_mappings).mappings)


def test_a_kept_open_reader_reads_afresh_each_time() -> None:
    read = _procfs.ProcFS().reader(os.getpid(), "status")

    def vm_rss() -> int:
        found = re.search(rb"VmRSS:\s*(\d+)", read())
        assert found is not None
        return int(found.group(1))

    before = vm_rss()
    ballast = bytearray(64 << 20)
    after = vm_rss()
    assert after - before >= 60 << 10 and ballast
    with pytest.raises(ProcessGone):
        _procfs.ProcFS().reader(999_999_999, "status")
