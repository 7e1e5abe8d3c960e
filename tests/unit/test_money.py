from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendstream.errors import ConfigError
from spendstream.money import cents, format_usd, nanos_to_usd, round_half_even, usd_to_nanos


def test_decimal_strings_convert_to_exact_nanos():
    assert usd_to_nanos("12.5") == 12_500_000_000
    assert usd_to_nanos("0.000000001") == 1
    assert usd_to_nanos("$1,234.56") == 1_234_560_000_000


@pytest.mark.parametrize("bad", ["abc", "1e-12", "NaN", 1.5])
def test_money_refuses_floats_garbage_and_sub_nano_precision(bad):
    with pytest.raises(ConfigError):
        usd_to_nanos(bad)


def test_rounding_is_half_even_at_the_tie():
    assert [round_half_even(n, 2) for n in (1, 3, 5, 7)] == [0, 2, 2, 4]
    assert round_half_even(-3, 2) == -2
    assert cents(15_000_000) == 2 and cents(25_000_000) == 2  # 1.5c -> 2c, 2.5c -> 2c


def test_format_usd_renders_decimal_strings():
    assert format_usd(1_500_000_000, 2) == "1.50"
    assert format_usd(1) == "0.000000001"
    assert nanos_to_usd(3_456_000_000_000) == Decimal("3456")


@given(st.integers(min_value=-10**15, max_value=10**15), st.integers(min_value=1, max_value=10**12))
def test_half_even_rounding_is_within_half_a_unit(n, d):
    q = round_half_even(n, d)
    assert abs(q * d - n) * 2 <= d


@given(st.integers(min_value=0, max_value=10**18))
def test_nanos_round_trip_through_decimal_strings(n):
    assert usd_to_nanos(format_usd(n)) == n


@given(st.one_of(st.integers(min_value=-(10**30), max_value=10**30), st.integers(min_value=-(10**12), max_value=10**12)))
def test_format_usd_at_nine_places_is_the_decimal_quantize(n):
    """format_usd(n) takes an integer shortcut at 9 places; it must give the Decimal path's string (or raise as it)."""
    from decimal import ROUND_HALF_EVEN, InvalidOperation

    try:
        expected = f"{(Decimal(n) / 1_000_000_000).quantize(Decimal('1e-9'), rounding=ROUND_HALF_EVEN):f}"
    except InvalidOperation:
        with pytest.raises(InvalidOperation):
            format_usd(n)
        return
    assert format_usd(n) == expected
