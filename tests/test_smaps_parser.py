"""The parser: the fast path agrees with the line-by-line path, odd input parses or fails cleanly."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_pmap import Mapping, SmapsParseError
from pytest_pmap._engine.mapping import mappings_of
from pytest_pmap._engine.parse import fields, locate
from pytest_pmap._engine.parse.run import HeaderColumns


def parse(chunks: list[bytes]) -> list[Mapping]:
    return mappings_of(locate.locate_smaps(chunks))


def parse_all(chunks: list[bytes]) -> None:
    """Parse every header and every field: `parse` leaves them until a mapping is asked for them."""
    for m in parse(chunks):
        m.start, m.fields  # noqa: B018

SMAPS = b"""\
55be969d6000-55be969d8000 r--p 00000000 fe:00 260131                     /usr/bin/cat
Size:                  8 kB
KernelPageSize:        4 kB
Rss:                   8 kB
Pss:                   4 kB
Private_Clean:         4 kB
Private_Dirty:         0 kB
Swap:                  0 kB
THPeligible:           0
ProtectionKey:         0
VmFlags: rd mr mw me
7f30874a0000-7f30874ac000 rw-p 00000000 00:00 0\x20
Size:                 48 kB
KernelPageSize:        4 kB
Rss:                  12 kB
Pss:                  12 kB
Private_Clean:         0 kB
Private_Dirty:        12 kB
Swap:                  0 kB
THPeligible:           1
ProtectionKey:         0
VmFlags: rd wr mr mw me ac
"""


def test_reads_every_field_and_keeps_what_it_does_not_know() -> None:
    text = SMAPS.replace(b"Swap:                  0 kB\nTHP",
                         b"Swap:                  0 kB\nNewThing:      7 kB\nOdd: some text\nTHP", 1)
    first, second = parse([text])
    assert first.fields["NewThing"] == 7 * 1024
    assert first.fields["Odd"] == "some text"
    assert first.fields["THPeligible"] == 0 and second.fields["THPeligible"] == 1
    assert first.vmflags == ("rd", "mr", "mw", "me")
    assert (first.rss, second.rss, second.private_dirty, second.uss) == (8192, 12288, 12288, 12288)
    assert first.path == "/usr/bin/cat" and second.path == "" and second.is_anon and not first.is_anon


@pytest.mark.parametrize("size", [1, 7, 64, 100, 333, 1000])
def test_any_chunking_gives_the_same_mappings(size: int) -> None:
    chunks = [SMAPS[i : i + size] for i in range(0, len(SMAPS), size)]
    got = parse(chunks)
    assert [m.text for m in got] == [m.text for m in parse([SMAPS])]
    assert b"".join(m.text for m in got) == SMAPS


def test_fast_path_agrees_with_the_line_by_line_path_on_this_machine() -> None:
    text = Path("/proc/self/smaps").read_bytes()
    fast = parse([text])
    slow = mappings_of(locate._locate_general(text))
    assert [m.text for m in fast] == [m.text for m in slow]
    assert len(fast) == text.count(b"\nVmFlags:") or b"VmFlags" not in text


def test_blocks_of_different_shapes_fall_back_to_the_general_path() -> None:
    # WSL1-like: the second block has no Rss line; the fast path's line count check must notice.
    text = SMAPS.replace(b"Rss:                  12 kB\n", b"")
    first, second = parse([text])
    assert first.rss == 8192 and second.rss is None and second.pss == 12288


@pytest.mark.parametrize("size", [50, 333, 1000, 1 << 20])
def test_a_block_of_another_width_between_others_is_read_not_skipped(size: int) -> None:
    # A 9-digit size widens the middle block by a byte: the fast path's blocks then no longer
    # follow one another, and the text is read block by block, the wide one included.
    wide = SMAPS.split(b"VmFlags: rd mr mw me\n")[0].replace(b"Size:                  8 kB",
                                                             b"Size:           123456789 kB")
    text = SMAPS + wide + b"VmFlags: rd mr mw me\n" + SMAPS
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    got = parse(chunks)
    assert [m.fields["Size"] for m in got] == [8192, 49152, 123456789 << 10, 8192, 49152]
    assert [m.text for m in got] == [m.text for m in mappings_of(locate._locate_general(text))]


def test_no_trailing_newline() -> None:
    _first, second = parse([SMAPS[:-1]])
    assert second.vmflags == ("rd", "wr", "mr", "mw", "me", "ac")


@pytest.mark.parametrize(
    "bad",
    [
        b"hello\n" + SMAPS,
        SMAPS.replace(b"55be969d6000-55be969d8000", b"55be969d6000~55be969d8000"),
        SMAPS + b"garbage line\n",
        SMAPS.replace(b"Size:                 48 kB\n", b"Size 48 kB\n"),
    ],
    ids=["junk before", "broken header", "junk after", "broken field"],
)
def test_malformed_text_is_a_parse_error_naming_the_line(bad: bytes) -> None:
    with pytest.raises(SmapsParseError, match="line"):
        parse_all([bad])


@pytest.mark.parametrize("chunk", [97, 4096, 1 << 20])
@pytest.mark.parametrize(("copy", "line", "how", "message"), [
    # SMAPS is two blocks of 11 lines: its line 1 and 12 are header lines, 4 an Rss line.
    (0, 1, b"hello", "line {} is not a mapping line: b'hello'"),
    (25, 12, b"55be969d6000~55be969d8000 r--p 00000000 fe:00 1 /x", "line {} is not a mapping line: b'55be*"),
    (30, 4, b"Rss                    8 kB", "line {} is not a 'Key: value' line: b'Rss                    8 kB'"),
    (33, 2, b"Size 48 kB", "line {} is neither a mapping line nor a 'Key: value' line: b'Size 48 kB'"),
    (39, 5, b"x" * 5000, "line {} is not a 'Key: value' line: b'xxx*'... (5000 bytes)"),
])
def test_a_parse_error_names_the_line_of_the_whole_file(chunk: int, copy: int, line: int, how: bytes,
                                                         message: str) -> None:
    lines = (SMAPS * 40).split(b"\n")
    number = copy * SMAPS.count(b"\n") + line  # counted from 1, as editors do
    lines[number - 1] = how
    text = b"\n".join(lines)
    with pytest.raises(SmapsParseError) as caught:
        parse_all([text[i : i + chunk] for i in range(0, len(text), chunk)])
    assert fnmatch.fnmatchcase(str(caught.value), message.format(number)), str(caught.value)
    assert len(str(caught.value)) < 300


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_the_parse_error(data: bytes) -> None:
    try:
        for m in parse([data]):
            m.start, m.end, m.perms, m.fields, m.rss  # noqa: B018
    except SmapsParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"Rss", b"Pss", b"Swap", b"Private_Dirty"]), min_size=1, max_size=4, unique=True),
       st.integers(1, 50), st.integers(1, 97))
def test_generated_well_formed_smaps_round_trip(keys: list[bytes], count: int, chunk: int) -> None:
    blocks = []
    for i in range(count):
        blocks.append(b"%x-%x rw-p 00000000 00:00 0 \n" % (0x1000 * (2 * i + 1), 0x1000 * (2 * i + 2)))
        blocks.append(b"Size:                  4 kB\n")
        blocks += [k + b":  %d kB\n" % (i,) for k in keys]
    text = b"".join(blocks)
    chunks = [text[j : j + chunk] for j in range(0, len(text), chunk)]
    got = parse(chunks)
    assert len(got) == count
    assert [m.field(keys[0].decode()) for m in got] == [i * 1024 for i in range(count)]


@pytest.mark.parametrize(
    "name",
    [b"/tmp/with space.bin", b"/tmp/new\\012line", b"/tmp/t\tab", b"/tmp/\xff\xfe invalid", b"/tmp/x.so (deleted)",
     b"/memfd:memfd x (deleted)", b"[anon:my arena]", b"/tmp/55be969d6000-55be969d8000 r--p 00000000 fe:00 1 /x"],
)
def test_names_are_bytes_faithful(name: bytes) -> None:
    text = b"1000-2000 rw-p 00000000 00:00 7                       " + name + b"\nSize:   4 kB\nRss:  4 kB\n"
    (m,) = parse([text])
    assert m.raw_path == name
    assert m.path.encode("utf-8", "surrogateescape") == name


def test_a_field_on_the_last_line_without_a_newline() -> None:
    (m,) = parse([b"1000-2000 rw-p 00000000 00:00 0 \nSize:  4 kB\nTHPeligible:  1\nRss:  8 kB"])
    assert m.rss == 8192 and m.field("THPeligible") == 1 and m.field("Size") == 4096


_HEADER_LINES = st.builds(
    lambda start, size, perms, offset, major, minor, inode, pad, name: b"%x-%x %s %08x %02x:%02x %d%s%s" % (
        start, start + size, perms, offset, major, minor, inode, b" " * pad if name or pad else b"", name),
    st.one_of(st.integers(0, 0xfff), st.integers(0, 1 << 48)), st.integers(1, 1 << 32),
    st.sampled_from([b"r--p", b"rw-p", b"r-xp", b"---p", b"rw-s"]),
    st.integers(0, 1 << 36), st.integers(0, 255), st.integers(0, 255), st.integers(0, 1 << 40), st.integers(0, 30),
    st.sampled_from([b"", b"/usr/lib/libc.so.6", b"[heap]", b"/tmp/a b  c ", b"\tx", b"/x:y-z"]),
)
#: Edits that may or may not leave a header line (the kernel never writes them): at a place,
#: replace up to three bytes with a piece of text.
_EDITS = st.tuples(st.integers(0, 200), st.sampled_from([b"", b" ", b"  ", b"\t", b"-", b":", b"0", b"A", b"g", b"_",
                                                          b"+", b"x", b"\x00", b"\xff", b"0x1f"]), st.integers(0, 3))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_HEADER_LINES, st.one_of(st.none(), _EDITS)), min_size=1, max_size=6))
def test_header_columns_take_exactly_the_lines_the_header_pattern_takes(
    lines: list[tuple[bytes, Optional[tuple[int, bytes, int]]]],
) -> None:
    """The column-wise parse (C-level checks over all lines) against the one-line pattern, line by line."""
    edited = []
    for line, edit in lines:
        if edit is not None:
            at, text, replaced = edit
            at %= len(line) + 1
            line = line[:at] + text + line[at + replaced :]
        edited.append(line)
    columns = HeaderColumns.parse(edited)
    expected = [fields.HEADER.fullmatch(line) for line in edited]
    if not all(expected):
        assert columns is None
        return
    assert columns is not None
    parsed = [fields.parse_header(line) for line in edited]
    assert list(zip(columns.starts, columns.ends, columns.perms, *columns.ids(), columns.names)) == parsed
    assert [int(text, 16) for text in columns.start_texts] == columns.starts


_GOOD = b"1000-2000 rw-p 00000000 fe:01 42                        /usr/lib/x.so"


@pytest.mark.parametrize("bad", [
    b"-2000 rw-p 00000000 fe:01 42", b"1000- rw-p 00000000 fe:01 42", b"1000-2000-3000 rw-p 00000000 fe:01 42",
    b"1000 rw-p 00000000 fe:01 42", b"1000-2000 rw-p 00000000 :01 42", b"1000-2000 rw-p 00000000 fe: 42",
    b"1000-2000 rw-p 00000000 fe:01:02 42", b"1000-2000 rw-p 00000000 fe01 42", b"1000-2000 rw-p  00000000 fe:01 42",
    b"1000-2000 rw-p 00000000 fe:01 4a2", b"1000-2000 rw-p 0x000000 fe:01 42", b"1000-2000 rw-P 00000000 fe:01 42",
    b"1000-2000 rw-p 00000000 fe:01", b"1000-2000 rw-p 00000000 fe:01 42\t/x", b"1000-2000 rw-p 00000000 fe:01 +42",
    b" 1000-2000 rw-p 00000000 fe:01 42", b"1000-2000 rw-p 00000000 Fe:01 42",
    b"1000-2000 rw-p  fe:01 42 /x", b"1000-2000 rw-p 00000000 fe:01  /x",  # no offset, no inode
])
@pytest.mark.parametrize("where", ["alone", "after a good line", "before a line that balances it"])
def test_header_columns_refuse_what_the_header_pattern_refuses(bad: bytes, where: str) -> None:
    """Lines with a number missing or doubled, in a place where a count over all lines would not notice."""
    assert fields.HEADER.fullmatch(bad) is None
    balance = _GOOD.replace(b"1000-2000", b"3000").replace(b"fe:01", b"fe")  # one number short where bad has one more
    lines = {"alone": [bad], "after a good line": [_GOOD, bad], "before a line that balances it": [bad, balance]}[where]
    assert HeaderColumns.parse(lines) is None
    (run,) = locate.locate_maps(b"\n".join(lines))
    with pytest.raises(SmapsParseError, match=f"line {lines.index(bad) + 1} is not a mapping line"):
        run.headers()


#: Every field the kernel layout's sections hold, and the first line, read per block.
KEYS = [b"\nSize:", b"\nKernelPageSize:", b"\nRss:", b"\nPss:", b"\nPrivate_Clean:", b"\nPrivate_Dirty:", b"\nSwap:",
        b"\nTHPeligible:", b"\nProtectionKey:", b"\nMissing:"]


@pytest.mark.parametrize("edit", [
    # The second block's Size line one byte longer and its Rss line one shorter: every block is as
    # long as the first, so the run is located in bulk, but its lines are not where the first's are.
    (b"Size:                 48 kB\n", b"Size:                  48 kB\n",
     b"Rss:                  12 kB\n", b"Rss:                 12 kB\n"),
    # ... and the other way round, by more than a newline and a unit: Size shorter, Swap longer.
    (b"Size:                 48 kB\n", b"Size:             48 kB\n", b"Swap:                  0 kB\nTHPeligible:           1",
     b"Swap:                      0 kB\nTHPeligible:           1"),
    # A line of the first block's layout missing in the second, another of the same length in its place.
    (b"Pss:                  12 kB\n", b"Xyzzy:                 1 kB\n", b"", b""),
], ids=["size longer", "size shorter", "a line moved"])
def test_fields_are_read_per_block_when_blocks_of_one_length_differ_inside(edit: tuple[bytes, ...]) -> None:
    """Each field of every block is what `number_at` finds in that block alone, and each total the
    sum of those: cutting the field lines out of every block at the first block's offsets must not
    be trusted when a block's lines sit elsewhere."""
    a, b, c, d = edit
    first_block_end = SMAPS.index(b"\n7f30874a0000")
    tail = SMAPS[first_block_end:].replace(a, b, 1).replace(c, d, 1)
    text = SMAPS[:first_block_end] + tail
    runs = list(locate.locate_smaps([text]))
    for run in runs:
        for key in KEYS:
            expected = [fields.number_at(run.text, key, nl, end) for nl, end in zip(run.nls, run.ends)]
            assert run.numbers(key) == expected, key
            present = [int(v) for v in expected if v is not None]
            assert run.total(key) == (sum(present) if present else None), key
