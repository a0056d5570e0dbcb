"""`rating-engine rate` on several processes: the chunks of a large CDR file rated side by side.

Why processes: a bulk query (bulk.py) is some sixty short column steps; polars spreads them over
its threads so unevenly that on two cores it ran no faster than on one and burnt twice the CPU.
Whole chunks on separate one-thread processes keep every core busy with useful work, and, as each
process reads its own chunks and writes its own output, nothing crosses between processes but a
line number.

- The file is cut at the first line start at or after every multiple of the chunk size, so
  every worker finds the same cuts on its own. Worker `i` of `N` rates chunks i, i+N, i+2N, ...
  (read with `pread`).
- Output order is kept by a token going round the ring of workers: the worker holding chunk k
  waits for the token (the number of the chunk's first line), writes the chunk's stderr
  messages, then its output, to the descriptors it shares with the parent, and hands the token
  to the next worker with the next line number. While one worker writes, the others rate.
- The parent starts the workers first and does not load polars: the first worker judges the
  deck and says so on the report pipe ("D", or "E <why>"); only then does the parent open the
  output and hand its descriptor to every worker over a socket (so an invalid deck leaves the
  output file alone). It then adds up the workers' progress reports (one short line per chunk)
  and watches them: if one fails, the others are stopped.

Each line's output depends on that line alone, so the bytes are those of `bulk.rate_stream`
and of the per-call core whatever the cuts (tests/test_rate_cli.py compares them).
"""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

from .chunks import CHUNK_BYTES, cut

_TOKEN = struct.Struct("<q")
EXIT_BROKEN_PIPE = 141  # a worker's output was closed by its reader (like `| head`)


class WorkerFailed(Exception):
    """A rating process stopped with an error (its traceback is on stderr)."""


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = os.read(fd, n - len(data))
        if not part:
            raise EOFError("token pipe closed")
        data += part
    return data


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@dataclass(frozen=True)
class Plan:
    """What one worker needs to know (passed on its command line)."""

    deck: str
    cdrs: str
    name: str
    chunk_bytes: int
    index: int
    jobs: int
    token_in: int  # read: the token for this worker's next chunk
    token_out: int  # write: the next worker's token pipe
    control: int  # a socket: the output descriptor arrives here, once it is open
    status: int  # write: "<bytes> <lines>\n" per chunk done, to the parent


def work(plan: Plan) -> int:
    """A worker's life: rate its chunks, write each in its turn; returns the exit code."""
    from . import bulk
    from .cdr import invalid_message
    from .deck import DeckError, load_deck

    gc.disable()  # nothing here makes cycles; the collector cost ~2 % walking polars' objects
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    try:
        deck = load_deck(plan.deck)
    except DeckError as exc:
        if plan.index == 0:
            os.write(plan.status, b"E " + " ".join(str(exc).split("\n")).encode() + b"\n")
        return 2
    if plan.index == 0:
        os.write(plan.status, b"D\n")  # the deck is valid: the parent may open the output
    idx = bulk._index_deck(deck)
    control = socket.socket(fileno=plan.control)
    sink = None
    fd = os.open(plan.cdrs, os.O_RDONLY)
    size = os.fstat(fd).st_size
    k = plan.index
    try:
        while True:
            start = cut(fd, k, plan.chunk_bytes, size)
            if start >= size:
                return 0
            end = cut(fd, k + 1, plan.chunk_bytes, size)
            chunk = os.pread(fd, end - start, start) if end > start else b""
            if chunk:
                out, errors, n_lines = bulk.rate_chunk(deck, idx, chunk)
            else:
                out, errors, n_lines = None, [], 0
            if sink is None:
                _, fds, _, _ = socket.recv_fds(control, 1, 1)
                if not fds:
                    return 0  # the parent gave up (an invalid deck, an unwritable output)
                sink = open(fds[0], "wb", buffering=0)
            (first,) = _TOKEN.unpack(_read_exactly(plan.token_in, _TOKEN.size))
            if errors:
                _write_all(2, "".join(invalid_message(plan.name, first + i, reason)
                                      for i, reason in errors).encode())
            if out is not None:
                bulk.write_lines(sink, out)  # polars writes straight to the descriptor
            _write_all(plan.token_out, _TOKEN.pack(first + n_lines))
            os.write(plan.status, f"{len(chunk)} {n_lines}\n".encode())
            k += plan.jobs
    except OSError as exc:  # polars reports a closed pipe as a plain OSError
        if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE or "os error 32" in str(exc):
            return EXIT_BROKEN_PIPE
        raise
    finally:
        os.close(fd)


