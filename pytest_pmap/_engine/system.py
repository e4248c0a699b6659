"""Facts about this machine from sysfs that measurements depend on."""

from __future__ import annotations

from ..size import MiB

__all__ = ["huge_page_size", "read_sys"]


def read_sys(path: str) -> str:
    """A sysfs file's text, stripped; "" when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def huge_page_size() -> int:
    """Bytes in a transparent huge page on this machine (2 MiB on x86-64; 512 MiB on arm64 with
    64 KiB pages), from sysfs; 2 MiB where the kernel does not say."""
    huge = read_sys("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
    return int(huge) if huge.isdigit() else 2 * MiB
