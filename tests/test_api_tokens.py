"""Bearer tokens of the account API: `rating-engine api token add|list|revoke`, the file that
keeps only their hashes, constant-time checking, and no token in any log line."""

from __future__ import annotations

import hmac
import logging
import os
import stat

import pytest
from starlette.testclient import TestClient

from rating_engine import cli
from rating_engine.api import tokens as tokens_mod
from rating_engine.api.tokens import TokenStore

from .api_support import ApiHarness


def _add(path, capsys, *who: str) -> str:
    assert cli.main(["api", "token", "add", "--tokens", str(path), *who]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n", "stdout holds the token and nothing else"
    assert token not in err
    return token


def test_token_add_prints_the_token_on_stdout_only_and_stores_its_hash(tmp_path, capsys):
    path = tmp_path / "tokens.json"
    token = _add(path, capsys, "--tenant", "acme")
    assert token.startswith("rtk_")
    text = path.read_text()
    assert token not in text and token.split("_", 2)[2] not in text  # the secret may hold "_"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    grant = TokenStore(path).verify(token)
    assert grant is not None and (grant.scope, grant.tenant_id) == ("tenant", "acme")


def test_an_operator_token_acts_for_every_tenant(tmp_path, capsys):
    path = tmp_path / "tokens.json"
    token = _add(path, capsys, "--operator")
    grant = TokenStore(path).verify(token)
    assert grant is not None and grant.may_act_for("anyone") and grant.tenant_id is None


def test_token_add_needs_a_tenant_or_operator(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["api", "token", "add", "--tokens", str(tmp_path / "t.json")])
    assert exc.value.code == 2


def test_token_list_shows_ids_and_scopes_but_no_secret(tmp_path, capsys):
    path = tmp_path / "tokens.json"
    token = _add(path, capsys, "--tenant", "acme")
    _add(path, capsys, "--operator")
    assert cli.main(["api", "token", "list", "--tokens", str(path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split("\t") for line in out.splitlines()]
    assert sorted((r[1], r[2]) for r in rows) == [("operator", "*"), ("tenant", "acme")]
    assert token not in out and token[4:16] in out


def test_a_revoked_token_is_refused_by_a_running_api(deck, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tokens_mod, "RELOAD_CHECK_S", 0.0)
    h = ApiHarness(deck, tmp_path)
    client = TestClient(h.app)
    assert client.get("/v1/whoami", headers=h.auth(h.acme)).status_code == 200
    token_id = h.acme[4:16]
    assert cli.main(["api", "token", "revoke", "--tokens", str(h.tokens.path), token_id]) == 0
    assert client.get("/v1/whoami", headers=h.auth(h.acme)).status_code == 401
    assert cli.main(["api", "token", "revoke", "--tokens", str(h.tokens.path), token_id]) == 1


def test_tokens_are_compared_in_constant_time_known_or_not(tmp_path, monkeypatch):
    store = TokenStore(tmp_path / "tokens.json")
    token = store.add("tenant", "acme")
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_mod.hmac, "compare_digest", spy)
    assert store.verify(token) is not None
    assert store.verify("rtk_000000000000_guess") is None
    assert store.verify("garbage") is None
    assert len(calls) == 3


def test_no_token_reaches_a_log_line(deck, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    h = ApiHarness(deck, tmp_path)
    client = TestClient(h.app)
    h.fail_produce = True  # the failure path logs
    headers = {**h.auth(h.acme), "Idempotency-Key": "k"}
    client.post("/v1/tenants/acme/funds", json={"amount": "1", "currency": "USD"}, headers=headers)
    client.get("/v1/tenants/acme/account", headers=h.auth(h.acme[:-2] + "zz"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "producing add_funds" in text
    for token in (h.acme, h.globex, h.operator):
        assert token not in text and token[16:] not in text
    assert token[16:] not in repr(h.tokens.verify(h.acme))
