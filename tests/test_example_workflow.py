"""examples/github/memory-at-scale.yml: the workflow parses, has the shape the docs describe, and
its `run:` steps, run here in order (each shard, then the gate job; `uses:` steps stand for
uploads and downloads of files that stay in one folder), do what it says: on main a baseline and
a history, on a pull request with a leak a failed gate, a step summary naming the test, and the
HTML report."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / "examples" / "github" / "memory-at-scale.yml"

TEST_FILE = """
import os
import pytest
KEEP = []

def test_one():
    if os.environ.get("LEAK_IN") == __name__:
        KEEP.append(b"x" * (4 << 20))
    if os.environ.get("STOP_IN") == __name__:
        pytest.exit("stopped: the runner went away")

def test_two():
    assert sum(range(100)) == 4950
"""


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def test_the_workflow_parses_and_has_shards_a_merge_a_gate_and_the_report() -> None:
    jobs = workflow()["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(int(workflow()["env"]["SHARDS"])))
    assert jobs["gate"]["needs"] == "shard"
    # one run per branch at a time: two runs on main would each save a history line, and one be lost
    assert "github.ref" in workflow()["concurrency"]["group"]
    shard_runs = [s.get("run", "") for s in jobs["shard"]["steps"]]
    assert any("--pmap-json" in r for r in shard_runs)
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in jobs["shard"]["steps"])
    names = [s.get("name", s.get("uses", "")) for s in jobs["gate"]["steps"]]
    order = [next(i for i, n in enumerate(names) if word in n) for word in
             ("Merge", "Gate", "history", "HTML report")]
    assert order == sorted(order)
    uploads = [s for s in jobs["gate"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert "pmap-report.html" in uploads[0]["with"]["path"]


def run_job(job: str, folder: Path, event: str, env: dict[str, str], matrix: dict[str, str]) -> list[tuple[str, int, str]]:
    """Each `run:` step of a job, as the runner would run it (bash -e), skipping the install step and
    the steps whose `if:` does not hold. Returns (step, exit status, output)."""
    done: list[tuple[str, int, str]] = []
    failed = False
    for step in workflow()["jobs"][job]["steps"]:
        if "run" not in step or step.get("name") == "Install":
            continue
        condition = str(step.get("if", ""))
        if "github.event_name == 'push'" in condition and event != "push":
            continue
        if failed and "always()" not in condition:
            continue
        script = re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: matrix[m.group(1)], step["run"])
        assert "${{" not in script, f"step {step.get('name')!r} needs an expression this test cannot fill in"
        out = subprocess.run(["bash", "-e", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        done.append((str(step.get("name")), out.returncode, out.stdout + out.stderr))
        failed = failed or out.returncode != 0
    return done


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, ("test_alpha", "test_beta", "test_gamma", "test_delta", "test_epsilon"))


def make_project(tmp_path: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        (tmp_path / "tests").mkdir(exist_ok=True)
        (tmp_path / "tests" / f"{name}.py").write_text(TEST_FILE)
    (tmp_path / "examples" / "github").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "github" / "shard.py", tmp_path / "examples" / "github" / "shard.py")
    return tmp_path


Steps = dict[str, list[tuple[str, int, str]]]


def ci(project: Path, event: str, leak: str = "", stop: str = "", lose: str = "") -> tuple[Steps, str]:
    """Run the workflow: each shard, then the gate job. `leak`, `stop`: the test module that leaks
    4 MiB in test_one, or stops the session there (an interrupted shard); `lose`: a shard's
    results file that never reaches the gate job (its upload lost)."""
    summary = project / "summary.md"
    summary.write_text("")
    bin_dir = str(Path(sys.executable).parent)  # python and pytest-pmap, as the install step leaves them
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary),
           **{k: str(v) for k, v in workflow()["env"].items()}, "LEAK_IN": leak, "STOP_IN": stop,
           "GITHUB_SHA": f"{event}-sha", "GITHUB_REF_NAME": "main" if event == "push" else "feature",
           "PYTEST_ADDOPTS": "-p no:hypothesispytest"}
    for stale in project.glob("pmap-shard-*.json"):
        stale.unlink()
    steps = {}
    for shard in workflow()["jobs"]["shard"]["strategy"]["matrix"]["shard"]:
        steps[f"shard {shard}"] = run_job("shard", project, event, env, {"shard": str(shard)})
    if lose:
        (project / lose).unlink()
    steps["gate"] = run_job("gate", project, event, env, {})
    return steps, summary.read_text()


def test_the_workflow_runs_shards_then_merges_gates_keeps_history_and_reports(project: Path) -> None:
    steps, summary = ci(project, "push")
    assert all(status == 0 for job in steps.values() for _, status, _ in job), steps
    assert sorted(p.name for p in project.glob("pmap-shard-*.json")) == [f"pmap-shard-{n}.json" for n in range(4)]
    assert "No memory baseline yet" in summary
    assert (project / "pmap-baseline.json").exists() and (project / "pmap-report.html").exists()
    assert len((project / "pmap-history.jsonl").read_text().splitlines()) == 1
    merged = next(out for name, _, out in steps["gate"] if name == "Merge the shards")
    assert "merged 4 files (10 tests) into pmap-results.json" in merged

    # a pull request without a change: each shard runs against the whole baseline, where the other
    # shards' tests are gone, and passes
    steps, summary = ci(project, "pull_request")
    assert all(status == 0 for job in steps.values() for _, status, _ in job), steps
    shard = next(out for name, _, out in steps["shard 0"] if name == "Measure this shard")
    assert re.search(r"\d+ gone \(in the baseline, not in this run\)", shard), shard

    steps, summary = ci(project, "pull_request", leak="test_gamma")
    gate = {name: (status, out) for name, status, out in steps["gate"]}
    assert gate["Gate against the baseline, with the step summary"][0] == 1, gate
    assert "tests/test_gamma.py::test_one" in gate["Gate against the baseline, with the step summary"][1]
    # the shard that ran test_gamma confirmed it against the baseline as it ran; the merged
    # compare, honouring the recorded repeats, decides as the shard did
    measured = next(out for job in steps.values() for name, status, out in job
                    if name == "Measure this shard" and "test_gamma.py" in out)
    assert "1 test regressed" in measured and "confirmed 3/3" in measured, measured
    assert "confirmed 3/3" in gate["Gate against the baseline, with the step summary"][1]
    assert "## pytest-pmap: memory per test, against baseline pmap-baseline.json" in summary
    assert "tests/test_gamma.py::test_one" in summary
    assert "Here the baseline is updated by a push to main whose gate passes" in summary
    assert gate["The HTML report"][0] == 0  # always(): the report is made and uploaded when the gate fails
    page = (project / "pmap-report.html").read_text()
    assert "1 test regressed" in page and "History (1 run)" in page
    assert "Append to the history (main only)" not in gate  # a pull request does not write the history


def test_a_lost_shard_fails_the_merge_and_never_becomes_the_baseline(project: Path) -> None:
    ci(project, "push")
    baseline = (project / "pmap-baseline.json").read_bytes()
    history = (project / "pmap-history.jsonl").read_bytes()
    steps, _ = ci(project, "push", lose="pmap-shard-2.json")
    gate = {name: (status, out) for name, status, out in steps["gate"]}
    assert gate["Merge the shards"][0] == 2
    assert "--expect 4 files, got 3: pmap-shard-2.json is missing; nothing was written" in gate["Merge the shards"][1]
    assert gate["Append to the history (main only)"][0] == 2  # always(): it runs, and refuses too
    assert "Make the merged results the baseline (main only)" not in gate
    assert (project / "pmap-baseline.json").read_bytes() == baseline
    assert (project / "pmap-history.jsonl").read_bytes() == history


def test_an_interrupted_shard_is_never_made_the_baseline(project: Path) -> None:
    ci(project, "push")
    baseline = (project / "pmap-baseline.json").read_bytes()
    steps, _ = ci(project, "push", stop="test_beta")
    gate = {name: (status, out) for name, status, out in steps["gate"]}
    assert gate["Merge the shards"][0] == 0 and "the merged run is incomplete" in gate["Merge the shards"][1]
    status, out = gate["Make the merged results the baseline (main only)"]
    assert status == 1
    assert "pmap-results.json is not made the baseline: 4 of 4 shards (pmap-shard-1.json did not finish" in out
    assert (project / "pmap-baseline.json").read_bytes() == baseline


def test_a_shard_with_no_file_runs_nothing_and_the_merge_expects_one_file_fewer(tmp_path: Path) -> None:
    project = make_project(tmp_path, ("test_alpha", "test_beta", "test_gamma"))
    steps, _ = ci(project, "push")
    assert all(status == 0 for job in steps.values() for _, status, _ in job), steps
    empty = next(out for name, _, out in steps["shard 3"] if name == "Measure this shard")
    assert "shard 3 of 4 has nothing to run: 'tests' holds 3 test files, fewer than the 4 shards" in empty
    assert "passed" not in empty  # pytest never started: given no file, it would have run the whole suite
    assert not (project / "pmap-shard-3.json").exists()
    merged = next(out for name, _, out in steps["gate"] if name == "Merge the shards")
    assert "merged 3 files (6 tests) into pmap-results.json" in merged
    assert (project / "pmap-baseline.json").exists()


SHARD = REPO / "examples" / "github" / "shard.py"


def shard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SHARD), *args], cwd=cwd, capture_output=True, text=True)


def test_shard_py_splits_the_files_and_refuses_a_folder_with_no_test_file(tmp_path: Path) -> None:
    (tmp_path / "suite" / "deep").mkdir(parents=True)
    for name in ("test_a.py", "deep/test_b.py", "c_test.py", "helper.py"):
        (tmp_path / "suite" / name).write_text("")
    assert shard("0", "2", "suite", cwd=tmp_path).stdout == "suite/c_test.py suite/test_a.py\n"
    assert shard("1", "2", "suite", cwd=tmp_path).stdout == "suite/deep/test_b.py\n"
    assert shard("--count", "4", "suite", cwd=tmp_path).stdout == "3\n"
    # the suite is not under ./tests: an error, never an empty line that runs the whole suite
    missing = shard("0", "2", cwd=tmp_path)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.startswith("shard.py: no folder 'tests' here: give the folder of the suite's test files as FOLDER")
    (tmp_path / "tests").mkdir()
    empty = shard("0", "2", "tests", cwd=tmp_path)
    assert (empty.returncode, empty.stdout) == (2, "")
    assert empty.stderr.startswith("shard.py: no test file (test_*.py or *_test.py) under 'tests'")
    assert shard("--count", "2", "tests", cwd=tmp_path).returncode == 2
