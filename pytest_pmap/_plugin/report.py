"""The end of a session: gathering xdist workers' results, the baseline gate, the files, and the
`--pmap` table in the terminal. Imported only by a session that measures (`pytest_pmap.plugin`
calls it then)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytest

from .._measure.result import MemoryResult
from ..errors import PmapError
from ..size import signed
from .state import OUTPUTS, Gate, Session

if TYPE_CHECKING:
    from .._gate.history import HistoryEntry
    from .._gate.results import RunResults

# The gate (results files, the environment, the comparison) is imported only by a session that
# compares with a baseline, keeps a history or writes a file: plain `--pmap` prints its table.

__all__ = ["Outcome", "node_down", "session_finish", "summary_table", "terminal_summary"]


def node_down(node: Any, error: Any, state: Session) -> None:
    """On the xdist controller: gather a worker's measurements, or note that they are lost."""
    output = getattr(node, "workeroutput", {}) or {}
    name = str(getattr(getattr(node, "gateway", None), "id", node))
    if name in state.gathered:  # xdist reports an interrupted worker down twice
        return
    if "pmap_results" in output:
        state.gathered.add(name)
        state.results.extend(MemoryResult.from_json(r) for r in output["pmap_results"])
    elif error is not None:
        state.lost.append(f"xdist worker {name} went down ({error}) and the measurements of its tests were lost")


class Outcome:
    """Notes how a measuring session ends, as it happens (these hooks are given no config): a
    module that could not be collected, an interruption. Registered by `pytest_configure`."""

    def __init__(self, state: Session) -> None:
        self.state = state

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # its tests were never run
            self.state.collect_errors += 1

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Ctrl-C, pytest.exit(), a collection error, --stepwise, -x under xdist: all end here
        self.state.stopped = str(getattr(excinfo.value, "msg", None) or excinfo.value) or excinfo.typename


def _incomplete(session: pytest.Session, state: Session) -> str:
    """Why the session did not run every test it collected, or "" when it did."""
    status = session.exitstatus
    if state.stopped:
        return f"interrupted: {state.stopped}"
    if status == pytest.ExitCode.INTERNAL_ERROR:
        return "pytest stopped with an internal error"
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        return "pytest stopped early"
    stop = session.shouldfail or session.shouldstop  # -x and --maxfail
    if stop:
        return f"stopped early: {stop}"
    if state.collect_errors:
        return f"{state.collect_errors} collection error{'s' if state.collect_errors != 1 else ''}: the tests there never ran"
    return "; ".join(state.lost)


