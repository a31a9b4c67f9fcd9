"""`customer_value` and `customer_value_models`: each day's BG/NBD and Gamma-Gamma fit on
the whole population and every user's scores (docs/customer-value.md).

Wiring only: the day's purchase-history file (assets/purchase_history.py, every purchase
since the first partition, summarized) gives each user's frequency, recency and T
(transforms/purchase_history.py); transforms/customer_value.py fits and scores;
transforms/value_tiers.py ranks. The as-of semantics are the profiles': day D sees every
purchase before its `as_of_end`, and T runs to day D. A fit that does not converge writes
its evidence to `customer_value_models` and no scores for that day (the day's earlier
scores are removed with it), and the blocking `models_converged` check fails, so nothing
downstream reads figures from a failed fit. Both tables, every day of the run, commit in
one transaction.
"""

import datetime as dt
import json
import math

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from assets.completeness import AS_OF_END, HISTORY, history_chain_gap
from assets.partition_results import PartitionReporter
from assets.partitions import as_of_end, partition_days, run_now
from assets.profiles import PROFILE_GROUP, PROFILES, text_ids_through
from assets.reporting import markdown_table
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from resources.committed_snapshots import read_committed
from resources.staging import StagingStore
from resources.table_writes import TableWrite
from resources.warehouse import Warehouse
from transforms.customer_value import (
    BgNbdFit,
    CustomerValueConfig,
    GammaGammaFit,
    fit_bg_nbd,
    fit_gamma_gamma,
    score_customers,
)
from transforms.purchase_history import repeat_purchase_summary
from transforms.user_keys import with_source_user_ids
from transforms.value_tiers import (
    CUSTOMER_VALUE_SCHEMA,
    MODEL_SCHEMA,
    TIER_SCHEMA,
    ValueTierConfig,
    segment_value,
    tier_distribution,
    with_value_tiers,
)

CUSTOMER_VALUE = "customer_value"
MODELS = "customer_value_models"
SEGMENT_VALUE = "segment_value"
TIERS = "customer_value_tiers"
CONVERGED_CHECK = "models_converged"


class CustomerValueRunConfig(dg.Config):
    """Launchpad knobs of the customer-value step (docs/customer-value.md); unset ones keep
    the defaults: a 12-month CLV horizon, 1 % monthly discount, 500 optimizer iterations,
    tiers of 20/30/30/20 % by CLV, churn risk high below P(alive) 0.3, medium below 0.7."""

    horizon_months: int | None = None
    monthly_discount_rate: float | None = None
    max_iterations: int | None = None
    top_share: float | None = None
    high_share: float | None = None
    medium_share: float | None = None
    high_risk_below: float | None = None
    medium_risk_below: float | None = None

    def _set(self, names: tuple[str, ...]) -> dict:
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def model_settings(self) -> CustomerValueConfig:
        return CustomerValueConfig(**self._set(
            ("horizon_months", "monthly_discount_rate", "max_iterations")))

    def tier_config(self) -> ValueTierConfig:
        return ValueTierConfig(**self._set(("top_share", "high_share", "medium_share",
                                            "high_risk_below", "medium_risk_below")))


