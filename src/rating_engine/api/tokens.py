"""Bearer tokens of the account API: one tenant's admin, or the operator (every tenant).

A token is `rtk_<id>_<secret>`: `id` (12 hex digits) names its entry in the tokens file, and
the file keeps only the SHA-256 of the whole token, never the token. The secret is 32 random
bytes, so a plain hash is as good as a slow one here (nobody can guess a preimage), and it
costs a microsecond per request instead of the tens of milliseconds of a password hash.
The presented token's hash is compared with `hmac.compare_digest`, and an unknown id is
compared with a dummy hash all the same, so timing says nothing about either part.

The file is JSON, written whole to a temporary file and renamed (mode 0600), and re-read by
a running API when it changes, so `token revoke` takes effect within a second without a
restart. Tokens never appear in a log line, an error message or a `repr`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "rtk_"
OPERATOR = "operator"
TENANT = "tenant"
RELOAD_CHECK_S = 1.0
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


class TokenFileError(ValueError):
    """The tokens file cannot be read or written (a usage error, exit 2)."""


@dataclass(frozen=True)
class Grant:
    """What a verified token may do: every tenant (operator) or one tenant."""

    token_id: str
    scope: str
    tenant_id: str | None

    def may_act_for(self, tenant_id: str) -> bool:
        return self.scope == OPERATOR or self.tenant_id == tenant_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _split(token: str) -> str | None:
    """The id part of a well-formed token, else None."""
    if not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or len(token_id) != 12 or not secret:
        return None
    return token_id


class TokenStore:
    """The tokens file: add, list and revoke entries; verify a presented token."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        self._raw: bytes | None = None
        self._checked = 0.0
        self.reload(force=True)

    # ------------------------------------------------------------ file

    def reload(self, force: bool = False) -> None:
        """Re-read the file if it changed (looked at most once a second unless forced). The
        bytes are compared, not the mtime: two writes within one clock tick look alike."""
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_CHECK_S:
            return
        self._checked = now
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._entries, self._raw = {}, None
            return
        except OSError as exc:
            raise TokenFileError(
                f"cannot read the tokens file {self.path}: {exc.strerror}"
            ) from None
        if raw == self._raw:
            return
        try:
            doc = json.loads(raw)
            entries = {e["id"]: e for e in doc["tokens"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenFileError(f"cannot read the tokens file {self.path}: {exc}") from None
        self._entries, self._raw = entries, raw

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": 1, "tokens": sorted(self._entries.values(), key=lambda e: e["id"])}
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._raw = self.path.read_bytes()

    # ------------------------------------------------------------ management

    def add(self, scope: str, tenant_id: str | None = None, note: str | None = None) -> str:
        """Create a token and store its hash; returns the token (shown once, never stored)."""
        if scope not in (OPERATOR, TENANT):
            raise ValueError(f"unknown scope {scope!r}")
        if scope == TENANT and not tenant_id:
            raise ValueError("a tenant token needs a tenant id")
        self.reload(force=True)
        token_id = secrets.token_hex(6)
        while token_id in self._entries:
            token_id = secrets.token_hex(6)
        token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        self._entries[token_id] = {
            "id": token_id,
            "scope": scope,
            "tenant_id": tenant_id if scope == TENANT else None,
            "sha256": _digest(token),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "note": note,
        }
        self._write()
        return token

    def entries(self) -> list[dict[str, Any]]:
        """Every entry without its hash: id, scope, tenant, creation time, note."""
        self.reload(force=True)
        return [
            {k: v for k, v in e.items() if k != "sha256"}
            for e in sorted(self._entries.values(), key=lambda e: e["created_at"])
        ]

    def revoke(self, token_id: str) -> bool:
        """Remove an entry; False when there was none with that id."""
        self.reload(force=True)
        if self._entries.pop(token_id, None) is None:
            return False
        self._write()
        return True

    # ------------------------------------------------------------ checking

    def verify(self, token: str) -> Grant | None:
        """The grant of a presented token, or None; the same work whether or not it exists."""
        self.reload()
        token_id = _split(token)
        entry = self._entries.get(token_id) if token_id is not None else None
        expected = entry["sha256"] if entry is not None else _DUMMY_HASH
        if not hmac.compare_digest(_digest(token), expected) or entry is None:
            return None
        return Grant(entry["id"], entry["scope"], entry.get("tenant_id"))