def session_finish(session: pytest.Session, state: Session) -> None:
    """The gate and the files, on the controller; a worker hands its results over instead."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller compares and writes
        workeroutput["pmap_results"] = [r.to_json() for r in state.results]
        return
    from .._gate.results import last_of_each

    state.results[:] = last_of_each(state.results)  # a test run again in the session counts once, with its last run
    gate = state.gate
    if not state.unavailable and (gate.baseline is not None or gate.outputs or gate.history is not None):
        from .._gate.environment import current_environment
        from .._gate.results import RunResults

        reason = _incomplete(session, state)
        run = RunResults(tuple(state.results), current_environment(), complete=not reason,
                         exit_status=int(session.exitstatus), incomplete_reason=reason)
        failed = _gate_and_write(state.gate, run, str(session.config.rootpath))
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.hook.pytest_pmap_session_report(results=state.results)


def _gate_and_write(gate: Gate, run: RunResults, rootdir: str) -> bool:
    """Compare with the baseline, append to the history and write the files; True when the run
    must fail for it."""
    if gate.baseline is None and not gate.outputs and gate.history is None:  # plain --pmap: nothing to do
        return False
    from .._gate.compare import Tolerance, compare
    from .._gate.reports import write_report

    if gate.baseline is not None and gate.baseline_path is not None:
        tolerance = gate.tolerance or Tolerance()
        path = gate.baseline_path
        # Reports name the baseline by its file name: a runner's absolute path means nothing to a reviewer.
        update = f"pytest --pmap-save-baseline {path if not path.is_absolute() else path.name}"
        gate.comparison = compare(gate.baseline, run, gate.metric, tolerance, f"baseline {path.name}",
                                  allow_ungated=gate.allow_empty, accept=gate.accept, accept_source=gate.accept_source,
                                  update=update)
    if gate.history is not None:
        from .._gate.history import append_history

        try:
            size = append_history(gate.history, run, rootdir)
        except PmapError as exc:
            gate.errors.append(f"history not appended: {exc}")
        else:
            gate.written.append(f"appended this run to history {gate.history} ({size:,} bytes)")
    for name, path in gate.outputs.items():
        what = OUTPUTS[name]
        if name == "pmap_save_baseline":
            why = _not_a_baseline(gate, run, path)
            if why:
                gate.errors.append(f"{what} not saved to {path}: {why}")
                continue
        try:
            done = write_report(path, _render(name, run, gate))
        except PmapError as exc:
            gate.errors.append(f"{what} not written: {exc}")
        else:
            gate.written.append(f"{done} {what} {path} ({len(run.results)} tests)"
                                + ("" if run.complete else f"; the run did not finish: {run.outcome()}"))
    return bool(gate.errors) or (gate.comparison is not None and not gate.comparison.passed)


def _not_a_baseline(gate: Gate, run: RunResults, path: Path) -> str:
    """Why this run must not be saved as a baseline at `path`, or ""."""
    if not run.complete:
        return f"the run did not finish ({run.outcome()}); its measurements are incomplete"
    if not run.results:
        return "the run measured no test, and a baseline with no results would gate nothing"
    comparison, base = gate.comparison, gate.baseline_path
    if comparison is not None and not comparison.passed and base is not None and path.resolve() == base.resolve():
        return "that is the baseline this run failed against; saving over it would accept what failed"
    return ""


def _render(name: str, run: RunResults, gate: Gate) -> bytes:
    """The bytes of one output file."""
    from .._engine.files import dumps
    from .._gate.reports import bencher, benchmark_action, markdown

    if name == "pmap_markdown":
        return markdown(run, gate.comparison, gate.metric).encode()
    if name == "pmap_bencher":
        return dumps(bencher(run))
    if name == "pmap_benchmark_action":
        return dumps(benchmark_action(run, gate.metric))
    if name == "pmap_html":
        from .._gate.html import render_html

        return render_html(run, gate.comparison, _history(gate), metric=gate.metric)
    return run.dumps()  # --pmap-json and --pmap-save-baseline: the same document


def _history(gate: Gate) -> Optional[list[HistoryEntry]]:
    """The history's runs (this one included) for the HTML report's charts; None without one."""
    if gate.history is None:
        return None
    from .._gate.history import LAST_RUNS, read_history

    try:
        entries, problems = read_history(gate.history, LAST_RUNS)
    except PmapError as exc:
        gate.errors.append(f"the HTML report has no history charts: {exc}")
        return None
    if problems:  # as `pytest-pmap trend` and `report --history` say it
        lines = f"{len(problems)} line{'s' if len(problems) != 1 else ''}"
        gate.written.append(f"the HTML report's history charts left out {lines} of {gate.history} that could not be "
                            f"read ({problems[0]})")
    return entries


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
        if not gate.comparison.passed and gate.comparison.ungated:
            tr.write_line("pmap: ERROR: a gate that compares no test passes whatever the tests do; "
                          "to run it anyway, pass --pmap-allow-empty-baseline", red=True)
        # The last line of the run says why it failed: `2 passed, 1 pmap regression in 0.5s`.
        regressed = len(gate.comparison.having("regressed"))
        if regressed:
            tr.stats.setdefault("pmap regression" if regressed == 1 else "pmap regressions", []).extend([None] * regressed)
        elif not gate.comparison.passed:
            tr.stats.setdefault("pmap gate failed", []).append(None)
    for line in gate.written:
        tr.write_line(f"pmap: {line}")
    for line in gate.errors:
        tr.write_line(f"pmap: ERROR: {line}", red=True)


def _first(pair: tuple[tuple[int, int], MemoryResult]) -> tuple[int, int]:
    return pair[0]


def summary_table(results: list[MemoryResult], top: int) -> list[str]:
    """The `--pmap` table: the `top` tests by RSS growth, in pmap's K units."""
    if not results:
        return ["no test was measured"]

    # Each test's key once (a session can measure tens of thousands); a test that grew by nothing
    # is not a "grower".
    keyed = [(key, r) for r in results if (key := (r.growth.get("rss") or 0, r.peak_growth or 0))[0] > 0 or key[1] > 0]
    grew = [r for _, r in keyed]
    ranked = [r for _, r in sorted(keyed, key=_first, reverse=True)[:top]]

    lines = [
        "growth from each test's setup to its teardown, in KiB; peak: how far RSS rose above its start; "
        "writable private: address space (pmap -d)",
        f"{'RSS':>9} {'USS':>9} {'peak':>9} {'writable private':>16} {'new mappings':>12}  test",
    ]
    for r in ranked:
        lines.append(
            f"{signed(r.growth.get('rss'), unit=False):>9} {signed(r.growth.get('uss'), unit=False):>9} "
            f"{signed(r.peak_growth, unit=False):>9} {signed(r.growth.get('writeable_private'), unit=False):>16} "
            f"{r.new_mappings:>12}  {r.nodeid}"
            + ("  [budget exceeded]" if r.budget else "")
        )
    if not ranked:
        lines.append(f"{len(results)} tests measured; none grew in RSS")
    elif len(ranked) < len(grew):
        lines.append(f"{len(results)} tests measured, {len(grew)} grew; the {len(ranked)} that grew most are listed")
    else:
        lines.append(f"{len(results)} tests measured; the {len(ranked)} that grew {'is' if len(ranked) == 1 else 'are'} "
                     "listed, the most first")
    return lines