def build_customer_value_assets(first_partition_date: dt.date,
                                partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Both customer-value tables for the given daily partitions."""

    @dg.multi_asset(
        specs=_value_specs(),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec(CONVERGED_CHECK, asset=MODELS, blocking=True,
                              partitions_def=partitions,
                              description="Both fits converged (optimizer success, finite "
                                          "log-likelihood, small gradient, sane parameters); "
                                          "otherwise the day has no scores."),
        ],
        retry_policy=TRANSIENT_RETRY,
    )
    @retry_transient_only
    def customer_value(context: AssetExecutionContext, config: CustomerValueRunConfig,
                       staging: StagingStore, warehouse: Warehouse):
        model_config, tier_config = config.model_settings(), config.tier_config()
        reporter = PartitionReporter(context)
        now = run_now(context)
        days = partition_days(context)
        scores, tiers, models = [], [], []
        for day in days:
            _refuse_stale_history(staging, first_partition_date, day, as_of_end(day, now))
            summary = repeat_purchase_summary(
                pl.scan_parquet(staging.snapshot_path(HISTORY, day)), day)
            bg = fit_bg_nbd(summary, model_config)
            gg = fit_gamma_gamma(summary, model_config)
            day_models = _model_rows(day, bg, gg)
            models.append(day_models)
            # A BG/NBD fit that failed on data that could identify it: an error (blocking),
            # nothing scored. Data that cannot (nobody repeated yet: a deployment's first
            # days): a warning, nothing scored. Without a Gamma-Gamma fit (too few repeat
            # buyers) the order value falls back to the observed mean of repeat purchases:
            # scored, and the check warns.
            failed_fit = not bg.converged and bg.identifiable
            reporter.check(MODELS, CONVERGED_CHECK, day, passed=bg.converged and gg.converged,
                           severity=(dg.AssetCheckSeverity.ERROR if failed_fit
                                     else dg.AssetCheckSeverity.WARN),
                           evidence=_fit_evidence(bg, gg))
            if not bg.converged:
                continue
            day_scores = _scores(day, summary, bg, gg, model_config, tier_config,
                                 warehouse)
            day_tiers = tier_distribution(day_scores, day)
            scores.append(day_scores)
            tiers.append(day_tiers)
            _report_day(reporter, day, day_scores, day_tiers, day_models)
        _write_days(warehouse, days, scores, tiers, models)
        yield dg.MaterializeResult(asset_key=CUSTOMER_VALUE)
        yield dg.MaterializeResult(asset_key=TIERS)
        yield dg.MaterializeResult(asset_key=MODELS)
        yield from reporter.finish()

    return customer_value


# The same for the three tables: a UI backfill targets every key of a non-subsettable
# multi-asset alike only if their upstreams are alike (Dagster refuses it otherwise). The
# history is what the fits read; staged_partitions, the text-id dictionary of the scores.
VALUE_DEPS = [HISTORY, "staged_partitions"]


def _value_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(CUSTOMER_VALUE, deps=VALUE_DEPS,
                     group_name=PROFILE_GROUP,
                     description="Per user with a purchase: P(alive), expected purchases "
                                 "in 30 and 90 days, expected order value and CLV "
                                 "(BG/NBD + Gamma-Gamma), value tier and churn risk."),
        dg.AssetSpec(TIERS, deps=VALUE_DEPS, group_name=PROFILE_GROUP,
                     description="Per value tier and churn risk: users, total and mean "
                                 "CLV, mean P(alive), expected purchases (no row per "
                                 "user); committed with customer_value."),
        dg.AssetSpec(MODELS, deps=VALUE_DEPS, group_name=PROFILE_GROUP,
                     description="Per day: the fitted BG/NBD and Gamma-Gamma parameters, "
                                 "log-likelihood, customers and convergence evidence."),
    ]


def _write_days(warehouse: Warehouse, days: list[dt.date], scores: list[pl.DataFrame],
                tiers: list[pl.DataFrame], models: list[pl.DataFrame]) -> None:
    """The three tables, every day of the run, in one transaction (a day without scores
    replaces its earlier scores with none)."""
    def frame(parts: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
        return pl.concat(parts) if parts else pl.DataFrame(schema=schema)

    warehouse.replace_together([
        TableWrite.partition_range(CUSTOMER_VALUE, frame(scores, CUSTOMER_VALUE_SCHEMA),
                                   days[0], days[-1]),
        TableWrite.partition_range(TIERS, frame(tiers, TIER_SCHEMA), days[0], days[-1]),
        TableWrite.partition_range(MODELS, frame(models, MODEL_SCHEMA), days[0], days[-1]),
    ])


def _refuse_stale_history(staging: StagingStore, first_partition: dt.date, day: dt.date,
                          end: dt.datetime) -> None:
    """The same completeness rule as the profiles': an unbroken history chain, built for
    this run's `as_of_end` (purchase_history runs in the same run)."""
    gap, _ = history_chain_gap(staging, first_partition, day)
    built_for = (staging.snapshot_lineage(HISTORY, day) or {}).get(AS_OF_END)
    if gap is None and built_for == end.isoformat():
        return
    problem = str(gap) if gap is not None else (
        f"{day}: purchase_history was built for as_of_end {built_for}, this run needs "
        f"{end.isoformat()}: materialize purchase_history in the same run")
    raise dg.Failure(description=f"customer_value cannot be computed: {problem} "
                                 "(docs/consistency.md).",
                     metadata={"day": str(day), "problem": problem}, allow_retries=False)


def _scores(day: dt.date, summary: pl.DataFrame, bg: BgNbdFit, gg: GammaGammaFit,
            config: CustomerValueConfig, tiers: ValueTierConfig, warehouse: Warehouse
            ) -> pl.DataFrame:
    scored = with_value_tiers(score_customers(summary, bg, gg, config), tiers)
    scored = scored.rename({"recency": "recency_days", "T": "t_days"}).with_columns(
        as_of_date=pl.lit(day, pl.Date()))
    scored = with_source_user_ids(scored, text_ids_through(warehouse, day))
    return scored.select(list(CUSTOMER_VALUE_SCHEMA)).cast(
        CUSTOMER_VALUE_SCHEMA)  # type: ignore[arg-type]


def _model_rows(day: dt.date, bg: BgNbdFit, gg: GammaGammaFit) -> pl.DataFrame:
    rows = [
        {"model": "bg_nbd", "parameters": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b},
         "fit": bg},
        {"model": "gamma_gamma", "parameters": {"p": gg.p, "q": gg.q, "gamma": gg.gamma},
         "fit": gg},
    ]
    return pl.DataFrame([{
        "as_of_date": day,
        "model": row["model"],
        # finite values only: a failed fit's NaN and the NBD limit's b = inf are no JSON
        "parameters": json.dumps({name: value for name, value in row["parameters"].items()
                                  if math.isfinite(value)}, sort_keys=True),
        "log_likelihood": (row["fit"].log_likelihood
                           if math.isfinite(row["fit"].log_likelihood) else None),
        "customers": row["fit"].customers,
        "converged": row["fit"].converged,
        "iterations": row["fit"].iterations,
        "message": row["fit"].message,
    } for row in rows], schema=MODEL_SCHEMA)


