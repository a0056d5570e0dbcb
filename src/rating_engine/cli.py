"""`rating-engine` command line: rate, simulate, worker, report.

Exit codes: 0 done (bad input lines are reported, not fatal), 2 the deck or
the command line is invalid, a file can't be opened or a `rate` process
failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .api.server import add_arguments as api_flags
from .bridge.options import add_arguments as bridge_flags
from .offline.files import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from .stream.worker import add_arguments as worker_flags


def cmd_rate(args: argparse.Namespace) -> int:
    from .offline import rate

    return rate.run(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from .offline import simulate

    return simulate.run(args)


def cmd_worker(args: argparse.Namespace) -> int:
    from .stream.worker import run_worker

    return run_worker(args)


def cmd_bridge(args: argparse.Namespace) -> int:
    from .bridge.kamailio import run_bridge

    return run_bridge(args)


def cmd_api(args: argparse.Namespace) -> int:
    from .api.server import run as run_api

    return run_api(args)


def cmd_report(argv: list[str]) -> int:
    from .report import main as report_main

    return report_main(argv)


def _env(flag: str, default: str | None) -> str | None:
    return os.environ.get("RATING_ENGINE_" + flag.upper().replace("-", "_"), default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rating-engine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    rate = sub.add_parser("rate", help="price a CDR file offline (contracts.md section 3)")
    rate.add_argument("--rates", required=True, metavar="DECK.csv")
    rate.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    rate.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="rating threads (default: one per core, at most 8; RATING_ENGINE_RATE_JOBS)",
    )
    rate.add_argument("cdrs", metavar="CDRS.jsonl", help="CDR file, or - for stdin")
    rate.set_defaults(func=cmd_rate)

    sim = sub.add_parser("simulate", help="run the decision core on a virtual clock")
    sim.add_argument("--rates", required=True, metavar="DECK.csv")
    sim.add_argument("--output", "-o", metavar="FILE")
    sim.add_argument("events", metavar="EVENTS.jsonl", help="events file, or - for stdin")
    sim.set_defaults(func=cmd_simulate)

    work = sub.add_parser("worker", help="the streaming worker on Kafka")
    worker_flags(work, _env)
    work.set_defaults(func=cmd_worker)

    bridge = sub.add_parser("bridge", help="connect a switch: its calls in, disconnects out")
    switches = bridge.add_subparsers(dest="switch", required=True)
    kamailio = switches.add_parser("kamailio", help="Kamailio through evapi and binrpc")
    bridge_flags(kamailio, _env)
    kamailio.set_defaults(func=cmd_bridge)

    api = sub.add_parser("api", help="the account API and web console; api token add|list|revoke")
    api_flags(api, _env)
    api.set_defaults(func=cmd_api)

    sub.add_parser("report", help="PSTN usage report and funding advice", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        return cmd_report(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "worker" and not args.rates:
        parser.error("worker needs --rates (or RATING_ENGINE_RATES)")
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"rating-engine: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
