"""The documentation and the examples say what the code does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pytest_pmap._measure.budget import KEYS

REPO = Path(__file__).parent.parent


def test_the_budget_key_table_is_the_validators_table() -> None:
    text = (REPO / "docs" / "plugin.md").read_text()
    table = text.split("<!-- budget-keys")[1].split("<!-- end budget-keys -->")[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", table, re.M))
    assert rows == KEYS


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    # Without hypothesis's plugin, which imports hypothesis at the end of every run (see conftest's pytester).
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args],
                          cwd=REPO, capture_output=True, text=True)


def test_the_example_suite_passes_and_prints_the_table() -> None:
    result = run_pytest("examples", "-q", "--pmap")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pmap: memory per test" in result.stdout
    assert re.search(r"\d+ tests measured", result.stdout)


def test_the_failing_demos_fail_with_the_pmap_diff() -> None:
    result = run_pytest("examples/failing/demo_budgets.py", "-q")
    assert result.returncode == 1
    out = result.stdout
    assert "3 failed" in out
    assert re.search(r"E +assert growth\.uss \d+K < 8192K", out)
    assert re.search(r"[+~] [0-9a-f]{16} +\+6\d{4} .* rw--- +\[ anon \]", out)
    assert re.search(r"pmap budget exceeded \(3 limits\):\n  uss_growth: \d+K > 4096K \(limit from marker\)", out)


def test_every_pmap_option_the_docs_and_the_workflow_use_exists() -> None:
    help_text = run_pytest("--help").stdout
    known = set(re.findall(r"(--pmap[a-z-]*)", help_text))
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "examples/github").glob("*.yml"))]:
        used = set(re.findall(r"(--pmap[a-z-]*)", path.read_text()))
        assert used <= known, f"{path.name} uses options pytest does not know: {sorted(used - known)}"


def test_the_gate_docs_list_every_metric() -> None:
    from pytest_pmap._measure.result import GATE_METRICS

    text = (REPO / "docs" / "gate.md").read_text()
    listed = text.split("or the\npeak: ")[1].split(".\n")[0]
    assert re.findall(r"`(\w+)`", listed) == list(GATE_METRICS)


def test_what_can_go_wrong_lists_every_case_with_tests_that_exist() -> None:
    text = (REPO / "docs" / "faults.md").read_text()
    cases = [int(n) for n in re.findall(r"^\| (\d+) \|", text, re.M)]
    assert sorted(cases) == list(range(1, 21)), "the page covers the twenty cases of the issue, once each"
    later = re.findall(r"^\| (\d+\.\d+) \|", text, re.M)
    assert len(later) == len(set(later)), "each case of a later round is listed once"
    named = re.findall(r"`(?:(test_\w+)\.py::)?(test_\w+)`", text)
    assert len(named) > 40
    for module, test in named:
        source = (REPO / "tests" / f"{module or 'test_faults'}.py").read_text()
        assert f"def {test}(" in source, f"docs/faults.md names {module or 'test_faults'}.py::{test}, which does not exist"
