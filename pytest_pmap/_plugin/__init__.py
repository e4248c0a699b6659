"""The pytest layer: options and settings, hookspecs, fixtures, the per-test runner and the
session's report and files. `pytest_pmap.plugin` (the entry point) re-exports its hooks.
"""
