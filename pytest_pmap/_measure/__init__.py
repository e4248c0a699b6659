"""Measuring: `Probe` (a process under watch, with readings that explain themselves), budgets
(limits checked against a probe), and the cheap per-test readings of `--pmap` (`boundary`).
Uses the engine; never imports pytest.
"""
