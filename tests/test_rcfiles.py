"""pmap's rc files (`-n`, `-N FILE`, `-c`, `-C FILE`): output, stderr, exit status and the file
written, against the real pmap 4.0.2, each tool with its own HOME (and XDG_CONFIG_HOME) in a
temporary folder."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PMAP, REPO, oracle, ours_argv, run

from pytest_pmap._cli.rcfile import TEMPLATE, _fgets, create_rc, read_rc
from pytest_pmap._engine.files import write_new
from pytest_pmap.errors import PmapError

oracle_only = pytest.mark.skipif(PMAP is None, reason="procps pmap is not installed (the oracle)")


def home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CONFIG_HOME")}
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "PYTHONPATH": str(REPO)}


def both(tmp_path: Path, script: list[list[str]], umask: int = 0o022,
         links: dict[str, str] | None = None) -> tuple[str, str]:
    """Run the same commands with pmap and with ours, each in a fresh HOME that is also the working
    folder (holding the symbolic `links`, name -> target): what each printed, its exit status, and
    every file it left there (name, mode, bytes)."""
    results = []
    for name, argv in (("pmap", ["pmap"]), ("ours", ours_argv())):
        home = tmp_path / name
        home.mkdir()
        for link, target in (links or {}).items():
            (home / link).symlink_to(target)
        out = []
        for args in script:
            args = [a.replace("{home}", str(home)) for a in args]
            done = subprocess.run([*argv, *args], capture_output=True, env=home_env(home), cwd=home, timeout=60,
                                  preexec_fn=lambda: os.umask(umask) and None)
            out.append(f"{args}: {done.stdout!r} {done.stderr!r} rc={done.returncode}")
        for path in sorted(home.rglob("*")):
            if path.is_file():
                out.append(f"{path.relative_to(home)} {stat.filemode(path.stat().st_mode)} {path.read_bytes()!r}")
        results.append("\n".join(out).replace(str(home), "HOME"))
    return results[0], results[1]


@oracle_only
def test_creating_the_default_rc_file(tmp_path: Path) -> None:
    theirs, ours = both(tmp_path, [["-n"], ["-n"], ["--create-rc"], ["-c", "1"]])
    assert ours == theirs
    assert "~/.pmaprc file successfully created" in ours and "the file already exists" in ours
    assert (tmp_path / "ours" / ".pmaprc").read_text() == TEMPLATE


@oracle_only
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_creating_an_rc_file_where_asked(tmp_path: Path, umask: int) -> None:
    script = [["-N", "rc"], ["-N", "rc"], ["--create-rc-to={home}/other"], ["-N", "{home}/missing/rc"], ["-N", "{home}"],
              ["-N", ""], ["-N"], ["-N", "x", "1"], ["-n", "1"], ["-N", "y", "-q"], ["-p", "-n"], ["-n", "-N", "z"]]
    theirs, ours = both(tmp_path, script, umask)
    assert ours == theirs
    assert "rc file successfully created" in ours


@oracle_only
def test_a_link_to_nothing_is_followed_and_what_it_names_created(tmp_path: Path) -> None:
    links = {".pmaprc": "made", "rc": "sub/made-too", "loop": "loop", "slash": "missing/"}
    theirs, ours = both(tmp_path, [["-n"], ["-N", "rc"], ["-N", "loop"], ["-N", "slash"], ["-n"]], links=links)
    assert ours == theirs
    assert (tmp_path / "ours" / "made").read_text() == TEMPLATE


@oracle_only
def test_without_home(tmp_path: Path) -> None:
    for args in (["-n"], ["-c", "1"]):
        env = {k: v for k, v in os.environ.items() if k != "HOME"}
        theirs, ours = oracle(args, env=env)
        assert ours == theirs
        assert "HOME variable undefined" in ours


#: Edits a user makes to the template of `pmap -n`: lines uncommented, others added.
EDITS = {
    "fields": ["Perm", "Rss", "Size", "Mapping"],
    "everything": ["Perm", "Offset", "Device", "Inode", "Size", "Rss", "Pss", "Shared_Clean", "Shared_Dirty",
                   "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "AnonHugePages", "Swap",
                   "KernelPageSize", "MMUPageSize", "Locked", "VmFlags", "Mapping"],
    "path": ["Rss", "Mapping", "ShowPath"],
    "flags, no mapping": ["VmFlags", "Inode", "Rss"],
    "no fields": [],
    "kernel fields the template leaves out": ["THPeligible", "ProtectionKey", "Pss_Dirty", "Mapping"],
}


def edited(names: list[str]) -> str:
    text = TEMPLATE
    for name in names:
        text = text.replace(f"\n#{name}\n", f"\n{name}\n")
        if f"\n{name}\n" not in text:  # not in the template: the user adds the line
            text = text.replace("[Fields Display]\n", f"[Fields Display]\n{name}\n")
    return text


def _drifts(edit: str) -> bool:
    """True when the edit shows a column whose values change between two runs (Pss, *_Clean): with
    -q there is no header line to find it by, so such tables are not compared byte for byte."""
    return any("Pss" in name or "_Clean" in name for name in EDITS[edit])


@oracle_only
@pytest.mark.parametrize(
    ("edit", "flags"),
    [(edit, flags) for edit in EDITS for flags in ("", "-q", "-p", "-A 0,1") if not (flags == "-q" and _drifts(edit))],
    ids=str,
)
def test_a_users_edited_rc_file(tmp_path: Path, spaced_sleep: int, deleted_sleep: int, edit: str, flags: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = home_env(home)
    created = run(["pmap", "-n"], env)
    assert created == "--stderr--\npmap: ~/.pmaprc file successfully created, feel free to edit the content\nrc=0\n"
    (home / ".pmaprc").write_text(edited(EDITS[edit]))
    flags_ = [*flags.split(), "-c"]
    theirs, ours = oracle([*flags_, str(spaced_sleep)], env=env)
    assert ours == theirs
    # Several PIDs: pmap 4.0.2 carries the table's totals from one PID to the next (pmap-format.md
    # Q3, fixed in 4.0.4); we print each as 4.0.4 does, which is pmap on each PID alone.
    expected = "".join(oracle([*flags_, pid], env=env)[0].partition("--stderr--")[0]
                       for pid in (str(spaced_sleep), str(deleted_sleep)))
    theirs, ours = oracle([*flags_, str(spaced_sleep), str(deleted_sleep)], env=env)
    assert ours == f"{expected}--stderr--\nrc=0\n"
    theirs, ours = oracle([*flags.split(), "-C", str(home / ".pmaprc"), str(spaced_sleep)], env=env)
    assert ours == theirs


#: rc files a user might write by hand, and what pmap makes of each line.
ODD_FILES = {
    "unknown section and junk": "[Bogus]\nx\n[Fields Display]\nRss junk\n",
    "no section": "Rss\nSize\n",
    "text after a section": "[Fields Display]junk\nRss\n  [Mapping] # c\nShowPath\n[Fields Display]  x y\nMapping\n",
    "unclosed section": "[Fields Display]\nRss\n[Bogus\nSize\n",
    "tabs and comments": "[Fields Display]\n\tRss\t#x\nSize\tjunk\n # a comment\n\n",
    "a line over 1023 bytes": "[Fields Display]\n" + "R" * 1030 + "\nRss\n" + "x" * 1023 + "\nSize\n",
    "a line of exactly 1024 bytes": "[Fields Display]\nRss" + " " * 1021 + "\nSize\n",
    "a line of 1023 bytes": "[Fields Display]\nRss" + " " * 1020 + "\nSize\n",
    "a NUL byte": "[Fields Display]\nRss\0junk\nSize\n",
    "no newline at the end": "[Fields Display]\nRss\nSize",
    "ShowPath twice": "[Mapping]\nShowPath\nShowPath\n[Fields Display]\nMapping\n",
    "carriage returns": "[Fields Display]\r\nRss\r\nSize\n",
    "a long name": "[Fields Display]\n" + "Rss" + "x" * 40 + "\nSize\n",
}


@oracle_only
@pytest.mark.parametrize("name", list(ODD_FILES), ids=str)
def test_odd_rc_files(tmp_path: Path, spaced_sleep: int, name: str) -> None:
    rc = tmp_path / "rc"
    rc.write_bytes(ODD_FILES[name].encode())
    for flags in ([], ["-p"], ["-q"]):
        theirs, ours = oracle([*flags, "-C", str(rc), str(spaced_sleep)])
        assert ours == theirs


@oracle_only
def test_rc_files_that_cannot_be_read(tmp_path: Path, spaced_sleep: int) -> None:
    (tmp_path / "rc").write_text("[Fields Display]\nRss\n")
    p = str(spaced_sleep)
    for args in (["-C", str(tmp_path / "none"), p], ["-C", str(tmp_path), p], ["-c", p], ["-C", str(tmp_path / "rc")],
                 ["-C", str(tmp_path / "none"), "12x"], ["-C", str(tmp_path / "rc"), "12x"], ["-C"], ["-c", "-x", p],
                 ["-C", str(tmp_path / "rc"), "-X", p], ["--read-rc-from", str(tmp_path / "rc"), p], ["--read-rc", p],
                 ["-C", str(tmp_path / "rc"), "999999"], ["-C", str(tmp_path / "rc"), "2"]):
        theirs, ours = oracle(args, env=home_env(tmp_path / "empty-home"))
        assert ours == theirs, args


def test_the_parser_reads_lines_as_fgets_does() -> None:
    assert _fgets(b"a\nb") == [b"a\n", b"b"]
    assert _fgets(b"x" * 1030 + b"\ny\n") == [b"x" * 1024, b"x" * 6 + b"\n", b"y\n"]
    assert _fgets(b"x" * 1023 + b"\n") == [b"x" * 1023 + b"\n"]
    assert _fgets(b"") == []


def test_a_folder_reads_as_an_empty_rc_file(tmp_path: Path) -> None:
    rc = read_rc(str(tmp_path))
    assert rc is not None and rc.fields == frozenset() and not rc.warnings
    assert read_rc(str(tmp_path / "none")) is None


def test_an_existing_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "rc"
    path.write_text("mine")
    assert create_rc(str(path)) == "exists"
    assert path.read_text() == "mine"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")  # dangling: pmap would write through it; we refuse
    with pytest.raises(PmapError, match="cannot create"):
        write_new(link, b"x")
    assert not (tmp_path / "elsewhere").exists()


def test_a_file_that_cannot_be_written_whole_is_removed(tmp_path: Path) -> None:
    # Files are limited to 100 bytes: the template (448) cannot be written whole.
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))\n"
        "from pytest_pmap._cli import main\n"
        "sys.exit(main(['-N', sys.argv[1]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "rc")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "pmap: couldn't create the rc file\n")
    assert list(tmp_path.iterdir()) == []


def test_reading_an_rc_file_is_pure(tmp_path: Path) -> None:
    rc = tmp_path / "rc"
    rc.write_text("[Fields Display]\nRss junk\n[Mapping]\nShowPath\n[Nope]\nSize\n")
    got = read_rc(str(rc))
    assert got is not None
    assert got.fields == frozenset({"Rss"}) and got.toggles_path
    assert got.warnings == ("pmap: syntax error found in the config - line 2\n"
                            "pmap: unsupported section found in the config - line 5\n")
