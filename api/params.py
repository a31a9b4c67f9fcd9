"""Query parameters are strict: ISO days only, declared names only, each at most once.

Why strict: a lenient API answers a typo with a plausible wrong result. `?statuss=active`
silently returned every campaign, `end_date=0` was read as a Unix timestamp (1970-01-01),
and a repeated `limit` took the last value, so a portal bug looked like data. Each of these
is now a 422 naming the parameter. Days are bounded so that date arithmetic in the routes
(a default 30-day window, a 30-day history) can never leave the calendar: `end_date` of
0001-01-01 used to answer 500 with an `OverflowError`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections import Counter
from typing import Annotated, Any

from fastapi import Request
from pydantic import BeforeValidator, WithJsonSchema

from api.errors import ApiError, FieldError

# Far enough on both sides for any card-transaction history, near enough that a 366-day
# window or a 30-day look-back stays inside `datetime.date`'s range.
MIN_DAY = dt.date(1970, 1, 1)
MAX_DAY = dt.date(2999, 12, 31)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(value: Any) -> dt.date:
    """`YYYY-MM-DD` between MIN_DAY and MAX_DAY, nothing else (no timestamps, no times)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = value
    elif isinstance(value, str) and _ISO_DAY.fullmatch(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a calendar day") from error
    else:
        raise ValueError("must be a day written YYYY-MM-DD")
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValueError(f"must be between {MIN_DAY} and {MAX_DAY}")
    return day


Day = Annotated[
    dt.date,
    BeforeValidator(parse_day),
    WithJsonSchema({"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$",
                    "examples": ["2026-12-01"]}),
]


def _declared_query_names(route: Any) -> frozenset[str]:
    """The query parameters a route (and its dependencies) declares, by their public name."""
    cached = getattr(route, "_declared_query_names", None)
    if cached is None:
        names: set[str] = set()
        pending = [route.dependant]
        while pending:  # the route's own parameters and those of its dependencies
            dependant = pending.pop()
            names.update(field.alias for field in dependant.query_params)
            pending.extend(dependant.dependencies)
        cached = frozenset(names)
        route._declared_query_names = cached
    return cached


def _unknown(name: str, known: frozenset[str]) -> FieldError:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    accepted = ", ".join(sorted(known)) or "none"
    return FieldError(parameter=name, message=f"unknown parameter (accepted: {accepted}){hint}")


async def reject_unknown_parameters(request: Request) -> None:
    """A dependency of every route: unknown or repeated query parameters are a 422."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    known = _declared_query_names(route)
    counts = Counter(name for name, _ in request.query_params.multi_items())
    errors = [_unknown(name, known) for name in counts if name not in known]
    errors += [FieldError(parameter=name, message=f"given {count} times; give it once")
               for name, count in counts.items() if name in known and count > 1]
    if errors:
        detail = "; ".join(f"{error.parameter}: {error.message}" for error in errors)
        raise ApiError(422, "invalid_parameter", detail, errors=errors)
