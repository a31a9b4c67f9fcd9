"""Predicted customer value: the BG/NBD purchase model and the Gamma-Gamma spend model.

Pure functions (numpy, scipy, Polars; no Dagster, no database) so the asset stays a thin
wrapper and the models can be checked against the published CDNOW fits
(``tests/test_customer_value_model.py``, ``docs/customer-value.md``).

Pipeline: :func:`purchase_summary` turns raw purchases into one (frequency, recency, T,
monetary_value) row per user; :func:`fit_bg_nbd` and :func:`fit_gamma_gamma` estimate the
population parameters by maximum likelihood; :func:`score_customers` gives each user
P(alive), expected purchases and a discounted CLV.

Why grouped rows: every likelihood term and every prediction depends on a user only through
(frequency, recency, T) (BG/NBD) or (frequency, monetary_value) (Gamma-Gamma), so identical
rows are evaluated once and weighted by their count. This is exact, not an approximation.
Terms that depend on the frequency alone (the gamma functions) are further collapsed to one
value per distinct frequency, so a likelihood evaluation costs a few logarithms per row.

Why these formulas: they are rearranged for floating point. Large frequencies never reach
``exp`` or ``gamma`` directly (``gammaln``, ``log1p``, a softplus and a logistic built
from ``exp(-|d|)``), and the
conditional expectation uses Euler's transformation of the hypergeometric function, whose
parameters then no longer grow with the frequency (see :func:`expected_purchases`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import optimize, special

SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "frequency": pl.Int64(),
    "recency": pl.Float64(),
    "T": pl.Float64(),
    "monetary_value": pl.Float64(),
}
SCORE_COLUMNS = (
    "user_id", "frequency", "recency", "T", "p_alive", "expected_purchases_30d",
    "expected_purchases_90d", "expected_order_value", "clv",
)
DAYS_PER_MONTH = 30.4375  # 365.25 / 12: the CLV's month, in days
# Below this many repeat buyers the Gamma-Gamma parameters are not identifiable in practice:
# on samples of a known population, 40% of fits on 30 buyers and 12% on 100 run off to a
# boundary (q -> inf or p -> inf), none on 300 (docs/customer-value.md).
MIN_REPEAT_BUYERS = 100
# Optimizer box on the log-parameters (alpha and gamma relative to the data's time and
# money scale): wide, only there to keep exp() finite. A solution outside the narrower
# "sane" box below is reported as not converged (it is running off to a boundary).
_LOG_BOUND = 25.0
_SANE_LOG = math.log(1e6)
# A mean dropout probability per purchase, a / (a + b), below this is taken as 0, the NBD
# limit (no dropout in the data): one dropout per million purchases is nothing a fit can
# tell from none, and the optimizer only drifts along a -> 0, b -> inf there (seen: a
# 1e-6 and b 25,000 with an "ABNORMAL" line search on 3,000 customers who never drop out).
NO_DROPOUT = 1e-6
# Largest |d(mean log-likelihood)/d(log parameter)| accepted at the optimum. The optimizer
# stops on gtol/ftol far below this; the check catches a stop for any other reason.
GRADIENT_TOLERANCE = 1e-4
_GTOL = 1e-8
_FTOL = 1e-13
_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class CustomerValueConfig:
    """Knobs of the customer-value model.

    ``time_unit_days`` must be the unit :func:`purchase_summary` used (1 = days): the
    30/90-day and monthly horizons of :func:`score_customers` are converted with it.
    """

    horizon_months: int = 12
    monthly_discount_rate: float = 0.01
    max_iterations: int = 500
    time_unit_days: float = 1.0

    def __post_init__(self) -> None:
        """Reject values for which the CLV sum or the optimizer has no meaning."""
        if self.horizon_months < 0:
            raise ValueError(f"horizon_months must be >= 0, got {self.horizon_months}")
        if not self.monthly_discount_rate > -1.0:
            raise ValueError(
                f"monthly_discount_rate must be > -1, got {self.monthly_discount_rate}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if not self.time_unit_days > 0:
            raise ValueError(f"time_unit_days must be > 0, got {self.time_unit_days}")


@dataclass(frozen=True)
class BgNbdFit:
    """Maximum-likelihood BG/NBD parameters (``alpha`` in the summary's time unit)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    converged: bool
    iterations: int
    message: str
    customers: int
    # False when the data cannot identify the model at all (no customers, nobody repeated:
    # a young deployment's first days), as opposed to a fit that failed on data that could.
    identifiable: bool = True


@dataclass(frozen=True)
class GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma parameters; ``customers`` counts the repeat buyers."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    converged: bool
    iterations: int
    message: str
    customers: int


# --------------------------------------------------------------------------- summary


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; a naive datetime raises, as everywhere in the pipeline (an end
    of window is never guessed: docs/patterns.md)."""
    if moment.tzinfo is None:
        raise ValueError(f"as_of_end must be timezone-aware, got naive {moment}")
    return moment.astimezone(dt.UTC)


def purchase_summary(
    purchases: pl.DataFrame | pl.LazyFrame,
    as_of_end: dt.datetime,
    *,
    time_unit_days: float = 1.0,
) -> pl.DataFrame:
    """One row per user who bought before ``as_of_end``, in :data:`SUMMARY_SCHEMA`.

    The conventions are those of Lifetimes' ``summary_data_from_transaction_data`` with
    daily periods, which the published CDNOW fits use:

    - a refund (``amount < 0``, or a null amount) makes no purchase day; a zero-value
      order does: it is a purchase occasion, which is what the model counts (CDNOW has
      eight $0 orders, and the papers' 2,357 customers include their buyers). The
      profiles count purchases as ``amount > 0`` (docs/patterns.md) because they sum spend;
    - purchases on the same UTC date are one purchase (amounts summed): the models count
      purchase occasions, and several order lines of one visit are not several visits;
    - ``frequency`` = distinct purchase days - 1 (repeat purchases);
    - ``recency`` = last day - first day, ``T`` = end day - first day, in time units of
      ``time_unit_days`` days;
    - the end day is the last UTC date the half-open window ``[.., as_of_end)`` covers,
      i.e. the date of ``as_of_end`` minus one microsecond: for a midnight ``as_of_end``
      (a daily partition's end) it is the day before, as Lifetimes' inclusive
      ``observation_period_end`` (CDNOW: calibration up to 1997-09-30 gives T = 38.86
      weeks for a first purchase on 1997-01-01);
    - ``monetary_value`` = mean amount of the repeat purchase days (the first day is
      excluded, as in the Gamma-Gamma papers), 0 when ``frequency`` is 0.
    """
    if time_unit_days <= 0:
        raise ValueError(f"time_unit_days must be positive, got {time_unit_days}")
    end = _utc(as_of_end)
    end_day = (end - dt.timedelta(microseconds=1)).date()
    end_day_number = (end_day - dt.date(1970, 1, 1)).days
    lazy = purchases.lazy()
    occurred = pl.col("occurred_at")
    occurred_dtype = lazy.collect_schema()["occurred_at"]
    if isinstance(occurred_dtype, pl.Datetime) and occurred_dtype.time_zone is None:
        occurred = occurred.dt.replace_time_zone("UTC")
    elif isinstance(occurred_dtype, pl.Datetime) and occurred_dtype.time_zone != "UTC":
        occurred = occurred.dt.convert_time_zone("UTC")
    # Days since the epoch of the UTC date: integer arithmetic from here on.
    day = (occurred.dt.epoch("us") // _US_PER_DAY).cast(pl.Int64)
    end_us = int((end - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
    daily = (
        lazy.filter((occurred.dt.epoch("us") < end_us) & (pl.col("amount") >= 0))
        .group_by(pl.col("user_id").cast(pl.Int64), day.alias("day"))
        .agg(pl.col("amount").sum().cast(pl.Float64).alias("amount"))
    )
    # The first day's amount is left out by marking it (not total - first: that would
    # make equal repeat histories differ in the last bits); measured faster on the
    # streaming engine than sort_by(day).slice(1) inside the aggregation.
    per_user = daily.with_columns(
        repeat=pl.col("day") != pl.col("day").min().over("user_id"),
    ).group_by("user_id").agg(
        first_day=pl.col("day").min(),
        last_day=pl.col("day").max(),
        days=pl.len(),
        repeat_amount=pl.when("repeat").then("amount").otherwise(0.0).sum(),
    )
    scale = float(time_unit_days)
    frequency = (pl.col("days") - 1).cast(pl.Int64)
    summary = per_user.select(
        pl.col("user_id"),
        frequency.alias("frequency"),
        ((pl.col("last_day") - pl.col("first_day")).cast(pl.Float64) / scale).alias("recency"),
        ((pl.lit(end_day_number) - pl.col("first_day")).cast(pl.Float64) / scale).alias("T"),
        pl.when(frequency > 0)
        .then(pl.col("repeat_amount") / frequency.cast(pl.Float64))
        .otherwise(0.0)
        .alias("monetary_value"),
    ).sort("user_id")
    return summary.collect(engine="streaming").cast(SUMMARY_SCHEMA)  # type: ignore[arg-type]


def _check_summary(summary: pl.DataFrame) -> None:
    """Reject summaries no purchase history can produce: a bug upstream, not a model fit."""
    missing = [name for name in ("frequency", "recency", "T") if name not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks columns {missing}")
    bad = summary.filter(
        (pl.col("frequency") < 0)
        | (pl.col("recency") < 0)
        | (pl.col("recency") > pl.col("T"))
        | ((pl.col("frequency") == 0) & (pl.col("recency") != 0))
        | pl.col("T").is_null() | pl.col("recency").is_null() | pl.col("frequency").is_null()
        | ~pl.col("T").is_finite()
    ).height
    if bad:
        raise ValueError(
            f"{bad} summary rows violate 0 <= recency <= T, frequency >= 0 "
            "(recency 0 when frequency is 0)"
        )


# --------------------------------------------------------------------------- BG/NBD


def _wsum(weights: np.ndarray, values: np.ndarray) -> float:
    """sum(weights * values) without BLAS: a multi-threaded BLAS dot on a busy 2-core
    machine spins (9 ms instead of 0.1 ms for 350k rows, measured), einsum does not."""
    return float(np.einsum("i,i->", weights, values))


@dataclass(frozen=True)
class _BgData:
    """Grouped BG/NBD data: per distinct frequency, and per repeat-buyer pattern."""

    x_values: np.ndarray  # distinct frequencies
    x_weights: np.ndarray  # customers per distinct frequency
    zero_T: np.ndarray  # distinct T of one-time buyers (frequency 0)
    zero_w: np.ndarray
    x: np.ndarray  # repeat buyers' distinct (frequency, recency, T)
    tx: np.ndarray
    T: np.ndarray
    w: np.ndarray
    wx: np.ndarray  # w * x
    x_minus_1: np.ndarray  # x - 1, for ln(b + x - 1)
    customers: int


def _bg_data(summary: pl.DataFrame) -> _BgData:
    """Group the summary by (frequency, recency, T); exact, since equal rows add equal terms."""
    # Sorted: group_by's row order varies from run to run, and float sums in another order
    # round differently; the optimizer then lands elsewhere in the last digits (far
    # elsewhere along a flat direction). One order gives one answer on every path.
    grouped = (summary.group_by("frequency", "recency", "T").agg(pl.len().alias("w"))
               .sort("frequency", "recency", "T"))
    zeros = grouped.filter(pl.col("frequency") == 0)
    repeat = grouped.filter(pl.col("frequency") > 0)
    by_x = grouped.group_by("frequency").agg(pl.col("w").sum()).sort("frequency")
    x = repeat["frequency"].cast(pl.Float64).to_numpy()
    w = repeat["w"].cast(pl.Float64).to_numpy()
    return _BgData(
        x_values=by_x["frequency"].cast(pl.Float64).to_numpy(),
        x_weights=by_x["w"].cast(pl.Float64).to_numpy(),
        zero_T=zeros["T"].to_numpy(),
        zero_w=zeros["w"].cast(pl.Float64).to_numpy(),
        x=x, tx=repeat["recency"].to_numpy(), T=repeat["T"].to_numpy(), w=w, wx=w * x,
        x_minus_1=x - 1.0,
        customers=summary.height,
    )


def bg_nbd_log_likelihood(params: np.ndarray, data: _BgData) -> tuple[float, np.ndarray]:
    """Total BG/NBD log-likelihood and its gradient with respect to (r, alpha, a, b).

    Per customer (Fader, Hardie & Lee 2005, eq. 6, in logs):
    ``A1 + A2 + A3 + [x > 0] softplus(D)`` with
    ``A1 = lnG(r+x) - lnG(r) + r ln(alpha)``,
    ``A2 = lnG(a+b) + lnG(b+x) - lnG(b) - lnG(a+b+x)``,
    ``A3 = -(r+x) ln(alpha+T)`` and
    ``D = ln(a) - ln(b+x-1) + (r+x) (ln(alpha+T) - ln(alpha+t_x))``, so the sum of the two
    likelihood branches never leaves log space (softplus(D) = max(D, 0) + log1p(e^-|D|)).
    A1 + A2 depend on x alone and are summed per distinct frequency; per repeat-buyer
    row an evaluation costs three logs and one exp.
    """
    r, alpha, a, b = (float(v) for v in params)
    xv, xw, n = data.x_values, data.x_weights, data.customers
    ab = a + b
    psi_ab_x = special.digamma(ab + xv)
    ll = _wsum(xw, special.gammaln(r + xv) + special.gammaln(b + xv)
               - special.gammaln(ab + xv))
    ll += n * (r * math.log(alpha) - special.gammaln(r) + special.gammaln(ab)
               - special.gammaln(b))
    dr = _wsum(xw, special.digamma(r + xv)) + n * (math.log(alpha) - special.digamma(r))
    dalpha = n * r / alpha
    da = n * special.digamma(ab) - _wsum(xw, psi_ab_x)
    db = n * (special.digamma(ab) - special.digamma(b)) + _wsum(
        xw, special.digamma(b + xv) - psi_ab_x)

    # one-time buyers: A3 = -r ln(alpha + T)
    log_zero = np.log(alpha + data.zero_T)
    sum_log_zero = _wsum(data.zero_w, log_zero)
    ll -= r * sum_log_zero
    dr -= sum_log_zero
    dalpha -= r * _wsum(data.zero_w, 1.0 / (alpha + data.zero_T))

    # repeat buyers
    w, wx = data.w, data.wx
    log_T = np.log(alpha + data.T)
    log_gap = log_T - np.log(alpha + data.tx)  # >= 0
    bx1 = b + data.x_minus_1
    d = math.log(a) - np.log(bx1) + (r + data.x) * log_gap
    e = np.exp(-np.abs(d))
    softplus = np.maximum(d, 0.0) + np.log1p(e)
    sig = np.where(d >= 0, 1.0, e) / (1.0 + e)  # expit(d)
    ll += _wsum(w, softplus) - r * _wsum(w, log_T) - _wsum(wx, log_T)
    dr += _wsum(w, sig * log_gap - log_T)
    inv_T = 1.0 / (alpha + data.T)
    inv_tx = 1.0 / (alpha + data.tx)
    weighted = r * w + wx  # w * (r + x)
    dalpha += _wsum(weighted, (sig - 1.0) * inv_T - sig * inv_tx)
    da += _wsum(w, sig) / a
    db -= _wsum(w, sig / bx1)
    return ll, np.array([dr, dalpha, da, db])


def nbd_log_likelihood(params: np.ndarray, data: _BgData) -> tuple[float, np.ndarray]:
    """The BG/NBD log-likelihood in its a -> 0 limit (nobody drops out): the NBD's
    ``lnG(r+x) - lnG(r) + r ln(alpha) - (r+x) ln(alpha+T)`` per customer, with the
    gradient in (r, alpha). t_x drops out: only the count over T matters."""
    r, alpha = (float(v) for v in params)
    xv, xw, n = data.x_values, data.x_weights, data.customers
    ll = _wsum(xw, special.gammaln(r + xv)) + n * (r * math.log(alpha) - special.gammaln(r))
    dr = _wsum(xw, special.digamma(r + xv)) + n * (math.log(alpha) - special.digamma(r))
    dalpha = n * r / alpha
    log_zero = np.log(alpha + data.zero_T)
    log_T = np.log(alpha + data.T)
    ll -= r * _wsum(data.zero_w, log_zero) + r * _wsum(data.w, log_T) + _wsum(data.wx, log_T)
    dr -= _wsum(data.zero_w, log_zero) + _wsum(data.w, log_T)
    dalpha -= (r * _wsum(data.zero_w, 1.0 / (alpha + data.zero_T))
               + _wsum(r * data.w + data.wx, 1.0 / (alpha + data.T)))
    return ll, np.array([dr, dalpha])


def _fit_nbd_limit(data: _BgData, start: np.ndarray, t_scale: float,
                   config: CustomerValueConfig, iterations: int) -> BgNbdFit:
    """The fit when the BG/NBD optimum runs to a -> 0 (a / (a + b) below `NO_DROPOUT`): the
    data show no dropout, and the maximum of the likelihood over a >= 0 is the NBD limit
    (P(alive) = 1 for everyone, b irrelevant). Fitted as the NBD, with the same convergence
    checks on (r, alpha)."""
    result = _optimize(lambda p: nbd_log_likelihood(p, data), start, data.customers, config)
    r, alpha = (float(v) for v in np.exp(result.x))
    converged, message = _convergence(result, np.log([r, alpha / t_scale]), data.customers)
    identifiable = not _at_boundary(np.log([r, alpha / t_scale]))
    if converged:
        message = (f"no dropout in the data (a -> 0): the NBD limit of the BG/NBD, "
                   f"P(alive) = 1; {message}")
    return BgNbdFit(r=r, alpha=alpha, a=0.0, b=math.inf,
                    log_likelihood=float(-result.fun * data.customers), converged=converged,
                    iterations=iterations + int(result.nit), message=message,
                    customers=data.customers, identifiable=identifiable or converged)


def _not_converged_bg(message: str, customers: int, iterations: int = 0, *,
                      identifiable: bool = True) -> BgNbdFit:
    nan = float("nan")
    return BgNbdFit(nan, nan, nan, nan, nan, False, iterations, message, customers,
                    identifiable)


def _optimize(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    customers: int,
    config: CustomerValueConfig,
) -> optimize.OptimizeResult:
    """L-BFGS-B on log-parameters of the mean log-likelihood, with the analytic gradient.

    The mean (not the total) keeps the gradient tolerances independent of the population
    size; working in logs keeps the parameters positive and the problem scale-free.
    """

    def negative(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, grad = objective(params)
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return math.inf, np.zeros_like(log_params)
        return -ll / customers, -grad * params / customers

    bounds = [(v - _LOG_BOUND, v + _LOG_BOUND) for v in np.log(start)]
    budget = max(int(config.max_iterations), 1)
    with np.errstate(all="ignore"):
        result = optimize.minimize(
            negative, np.log(start), jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": budget, "gtol": _GTOL, "ftol": _FTOL, "maxcor": 20})
        # An L-BFGS-B line search can fail near the optimum when its curvature memory
        # is stale ("ABNORMAL"); one restart from there with a fresh memory, within the
        # same iteration budget, settles it. Any other failure is reported as it is.
        remaining = budget - int(result.nit)
        if not result.success and "ABNORMAL" in str(result.message) and remaining > 0:
            again = optimize.minimize(
                negative, result.x, jac=True, method="L-BFGS-B", bounds=bounds,
                options={"maxiter": remaining, "gtol": _GTOL, "ftol": _FTOL, "maxcor": 20})
            again.nit = int(again.nit) + int(result.nit)
            result = again
    return result


def _at_boundary(relative_log_params: np.ndarray) -> bool:
    """A parameter ran off towards 0 or infinity: the data do not identify it (e.g. r and
    alpha -> inf together on a few days of history, where no spread of purchase rates
    between customers can be seen yet)."""
    return not bool(np.all(np.abs(relative_log_params) <= _SANE_LOG))


def _convergence(
    result: optimize.OptimizeResult, relative_log_params: np.ndarray, customers: int,
) -> tuple[bool, str]:
    """The four checks: optimizer success, finite likelihood, small gradient, sane values.

    An L-BFGS-B "ABNORMAL" stop (its line search found no further decrease, even after the
    restart in `_optimize`) counts as success when the gradient check holds: the optimum's
    first-order condition is met and only the last digits are left (seen on the demo's
    Gamma-Gamma: gradient below the tolerance, parameters as on the neighbouring days)."""
    problems = []
    gradient = np.max(np.abs(result.jac)) if np.all(np.isfinite(result.jac)) else math.inf
    at_precision = "ABNORMAL" in str(result.message) and gradient <= GRADIENT_TOLERANCE
    if not result.success and not at_precision:
        problems.append(f"optimizer: {result.message}")
    if not np.isfinite(result.fun):
        problems.append("log-likelihood is not finite")
    if not gradient <= GRADIENT_TOLERANCE:
        problems.append(f"gradient norm {gradient:.3g} > {GRADIENT_TOLERANCE:g}")
    if not np.all(np.abs(relative_log_params) <= _SANE_LOG):
        problems.append("a parameter left the sane range [1e-6, 1e6] (relative to data scale)")
    if problems:
        return False, "; ".join(problems)
    return True, f"converged ({customers} customers, gradient {gradient:.1e})"


def fit_bg_nbd(
    summary: pl.DataFrame, config: CustomerValueConfig = CustomerValueConfig(),
) -> BgNbdFit:
    """Maximum-likelihood BG/NBD (Fader, Hardie & Lee 2005) over the whole population.

    Starting values: r = 1, a = 1, b = 1 (a death probability of 1/2 per purchase, a
    neutral middle) and alpha = r * sum(T) / sum(frequency), the Gamma rate whose mean
    purchase rate r/alpha equals the observed repeat rate. That puts alpha at the data's
    time scale whatever the unit (days or weeks), which is what matters: in log-parameters
    a change of time unit is a mere shift of log(alpha).

    Never raises for non-convergence: ``converged`` is False (with the reason in
    ``message``) when the optimizer reports failure, the log-likelihood is not finite,
    the gradient at the optimum exceeds :data:`GRADIENT_TOLERANCE`, a parameter runs off
    to 1e-6 / 1e6 (alpha relative to mean T), or nobody repeated (a, b unidentifiable).
    Invalid summaries (recency > T, negative values) raise ``ValueError``.
    """
    _check_summary(summary)
    if summary.height == 0:
        return _not_converged_bg("no customers to fit", 0, identifiable=False)
    data = _bg_data(summary)
    repeat_purchases = _wsum(data.x_values, data.x_weights)
    total_T = _wsum(data.zero_w, data.zero_T) + _wsum(data.w, data.T)
    if repeat_purchases == 0 or total_T == 0:
        return _not_converged_bg(
            "no repeat purchases (or no time observed): a and b are not identifiable",
            data.customers, identifiable=False)
    t_scale = total_T / data.customers
    start = np.array([1.0, total_T / repeat_purchases, 1.0, 1.0])
    result = _optimize(lambda p: bg_nbd_log_likelihood(p, data), start, data.customers, config)
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    if a / (a + b) < NO_DROPOUT:
        return _fit_nbd_limit(data, start[:2], t_scale, config, int(result.nit))
    relative = np.log([r, alpha / t_scale, a, b])
    converged, message = _convergence(result, relative, data.customers)
    return BgNbdFit(
        r=r, alpha=alpha, a=a, b=b, log_likelihood=float(-result.fun * data.customers),
        converged=converged, iterations=int(result.nit), message=message,
        customers=data.customers, identifiable=converged or not _at_boundary(relative),
    )


# --------------------------------------------------------------------------- Gamma-Gamma


@dataclass(frozen=True)
class _GgData:
    """Grouped Gamma-Gamma data with the parameter-free parts of the likelihood summed."""

    x_values: np.ndarray  # distinct frequencies
    x_weights: np.ndarray  # repeat buyers per distinct frequency
    xm: np.ndarray  # per distinct (x, m): x * m
    w: np.ndarray
    wx: np.ndarray
    sum_log_m: float  # sum of w ln(m)
    sum_log_xm: float  # sum of w ln(x m)
    customers: int


def _gg_data(x: np.ndarray, m: np.ndarray, w: np.ndarray) -> _GgData:
    distinct, inverse = np.unique(x, return_inverse=True)
    return _GgData(
        x_values=distinct, x_weights=np.bincount(inverse, weights=w),
        xm=x * m, w=w, wx=w * x, sum_log_m=_wsum(w, np.log(m)),
        sum_log_xm=_wsum(w, np.log(x * m)), customers=round(float(w.sum())),
    )


def gamma_gamma_log_likelihood(params: np.ndarray, data: _GgData) -> tuple[float, np.ndarray]:
    """Total Gamma-Gamma log-likelihood of the average repeat value m over x purchases.

    Per customer (Fader, Hardie & Lee 2005b; Fader & Hardie 2013):
    ``lnG(px+q) - lnG(px) - lnG(q) + q ln(g) + (px-1) ln(m) + px ln(x) - (px+q) ln(xm+g)``,
    rearranged as ``lnG(px+q) - lnG(px) - lnG(q) + q ln(g) - ln(m) - q ln(xm)
    + (px+q) L`` with ``L = ln(xm/(xm+g)) = -log1p(g/(xm))``: the gamma functions depend
    on x alone (summed per distinct frequency), the logs of the data are constants, and a
    row costs one log1p and one division. Returns the gradient in (p, q, gamma) too.
    """
    p, q, g = (float(v) for v in params)
    xv, xw, n = data.x_values, data.x_weights, data.customers
    pxq = p * xv + q
    psi_pxq = special.digamma(pxq)
    log_ratio = -np.log1p(g / data.xm)
    inv = 1.0 / (data.xm + g)
    sum_lr, sum_x_lr = _wsum(data.w, log_ratio), _wsum(data.wx, log_ratio)
    ll = (_wsum(xw, special.gammaln(pxq) - special.gammaln(p * xv))
          + n * (q * math.log(g) - special.gammaln(q)) - data.sum_log_m - q * data.sum_log_xm
          + p * sum_x_lr + q * sum_lr)
    dp = _wsum(xw * xv, psi_pxq - special.digamma(p * xv)) + sum_x_lr
    dq = (_wsum(xw, psi_pxq) - n * special.digamma(q) + n * math.log(g) - data.sum_log_xm
          + sum_lr)
    dg = n * q / g - p * _wsum(data.wx, inv) - q * _wsum(data.w, inv)
    return ll, np.array([dp, dq, dg])


def fit_gamma_gamma(
    summary: pl.DataFrame, config: CustomerValueConfig = CustomerValueConfig(),
) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma on repeat buyers (frequency > 0, monetary_value > 0).

    ``monetary_value`` must be the mean of the repeat purchases only (what
    :func:`purchase_summary` gives): that is the convention of the published CDNOW figures.
    Rows are grouped by (frequency, monetary_value), exact for equal rows.

    Starting values: p = 1, q = 3 and gamma = mean(m) * (q - 1) / p, so the model's
    population mean p*gamma/(q-1) starts at the observed mean. Convergence checks are those
    of :func:`fit_bg_nbd` (gamma relative to the mean value), plus q > 1, without which the
    population mean order value is infinite. Fewer than :data:`MIN_REPEAT_BUYERS` repeat
    buyers: no fit at all (converged False, NaN parameters) and :func:`score_customers`
    falls back to the observed mean.
    """
    nan = float("nan")
    if "monetary_value" not in summary.columns:
        raise ValueError("summary lacks column monetary_value")
    repeat = summary.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    buyers = repeat.height
    if buyers < MIN_REPEAT_BUYERS:
        return GammaGammaFit(
            nan, nan, nan, nan, False, 0,
            f"{buyers} repeat buyers < {MIN_REPEAT_BUYERS}: Gamma-Gamma not identifiable, "
            "expected order value falls back to the observed mean", buyers)
    grouped = (repeat.group_by("frequency", "monetary_value").agg(pl.len().alias("w"))
               .sort("frequency", "monetary_value"))  # one order, one answer (see _bg_data)
    x = grouped["frequency"].cast(pl.Float64).to_numpy()
    m = grouped["monetary_value"].to_numpy()
    w = grouped["w"].cast(pl.Float64).to_numpy()
    m_scale = _wsum(w, m) / buyers
    data = _gg_data(x, m, w)
    start = np.array([1.0, 3.0, m_scale * 2.0])
    result = _optimize(lambda prm: gamma_gamma_log_likelihood(prm, data), start, buyers, config)
    p, q, g = (float(v) for v in np.exp(result.x))
    converged, message = _convergence(result, np.log([p, q, g / m_scale]), buyers)
    if q <= 1.0:
        converged = False
        message = f"q = {q:.3g} <= 1: population mean order value is infinite; {message}"
    return GammaGammaFit(
        p=p, q=q, gamma=g, log_likelihood=float(-result.fun * buyers), converged=converged,
        iterations=int(result.nit), message=message, customers=buyers,
    )


# --------------------------------------------------------------------------- scoring


def _log_alive_odds(x: np.ndarray, tx: np.ndarray, T: np.ndarray, bg: BgNbdFit) -> np.ndarray:
    """ln of P(dead)/P(alive) given the history (Fader, Hardie & Lee, note 021)."""
    return (math.log(bg.a) - np.log(bg.b + np.maximum(x, 1.0) - 1.0)
            + (bg.r + x) * (np.log(bg.alpha + T) - np.log(bg.alpha + tx)))


def p_alive(x: np.ndarray, tx: np.ndarray, T: np.ndarray, bg: BgNbdFit) -> np.ndarray:
    """P(alive | x, t_x, T): 1 for x = 0 (a BG/NBD customer can only drop out after a
    purchase), else 1 / (1 + exp(log odds)) through ``expit``, safe for any frequency;
    1 for everyone in the NBD limit (a = 0)."""
    if bg.a == 0.0:
        return np.ones_like(np.asarray(x, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x == 0, 1.0, special.expit(-_log_alive_odds(x, tx, T, bg)))


def _expected_if_alive(t: np.ndarray | float, x: np.ndarray, T: np.ndarray,
                       bg: BgNbdFit) -> np.ndarray:
    """E[Y(t) | alive at T, x, T]: given alive, the posterior depends on (x, T) only, so
    scoring evaluates this once per distinct (frequency, T); see :func:`expected_purchases`."""
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    t = np.asarray(t, dtype=np.float64)
    if a == 0.0:  # the NBD limit: the posterior rate is Gamma(r + x, alpha + T)
        return (r + x) / (alpha + T) * t
    with np.errstate(all="ignore"):
        log_one_minus_z = np.log(alpha + T) - np.log(alpha + T + t)
        z = t / (alpha + T + t)
        hyp = special.hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
        power = (a - 1.0) * log_one_minus_z
        bracket = np.where(hyp > 0, -np.expm1(power + np.log(np.where(hyp > 0, hyp, 1.0))),
                           1.0 - np.exp(power) * hyp)
        return np.where(t == 0, 0.0, (a + b + x - 1.0) / (a - 1.0) * bracket)


def expected_purchases(
    t: np.ndarray | float, x: np.ndarray, tx: np.ndarray, T: np.ndarray, bg: BgNbdFit,
) -> np.ndarray:
    """E[Y(t) | x, t_x, T], the BG/NBD conditional expectation (Fader et al. 2005, eq. 10).

    Eq. 10 is ``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1;
    z)] * P(alive)`` with ``z = t/(alpha+T+t)``. For large x the 2F1 there has huge
    parameters and overflows while the power underflows. Euler's transformation
    ``2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)`` turns the product into
    ``((alpha+T)/(alpha+T+t))^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)``: exact, and the
    numerator parameters no longer depend on x (a large C only makes the series converge
    faster). ``1 - exp(..)`` is ``-expm1`` so a close to 1 keeps its digits. The formula
    needs a != 1 (a removable singularity; a fit lands exactly on 1 with probability 0).
    """
    return _expected_if_alive(t, x, T, bg) * p_alive(x, tx, T, bg)


def _fallback_order_value(summary: pl.DataFrame) -> float:
    """Mean value of a repeat purchase day over all repeat buyers (NaN if none)."""
    repeat = summary.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    purchases = repeat["frequency"].sum()
    if not purchases:
        return float("nan")
    return float((repeat["frequency"] * repeat["monetary_value"]).sum() / purchases)


def _usable_gamma_gamma(gg: GammaGammaFit) -> bool:
    return bool(np.all(np.isfinite([gg.p, gg.q, gg.gamma])) and gg.q > 1.0 and gg.p > 0
                and gg.gamma > 0)


def score_customers(
    summary: pl.DataFrame,
    bg: BgNbdFit,
    gg: GammaGammaFit,
    config: CustomerValueConfig = CustomerValueConfig(),
) -> pl.DataFrame:
    """Per-user P(alive), expected purchases in 30/90 days, expected order value and CLV.

    - ``expected_order_value``: the Gamma-Gamma conditional mean
      ``(p*gamma + p*x*m) / (p*x + q - 1)``, a weighted average of the population mean
      ``p*gamma/(q-1)`` and the user's own mean m; for frequency 0 it is the population mean
      ("shrunk to the population"), and so it is for a repeat mean <= 0 (refunds), which
      the model cannot hold. When the Gamma-Gamma fit is unusable (NaN or q <= 1) every
      user gets the observed mean repeat-purchase value instead.
    - ``clv``: sum over months k = 1..horizon of expected_order_value *
      (E[Y(k months)] - E[Y(k-1 months)]) / (1 + monthly_discount_rate)^k, a month being
      30.4375 days (Lifetimes' discrete ``customer_lifetime_value``).

    The BG/NBD figures are computed with numpy once per distinct (frequency, recency, T)
    (the hypergeometric terms once per distinct (frequency, T)) and joined back; values
    that cannot be computed (NaN parameters) are null.
    """
    _check_summary(summary)
    unit = float(config.time_unit_days)
    month = DAYS_PER_MONTH / unit
    groups = summary.group_by("frequency", "recency", "T").agg().sort("frequency", "recency", "T")
    # E[Y(t) | alive] depends on (frequency, T) only: the 2F1 calls run on those pairs
    pairs = (groups.select("frequency", "T").unique(maintain_order=True)
             .with_row_index("pair"))
    groups = groups.join(pairs, on=["frequency", "T"])
    x = groups["frequency"].cast(pl.Float64).to_numpy()
    tx = groups["recency"].to_numpy()
    T = groups["T"].to_numpy()
    pair = groups["pair"].to_numpy()
    pair_x = pairs["frequency"].cast(pl.Float64).to_numpy()
    pair_T = pairs["T"].to_numpy()
    horizon = max(int(config.horizon_months), 0)
    discounted = np.zeros_like(pair_x)
    previous = np.zeros_like(pair_x)
    for k in range(1, horizon + 1):
        current = _expected_if_alive(month * k, pair_x, pair_T, bg)
        discounted += (current - previous) / (1.0 + config.monthly_discount_rate) ** k
        previous = current
    alive = p_alive(x, tx, T, bg)
    bg_scores = groups.select(
        "frequency", "recency", "T",
        p_alive=pl.Series(alive),
        expected_purchases_30d=pl.Series(
            alive * _expected_if_alive(30.0 / unit, pair_x, pair_T, bg)[pair]),
        expected_purchases_90d=pl.Series(
            alive * _expected_if_alive(90.0 / unit, pair_x, pair_T, bg)[pair]),
        discounted_purchases=pl.Series(alive * discounted[pair]),
    )
    if _usable_gamma_gamma(gg):
        # outside the model's domain (no repeat, or a repeat mean <= 0 after refunds):
        # x = 0, i.e. the population mean
        in_domain = (pl.col("frequency") > 0) & (pl.col("monetary_value") > 0)
        px = gg.p * pl.when(in_domain).then(pl.col("frequency")).otherwise(0).cast(pl.Float64)
        monetary = pl.when(in_domain).then(pl.col("monetary_value")).otherwise(0.0)
        order_value = (gg.p * gg.gamma + px * monetary) / (px + gg.q - 1.0)
    else:
        order_value = pl.lit(_fallback_order_value(summary), dtype=pl.Float64)
    scored = summary.select("user_id", "frequency", "recency", "T", "monetary_value").join(
        bg_scores, on=["frequency", "recency", "T"], how="left", maintain_order="left",
    ).with_columns(expected_order_value=order_value)
    return scored.select(  # in SCORE_COLUMNS order
        pl.col("user_id").cast(pl.Int64),
        pl.col("frequency").cast(pl.Int64),
        pl.col("recency").cast(pl.Float64),
        pl.col("T").cast(pl.Float64),
        *(pl.col(name).cast(pl.Float64).fill_nan(None) for name in (
            "p_alive", "expected_purchases_30d", "expected_purchases_90d",
            "expected_order_value")),
        (pl.col("expected_order_value") * pl.col("discounted_purchases"))
        .cast(pl.Float64).fill_nan(None).alias("clv"),
    )
