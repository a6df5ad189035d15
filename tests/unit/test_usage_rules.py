"""The usage report's period and grouping: this month by default, never backwards, at most a
year and a day, a month as its whole calendar month."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.usage import MAX_DAYS, group_of, month_of, period_of

days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))


@given(days)
def test_the_default_period_is_this_month_up_to_today(today: date) -> None:
    period = period_of(None, None, today)
    assert (period.first, period.last) == (today.replace(day=1), today)


@given(days, st.integers(-400, 400))
def test_a_period_is_refused_backwards_or_longer_than_its_limit(first: date, span: int) -> None:
    last = first + timedelta(days=span)
    if 0 <= span < MAX_DAYS:
        period = period_of(first, last, first)
        assert (period.first, period.last) == (first, last)
    else:
        with pytest.raises(ValidationFailed) as raised:
            period_of(first, last, first)
        assert [f for f, _ in raised.value.errors] == ["to"]


@given(days)
def test_a_month_is_its_whole_calendar_month(day: date) -> None:
    period = month_of(f"{day.year}-{day.month:02d}", day)
    assert period.first == day.replace(day=1)
    assert (period.last + timedelta(days=1)).day == 1 and period.last.month == day.month


@pytest.mark.parametrize("text", ["2026-13", "diciembre", "2026", "2026-12-01"])
def test_a_month_that_is_not_yyyy_mm_is_refused(text: str) -> None:
    with pytest.raises(ValidationFailed):
        month_of(text, date(2026, 12, 1))


def test_the_grouping_defaults_to_day_and_names_the_parameter_when_wrong() -> None:
    assert group_of(None) == "day"
    with pytest.raises(ValidationFailed) as raised:
        group_of("tenant")
    assert raised.value.errors[0][0] == "groupBy"
