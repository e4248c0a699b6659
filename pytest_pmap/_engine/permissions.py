"""pmap -d's summary: the address space mapped, and how much of it is private writeable or shared,
from each mapping's size and permissions. `totals` (a snapshot's metrics) and the -d listing both
sum it here.
"""

from __future__ import annotations

from itertools import compress
from operator import sub

__all__ = ["add_sizes_by_perms", "mode_totals_of"]


def add_sizes_by_perms(by_perms: dict[str, int], perms: list[str], starts: list[int], ends: list[int]) -> None:
    """Add the sizes of these mappings (given column by column) to `by_perms`, by permissions."""
    sizes = list(map(sub, ends, starts))
    for p in set(perms):
        by_perms[p] = by_perms.get(p, 0) + sum(compress(sizes, map(p.__eq__, perms)))


def mode_totals_of(by_perms: dict[str, int]) -> tuple[int, int, int]:
    """pmap -d's (mapped, writeable/private, shared), in bytes, from the sizes mapped with each
    permission (`rw-p`): shared mappings count as shared, private writeable ones as
    writeable/private, and every mapping towards mapped."""
    shared = sum(size for perms, size in by_perms.items() if perms[3] == "s")
    writeable = sum(size for perms, size in by_perms.items() if perms[3] == "p" and perms[1] == "w")
    readonly = sum(size for perms, size in by_perms.items() if perms[3] == "p" and perms[1] != "w")
    return shared + writeable + readonly, writeable, shared
