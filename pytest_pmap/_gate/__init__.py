"""The CI gate: results files (`results`, `environment`), the comparison with a baseline
(`compare`), and reports for people and tools (`reports`). Uses the engine's files and sizes;
never imports pytest.
"""
