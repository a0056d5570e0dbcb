#!/usr/bin/env bash
# The demo with real SIP: the broker, the worker, Kamailio (deploy/kamailio), the bridge and
# sipp. A tenant holding 0.05 USD places four calls through the proxy (two to Nigeria that
# share the balance, one that hangs up, one from a user without a licence); the engine cuts
# them and the script prints each call's BYE times beside its due instant.
#
#   bash deploy/demo-sip.sh
#
# Needs the project's .venv (bash deploy/test.sh or deploy/demo.sh make it), java and mvn for
# the broker; installs Debian's kamailio and sip-tester when missing (as root). Stops all it
# started: Kamailio and the worker and bridge always, the broker only if it was not running.
# Ports: SIP udp 127.0.0.1:5060, evapi 8448 (RATING_ENGINE_KAMAILIO_SIP / _EVAPI), gateway
# 127.0.0.1:5080 (DEMO_SIP_GATEWAY_PORT), metrics 9108 (worker) and 9109 (bridge).
# Exit: 0 done, 1 the demo failed, 2 a tool is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { echo "demo-sip: $*" >&2; }

PY=.venv/bin/python
STATE=var/demo-sip
PREFIX="demo-sip-$(date +%s)-$$-"
GATEWAY_PORT="${DEMO_SIP_GATEWAY_PORT:-5080}"
export RATING_ENGINE_KAMAILIO_DIR="${RATING_ENGINE_KAMAILIO_DIR:-$ROOT/$STATE/kamailio}"
SIP="${RATING_ENGINE_KAMAILIO_SIP:-127.0.0.1:5060}"
EVAPI="${RATING_ENGINE_KAMAILIO_EVAPI:-127.0.0.1:8448}"
CTL="${RATING_ENGINE_KAMAILIO_CTL:-$RATING_ENGINE_KAMAILIO_DIR/ctl.sock}"

if [[ ! -x $PY ]] || ! "$PY" -c 'import rating_engine._core, aiokafka' 2>/dev/null; then
    say "no working .venv: run 'bash deploy/test.sh' (or deploy/demo.sh) once first"
    exit 2
fi
mkdir -p "$STATE"

started_broker=0
if ! bash deploy/kafka/broker.sh status >/dev/null 2>&1; then
    started_broker=1
fi
cleanup() {
    bash deploy/kamailio/kamailio.sh stop >/dev/null 2>&1 || true
    if ((started_broker)); then bash deploy/kafka/broker.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

bash deploy/kafka/broker.sh start --topic-prefix "$PREFIX" >/dev/null
bash deploy/kamailio/kamailio.sh start --gateway "127.0.0.1:$GATEWAY_PORT"
"$PY" -m rating_engine.bridge.demo --prefix "$PREFIX" --sip "$SIP" --evapi "$EVAPI" \
    --ctl "unix:$CTL" --gateway-port "$GATEWAY_PORT" --state-dir "$STATE/$PREFIX"
