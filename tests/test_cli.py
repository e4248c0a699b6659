"""The command line: pmap's argument rules as tables, and the snapshot subcommands end to end."""

from __future__ import annotations

import contextlib
import io
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from pytest_pmap._cli.pmap import UsageExit, parse_args, parse_pid, parse_range

ULONG = (1 << 64) - 1


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("7ffd0000", (0x7FFD0000, 0x7FFD0000)), ("0x10,0x20", (0x10, 0x20)), (",20", (0, 0x20)), ("10,", (0x10, ULONG)),
     ("", (0, ULONG)), (",", (0, ULONG)), ("FFFF", (0xFFFF, 0xFFFF)), ("-1", (ULONG, ULONG)),
     ("1" * 30, (ULONG, ULONG)), (" 10", (0x10, 0x10))],
)
def test_ranges(arg: str, expected: tuple[int, int]) -> None:
    assert parse_range(arg) == expected


@pytest.mark.parametrize("bad", ["zz", "1,2,3", "12g", "0x", "1 2", "10,zz"])
def test_bad_ranges_name_the_argument(bad: str) -> None:
    with pytest.raises(UsageExit) as err:
        parse_range(bad)
    assert err.value.status == 1 and err.value.stderr == f"pmap: failed to parse argument: '{bad}'\n"


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("1", 1), ("0x1f", 31), ("0755", 0o755), ("/proc/42", 42), ("/proc/self", None), ("/proc/", None),
     ("2147483647", 2147483647)],
)
def test_pids(arg: str, expected: int | None) -> None:
    assert parse_pid(arg) == expected


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "12x", "2147483648", "/proc/12/", "1.5", "", "0x"])
def test_bad_pids_print_the_usage(bad: str) -> None:
    with pytest.raises(UsageExit) as err:
        parse_pid(bad)
    assert err.value.status == 1 and "Usage:" in err.value.stderr


@pytest.mark.parametrize(
    ("argv", "fmt"),
    [(["1"], "default"), (["-x", "1"], "x"), (["-d", "1"], "d"), (["-X", "1"], "X"), (["-XX", "1"], "XX"),
     (["-X", "-X", "-X", "1"], "XX"), (["--extended", "1"], "x"), (["--dev", "1"], "d"), (["1", "-q"], "default")],
)
def test_formats(argv: list[str], fmt: str) -> None:
    assert parse_args(argv).fmt == fmt


def test_an_rc_file_chooses_the_columns_and_turns_p_over(tmp_path: Path) -> None:
    rc = tmp_path / "rc"
    rc.write_text("[Fields Display]\nRss\nMapping\n[Mapping]\nShowPath\n")
    opts = parse_args(["-C", str(rc), "1"])
    assert opts.fmt == "X" and opts.columns is not None and opts.show_path
    assert [name for name in ("Address", "Perm", "Rss", "Size", "Mapping", "VmFlags") if opts.columns(name)] == ["Rss", "Mapping"]
    assert not parse_args(["-p", "-C", str(rc), "1"]).show_path
    with pytest.raises(UsageExit) as err:
        parse_args(["-C", str(tmp_path / "none"), "1"])
    assert (err.value.status, err.value.stderr) == (1, "pmap: couldn't read the rc file\n")


