#!/usr/bin/env bash
# End-to-end demo on a fresh machine: local Kafka, the streaming worker, the account API
# and console, a minute of real-time call events, the output topics and the metrics.
#
#   bash deploy/demo.sh
#
# Needs java (11+), mvn and python3.11 on PATH; creates .venv and installs the
# project into it when needed. Everything this script starts it stops again
# (also on Ctrl-C): the worker always, the broker only if it was not running.
# Each run uses its own topic prefix (demo-<time>-<pid>-), so reruns start
# from fresh state; its topics are deleted at the end (DEMO_KEEP_TOPICS=1 keeps
# them). Environment: DEMO_EVENTS (default rates/demo-events.jsonl),
# DEMO_RATES (rates/sample-deck.csv), DEMO_METRICS_PORT (9108), DEMO_API_PORT (8080: the
# account API and console, with a fresh demo token for contoso), and broker.sh's
# RATING_ENGINE_KAFKA_* (deploy/kafka/broker.sh) for another broker port or data dir, or
# RATING_ENGINE_KAFKA_SECURE=0 for a plaintext broker. A broker the demo starts is secure
# (TLS + SCRAM + ACLs, broker.sh's default): the worker connects as the `worker` role and
# the demo's own tools (replay, collect, topic clean-up) as `operator`, each from its
# broker.sh env file.
# Exit: 0 done, 1 the demo failed, 2 a tool is missing, 130 interrupted.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

EVENTS="${DEMO_EVENTS:-rates/demo-events.jsonl}"
RATES="${DEMO_RATES:-rates/sample-deck.csv}"
METRICS_PORT="${DEMO_METRICS_PORT:-9108}"
API_PORT="${DEMO_API_PORT:-8080}"
PARTITIONS=4
PREFIX="demo-$(date +%s)-$$-"
STATE_DIR=var/demo
VENV=.venv
PY="$VENV/bin/python"

say() { echo "demo: $*" >&2; }
# shellcheck source=deploy/lib.sh
source "$ROOT/deploy/lib.sh"
die() { say "$*"; exit 1; }
T0=$SECONDS

# as_operator CMD...: CMD with the operator's broker connection (RATING_ENGINE_BROKER and
# RATING_ENGINE_KAFKA_*, from the file `broker.sh env operator` names once the broker runs)
OPERATOR_ENV=
as_operator() { (set -a && . "$OPERATOR_ENV" && set +a && exec "$@"); }

# ---------------------------------------------------------------- tools
missing=()
if [[ -f $HOME/.cargo/env ]]; then . "$HOME/.cargo/env"; fi   # rustup's cargo builds the core
for tool in java mvn python3.11 cargo; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    say "missing on PATH: ${missing[*]}"
    say "the demo needs a JDK 11+ and Maven 3 for the local Kafka broker, Python 3.11 for the worker"
    say "and cargo (rustup's stable toolchain) to build the decision core"
    say "(Debian/Ubuntu: apt-get install openjdk-17-jdk-headless maven python3.11 python3.11-venv)"
    exit 2
fi
[[ -f $EVENTS ]] || die "no events file $EVENTS (set DEMO_EVENTS)"
[[ -f $RATES ]] || die "no rate deck $RATES (set DEMO_RATES)"
if (exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT") 2>/dev/null; then
    die "127.0.0.1:$METRICS_PORT is in use (another worker?); set DEMO_METRICS_PORT to a free port"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null; then
    die "127.0.0.1:$API_PORT is in use (another API?); set DEMO_API_PORT to a free port"
fi

# ---------------------------------------------------------------- venv
mkdir -p "$STATE_DIR"
if [[ ! -x $PY ]]; then
    say "creating $VENV (python3.11)"
    python3.11 -m venv "$VENV" || die "python3.11 -m venv failed (Debian/Ubuntu: apt-get install python3.11-venv)"
fi
stamp="$VENV/.rating-engine-pyproject.sha256"
want_sum="$(sha256sum pyproject.toml | cut -d' ' -f1)"
installed() {   # the project imports from this checkout, with its streaming deps
    "$PY" - "$ROOT/src" <<'EOF' 2>/dev/null
import sys, rating_engine, rating_engine._core, faust, aiokafka, prometheus_client, rating_engine.stream.demo
sys.exit(0 if rating_engine.__file__.startswith(sys.argv[1]) else 1)
EOF
}
if ! installed || [[ -f $stamp && $(cat "$stamp") != "$want_sum" ]] || [[ ! -x $VENV/bin/rating-engine ]]; then
    say "installing the project into $VENV (pip install -e '.[test]'; log: $STATE_DIR/pip.log)"
    if ! "$PY" -m pip install -q -e '.[test]' >"$STATE_DIR/pip.log" 2>&1; then
        tail -n 20 "$STATE_DIR/pip.log" >&2
        die "pip install failed; see $STATE_DIR/pip.log"
    fi
    installed || die "the project still does not import after pip install; see $STATE_DIR/pip.log"
    echo "$want_sum" >"$stamp"
fi

# ---------------------------------------------------------------- cleanup
BROKER_STARTED=0
WORKER_PID=
API_PID=
TOPICS_MADE=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $API_PID ]] && kill -0 "$API_PID" 2>/dev/null; then
        say "stopping the account API (pid $API_PID, SIGTERM)"
        stop_pid "$API_PID" "the account API"
        wait "$API_PID" 2>/dev/null || true
    fi
    if [[ -n $WORKER_PID ]] && kill -0 "$WORKER_PID" 2>/dev/null; then
        say "stopping the worker (pid $WORKER_PID, SIGTERM)"
        stop_pid "$WORKER_PID" "the worker"
        local wrc=0
        wait "$WORKER_PID" 2>/dev/null || wrc=$?
        ((wrc == 0)) || say "the worker exited with status $wrc (log: $STATE_DIR/worker.log)"
    fi
    if ((TOPICS_MADE)) && [[ -z ${DEMO_KEEP_TOPICS:-} ]]; then
        as_operator "$PY" -m rating_engine.stream.demo cleanup --prefix "$PREFIX" >/dev/null 2>&1 \
            || say "could not delete the topics $PREFIX*"
    fi
    if ((BROKER_STARTED)); then
        say "stopping the broker this demo started"
        deploy/kafka/broker.sh stop >/dev/null || true
    fi
    say "done in $((SECONDS - T0)) s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- broker
