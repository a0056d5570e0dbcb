#!/usr/bin/env bash
# Single-node Apache Kafka 3.9.1 (KRaft, combined broker+controller) on
# 127.0.0.1, run from jars fetched with Maven.  No Docker, no Kafka tarball.
#
#   deploy/kafka/broker.sh start [--topic-prefix P] [--partitions N]
#   deploy/kafka/broker.sh stop | status | topics | reset
#
# See deploy/kafka/README.md for the environment variables.
set -euo pipefail

readonly KAFKA_VERSION=3.9.1
readonly HOST=127.0.0.1
readonly TOPICS=(calls accounts disconnects charges notifications payments dead-letters)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_HOME_DIR="${RATING_ENGINE_KAFKA_HOME:-$HOME/.cache/rating-engine/kafka-$KAFKA_VERSION}"
DATA_DIR="${RATING_ENGINE_KAFKA_DATA:-$HOME/.cache/rating-engine/kafka-data}"
PORT="${RATING_ENGINE_KAFKA_PORT:-9092}"
START_TIMEOUT="${RATING_ENGINE_KAFKA_START_TIMEOUT:-90}"
LIBS="$KAFKA_HOME_DIR/libs"
CLASSES="$KAFKA_HOME_DIR/classes"
PID_FILE="$DATA_DIR/broker.pid"
LOG_FILE="$DATA_DIR/broker.log"
OUT_FILE="$DATA_DIR/broker.out"       # JVM stdout/stderr (crashes, early errors)

