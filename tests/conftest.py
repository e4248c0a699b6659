"""Shared fixtures: live processes with interesting memory maps, and the real pmap as an oracle."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

HELPERS = Path(__file__).parent / "helpers"
REPO = Path(__file__).parent.parent
PMAP = shutil.which("pmap")

T = TypeVar("T")

pytest_plugins = ["pytester", "forked", "browser"]  # forked: the tree_of fixture (a live process tree); browser: Chromium


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, whose pytest runs leave hypothesis's plugin out.

    That plugin imports hypothesis at the end of every run, which pytest then assertion-rewrites
    module by module: about a second of CPU per run (several on a busy machine), and more where
    PYTHONDONTWRITEBYTECODE keeps pytest from caching the rewritten modules. The runs test
    pytest-pmap, not hypothesis. (pytester clears PYTEST_ADDOPTS when it starts; this sets it after.)
    """
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest")
    return pytester


def known(value: T | None) -> T:
    """`value`, which must not be None: a metric or field the kernel reported (their types allow None,
    for kernels that do not)."""
    assert value is not None
    return value


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"fixture process {proc.args!r} exited early: {path.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"fixture process {proc.args!r} never became ready")


class Processes:
    """Starts fixture processes and kills and reaps every one of them at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str | bytes], ready: str | None = None) -> subprocess.Popen[bytes]:
        log = self.workdir / f"proc{len(self.procs)}.out"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        if ready:
            _wait_for(log, ready, proc)
        else:
            time.sleep(0.3)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    p = Processes(tmp_path_factory.mktemp("procs"))
    yield p
    p.stop()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tmp_path_factory.mktemp("w")
    w.chmod(0o777)
    return w


@pytest.fixture(scope="session")
def spaced_sleep(procs: Processes, workdir: Path) -> int:
    """A `sleep` run from a path with a space in it."""
    folder = workdir / "d s"
    folder.mkdir()
    exe = folder / "my sleep"
    shutil.copy("/bin/sleep", exe)
    return procs.start([str(exe), "600"]).pid


@pytest.fixture(scope="session")
def deleted_sleep(procs: Processes, workdir: Path) -> int:
    """A `sleep` whose executable was deleted after it started."""
    exe = workdir / "gone"
    shutil.copy("/bin/sleep", exe)
    pid = procs.start([str(exe), "600"]).pid
    exe.unlink()
    return pid


@pytest.fixture(scope="session")
def python_fixture(procs: Processes, workdir: Path) -> int:
    """A Python process holding every odd kind of mapping (see helpers/mappings.py)."""
    folder = workdir / "fx"
    folder.mkdir()
    return procs.start([sys.executable, str(HELPERS / "mappings.py"), str(folder)], ready="ready").pid


@pytest.fixture(scope="session")
def many_mappings(procs: Processes) -> int:
    """A process with 3,000 mappings: its smaps (about 2 MiB) is long enough to be read ahead."""
    return procs.start([sys.executable, str(HELPERS / "many_mappings.py"), "3000"], ready="ready").pid


@pytest.fixture(scope="session")
def zombie(procs: Processes) -> int:
    """The PID of a zombie: a child that exited and is never reaped."""
    parent = procs.start(
        [sys.executable, "-c",
         "import os,sys,time\npid=os.fork()\nif pid==0: os._exit(0)\nprint(pid,flush=True);time.sleep(600)"],
        ready="\n",
    )
    log = procs.workdir / f"proc{len(procs.procs) - 1}.out"
    child = int(log.read_text().split()[0])
    _wait_until_zombie(child)
    assert parent.poll() is None
    return child


class Forks:
    """Drives helpers/exit_race.py: copies of a process with many mappings, forked from one and let
    go one at a time, to exit (or start a new program) while they are read."""

    def __init__(self, mappings: int) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HELPERS / "exit_race.py"), str(mappings)], text=True,
                                     bufsize=1, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.waiting = int(self.stdout.readline().split()[1])
        """The copy forked in advance, waiting for its orders: its map is every copy's map."""
        self._answer_due = False
        self._let_go = 0

    def go(self, order: str) -> int:
        """Let the waiting copy go (`order` is "DELAY_US", or "exec DELAY_US" to run `sleep`);
        returns its PID at once, to be read while it goes. Every 25 copies, those let go are killed
        and reaped (until then, those that exited wait as zombies)."""
        if self._answer_due:
            self.waiting = int(self.stdout.readline())
            if self._let_go % 25 == 0:
                self.stdin.write("reap\n")
                self.stdin.flush()
                assert self.stdout.readline() == "reaped\n"
        pid = self.waiting
        self.stdin.write(f"{order}\n")
        self.stdin.flush()
        self._answer_due = True
        self._let_go += 1
        return pid

    def close(self) -> None:
        self.stdin.close()
        self.stdout.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def forks() -> Iterator[Forks]:
    """Copies of a process with 2,000 mappings, let go one at a time (see `Forks`)."""
    f = Forks(2000)
    yield f
    f.close()


