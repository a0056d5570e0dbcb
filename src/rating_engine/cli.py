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

from .offline.files import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from .stream import connection


def cmd_rate(args: argparse.Namespace) -> int:
    from .offline import rate

    return rate.run(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from .offline import simulate

    return simulate.run(args)


def cmd_worker(args: argparse.Namespace) -> int:
    from .stream.worker import run_worker

    return run_worker(args)


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
    work.add_argument("--rates", default=_env("rates", None), metavar="DECK.csv")
    connection.add_arguments(work)
    work.add_argument("--topic-prefix", default=_env("topic_prefix", ""))
    work.add_argument("--partitions", type=int, default=int(_env("partitions", "4") or 4))
    work.add_argument("--metrics-port", type=int, default=int(_env("metrics_port", "9108") or 9108))
    work.add_argument(
        "--state-dir", default=_env("state_dir", os.path.join(os.getcwd(), "var", "worker"))
    )
    work.add_argument("--app-id", default=_env("app_id", "rating-engine"))
    work.add_argument(
        "--timer-grace-ms",
        type=int,
        default=int(_env("timer_grace_ms", "50") or 50),
        help="publish a timer tick this long after its due instant, so call events "
        "stamped just before it (still in flight) are applied first",
    )
    work.add_argument(
        "--batch-max",
        type=int,
        default=int(_env("batch_max", "1000") or 1000),
        help="decide at most this many inputs before publishing their outputs and state",
    )
    work.add_argument(
        "--batch-ms",
        type=float,
        default=float(_env("batch_ms", "5") or 5),
        help="publish a batch at the latest this long after its first input arrived",
    )
    work.add_argument(
        "--tick-defer-max-ms",
        type=int,
        default=int(_env("tick_defer_max_ms", "5000") or 5000),
        help="a timer tick waits for inputs sent before it (a backlog) at most this long "
        "after its due instant",
    )
    work.set_defaults(func=cmd_worker)

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
