"""The engine: /proc in, pmap's text out. Reading (`procfs`), parsing (`parse/`), the model
(`mapping`, `totals`, `snapshot`), the one acquisition path (`acquire`), diffs (`diff`), files
(`files`) and rendering in pmap's formats (`render/`). Never imports pytest; nothing here imports
from the layers above (`_measure`, `_gate`, `_plugin`, `_cli`).

Import the modules themselves; this package imports none of them.

The `pytest-pmap` command starts in a few milliseconds more than CPython itself, and a small
process is read in about as many: so the modules it imports (acquire, procfs, parse/*, render/
listing, names, table and text, permissions) import neither `typing` nor `dataclasses` at run time
(`dataclasses` brings `inspect` and `ast`: together some 10 ms). Their records are named tuples or
classes with `__slots__`, and names from `typing` are imported under `TYPE_CHECKING` only;
tests/test_architecture.py checks it. Everything else may use both freely.
"""
