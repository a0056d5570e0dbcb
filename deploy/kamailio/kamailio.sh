#!/usr/bin/env bash
# Kamailio 5.6 (Debian's packages) as rating-engine's SIP proxy, with the project's config.
#
#   deploy/kamailio/kamailio.sh start [--gateway HOST:PORT] [--cnxcc]
#   deploy/kamailio/kamailio.sh stop | status | install
#
# start   installs the Debian packages when missing (as root, with apt-get), checks the config,
#         starts Kamailio on udp 127.0.0.1:5060 relaying calls to the gateway (the PSTN side;
#         default 127.0.0.1:5080) and returns once its RPC socket answers. Idempotent.
#         --cnxcc also loads cnxcc (Kamailio's prepaid module, for the side-by-side benchmark)
#         with a private redis-server it starts.
# stop    stops what start started (by its pid files), nothing else
# status  prints running/stopped; exit 0 if running, 3 if stopped
# install installs the Debian packages when missing
#
# Environment (defaults in brackets):
#   RATING_ENGINE_KAMAILIO_DIR    state dir: pid files, log, sockets [<repo>/var/kamailio]
#   RATING_ENGINE_KAMAILIO_SIP    SIP address, udp [127.0.0.1:5060]
#   RATING_ENGINE_KAMAILIO_EVAPI  evapi address the bridge reads events from [127.0.0.1:8448]
#   RATING_ENGINE_KAMAILIO_CTL    binrpc socket path (kamcmd -s unix:PATH) [<dir>/ctl.sock]
#   RATING_ENGINE_KAMAILIO_REDIS_PORT  redis-server port for --cnxcc, below 32768 [6390]
#   RATING_ENGINE_KAMAILIO_CHILDREN    SIP worker processes [4]
set -euo pipefail

readonly PACKAGES=(kamailio kamailio-extra-modules kamailio-json-modules kamailio-cnxcc-modules
                   redis-server sip-tester)
readonly MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules
readonly DBTEXT_SCHEMA=/usr/share/kamailio/dbtext/kamailio

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DIR="${RATING_ENGINE_KAMAILIO_DIR:-$REPO/var/kamailio}"
SIP="${RATING_ENGINE_KAMAILIO_SIP:-127.0.0.1:5060}"
EVAPI="${RATING_ENGINE_KAMAILIO_EVAPI:-127.0.0.1:8448}"
CTL="${RATING_ENGINE_KAMAILIO_CTL:-$DIR/ctl.sock}"
REDIS_PORT="${RATING_ENGINE_KAMAILIO_REDIS_PORT:-6390}"
CHILDREN="${RATING_ENGINE_KAMAILIO_CHILDREN:-4}"
PID_FILE="$DIR/kamailio.pid"
LOG_FILE="$DIR/kamailio.log"
REDIS_PID_FILE="$DIR/redis.pid"
START_TIMEOUT=20

