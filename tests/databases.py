"""Moved to `devkit/databases.py` (shared with bench/); kept only for bench/bench_api.py,
which still imports it from here. Remove once that import names devkit."""

from devkit.databases import throwaway_database, with_database

__all__ = ["throwaway_database", "with_database"]
