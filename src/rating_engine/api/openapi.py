"""The account API's OpenAPI 3.1 document, written by hand.

Written rather than generated from request models on purpose: requests are validated by the
core (`commands.py`), not by a schema library, so the document describes what the core
accepts and the reason codes it gives. The app serves it at `/openapi.json`;
`docs/openapi.json` is the same document, committed (a test keeps the two equal), and
schemathesis checks the running app against it.
"""

from __future__ import annotations

from typing import Any

import orjson

MONEY = {
    "type": "string",
    "pattern": r"^-?[0-9]+\.[0-9]{4}$",
    "description": "an exact amount, 4 decimal places",
    "examples": ["5.0000"],
}
INSTANT = {
    "type": "string",
    "pattern": r"^[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$",
    "description": "UTC, floored to the millisecond",
    "examples": ["2026-11-24T10:00:00.000Z"],
}
SECONDS = {"type": "number", "description": "exact, or rounded half-up to 3 places"}
AMOUNT_IN = {
    "description": "a positive decimal with at most 4 places, as a string or a JSON integer "
    "(a JSON float is `bad_field`)",
    "oneOf": [
        {"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,4})?$"},
        {"type": "integer", "minimum": 0, "maximum": 1_000_000_000_000},
    ],
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
    }


SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `reason` is the dead-letter reason code the "
        "worker gives the same command (or the API's own code: unauthorized, forbidden, "
        "not_found, method_not_allowed, idempotency_key_reused, not_ready, unavailable)",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "reason": {"type": "string"},
        },
        "required": ["type", "title", "status", "reason"],
    },
    "Accepted": _obj(
        {
            "status": {"const": "accepted"},
            "command_id": {"type": "string"},
            "tenant_id": {"type": "string"},
            "type": {"type": "string"},
            "ts": INSTANT,
        }
    ),
    "Lot": _obj(
        {
            "lot_id": {"type": "string"},
            "purchased_at": INSTANT,
            "expires_at": INSTANT,
            "remaining": MONEY,
            "expired": {"type": "boolean"},
        }
    ),
    "Pool": _obj(
        {
            "pool": {"type": "string", "examples": ["domestic:US", "conferencing"]},
            "month": {"type": "string", "pattern": r"^[0-9]{4,}-[0-9]{2}$"},
            "allowance_seconds": SECONDS,
            "used_seconds": SECONDS,
            "remaining_seconds": SECONDS,
            "live_calls": {"type": "integer", "minimum": 0},
        }
    ),
    "AutoRecharge": _obj(
        {
            "enabled": {"type": "boolean"},
            "trigger_amount": _nullable(MONEY),
            "recharge_amount": _nullable(MONEY),
            "state": {"enum": ["off", "idle", "outstanding", "backing_off"]},
            "request_id": _nullable({"type": "string"}),
            "request_amount": _nullable(MONEY),
            "backoff_until": _nullable(INSTANT),
        }
    ),
    "LiveCall": _obj(
        {
            "call_id": {"type": "string"},
            "user_id": _nullable({"type": "string"}),
            "kind": {"type": "string"},
            "started_at": INSTANT,
            "pool": _nullable({"type": "string"}),
            "held": MONEY,
        }
    ),
    "AccountView": _obj(
        {
            "tenant_id": {"type": "string"},
            "currency": _nullable({"type": "string"}),
            "balance": MONEY,
            "held": MONEY,
            "available": MONEY,
            "lots": {"type": "array", "items": {"$ref": "#/components/schemas/Lot"}},
            "pools": {"type": "array", "items": {"$ref": "#/components/schemas/Pool"}},
            "auto_recharge": {"$ref": "#/components/schemas/AutoRecharge"},
            "licensed_users": {"type": "array", "items": {"type": "string"}},
            "live_calls": {"type": "array", "items": {"$ref": "#/components/schemas/LiveCall"}},
            "as_of": _nullable(INSTANT),
        }
    ),
    "Charge": {
        "type": "object",
        "description": "a charges record as the worker published it (contracts.md section 4)",
        "properties": {
            "charge_id": {"type": "string"},
            "call_id": {"type": "string"},
            "tenant_id": {"type": "string"},
            "user_id": _nullable({"type": "string"}),
            "start": INSTANT,
            "end": INSTANT,
            "charge": MONEY,
        },
        "required": ["charge_id", "tenant_id", "start", "charge"],
    },
    "ChargesPage": _obj(
        {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Charge"}},
            "next_cursor": _nullable({"type": "string"}),
        }
    ),
    "Users": _obj(
        {
            "users": {
                "type": "array",
                "items": _obj({"user_id": {"type": "string"}, "licensed": {"type": "boolean"}}),
            }
        }
    ),
    "WhoAmI": _obj(
        {
            "token_id": {"type": "string"},
            "scope": {"enum": ["operator", "tenant"]},
            "tenant_id": _nullable({"type": "string"}),
        }
    ),
    "Tenants": _obj({"tenants": {"type": "array", "items": {"type": "string"}}}),
    "Health": _obj(
        {
            "status": {"enum": ["ok", "starting"]},
            "tenants": {"type": "integer", "minimum": 0},
            "charges_bad_records": {"type": "integer", "minimum": 0},
        }
    ),
    "FundsRequest": {
        "type": "object",
        "properties": {"amount": AMOUNT_IN, "currency": {"type": "string", "minLength": 1}},
        "required": ["amount", "currency"],
    },
    "AutoRechargeRequest": {
        "type": "object",
        "description": "while `enabled` is false, a null amount keeps the previous setting",
        "properties": {
            "enabled": {"type": "boolean"},
            "trigger_amount": {
                "description": "≥ 0",
                "oneOf": [*AMOUNT_IN["oneOf"], {"type": "null"}],
            },
            "recharge_amount": {
                "description": "> 0",
                "oneOf": [*AMOUNT_IN["oneOf"], {"type": "null"}],
            },
        },
        "required": ["enabled", "trigger_amount", "recharge_amount"],
    },
    "PoolRequest": {
        "type": "object",
        "description": "`country` (ISO alpha-2 of the users) for domestic and international "
        "plans; null or absent for conferencing",
        "properties": {
            "country": _nullable({"type": "string", "minLength": 1}),
            "minutes": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615},
        },
        "required": ["minutes"],
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


