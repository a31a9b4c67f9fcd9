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
