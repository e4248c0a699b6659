"""Byte-for-byte comparison with the real procps-ng pmap on live processes (pmap-format.md's oracle checks)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PMAP, REPO, oracle, run, with_our_help

pytestmark = pytest.mark.skipif(PMAP is None, reason="procps pmap is not installed (the oracle)")

FORMATS = ["", "-x", "-d", "-X", "-XX"]


def same(*args: str, env: dict[str, str] | None = None, loose: bool = False) -> None:
    args = tuple(a for a in args if a != "")
    pids = [a for i, a in enumerate(args) if a.isdigit() and (i == 0 or args[i - 1] != "-A")]
    flags = "".join(a for a in args if a.startswith("-") and not a.startswith("--"))
    xq = "X" in flags and "q" in flags
    if any(a.startswith("-X") for a in args) and len(pids) > 1:
        same_per_pid(args, pids, loose=loose or xq)
        return
    theirs, ours = oracle(list(args), env=env, loose=loose or xq)
    assert ours == theirs


def same_per_pid(args: tuple[str, ...], pids: list[str], loose: bool) -> None:
    """pmap 4.0.2 carries -X totals and widths from one PID to the next (Q3, fixed in 4.0.4): there the
    oracle is pmap run on each PID alone, and ours must print those listings one after the other."""
    flags = [a for a in args if a not in pids]
    expected_out, expected_rc = "", 0
    for pid in pids:
        theirs, ours = oracle([*flags, pid], loose=loose)
        assert ours == theirs
        out, _, rc = theirs.partition("--stderr--\n")
        expected_out += out
        expected_rc |= int(rc.rsplit("rc=", 1)[1])
    theirs, ours = oracle(list(args), loose=loose)
    assert ours == f"{expected_out}--stderr--\nrc={expected_rc}\n"


@pytest.mark.parametrize("flags", [*FORMATS, "-p", "-xp", "-dp", "-Xp", "-q", "-xq", "-dq", "-Xq", "-XXq"])
def test_deleted_executable_and_path_with_spaces(flags: str, spaced_sleep: int, deleted_sleep: int) -> None:
    same(flags, str(spaced_sleep), str(deleted_sleep))


@pytest.mark.parametrize("flags", [*FORMATS, "-p", "-dp", "-xq", "-Xp"])
def test_python_fixture_with_every_odd_mapping(flags: str, python_fixture: int) -> None:
    # Our own Python maps the same .so files as the target, which moves the target's Pss: in -X
    # tables that can change a Pss column's width, so those are compared word by word.
    same(flags, str(python_fixture), loose=flags.startswith("-X"))


def test_python_fixture_has_what_it_promises(python_fixture: int) -> None:
    maps = Path(f"/proc/{python_fixture}/maps").read_bytes()
    for piece in (b"del.bin (deleted)", b"priv.bin", b"t\tab\xc3\xbc.bin", b"/dev/zero (deleted)",
                  b"SYSV00000000 (deleted)", b"memfd:memfd x (deleted)", b"---p"):
        assert piece in maps
    assert len(os.listdir(f"/proc/{python_fixture}/task")) >= 13


def _stack_start(pid: int) -> str:
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if line.endswith("[stack]"):
            return line.split("-")[0]
    raise AssertionError("no [stack] mapping")


@pytest.mark.parametrize("form", ["{a}", ",{a}", "{a},", "0x{a},ffffffffffffffff -d", "0,{a} -x", "{a} -X",
                                  "ffffffffffffffff,0 -x", "{a},0 -x", "{a},1", "{a},0 -d"])
def test_ranges(form: str, spaced_sleep: int) -> None:
    a = _stack_start(spaced_sleep)
    rng, *rest = form.format(a=a).split(" ")
    same("-A", rng, *rest, str(spaced_sleep))


@pytest.mark.parametrize("bad", ["zz", "1,2,3", "12g"])
def test_bad_ranges(bad: str, spaced_sleep: int) -> None:
    same("-A", bad, str(spaced_sleep))


@pytest.mark.parametrize(
    "args",
    [["{p}", "{p}"], ["-X", "{p}", "{p}"], ["-Xq", "{p}", "{p}"], ["-X", "{p}", "2"], ["2"], ["-x", "2"], ["-d", "2"],
     ["-XX", "{p}", "{p}"]],
    ids=str,
)
def test_several_pids_and_kernel_threads(args: list[str], spaced_sleep: int) -> None:
    same(*(a.format(p=spaced_sleep) for a in args))


def test_kernel_thread_before_a_process_in_X(spaced_sleep: int) -> None:
    # pmap 4.0.2 carries -X totals over from one PID to the next (fixed in 4.0.4): we do what 4.0.4 does.
    theirs, ours = oracle(["-XX", "2", str(spaced_sleep), "2"])
    assert ours.splitlines()[0] == theirs.splitlines()[0] == "2:   [kthreadd]"
    listing = ours.split("--stderr--")[0].splitlines()
    assert listing[-1] == "2:   [kthreadd]"  # an empty table shows nothing, not the earlier totals


def test_pid_forms(spaced_sleep: int, python_fixture: int) -> None:
    thread = max(int(t) for t in os.listdir(f"/proc/{python_fixture}/task"))
    p = spaced_sleep
    for args in ([str(thread)], [f"/proc/{p}"], ["/proc/self", str(p)], [f"0x{p:x}"], [f"0{p:o}"], ["999999"],
                 [str(p), "999999"], ["12x"], ["0"], ["--", "-5"], ["/proc/12/"], ["abc"]):
        same(*args)


def test_too_many_pids(spaced_sleep: int) -> None:
    same(*[str(spaced_sleep)] * 256)
    same(*[str(spaced_sleep)] * 3)


@pytest.mark.parametrize(
    "args",
    [[], ["-q"], ["-k", "{p}"], ["-z", "{p}"], ["-x", "-d", "{p}"], ["-n", "{p}"], ["-n", "-q"], ["-h"], ["-V"],
     ["-r", "{p}"], ["--foo=bar"], ["--extended=1"], ["--range"], ["-A"], ["--r"], ["--ext", "{p}"], ["-r", "-k"],
     ["-"], ["{p}", "-x"], ["--help", "-z"], ["-r", "--version"], ["-X", "-X", "-X", "-q", "{p}"]],
    ids=str,
)
def test_command_line(args: list[str], spaced_sleep: int) -> None:
    same(*(a.format(p=spaced_sleep) for a in args))


@pytest.mark.parametrize("args", [["-A", "\udcff", "{p}"], ["-\udcff", "{p}"], ["--ext\udcff", "{p}"], ["-x\udcff", "{p}"],
                                  ["-\u00e9", "{p}"], ["-x\u00e9", "{p}"]], ids=ascii)
@pytest.mark.parametrize("encoding", ["", "ascii", "utf-16"])
def test_arguments_that_are_not_ascii_are_echoed_as_their_bytes(args: list[str], encoding: str,
                                                                spaced_sleep: int) -> None:
    # getopt reads bytes: a multibyte option character is named by its first byte, and an argument
    # that is not UTF-8 comes back as given, whatever Python's own stderr encoding is set to.
    env = {**os.environ, "PYTHONIOENCODING": encoding} if encoding else None
    same(*(a.format(p=spaced_sleep) for a in args), env=env)


@pytest.mark.parametrize("args", [["{p}", "-x"], ["-x", "{p}"], ["{p}", "-q", "-d"], ["--", "{p}"]], ids=str)
def test_posixly_correct_ends_options_at_the_first_pid(args: list[str], spaced_sleep: int) -> None:
    same(*(a.format(p=spaced_sleep) for a in args), env={**os.environ, "POSIXLY_CORRECT": "1"})


@pytest.mark.parametrize("flags", FORMATS)
def test_zombie(flags: str, zombie: int) -> None:
    same(flags, str(zombie))


@pytest.mark.parametrize("flags", ["", "-x", "-d"])
def test_a_thread_id(flags: str, python_fixture: int) -> None:
    tid = max(int(t) for t in os.listdir(f"/proc/{python_fixture}/task"))
    assert tid != python_fixture
    same(flags, str(tid))


@pytest.mark.parametrize("flags", ["", "-x", "-X"])
def test_a_command_name_with_parentheses_and_a_newline(flags: str, odd_comm: int) -> None:
    same(flags, str(odd_comm))


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_cmdline_escaping(locale: str, odd_cmdline: int) -> None:
    same("-q", str(odd_cmdline), env={**os.environ, "LC_ALL": locale})


@pytest.mark.parametrize("setting", [{}, {"LANG": "C"}, {"LC_CTYPE": "C"}, {"LC_CTYPE": "POSIX"}, {"LANG": "C.UTF-8"},
                                     {"LC_CTYPE": "C.UTF-8"}, {"LANG": "xx_YY.UTF-8"}], ids=str)
def test_cmdline_escaping_in_the_c_locale_that_python_coerces(setting: dict[str, str], odd_cmdline: int) -> None:
    # CPython switches a C locale to UTF-8 at start-up unless LC_ALL is set (PEP 538); pmap runs in it.
    env = {"PATH": os.environ["PATH"], **setting}
    same("-q", str(odd_cmdline), env=env)


@pytest.mark.parametrize("flags", ["-X", "-Xp", "-XX"])
def test_long_maps_lines_in_X(flags: str, long_path_sleep: int) -> None:
    same(flags, str(long_path_sleep))


@pytest.mark.parametrize("flags", ["", "-x", "-d"])
def test_long_maps_lines_are_read_whole(flags: str, long_path_sleep: int) -> None:
    # pmap 4.0.2 reads maps lines in 1023-byte pieces (pmap-format.md Q6): a longer line gives a bogus
    # `ffffffffffffffff` row (default, -d: as an extra row; -x: in place of the real one) and a name
    # cut from the first piece. Fixed pmap releases read the line whole, and so do we.
    args = [flags, str(long_path_sleep)] if flags else [str(long_path_sleep)]
    theirs, ours = oracle(args)
    their_rows = [line.split() for line in theirs.splitlines()[1:] if line[:1] in "0123456789abcdef"]
    our_rows = [line.split() for line in ours.splitlines()[1:] if line[:1] in "0123456789abcdef"]
    bogus = [row for row in their_rows if row[0] == "ffffffffffffffff"]
    assert len(bogus) >= 3, "pmap 4.0.2 was expected to show its bogus rows here"
    long_rows = [row for row in our_rows if row[-1] == "s"]
    assert len(long_rows) == len(bogus)
    assert not any(row[0] == "ffffffffffffffff" for row in long_rows)
    if flags == "-x":  # the bogus row stands in for the real one: same RSS and Dirty
        assert [row[2:4] for row in long_rows] == [row[2:4] for row in bogus]
    else:
        real = [row for row in their_rows if row[0] != "ffffffffffffffff"]
        assert [row[:3] for row in our_rows] == [row[:3] for row in real]


def _runnable_by_nobody() -> str | None:
    """A Python that the unprivileged user can run, with this package readable, or None."""
    python = "/usr/bin/python3"
    if not os.path.exists(python) or os.geteuid() != 0:
        return None
    path = REPO
    while path != path.parent:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return None
        path = path.parent
    return python


@pytest.mark.skipif(_runnable_by_nobody() is None, reason="needs root, /usr/bin/python3 and a world-readable checkout")
@pytest.mark.parametrize("flags", ["", "-X", "-x"])
def test_permission_denied_shows_the_header_only(flags: str, spaced_sleep: int) -> None:
    nobody = str(pwd.getpwnam("nobody").pw_uid)
    python = _runnable_by_nobody()
    assert python
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "PYTHONPATH": str(REPO)}
    theirs, ours = oracle([a for a in (flags, str(spaced_sleep), str(os.getpid())) if a], env=env, user=nobody, python=python)
    assert ours == theirs
    assert "rc=1" in ours and ":   " in ours


def test_help_goes_to_stdout_and_exits_zero() -> None:
    out = run([sys.executable, "-m", "pytest_pmap", "-h"], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.startswith("\nUsage:\n pmap [options] PID [PID ...]\n") and out.endswith("--stderr--\nrc=0\n")


def test_races_against_exiting_processes() -> None:
    """Processes that exit while they are read: every outcome is one pmap itself can give (Q4)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    shapes = set()
    for i in range(15):
        victim = subprocess.Popen(["sleep", f"0.0{i % 10}"])
        done = subprocess.run([sys.executable, "-m", "pytest_pmap", "-X", str(victim.pid)], capture_output=True, env=env)
        victim.wait()
        lines = done.stdout.decode(errors="replace").splitlines()
        assert not done.stderr, done.stderr
        assert done.returncode in (0, 1, 42)
        if done.returncode == 42:
            assert lines == []
        elif lines:
            assert lines[0].startswith(f"{victim.pid}:   ")
        shapes.add((done.returncode, min(len(lines), 3)))
    assert shapes


