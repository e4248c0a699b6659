"""Rendering in pmap's formats, from canned smaps text: every expected line is written out by hand
from pmap-format.md (the oracle tests compare the same code with the real pmap on live processes)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pytest_pmap import PmapError, Snapshot
from pytest_pmap._engine.diff import MapDiff
from pytest_pmap._engine.mapping import mappings_of
from pytest_pmap._engine.parse.locate import locate_maps, locate_smaps
from pytest_pmap._engine.render.listing import render, render_runs
from pytest_pmap._engine.render.names import Names
from pytest_pmap._engine.render.text import escape, header_line, mode, pmap_bytes

STACK = 0x7FFD326C6F10  # start_stack: inside the [stack] mapping below
SHM_MINOR = 1
FULL = (1 << 64) - 1


def block(header: str | bytes, name: str | bytes, size: int, rss: int, *, shared_dirty: int = 0, private_clean: int = 0,
          private_dirty: int = 0, swap: int | None = 0, flags: str = "rd mr mw me") -> bytes:
    """One smaps block as the kernel writes it (name padded to column 73, `kB` lines to width 24)."""
    line = header.encode() if isinstance(header, str) else header
    raw = name.encode() if isinstance(name, str) else name
    line = line + b" " + (b"".ljust(72 - len(line)) + raw if raw else b"")
    fields = [("Size", size), ("Rss", rss), ("Pss", rss), ("Shared_Clean", 0), ("Shared_Dirty", shared_dirty),
              ("Private_Clean", private_clean), ("Private_Dirty", private_dirty)]
    if swap is not None:
        fields.append(("Swap", swap))
    lines = [f"{key + ':':<16}{value:>8} kB" for key, value in fields] + [f"THPeligible:    {0:>8}", f"VmFlags: {flags} "]
    return line + b"\n" + "\n".join(lines).encode() + b"\n"


PROG = block("55d0a0c00000-55d0a0c02000 r--p 00000000 fe:01 1048602", "/usr/bin/my prog", 8, 8, private_clean=8)
TEXT = block("55d0a0c02000-55d0a0c07000 r-xp 00002000 fe:01 1048602", "/usr/bin/my prog", 20, 20, private_clean=20)
HEAP = block("55d0a1e4d000-55d0a1e6e000 rw-p 00000000 00:00 0", "[heap]", 132, 12, private_dirty=12, swap=8,
             flags="rd wr mr mw me ac")
SHARED = block("7f3c1a400000-7f3c1a500000 rw-s 00000000 00:01 1025", "/dev/zero (deleted)", 1024, 4, shared_dirty=4)
SYSV = block("7f3c1a600000-7f3c1a610000 rw-s 00000000 00:01 32811", "/SYSV00000000 (deleted)", 64, 0)
ANON = block("7f3c1a700000-7f3c1a704000 rw-p 00000000 00:00 0", "", 16, 8, private_dirty=8)
STACK_BLOCK = block("7ffd326a7000-7ffd326c8000 rw-p 00000000 00:00 0", "[stack]", 132, 16, private_dirty=16)
VSYSCALL = block("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0", "[vsyscall]", 4, 0, flags="ex")
BASE = [PROG, TEXT, HEAP, SHARED, SYSV, ANON, STACK_BLOCK, VSYSCALL]


def snap(blocks: list[bytes], *, cmdline: bytes = b"my prog\0--serve\0", taken_at: float = 0.0) -> Snapshot:
    names = Names(STACK, SHM_MINOR)
    return Snapshot(pid=42, mappings=mappings_of(locate_smaps([b"".join(blocks)]), names), raw_cmdline=cmdline,
                    start_stack=STACK, shm_minor=SHM_MINOR, taken_at=taken_at)


def maps_only(lines: bytes, cmdline: bytes = b"") -> Snapshot:
    return Snapshot(pid=7, mappings=mappings_of(locate_maps(lines)), raw_cmdline=cmdline, detail=False)


# -- text.py: escape, the header line, the mode -----------------------------------------------------------

@pytest.mark.parametrize(("raw", "in_utf8", "in_c"), [
    (b"sl\teep", "sl?eep", "sl.eep"),  # the three rows pmap-format.md checked against the binary
    (b"sleep\xc3\xbc\xff", "sleep\u00fc?", "sleep???"),
    (b"sleep\xff\x01", "sleep?.", "sleep?."),
    (b"a\x7fb", "a?b", "a.b"),
    (b"\xe2\x82\xac \xf0\x9f\x98\x80", "\u20ac \U0001f600", "??? ????"),
    (b"ab\xe2\x82", "ab??", "ab??"),  # a sequence cut off by the end: the ASCII rule from there
    (b"\xc0\x80x\x01", "??x.", "??x."),  # 0xC0 starts nothing: the ASCII rule for the rest, \x01 included
    (b"\xc3A", "\udcc3A", "?A"),  # continuation bytes are not checked in 4.0.2: copied through
])
def test_escape_follows_libproc2_in_utf8_and_c_locales(raw: bytes, in_utf8: str, in_c: str) -> None:
    assert (escape(raw, True), escape(raw, False)) == (in_utf8, in_c)


@pytest.mark.parametrize(("cmdline", "comm", "state", "utf8", "expected"), [
    (b"sleep\x001000\x00", b"", "S", True, "5:   sleep 1000"),
    (b"python\x00-c\x00x\x00\x00x \x00", b"", "S", True, "5:   python -c x  x "),  # NUL-ended: a real trailing space stays
    (b"nginx: worker process ", b"", "S", True, "5:   nginx: worker process"),  # rewritten argv: its trailing space goes
    (b"a\x00b\n", b"", "S", True, "5:   a b"),
    (b"py\x01th\xffon\x00-c\x00\x00a\nb \x00", b"", "S", True, "5:   py?th?on -c  a b "),
    (b"py\x01th\xffon\x00", b"", "S", False, "5:   py.th?on"),
    (b"\x00\x00", b"", "S", True, "5:   ?"),
    (b"x" * 140000, b"", "S", True, "5:   " + "x" * 131071),  # read at most 131071 bytes
    (b"", b"kthreadd", "S", True, "5:   [kthreadd]"),
    (b"", b"python3", "Z", True, "5:   [python3] <defunct>"),
    (b"", b"x) (y\nz", "R", True, "5:   [x) (y?z]"),
    (b"", b"a\tb", "Z", False, "5:   [a.b] <defunct>"),
])
def test_header_line(cmdline: bytes, comm: bytes, state: str, utf8: bool, expected: str) -> None:
    s = Snapshot(pid=5, mappings=[], raw_cmdline=cmdline, comm=comm, state=state)
    assert header_line(s, utf8=utf8) == expected


def test_mode_is_five_letters_with_s_for_shared_only() -> None:
    perms = ("rw-p", "r-xp", "rw-s", "r--s", "---p", "--xp")
    assert [mode(p) for p in perms] == ["rw---", "r-x--", "rw-s-", "r--s-", "-----", "--x--"]


# -- names.py ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "kwargs", "expected"), [
    (b"00400000-00401000 r-xp 00000000 fe:01 12 /usr/lib/libc.so.6", {}, "libc.so.6"),
    (b"00400000-00401000 r-xp 00000000 fe:01 12 /usr/lib/libc.so.6", {"show_path": True}, "/usr/lib/libc.so.6"),
    (b"00400000-00401000 rw-p 00000000 00:00 0 [heap]", {}, "  [ anon ]"),
    (b"00400000-00401000 rw-p 00000000 00:00 0 ", {}, "  [ anon ]"),
    (b"00400000-00401000 rw-p 00000000 00:00 0 [anon:a/b]", {}, "b]"),
    (b"00400000-00401000 rw-p 00000000 fe:01 12 /tmp/old data.bin (deleted)", {}, "old data.bin (deleted)"),
    (b"00400000-00401000 rw-s 00000000 fe:01 12 /tmp/t\tab\xc3\xbc\xff.bin", {}, "t?ab???.bin"),
    (b"00400000-00401000 rw-s 00000000 fe:01 12 /tmp/new\\012line", {}, "new\\012line"),
    # the stack: the anonymous mapping holding start_stack, both ends included
    (b"00400000-00401000 rw-p 00000000 00:00 0 [stack]", {"start_stack": 0x400000}, "  [ stack ]"),
    (b"00400000-00401000 rw-p 00000000 00:00 0 ", {"start_stack": 0x401000}, "  [ stack ]"),
    (b"00400000-00401000 rw-p 00000000 00:00 0 [stack]", {"start_stack": 0x401001}, "  [ anon ]"),
    (b"00400000-00401000 rw-p 00000000 fe:01 12 /bin/x", {"start_stack": 0x400800}, "x"),
    # SysV segments: major 0, the shmem minor, a /SYSV name; the inode in hex, with or without -p
    (b"00400000-00410000 rw-s 00000000 00:01 32811 /SYSV00000000 (deleted)", {"shm_minor": 1}, "  [ shmid=0x802b ]"),
    (b"00400000-00410000 rw-s 00000000 00:01 32811 /SYSV00000000 (deleted)", {"shm_minor": 1, "show_path": True},
     "  [ shmid=0x802b ]"),
    (b"00400000-00410000 rw-s 00000000 00:01 32811 /SYSV00000000 (deleted)", {"shm_minor": 2}, "SYSV00000000 (deleted)"),
    (b"00400000-00410000 rw-s 00000000 08:01 32811 /SYSV00000000 (deleted)", {"shm_minor": 1}, "SYSV00000000 (deleted)"),
    (b"00400000-00410000 rw-s 00000000 00:01 32811 /SYSV00000000 (deleted)", {}, "SYSV00000000 (deleted)"),
])
def test_names(line: bytes, kwargs: dict[str, int], expected: str) -> None:
    (run,) = locate_maps(line + b"\n")
    assert Names(**kwargs).one(run, 0) == expected  # type: ignore[arg-type]


def test_a_name_ending_in_a_slash_shows_the_slash() -> None:
    text = render(maps_only(b"00400000-00402000 r-xp 00000000 fe:01 12 /srv/dir/\n", b"x\0"), "default", utf8=True)
    assert text == "7:   x\n0000000000400000      8K r-x-- /\n total                8K\n"


# -- listing.py: default, -x, -d ---------------------------------------------------------------------------

DEFAULT = """\
42:   my prog --serve
000055d0a0c00000      8K r---- my prog
000055d0a0c02000     20K r-x-- my prog
000055d0a1e4d000    132K rw---   [ anon ]
00007f3c1a400000   1024K rw-s- zero (deleted)
00007f3c1a600000     64K rw-s-   [ shmid=0x802b ]
00007f3c1a700000     16K rw---   [ anon ]
00007ffd326a7000    132K rw---   [ stack ]
ffffffffff600000      4K --x--   [ anon ]
 total             1400K
