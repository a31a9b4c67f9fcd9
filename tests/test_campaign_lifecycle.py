"""Lifecycle: dates drive the status, operators pause and resume, final metrics archive."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tests.test_campaign_helpers import D, campaign, campaigns, metrics, metrics_row
from transforms.lifecycle import (
    OVERRIDE_SCHEMA,
    InvalidTransition,
    date_status,
    resolve_status,
    validate_transition,
)

START = D - dt.timedelta(days=3)
END = D + dt.timedelta(days=3)
CAMPAIGNS = campaigns(campaign("c", "weekend_shopper", START, END))


def _at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


def _overrides(*rows: tuple[str, dt.datetime]) -> pl.DataFrame:
    return pl.DataFrame([("c", s, t, "ops@example.com", "test") for s, t in rows],
                        schema=OVERRIDE_SCHEMA, orient="row")


def _status(day: dt.date, overrides: pl.DataFrame | None = None,
            final: pl.DataFrame | None = None) -> str:
    out = resolve_status(CAMPAIGNS, overrides, final, as_of_date=day)
    return out.row(0, named=True)["status"]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (START - dt.timedelta(days=1), "scheduled"),
        (START, "active"),
        (END, "active"),
        (END + dt.timedelta(days=1), "expired"),
    ],
)
def test_dates_decide_the_status(day: dt.date, expected: str) -> None:
    assert date_status(START, END, day) == expected
    assert _status(day) == expected


def test_expired_with_final_metrics_is_archived() -> None:
    after = END + dt.timedelta(days=1)
    assert _status(after, final=metrics(metrics_row("c", END - dt.timedelta(days=1)))) \
        == "expired"
    assert _status(after, final=metrics(metrics_row("c", END))) == "archived"


def test_pause_and_resume_are_read_point_in_time() -> None:
    paused = _overrides(("paused", _at(D - dt.timedelta(days=1))),
                        ("active", _at(D + dt.timedelta(days=1))))
    assert _status(D - dt.timedelta(days=2), paused) == "active"  # pause not yet set
    assert _status(D, paused) == "paused"
    assert _status(D + dt.timedelta(days=1), paused) == "active"  # resumed that day
    reason = resolve_status(CAMPAIGNS, paused, None, as_of_date=D)["status_reason"][0]
    assert "ops@example.com" in reason


def test_a_paused_campaign_still_expires() -> None:
    paused = _overrides(("paused", _at(D)))
    assert _status(END + dt.timedelta(days=1), paused) == "expired"


def test_a_pause_before_the_start_keeps_it_paused() -> None:
    paused = _overrides(("paused", _at(START - dt.timedelta(days=2))))
    assert _status(START - dt.timedelta(days=1), paused) == "paused"


@pytest.mark.parametrize(
    ("current", "requested"),
    [("active", "paused"), ("scheduled", "paused"), ("paused", "active")],
)
def test_allowed_operator_transitions(current: str, requested: str) -> None:
    validate_transition(current, requested)


@pytest.mark.parametrize(
    ("current", "requested"),
    [("expired", "paused"), ("archived", "paused"), ("active", "active"),
     ("paused", "paused"), ("scheduled", "active"), ("active", "archived"),
     ("unknown", "paused")],
)
def test_refused_operator_transitions(current: str, requested: str) -> None:
    with pytest.raises(InvalidTransition):
        validate_transition(current, requested)