def run_text(done: subprocess.CompletedProcess[bytes]) -> str:
    """A finished command as `conftest.run` shows it: stdout, stderr and exit status in one text."""
    out, err = (b.decode("utf-8", "surrogateescape") for b in (done.stdout, done.stderr))
    return f"{out}--stderr--\n{err}rc={done.returncode}\n"


def test_random_command_lines(spaced_sleep: int, workdir: Path) -> None:
    """Seeded random mixes of options, abbreviations, junk and PID forms: same text and status as pmap.

    The -X listings are left out here (their totals drift; the tests above cover them), and so are
    -n and -N, with which the real pmap writes rc files. -c and -C read one whose columns do not drift.
    """
    import random

    home = workdir / "random-home"
    home.mkdir(exist_ok=True)
    (home / ".pmaprc").write_text("[Fields Display]\nPerm\nSize\nRss\nMapping\n[Mapping]\nShowPath\n")
    p = str(spaced_sleep)
    pool = ["-x", "-d", "-q", "-p", "-r", "-A", "0,1", "-A0", "--range=0", "--quiet", "--show-path", "--ext", "--dev",
            "-h", "-V", "--he", "--ver", "-z", "--", p, p, f"/proc/{p}", "/proc/self", "0x1", "12x", "-xq", "-qA",
            "ffff", "--range", "--r", "-", "abc", "--=", "---x", "-nq", "--r=5", "--e=5",
            "-c", "-C", str(home / ".pmaprc"), "--read-rc", "-cq", "-C/nonexistent"]
    rng = random.Random(2026)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home)}
    for _ in range(60):
        args = rng.sample(pool, rng.randint(0, 4))
        theirs = subprocess.run(["pmap", *args], capture_output=True, env=env, timeout=30, cwd=workdir)
        ours = subprocess.run([sys.executable, "-m", "pytest_pmap", *args], capture_output=True, env=env, timeout=30,
                              cwd=workdir)
        expected = with_our_help(run_text(theirs))
        assert run_text(ours) == expected, args
