"""The load test's checker, small and fast: a few hundred events through a real worker.

`loadtest/kafka_load.py live` on a scaled-down run (a dozen tenants, ~300 call events in
5 s of Poisson traffic, poor tenants whose calls are disconnected, duplicates and malformed
lines), then `loadtest/checker.py` on what came out: one charge per finished call, every due
disconnect (and within 1 s), no negative balance, every bad line dead-lettered, and the same
records as `simulate` on the recorded input. The benchmarks themselves are not tests.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from .kafka_support import REPO, broker_script

sys.path.insert(0, str(REPO / "loadtest"))

import checker  # noqa: E402
import kafka_load  # noqa: E402

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def load_broker():
    """The project's own broker: started if needed, stopped only if this module started it."""
    was_running = broker_script("status").returncode == 0
    if broker_script("start").returncode != 0:
        pytest.fail("deploy/kafka/broker.sh start failed")
    yield kafka_load.BROKER
    if not was_running:
        broker_script("stop")


def test_small_live_run_passes_every_check(load_broker, tmp_path):
    args = kafka_load.parser().parse_args(
        [
            "live",
            "--name",
            "pytest",
            "--tenants",
            "12",
            "--rate",
            "60",
            "--duration",
            "5",
            "--partitions",
            "4",
            "--workers",
            "1",
            "--time-scale",
            "60",
            "--poor-share",
            "0.5",
            "--drain-timeout",
            "120",
        ]
    )
    args.run_dir = str(tmp_path)
    result = asyncio.run(kafka_load.live(args))
    c = result["check"]
    assert result["exit_codes"] == {"w0": 0}
    assert 200 <= c["input_lines"] <= 800, c["input_lines"]
    assert c["bad_inputs"] > 0 and c["disconnects_due"] > 0 and c["finished_calls_in_input"] > 0
    assert c["ok"], {k: v for k, v in c.items() if k != "lateness_values_s"}
    lat = c["lateness_timer_disconnects_s"]
    assert lat["n"] == 0 or lat["max"] < 1.0, lat
    # the recorded files replay through the CLI checker with the same verdict
    assert (
        checker.main(
            [
                "--rates",
                str(kafka_load.DECK),
                "--input",
                str(tmp_path / "input.jsonl"),
                "--outputs",
                str(tmp_path / "outputs.jsonl"),
                "--cutoff",
                result["schedule"]["t_end_iso"],
            ]
        )
        == 0
    )


def test_checker_catches_a_double_charge_a_lost_disconnect_and_a_missing_dead_letter():
    lines = [
        raw
        for _, raw in kafka_load.generate(
            tenants=6,
            rate=100,
            duration=3,
            t0_us=1_800_000_000_000_000,
            time_scale=60,
            poor_share=0.5,
            bad_share=0.05,
        ).items
    ]
    expected = checker.simulate_records(str(kafka_load.DECK), lines)
    got = [(t, r, 1_900_000_000.0) for t, r in expected]
    assert checker.check(lines, got, str(kafka_load.DECK), expected=expected)["ok"]
    charge = next(r for t, r in expected if t == "charges")
    twice = dict(charge, charge="9.9999")
    dropped = [(t, r, w) for t, r, w in got if t not in ("disconnects", "dead-letters")] + [
        ("charges", twice, 0.0)
    ]
    bad = checker.check(lines, dropped, str(kafka_load.DECK), expected=expected)
    assert {
        "double_charged",
        "lost_disconnects",
        "bad_input_not_dead_lettered",
        "differs_from_simulate",
    } <= set(bad["failures"])
    assert bad["double_charged"] == 1 and bad["negative_balances"] >= 0