"""
EXTENDED = """\
42:   my prog --serve
Address           Kbytes     RSS   Dirty Mode  Mapping
000055d0a0c00000       8       8       0 r---- my prog
000055d0a0c02000      20      20       0 r-x-- my prog
000055d0a1e4d000     132      12      12 rw---   [ anon ]
00007f3c1a400000    1024       4       4 rw-s- zero (deleted)
00007f3c1a600000      64       0       0 rw-s-   [ shmid=0x802b ]
00007f3c1a700000      16       8       8 rw---   [ anon ]
00007ffd326a7000     132      16      16 rw---   [ stack ]
ffffffffff600000       4       0       0 --x--   [ anon ]
---------------- ------- ------- -------␠
total kB            1400      68      40
""".replace("␠", " ")
DEVICE = """\
42:   my prog --serve
Address           Kbytes Mode  Offset           Device    Mapping
000055d0a0c00000       8 r---- 0000000000000000 0fe:00001 my prog
000055d0a0c02000      20 r-x-- 0000000000002000 0fe:00001 my prog
000055d0a1e4d000     132 rw--- 0000000000000000 000:00000   [ anon ]
00007f3c1a400000    1024 rw-s- 0000000000000000 000:00001 zero (deleted)
00007f3c1a600000      64 rw-s- 0000000000000000 000:00001   [ shmid=0x802b ]
00007f3c1a700000      16 rw--- 0000000000000000 000:00000   [ anon ]
00007ffd326a7000     132 rw--- 0000000000000000 000:00000   [ stack ]
ffffffffff600000       4 --x-- 0000000000000000 000:00000   [ anon ]
mapped: 1400K    writeable/private: 280K    shared: 1088K
"""
LISTINGS = {"default": DEFAULT, "x": EXTENDED, "d": DEVICE}


@pytest.mark.parametrize("fmt", ["default", "x", "d"])
def test_listing_from_a_snapshot_and_from_the_parser_s_runs_as_they_come(fmt: str) -> None:
    assert render(snap(BASE), fmt, utf8=True) == LISTINGS[fmt]
    text = b"".join(BASE)
    n = len(text)
    chunks = [text[: n // 4], text[n // 4 : n * 3 // 4], text[n * 3 // 4 :]]  # blocks cut mid-way: three runs
    runs = list(locate_smaps(chunks))
    assert len(runs) == 3 and render_runs(snap([]), runs, fmt, utf8=True) == LISTINGS[fmt]
    ranged = render_runs(snap([]), list(locate_smaps(chunks)), "default", range=(0x7F3C1A400000, 0x7F3C1A600000), utf8=True)
    assert ranged.splitlines()[1:] == [*DEFAULT.splitlines()[4:6], " total             1088K"]


@pytest.mark.parametrize(("fmt", "expected"), [
    ("default", ["00007f3c1a400000   1024K rw-s- zero (deleted)", "00007f3c1a600000     64K rw-s-   [ shmid=0x802b ]",
                 " total             1088K"]),
    # -x: Kbytes of the shown rows, but RSS and Dirty of every mapping read (the three before the range too)
    ("x", ["Address           Kbytes     RSS   Dirty Mode  Mapping",
           "00007f3c1a400000    1024       4       4 rw-s- zero (deleted)",
           "00007f3c1a600000      64       0       0 rw-s-   [ shmid=0x802b ]",
           "---------------- ------- ------- ------- ",
           "total kB            1088      44      16"]),
    ("d", ["Address           Kbytes Mode  Offset           Device    Mapping",
           "00007f3c1a400000    1024 rw-s- 0000000000000000 000:00001 zero (deleted)",
           "00007f3c1a600000      64 rw-s- 0000000000000000 000:00001   [ shmid=0x802b ]",
           "mapped: 1088K    writeable/private: 0K    shared: 1088K"]),
])
def test_range_shows_mappings_overlapping_it_and_stops_reading_past_it(fmt: str, expected: list[str]) -> None:
    lines = render(snap(BASE), fmt, range=(0x7F3C1A400000, 0x7F3C1A600000), utf8=True).splitlines()
    assert lines == ["42:   my prog --serve", *expected]


@pytest.mark.parametrize(("rng", "starts", "total"), [
    ((0x7FFD326B0000, 0x7FFD326B0000), ["00007ffd326a7000"], "132K"),  # -A L: the mapping holding L
    ((0x7F3C1A704000, FULL), ["00007ffd326a7000", "ffffffffff600000"], "136K"),  # ends at L: end-1 < L, left out
    ((0x7F3C1A703FFF, FULL), ["00007f3c1a700000", "00007ffd326a7000", "ffffffffff600000"], "152K"),
    ((0, 0x55D0A0C02000), ["000055d0a0c00000", "000055d0a0c02000"], "28K"),  # -A ,H: starts at H, still shown
    ((0x1000, 0x2000), [], "0K"),
])
def test_range_edges(rng: tuple[int, int], starts: list[str], total: str) -> None:
    lines = render(snap(BASE), "default", range=rng, utf8=True).splitlines()
    assert [line[:16] for line in lines[1:-1]] == starts
    assert lines[-1] == f" total {total:>17}"


def test_quiet_drops_column_headers_and_footers_in_every_format() -> None:
    s = snap(BASE)
    assert render(s, "default", quiet=True, utf8=True) == "".join(DEFAULT.splitlines(keepends=True)[:-1])
    extended = EXTENDED.splitlines(keepends=True)
    assert render(s, "x", quiet=True, utf8=True) == extended[0] + "".join(extended[2:-2])
    device = DEVICE.splitlines(keepends=True)
    assert render(s, "d", quiet=True, utf8=True) == device[0] + "".join(device[2:-1])


def test_show_path_shows_the_path_from_its_first_slash() -> None:
    assert render(snap(BASE), "default", show_path=True, utf8=True).splitlines()[1:6] == [
        "000055d0a0c00000      8K r---- /usr/bin/my prog",
        "000055d0a0c02000     20K r-x-- /usr/bin/my prog",
        "000055d0a1e4d000    132K rw---   [ anon ]",
        "00007f3c1a400000   1024K rw-s- /dev/zero (deleted)",
        "00007f3c1a600000     64K rw-s-   [ shmid=0x802b ]",
    ]
    assert render(snap(BASE), "x", show_path=True, utf8=True).splitlines()[5] == (
        "00007f3c1a400000    1024       4       4 rw-s- /dev/zero (deleted)")


@pytest.mark.parametrize("utf8", [True, False])
def test_control_and_non_utf8_bytes_in_file_names_become_question_marks_in_either_locale(utf8: bool) -> None:
    odd = block("00600000-00602000 rw-s 00000000 fe:01 77", b"/tmp/t\tab\xc3\xbc\xff \x7f.bin", 8, 4)
    s = snap([odd], cmdline=b"caf\xc3\xa9\x00")
    command = "caf\u00e9" if utf8 else "caf??"  # only the header line depends on the locale
    assert render(s, "default", utf8=utf8) == (
        f"42:   {command}\n0000000000600000      8K rw-s- t?ab??? ?.bin\n total                8K\n")
    assert render(s, "x", show_path=True, utf8=utf8).splitlines()[2] == (
        "0000000000600000       8       4       0 rw-s- /tmp/t?ab??? ?.bin")


def test_a_zombie_shows_its_comm_defunct_and_an_empty_map() -> None:
    zombie = Snapshot(pid=7254, mappings=[], comm=b"python3", state="Z")
    assert render(zombie, "default", utf8=True) == "7254:   [python3] <defunct>\n total                0K\n"
    assert render(zombie, "x", utf8=True) == (
        "7254:   [python3] <defunct>\nAddress           Kbytes     RSS   Dirty Mode  Mapping\n"
        "---------------- ------- ------- ------- \ntotal kB               0       0       0\n")
    assert render(zombie, "d", quiet=True, utf8=True) == "7254:   [python3] <defunct>\n"
    assert render(zombie, "X", utf8=True) == "7254:   [python3] <defunct>\n"


NO_SWAP = [
    block("00400000-00402000 r-xp 00000000 fe:01 12", "/usr/bin/my prog", 8, 8),
    block("00602000-00603000 rw-p 00002000 fe:01 12", "/usr/bin/my prog", 4, 4, private_dirty=4, swap=None),
    block("7ffd0000-7ffd3000 rw-p 00000000 00:00 0", "[stack]", 12, 8, private_dirty=8),
]


def no_swap() -> Snapshot:
    return Snapshot(pid=42, mappings=mappings_of(locate_smaps([b"".join(NO_SWAP)])), raw_cmdline=b"my prog\0",
                    start_stack=0x7FFD1000)


def test_x_prints_no_row_for_a_mapping_without_a_swap_line_but_counts_its_rss_and_dirty() -> None:
    lines = render(no_swap(), "x", utf8=True).splitlines()
    assert lines[2:4] == ["0000000000400000       8       8       0 r-x-- my prog",
                          "000000007ffd0000      12       8       8 rw---   [ stack ]"]
    assert lines[-1].split()[-2:] == ["20", "12"]
    assert "0000000000602000       4 rw--- 0000000000002000 0fe:00001 my prog" in render(no_swap(), "d", utf8=True)


def test_x_counts_a_mapping_without_a_swap_line_in_total_kbytes() -> None:
    assert render(no_swap(), "x", utf8=True) == (
        "42:   my prog\n"
        "Address           Kbytes     RSS   Dirty Mode  Mapping\n"
        "0000000000400000       8       8       0 r-x-- my prog\n"
        "000000007ffd0000      12       8       8 rw---   [ stack ]\n"
        "---------------- ------- ------- ------- \n"
        "total kB              24      20      12\n")


def test_a_maps_only_snapshot_cannot_be_rendered_with_smaps_columns() -> None:
    s = maps_only(b"00400000-00402000 r-xp 00000000 fe:01 12 /bin/x\n", cmdline=b"x\0")
    for fmt in ("x", "X", "XX"):
        with pytest.raises(PmapError, match=rf"^PID 7: this snapshot was taken with detail=False \(maps only\); "
                                            rf"pmap -{fmt} needs smaps: take it with detail=True$"):
            render(s, fmt)
    assert render(s, "d", quiet=True, utf8=True) == "7:   x\n0000000000400000       8 r-x-- 0000000000000000 0fe:00001 x\n"
    with pytest.raises(PmapError, match="unknown pmap format 'Y': use one of default, x, d, X, XX"):
        render(s, "Y")


# -- table.py: -X, -XX -------------------------------------------------------------------------------------

X_TABLE = """\
42:   my prog --serve
         Address Perm   Offset Device   Inode Size Rss Pss Swap THPeligible Mapping
    55d0a0c00000 r--p 00000000  fe:01 1048602    8   8   8    0           0 my prog
    55d0a0c02000 r-xp 00002000  fe:01 1048602   20  20  20    0           0 my prog
    55d0a1e4d000 rw-p 00000000  00:00       0  132  12  12    8           0 [heap]
    7f3c1a400000 rw-s 00000000  00:01    1025 1024   4   4    0           0 zero (deleted)
    7f3c1a600000 rw-s 00000000  00:01   32811   64   0   0    0           0 SYSV00000000 (deleted)
    7f3c1a700000 rw-p 00000000  00:00       0   16   8   8    0           0␠
    7ffd326a7000 rw-p 00000000  00:00       0  132  16  16    0           0 [stack]
