"""The end of a session: gathering xdist workers' results, the baseline gate, the files, and the
`--pmap` table in the terminal. Imported only by a session that measures (`pytest_pmap.plugin`
calls it then)."""

from __future__ import annotations

from typing import Any

import pytest

from .._engine.files import dumps
from .._gate.compare import Tolerance, compare
from .._gate.environment import current_environment
from .._gate.results import RunResults
from .._measure.result import MemoryResult
from ..errors import PmapError
from ..size import signed
from .state import OUTPUTS, Gate, Session

__all__ = ["node_down", "session_finish", "summary_table", "terminal_summary"]


def node_down(node: Any, state: Session) -> None:
    """On the xdist controller: gather a worker's measurements."""
    output = getattr(node, "workeroutput", {}) or {}
    if "pmap_results" in output:
        state.results.extend(MemoryResult.from_json(r) for r in output["pmap_results"])


def session_finish(session: pytest.Session, state: Session) -> None:
    """The gate and the files, on the controller; a worker hands its results over instead."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller compares and writes
        workeroutput["pmap_results"] = [r.to_json() for r in state.results]
        return
    if not state.unavailable:
        failed = _gate_and_write(state.gate, tuple(state.results), session.exitstatus)
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.hook.pytest_pmap_session_report(results=state.results)


def _gate_and_write(gate: Gate, results: tuple[MemoryResult, ...], exitstatus: int) -> bool:
    """Compare with the baseline and write the files; True when the run must fail for it."""
    if gate.baseline is None and not gate.outputs:  # plain --pmap: nothing to compare or write
        return False
    from .._gate.reports import write_report

    run = RunResults(results, current_environment())
    if gate.baseline is not None:
        tolerance = gate.tolerance or Tolerance()
        gate.comparison = compare(gate.baseline, run, gate.metric, tolerance, f"baseline {gate.baseline_path}")
    for name, path in gate.outputs.items():
        what = OUTPUTS[name]
        if name == "pmap_save_baseline" and exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
            gate.errors.append(f"{what} not saved to {path}: the run was interrupted, its measurements are incomplete")
            continue
        try:
            done = write_report(path, _render(name, run, gate))
        except PmapError as exc:
            gate.errors.append(f"{what} not written: {exc}")
        else:
            gate.written.append(f"{done} {what} {path} ({len(run.results)} tests)")
    return bool(gate.errors) or (gate.comparison is not None and not gate.comparison.passed)


def _render(name: str, run: RunResults, gate: Gate) -> bytes:
    """The bytes of one output file."""
    from .._gate.reports import bencher, benchmark_action, markdown
    if name == "pmap_markdown":
        return markdown(run, gate.comparison, gate.metric).encode()
    if name == "pmap_bencher":
        return dumps(bencher(run))
    if name == "pmap_benchmark_action":
        return dumps(benchmark_action(run, gate.metric))
    return run.dumps()  # --pmap-json and --pmap-save-baseline: the same document


def terminal_summary(tr: Any, state: Session) -> None:
    """The `--pmap` table, the gate's verdict and the files written."""
    tr.write_sep("=", "pmap: memory per test")
    if state.unavailable:
        tr.write_line(f"--pmap did nothing: {state.unavailable}")
        return
    for line in summary_table(state.results, state.top):
        tr.write_line(line)
    if state.reader is not None and state.reader.totals_from == "smaps":
        tr.write_line("pmap: this kernel has no smaps_rollup: PSS and USS were summed over smaps (the same numbers, "
                      "read more slowly)")
    gate = state.gate
    if gate.comparison is not None:
        tr.write_sep("-", "pmap: the baseline gate", red=not gate.comparison.passed, green=gate.comparison.passed)
        for line in gate.comparison.table():
            tr.write_line(line, yellow=line.startswith("WARNING"))
    for line in gate.written:
        tr.write_line(f"pmap: {line}")
    for line in gate.errors:
        tr.write_line(f"pmap: ERROR: {line}", red=True)


def summary_table(results: list[MemoryResult], top: int) -> list[str]:
    """The `--pmap` table: the `top` tests by RSS growth, in pmap's K units."""
    if not results:
        return ["no test was measured"]

    def key(r: MemoryResult) -> tuple[int, int]:
        return (r.growth.get("rss") or 0, r.peak_growth or 0)

    ranked = sorted(results, key=key, reverse=True)[:top]

    lines = [f"{'RSS':>10} {'USS':>10} {'peak':>10} {'w/private':>10} {'new maps':>8}  test"]
    for r in ranked:
        new = f"{r.new_mappings}" if r.new_mappings else "-"
        lines.append(
            f"{signed(r.growth.get('rss')):>10} {signed(r.growth.get('uss')):>10} {signed(r.peak_growth):>10} "
            f"{signed(r.growth.get('writeable_private')):>10} {new:>8}  {r.nodeid}"
            + ("  [budget exceeded]" if r.budget else "")
        )
    lines.append(f"{len(results)} tests measured; growth during each test's call, peak above its starting RSS")
    return lines
