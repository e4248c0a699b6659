"""The engine: /proc in, pmap's text out. Reading (`procfs`), parsing (`parse/`), the model
(`mapping`, `totals`, `snapshot`), the one acquisition path (`acquire`), diffs (`diff`), files
(`files`) and rendering in pmap's formats (`render/`). Never imports pytest; nothing here imports
from the layers above (`_measure`, `_gate`, `_plugin`, `_cli`).

Import the modules themselves; this package imports none of them.
"""
