"""`pytest-pmap merge`: the results files of a suite's shards (CI matrix jobs, separate runs)
made into one, which the gate, the reports and `--pmap-baseline` read like any run's.

A test measured by two inputs is an error: shards split a suite, so a test in two of them is a
shard uploaded twice or a split gone wrong, and keeping either measurement would gate against a
number nobody chose. `samples=True` says otherwise: every result is kept, in the order of the
inputs, as a sample of its test, and the file says `"samples": true`.

Nothing of the inputs is hidden: each is listed (`inputs`) with its environment, inputs measured
in different environments are noted, and the merged run is incomplete when any input is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from .results import MergedInput, ResultsFileError, RunResults

__all__ = ["load_inputs", "merge", "merge_files"]


def merge(inputs: Sequence[tuple[str, RunResults]], *, samples: bool = False) -> RunResults:
    """One run from `(file name, run)` pairs, in their order. Raises `ResultsFileError` when a
    test is in two inputs (unless `samples`), naming the test and both files."""
    if not inputs:
        raise ResultsFileError("nothing to merge: give the results files of the shards")
    owner: dict[str, str] = {}
    results = []
    for name, run in inputs:
        if run.samples and not samples:
            raise ResultsFileError(
                f"{name} holds several samples of its tests (it was merged with --samples); "
                "merge it with --samples too, or merge the shards it was made from"
            )
        for result in run.results:
            owned = owner.setdefault(result.nodeid, name)
            if owned != name and not samples:
                raise ResultsFileError(
                    f"test {result.nodeid!r} is in both {owned} and {name}: shards must not share tests "
                    "(was one uploaded twice, or the suite split wrongly?); to keep both measurements as "
                    "samples of the test, pass --samples"
                )
            results.append(result)
    if not results:
        raise ResultsFileError(f"none of the {len(inputs)} files holds a result: was each saved from the right run?")
    first_name, first = inputs[0]
    notes = []
    for name, run in inputs[1:]:
        differences = first.environment.differences(run.environment)
        if differences:
            notes.append(f"{name} was measured with {', '.join(differences)} (against {first_name})")
    unfinished = [(name, run) for name, run in inputs if run.complete is False]
    if unfinished:
        complete = False
    elif any(run.complete is None for _, run in inputs):
        complete = None
    else:
        complete = True
    statuses = [run.exit_status for _, run in inputs if run.exit_status is not None]
    return RunResults(
        tuple(results),
        first.environment,
        created_at=max((run.created_at for _, run in inputs), default=0.0) or time.time(),
        complete=complete,
        exit_status=next((s for s in statuses if s), 0) if statuses else None,
        incomplete_reason="; ".join(f"{name} did not finish: {run.outcome()}" for name, run in unfinished),
        samples=samples,
        inputs=tuple(MergedInput(name, len(run.results), run.environment, run.complete, run.incomplete_reason)
                     for name, run in inputs),
        notes=(*(n for _, run in inputs for n in run.notes), *notes),
    )


def load_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, RunResults]]:
    """Each file read as a results file (a shard that measured nothing is allowed: a split can
    leave one empty); a file named twice is an error."""
    seen: dict[str, str] = {}
    inputs = []
    for path in paths:
        name = os.fspath(path)
        key = os.path.realpath(name)
        if key in seen:
            raise ResultsFileError(f"results file {name!r} is given twice (also as {seen[key]!r}): each shard once")
        seen[key] = name
        inputs.append((name, RunResults.load(name, "results file", allow_empty=True)))
    return inputs


def merge_files(paths: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, samples: bool = False) -> RunResults:
    """Merge the files and write the result to `output` atomically. `output` may not be one of the
    inputs: merging into a shard would replace it before it was kept anywhere else."""
    target = os.path.realpath(output)
    for path in paths:
        if os.path.realpath(path) == target:
            raise ResultsFileError(f"-o {os.fspath(output)} is one of the inputs: writing it would replace that "
                                   "shard's results; give the merged file a name of its own")
    merged = merge(load_inputs(paths), samples=samples)
    merged.save(Path(output))
    return merged