if deploy/kafka/broker.sh status >/dev/null 2>&1; then
    say "the Kafka broker is already running: using it, leaving it running"
else
    BROKER_STARTED=1
    say "starting the Kafka broker (the first run fetches its jars with Maven)"
fi
deploy/kafka/broker.sh start --topic-prefix "$PREFIX" --partitions "$PARTITIONS" 2>&1 \
    | tee "$STATE_DIR/broker-start.log" >&2
# someone else may have started it between `status` and `start`: then it is theirs
grep -q "already running" "$STATE_DIR/broker-start.log" && BROKER_STARTED=0
TOPICS_MADE=1
OPERATOR_ENV="$(deploy/kafka/broker.sh env operator)" || die "broker.sh env operator failed"
WORKER_ENV="$(deploy/kafka/broker.sh env worker)" || die "broker.sh env worker failed"
grep -q SASL_SSL "$WORKER_ENV" && say "the broker is secure: the worker connects as 'worker', the demo as 'operator' (TLS + SCRAM)"

# ---------------------------------------------------------------- worker
say "starting the worker (topic prefix $PREFIX, metrics on :$METRICS_PORT, log $STATE_DIR/worker.log)"
(set -a && . "$WORKER_ENV" && set +a &&
    exec "$VENV/bin/rating-engine" worker --rates "$RATES" --topic-prefix "$PREFIX" \
        --partitions "$PARTITIONS" --metrics-port "$METRICS_PORT" --state-dir "$STATE_DIR") \
    >"$STATE_DIR/worker.log" 2>&1 &
WORKER_PID=$!

if ! as_operator "$PY" -m rating_engine.stream.demo wait-ready --prefix "$PREFIX" \
        --worker-pid "$WORKER_PID" --timeout 120; then
    tail -n 30 "$STATE_DIR/worker.log" >&2 || true
    die "the worker did not become ready; see $STATE_DIR/worker.log"
fi

# ---------------------------------------------------------------- account API + console
# as the `admin` role (writes accounts, reads account-views and charges); a fresh store and
# tokens file each run, as the topics are fresh
ADMIN_ENV="$(deploy/kafka/broker.sh env admin)" || die "broker.sh env admin failed"
rm -f "$STATE_DIR/api-tokens.json" "$STATE_DIR/api-store.sqlite"
DEMO_TOKEN="$("$VENV/bin/rating-engine" api token add --tokens "$STATE_DIR/api-tokens.json" \
    --tenant contoso --note demo 2>/dev/null)" || die "rating-engine api token add failed"
say "starting the account API on 127.0.0.1:$API_PORT (log $STATE_DIR/api.log)"
(set -a && . "$ADMIN_ENV" && set +a &&
    exec "$VENV/bin/rating-engine" api --rates "$RATES" --topic-prefix "$PREFIX" \
        --listen "127.0.0.1:$API_PORT" --tokens "$STATE_DIR/api-tokens.json" \
        --store "$STATE_DIR/api-store.sqlite") >"$STATE_DIR/api.log" 2>&1 &
API_PID=$!
# api_get PATH [TOKEN] [FORMAT]: GET from the API; prints the body, or FORMAT's fields of it
api_get() {
    "$PY" -c 'import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1])
if sys.argv[2]:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
try:
    body = urllib.request.urlopen(req, timeout=2).read()
except OSError:
    sys.exit(1)
print(sys.argv[3].format(**json.loads(body)) if sys.argv[3] else body.decode())' \
        "http://127.0.0.1:$API_PORT$1" "${2:-}" "${3:-}"
}
for ((i = 0; i < 300; i++)); do
    kill -0 "$API_PID" 2>/dev/null || { tail -n 20 "$STATE_DIR/api.log" >&2; die "the account API exited; see $STATE_DIR/api.log"; }
    [[ $(api_get /v1/health "" "{status}" 2>/dev/null) == ok ]] && break
    sleep 0.2
done
[[ $(api_get /v1/health "" "{status}" 2>/dev/null) == ok ]] || die "the account API did not come up; see $STATE_DIR/api.log"
say "account console: http://127.0.0.1:$API_PORT/ (up until the demo ends)"
say "demo token (tenant contoso): $DEMO_TOKEN"

# ---------------------------------------------------------------- replay + results
as_operator "$PY" -m rating_engine.stream.demo run --prefix "$PREFIX" --events "$EVENTS" \
    --rates "$RATES" --metrics-url "http://127.0.0.1:$METRICS_PORT/metrics"
api_get /v1/tenants/contoso/account "$DEMO_TOKEN" \
    "account API: contoso has {balance} {currency} as of {as_of} (GET /v1/tenants/contoso/account)" \
    || die "the account API did not serve contoso's account; see $STATE_DIR/api.log"
