"""The names: every metric, gate metric and budget key, and what each measures (one table for
every output: reports, `--help`, the marker's description, the docs).

Pure data, importing nothing: the pytest plugin describes its options and its marker from here
without loading the engine.
"""

from __future__ import annotations

__all__ = [
    "BUDGET_KEYS", "DEFAULT_METRIC", "GATE_METRICS", "GROWTH", "HEAP_METRIC", "MARKER_SWITCHES", "METRICS",
    "METRIC_DESCRIPTIONS", "METRIC_FIELDS", "PEAK_DESCRIPTIONS", "SUMMED", "describe_budget_keys",
]

#: Every metric and what it measures, in the order reports show them.
METRIC_DESCRIPTIONS: dict[str, str] = {
    "mapped": "address space mapped (pmap -d's mapped)",
    "writeable_private": "private writeable address space (pmap -d's writeable/private)",
    "shared": "shared address space (pmap -d's shared)",
    "rss": "resident memory (the sum of smaps Rss)",
    "pss": "proportional set size: resident memory, each shared page divided among the processes that map it",
    "uss": "unique set size: resident memory no other process maps (Private_Clean + Private_Dirty)",
    "private_dirty": "resident private pages written to (Private_Dirty)",
    "anonymous": "resident anonymous memory (Anonymous)",
    "swap": "memory swapped out (Swap)",
}
#: The metrics a budget or a gate can name, in the order reports show them.
METRICS = tuple(METRIC_DESCRIPTIONS)
#: What `<metric>_growth` measures, for a metric's description.
GROWTH = "growth of {} during the test"
#: The peak readings and what each measures.
PEAK_DESCRIPTIONS: dict[str, str] = {
    "peak_rss": "the highest RSS during the test (VmHWM, reset at the start)",
    "peak_growth": "how far the RSS peak during the test rose above the RSS at its start",
}
#: The smaps fields each memory metric sums (uss is the memory only this process holds).
METRIC_FIELDS: dict[str, tuple[str, ...]] = {
    "rss": ("Rss",),
    "pss": ("Pss",),
    "uss": ("Private_Clean", "Private_Dirty"),
    "private_dirty": ("Private_Dirty",),
    "anonymous": ("Anonymous",),
    "swap": ("Swap",),
}
#: Every smaps field a metric needs.
SUMMED = tuple(sorted({name for names in METRIC_FIELDS.values() for name in names}))

#: The metrics a run can be gated on: each metric's growth during a test, and the peak's rise.
GATE_METRICS: dict[str, str] = {
    **{f"{name}_growth": GROWTH.format(name) for name in METRICS},
    "peak_growth": PEAK_DESCRIPTIONS["peak_growth"],
    "heap_growth": "growth of the bytes glibc's malloc has handed out during the test (mallinfo2: uordblks + hblkhd)",
}
#: The allocator's view, which the gate reads beside any kernel metric: memory retained from free
#: heap already resident moves no page.
HEAP_METRIC = "heap_growth"
#: The gate metric compared when none is named.
DEFAULT_METRIC = "uss_growth"

#: Every budget key, with what it caps.
BUDGET_KEYS: dict[str, str] = {
    **{name: f"{name} at the end of the test: {what}" for name, what in METRIC_DESCRIPTIONS.items()},
    **{f"{name}_growth": GROWTH.format(name) for name in METRICS},
    **PEAK_DESCRIPTIONS,
    "new_anon": "the largest single new anonymous mapping (new address space)",
    "new_mapping": "the largest single new mapping of any kind (new address space)",
}

#: The `pmap` marker's keys that are not limits, and what each switches on.
MARKER_SWITCHES: dict[str, str] = {
    "tree": "tree=True: of the test process and all its descendants, summed",
    "trace": "trace=True: tracemalloc runs during the call; a failure names the Python lines that kept memory",
    "leaks": "leaks=True or leaks=N: the call runs once more to warm up, then N times, and fails if memory grows call "
             "after call",
}


def describe_budget_keys() -> str:
    """The budget keys and what each caps, one per line: for `--help` and the marker's description."""
    return "\n".join(f"{key}: {what}" for key, what in BUDGET_KEYS.items())