def _wait_until_zombie(pid: int, timeout: float = 10) -> None:
    """Wait until `/proc/PID/stat` shows state Z (an exited process, or an exited main thread)."""
    deadline = time.monotonic() + timeout
    while (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
           and time.monotonic() < deadline):
        time.sleep(0.05)


@pytest.fixture(scope="session")
def main_thread_exited(procs: Processes) -> tuple[int, int]:
    """(PID, TID) of a Python process whose main thread has exited while thread TID runs on."""
    code = (
        "import ctypes,threading,time\n"
        "b = bytearray(64 << 20); del b\n"  # a peak well above what it keeps
        "threading.Thread(target=lambda: time.sleep(600)).start()\n"
        "print('ready',flush=True)\n"
        "ctypes.CDLL(None).pthread_exit(None)"
    )
    proc = procs.start([sys.executable, "-c", code], ready="ready")
    _wait_until_zombie(proc.pid)
    (tid,) = (int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid)
    return proc.pid, tid


@pytest.fixture(scope="session")
def odd_comm(procs: Processes, workdir: Path) -> int:
    """A `sleep` whose command name (from its file name) holds `) (`, spaces and a newline."""
    exe = workdir / "x) (y\nz"
    shutil.copy("/bin/sleep", exe)
    return procs.start([str(exe), "600"]).pid


@pytest.fixture(scope="session")
def odd_cmdline(procs: Processes) -> int:
    """A process whose argv holds control bytes, invalid UTF-8, an empty argument and a newline."""
    code = (
        "import os,sys;os.execv(sys.executable,[b'py\\x01th\\xffon',b'-c',"
        "b'import time;print(\"ready\",flush=True);time.sleep(600)',b'',b'a\\nb ',b''])"
    )
    return procs.start([sys.executable, "-c", code], ready="ready").pid


@pytest.fixture(scope="session")
def long_path_sleep(procs: Processes, workdir: Path) -> int:
    """A `sleep` whose path is over 1023 bytes, so its maps lines are too (pmap-format.md Q6)."""
    folder = workdir
    for _ in range(5):
        folder = folder / ("d" * 200)
    folder.mkdir(parents=True)
    exe = folder / "s"
    shutil.copy("/bin/sleep", exe)
    return procs.start([str(exe), "600"]).pid


# -- the oracle -----------------------------------------------------------------------------------------

_PSS_COLUMN = re.compile(r" *\S+")


def mask_drift(text: str) -> str:
    """Hide the values of Pss-type columns of -X tables: they change whenever any process maps the same
    pages. The column's place and width, which come from the header, still count."""
    spans: list[tuple[int, int]] = []
    out = []
    for line in text.split("\n"):
        if re.match(r"\d+:   ", line):
            spans = []
        elif re.match(r" *Address ", line):
            spans = [(m.start(), m.end()) for m in _PSS_COLUMN.finditer(line) if re.search("Pss|_Clean", m.group())]
        for s, e in spans:
            line = line[:s] + re.sub(r"[\d ]", "#", line[s:e]) + line[e:]
        out.append(line)
    return "\n".join(out)


