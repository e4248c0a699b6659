"""Byte counts that read like pmap and compare with size strings: `Size`, `parse_size`, units."""

from __future__ import annotations

import re

from .errors import BudgetSyntaxError, hide_from_tracebacks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

    #: What a size may be given as: bytes, or a size string (`"8MiB"`).
    SizeLike = Union[int, str]

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["GiB", "KiB", "MiB", "Size", "SizeLike", "TiB", "parse_size", "signed"]

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

#: Every unit is a power of 1024, as in pmap: K, KB and KiB all mean 1024 bytes.
_UNITS = {
    "": 1, "b": 1,
    "k": KiB, "kb": KiB, "kib": KiB,
    "m": MiB, "mb": MiB, "mib": MiB,
    "g": GiB, "gb": GiB, "gib": GiB,
    "t": TiB, "tb": TiB, "tib": TiB,
}
#: More digits than any size of memory needs (2**64 has 20): a longer number is a mistake.
_MAX_DIGITS = 40
_SIZE_RE = re.compile(r"\s*([+-]?)(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")



def parse_size(value: SizeLike) -> int:
    """Return the number of bytes that `value` means: an int is bytes, a string may carry a unit.

    `"8MiB"`, `"8M"`, `"8 MB"` and `8388608` are the same size; `"1.5G"` is allowed when it comes
    to a whole number of bytes. Anything else raises `BudgetSyntaxError` naming the value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BudgetSyntaxError(
            f"{value!r} is not a size: give a number of bytes or a string such as '8MiB'"
        )
    if isinstance(value, int):
        return int(value)
    match = _SIZE_RE.fullmatch(value)
    unit = match and _UNITS.get(match.group(3).lower())
    if not match or unit is None:
        raise BudgetSyntaxError(
            f"{value!r} is not a size: write a number with an optional unit "
            "B, K, M, G, T (KB/KiB, MB/MiB, ... mean the same: powers of 1024), e.g. '8MiB'"
        )
    sign, number, _ = match.groups()
    if len(number) > _MAX_DIGITS:  # int() refuses past 4300 digits with a ValueError of its own
        raise BudgetSyntaxError(
            f"{value[:40]!r}... is not a size: its number has {len(number)} digits; no memory needs more than {_MAX_DIGITS}"
        )
    whole, _, fraction = number.partition(".")
    scaled = int(whole or "0") * unit
    if fraction.strip("0"):
        numerator = int(fraction) * unit
        if numerator % 10 ** len(fraction):
            raise BudgetSyntaxError(f"{value!r} is not a whole number of bytes")
        scaled += numerator // 10 ** len(fraction)
    return -scaled if sign == "-" else scaled


def _other(value: object) -> int | None:
    """The byte count of a comparison's other side, or None when it is not a size at all."""
    if isinstance(value, str):
        return parse_size(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return None


class Size(int):
    """A number of bytes. Reads like pmap (`18176K`) and compares with ints and size strings.

    `Size(3 << 20) < "4MiB"` is true. Adding or subtracting two sizes gives a `Size`.
    """

    __slots__ = ()

    def __new__(cls, value: SizeLike = 0) -> Size:
        return super().__new__(cls, parse_size(value))

    @classmethod
    def of(cls, n: int) -> Size:
        """A `Size` of `n` bytes, without parsing: the fast way for code that already has an int."""
        return int.__new__(cls, n)

    def __str__(self) -> str:
        n = int(self)
        return f"{n >> 10}K" if n % KiB == 0 else f"{n}B"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec) if not spec or spec[-1] not in "bcdoxXn" else super().__format__(spec)

    @property
    def kib(self) -> int:
        """The size in KiB, rounded down as pmap does."""
        return int(self) >> 10

    def signed(self) -> str:
        """The size as a signed change in pmap's unit: `+1024K`, `-4K`, `+0K`."""
        return signed(self)

    def human(self) -> str:
        """The size in the largest binary unit that keeps it at or above 1: `1.5 MiB`, `-512 KiB`."""
        n = int(self)
        for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
            if abs(n) >= unit:
                text = f"{n / unit:.1f}".rstrip("0").rstrip(".")
                return f"{text} {name}"
        return f"{n} B"

    def __add__(self, other: object) -> Size:
        if type(other) is Size or type(other) is int:  # the hot path: summing sizes
            return int.__new__(Size, int.__add__(self, other))
        value = _other(other)
        return NotImplemented if value is None else int.__new__(Size, int(self) + value)

    __radd__ = __add__

    def __sub__(self, other: object) -> Size:
        value = _other(other)
        return NotImplemented if value is None else int.__new__(Size, int(self) - value)

    def __rsub__(self, other: object) -> Size:
        value = _other(other)
        return NotImplemented if value is None else int.__new__(Size, value - int(self))

    def __neg__(self) -> Size:
        return int.__new__(Size, -int(self))

    def __abs__(self) -> Size:
        return int.__new__(Size, abs(int(self)))

    # Equality never raises: a string that is not a size is simply not equal (`"x" in sizes`,
    # `size == "hello"`). Ordering against one does raise `BudgetSyntaxError`: `rss < "64 megs"`
    # is a mistake to point out, not a comparison to answer.
    def __eq__(self, other: object) -> bool:
        try:
            value = _other(other)
        except BudgetSyntaxError:
            return False
        return NotImplemented if value is None else int(self) == value

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __lt__(self, other: object) -> bool:
        value = _other(other)
        return NotImplemented if value is None else int(self) < value

    def __le__(self, other: object) -> bool:
        value = _other(other)
        return NotImplemented if value is None else int(self) <= value

    def __gt__(self, other: object) -> bool:
        value = _other(other)
        return NotImplemented if value is None else int(self) > value

    def __ge__(self, other: object) -> bool:
        value = _other(other)
        return NotImplemented if value is None else int(self) >= value

    __hash__ = int.__hash__


def signed(value: Optional[int], *, unit: bool = True, missing: str = "n/a") -> str:
    """A change in pmap's unit, whole KiB rounded towards zero: `+1024K`, `-4K`, `+0K` (no `K`
    when `unit` is false); `missing` when it was not measured (None). The one way every output of
    pytest-pmap writes a change."""
    if value is None:
        return missing
    n = int(value)
    return f"{'-' if n < 0 else '+'}{abs(n) >> 10}{'K' if unit else ''}"


def __getattr__(name: str) -> object:
    # `SizeLike` is for annotations; it exists at run time only when asked for, so that importing
    # this module does not import `typing` (the `pytest-pmap` command must start fast).
    if name == "SizeLike":
        from typing import Union

        return Union[int, str]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