TENANT = {
    "name": "tenant_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "becomes the command's `command_id`: the same key again answers the same "
    "and produces nothing new (a different request under a used key is 422 "
    "idempotency_key_reused)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
AUTH_ERRORS = {
    "401": _problem("no token, or not a valid one"),
    "403": _problem("the token is another tenant's"),
}


def _command(summary: str, body: str | None, extra_params: list[dict[str, Any]]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [TENANT, *extra_params, IDEMPOTENCY_KEY],
        "responses": {
            "202": {
                "description": "accepted and produced to `accounts`; the worker applies it "
                "and the account view follows",
                "content": {"application/json": {"schema": _ref("Accepted")}},
            },
            "400": _problem(
                "the body is not a JSON object, or the Idempotency-Key is missing "
                "or too long (`invalid_json`, `not_an_object`, "
                "`missing_field:command_id`, `bad_field:command_id`)"
            ),
            **AUTH_ERRORS,
            "422": _problem(
                "the core refused a field (`missing_field:<f>`, `bad_field:<f>`, "
                "`currency_mismatch`), or the key was used for another request"
            ),
            "503": _problem("the broker did not take the command; nothing was produced"),
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return op


PERIOD = [
    {
        "name": "from",
        "in": "query",
        "description": "calls that started at or after this UTC date (YYYY-MM-DD) or ISO 8601 "
        "instant",
        "schema": {"type": "string"},
    },
    {
        "name": "to",
        "in": "query",
        "description": "calls that started before this date or instant",
        "schema": {"type": "string"},
    },
]


def document() -> dict[str, Any]:
    """The OpenAPI document of the account API."""
    user = {"name": "user_id", "in": "path", "required": True, "schema": TENANT["schema"]}
    plan = {
        "name": "plan",
        "in": "path",
        "required": True,
        "schema": {"enum": ["domestic", "international", "conferencing"]},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rating-engine account API",
            "version": "1",
            "description": "Tenant admins read their account and charges and send account "
            "commands; every command is validated by the decision core and produced to the "
            "`accounts` topic. See docs/api.md.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/health": {
                "get": {
                    "summary": "liveness, and whether the views are read up to date",
                    "security": [],
                    "responses": {"200": _ok("the process runs", "Health")},
                }
            },
            "/v1/whoami": {
                "get": {
                    "summary": "what the presented token may do",
                    "responses": {"200": _ok("the token's scope", "WhoAmI"), **AUTH_ERRORS},
                }
            },
            "/v1/tenants": {
                "get": {
                    "summary": "the tenants with an account view (operator only)",
                    "responses": {"200": _ok("tenant ids", "Tenants"), **AUTH_ERRORS},
                }
            },
            "/v1/tenants/{tenant_id}/account": {
                "get": {
                    "summary": "the tenant's account view (the latest on `account-views`)",
                    "parameters": [TENANT],
                    "responses": {
                        "200": _ok("the account view", "AccountView"),
                        **AUTH_ERRORS,
                        "404": _problem("no account view for this tenant (yet)"),
                        "503": _problem("the views are still being read at start-up"),
                    },
                }
            },
            "/v1/tenants/{tenant_id}/charges": {
                "get": {
                    "summary": "the tenant's charges, newest call start first, a page at a time",
                    "parameters": [
                        TENANT,
                        *PERIOD,
                        {"name": "user", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": "`next_cursor` of the previous page",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _ok("one page", "ChargesPage"),
                        "400": _problem("a query parameter does not parse (`bad_field:<name>`)"),
                        **AUTH_ERRORS,
                    },
                }
            },
            "/v1/tenants/{tenant_id}/users": {
                "get": {
                    "summary": "users seen in the tenant's charges or holding a licence",
                    "parameters": [TENANT],
                    "responses": {"200": _ok("users", "Users"), **AUTH_ERRORS},
                }
            },
            "/v1/tenants/{tenant_id}/report.xlsx": {
                "get": {
                    "summary": "the PSTN usage report (`rating-engine report`) of the period",
                    "parameters": [TENANT, *PERIOD],
                    "responses": {
                        "200": {
                            "description": "the workbook",
                            "content": {
                                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        },
                        "400": _problem("a query parameter does not parse (`bad_field:<name>`)"),
                        **AUTH_ERRORS,
                    },
                }
            },
            "/v1/tenants/{tenant_id}/funds": {
                "post": _command(
                    "add funds (`add_funds`): a new lot for 12 months", "FundsRequest", []
                )
            },
            "/v1/tenants/{tenant_id}/auto-recharge": {
                "put": _command(
                    "set auto-recharge (`set_auto_recharge`)", "AutoRechargeRequest", []
                )
            },
            "/v1/tenants/{tenant_id}/licences/{user_id}": {
                "put": _command("assign the Communications Credits licence", None, [user]),
                "delete": _command("remove the licence", None, [user]),
            },
            "/v1/tenants/{tenant_id}/pools/{plan}": {
                "put": _command("set a monthly pool (`set_pool`)", "PoolRequest", [plan])
            },
        },
    }


def document_bytes() -> bytes:
    """The document as served and committed: sorted keys, 2-space indent, final newline."""
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
