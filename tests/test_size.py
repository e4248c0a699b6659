"""`Size` and `parse_size`: good and bad inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_pmap import BudgetSyntaxError, GiB, KiB, MiB, Size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0), ("512", 512), ("512B", 512), ("512 b", 512),
        ("8K", 8 * KiB), ("8KB", 8 * KiB), ("8KiB", 8 * KiB), ("8 kib", 8 * KiB),
        ("8M", 8 * MiB), ("8MB", 8 * MiB), ("8MiB", 8 * MiB), (" 8 MiB ", 8 * MiB),
        ("1G", GiB), ("1GB", GiB), ("1GiB", GiB), ("1T", 1 << 40),
        ("1.5G", 3 * GiB // 2), ("0.5K", 512), (".5K", 512), ("-8MiB", -8 * MiB), ("+1K", KiB),
        (4096, 4096),
    ],
)
def test_parse_size_accepts(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "bad", ["", " ", "MiB", "8 MiBs", "8XB", "8e3", "1.1B", "0.1K", "8 M B", "--8K", "8,5M", "½M", True, None, 8.0, []]
)
def test_parse_size_rejects_naming_the_value(bad: object) -> None:
    with pytest.raises(BudgetSyntaxError) as err:
        parse_size(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(err.value)


@given(st.integers(min_value=0, max_value=1 << 50), st.sampled_from(["", "B", "K", "KiB", "M", "MB", "G"]))
def test_parse_size_is_exact_for_whole_numbers(n: int, unit: str) -> None:
    factor = {"": 1, "B": 1, "K": KiB, "KiB": KiB, "M": MiB, "MB": MiB, "G": GiB}[unit]
    assert parse_size(f"{n}{unit}") == n * factor


def test_size_reads_like_pmap() -> None:
    assert str(Size(18176 * KiB)) == "18176K"
    assert repr(Size(-512 * KiB)) == "-512K"
    assert str(Size(1500)) == "1500B"
    assert f"{Size(8 * KiB)}" == "8K"
    assert f"{Size(8 * KiB):>6}" == "    8K"
    assert f"{Size(8 * KiB):d}" == "8192"
    assert Size("1.5MiB").human() == "1.5 MiB"


def test_size_compares_with_ints_and_size_strings() -> None:
    s = Size(3 * MiB)
    assert s < "4MiB" and s > "2M" and s == "3072K" and s != "3073K"
    assert s <= 3 * MiB and s >= 3 * MiB and s == 3 * MiB
    with pytest.raises(BudgetSyntaxError):
        _ = s < "lots"
    assert hash(s) == hash(3 * MiB)


def test_size_arithmetic_stays_a_size() -> None:
    total = sum([Size(KiB), Size(2 * KiB)])
    assert isinstance(total, Size) and total == 3 * KiB
    assert isinstance(Size(KiB) - "512B", Size)
    assert isinstance(-Size(KiB), Size) and abs(-Size(KiB)) == KiB
    assert Size(KiB).kib == 1