def _fit_evidence(bg: BgNbdFit, gg: GammaGammaFit) -> dict:
    return {
        "bg_nbd_converged": bg.converged, "bg_nbd_message": bg.message,
        "bg_nbd_log_likelihood": bg.log_likelihood, "bg_nbd_customers": bg.customers,
        "gamma_gamma_converged": gg.converged, "gamma_gamma_message": gg.message,
        "gamma_gamma_log_likelihood": gg.log_likelihood,
        "gamma_gamma_repeat_buyers": gg.customers,
    }


def _report_day(reporter: PartitionReporter, day: dt.date, scores: pl.DataFrame,
                tiers: pl.DataFrame, models: pl.DataFrame) -> None:
    quantiles = pl.DataFrame({
        "quantile": ["p10", "p50", "p90", "p99"],
        "p_alive": [scores["p_alive"].quantile(q) for q in (0.1, 0.5, 0.9, 0.99)],
        "clv": [scores["clv"].quantile(q) for q in (0.1, 0.5, 0.9, 0.99)],
    })
    reporter.metadata(CUSTOMER_VALUE, day, {
        "users": scores.height,
        "distribution": markdown_table(quantiles),
        "tiers": markdown_table(tiers.drop("as_of_date")),
    })
    reporter.metadata(MODELS, day, {
        row["model"]: dg.MetadataValue.json({**json.loads(row["parameters"]),
                                             "log_likelihood": row["log_likelihood"]})
        for row in models.iter_rows(named=True)})


def build_segment_value_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`segment_value`: the day's scores per behavior pattern, value tier and churn risk."""

    @dg.asset(
        name=SEGMENT_VALUE,
        deps=[CUSTOMER_VALUE, PROFILES],
        group_name=PROFILE_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=TRANSIENT_RETRY,
        description="Per behavior pattern, value tier and churn risk: users, total and mean "
                    "CLV, mean P(alive), expected purchases in 90 days (what the API serves "
                    "per segment; no row per user).",
    )
    @retry_transient_only
    def segment_value_asset(context: AssetExecutionContext, staging: StagingStore,
                            warehouse: Warehouse):
        days = partition_days(context)
        reporter = PartitionReporter(context)
        frames = []
        for day in days:
            scores = warehouse.read("SELECT * FROM customer_value WHERE as_of_date = :day",
                                    {"day": day})
            profiles = read_committed(staging, warehouse, PROFILES, day)
            frame = segment_value(profiles, scores, day)
            frames.append(frame)
            reporter.metadata(SEGMENT_VALUE, day, {
                "rows": frame.height, "scored_users": scores.height,
                "by_pattern": markdown_table(frame.group_by("behavior_pattern").agg(
                    users=pl.col("users").sum(), total_clv=pl.col("total_clv").sum())
                    .sort("behavior_pattern")),
            })
        warehouse.replace_together([TableWrite.partition_range(
            SEGMENT_VALUE, pl.concat(frames), days[0], days[-1])])
        yield dg.MaterializeResult()
        yield from reporter.finish()

    return segment_value_asset
