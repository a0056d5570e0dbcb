"""The account API over HTTP (docs/api.md), one test per endpoint and per error, on the app
`rating-engine api` serves with in-memory parts (`api_support.ApiHarness`)."""

from __future__ import annotations

import io
import zipfile

import orjson
import pytest
from starlette.testclient import TestClient

from rating_engine import core

from .api_support import ApiHarness
from .kafka_support import REPO

PROBLEM = "application/problem+json"


@pytest.fixture
def h(deck, tmp_path) -> ApiHarness:
    return ApiHarness(deck, tmp_path)


@pytest.fixture
def client(h) -> TestClient:
    return TestClient(h.app)


def _problem(resp, status: int, reason: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["status"] == status and body["reason"] == reason, body
    assert body["type"] == f"urn:rating-engine:problem:{reason}"
    return body


def _cmd(client, h, method: str, path: str, body=None, key: str | None = "k1", token=None):
    headers = h.auth(token or h.acme)
    if key is not None:
        headers["Idempotency-Key"] = key
    content = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
    return client.request(method, path, content=content, headers=headers)


# ------------------------------------------------------------------ health, whoami, tenants


def test_health_needs_no_token_and_says_whether_views_are_read(client, h):
    assert client.get("/v1/health").json() == {
        "status": "ok",
        "tenants": 1,
        "charges_bad_records": 1,
    }
    h.views.ready.clear()
    assert client.get("/v1/health").json()["status"] == "starting"


def test_whoami_names_the_tokens_scope(client, h):
    tenant = client.get("/v1/whoami", headers=h.auth(h.acme)).json()
    assert (tenant["scope"], tenant["tenant_id"]) == ("tenant", "acme")
    operator = client.get("/v1/whoami", headers=h.auth(h.operator)).json()
    assert (operator["scope"], operator["tenant_id"]) == ("operator", None)


def test_no_token_is_401_with_a_bearer_challenge(client):
    resp = client.get("/v1/tenants/acme/account")
    _problem(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == 'Bearer realm="rating-engine"'


@pytest.mark.parametrize(
    "header",
    ["Bearer rtk_000000000000_nope", "Bearer ", "Basic dXNlcjpwYXNz", "rtk_x", "Bearer a b"],
)
def test_a_token_that_is_not_valid_is_401(client, header):
    resp = client.get("/v1/tenants/acme/account", headers={"Authorization": header})
    _problem(resp, 401, "unauthorized")
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_a_tampered_token_is_401(client, h):
    _problem(client.get("/v1/whoami", headers=h.auth(h.acme[:-1] + "x")), 401, "unauthorized")


def test_tenant_list_is_the_operators(client, h):
    assert client.get("/v1/tenants", headers=h.auth(h.operator)).json() == {"tenants": ["acme"]}
    _problem(client.get("/v1/tenants", headers=h.auth(h.acme)), 403, "forbidden")


# ------------------------------------------------------------------ account


def test_account_is_the_latest_view_as_published(client, h):
    resp = client.get("/v1/tenants/acme/account", headers=h.auth(h.acme))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["cache-control"] == "no-store"
    assert resp.content == h.views.get("acme")
    view = resp.json()
    assert view["balance"] == "5.0000" and view["currency"] == "USD"
    assert view["pools"][0]["used_seconds"] == 60


def test_the_operator_reads_every_tenant(client, h):
    assert client.get("/v1/tenants/acme/account", headers=h.auth(h.operator)).status_code == 200


def test_another_tenants_token_is_403_and_reads_nothing(client, h):
    body = _problem(
        client.get("/v1/tenants/acme/account", headers=h.auth(h.globex)), 403, "forbidden"
    )
    assert "balance" not in body


def test_a_tenant_without_a_view_is_404(client, h):
    _problem(client.get("/v1/tenants/globex/account", headers=h.auth(h.globex)), 404, "not_found")


def test_account_before_the_views_are_read_is_503(client, h):
    h.views.ready.clear()
    resp = client.get("/v1/tenants/acme/account", headers=h.auth(h.acme))
    _problem(resp, 503, "not_ready")
    assert resp.headers["retry-after"] == "1"


def test_a_view_without_currency_gets_the_decks(h):
    h.views.put("x", core.account_view(_state(h, "x")))
    assert orjson.loads(h.views.get("x"))["currency"] == "USD"


def _state(h, tenant: str) -> bytes:
    engine = core.Engine(h.deck)
    engine.feed(
        orjson.dumps(
            {
                "type": "add_funds",
                "tenant_id": tenant,
                "command_id": "f",
                "ts": "2026-11-24T10:00:00Z",
                "amount": "1",
                "currency": "USD",
            }
        ),
        1,
    )
    return engine.tenant_state(tenant)


# ------------------------------------------------------------------ charges


def _charges(client, h, query: str = "", token=None):
    return client.get(f"/v1/tenants/acme/charges{query}", headers=h.auth(token or h.acme))


def test_charges_are_the_tenants_newest_first(client, h):
    body = _charges(client, h).json()
    assert [c["call_id"] for c in body["items"]] == ["c3", "c2", "c1"]
    assert body["next_cursor"] is None


def test_charges_page_by_cursor(client, h):
    first = _charges(client, h, "?limit=2").json()
    assert [c["call_id"] for c in first["items"]] == ["c3", "c2"]
    rest = _charges(client, h, f"?limit=2&cursor={first['next_cursor']}").json()
    assert [c["call_id"] for c in rest["items"]] == ["c1"] and rest["next_cursor"] is None


def test_charges_filter_by_period_and_user(client, h):
    november = _charges(client, h, "?from=2026-11-01&to=2026-12-01").json()
    assert [c["call_id"] for c in november["items"]] == ["c2", "c1"]
    instant = _charges(client, h, "?from=2026-11-24T10:00:10.001Z").json()
    assert [c["call_id"] for c in instant["items"]] == ["c3", "c2"]
    bob = _charges(client, h, "?user=bob").json()
    assert [c["call_id"] for c in bob["items"]] == ["c2"]


@pytest.mark.parametrize(
    "query, reason",
    [
        ("?from=yesterday", "bad_field:from"),
        ("?to=2026-13-01", "bad_field:to"),
        ("?limit=0", "bad_field:limit"),
        ("?limit=501", "bad_field:limit"),
        ("?limit=ten", "bad_field:limit"),
        ("?cursor=!!", "bad_field:cursor"),
    ],
)
def test_a_bad_charges_query_is_400(client, h, query, reason):
    _problem(_charges(client, h, query), 400, reason)


def test_another_tenants_charges_are_403(client, h):
    _problem(_charges(client, h, token=h.globex), 403, "forbidden")


def test_users_are_the_licensed_and_those_seen_in_charges(client, h):
    body = client.get("/v1/tenants/acme/users", headers=h.auth(h.acme)).json()
    assert body == {
        "users": [{"user_id": "ann", "licensed": True}, {"user_id": "bob", "licensed": False}]
    }


def test_the_usage_report_of_a_period_is_an_xlsx_workbook(client, h):
    resp = client.get(
        "/v1/tenants/acme/report.xlsx?from=2026-11-01&to=2026-12-01", headers=h.auth(h.acme)
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="usage-acme.xlsx"' in resp.headers["content-disposition"]
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(resp.content), read_only=True)
    cells = [
        str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row
    ]
    assert "acme" in cells and "globex" not in cells
    assert zipfile.is_zipfile(io.BytesIO(resp.content))


def test_a_bad_report_period_is_400(client, h):
    resp = client.get("/v1/tenants/acme/report.xlsx?from=soon", headers=h.auth(h.acme))
    _problem(resp, 400, "bad_field:from")


# ------------------------------------------------------------------ commands


def test_add_funds_is_202_and_produces_the_command_keyed_by_tenant(client, h):
    resp = _cmd(client, h, "POST", "/v1/tenants/acme/funds", {"amount": "5.00", "currency": "USD"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "accepted" and body["command_id"] == "k1"
    assert body["type"] == "add_funds" and body["tenant_id"] == "acme"
    ((tenant, payload),) = h.produced
    cmd = orjson.loads(payload)
    assert tenant == "acme"
    assert cmd == {
        "type": "add_funds",
        "tenant_id": "acme",
        "command_id": "k1",
        "ts": body["ts"],
        "amount": "5.00",
        "currency": "USD",
    }
    assert core.parse_input(h.deck, payload)[:2] == ("add_funds", True)


def test_the_same_idempotency_key_answers_the_same_and_produces_nothing_new(client, h):
    body = {"amount": "5.00", "currency": "USD"}
    first = _cmd(client, h, "POST", "/v1/tenants/acme/funds", body)
    again = _cmd(client, h, "POST", "/v1/tenants/acme/funds", body)
    assert again.status_code == 202 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert len(h.produced) == 1


def test_a_used_key_for_another_request_is_422_and_produces_nothing(client, h):
    _cmd(client, h, "POST", "/v1/tenants/acme/funds", {"amount": "5.00", "currency": "USD"})
    other = _cmd(client, h, "POST", "/v1/tenants/acme/funds", {"amount": "6.00", "currency": "USD"})
    _problem(other, 422, "idempotency_key_reused")
    assert len(h.produced) == 1


def test_the_same_key_of_two_tenants_is_two_commands(client, h):
    body = {"amount": "1", "currency": "USD"}
    _cmd(client, h, "POST", "/v1/tenants/acme/funds", body)
    _cmd(client, h, "POST", "/v1/tenants/globex/funds", body, token=h.globex)
    assert [t for t, _ in h.produced] == ["acme", "globex"]


def test_a_command_without_an_idempotency_key_is_400(client, h):
    resp = _cmd(
        client, h, "POST", "/v1/tenants/acme/funds", {"amount": "1", "currency": "USD"}, key=None
    )
    _problem(resp, 400, "missing_field:command_id")
    assert h.produced == []


def test_an_idempotency_key_too_long_or_empty_is_400(client, h):
    body = {"amount": "1", "currency": "USD"}
    _problem(
        _cmd(client, h, "POST", "/v1/tenants/acme/funds", body, key="k" * 201),
        400,
        "bad_field:command_id",
    )
    _problem(
        _cmd(client, h, "POST", "/v1/tenants/acme/funds", body, key=""), 400, "bad_field:command_id"
    )
    assert h.produced == []


# Each bad body gives the reason the worker gives the same command on `accounts`.
BAD_FUNDS = [
    (b"{", 400, "invalid_json"),
    (b"[1]", 400, "not_an_object"),
    ({"currency": "USD"}, 422, "missing_field:amount"),
    ({"amount": "5"}, 422, "missing_field:currency"),
    ({"amount": 1.5, "currency": "USD"}, 422, "bad_field:amount"),
    ({"amount": "0", "currency": "USD"}, 422, "bad_field:amount"),
    ({"amount": "-1", "currency": "USD"}, 422, "bad_field:amount"),
    ({"amount": "1.00001", "currency": "USD"}, 422, "bad_field:amount"),
    ({"amount": "1", "currency": ""}, 422, "bad_field:currency"),
    ({"amount": "1", "currency": "EUR"}, 422, "currency_mismatch"),
]


@pytest.mark.parametrize("body, status, reason", BAD_FUNDS)
def test_bad_funds_are_refused_with_the_workers_reason_and_produce_nothing(
    client, h, body, status, reason
):
    _problem(_cmd(client, h, "POST", "/v1/tenants/acme/funds", body), status, reason)
    assert h.produced == []
    if isinstance(body, dict):  # the worker's core, on the command the API would have sent
        cmd = {
            "type": "add_funds",
            "tenant_id": "acme",
            "command_id": "k1",
            "ts": "2026-11-24T10:00:00Z",
            **body,
        }
        ((topic, record),) = core.simulate_lines(h.deck, [orjson.dumps(cmd)])
        assert (topic, orjson.loads(record)["reason"]) == ("dead-letters", reason)


def test_a_refused_request_is_not_remembered_under_its_key(client, h):
    _cmd(client, h, "POST", "/v1/tenants/acme/funds", {"amount": "0", "currency": "USD"})
    fixed = _cmd(client, h, "POST", "/v1/tenants/acme/funds", {"amount": "2", "currency": "USD"})
    assert fixed.status_code == 202 and len(h.produced) == 1


def test_a_command_the_broker_does_not_take_is_503_and_can_be_retried(client, h):
    h.fail_produce = True
    body = {"amount": "1", "currency": "USD"}
    _problem(_cmd(client, h, "POST", "/v1/tenants/acme/funds", body), 503, "unavailable")
    h.fail_produce = False
    assert _cmd(client, h, "POST", "/v1/tenants/acme/funds", body).status_code == 202
    assert len(h.produced) == 1


def test_another_tenants_token_cannot_write_and_nothing_is_produced(client, h):
    resp = _cmd(
        client,
        h,
        "POST",
        "/v1/tenants/acme/funds",
        {"amount": "1", "currency": "USD"},
        token=h.globex,
    )
    _problem(resp, 403, "forbidden")
    assert h.produced == []


def test_auto_recharge_is_set_by_put(client, h):
    body = {"enabled": True, "trigger_amount": "10", "recharge_amount": 50}
    assert _cmd(client, h, "PUT", "/v1/tenants/acme/auto-recharge", body).status_code == 202
    cmd = orjson.loads(h.produced[0][1])
    assert (cmd["type"], cmd["enabled"], cmd["trigger_amount"], cmd["recharge_amount"]) == (
        "set_auto_recharge",
        True,
        "10",
        50,
    )


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"enabled": "yes", "trigger_amount": "1", "recharge_amount": "1"}, "bad_field:enabled"),
        (
            {"enabled": True, "trigger_amount": "-1", "recharge_amount": "1"},
            "bad_field:trigger_amount",
        ),
        (
            {"enabled": True, "trigger_amount": "1", "recharge_amount": "0"},
            "bad_field:recharge_amount",
        ),
        ({"enabled": True, "trigger_amount": "1"}, "missing_field:recharge_amount"),
    ],
)
def test_bad_auto_recharge_is_422(client, h, body, reason):
    _problem(_cmd(client, h, "PUT", "/v1/tenants/acme/auto-recharge", body), 422, reason)
    assert h.produced == []


