"""Placeholder rewriting for both drivers."""

from __future__ import annotations

from resources.sql_files import to_dialect


def test_placeholders_are_rewritten_outside_literals_casts_and_comments() -> None:
    sql = "-- the user's day\nSELECT x::date, ':kept' FROM t -- don't :touch\nWHERE a = :a"
    assert to_dialect(sql, "duckdb").endswith("WHERE a = $a")
    postgres = to_dialect(sql, "postgres")
    assert postgres.endswith("WHERE a = %(a)s")
    assert "x::date" in postgres and "':kept'" in postgres and ":touch" in postgres


def test_percent_signs_are_escaped_for_psycopg() -> None:
    assert to_dialect("SELECT 'a%' LIKE :p", "postgres") == "SELECT 'a%%' LIKE %(p)s"