ffffffffff600000 --xp 00000000  00:00       0    4   0   0    0           0 [vsyscall]
                                              ==== === === ==== ===========␠
                                              1400  68  68    8           0 KB␠
""".replace("␠", " ")


def test_X_table_widths_come_from_headers_and_totals() -> None:
    assert render(snap(BASE), "X", utf8=True) == X_TABLE


def test_XX_shows_every_field_and_vmflags() -> None:
    assert render(snap([HEAP, VSYSCALL]), "XX", utf8=True).splitlines()[1:] == [
        "         Address Perm   Offset Device Inode Size Rss Pss Shared_Clean Shared_Dirty Private_Clean Private_Dirty "
        "Swap THPeligible           VmFlags Mapping",
        "    55d0a1e4d000 rw-p 00000000  00:00     0  132  12  12            0            0             0            12 "
        "   8           0 rd wr mr mw me ac [heap]",
        "ffffffffff600000 --xp 00000000  00:00     0    4   0   0            0            0             0             0 "
        "   0           0                ex [vsyscall]",
        "                                            ==== === === ============ ============ ============= ============= "
        "==== =========== ",
        "                                             136  12  12            0            0             0            12 "
        "   8           0 KB ",
    ]


def test_X_sizes_a_field_by_its_total_and_vmflags_at_least_by_its_title() -> None:
    s = snap([block("00400000-00496000 r--p 00000000 fe:01 5", "/bin/a", 600, 600, flags="rd"),
              block("00496000-00513000 r--p 00000000 fe:01 6", "/bin/b", 500, 500, flags="rd")])
    assert render(s, "X", utf8=True).splitlines()[1:] == [
        " Address Perm   Offset Device Inode Size  Rss  Pss Swap THPeligible Mapping",
        "00400000 r--p 00000000  fe:01     5  600  600  600    0           0 a",
        "00496000 r--p 00000000  fe:01     6  500  500  500    0           0 b",
        "                                    ==== ==== ==== ==== =========== ",
        "                                    1100 1100 1100    0           0 KB ",
    ]
    header, row = render(s, "XX", utf8=True).splitlines()[1:3]
    assert header.endswith(" THPeligible VmFlags Mapping") and row.endswith(" 0           0      rd a")


def test_X_quiet_sizes_columns_by_their_values_alone() -> None:
    assert render(snap([HEAP, VSYSCALL]), "X", quiet=True, utf8=True) == (
        "42:   my prog --serve\n"
        "    55d0a1e4d000 rw-p 00000000 00:00 0 132 12 12 8 0 [heap]\n"
        "ffffffffff600000 --xp 00000000 00:00 0   4  0  0 0 0 [vsyscall]\n")


def test_X_names_are_raw_bytes_cut_to_127() -> None:
    long_path = b"/" + b"a" * 150 + b"/tail.so"
    s = snap([block("00400000-00402000 r--p 00000000 fe:01 5", long_path, 8, 8),
              block("00402000-00404000 r--p 00000000 fe:01 6", b"/tmp/t\tab\xc3\xbc\xff.bin", 8, 8)])
    assert render(s, "X", quiet=True, utf8=True).splitlines()[1:] == [
        "00400000 r--p 00000000 fe:01 5 8 8 8 0 0 " + "a" * 126,
        "00402000 r--p 00000000 fe:01 6 8 8 8 0 0 t\tab\u00fc\udcff.bin",  # tab and UTF-8 as they are; \xff kept raw
    ]
    assert pmap_bytes(render(s, "X", quiet=True, utf8=True)).endswith(b" t\tab\xc3\xbc\xff.bin\n")
    assert render(s, "X", quiet=True, show_path=True, utf8=True).splitlines()[1].endswith(" /" + "a" * 126)


def test_X_refuses_blocks_with_different_fields() -> None:
    with pytest.raises(PmapError, match=r"^PID 42: inconsistent detail field in smaps file, line: 00602000-00603000 rw-p"):
        render(no_swap(), "X")


# -- difftext.py: MapDiff.render ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The diff's header shows local times: make them UTC (for every test here; it costs nothing)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


GROWN_HEAP = block("55d0a1e4d000-55d0a1e8f000 rw-p 00000000 00:00 0", "[heap]", 264, 140, private_dirty=140, swap=8)
NEW_16M = block("7f3c19000000-7f3c1a000000 rw-p 00000000 00:00 0", "", 16384, 16384, private_dirty=16384)
AFTER = [PROG, TEXT, GROWN_HEAP, NEW_16M, SHARED, ANON, STACK_BLOCK, VSYSCALL]  # heap grew, 16 MiB new, SysV gone

DIFF_HEAD = "42:   my prog --serve  (pmap diff 00:00:10 -> 00:01:40)"
DIFF_TITLES = "  Address            Kbytes      RSS    Dirty Mode  Mapping"
HEAP_ROW = "~ 000055d0a1e4d000     +132     +128     +128 rw---   [ anon ]"
NEW_ROW = "+ 00007f3c19000000   +16384   +16384   +16384 rw---   [ anon ]"
SYSV_ROW = "- 00007f3c1a600000      -64       +0       +0 rw-s-   [ shmid=0x802b ]"
DIFF_TAIL = [
    "  ---------------- -------- -------- --------",
    "  total kB           +16452   +16512   +16512",
    "mapped: 1400K -> 17852K (+16452K)    writeable/private: 280K -> 16796K (+16516K)    shared: 1088K -> 1024K (-64K)",
    "rss: 68K -> 16580K (+16512K)    pss: 68K -> 16580K (+16512K)    uss: 64K -> 16576K (+16512K)",
]


def diff() -> MapDiff:
    return MapDiff.between(snap(BASE, taken_at=10.0), snap(AFTER, taken_at=100.0))


def test_diff_shows_added_removed_and_changed_rows_in_x_columns() -> None:
    assert diff().render().splitlines() == [DIFF_HEAD, DIFF_TITLES, HEAP_ROW, NEW_ROW, SYSV_ROW, *DIFF_TAIL]


def test_diff_in_d_columns() -> None:
    assert diff().render("d").splitlines() == [
        DIFF_HEAD,
        "  Address            Kbytes Mode  Offset           Device    Mapping",
        "~ 000055d0a1e4d000     +132 rw--- 0000000000000000 000:00000   [ anon ]",
        "+ 00007f3c19000000   +16384 rw--- 0000000000000000 000:00000   [ anon ]",
        "- 00007f3c1a600000      -64 rw-s- 0000000000000000 000:00001   [ shmid=0x802b ]",
        *DIFF_TAIL[2:],
    ]


def test_diff_limit_keeps_the_rows_that_moved_most_and_counts_the_rest() -> None:
    assert diff().render(limit=1).splitlines() == [
        DIFF_HEAD, DIFF_TITLES, NEW_ROW, "  ... and 2 smaller changes not shown", *DIFF_TAIL]
    assert diff().render(limit=2).splitlines() == [
        DIFF_HEAD, DIFF_TITLES, HEAP_ROW, NEW_ROW, "  ... and 1 smaller change not shown", *DIFF_TAIL]
    assert "not shown" not in diff().render(limit=3)


def test_diff_of_a_split_and_grown_mapping_says_how_much_is_new() -> None:
    before = snap([ANON])
    after = snap([block("7f3c1a700000-7f3c1a702000 r--p 00000000 00:00 0", "", 8, 4, private_dirty=4),
                  block("7f3c1a702000-7f3c1a708000 rw-p 00000000 00:00 0", "", 24, 12, private_dirty=12)])
    rows = MapDiff.between(before, after).render().splitlines()
    assert rows[2:4] == ["~ 00007f3c1a700000      +16       +8       +8 r----   [ anon ]  (16K new)",
                         "  ---------------- -------- -------- --------"]


def test_diff_without_changes_says_so() -> None:
    rows = MapDiff.between(snap(BASE), snap(BASE)).render().splitlines()
    assert rows[2:4] == ["  (no mapping appeared, vanished or changed)", "  ---------------- -------- -------- --------"]
    assert rows[4] == "  total kB               +0       +0       +0"