def test_a_licence_is_assigned_by_put_and_removed_by_delete(client, h):
    assert (
        _cmd(client, h, "PUT", "/v1/tenants/acme/licences/bob@acme.com", key="a").status_code == 202
    )
    assert (
        _cmd(client, h, "DELETE", "/v1/tenants/acme/licences/bob@acme.com", key="b").status_code
        == 202
    )
    cmds = [orjson.loads(p) for _, p in h.produced]
    assert [(c["type"], c["user_id"], c["command_id"]) for c in cmds] == [
        ("assign_licence", "bob@acme.com", "a"),
        ("remove_licence", "bob@acme.com", "b"),
    ]


def test_a_pool_is_set_by_put(client, h):
    assert (
        _cmd(
            client,
            h,
            "PUT",
            "/v1/tenants/acme/pools/domestic",
            {"country": "US", "minutes": 500},
            key="a",
        ).status_code
        == 202
    )
    assert (
        _cmd(
            client, h, "PUT", "/v1/tenants/acme/pools/conferencing", {"minutes": 100}, key="b"
        ).status_code
        == 202
    )
    cmds = [orjson.loads(p) for _, p in h.produced]
    assert [(c["plan"], c["country"], c["minutes"]) for c in cmds] == [
        ("domestic", "US", 500),
        ("conferencing", None, 100),
    ]


