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
KEEP = []

def test_one():
    if os.environ.get("LEAK_IN") == __name__:
        KEEP.append(b"x" * (4 << 20))

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
    for name in ("test_alpha", "test_beta", "test_gamma", "test_delta", "test_epsilon"):
        (tmp_path / "tests").mkdir(exist_ok=True)
        (tmp_path / "tests" / f"{name}.py").write_text(TEST_FILE)
    (tmp_path / "examples" / "github").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "github" / "shard.py", tmp_path / "examples" / "github" / "shard.py")
    return tmp_path


def ci(project: Path, event: str, leak: str = "") -> tuple[dict[str, list[tuple[str, int, str]]], str]:
    summary = project / "summary.md"
    summary.write_text("")
    bin_dir = str(Path(sys.executable).parent)  # python and pytest-pmap, as the install step leaves them
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary),
           "SHARDS": str(workflow()["env"]["SHARDS"]), "LEAK_IN": leak, "GITHUB_SHA": f"{event}-sha",
           "GITHUB_REF_NAME": "main" if event == "push" else "feature", "PYTEST_ADDOPTS": "-p no:hypothesispytest"}
    for stale in project.glob("pmap-shard-*.json"):
        stale.unlink()
    steps = {}
    for shard in workflow()["jobs"]["shard"]["strategy"]["matrix"]["shard"]:
        steps[f"shard {shard}"] = run_job("shard", project, event, env, {"shard": str(shard)})
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

    steps, summary = ci(project, "pull_request", leak="test_gamma")
    gate = {name: (status, out) for name, status, out in steps["gate"]}
    assert gate["Gate against the baseline, with the step summary"][0] == 1, gate
    assert "tests/test_gamma.py::test_one" in gate["Gate against the baseline, with the step summary"][1]
    assert "## pytest-pmap: memory per test, against baseline pmap-baseline.json" in summary
    assert "tests/test_gamma.py::test_one" in summary
    assert gate["The HTML report"][0] == 0  # always(): the report is made and uploaded when the gate fails
    page = (project / "pmap-report.html").read_text()
    assert "1 test regressed" in page and "History (1 runs)" in page
    assert "Append to the history (main only)" not in gate  # a pull request does not write the history
