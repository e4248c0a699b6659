"""Faults of files, the command line and sizes (docs/faults.md, "Round two"): paths that are not
regular files, signals during a write, hostile input files, output that cannot be written, help
that drifts from the parsers, a procfs setting that is no procfs, and sizes compared with text.

Tests that write to a device use private device nodes under tmp_path when run as root, so that a
writer that replaced the node (the fault) harms nothing on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import PMAP, REPO

from pytest_pmap import PmapError, Size, Snapshot, SnapshotFileError, TreeSnapshot, snapshot
from pytest_pmap._cli.names import SUBCOMMANDS
from pytest_pmap._engine import jsonfiles
from pytest_pmap._gate.results import ResultsFileError, RunResults

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
OURS = f"{sys.executable} -m pytest_pmap"


def ours(*args: str, env: dict[str, str] | None = None, limit: int | None = None,
         stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    """`pytest-pmap ARGS`, optionally with its address space limited to `limit` bytes."""
    def limited() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-m", "pytest_pmap", *args], capture_output=True, text=True,
                          env=env or ENV, timeout=120, preexec_fn=limited, stdin=stdin)


def shell(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A bash command line (for redirections such as `>&-`)."""
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env or ENV, timeout=120)


@pytest.fixture
def devices(tmp_path: Path) -> dict[str, Path]:
    """A null and a full device: private nodes as root, else the system's (which we cannot replace)."""
    if os.geteuid() != 0:
        return {"null": Path("/dev/null"), "full": Path("/dev/full")}
    nodes = {}
    for name, minor in (("null", 3), ("full", 7)):
        nodes[name] = tmp_path / name
        os.mknod(nodes[name], stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return nodes


@pytest.fixture(scope="module")
def saved(spaced_sleep: int, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot file of a live process."""
    path = tmp_path_factory.mktemp("saved") / "s.json"
    snapshot(spaced_sleep).save(path)
    return path


# -- 1: paths that are not regular files -------------------------------------------------------------

def test_devices_fifos_and_links_are_written_through_or_followed_not_replaced(tmp_path: Path,
                                                                              devices: dict[str, Path]) -> None:
    snap = snapshot(detail=False)
    snap.save(devices["null"])
    with pytest.raises(PmapError, match=rf"cannot write '{devices['full']}': No space left on device"):
        snap.save(devices["full"])
    assert all(stat.S_ISCHR(os.lstat(node).st_mode) for node in devices.values())

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    try:
        snap.save(fifo)
        received, _ = reader.communicate(timeout=20)
    finally:
        reader.kill()
        reader.wait()
    assert Snapshot.from_json(json.loads(received)).pid == snap.pid and stat.S_ISFIFO(os.lstat(fifo).st_mode)

    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir()
    links.mkdir()
    (real / "s.json").write_text("old")
    (links / "s.json").symlink_to("../real/s.json")
    snap.save(links / "s.json")
    assert os.readlink(links / "s.json") == "../real/s.json" and Snapshot.load(real / "s.json").pid == snap.pid
    assert sorted(os.listdir(real)) == ["s.json"]  # the temporary file was beside the target, and is gone
    (links / "hop").symlink_to(real / "new.json")  # a chain of links whose end does not exist yet
    (links / "chain").symlink_to("hop")
    snap.save(links / "chain")
    assert (links / "chain").is_symlink() and (links / "hop").is_symlink()
    assert Snapshot.load(real / "new.json").pid == snap.pid


def test_a_snapshot_written_to_stdout_goes_through_the_open_descriptor(spaced_sleep: int, tmp_path: Path) -> None:
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")  # what /dev/stdout is
    for target in (str(link), "/dev/fd/1"):
        done = ours("snapshot", str(spaced_sleep), "-o", target)
        assert done.returncode == 0, done.stderr
        assert Snapshot.from_json(json.loads(done.stdout)).pid == spaced_sleep  # JSON only: the note is on stderr
        assert done.stderr.startswith(f"pytest-pmap: saved PID {spaced_sleep} ")
        log = tmp_path / "log"
        log.write_text("before\n")
        appended = shell(f"{OURS} snapshot {spaced_sleep} -o {target} >> {log}")
        assert appended.returncode == 0, appended.stderr
        text = log.read_text()
        assert text.startswith("before\n") and json.loads(text[len("before\n"):])["pid"] == spaced_sleep
    assert link.is_symlink()


def test_pytest_writes_reports_through_devices_and_checks_them_as_the_writer_does(
        pytester: pytest.Pytester, devices: dict[str, Path]) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--pmap-json", str(devices["full"]), "--pmap-markdown", str(devices["null"]))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"pmap: ERROR: JSON results not written: cannot write '{devices['full']}': "
                                 "No space left on device"])
    assert "wrote JSON" not in result.stdout.str()
    assert all(stat.S_ISCHR(os.lstat(node).st_mode) for node in devices.values())


def _as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a Python that becomes `nobody` once it has run its leading imports as root
    (the standard library and the package may be where `nobody` cannot read them)."""
    lines = textwrap.dedent(code).lstrip("\n").splitlines(keepends=True)
    imports = 0
    while imports < len(lines) and lines[imports].startswith(("import ", "from ")):
        imports += 1
    become = "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
    script = "import os\n" + "".join(lines[:imports]) + become + "".join(lines[imports:])
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_the_early_check_judges_the_file_written_not_the_name_given() -> None:
    """As `nobody`: a device in a folder one may not write is writable; a link is judged by the
    folder of its target, not its own."""
    top = Path(tempfile.mkdtemp())
    try:
        top.chmod(0o755)
        (top / "open").mkdir(mode=0o777)
        (top / "open").chmod(0o777)
        (top / "closed").mkdir(mode=0o755)
        (top / "closed" / "to-open").symlink_to(top / "open" / "r.json")
        (top / "open" / "to-closed").symlink_to(top / "closed" / "r.json")
        done = _as_nobody(f"""
            import os, pytest, pathlib
            from pytest_pmap._plugin.options import _check_writable
            for path in ("/dev/null", {str(top / "closed" / "to-open")!r}, {str(top / "open" / "to-closed")!r}):
                try:
                    _check_writable(pathlib.Path(path), "--pmap-json")
                    print("ok")
                except pytest.UsageError as exc:
                    print(exc)
        """)
    finally:
        shutil.rmtree(top)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ok", "ok", f"--pmap-json: cannot write '{top}/open/to-closed': folder '{top}/closed' is not writable"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_file_one_may_not_write_is_never_replaced() -> None:
    """As `nobody`, in a folder anyone may write: a read-only file of one's own, and root's file,
    are refused as the shell's `>` refuses them, by the one writer every output goes through
    (`-o`, `--pmap-json`, ...) and by the plugin's early check; the files stay as they were."""
    top = Path(tempfile.mkdtemp())
    try:
        top.chmod(0o777)
        mine, roots = top / "mine.json", top / "roots.json"
        for path in (mine, roots):
            path.write_text("kept\n")
            path.chmod(0o444)
        os.chown(mine, 65534, 65534)
        done = _as_nobody(f"""
            import os, pathlib, pytest
            from pytest_pmap import PmapError
            from pytest_pmap._engine.files import write_atomic
            from pytest_pmap._plugin.options import _check_writable
            for path in ({str(mine)!r}, {str(roots)!r}):
                try:
                    write_atomic(path, b"replaced")
                except PmapError as exc:
                    print(exc)
                try:
                    _check_writable(pathlib.Path(path), "--pmap-json")
                except pytest.UsageError as exc:
                    print(exc)
        """)
        kept = [mine.read_text(), roots.read_text()]
    finally:
        shutil.rmtree(top)
    assert done.returncode == 0, done.stderr
    refused = "permission denied (the file is not writable to you); write another file, or change its permissions"
    assert done.stdout.splitlines() == [
        f"cannot write '{mine}': {refused}", f"--pmap-json: cannot write '{mine}': {refused}",
        f"cannot write '{roots}': {refused}", f"--pmap-json: cannot write '{roots}': {refused}",
    ]
    assert kept == ["kept\n", "kept\n"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_another_users_file_in_a_sticky_folder_is_refused_saying_why() -> None:
    """As `nobody`, root's file that anyone may write, in a sticky folder (as /tmp is): it cannot be
    replaced through a new file and a rename, and the message says so; the file stays."""
    top = Path(tempfile.mkdtemp())
    try:
        top.chmod(0o1777)
        target = top / "shared.json"
        target.write_text("kept\n")
        target.chmod(0o666)
        done = _as_nobody(f"""
            import os
            from pytest_pmap import PmapError
            from pytest_pmap._engine.files import write_atomic
            try:
                write_atomic({str(target)!r}, b"replaced")
            except PmapError as exc:
                print(exc)
        """)
        kept, left = target.read_text(), sorted(p.name for p in top.iterdir())
    finally:
        shutil.rmtree(top)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"cannot write '{target}': its folder '{top}' is sticky (as /tmp is) and the file is another "
                           "user's, so it cannot be replaced through a new file; write another file, or have its owner "
                           "remove it\n")
    assert kept == "kept\n" and left == ["shared.json"]  # no temporary file left


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_history_one_may_not_append_to_stops_the_run_before_the_tests() -> None:
    """As `nobody`: root's history file, and a new one in a folder nobody may write, are refused by the
    check `--pmap-history` and `merge --history` make before anything runs, as the other outputs are."""
    top = Path(tempfile.mkdtemp())
    try:
        top.chmod(0o755)
        history = top / "h.jsonl"
        history.write_text('{"format":"pytest-pmap-history"}\n')
        history.chmod(0o644)
        done = _as_nobody(f"""
            import os
            from pytest_pmap._gate.history import HistoryFileError, check_history
            for path in ({str(history)!r}, {str(top / "new.jsonl")!r}):
                try:
                    check_history(path)
                    print("ok")
                except HistoryFileError as exc:
                    print(exc)
        """)
    finally:
        shutil.rmtree(top)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"cannot append to {history}: permission denied (the file is not writable to you)",
        f"cannot create {top}/new.jsonl: its folder {top} is not writable",
    ]


# -- 2: signals while a file is written -----------------------------------------------------------

WRITER = """
import os, signal, sys, time
from pytest_pmap._engine.files import write_atomic
path, ready, how = sys.argv[1:]
if how == "default":
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a program that leaves SIGINT to the system
real_fsync = os.fsync
def fsync_then_wait(fd):  # the temporary file is whole and not yet renamed: the signal comes now
    real_fsync(fd)
    open(ready, "w").close()
    time.sleep(60)
os.fsync = fsync_then_wait
write_atomic(path, b"[" + b"0," * (32 << 20) + b"0]")
"""


@pytest.mark.parametrize(("sig", "how"), [(signal.SIGTERM, "default"), (signal.SIGHUP, "default"),
                                          (signal.SIGINT, "default"), (signal.SIGINT, "python")],
                         ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGINT-KeyboardInterrupt"])
def test_a_signal_while_a_big_file_is_written_leaves_no_temporary_file_and_the_old_file(
        tmp_path: Path, sig: signal.Signals, how: str) -> None:
    path, ready = tmp_path / "s.json", tmp_path / "ready"
    path.write_text('{"old": true}\n')
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(ready), how], env=ENV,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        temporary = [p for p in tmp_path.iterdir() if p.name.startswith(".s.json.") and p.name.endswith(".tmp")]
        assert len(temporary) == 1 and temporary[0].stat().st_size > 64 << 20
        writer.send_signal(sig)
        _, err = writer.communicate(timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready", "s.json"]
    assert path.read_text() == '{"old": true}\n'
    assert writer.returncode == -sig, err  # it ends by the signal, as it would have without us
    assert (b"KeyboardInterrupt" in err) == (how == "python")


# -- 11: input files of bounded size and shape ---------------------------------------------------------

def test_a_baseline_nested_too_deeply_is_a_usage_error_naming_the_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    pytester.path.joinpath("deep.json").write_text("[" * 100_000 + "]" * 100_000)
    result = pytester.runpytest_subprocess("--pmap-baseline", "deep.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --pmap-baseline: baseline file 'deep.json' is not a pytest-pmap file: "
                                 "its JSON is nested too deeply to read*"])
    assert "INTERNALERROR" not in result.stderr.str() + result.stdout.str()
    with pytest.raises(SnapshotFileError, match="nested too deeply"):
        Snapshot.load(pytester.path / "deep.json")


def test_endless_and_huge_inputs_are_refused_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zero = ours("show", "/dev/zero", limit=512 << 20)
    assert zero.returncode == 1 and zero.stderr == (
        "pytest-pmap show: snapshot file '/dev/zero' is not a pytest-pmap file: it does not start as JSON does "
        "(b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00')\n")
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(jsonfiles.MAX_READ + 1)  # sparse: takes no room
    done = ours("diff", str(huge), str(huge), limit=512 << 20)
    assert done.returncode == 1 and done.stderr == (
        f"pytest-pmap diff: snapshot file '{huge}' is 1,073,741,825 bytes, more than the 1,073,741,824 a "
        "pytest-pmap file may be\n")
    monkeypatch.setattr(jsonfiles, "MAX_READ", 1 << 20)  # a stream that looks like JSON and never ends
    feeder = subprocess.Popen(["yes", "["], stdout=subprocess.PIPE)
    try:
        with pytest.raises(PmapError, match=r"^baseline file 'stdin' is more than the 1,048,576 bytes"):
            jsonfiles.read_json(f"/proc/self/fd/{feeder.stdout.fileno()}", "baseline file 'stdin'")  # type: ignore[union-attr]
    finally:
        feeder.kill()
        feeder.wait()
        feeder.stdout.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(("field", "value", "error"), [
    ("taken_at", float("nan"), "'taken_at' is nan, not a time"), ("taken_at", 1e300, "'taken_at' is 1e+300, not a time"),
    ("pid", 0, "'pid' is 0, not a PID"), ("pid", True, "'pid' is True, not int"), ("pid", 1.5, "'pid' is 1.5, not int"),
    ("status", {"VmHWM": [1]}, "'status' must map field names to text"), ("rollup", "x", "'rollup' must map"),
    ("smaps", 5, "'smaps' is 5, not str"), ("comm", None, "'comm' is None, not str"), ("detail", "no", "'detail' is 'no'"),
])
def test_snapshot_files_with_impossible_fields_are_corrupt_not_tracebacks(
        saved: Path, tmp_path: Path, field: str, value: object, error: str) -> None:
    data = json.loads(saved.read_text())
    data[field] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(SnapshotFileError, match=re.escape(f"snapshot file '{bad}' is corrupt: {error}")):
        Snapshot.load(bad)
    done = ours("diff", str(saved), str(bad))
    assert done.returncode == 1 and done.stderr.startswith("pytest-pmap diff: snapshot file") and "Traceback" not in done.stderr


# -- 12: output that cannot be written -------------------------------------------------------------

SINKS = {"> /dev/full": "No space left on device", ">&-": "Bad file descriptor"}


@pytest.fixture(scope="module")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("results") / "r.json"
    path.write_text(json.dumps({"format": "pytest-pmap-results", "version": 1, "created_at": 0, "environment": {},
                                "results": [{"nodeid": "t.py::test_a", "growth": {"uss": 4096}}]}))
    return path


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("args", ["show {s}", "diff {s} {s}", "watch {p} -c 1", "snapshot {p} -o {o}",
                                  "compare {r} {r}", "help", "show --help", "-x {p}", "{p}", "-h"])
def test_output_that_cannot_be_written_is_one_line_and_pmaps_status(
        args: str, sink: str, spaced_sleep: int, saved: Path, results_file: Path, tmp_path: Path) -> None:
    command = args.format(s=saved, p=spaced_sleep, o=tmp_path / "o.json", r=results_file)
    name = command.split()[0]
    prog = f"pytest-pmap {name}" if name in (*SUBCOMMANDS, "help") else "pmap"
    done = shell(f"{OURS} {command} {sink}")
    assert done.stderr == f"{prog}: write error: {SINKS[sink]}\n"
    assert done.returncode == (2 if name == "compare" else 1)  # compare's 1 means "a test regressed"


@pytest.mark.skipif(PMAP is None, reason="procps pmap is not installed (the oracle)")
@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("args", ["-x {p}", "{p}", "-q {p} 999999", "-h", "-V", "999999", "--bogus"])
def test_write_errors_are_pmaps_own(args: str, sink: str, spaced_sleep: int) -> None:
    command = args.format(p=spaced_sleep)
    theirs, ours_ = shell(f"pmap {command} {sink}"), shell(f"{OURS} {command} {sink}")
    assert (ours_.returncode, ours_.stderr) == (theirs.returncode, theirs.stderr)


# -- 13: sizes compared with text ---------------------------------------------------------------------

def test_a_size_equals_no_text_that_is_not_a_size() -> None:
    size = Size("8MiB")
    assert (size == "hello") is False and (size != "hello") is True and "x" not in [Size(1)] and Size(1) in ["x", "1B"]
    assert (size == "8M") is True and (size != "8 MiB") is False and {size: 1}[Size(8 << 20)] == 1
    with pytest.raises(ValueError, match="'hello' is not a size"):
        assert size < "hello"


# -- 14, 19: help -------------------------------------------------------------------------------------

def _options(text: str) -> list[str]:
    return re.findall(r"(?:^|[\s\[|])(--?[A-Za-z][\w-]*)", text)


def test_every_line_of_help_is_its_parsers() -> None:
    """`pytest-pmap help` shows each subcommand's options, every one of them and no other: checked
    against what each subcommand's own --help lists (and pmap's line against pmap's usage). The
    README's command table is the same lines."""
    lines = [line.strip() for line in ours("help").stdout.splitlines() if line.startswith("  pytest-pmap ")]
    named = [line.split()[1] for line in lines]
    assert [n for n in named if n in SUBCOMMANDS] == list(SUBCOMMANDS)
    for line in lines:
        name = line.split()[1]
        shown = set(_options(line.partition(" ")[2].partition(" ")[2] if name in SUBCOMMANDS else line))
        if name not in SUBCOMMANDS:  # pmap's own command line
            usage = ours("-h").stdout
            assert shown and all(f" {option}" in usage for option in shown), line
            continue
        listed = [set(_options(row.split("  ")[1])) for row in ours(name, "--help").stdout.splitlines()
                  if re.match(r"  -", row)]
        groups = [g for g in listed if g and not g <= {"-h", "--help"}]
        assert shown <= set().union(*groups), f"{line}: options its parser does not have"
        assert all(g & shown for g in groups), f"{line}: options missing, of {groups}"
    readme = (REPO / "README.md").read_text()
    table = [row.replace("\\|", "|") for row in re.findall(r"^\| `(pytest-pmap .*?)` \|", readme, re.M)]
    assert table == lines, "README.md's command table is not what `pytest-pmap help` prints"


def test_help_is_pmaps_own_then_points_to_the_subcommands() -> None:
    if PMAP is None:
        pytest.skip("procps pmap is not installed (the oracle)")
    for flag in ("-h", "--help", "--he"):
        theirs = subprocess.run(["pmap", flag], capture_output=True, text=True)
        mine = ours(flag)
        assert (mine.returncode, mine.stderr) == (theirs.returncode, theirs.stderr) == (0, "")
        assert mine.stdout.startswith(theirs.stdout)
        more = mine.stdout[len(theirs.stdout):]
        assert all(name in more for name in SUBCOMMANDS) and "pytest-pmap help" in more, more
    theirs, mine = subprocess.run(["pmap", "--bogus"], capture_output=True, text=True), ours("--bogus")
    assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


# -- 16: a procfs setting that is no procfs ----------------------------------------------------------

@pytest.fixture
def no_procfs(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A folder that is not a procfs, and an environment that names it as one."""
    root = tmp_path / "not-proc"
    root.mkdir()
    return str(root), {**ENV, "PYTEST_PMAP_PROCFS": str(root)}


def test_a_procfs_setting_that_is_no_procfs_is_named_not_the_process(
        no_procfs: tuple[str, dict[str, str]], spaced_sleep: int, tmp_path: Path, pytester: pytest.Pytester,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, env = no_procfs
    named = f"PYTEST_PMAP_PROCFS={root} is not a procfs"
    for args in (["snapshot", str(spaced_sleep), "-o", str(tmp_path / "s.json")], ["watch", str(spaced_sleep)],
                 ["diff", str(spaced_sleep), str(spaced_sleep)], ["-x", str(spaced_sleep)]):
        done = ours(*args, env=env)
        assert done.returncode == 1 and named in done.stderr and len(done.stderr.splitlines()) == 1, (args, done.stderr)
    code = f"import pytest_pmap\ntry:\n pytest_pmap.snapshot({spaced_sleep})\nexcept Exception as e:\n print(type(e).__name__, e)"
    library = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert library.stdout.startswith(f"NotSupported {named}")
    pytester.makepyfile("def test_self(pmap): pass")
    monkeypatch.setenv("PYTEST_PMAP_PROCFS", root)
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED*{named}*"])


# -- found while looking: the command line ------------------------------------------------------------

@pytest.mark.parametrize(("args", "error"), [
    (["diff", "²", "²"], "pytest-pmap diff: snapshot file '²' does not exist"),
    (["snapshot", "１２", "-o", "x.json"], "pytest-pmap snapshot: error: argument PID: '１２' is not a PID"),
    (["watch", "٣"], "pytest-pmap watch: error: argument PID: '٣' is not a PID"),
])
def test_digits_of_other_scripts_are_not_pids(args: list[str], error: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest_pmap", *args], capture_output=True, text=True, env=ENV,
                          cwd=tmp_path, timeout=60)
    assert done.returncode in (1, 2) and error in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "x.json").exists()


def test_output_names_that_name_no_file_are_clear_errors_and_nothing_is_replaced(spaced_sleep: int,
                                                                                 tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "folder").mkdir()
    for name, error in (("", "'' is not a file name"), ("loop", "cannot write 'loop': its symbolic links loop"),
                        ("folder", "cannot write 'folder': it is a folder"),
                        ("gone/s.json", "cannot write 'gone/s.json': folder 'gone' does not exist; create it first")):
        done = subprocess.run([sys.executable, "-m", "pytest_pmap", "snapshot", str(spaced_sleep), "-o", name],
                              capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=60)
        assert done.returncode == 1 and done.stderr.startswith(f"pytest-pmap snapshot: {error}"), done.stderr
    assert (tmp_path / "loop").is_symlink() and sorted(os.listdir(tmp_path)) == ["folder", "loop"]


def test_report_options_naming_one_file_twice_or_no_file_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    pytester.path.joinpath("link.json").symlink_to("r.json")
    result = pytester.runpytest_subprocess("--pmap-json", "r.json", "--pmap-markdown", "link.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --pmap-markdown link.json is the same file as --pmap-json r.json: writing it "
                                 "would replace the other; give each its own file"])
    result = pytester.runpytest_subprocess("--pmap-json", "")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --pmap-json: '' is not a file name: give the path of the file to write"])
    assert sorted(p.name for p in pytester.path.iterdir() if p.suffix == ".json") == ["link.json"]


# -- found while looking: sizes -----------------------------------------------------------------------

def test_a_size_with_thousands_of_digits_is_a_size_error_not_a_crash(pytester: pytest.Pytester) -> None:
    from pytest_pmap import BudgetSyntaxError, parse_size

    with pytest.raises(BudgetSyntaxError, match="its number has 5000 digits"):
        parse_size("1" * 5000)
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--pmap-tolerance", "1" * 5000)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in result.stderr.str()
    result.stderr.fnmatch_lines(["ERROR: --pmap-tolerance: '1111*' is not a tolerance*"])


# -- found while looking: files -----------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write another user's file")
def test_a_file_root_rewrites_keeps_its_owner_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{}")
    os.chown(path, 65534, 65534)
    path.chmod(0o640)
    snapshot(detail=False).save(path)
    info = os.stat(path)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (65534, 65534, 0o640)
    assert Snapshot.load(path).pid == os.getpid()


def test_ctrl_c_ends_the_command_as_it_ends_pmap_without_a_traceback() -> None:
    reader = subprocess.Popen([sys.executable, "-m", "pytest_pmap", "show", "/dev/stdin"], stdin=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=ENV, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until it waits in read() on the pipe
            with contextlib.suppress(OSError):
                if "pipe" in Path(f"/proc/{reader.pid}/wchan").read_text():
                    break
            time.sleep(0.02)
        assert time.monotonic() < deadline, "the command never waited for its input"
        reader.send_signal(signal.SIGINT)
        _, err = reader.communicate(timeout=60)
    finally:
        reader.kill()
        reader.wait()
        reader.stdin.close()  # type: ignore[union-attr]
    assert (reader.returncode, err) == (-signal.SIGINT, b"")


# -- found by a hostile review: what each kind of file's one reader refuses --------------------------------

def _history_line(when: object) -> str:
    return json.dumps({"format": "pytest-pmap-history", "version": 1, "time": when, "commit": "", "branch": "",
                       "complete": True, "environment": {}, "columns": ["uss_growth"], "tests": {"t::a": [4096]}})


def _one_line(done: subprocess.CompletedProcess[str], status: int, says: str) -> None:
    """The command failed with `status` and said `says` on one line of stderr, no traceback."""
    assert (done.returncode, done.stderr.count("\n")) == (status, 1), done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr


def test_a_history_nested_too_deeply_is_one_line_naming_it(results_file: Path, tmp_path: Path) -> None:
    deep = tmp_path / "deep"
    deep.write_text("[" * 100_000 + "\n")
    says = f"history file '{deep}' holds no run (line 1: its JSON is nested too deeply to read)"
    _one_line(ours("trend", str(deep)), 1, f"pytest-pmap trend: {says}: is it a pytest-pmap history file?")
    _one_line(ours("report", "-o", str(tmp_path / "r.html"), "--history", str(deep), str(results_file)), 1,
              f"pytest-pmap report: {says}")
    assert not (tmp_path / "r.html").exists()
    for command in (["show"], ["compare", str(results_file)], ["merge", "-o", str(tmp_path / "m.json"), str(results_file)],
                    ["report", "-o", str(tmp_path / "r.html")]):  # these read it through read_json already
        _one_line(ours(*command, str(deep)), 2 if command[0] == "compare" else 1, "its JSON is nested too deeply to read")


@pytest.mark.parametrize(("when", "says"), [(2**70, '"time" is 1180591620717411303424, not a time'),
                                            (float("nan"), '"time" is nan, not a time'),
                                            (-1, '"time" is -1, not a time'), ("x", "\"time\" is 'x', not a time")])
def test_a_history_line_whose_time_is_no_date_is_skipped_and_counted(
        when: object, says: str, results_file: Path, tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    history.write_text(_history_line(1_700_000_000) + "\n" + _history_line(when) + "\n")
    skipped = f"skipped 1 line of {history} that could not be read (line 2: {says})\n"
    trend = ours("trend", str(history))
    assert (trend.returncode, trend.stderr) == (0, f"pytest-pmap trend: {skipped}")
    assert trend.stdout.startswith("uss_growth of 1 test over 1 run")
    report = ours("report", "-o", str(tmp_path / "r.html"), "--history", str(history), str(results_file))
    assert (report.returncode, report.stderr) == (0, f"pytest-pmap report: {skipped}")
    assert (tmp_path / "r.html").exists()
    history.write_text(_history_line(when) + "\n")  # no other run: nothing to show
    _one_line(ours("trend", str(history)), 1, f"holds no run (line 1: {says})")


@pytest.mark.parametrize(("field", "value", "says"), [
    ("created_at", 2**70, '"created_at" is 1180591620717411303424, not a time'),
    ("created_at", float("inf"), '"created_at" is inf, not a time'),
    ("machine", 3, '"environment.machine" is 3, not text'), ("python", ["3"], "\"environment.python\" is ['3'], not text"),
    ("page_size", "4096", "\"environment.page_size\" is '4096', not a number of bytes"),
    ("page_size", True, '"environment.page_size" is True, not a number of bytes'),
])
def test_a_results_file_with_a_time_or_environment_of_the_wrong_kind_is_corrupt(
        field: str, value: object, says: str, results_file: Path, tmp_path: Path) -> None:
    data = json.loads(results_file.read_text())
    if field == "created_at":
        data[field] = value
    else:
        data["environment"] = {"machine": "x86_64", "python": "CPython 3.11.7", field: value}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    error = f"is corrupt: {'ValueError' if field == 'created_at' else 'TypeError'}: {says}"
    with pytest.raises(ResultsFileError, match=re.escape(f"results file '{bad}' {error}")):
        RunResults.load(bad)
    out = str(tmp_path / "o")
    commands = [["report", "-o", out + ".html"], ["merge", "-o", out + ".json", str(results_file)],
                ["compare", str(results_file)], ["report", "-o", out + ".html", str(results_file), "--baseline"]]
    for command in commands:
        status = 2 if command[0] == "compare" else 1
        _one_line(ours(*command, str(bad)), status, f"'{bad}' {error}")
    assert not (tmp_path / "o.html").exists() and not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("tree", [False, True], ids=["snapshot", "tree"])
def test_a_maps_only_snapshot_that_says_it_has_detail_is_corrupt(
        tree: bool, spaced_sleep: int, saved: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    taken = ours("snapshot", "--maps-only", *(["--tree"] if tree else []), str(spaced_sleep), "-o", str(path))
    assert taken.returncode == 0, taken.stderr
    data = json.loads(path.read_text())
    (data["processes"][0] if tree else data)["detail"] = True
    path.write_text(json.dumps(data))
    where = f"snapshot file '{path}'{' (process 1)' if tree else ''}"
    says = f"{where} is corrupt: it says \"detail\": true, but its mapping at "
    with pytest.raises(SnapshotFileError, match=re.escape(says)):
        (TreeSnapshot if tree else Snapshot).load(path)
    for args in ([], ["-x"], ["-X"], ["-XX"], ["-d"]):
        _one_line(ours("show", *args, str(path)), 1, f"pytest-pmap show: {says}")
    other = str(path) if tree else str(saved)
    _one_line(ours("diff", str(path), other), 1, f"pytest-pmap diff: {says}")
    assert "has no smaps fields; take the snapshot again" in ours("show", str(path)).stderr


def test_infinity_where_a_whole_number_belongs_is_corrupt_not_a_traceback(
        saved: Path, results_file: Path, tmp_path: Path) -> None:
    # JSON readers take `Infinity` for a float, and int() of it raises OverflowError, not ValueError.
    single = json.loads(saved.read_text())
    tree = {"format": "pytest-pmap-tree", "version": 1, "root": float("inf"), "processes": [single]}
    results = json.loads(results_file.read_text())
    results["results"][0]["new_mappings"] = [{"start": float("inf"), "size": 4096, "mode": "rw-p", "name": ""}]
    cases = {"snapshot": ({**single, "ppid": float("inf")}, ["show"]), "tree": (tree, ["show"]),
             "results": (results, ["compare", str(results_file)])}
    for name, (data, command) in cases.items():
        bad = tmp_path / f"{name}.json"
        bad.write_text(json.dumps(data))
        _one_line(ours(*command, str(bad)), 2 if command[0] == "compare" else 1,
                  f"file '{bad}' is corrupt: OverflowError: cannot convert float infinity to integer")
