"""Holding DuckDB files open for a whole block, for a process that owns them (the demo).

Every `duckdb.connect(file)` builds a new database instance unless this process already
has one open for that file: 13-20 ms here even for a 5 MB file (a `:memory:` database
alone costs 13 ms), so the warehouse's short-lived connections (one per read or write, so
that other processes can open the file in between) cost ~35 opens, about 0.6 s, per
demo day. Inside `hold_duckdb_files`, each named file stays open read-write in this
process, and every connection resources/warehouse_backends.py opens to it is a cursor on
that instance instead (a connection of its own, with its own transactions and settings,
at no cost). What is read and written is unchanged: only who opens the file.

The price is exclusivity: while held, no other process can open the file, not even
read-only (the read API answers 503 until the block ends). So only a process that is the
files' sole user holds them: `marketing demo` does, around its runs; a Dagster deployment
never does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb

_HELD: dict[Path, duckdb.DuckDBPyConnection] = {}
_HELD_GUARD = threading.Lock()


def held_cursor(path: Path) -> duckdb.DuckDBPyConnection | None:
    """A new connection to `path`'s held instance, or None when the file is not held."""
    with _HELD_GUARD:
        holder = _HELD.get(path.resolve())
        return holder.cursor() if holder is not None else None


@contextmanager
def hold_duckdb_files(*paths: Path) -> Iterator[None]:
    """Open each file read-write for the block (waiting, like any writer, while another
    process has it) and close it at the end. Not reentrant for the same file."""
    # Imported here: the backend imports this module.
    from resources.warehouse_backends import _open_duckdb_waiting_for_lock as open_duckdb

    with ExitStack() as stack:
        for path in paths:
            key = path.resolve()
            with _HELD_GUARD:
                if key in _HELD:
                    raise RuntimeError(f"{path} is already held by this process")
            holder = open_duckdb(path, read_only=False)
            stack.callback(holder.close)
            with _HELD_GUARD:
                _HELD[key] = holder
            stack.callback(_release, key)
        yield


def _release(key: Path) -> None:
    with _HELD_GUARD:
        _HELD.pop(key, None)