say() { echo "kamailio.sh: $*" >&2; }
# shellcheck source=deploy/lib.sh
source "$REPO/deploy/lib.sh"
die() { say "$*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

# pid in FILE if that process is alive and its command line contains WORD (not a reused pid)
live_pid() {
    local file=$1 word=$2 pid
    [[ -f $file ]] || return 1
    pid="$(cat "$file" 2>/dev/null || true)"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(ps -ww -p "$pid" -o args= 2>/dev/null || true)" == *"$word"* ]] || return 1
    echo "$pid"
}

missing_packages() {
    local have=1
    command -v kamailio >/dev/null 2>&1 || have=0
    command -v kamcmd >/dev/null 2>&1 || have=0
    command -v sipp >/dev/null 2>&1 || have=0
    command -v redis-server >/dev/null 2>&1 || have=0
    local m
    for m in evapi jansson ctl dialog cnxcc db_text; do
        [[ -f $MODULES/$m.so ]] || have=0
    done
    ((have == 0))
}

install_packages() {
    missing_packages || return 0
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "needs Debian's ${PACKAGES[*]} (apt-get install them as root)"
    fi
    say "installing Debian's ${PACKAGES[*]}"
    # a package's own service must not start here: this script runs its own instances
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${PACKAGES[@]}" >/dev/null; } || rc=$?
    ((added_policy)) && rm -f "$policy"
    ((rc == 0)) || die "apt-get could not install ${PACKAGES[*]}"
    missing_packages && die "installed, but kamailio, kamcmd, sipp, redis-server or a module is still missing"
    return 0
}

ctl_answers() {
    [[ -S $CTL ]] && timeout 3 kamcmd -s "unix:$CTL" core.version >/dev/null 2>&1
}

start_redis() {
    if live_pid "$REDIS_PID_FILE" redis-server >/dev/null; then
        return 0
    fi
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$DIR" --pidfile "$REDIS_PID_FILE" --daemonize yes \
        --logfile "$DIR/redis.log" >/dev/null
    local i
    for ((i = 0; i < 50; i++)); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "redis-server did not answer on 127.0.0.1:$REDIS_PORT (see $DIR/redis.log)"
}

stop_redis_if_no_kamailio() {
    local pid
    live_pid "$PID_FILE" kamailio >/dev/null && return 0
    if pid="$(live_pid "$REDIS_PID_FILE" redis-server)"; then
        stop_pid "$pid" redis-server
    fi
    rm -f "$REDIS_PID_FILE"
}

cmd_start() {
    local gateway=127.0.0.1:5080 cnxcc=0
    while (($#)); do
        case $1 in
            --gateway) gateway=${2:?--gateway needs HOST:PORT}; shift 2 ;;
            --gateway=*) gateway=${1#*=}; shift ;;
            --cnxcc) cnxcc=1; shift ;;
            *) usage >&2; exit 2 ;;
        esac
    done
    [[ $gateway =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "--gateway must be HOST:PORT, got '$gateway'"
    # cnxcc keeps redis' port in 16 signed bits
    [[ $REDIS_PORT =~ ^[0-9]+$ ]] && ((REDIS_PORT > 0 && REDIS_PORT < 32768)) \
        || die "RATING_ENGINE_KAMAILIO_REDIS_PORT must be a port below 32768 (cnxcc), got '$REDIS_PORT'"
    [[ $SIP =~ ^[0-9.]+:[0-9]+$ ]] || die "RATING_ENGINE_KAMAILIO_SIP must be IP:PORT, got '$SIP'"
    ((${#CTL} < 100)) || die "the ctl socket path is too long for a unix socket: $CTL"
    if pid="$(live_pid "$PID_FILE" kamailio)"; then
        say "already running (pid $pid), SIP udp:$SIP, evapi $EVAPI, ctl unix:$CTL"
        return 0
    fi
    install_packages
    mkdir -p "$DIR"
    rm -f "$CTL" "$PID_FILE"
    # the dialog tables (db_text) keep live calls across a restart: empty ones on first start
    mkdir -p "$DIR/dbtext"
    local table
    for table in version dialog dialog_vars; do
        [[ -f $DIR/dbtext/$table ]] || cp "$DBTEXT_SCHEMA/$table" "$DIR/dbtext/$table"
    done
    local defines=(
        -A "DIALOG_DB_URL=\"text://$DIR/dbtext\""
        -A "LISTEN_SIP=udp:$SIP"
        -A "GATEWAY=\"sip:$gateway\""
        -A "EVAPI_ADDR=\"$EVAPI\""
        -A "CTL_SOCKET=\"unix:$CTL\""
        -A "CHILDREN=$CHILDREN"
    )
    if ((cnxcc)); then
        start_redis
        trap 'stop_redis_if_no_kamailio' EXIT   # a Kamailio that fails to start leaves no redis
        defines+=(-A WITH_CNXCC -A "CNXCC_REDIS=\"addr=127.0.0.1;port=$REDIS_PORT;db=1\"")
    fi
    local cfg="$HERE/kamailio.cfg"
    if ! out="$(kamailio -c -f "$cfg" "${defines[@]}" 2>&1)"; then
        echo "$out" >&2
        die "Kamailio refused $cfg"
    fi
    # -DD: the main process stays in the foreground (its pid is ours to stop); -E: log to stderr
    # -w: its working dir (where a core file would go) is the state dir
    setsid kamailio -f "$cfg" -DD -E -w "$DIR" -P "$PID_FILE" -m 256 -M 32 "${defines[@]}" \
        >>"$LOG_FILE" 2>&1 </dev/null &
    local pid=$! i   # Kamailio writes it to $PID_FILE itself
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$LOG_FILE" >&2
            die "Kamailio exited at start (log: $LOG_FILE)"
        fi
        if ctl_answers; then
            say "running (pid $pid): SIP udp:$SIP -> gateway $gateway, evapi $EVAPI, ctl unix:$CTL$( ((cnxcc)) && echo ", cnxcc with redis :$REDIS_PORT")"
            return 0
        fi
        sleep 0.1
    done
    stop_pid "$pid" kamailio
    die "Kamailio did not answer on unix:$CTL within $START_TIMEOUT s (log: $LOG_FILE)"
}

cmd_stop() {
    local pid
    if pid="$(live_pid "$PID_FILE" kamailio)"; then
        stop_pid "$pid" kamailio
        say "stopped kamailio (pid $pid)"
    fi
    rm -f "$PID_FILE"
    if pid="$(live_pid "$REDIS_PID_FILE" redis-server)"; then
        stop_pid "$pid" redis-server
        say "stopped redis-server (pid $pid)"
    fi
    rm -f "$REDIS_PID_FILE"
}

cmd_status() {
    local pid
    if pid="$(live_pid "$PID_FILE" kamailio)"; then
        echo "running (pid $pid): SIP udp:$SIP, evapi $EVAPI, ctl unix:$CTL"
        return 0
    fi
    echo "stopped"
    return 3
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    install) install_packages ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
