"""Operator actions on campaigns: pause and resume (the API stays read-only).

An action is recorded in `campaign_status_overrides` (an audit trail: who, when, why) and
applied to `ai_campaigns.status` at once, in one transaction (an override is never recorded
without its effect, or the other way round); the next materialization of `ai_campaigns`
re-derives every status from dates plus the latest override, so both always agree. The
transaction takes the same `ai_campaigns` lock as the campaign cycle, so a pause and a
cycle run take turns.
"""

from __future__ import annotations

import datetime as dt
import getpass

import polars as pl

from resources.table_writes import TableWrite, WriteScope
from resources.warehouse import Warehouse
from transforms.lifecycle import date_status, validate_transition


class UnknownCampaign(LookupError):
    """No campaign with that id."""


def set_campaign_status(warehouse: Warehouse, campaign_id: str, requested: str, *,
                        reason: str | None = None, set_by: str | None = None,
                        now: dt.datetime | None = None) -> str:
    """Pause (`requested="paused"`) or resume (`"active"`) a campaign; return its new status.

    Raises `UnknownCampaign` for an unknown id and `InvalidTransition` (with the allowed
    moves) for a move the lifecycle forbids, such as pausing an expired campaign.
    """
    now = now or dt.datetime.now(dt.UTC)
    found = warehouse.read_named("campaign_by_id", {"campaign_id": campaign_id})
    if found.is_empty():
        raise UnknownCampaign(f"no campaign with id {campaign_id!r}")
    campaign = found.row(0, named=True)
    validate_transition(campaign["status"], requested)
    override = pl.DataFrame([{
        "campaign_id": campaign_id,
        "status": requested,
        "set_at": now,
        "set_by": set_by or getpass.getuser(),
        "reason": reason,
    }])
    new_status = (requested if requested == "paused"
                  else date_status(campaign["start_date"], campaign["end_date"], now.date()))
    scopes = [WriteScope.append_only("campaign_status_overrides"),
              WriteScope.table_wide("ai_campaigns")]
    with warehouse.transaction(scopes) as transaction:
        transaction.replace(TableWrite.append("campaign_status_overrides", override))
        transaction.execute_named("set_campaign_status",
                                  {"campaign_id": campaign_id, "status": new_status, "now": now})
    return new_status
