"""Turning warehouse values into response figures, the same way on both engines."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def ratio(numerator: Any, denominator: Any) -> float | None:
    """numerator / denominator, or None when the denominator is zero or missing
    (DESIGN.md's ctr, conversion_rate and roi are undefined there, not 0)."""
    if denominator is None or numerator is None or denominator == 0:
        return None
    return float(Decimal(str(numerator)) / Decimal(str(denominator)))


def money(value: Any) -> float:
    """NUMERIC(14,2) (Decimal from both drivers) as a JSON number; NULL sums are 0."""
    return float(value) if value is not None else 0.0


def as_int(value: Any) -> int:
    """SUM() of BIGINT is NUMERIC on PostgreSQL and HUGEINT on DuckDB; NULL sums are 0."""
    return int(value) if value is not None else 0


def json_object(text: Any) -> dict[str, Any]:
    """JSON columns are selected as text (CAST(... AS TEXT)) so both engines agree."""
    if text is None:
        return {}
    value = json.loads(text) if isinstance(text, str) else text
    return value if isinstance(value, dict) else {"value": value}
