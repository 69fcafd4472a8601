"""Multi-row statements (``execute_values``) and inline NULLs: the same rows as one per row."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.store import MAX_VALUES_ROWS, execute_inline_nulls, execute_values

_TABLE = "CREATE TABLE t (k TEXT PRIMARY KEY, a INTEGER, b TEXT, n INTEGER NOT NULL)"
_HEAD = "INSERT INTO t (k, a, b, n)"
_ROW = "(?, ?, ?, ?)"
# An upsert whose outcome depends on the row already there: order matters.
_UPSERT_TAIL = (
    "ON CONFLICT (k) DO UPDATE SET a = COALESCE(excluded.a, t.a), b = excluded.b, "
    "n = t.n + excluded.n WHERE excluded.n >= t.n"
)


class Recording:
    """A connection that remembers each statement and its parameters."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.calls: list[tuple[str, Sequence[Any]]] = []

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        self.calls.append((sql, parameters))
        return self.conn.execute(sql, parameters)


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute(_TABLE)
    yield db
    db.close()


def _table(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return db.execute("SELECT rowid, k, a, b, n FROM t ORDER BY rowid").fetchall()


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["k0", "k1", "k2", "k3", "k4", "k5"]) | st.text(max_size=3),
        st.none() | st.integers(-5, 5),
        st.none() | st.text(max_size=3),
        st.integers(0, 4),
    ),
    max_size=600,
)


@given(rows_strategy, st.booleans())
def test_upserts_in_many_row_statements_equal_one_statement_per_row(
    rows: list[tuple[Any, ...]], inline_nulls: bool
) -> None:
    one = sqlite3.connect(":memory:")
    many = sqlite3.connect(":memory:")
    for db in (one, many):
        db.execute(_TABLE)
    expected = sum(one.execute(f"{_HEAD} VALUES {_ROW} {_UPSERT_TAIL}", r).rowcount for r in rows)
    recording = Recording(many)
    changed = execute_values(
        recording, _HEAD, _ROW, rows, _UPSERT_TAIL, key=lambda r: r[0], inline_nulls=inline_nulls
    )
    assert changed == expected
    assert _table(many) == _table(one)
    for sql, parameters in recording.calls:
        count = sql.split(" VALUES ")[1].split(" ON CONFLICT")[0].count("(")
        assert count <= MAX_VALUES_ROWS and count & (count - 1) == 0  # a power of two
        if inline_nulls:
            assert None not in parameters
    assert sum(len(p) for _, p in recording.calls) <= 4 * len(rows)


def test_a_repeated_key_starts_a_new_statement(conn: sqlite3.Connection) -> None:
    recording = Recording(conn)
    rows = [("a", 1, "x", 1), ("b", 2, "y", 1), ("a", None, "z", 2)]
    assert execute_values(recording, _HEAD, _ROW, rows, _UPSERT_TAIL, key=lambda r: r[0]) == 3
    assert [sql.count("(?, ?, ?, ?)") for sql, _ in recording.calls] == [2, 1]
    assert conn.execute("SELECT k, a, b, n FROM t ORDER BY k").fetchall() == [
        ("a", 1, "z", 3),
        ("b", 2, "y", 1),
    ]


def test_rows_go_in_power_of_two_statements_in_order(conn: sqlite3.Connection) -> None:
    recording = Recording(conn)
    rows = [(f"k{i:04}", i, None, 0) for i in range(MAX_VALUES_ROWS + 7)]
    assert execute_values(recording, _HEAD, _ROW, rows) == len(rows)
    sizes = [sql.count("(?, ?, ?, ?)") for sql, _ in recording.calls]
    assert sizes == [MAX_VALUES_ROWS, 4, 2, 1]
    assert [r[1] for r in _table(conn)] == [r[0] for r in rows]  # rowids follow the input


def test_inline_nulls_writes_null_into_the_statement(conn: sqlite3.Connection) -> None:
    recording = Recording(conn)
    rows = [("a", None, "x", 1), ("b", None, "y", 1), ("c", 3, None, 1)]
    execute_values(recording, _HEAD, _ROW, rows, inline_nulls=True)
    assert [(sql.split("VALUES ")[1], p) for sql, p in recording.calls] == [
        ("(?, NULL, ?, ?), (?, NULL, ?, ?)", ["a", "x", 1, "b", "y", 1]),
        ("(?, ?, NULL, ?)", ["c", 3, 1]),
    ]
    assert conn.execute("SELECT k, a, b FROM t ORDER BY k").fetchall() == [
        ("a", None, "x"),
        ("b", None, "y"),
        ("c", 3, None),
    ]


def test_execute_inline_nulls(conn: sqlite3.Connection) -> None:
    recording = Recording(conn)
    cursor = execute_inline_nulls(recording, f"{_HEAD} VALUES {_ROW}", ("a", None, None, 1))
    assert cursor.rowcount == 1
    assert recording.calls == [("INSERT INTO t (k, a, b, n) VALUES (?, NULL, NULL, ?)", ["a", 1])]
    execute_inline_nulls(recording, f"{_HEAD} VALUES {_ROW}", ("b", 2, "x", 1))
    assert recording.calls[-1] == (
        "INSERT INTO t (k, a, b, n) VALUES (?, ?, ?, ?)",
        ("b", 2, "x", 1),
    )
    with pytest.raises(ValueError, match="3 parameters for 4 placeholders"):
        execute_inline_nulls(recording, f"{_HEAD} VALUES {_ROW}", ("c", None, 1))
