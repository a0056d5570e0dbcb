"""`rating-engine api`: the account API and console under uvicorn, and `api token …`.

    rating-engine api --rates DECK.csv [--listen 127.0.0.1:8080] [--tokens FILE]
        [--store FILE] [--topic-prefix P] [broker flags]
    rating-engine api token add --tokens FILE (--tenant ID | --operator) [--note TEXT]
    rating-engine api token list --tokens FILE
    rating-engine api token revoke --tokens FILE ID

Every flag also reads `RATING_ENGINE_<FLAG>` (`RATING_ENGINE_API_LISTEN`,
`RATING_ENGINE_API_TOKENS`, `RATING_ENGINE_API_STORE`, and the worker's `RATING_ENGINE_RATES`,
`RATING_ENGINE_TOPIC_PREFIX` and broker variables); a flag wins. `token add` prints the
new token on stdout and nowhere else; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from ..stream import connection

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_TOKENS = "var/api/tokens.json"
DEFAULT_STORE = "var/api/store.sqlite"

log = logging.getLogger("rating_engine.api")


def add_arguments(
    api: argparse.ArgumentParser, env: Callable[[str, str | None], str | None]
) -> None:
    """The `api` command's flags and its `token` subcommands."""
    api.add_argument(
        "--listen",
        default=env("api_listen", DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN}; RATING_ENGINE_API_LISTEN)",
    )
    api.add_argument(
        "--tokens",
        default=env("api_tokens", DEFAULT_TOKENS),
        metavar="FILE",
        help=f"the hashed tokens file (default {DEFAULT_TOKENS}; RATING_ENGINE_API_TOKENS)",
    )
    api.add_argument(
        "--store",
        default=env("api_store", DEFAULT_STORE),
        metavar="FILE",
        help=f"SQLite file of the materialized charges and idempotency answers "
        f"(default {DEFAULT_STORE}; ':memory:' keeps none; RATING_ENGINE_API_STORE)",
    )
    api.add_argument(
        "--rates",
        default=env("rates", None),
        metavar="DECK.csv",
        help="the worker's deck: its currency is what add_funds must name (RATING_ENGINE_RATES)",
    )
    connection.add_arguments(api)
    api.add_argument("--topic-prefix", default=env("topic_prefix", ""))
    api.add_argument(
        "--access-log", action="store_true", help="log every request line (never its headers)"
    )
    sub = api.add_subparsers(dest="api_command")
    token = sub.add_parser("token", help="manage the API's bearer tokens")
    verbs = token.add_subparsers(dest="token_command", required=True)

    def tokens_flag(p: argparse.ArgumentParser) -> None:
        # SUPPRESS: a --tokens given before `token` is kept, not reset to the default
        p.add_argument("--tokens", default=argparse.SUPPRESS, metavar="FILE")

    add = verbs.add_parser("add", help="create a token; prints it on stdout, once")
    tokens_flag(add)
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", metavar="ID", help="a tenant admin's token")
    who.add_argument("--operator", action="store_true", help="the operator's: every tenant")
    add.add_argument("--note", help="a label shown by `token list`")
    listing = verbs.add_parser("list", help="the tokens' ids, scopes and tenants (no secrets)")
    tokens_flag(listing)
    revoke = verbs.add_parser("revoke", help="delete a token by its id")
    tokens_flag(revoke)
    revoke.add_argument("token_id", metavar="ID")


def run(args: argparse.Namespace) -> int:
    """Dispatch `api` and `api token …`."""
    from ..offline.files import CliError
    from .tokens import OPERATOR, TENANT, TokenFileError, TokenStore

    try:
        if args.api_command == "token":
            store = TokenStore(args.tokens)
            if args.token_command == "add":
                scope = OPERATOR if args.operator else TENANT
                token = store.add(scope, args.tenant, args.note)
                print(token)
                print(
                    f"rating-engine: token {token[4:16]} ({scope}"
                    f"{'' if args.operator else ' ' + args.tenant}) added to {args.tokens}",
                    file=sys.stderr,
                )
                return 0
            if args.token_command == "list":
                for e in store.entries():
                    tenant = e["tenant_id"] or "*"
                    note = e.get("note") or ""
                    print(f"{e['id']}\t{e['scope']}\t{tenant}\t{e['created_at']}\t{note}")
                return 0
            if not store.revoke(args.token_id):
                print(f"rating-engine: no token {args.token_id} in {args.tokens}", file=sys.stderr)
                return 1
            print(f"rating-engine: token {args.token_id} revoked", file=sys.stderr)
            return 0
        return serve(args)
    except TokenFileError as exc:
        raise CliError(str(exc)) from None


def _listen(text: str) -> tuple[str, int]:
    from ..offline.files import CliError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise CliError(f"--listen {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def serve(args: argparse.Namespace) -> int:
    """Read the views and charges, serve the API and console until SIGINT/SIGTERM."""
    import uvicorn

    from ..core import DeckError, load_deck
    from ..offline.files import CliError
    from .app import create_app
    from .broker import Broker, Views
    from .store import Store
    from .tokens import TokenStore

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.rates:
        raise CliError("api needs --rates (or RATING_ENGINE_RATES): the deck's currency")
    try:
        deck = load_deck(args.rates)
    except DeckError as exc:
        raise CliError(str(exc)) from None
    host, port = _listen(args.listen)
    try:
        settings = connection.from_args(args)
    except connection.SettingsError as exc:
        raise CliError(str(exc)) from None
    if args.store != ":memory:":
        Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.store)
    tokens = TokenStore(args.tokens)
    views = Views(deck.currency)
    broker = Broker(settings, args.topic_prefix, views, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await broker.start()
        log.info(
            "account API and console on http://%s:%d/ (topics %s*, tokens %s)",
            host,
            port,
            args.topic_prefix,
            args.tokens,
        )
        try:
            yield
        finally:
            await broker.stop()
            store.close()

    app = create_app(deck, views, store, tokens, broker.produce, lifespan=lifespan)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=args.access_log,
        log_level="info",
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 2