@pytest.mark.parametrize(
    "plan, body, reason",
    [
        ("weekly", {"country": "US", "minutes": 1}, "bad_field:plan"),
        ("domestic", {"country": "US", "minutes": -1}, "bad_field:minutes"),
        ("domestic", {"country": "US", "minutes": 1.5}, "bad_field:minutes"),
        ("domestic", {"minutes": 1}, "missing_field:country"),
        ("domestic", {"country": "US"}, "missing_field:minutes"),
    ],
)
def test_bad_pools_are_422(client, h, plan, body, reason):
    _problem(_cmd(client, h, "PUT", f"/v1/tenants/acme/pools/{plan}", body), 422, reason)
    assert h.produced == []


# ------------------------------------------------------------------ documents, console


def test_an_unknown_path_is_a_404_problem(client, h):
    _problem(client.get("/v1/nothing", headers=h.auth(h.acme)), 404, "not_found")


def test_a_method_not_served_is_a_405_problem(client, h):
    _problem(
        client.delete("/v1/tenants/acme/account", headers=h.auth(h.acme)), 405, "method_not_allowed"
    )


def test_the_served_openapi_document_is_the_committed_one(client):
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.content == (REPO / "docs" / "openapi.json").read_bytes()


def test_the_console_is_served_with_a_self_only_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and "<h1>Account console</h1>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/console/console.js").status_code == 200
    assert client.get("/console/console.css").status_code == 200


def test_the_console_names_no_external_resource():
    static = REPO / "src" / "rating_engine" / "api" / "static"
    for path in static.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