class Workers:
    """The rating processes for one file, started early so their start-up overlaps the caller's.

    `run` hands them the output descriptor and follows them to the end; leaving the `with`
    block stops any still running.
    """

    def __init__(self, deck_path: str, cdrs: str, name: str, jobs: int, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.cdrs = cdrs
        self.procs: list[subprocess.Popen] = []
        self.rings = [os.pipe() for _ in range(jobs)]
        self.controls = [socket.socketpair() for _ in range(jobs)]
        self.status_r, status_w = os.pipe()
        env = dict(os.environ, POLARS_MAX_THREADS="1")
        # glibc keeps the chunk-sized buffers (16-30 MiB) for reuse instead of mapping fresh
        # pages for every chunk: a third less system time.
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(256 << 20))
        env.setdefault("MALLOC_TRIM_THRESHOLD_", str(1 << 30))
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            for i in range(jobs):
                plan = Plan(deck_path, cdrs, name, chunk_bytes, i, jobs, token_in=self.rings[i][0],
                            token_out=self.rings[(i + 1) % jobs][1], control=self.controls[i][1].fileno(),
                            status=status_w)
                args = [sys.executable, "-m", "rating_engine.bulk_procs", *map(str, plan.__dict__.values())]
                self.procs.append(subprocess.Popen(
                    args, env=env, close_fds=True, stdout=subprocess.DEVNULL,
                    pass_fds=(plan.token_in, plan.token_out, plan.control, status_w)))
        except BaseException:
            self.close()
            raise
        finally:
            os.close(status_w)
        for _, theirs in self.controls:
            theirs.close()
        self._reports = _reports(self.procs, self.status_r)
        self.judged = False

    def deck_error(self) -> str | None:
        """Wait for the first worker's verdict on the deck: None if valid, else why not.

        (The parent does not load the deck itself: no polars in the parent, a faster start.)
        """
        report = next(self._reports, None)
        self.judged = True
        if report == b"D":
            return None
        if report is not None and report.startswith(b"E "):
            return report[2:].decode(errors="replace")
        raise WorkerFailed(f"a rating process said {report!r} instead of judging the deck")

    def run(self, out_fd: int, progress: Callable[[int, int], object] | None = None) -> int:
        """Rate the file into `out_fd`; returns the lines read.

        Raises `WorkerFailed` if a worker fails, `BrokenPipeError` if the output was closed.
        """
        if not self.judged:
            error = self.deck_error()
            if error is not None:
                raise WorkerFailed(f"invalid deck: {error}")
        for ours, _ in self.controls:
            socket.send_fds(ours, [b"o"], [out_fd])
        _write_all(self.rings[0][1], _TOKEN.pack(1))
        done_bytes = lines = 0
        for report in self._reports:
            size, n = map(int, report.split())
            done_bytes += size
            lines += n
            if progress is not None:
                progress(done_bytes, lines)
        size = os.path.getsize(self.cdrs)
        if done_bytes != size:
            raise WorkerFailed(f"{self.cdrs}: {done_bytes} of {size} bytes rated (did the file change?)")
        return lines

    def close(self) -> None:
        for ours, theirs in self.controls:
            ours.close()
            theirs.close()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for r, w in self.rings:
            os.close(r)
            os.close(w)
        if self.status_r >= 0:
            os.close(self.status_r)
        self.rings, self.controls, self.procs, self.status_r = [], [], [], -1

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reports(procs: list[subprocess.Popen], status_r: int) -> Iterator[bytes]:
    """The workers' report lines as they come; ends when all are done, raises if one fails."""
    pending = b""
    while True:
        ready, _, _ = select.select([status_r], [], [], 0.5)
        data = os.read(status_r, 1 << 16) if ready else b""
        over = ready and not data  # every worker closed its end of the pipe
        codes = [p.wait() if over else p.poll() for p in procs]
        failed = [c for c in codes if c not in (None, 0)]
        if failed and not over:  # what it said before it stopped comes first
            while select.select([status_r], [], [], 0)[0] and (more := os.read(status_r, 1 << 16)):
                data += more
        pending += data
        *reports, pending = pending.split(b"\n")
        yield from reports
        if EXIT_BROKEN_PIPE in failed:
            raise BrokenPipeError("output closed")
        if failed:
            raise WorkerFailed(f"a rating process failed (exit code {failed[0]})")
        if over:
            return


def _main(argv: list[str]) -> int:
    fields = list(Plan.__dataclass_fields__)
    values = dict(zip(fields, argv))
    plan = Plan(**{k: (v if k in ("deck", "cdrs", "name") else int(v)) for k, v in values.items()})
    return work(plan)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
