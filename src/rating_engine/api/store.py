"""The API's embedded store (SQLite): charges materialized from the `charges` topic, the
topic offsets they were read up to, and the answers given to each idempotency key.

SQLite because the questions are row lookups on one tenant (a period, a user, one page
of the newest first), answered from an index in microseconds, and because each batch of
records and its offsets commit together in one transaction: a restarted API resumes where
it stopped and never counts a record twice (a re-emitted charge has the same `charge_id` and
replaces itself). It is in the standard library and is one file (or memory). A columnar
engine such as DuckDB would win scans over millions of rows, which the usage report already
does with polars; here it would make every single-row insert a bulk-load problem.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
from dataclasses import dataclass
from typing import Iterable

import orjson

from ..core import parse_instant

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    charge_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT,
    start_us INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_by_tenant ON charges (tenant_id, start_us, charge_id);
CREATE INDEX IF NOT EXISTS charges_by_user ON charges (tenant_id, user_id, start_us, charge_id);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS answers (
    tenant_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
"""

MAX_PAGE = 500


class BadCursor(ValueError):
    """A `cursor` query parameter this store did not hand out."""


@dataclass(frozen=True)
class Answer:
    """What the API answered to one idempotency key, and for which request."""

    fingerprint: bytes
    status: int
    body: bytes


def encode_cursor(start_us: int, charge_id: str) -> str:
    raw = orjson.dumps([start_us, charge_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start_us, charge_id = orjson.loads(raw)
    except (ValueError, TypeError) as exc:
        raise BadCursor(str(exc)) from None
    if not isinstance(start_us, int) or not isinstance(charge_id, str):
        raise BadCursor("not a cursor")
    return start_us, charge_id


class Store:
    """One SQLite database (a file, or `:memory:`), used from the event loop and from the
    report's worker thread (one connection, serialised by a lock: each call is short)."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        self.bad_records = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ charges

    def offsets(self, topic: str) -> dict[int, int]:
        """The next offset to read per partition of `topic`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,)
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def add_charges(self, topic: str, records: Iterable[tuple[int, int, bytes | None]]) -> int:
        """Store `(partition, offset, value)` records of the charges topic and the offsets after
        them, in one transaction. A record that is not a charge is counted and skipped."""
        rows: list[tuple[str, str, str | None, int, bytes]] = []
        ends: dict[int, int] = {}
        for partition, offset, value in records:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
            row = _charge_row(value)
            if row is None:
                self.bad_records += 1
            else:
                rows.append(row)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO charges VALUES (?, ?, ?, ?, ?)", rows)
                self._db.executemany(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                    [(topic, p, o) for p, o in ends.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def charges(
        self,
        tenant_id: str,
        from_us: int | None = None,
        to_us: int | None = None,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[bytes], str | None]:
        """One page of a tenant's charges, newest call start first, and the next page's cursor."""
        where, args = _tenant_period(tenant_id, from_us, to_us)
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if cursor is not None:
            start_us, charge_id = decode_cursor(cursor)
            where.append("(start_us < ? OR (start_us = ? AND charge_id < ?))")
            args += [start_us, start_us, charge_id]
        limit = max(1, min(limit, MAX_PAGE))
        sql = (
            f"SELECT start_us, charge_id, record FROM charges WHERE {' AND '.join(where)} "
            "ORDER BY start_us DESC, charge_id DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][0], rows[-1][1]) if more else None
        return [bytes(r[2]) for r in rows], next_cursor

    def all_charges(self, tenant_id: str, from_us: int | None, to_us: int | None) -> list[bytes]:
        """Every charge of the tenant in the period, oldest first (for the usage report)."""
        where, args = _tenant_period(tenant_id, from_us, to_us)
        sql = f"SELECT record FROM charges WHERE {' AND '.join(where)} ORDER BY start_us"
        with self._lock:
            return [bytes(r[0]) for r in self._db.execute(sql, args)]

    def users(self, tenant_id: str) -> list[str]:
        """The users that appear in the tenant's charges (for the console's licence list)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT user_id FROM charges WHERE tenant_id = ? AND user_id IS NOT NULL"
                " ORDER BY user_id",
                (tenant_id,),
            ).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------ idempotency

    def answer(self, tenant_id: str, key: str) -> Answer | None:
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, status, body FROM answers"
                " WHERE tenant_id = ? AND idempotency_key = ?",
                (tenant_id, key),
            ).fetchone()
        return None if row is None else Answer(bytes(row[0]), int(row[1]), bytes(row[2]))

    def remember(self, tenant_id: str, key: str, answer: Answer) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                (tenant_id, key, answer.fingerprint, answer.status, answer.body),
            )


def _charge_row(value: bytes | None) -> tuple[str, str, str | None, int, bytes] | None:
    if value is None:
        return None
    try:
        rec = orjson.loads(value)
        charge_id, tenant_id, user_id = rec["charge_id"], rec["tenant_id"], rec.get("user_id")
        start_us = int(parse_instant(rec["start"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(charge_id, str) or not isinstance(tenant_id, str):
        return None
    if user_id is not None and not isinstance(user_id, str):
        user_id = None
    return charge_id, tenant_id, user_id, start_us, value


def _tenant_period(
    tenant_id: str, from_us: int | None, to_us: int | None
) -> tuple[list[str], list[str | int]]:
    """The WHERE terms and arguments of one tenant's charges that started in [from, to)."""
    where: list[str] = ["tenant_id = ?"]
    args: list[str | int] = [tenant_id]
    if from_us is not None:
        where.append("start_us >= ?")
        args.append(from_us)
    if to_us is not None:
        where.append("start_us < ?")
        args.append(to_us)
    return where, args
