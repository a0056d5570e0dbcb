"""`rating-engine` command line: rate, simulate, worker, report.

Exit codes: 0 done (bad input lines are reported, not fatal), 2 the deck or
the command line is invalid, a file can't be opened or a `rate` process
failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from typing import BinaryIO, Iterator, Sequence

from .core import Deck, DeckError, load_deck

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
PROGRESS_MIN_BYTES = 16 * 1024 * 1024


class CliError(Exception):
    """A fatal, user-facing error: printed as one line, exit 2."""


def _deck(path: str) -> Deck:
    try:
        return load_deck(path)
    except DeckError as exc:
        raise CliError(f"invalid deck: {exc}") from None


@contextmanager
def _open_in(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise CliError(f"{path}: cannot open: {exc.strerror}") from None
    with f:
        yield f


@contextmanager
def _open_out(path: str | None) -> Iterator[BinaryIO]:
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        f = open(path, "wb")
    except OSError as exc:
        raise CliError(f"{path}: cannot write: {exc.strerror}") from None
    with f:
        yield f


class Progress:
    """A one-line progress bar on stderr, redrawn at most twice a second."""

    def __init__(self, total_bytes: int, label: str) -> None:
        self.total, self.label = total_bytes, label
        self.started = self.last = time.monotonic()
        self.lines = 0

    def update(self, done_bytes: int, lines: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        frac = done_bytes / self.total if self.total else 1.0
        width = 30
        bar = "#" * int(frac * width)
        rate = lines / max(now - self.started, 1e-9)
        sys.stderr.write(
            f"\r{self.label} [{bar:<{width}}] {frac:6.1%} {lines:,} lines {rate:,.0f}/s"
        )
        sys.stderr.flush()

    def close(self, lines: int) -> None:
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r{self.label}: {lines:,} lines in {elapsed:.1f}s{' ' * 30}\n")


def _progress_for(path: str, label: str) -> Progress | None:
    if path == "-" or sys.stdout.isatty():
        return None
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    return Progress(size, label) if size >= PROGRESS_MIN_BYTES else None


CHUNK_BYTES = 32 * 1024 * 1024  # rated per call into the core; its lines split over the threads


def _whole_lines(src: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    """The input in pieces of whole lines (the last piece may lack its newline)."""
    rest = b""
    while True:
        block = src.read(chunk_bytes)
        if not block:
            if rest:
                yield rest
            return
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            continue
        rest = block[cut:]
        yield block[:cut]


def cmd_rate(args: argparse.Namespace) -> int:
    from .core import rate_text

    jobs = args.jobs if args.jobs is not None else _default_jobs()
    deck = _deck(args.rates)
    progress = _progress_for(args.cdrs, "rate")
    name = _name(args.cdrs)
    line, done = 1, 0
    with _open_in(args.cdrs) as src, _open_out(args.output) as dst:
        for piece in _whole_lines(src, CHUNK_BYTES):
            output, messages, lines = rate_text(deck, piece, name, line, jobs)
            if messages:
                sys.stderr.write(messages.decode("utf-8", errors="replace"))
            dst.write(output)
            line += lines
            done += len(piece)
            if progress is not None:
                progress.update(done, line - 1)
        if progress is not None:
            progress.close(line - 1)
    return EXIT_OK


def _name(cdrs: str) -> str:
    return "<stdin>" if cdrs == "-" else cdrs


def _default_jobs() -> int:
    """One rating thread per available core (at most 8): RATING_ENGINE_RATE_JOBS overrides."""
    try:
        return max(1, int(os.environ["RATING_ENGINE_RATE_JOBS"]))
    except (KeyError, ValueError):
        return min(8, len(os.sched_getaffinity(0)))


def cmd_simulate(args: argparse.Namespace) -> int:
    from .core import Simulation

    deck = _deck(args.rates)
    sim = Simulation(deck)
    with _open_in(args.events) as src, _open_out(args.output) as dst:
        for piece in _whole_lines(src, 4 * 1024 * 1024):
            dst.write(sim.feed(piece))
        dst.write(sim.finish())
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import run_worker

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

    work = sub.add_parser("worker", help="the streaming worker (Faust on Kafka)")
    work.add_argument("--rates", default=_env("rates", None), metavar="DECK.csv")
    work.add_argument("--broker", default=_env("broker", "kafka://127.0.0.1:9092"))
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
