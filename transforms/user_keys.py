"""User ids as the source writes them (integers, text, UUIDs) -> one 64-bit user key.

Every step after ingest groups, joins and sorts users on an Int64 `user_id`: that is the
fast path the profile transform is built and benchmarked on. So a source id becomes a
*user key* once, at the door, by a pure function of its text:

- a canonical non-negative integer (`0`, `7`, `123456789`, at most 19 digits, no sign,
  no leading zero) is its own key: integer sources pay nothing and their keys are their ids;
- any other id (`007`, `+7`, `usr_42`, a UUID) gets a negative key from a stable 63-bit
  BLAKE2b hash of its UTF-8 text, so it can never meet an integer id's key, and `007`
  never merges with `7`.

Surrounding whitespace is not part of an id (CSV padding); everything else (case, zeros,
signs, hyphens) is, exactly as written. Because the key is a function of the text alone,
users, transactions and campaign events key the same id the same way in every run, on
every path, with no shared counter to keep in step. Text ids are remembered by ingest in
the `user_keys` table (per staged day), so every per-user output carries the id as the
source wrote it (`source_user_id`); for integer keys that is the key's decimal text.

Two different texts with the same hash would be one user; at 10^6 text ids the chance is
about 5e-8, and ingest refuses it (`UserKeyCollision`) rather than merge them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import polars as pl

# An integer id is its own key only in this exact form (a superset would merge `07` and
# `7`; an id over 19 digits does not fit Int64 and is hashed as text instead).
CANONICAL_INTEGER = r"^(0|[1-9][0-9]{0,18})$"
NEGATIVE_INTEGER = r"^-[1-9][0-9]{0,18}$"
# Longer ids are refused as invalid_user_id: no real key system needs more, and the
# dictionary and every per-user output would carry them.
MAX_ID_LENGTH = 256
_INT64_MAX = 2**63 - 1

USER_KEY_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "source_user_id": pl.String(),
}


class UserKeyCollision(ValueError):
    """Two different source ids hash to one key: merging them would be silent and wrong."""


def text_key(text: str) -> int:
    """The key of a non-integer id: negative, stable across processes, versions and
    machines (BLAKE2b-64 of the UTF-8 text, top bit cleared, mapped to -1..-2^63)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return -1 - (int.from_bytes(digest, "big") >> 1)


def user_keys(ids: pl.Series) -> pl.Series:
    """Int64 key per id (any dtype); null for missing, blank, negative-integer or
    over-long ids, which are not users (validation says why)."""
    if ids.dtype.is_integer():
        return pl.select(pl.when(pl.lit(ids) >= 0).then(pl.lit(ids).cast(pl.Int64))) \
            .to_series().rename(ids.name)
    if ids.dtype.is_float():  # 7.0 from a float column is the integer 7; 7.5 is no id
        value = pl.lit(ids)
        return pl.select(pl.when((value == value.round(0)) & (value >= 0))
                         .then(value).cast(pl.Int64, strict=False)).to_series().rename(ids.name)
    frame = pl.DataFrame({"text": _unpadded(ids.cast(pl.String))})
    text = pl.col("text")
    frame = frame.with_columns(
        pl.when(text.str.contains(CANONICAL_INTEGER)).then(text.cast(pl.Int64, strict=False))
        .alias("integer"))
    integer = pl.col("integer").is_not_null()
    hashable = (~integer & text.is_not_null() & ~text.str.contains(NEGATIVE_INTEGER)
                & _within_length(frame["text"]))
    candidates = frame.filter(hashable)["text"]
    if candidates.is_empty():  # an integer source: no text to hash
        return frame["integer"].rename(ids.name)
    mapping = {value: text_key(value) for value in candidates.unique().to_list()}
    return frame.select(
        pl.when(integer).then(pl.col("integer"))
        .when(hashable).then(text.replace_strict(mapping, default=None,
                                                 return_dtype=pl.Int64))
    ).to_series().rename(ids.name)


def _unpadded(text: pl.Series) -> pl.Series:
    """Each id without CSV padding, null when blank; the strip (a copy of every string)
    only when some value is padded, which clean sources never are."""
    if text.str.contains(r"^\s|\s$").any():
        text = text.str.strip_chars()
    return pl.select(pl.when(pl.lit(text) != "").then(pl.lit(text))).to_series()


def _within_length(text: pl.Series) -> pl.Expr:
    """At most MAX_ID_LENGTH characters; characters are counted only when some value has
    more bytes than that (a UTF-8 character is at least one byte)."""
    if not (text.str.len_bytes() > MAX_ID_LENGTH).any():
        return pl.lit(True)
    return pl.col("text").str.len_chars() <= MAX_ID_LENGTH


def refuse_collisions(entries: pl.DataFrame) -> pl.DataFrame:
    """`entries` unchanged when each key has one text; else UserKeyCollision naming them."""
    clashing = entries.filter(pl.col("user_id").is_duplicated())
    if clashing.height:
        examples = clashing.group_by("user_id").agg("source_user_id").head(5).rows()
        raise UserKeyCollision(
            f"{clashing['user_id'].n_unique()} user key(s) shared by different source ids "
            f"(a 64-bit hash collision), e.g. {examples}; these users would be merged. "
            "Report it: the key function (transforms/user_keys.py) needs a wider hash.")
    return entries


def with_source_user_ids(frame: pl.DataFrame,
                         entries: pl.DataFrame | Callable[[], pl.DataFrame]) -> pl.DataFrame:
    """`frame` plus `source_user_id` (last column): the key's decimal text for integer
    ids, the dictionary's text for text ids. `entries` is any frame with `user_id` and
    `source_user_id` (the dictionary, profiles, an audience) or a function returning one,
    called only when `frame` has a text key. A text key missing from `entries` is a
    bookkeeping fault, refused rather than written as null."""
    keys = pl.col("user_id")
    frame = frame.drop("source_user_id", strict=False)
    if not frame.height or frame.select((keys < 0).any()).item() is not True:
        return frame.with_columns(keys.cast(pl.String).alias("source_user_id"))
    if callable(entries):
        entries = entries()
    if "source_user_id" not in entries.columns:  # written before text ids existed
        entries = pl.DataFrame(schema=USER_KEY_SCHEMA)
    lookup = entries.select(pl.col("user_id").cast(pl.Int64),
                            pl.col("source_user_id").cast(pl.String)).unique("user_id")
    joined = frame.join(lookup, on="user_id", how="left", maintain_order="left")
    joined = joined.with_columns(
        pl.when(keys >= 0).then(keys.cast(pl.String))
        .otherwise(pl.col("source_user_id")).alias("source_user_id"))
    missing = joined.filter(pl.col("source_user_id").is_null())["user_id"]
    if missing.len():
        raise LookupError(
            f"{missing.len()} text user key(s) have no entry in user_keys, e.g. "
            f"{missing.head(5).to_list()}: the staged days and their key dictionary "
            "disagree; re-materialize valid_transactions for the days involved")
    return joined
