"""Money is integer minor units plus an ISO 4217 currency; never floats, never mixed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import CurrencyMismatch, InvalidMoney
from domain.money import Money
from tests.domain.world import Counter, refused

minor_units = st.integers(min_value=-10**12, max_value=10**12)


@pytest.mark.parametrize("minor", [12.5, 100.0, True, False, "100", Decimal("1.00"), None])
def test_an_amount_that_is_not_a_plain_integer_is_refused(minor: object) -> None:
    with pytest.raises(InvalidMoney):
        Money(minor, "CNY")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["cny", "CN", "CNYY", "156", "", " CNY", "元", None, 156])
def test_a_currency_that_is_not_an_iso_4217_code_is_refused(currency: object) -> None:
    with pytest.raises(InvalidMoney):
        Money(100, currency)  # type: ignore[arg-type]


@pytest.mark.parametrize("combine", [Money.__add__, Money.__sub__])
def test_arithmetic_refuses_to_mix_currencies(combine: object) -> None:
    with pytest.raises(CurrencyMismatch):
        combine(Money(100, "CNY"), Money(100, "USD"))  # type: ignore[operator]


@given(minor_units, minor_units)
def test_adding_then_subtracting_gives_back_the_same_amount(a: int, b: int) -> None:
    total = Money(a, "CNY") + Money(b, "CNY")
    assert total == Money(a + b, "CNY")
    assert total - Money(b, "CNY") == Money(a, "CNY")


@pytest.mark.parametrize(("minor", "text"), [(12_345, "123.45 CNY"), (5, "0.05 CNY"), (-1_200, "-12.00 CNY")])
def test_money_prints_as_yuan_and_fen(minor: int, text: str) -> None:
    assert str(Money(minor, "CNY")) == text


def test_an_amount_entered_as_a_float_is_refused_and_nothing_is_recorded(counter: Counter) -> None:
    sale = counter.begin()
    with refused(counter.ledger, InvalidMoney):
        counter.txn_event(sale, "AmountEntered", amount_minor=123.45, currency="CNY")
    assert counter.txn(sale).amount_minor is None


def test_an_amount_in_a_malformed_currency_is_refused(counter: Counter) -> None:
    sale = counter.begin()
    with refused(counter.ledger, InvalidMoney):
        counter.txn_event(sale, "AmountEntered", amount_minor=100, currency="rmb")
