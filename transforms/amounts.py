"""Exact money parsing: a source amount becomes integer cents, or a reason why not.

Every amount goes through its decimal text, whatever the source type: a database
`NUMERIC` prints exactly, a float prints its shortest round-trip form (`12.34`, never
`12.339999…`), CSV is text already. Parsing the digits (not a float) keeps `1.005`
distinguishable from `1.00` and never overflows: a value too large for the warehouse's
`NUMERIC(14,2)` is *detected* from its digit count before any integer is built.
"""

from __future__ import annotations

import polars as pl

from transforms.ingest_policy import MAX_ABS_AMOUNT_CENTS

# sign, integer digits, fraction digits, exponent (`1e12`, `9.2e+16` as floats print)
_NUMBER = r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$"
_NON_FINITE = r"(?i)^[+-]?(nan|inf|infinity)$"
MAX_INTEGER_DIGITS = len(str(MAX_ABS_AMOUNT_CENTS // 100))  # 12
CENTS_DIGITS = 2


def amount_text(dtype: pl.DataType, column: str) -> pl.Expr:
    """The amount as decimal text, from any source type."""
    if dtype.is_numeric() or isinstance(dtype, pl.Decimal):
        return pl.col(column).cast(pl.String)
    return pl.col(column).cast(pl.String).str.strip_chars()


def parse_cents(text: pl.Expr) -> dict[str, pl.Expr]:
    """Expressions over decimal `text`:

    - `amount_is_number`: the text is a finite decimal number;
    - `amount_is_non_finite`: NaN or ±infinity;
    - `amount_in_range`: at most 12 integer digits, so cents fit an Int64 (the caller
      still bounds the final cents, which rounding or conversion can push to 10^14);
    - `amount_is_sub_cent`: it has non-zero digits below the cent;
    - `amount_cents`: the value in cents, rounded half away from zero when sub-cent,
      null unless a number in range.
    """
    parts = text.str.extract_groups(_NUMBER)
    sign, integer, fraction = (parts.struct.field(name) for name in ("1", "2", "3"))
    exponent = parts.struct.field("4").cast(pl.Int64, strict=False).fill_null(0)
    digits = integer.fill_null("") + fraction.fill_null("")
    is_number = parts.struct.field("2").is_not_null() & (digits.str.len_chars() > 0)
    significant = digits.str.strip_chars_start("0")
    # where the decimal point falls in `significant`: its count of integer digits
    point = integer.fill_null("").str.len_chars().cast(pl.Int64) + exponent \
        - (digits.str.len_chars() - significant.str.len_chars()).cast(pl.Int64)
    is_zero = significant.str.len_chars() == 0
    in_range = is_zero | (point <= MAX_INTEGER_DIGITS)
    whole_length = (point + CENTS_DIGITS).clip(lower_bound=0)
    head = significant.str.slice(0, whole_length)
    below_cent = significant.str.slice(whole_length).str.strip_chars_end("0")
    cents_digits = pl.when(head.str.len_chars() > 0).then(head).otherwise(pl.lit("0"))
    # `head` may be shorter than `whole_length` (`5` with point 1 is 500 cents)
    scale = pl.lit(10, dtype=pl.Int64).pow(
        (whole_length - head.str.len_chars().cast(pl.Int64)).clip(lower_bound=0))
    magnitude = cents_digits.cast(pl.Int64, strict=False) * scale \
        + ((below_cent.str.slice(0, 1) >= "5") & (point + CENTS_DIGITS >= 0)).cast(pl.Int64)
    usable = is_number & in_range
    cents = pl.when(usable & is_zero).then(pl.lit(0, dtype=pl.Int64)) \
        .when(usable).then(pl.when(sign == "-").then(-magnitude).otherwise(magnitude))
    return {
        "amount_is_number": is_number.fill_null(False),
        "amount_is_non_finite": text.str.contains(_NON_FINITE).fill_null(False),
        "amount_in_range": (~is_number | in_range).fill_null(True),
        "amount_is_sub_cent": (is_number & in_range & ~is_zero
                               & (below_cent.str.len_chars() > 0)).fill_null(False),
        "amount_cents": cents,
    }


def convert_cents(cents: pl.Expr, rate: pl.Expr) -> pl.Expr:
    """Cents in another currency times `rate`, rounded half away from zero (exact enough:
    float64 carries 15+ significant digits, the range bounds cents to 14)."""
    value = cents.cast(pl.Float64) * rate
    return (value.abs() + 0.5).floor().cast(pl.Int64) * value.sign().cast(pl.Int64)


# Plain amounts (at most 12 integer digits, at most 2 decimals, no exponent): a float64
# holds them exactly enough that rounding `value * 100` gives their exact cents, so they
# skip the digit arithmetic, which only the rare others (sub-cent, huge, `1e3`) need.
_PLAIN = r"^[+-]?\d{0,12}(\.\d{0,2})?$"
PARSED_COLUMNS = ("amount_is_number", "amount_is_non_finite", "amount_in_range",
                  "amount_is_sub_cent", "amount_cents")


def _half_away_from_zero(value: pl.Expr) -> pl.Expr:
    return ((value.abs() + 0.5).floor() * value.sign()).cast(pl.Int64)


def with_parsed_cents(frame: pl.DataFrame, column: str = "amount") -> pl.DataFrame:
    """`frame` plus the `parse_cents` columns for `column`, each computed once per row.

    Most amounts are plain (a typed float that is a whole number of cents within range, or
    text like `12.34`): their cents are the rounded `value * 100`, exact for them. Only the
    rest (sub-cent, huge, `1e3`, not a number: rare) go through the digit arithmetic of
    `parse_cents` on their decimal text, so a float `1.005` and a text `1.005` get the same
    answer."""
    dtype = frame.schema[column]
    text = amount_text(dtype, column)
    if dtype.is_float() or dtype.is_integer():
        value = pl.col(column).cast(pl.Float64)
        cents = value * 100
        noise = pl.max_horizontal(pl.lit(1e-6), cents.abs() * 1e-15)
        plain = (value.is_finite() & (cents.abs() <= MAX_ABS_AMOUNT_CENTS)
                 & ((cents - cents.round(0)).abs() <= noise)).fill_null(False)
    else:
        plain = (text.str.contains(_PLAIN) & text.str.contains(r"\d")).fill_null(False)
        value = text.cast(pl.Float64, strict=False)
    staged = frame.with_columns(plain.alias("_plain"))
    fast = staged.with_columns(
        pl.col("_plain").alias("amount_is_number"),
        pl.lit(False).alias("amount_is_non_finite"),
        pl.lit(True).alias("amount_in_range"),
        pl.lit(False).alias("amount_is_sub_cent"),
        pl.when(pl.col("_plain")).then(_half_away_from_zero(value * 100)).alias("amount_cents"),
    )
    if fast.select(pl.col("_plain").all()).item():
        return fast.drop("_plain")
    indexed = fast.with_row_index("_amount_row")
    slow = indexed.filter(~pl.col("_plain")).select("_amount_row", **parse_cents(text))
    return indexed.update(slow, on="_amount_row").drop("_plain", "_amount_row")