def _kernel_fields() -> list[str]:
    """The smaps fields this kernel writes for every mapping, in order."""
    names = []
    for line in Path("/proc/self/smaps").read_text().splitlines()[1:]:
        m = re.match(r"(\w+):\s+\d+( kB)?$", line)
        if not m:
            break
        names.append(m.group(1))
    return names


_X_HIDDEN = {"AnonHugePages", "KernelPageSize", "MMUPageSize", "Shared_Clean", "Shared_Dirty", "Private_Clean",
             "Private_Dirty"}


def mask_loose(text: str, everything: bool) -> str:
    """For -X tables whose Pss columns may change width between runs (a Python target, or -q with
    no header to locate them): collapse blanks, and hide the Pss-type values by column number."""
    shown = [n for n in _kernel_fields() if everything or n not in _X_HIDDEN]
    drifting = {5 + i for i, n in enumerate(shown) if re.search("Pss|_Clean", n)}
    out = []
    for line in text.split("\n"):
        tokens = line.split()
        if re.match(r"\d+:   ", line):
            pass
        elif len(tokens) > 5 and re.fullmatch(r"[0-9a-f]+", tokens[0]) and re.fullmatch(r"[-r][-w][-x][ps]", tokens[1]):
            tokens = ["#" if i in drifting else t for i, t in enumerate(tokens)]
        elif tokens and (re.fullmatch(r"=+", tokens[0]) or line.endswith("KB ")):
            tokens = ["#" if i + 5 in drifting else t for i, t in enumerate(tokens)]
        out.append(" ".join(tokens))
    return "\n".join(out)


def run(argv: list[str], env: dict[str, str] | None = None, user: str | None = None) -> str:
    """stdout, stderr and exit status of a command, as one text (bytes kept as surrogate escapes)."""
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    done = subprocess.run(argv, capture_output=True, env=env, timeout=60)

    def decode(b: bytes) -> str:
        return b.decode("utf-8", "surrogateescape")

    return f"{decode(done.stdout)}--stderr--\n{decode(done.stderr)}rc={done.returncode}\n"


def with_our_help(theirs: str) -> str:
    """pmap's output as ours must be: where pmap prints its help to stdout (-h, --help), ours adds
    a paragraph pointing to the subcommands after pmap's text, which it keeps byte for byte
    (docs/engine.md, where we differ from pmap on purpose). Usage printed to stderr is unchanged."""
    from pytest_pmap._cli.pmap import HELP_MORE

    stdout, sep, rest = theirs.partition("--stderr--\n")
    if stdout.startswith("\nUsage:\n pmap [options]") and stdout.endswith("For more details see pmap(1).\n"):
        stdout += HELP_MORE
    return stdout + sep + rest


def ours_argv(python: str = sys.executable) -> list[str]:
    return [python, "-m", "pytest_pmap"]


def oracle(
    args: list[str], env: dict[str, str] | None = None, user: str | None = None, python: str = sys.executable,
    loose: bool = False,
) -> tuple[str, str]:
    """(pmap's output, ours) for the same arguments, masked for drift; retried while they differ.

    pmap is run by name, as a user would, so its messages start with `pmap:`. With `loose`, -X
    tables are compared by words with Pss-type values hidden (see `mask_loose`).
    """
    if PMAP is None:
        pytest.skip("procps pmap is not installed: it is the oracle for these tests (.ci/run installs it)")
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    theirs = ours = ""
    everything = "".join(args).count("X") > 1

    def mask(text: str) -> str:
        return mask_loose(text, everything) if loose else mask_drift(text)

    for _ in range(4):
        theirs = mask(with_our_help(run(["pmap", *args], env, user)))
        ours = mask(run([*ours_argv(python), *args], env, user))
        if theirs == ours:
            break
    return theirs, ours
