"""The worker's batch-wise metric helpers count exactly what per-event calls would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from rating_engine.stream.metrics import observe_many

BOUNDS = (0.001, 0.01, 0.1)


def _samples(registry: CollectorRegistry, name: str) -> dict[str, float]:
    text = generate_latest(registry).decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "_") and not line.startswith(name + "_created"):
            key, value = line.rsplit(" ", 1)
            out[key[len(name) :]] = float(value)
    return out


def test_observe_many_fills_the_buckets_n_observations_would() -> None:
    registry = CollectorRegistry()
    many = Histogram("many", "", buckets=BOUNDS, registry=registry)
    single = Histogram("single", "", buckets=BOUNDS, registry=registry)
    # on a bound, below the first, between, above the last, and no observation at all
    for amount, n in [(0.001, 3), (0.0005, 2), (0.05, 4), (5.0, 1), (0.01, 0)]:
        observe_many(many, amount, n)
        for _ in range(n):
            single.observe(amount)
    got, want = _samples(registry, "many"), _samples(registry, "single")
    assert got.keys() == want.keys()
    assert {k: v for k, v in got.items() if k != "_sum"} == {
        k: v for k, v in want.items() if k != "_sum"
    }
    assert abs(_samples(registry, "many")["_sum"] - _samples(registry, "single")["_sum"]) < 1e-9