def ours(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pytest_pmap", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)


def test_snapshot_show_and_diff(spaced_sleep: int, tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    done = ours("snapshot", str(spaced_sleep), "-o", str(out))
    assert done.returncode == 0 and f"saved PID {spaced_sleep}" in done.stdout
    shown = ours("show", str(out), "-d")
    assert shown.returncode == 0 and shown.stdout.splitlines()[0].startswith(f"{spaced_sleep}:   ")
    assert shown.stdout.splitlines()[-1].startswith("mapped: ")
    diff = ours("diff", str(out), str(spaced_sleep))
    assert diff.returncode == 0 and "mapped: " in diff.stdout and "->" in diff.stdout


def test_watch_counts_and_ends(spaced_sleep: int) -> None:
    done = ours("watch", str(spaced_sleep), "-n", "0.05", "-c", "3")
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 3
    assert "writeable/private:" in lines[0] and lines[1].endswith("(+0K / +0K / +0K)")


def test_watch_ends_cleanly_when_the_process_exits() -> None:
    # The process exits once watch has shown its first line (a fixed lifetime races watch's start-up
    # on a busy machine), and is reaped only after watch has ended.
    victim = subprocess.Popen(["sh", "-c", "read x"], stdin=subprocess.PIPE)
    watch = subprocess.Popen([sys.executable, "-m", "pytest_pmap", "watch", str(victim.pid), "-n", "0.1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert victim.stdin is not None and watch.stdout is not None
    try:
        assert select.select([watch.stdout], [], [], 60)[0], "watch printed nothing in 60 s"
        first = watch.stdout.readline()
        victim.stdin.close()
        out, err = watch.communicate(timeout=60)
    finally:
        watch.kill()
        watch.wait()
        victim.kill()
        victim.wait()
    assert watch.returncode == 0 and "exited" in (first + out).splitlines()[-1] and not err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["watch", "12x"], "'12x' is not a PID"), (["watch", "1", "-n", "0"], "not an interval"),
     (["watch", "1", "-c", "0"], "not a count"), (["show", "/nonexistent.json"], "does not exist"),
     (["diff", "/nonexistent.json", "1"], "does not exist"),
     (["snapshot", "999999999", "-o", "x"], "999999999 is not a PID on this system: PIDs are below pid_max"),
     (["diff", "999999999", "/nonexistent.json"], "'999999999' is neither a snapshot file nor a PID"),
     (["snapshot", "1"], "required"), (["watch", "2147483647"], "2147483647")],
)
def test_subcommand_errors_are_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = ours(*args, cwd=tmp_path)
    assert done.returncode in (1, 2) and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


def test_messages_reach_a_text_stream_that_has_no_bytes_under_it() -> None:
    # stderr is written as bytes where it has them; a caller's io.StringIO has none, and still gets the message
    from pytest_pmap import cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["-Z"])
    assert status == 1 and err.getvalue().startswith("pmap: invalid option -- 'Z'\n\nUsage:\n pmap [options] PID")


@pytest.mark.parametrize(("env", "utf8"), [({}, False), ({"LANG": "C.UTF-8"}, True), ({"LC_ALL": "C"}, False),
                                           ({"LANG": "xx_YY.UTF-8"}, False)], ids=str)
def test_the_locale_is_told_from_the_start_not_from_later_changes_to_the_environment(env: dict[str, str],
                                                                                     utf8: bool) -> None:
    # CPython coerces a C locale to UTF-8 (PEP 538) and says so in LC_CTYPE; code that sets LC_CTYPE
    # later (for a child, or monkeypatch.setenv) changes neither the locale nor how we escape.
    code = ("import os\nfrom pytest_pmap._engine.render.text import locale_is_utf8\nfirst = locale_is_utf8()\n"
            "os.environ['LC_CTYPE'] = 'C.UTF-8'\nsecond = locale_is_utf8()\n"
            "os.environ['LC_CTYPE'] = 'POSIX'\nprint(first, second, locale_is_utf8())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **env})
    assert done.stdout.split() == [str(utf8)] * 3, done.stderr


def test_help_lists_the_subcommands() -> None:
    done = ours("help")
    assert done.returncode == 0 and all(c in done.stdout for c in ("snapshot", "show", "diff", "watch"))


def test_cli_does_not_import_pytest() -> None:
    code = "import sys, pytest_pmap.cli, pytest_pmap._cli.pmap, pytest_pmap._cli.commands; print('pytest' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.strip() == "False"


def test_a_closed_pipe_ends_quietly_like_pmap(spaced_sleep: int) -> None:
    script = f"{sys.executable} -m pytest_pmap -XX {' '.join([str(spaced_sleep)] * 20)} | head -1"
    done = subprocess.run(["bash", "-c", script + "; echo rc=${PIPESTATUS[0]}"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stderr == ""
    assert done.stdout.splitlines()[-1] in ("rc=141", "rc=0")  # killed by SIGPIPE, as pmap is