usage() {
    cat <<EOF
usage: ${0##*/} start [--topic-prefix PREFIX] [--partitions N]
       ${0##*/} stop | status | topics | reset

  start   start the broker (idempotent), wait until it accepts clients and
          create the rating-engine topics (--if-not-exists semantics)
  stop    SIGTERM the broker, SIGKILL after 30 s
  status  print running/stopped; exit 0 if running, 3 if stopped
  topics  list the broker's topics
  reset   stop and delete the data dir ($DATA_DIR)
EOF
}

say() { echo "broker.sh: $*" >&2; }
# shellcheck source=deploy/lib.sh
source "$HERE/../lib.sh"
die() { say "$*"; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

is_uint "$PORT" && ((PORT > 0 && PORT < 65535)) || die "RATING_ENGINE_KAFKA_PORT must be a port number, got '$PORT'"
is_uint "$START_TIMEOUT" || die "RATING_ENGINE_KAFKA_START_TIMEOUT must be seconds, got '$START_TIMEOUT'"
readonly CONTROLLER_PORT=$((PORT + 1))
readonly BOOTSTRAP="$HOST:$PORT"

require_tools() {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(java)
    command -v mvn >/dev/null 2>&1 || missing+=(mvn)
    if ((${#missing[@]})); then
        echo "broker.sh: ${missing[*]} not found on PATH; the local Kafka broker needs a JDK (11+, e.g. OpenJDK 17) and Maven 3 (apt-get install openjdk-17-jdk-headless maven)" >&2
        exit 2
    fi
    local v major
    v="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${v%%.*}"
    [[ $major == 1 ]] && major="$(echo "$v" | cut -d. -f2)"   # 1.8.0_x -> 8
    if is_uint "$major" && ((major < 11)); then
        echo "broker.sh: Kafka $KAFKA_VERSION needs Java 11 or newer, found java $v" >&2
        exit 2
    fi
}

# pid of our broker if it is alive (and really is a Kafka broker, not a reused pid)
broker_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    is_uint "$pid" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(ps -ww -p "$pid" -o args= 2>/dev/null || true)" == *kafka.Kafka* ]] || return 1
    echo "$pid"
}

port_open() {
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
    else
        bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
    fi
}

# Serialise start/stop/reset of the same data dir (parallel CI steps).
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    mkdir -p "$(dirname "$DATA_DIR")"
    exec 9>"$DATA_DIR.ctl.lock"
    flock -w $((START_TIMEOUT + 60)) 9 || die "another broker.sh holds $DATA_DIR.ctl.lock"
}

# ---------------------------------------------------------------- jars + helper

fetch_jars() {
    # libs/.pom is a copy of the pom the jars came from: skip Maven when equal
    if [[ -f $LIBS/.pom ]] && cmp -s "$HERE/pom.xml" "$LIBS/.pom"; then
        return 0
    fi
    say "fetching Kafka $KAFKA_VERSION jars with Maven into $LIBS"
    local tmp="$KAFKA_HOME_DIR/libs.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$KAFKA_HOME_DIR"
    # output kept aside: Maven 3.8 prints stray colour escapes even with -q -B
    if ! mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
        cat "$tmp.mvn.log" >&2
        rm -rf "$tmp" "$tmp.mvn.log"
        die "Maven could not fetch the Kafka jars (network? proxy settings in ~/.m2/settings.xml?)"
    fi
    rm -f "$tmp.mvn.log"
    [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || { rm -rf "$tmp"; die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"; }
    cp "$HERE/pom.xml" "$tmp/.pom"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
}

# HELPER: command prefix running EnsureTopics (compiled once into the cache)
HELPER=()
LOG_LINES_BEFORE=0
build_helper() {
    local src="$HERE/EnsureTopics.java"
    local jvm=(java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
               -Dlog4j.configuration="file:$DATA_DIR/tools-log4j.properties")
    if [[ -f $CLASSES/EnsureTopics.class ]] && cmp -s "$src" "$CLASSES/EnsureTopics.java"; then
        HELPER=("${jvm[@]}" -cp "$LIBS/*:$CLASSES" EnsureTopics)
    elif command -v javac >/dev/null 2>&1; then
        local tmp="$KAFKA_HOME_DIR/classes.tmp.$$"
        rm -rf "$tmp" && mkdir -p "$tmp"
        javac -nowarn -d "$tmp" -cp "$LIBS/*" "$src" || { rm -rf "$tmp"; die "cannot compile $src"; }
        cp "$src" "$tmp/EnsureTopics.java"
        rm -rf "$CLASSES"
        mv "$tmp" "$CLASSES"
        HELPER=("${jvm[@]}" -cp "$LIBS/*:$CLASSES" EnsureTopics)
    else
        # a JRE without javac: Java 11+ source-file mode compiles in memory
        HELPER=("${jvm[@]}" -cp "$LIBS/*" "$src")
    fi
}

# ---------------------------------------------------------------- config

write_config() {
    mkdir -p "$DATA_DIR/logs"
    cat >"$DATA_DIR/server.properties" <<EOF
# generated by deploy/kafka/broker.sh on every start: edit the script, not this
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR/logs
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# short group sessions (a dead worker's partitions move within seconds) and a prompt
# abort of a dead worker's open transaction (read_committed readers wait for it)
group.min.session.timeout.ms=1000
transaction.abort.timed.out.transaction.cleanup.interval.ms=500
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=168
log.segment.bytes=1073741824
EOF
    # broker log4j config: template from the repo, \${kafka.logs.dir} -> data dir
    cp "$HERE/log4j.properties" "$DATA_DIR/log4j.properties"
    # JVM tools (StorageTool, EnsureTopics): errors only, to stderr
    cat >"$DATA_DIR/tools-log4j.properties" <<'EOF'
log4j.rootLogger=ERROR, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# What `kafka.tools.StorageTool random-uuid` prints (16 random bytes, base64url,
# no padding, never starting with "-"), minus the 1.5 s of a JVM start.
new_cluster_id() {
    command -v base64 >/dev/null 2>&1 && [[ -r /dev/urandom ]] || return 1
    local id i
    for ((i = 0; i < 20; i++)); do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        if [[ $id =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{20}[AQgw]$ ]]; then
            echo "$id"
            return 0
        fi
    done
    return 1
}

format_storage() {
    [[ -f $DATA_DIR/logs/meta.properties ]] && return 0
    local tool=(java -Xmx256m -Dlog4j.configuration="file:$DATA_DIR/tools-log4j.properties"
                -cp "$LIBS/*" kafka.tools.StorageTool)
    local cid
    if [[ -s $DATA_DIR/cluster.id ]]; then
        cid="$(cat "$DATA_DIR/cluster.id")"
    else
        cid="$(new_cluster_id)" || cid="$("${tool[@]}" random-uuid | tail -n1)"
        [[ -n $cid ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
        echo "$cid" >"$DATA_DIR/cluster.id"
    fi
    say "formatting $DATA_DIR/logs (cluster id $cid)"
    "${tool[@]}" format -t "$cid" -c "$DATA_DIR/server.properties" --ignore-formatted >>"$OUT_FILE" 2>&1 \
        || { tail -n 20 "$OUT_FILE" >&2; die "kafka.tools.StorageTool format failed"; }
}

# ---------------------------------------------------------------- verbs

wait_for_port() {   # pid deadline
    local pid=$1 deadline=$2
    until port_open "$PORT"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            say "the broker exited during startup; $OUT_FILE and the end of $LOG_FILE:"
            cat "$OUT_FILE" >&2 2>/dev/null || true
            local fresh
            fresh="$(tail -n "+$((LOG_LINES_BEFORE + 1))" "$LOG_FILE" 2>/dev/null || true)"
            if grep -qE ' (ERROR|FATAL) ' <<<"$fresh"; then
                grep -E ' (ERROR|FATAL) ' -A5 <<<"$fresh" | tail -n 40 >&2
            else
                tail -n 20 <<<"$fresh" >&2
            fi
            exit 1
        fi
        ((SECONDS < deadline)) || die "the broker (pid $pid) did not open $BOOTSTRAP within ${START_TIMEOUT}s; see $LOG_FILE"
        sleep 0.3
    done
}

cmd_start() {
    local prefix="${RATING_ENGINE_TOPIC_PREFIX:-}"
    local partitions="${RATING_ENGINE_PARTITIONS:-4}"
    while (($#)); do
        case $1 in
            --topic-prefix) (($# >= 2)) || die "--topic-prefix needs a value"; prefix=$2; shift 2 ;;
            --topic-prefix=*) prefix=${1#*=}; shift ;;
            --partitions) (($# >= 2)) || die "--partitions needs a value"; partitions=$2; shift 2 ;;
            --partitions=*) partitions=${1#*=}; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown option for start: $1" ;;
        esac
    done
    is_uint "$partitions" && ((partitions >= 1)) || die "--partitions must be a positive integer, got '$partitions'"

    require_tools
    take_lock
    local deadline=$((SECONDS + START_TIMEOUT))
    local pid
    if pid="$(broker_pid)"; then
        if port_open "$PORT"; then
            say "already running (pid $pid, PLAINTEXT://$BOOTSTRAP)"
        else
            say "broker (pid $pid) is starting; waiting"
        fi
    else
        if port_open "$PORT"; then
            die "$BOOTSTRAP is already in use by a process this script did not start (pid file $PID_FILE); stop it or set RATING_ENGINE_KAFKA_PORT"
        fi
        port_open "$CONTROLLER_PORT" && die "controller port $HOST:$CONTROLLER_PORT is already in use"
        fetch_jars
        write_config
        format_storage
        LOG_LINES_BEFORE="$({ wc -l <"$LOG_FILE"; } 2>/dev/null || echo 0)"
        say "starting Kafka $KAFKA_VERSION on PLAINTEXT://$BOOTSTRAP (controller $HOST:$CONTROLLER_PORT), data in $DATA_DIR"
        # shellcheck disable=SC2086  # RATING_ENGINE_KAFKA_JVM_OPTS is a word list
        nohup java -Xms256m -Xmx512m \
            -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
            ${RATING_ENGINE_KAFKA_JVM_OPTS:-} \
            -Dkafka.logs.dir="$DATA_DIR" \
            -Dlog4j.configuration="file:$DATA_DIR/log4j.properties" \
            -cp "$LIBS/*" kafka.Kafka "$DATA_DIR/server.properties" \
            >"$OUT_FILE" 2>&1 </dev/null 9>&- &   # 9>&-: the broker must not inherit the lock
        pid=$!
        echo "$pid" >"$PID_FILE"
    fi
    fetch_jars        # no-op when cached; needed for the helper if a broker runs already
    [[ -f $DATA_DIR/tools-log4j.properties ]] || write_config
    build_helper
    wait_for_port "$pid" "$deadline"

    local names=() t remaining
    for t in "${TOPICS[@]}"; do names+=("$prefix$t"); done
    remaining=$((deadline - SECONDS))
    ((remaining >= 15)) || remaining=15
    "${HELPER[@]}" ensure "$BOOTSTRAP" "$remaining" "$partitions" "${names[@]}" >&2 \
        || die "the broker runs (pid $pid) but the topics could not be created; see $LOG_FILE"
    say "ready: PLAINTEXT://$BOOTSTRAP (pid $pid), topics ${prefix}{$(IFS=,; echo "${TOPICS[*]}")} with $partitions partitions"
}

cmd_stop() {
    take_lock
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        echo "stopped"
        return 0
    fi
    stop_pid "$pid" "broker"
    rm -f "$PID_FILE"
    echo "stopped"
}

cmd_status() {
    local pid
    if pid="$(broker_pid)"; then
        if port_open "$PORT"; then
            echo "running (pid $pid, PLAINTEXT://$BOOTSTRAP)"
        else
            echo "running (pid $pid, not yet accepting connections on $BOOTSTRAP)"
        fi
        return 0
    fi
    if port_open "$PORT"; then
        echo "stopped ($BOOTSTRAP is in use by a process this script did not start)"
    else
        echo "stopped"
    fi
    return 3
}

cmd_topics() {
    require_tools
    [[ -f $LIBS/.pom ]] || die "no jars in $LIBS yet: run '$0 start' first"
    [[ -f $DATA_DIR/tools-log4j.properties ]] || write_config
    build_helper
    "${HELPER[@]}" list "$BOOTSTRAP" 15
}

cmd_reset() {
    cmd_stop >/dev/null
    rm -rf "$DATA_DIR"
    echo "stopped; deleted $DATA_DIR"
}

verb="${1:-}"
(($#)) && shift
case $verb in
    start) cmd_start "$@" ;;
    stop|status|topics|reset)
        (($# == 0)) || { usage >&2; die "$verb takes no options"; }
        "cmd_$verb" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 64 ;;
esac
