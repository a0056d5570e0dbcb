#!/usr/bin/env bash
# Sets up everything and runs the whole test suite (README "Quick start", second command; .ci/run).
# Installs: the Python venv (.venv) with the package and test extras (pip builds the Rust core
# with cargo through maturin), Debian's chromium for the report's browser test, the Kafka jars
# (via deploy/kafka/broker.sh, Maven). Checks the Rust crate (fmt, clippy, its own tests) and the
# Python (ruff, mypy), starts the broker for the integration tests and stops it afterwards if it
# started it.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || { echo "test.sh: $PY not found (Python 3.11 is required)" >&2; exit 2; }
command -v java >/dev/null 2>&1 || { echo "test.sh: java not found (OpenJDK 17 runs the Kafka broker)" >&2; exit 2; }
command -v mvn >/dev/null 2>&1 || { echo "test.sh: mvn not found (Maven fetches the Kafka jars)" >&2; exit 2; }
# shellcheck source=/dev/null
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo not found (rustup's stable toolchain builds the core)" >&2; exit 2; }

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "test.sh: checking the Rust core (fmt, clippy, cargo test)"
(
  cd native
  cargo fmt --check
  cargo clippy --quiet --all-targets -- -D warnings
  cargo clippy --quiet --features python --all-targets -- -D warnings
  cargo test --quiet
)
echo "test.sh: checking the Python (ruff, mypy)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing Debian's chromium for the report's browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "test.sh: chromium could not be installed; the browser test will say so" >&2
  fi
fi
# playwright-core (npm, pinned by tests/browser/package-lock.json) drives it for the console's test
(cd tests/browser && npm ci --no-audit --no-fund --silent) \
  || echo "test.sh: npm ci in tests/browser failed; the console's browser test will say so" >&2

# Debian's kamailio (+ evapi, jansson, cnxcc modules), sip-tester and redis-server for the SIP tests
bash deploy/kamailio/kamailio.sh install \
  || echo "test.sh: the Kamailio packages could not be installed; the SIP tests will say so" >&2

started_broker=0
if ! bash deploy/kafka/broker.sh status >/dev/null 2>&1; then
  started_broker=1
fi
cleanup() {
  if [ "$started_broker" = 1 ]; then bash deploy/kafka/broker.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
bash deploy/kafka/broker.sh start

.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
