"""Measuring: `Probe` (a process under watch, with readings that explain themselves), budgets
(limits checked against a probe), the cheap per-test readings of `--pmap` (`boundary`), and the
processes a test starts, stopped and reaped with all they started (`processes`).
Uses the engine; never imports pytest.
"""
