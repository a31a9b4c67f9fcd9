"""How ingest treats values that are not wrong but need a decision: naive or date-only
timestamps, sub-cent amounts, foreign currencies, users the source does not know.

These are data-team choices, so they are settings (`MARKETING_*`, see
resources/settings.py), not code. Whatever the choice, every affected row is counted:
quarantined rows by reason, accepted-with-a-decision rows by note (`ValidationOutcome.notes`).
"""

from __future__ import annotations

import math
import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# NUMERIC(14,2): the warehouse's money type. An amount that does not fit is quarantined at
# the door so no later step can fail on it.
MAX_ABS_AMOUNT_CENTS = 10**14 - 1


class IngestPolicy(BaseModel):
    """Decisions for rows that are readable but ambiguous.

    - `source_time_zone`: the zone of timestamps written without an offset (naive
      `2026-03-01 10:00:00`, or date-only `2026-03-01`, which means that day's start).
    - `naive_timestamps`: `assume` reads them in `source_time_zone` and counts them;
      `reject` quarantines them as `naive_timestamp` (the first release's behaviour).
    - `sub_cent_amounts`: `reject` quarantines `1.005` as `sub_cent_amount`; `round`
      rounds half away from zero to the cent and counts the row as `rounded_amount`.
    - `base_currency`: the currency profiles are computed in. Rows in another currency are
      converted with `currency_rates` (units of base per unit of that currency) and counted,
      or quarantined as `unconverted_currency` when there is no rate. A missing currency
      means the base currency.
    - `unknown_users`: rows whose user is not in the source's `users` table are `flag`ged
      (accepted and counted as `unknown_user`) or `reject`ed (`unknown_user`).
    - `user_ids`: `auto` takes ids as the source writes them: canonical integers keep
      their value as key, any other text (`007`, a UUID) is a user of its own
      (transforms/user_keys.py); `integer` takes canonical integers only and quarantines
      anything else as `invalid_user_id` (for a source whose ids must be numbers).
    """

    model_config = ConfigDict(frozen=True)

    source_time_zone: str = "UTC"
    naive_timestamps: Literal["assume", "reject"] = "assume"
    sub_cent_amounts: Literal["reject", "round"] = "reject"
    base_currency: str = "USD"
    currency_rates: dict[str, float] = Field(default_factory=dict)
    unknown_users: Literal["flag", "reject"] = "flag"
    user_ids: Literal["auto", "integer"] = "auto"

    @field_validator("source_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "'UTC' or 'Europe/Berlin')") from error
        return value

    @field_validator("base_currency")
    @classmethod
    def _upper_code(cls, value: str) -> str:
        return value.strip().upper()

    @field_validator("currency_rates", mode="before")
    @classmethod
    def _parse_rates(cls, value: object) -> object:
        """Accept `EUR=1.08,GBP=1.27` from the environment as well as a mapping."""
        if isinstance(value, str):
            rates = {}
            for item in filter(None, (part.strip() for part in value.split(","))):
                code, separator, rate = item.partition("=")
                if not separator:
                    raise ValueError(f"currency rate {item!r} is not CODE=RATE")
                rates[code.strip().upper()] = float(rate)
            return rates
        if isinstance(value, dict):
            return {str(code).strip().upper(): rate for code, rate in value.items()}
        return value

    @field_validator("currency_rates")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {code: rate for code, rate in value.items()
               if not (rate > 0 and math.isfinite(rate))}
        if bad:
            raise ValueError(f"currency rates must be positive and finite: {bad}")
        return value
