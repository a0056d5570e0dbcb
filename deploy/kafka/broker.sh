#!/usr/bin/env bash
# Single-node Apache Kafka 3.9.1 (KRaft, combined broker+controller) on
# 127.0.0.1, run from jars fetched with Maven.  No Docker, no Kafka tarball.
# Secure mode: TLS + SASL/SCRAM-SHA-512 on the client listener, mutual TLS
# between broker and controller, ACLs (StandardAuthorizer), one user per role.
#
#   deploy/kafka/broker.sh start [--secure|--no-secure] [--plaintext] [--topic-prefix P]
#                                [--app-id A] [--partitions N]
#   deploy/kafka/broker.sh stop | status | topics | reset
#
# See deploy/kafka/README.md for the environment variables.
set -euo pipefail

readonly KAFKA_VERSION=3.9.1
readonly HOST=127.0.0.1
readonly TOPICS=(calls accounts disconnects charges notifications payments dead-letters account-views:compact)
# The roles of secure mode, each a SCRAM user with its own ACLs (see role_acls);
# `operator` is a super user for people and test harnesses.
readonly ROLES=(worker switch admin billing ops operator)
readonly BROKER_CN=rating-engine-broker   # the broker's certificate: itself a super user

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_HOME_DIR="${RATING_ENGINE_KAFKA_HOME:-$HOME/.cache/rating-engine/kafka-$KAFKA_VERSION}"
DATA_DIR="${RATING_ENGINE_KAFKA_DATA:-$HOME/.cache/rating-engine/kafka-data}"
PORT="${RATING_ENGINE_KAFKA_PORT:-9092}"
START_TIMEOUT="${RATING_ENGINE_KAFKA_START_TIMEOUT:-90}"
SECURE="${RATING_ENGINE_KAFKA_SECURE:-1}"   # 1 (default): TLS + SCRAM + ACLs unless --no-secure
LOCAL_PLAINTEXT="${RATING_ENGINE_KAFKA_PLAINTEXT:-0}"   # 1: as --plaintext
SEC_DIR="$DATA_DIR/security"
MODE_FILE="$DATA_DIR/security.mode"  # how the running broker was started: secure|plaintext
LIBS="$KAFKA_HOME_DIR/libs"
CLASSES="$KAFKA_HOME_DIR/classes"
PID_FILE="$DATA_DIR/broker.pid"
LOG_FILE="$DATA_DIR/broker.log"
OUT_FILE="$DATA_DIR/broker.out"       # JVM stdout/stderr (crashes, early errors)

usage() {
    cat <<EOF
usage: ${0##*/} start [--secure|--no-secure] [--plaintext] [--topic-prefix PREFIX]
                       [--app-id APP] [--partitions N]
       ${0##*/} stop | status | topics | reset | env ROLE

  start   start the broker (idempotent), wait until it accepts clients and
          create the rating-engine topics (--if-not-exists semantics); when
          secure, also the users of every role and the prefix's ACLs
            --secure      TLS + SASL/SCRAM-SHA-512 + ACLs (RATING_ENGINE_KAFKA_SECURE=1)
            --no-secure   plaintext, no authentication (RATING_ENGINE_KAFKA_SECURE=0)
            --plaintext   secure mode only: also PLAINTEXT://$HOST:$LOCAL_PORT for local
                          tools, whose anonymous clients are super users
            --app-id      the worker's app id its ACLs are named for (rating-engine)
  stop    SIGTERM the broker, SIGKILL after 30 s
  status  print running/stopped; exit 0 if running, 3 if stopped
  topics  list the broker's topics
  reset   stop and delete the data dir ($DATA_DIR)
  env     print the path of ROLE's client env file (${ROLES[*]}) of the
          running broker, for \`set -a; . FILE\`: on a plaintext broker the
          plain address; exit 3 if the broker is stopped
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
readonly INTERNAL_PORT=$((PORT + 2))   # secure mode: broker-to-broker and this script (mutual TLS)
readonly LOCAL_PORT=$((PORT + 3))      # secure mode with --plaintext
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

# ---------------------------------------------------------------- security material
#
# Everything lives in $SEC_DIR (mode 0700, its files 0600), inside the data dir and so
# outside the repository: the local CA (ca.p12, its certificate ca.pem for clients),
# the broker's key store and trust store, their password, and for each role a
# password file and an env file with the RATING_ENGINE_KAFKA_* client settings.

NEW_SECRETS=0   # a password file was (re)made by this run: the users must be upserted

random_secret() { head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

secret_file() {   # PATH: a random secret, made once
    [[ -s $1 ]] && return 0
    random_secret >"$1.tmp"
    mv -f "$1.tmp" "$1"
    NEW_SECRETS=1
}

sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

make_certificates() {
    [[ -s $SEC_DIR/broker.p12 && -s $SEC_DIR/truststore.p12 && -s $SEC_DIR/ca.pem ]] && return 0
    command -v keytool >/dev/null 2>&1 || { say "keytool (part of the JDK) not found on PATH"; exit 2; }
    say "generating a local CA and the broker's TLS certificate in $SEC_DIR (keytool)"
    local tmp="$SEC_DIR/certs.tmp.$$" pwf="$SEC_DIR/store.password"
    rm -rf "$tmp" && mkdir "$tmp"
    local kt=(keytool -J-Xmx64m -J-XX:TieredStopAtLevel=1 -noprompt -storetype PKCS12
              -storepass:file "$pwf")
    {
        "${kt[@]}" -genkeypair -alias ca -keyalg RSA -keysize 3072 -validity 3650 \
            -dname "CN=rating-engine local CA" -ext bc:c -keystore "$tmp/ca.p12" &&
        "${kt[@]}" -exportcert -rfc -alias ca -keystore "$tmp/ca.p12" -file "$tmp/ca.pem" &&
        "${kt[@]}" -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 825 \
            -dname "CN=$BROKER_CN" -keystore "$tmp/broker.p12" &&
        "${kt[@]}" -certreq -alias broker -keystore "$tmp/broker.p12" -file "$tmp/broker.csr" &&
        "${kt[@]}" -gencert -alias ca -keystore "$tmp/ca.p12" -infile "$tmp/broker.csr" \
            -outfile "$tmp/broker.pem" -rfc -validity 825 -ext "SAN=dns:localhost,ip:$HOST" \
            -ext "EKU=serverAuth,clientAuth" -ext "KU=digitalSignature,keyEncipherment" &&
        "${kt[@]}" -importcert -alias ca -file "$tmp/ca.pem" -keystore "$tmp/broker.p12" &&
        "${kt[@]}" -importcert -alias broker -file "$tmp/broker.pem" -keystore "$tmp/broker.p12" &&
        "${kt[@]}" -importcert -alias ca -file "$tmp/ca.pem" -keystore "$tmp/truststore.p12"
    } >"$tmp/keytool.log" 2>&1 || { cat "$tmp/keytool.log" >&2; rm -rf "$tmp"; die "keytool failed"; }
    mv -f "$tmp/ca.p12" "$tmp/ca.pem" "$tmp/broker.p12" "$tmp/truststore.p12" "$SEC_DIR/"
    rm -rf "$tmp"
}

# The CA, the stores, the role passwords and env files, the script's own client config.
prepare_security() {
    local old_umask role
    old_umask="$(umask)"
    umask 077
    mkdir -p "$SEC_DIR"
    chmod 700 "$SEC_DIR"
    secret_file "$SEC_DIR/store.password"
    make_certificates
    : >"$SEC_DIR/users.tmp"
    for role in "${ROLES[@]}"; do
        secret_file "$SEC_DIR/$role.password"
        {
            echo "# Kafka client settings of the '$role' role (deploy/kafka/broker.sh): set -a; . THIS"
            echo "RATING_ENGINE_BROKER=$(sh_quote "kafka://$BOOTSTRAP")"
            echo "RATING_ENGINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            echo "RATING_ENGINE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
            echo "RATING_ENGINE_KAFKA_USER=$role"
            echo "RATING_ENGINE_KAFKA_PASSWORD_FILE=$(sh_quote "$SEC_DIR/$role.password")"
            echo "RATING_ENGINE_KAFKA_CA_FILE=$(sh_quote "$SEC_DIR/ca.pem")"
        } >"$SEC_DIR/$role.env.tmp"
        mv -f "$SEC_DIR/$role.env.tmp" "$SEC_DIR/$role.env"
        printf '%s\t%s\n' "$role" "$SEC_DIR/$role.password" >>"$SEC_DIR/users.tmp"
    done
    mv -f "$SEC_DIR/users.tmp" "$SEC_DIR/users"
    local pw
    pw="$(cat "$SEC_DIR/store.password")"
    cat >"$SEC_DIR/script-client.properties.tmp" <<EOF
# this script's admin client: mutual TLS as User:$BROKER_CN on the INTERNAL listener
security.protocol=SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=$SEC_DIR/broker.p12
ssl.keystore.password=$pw
ssl.key.password=$pw
ssl.truststore.type=PKCS12
ssl.truststore.location=$SEC_DIR/truststore.p12
ssl.truststore.password=$pw
EOF
    mv -f "$SEC_DIR/script-client.properties.tmp" "$SEC_DIR/script-client.properties"
    umask "$old_umask"
}

# The ACLs of every role on the topics of PREFIX (tab-separated lines for EnsureTopics:
# principal, resource type, pattern type, name, operation; all ALLOW, any host).
# Read implies Describe, and Write on a topic lets an idempotent producer in.
#   worker   reads the inputs, writes the outputs; everything named <prefix><app-id>...
#            (its changelogs, consumer groups, transactional ids) is its own
#   switch   writes calls, reads disconnects (consumer groups <prefix>switch..., among
#            them the Kamailio bridge's <prefix>switch-bridge-<switch id>)
#   admin    writes accounts, reads account-views and charges: the API and admin tools
#            (groups <prefix>admin...)
#   billing  reads charges, notifications, payments (groups <prefix>billing...)
#   ops      reads dead-letters (groups <prefix>ops...)
#   operator and the broker's own certificate are super users (super.users)
role_acls() {   # PREFIX APP_ID
    local p=$1 own="$1$2" t op
    acl() { printf 'User:%s\t%s\t%s\t%s\t%s\n' "$@"; }
    for t in calls accounts; do acl worker TOPIC LITERAL "$p$t" READ; done
    for t in disconnects charges notifications payments dead-letters account-views; do
        acl worker TOPIC LITERAL "$p$t" WRITE
    done
    for op in READ WRITE CREATE DESCRIBE DESCRIBE_CONFIGS; do acl worker TOPIC PREFIXED "$own" "$op"; done
    acl worker GROUP PREFIXED "$own" READ
    acl worker TRANSACTIONAL_ID PREFIXED "$own" WRITE
    acl switch TOPIC LITERAL "${p}calls" WRITE
    acl switch TOPIC LITERAL "${p}disconnects" READ
    acl switch GROUP PREFIXED "${p}switch" READ
    acl admin TOPIC LITERAL "${p}accounts" WRITE
    acl admin TOPIC LITERAL "${p}account-views" READ
    acl admin TOPIC LITERAL "${p}charges" READ
    acl admin GROUP PREFIXED "${p}admin" READ
    for t in charges notifications payments; do acl billing TOPIC LITERAL "$p$t" READ; done
    acl billing GROUP PREFIXED "${p}billing" READ
    acl ops TOPIC LITERAL "${p}dead-letters" READ
    acl ops GROUP PREFIXED "${p}ops" READ
}

running_secure() {   # how the running broker was started
    [[ "$(head -n1 "$MODE_FILE" 2>/dev/null || true)" == secure ]]
}

client_url() {
    if ((SECURE)); then echo "SASL_SSL://$BOOTSTRAP"; else echo "PLAINTEXT://$BOOTSTRAP"; fi
}

# ---------------------------------------------------------------- config

# The listeners of each mode, then what both share.
listener_config() {
    if ((SECURE)); then
        local listeners="CLIENT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT,INTERNAL://$HOST:$INTERNAL_PORT"
        local advertised="CLIENT://$HOST:$PORT,INTERNAL://$HOST:$INTERNAL_PORT"
        local supers="User:$BROKER_CN;User:operator"
        if ((LOCAL_PLAINTEXT)); then
            listeners+=",LOCAL://$HOST:$LOCAL_PORT"
            advertised+=",LOCAL://$HOST:$LOCAL_PORT"
            supers+=";User:ANONYMOUS"
        fi
        local pw
        pw="$(cat "$SEC_DIR/store.password")"
        cat <<EOF
# clients: TLS + SASL/SCRAM-SHA-512; broker <-> controller and this script: mutual TLS
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SSL,INTERNAL:SSL,LOCAL:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.client.ssl.client.auth=none
ssl.client.auth=required
ssl.enabled.protocols=TLSv1.3,TLSv1.2
ssl.keystore.type=PKCS12
ssl.keystore.location=$SEC_DIR/broker.p12
ssl.keystore.password=$pw
ssl.key.password=$pw
ssl.truststore.type=PKCS12
ssl.truststore.location=$SEC_DIR/truststore.p12
ssl.truststore.password=$pw
ssl.endpoint.identification.algorithm=https
# a certificate's principal is its CN: User:$BROKER_CN
ssl.principal.mapping.rules=RULE:^CN=([A-Za-z0-9._-]+)\$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=$supers
EOF
    else
        cat <<EOF
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
EOF
    fi
}

write_config() {
    mkdir -p "$DATA_DIR/logs"
    local old_umask
    old_umask="$(umask)"
    umask 077   # secure mode writes the key store password into it
    {
        cat <<EOF
# generated by deploy/kafka/broker.sh on every start: edit the script, not this
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
EOF
        listener_config
        cat <<EOF
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
# records up to 8 MiB: an oversized input reaches the worker and is dead-lettered
# (too_large, over 1 MiB) instead of failing at the producer unseen; outputs that echo a
# large input's fields fit too
message.max.bytes=8388608
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=168
log.segment.bytes=1073741824
EOF
    } >"$DATA_DIR/server.properties.tmp"
    mv -f "$DATA_DIR/server.properties.tmp" "$DATA_DIR/server.properties"
    umask "$old_umask"
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
    local app_id="${RATING_ENGINE_APP_ID:-rating-engine}"
    while (($#)); do
        case $1 in
            --topic-prefix) (($# >= 2)) || die "--topic-prefix needs a value"; prefix=$2; shift 2 ;;
            --topic-prefix=*) prefix=${1#*=}; shift ;;
            --partitions) (($# >= 2)) || die "--partitions needs a value"; partitions=$2; shift 2 ;;
            --partitions=*) partitions=${1#*=}; shift ;;
            --app-id) (($# >= 2)) || die "--app-id needs a value"; app_id=$2; shift 2 ;;
            --app-id=*) app_id=${1#*=}; shift ;;
            --secure) SECURE=1; shift ;;
            --no-secure) SECURE=0; shift ;;
            --plaintext) LOCAL_PLAINTEXT=1; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown option for start: $1" ;;
        esac
    done
    is_uint "$partitions" && ((partitions >= 1)) || die "--partitions must be a positive integer, got '$partitions'"
    [[ $SECURE == [01] ]] || die "RATING_ENGINE_KAFKA_SECURE must be 0 or 1, got '$SECURE'"
    [[ $LOCAL_PLAINTEXT == [01] ]] || die "RATING_ENGINE_KAFKA_PLAINTEXT must be 0 or 1, got '$LOCAL_PLAINTEXT'"
    [[ $app_id =~ ^[A-Za-z0-9._-]+$ ]] || die "--app-id must be a topic-name word, got '$app_id'"

    require_tools
    take_lock
    local deadline=$((SECONDS + START_TIMEOUT))
    local pid launched=0
    if pid="$(broker_pid)"; then
        # a running broker keeps the mode it was started in
        local running=0
        running_secure && running=1
        if ((running != SECURE)); then
            say "the running broker is $( ((running)) && echo secure || echo plaintext); keeping that (stop it and start again to switch)"
            SECURE=$running
        fi
        if port_open "$PORT"; then
            say "already running (pid $pid, $(client_url))"
        else
            say "broker (pid $pid) is starting; waiting"
        fi
        ((SECURE)) && prepare_security
    else
        if port_open "$PORT"; then
            die "$BOOTSTRAP is already in use by a process this script did not start (pid file $PID_FILE); stop it or set RATING_ENGINE_KAFKA_PORT"
        fi
        port_open "$CONTROLLER_PORT" && die "controller port $HOST:$CONTROLLER_PORT is already in use"
        if ((SECURE)); then
            port_open "$INTERNAL_PORT" && die "internal port $HOST:$INTERNAL_PORT is already in use"
            ((LOCAL_PLAINTEXT)) && port_open "$LOCAL_PORT" && die "port $HOST:$LOCAL_PORT (--plaintext) is already in use"
        fi
        fetch_jars
        mkdir -p "$DATA_DIR"
        ((SECURE)) && prepare_security
        write_config
        format_storage
        LOG_LINES_BEFORE="$({ wc -l <"$LOG_FILE"; } 2>/dev/null || echo 0)"
        say "starting Kafka $KAFKA_VERSION on $(client_url) (controller $HOST:$CONTROLLER_PORT), data in $DATA_DIR"
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
        { ((SECURE)) && echo secure || echo plaintext; } >"$MODE_FILE"
        launched=1
    fi
    fetch_jars        # no-op when cached; needed for the helper if a broker runs already
    [[ -f $DATA_DIR/tools-log4j.properties ]] || write_config
    build_helper
    wait_for_port "$pid" "$deadline"

    local names=() t remaining helper=("${HELPER[@]}") bootstrap=$BOOTSTRAP
    for t in "${TOPICS[@]}"; do names+=("$prefix$t"); done
    if ((SECURE)); then
        # as the broker's own certificate (a super user) on the mutual-TLS listener; the
        # users once per broker start (or when a password file was made), the ACLs each time
        bootstrap="$HOST:$INTERNAL_PORT"
        (umask 077 && role_acls "$prefix" "$app_id" >"$SEC_DIR/acls")
        helper+=(--config "$SEC_DIR/script-client.properties" --acls "$SEC_DIR/acls")
        if ((launched || NEW_SECRETS)) || [[ ! -f $SEC_DIR/users.done ]]; then
            rm -f "$SEC_DIR/users.done"
            helper+=(--users "$SEC_DIR/users")
        fi
    fi
    remaining=$((deadline - SECONDS))
    ((remaining >= 15)) || remaining=15
    "${helper[@]}" ensure "$bootstrap" "$remaining" "$partitions" "${names[@]}" >&2 \
        || die "the broker runs (pid $pid) but the topics could not be created; see $LOG_FILE"
    if ((!SECURE)); then
        printf '%s\n' "# Kafka client settings of a plaintext broker (deploy/kafka/broker.sh): set -a; . THIS" \
            "RATING_ENGINE_BROKER=$(sh_quote "kafka://$BOOTSTRAP")" \
            "RATING_ENGINE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" >"$DATA_DIR/plaintext.env.tmp"
        mv -f "$DATA_DIR/plaintext.env.tmp" "$DATA_DIR/plaintext.env"
    fi
    local shown=("${TOPICS[@]%:compact}")
    if ((SECURE)); then
        (umask 077 && : >"$SEC_DIR/users.done")
        say "ready: $(client_url) (pid $pid), topics ${prefix}{$(IFS=,; echo "${shown[*]}")} with $partitions partitions and their ACLs (worker app id $app_id)"
        say "client settings: set -a; . $SEC_DIR/ROLE.env  (ROLE: ${ROLES[*]})"
        ((LOCAL_PLAINTEXT)) && grep -q "LOCAL://" "$DATA_DIR/server.properties" \
            && say "also PLAINTEXT://$HOST:$LOCAL_PORT for local tools: anyone on this machine is a super user there"
    else
        say "ready: $(client_url) (pid $pid), topics ${prefix}{$(IFS=,; echo "${shown[*]}")} with $partitions partitions"
    fi
    return 0
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
        running_secure && SECURE=1 || SECURE=0
        if port_open "$PORT"; then
            if ((SECURE)); then
                echo "running (pid $pid, $(client_url), clients: $SEC_DIR/ROLE.env)"
            else
                echo "running (pid $pid, $(client_url))"
            fi
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
    if running_secure && [[ -f $SEC_DIR/script-client.properties ]]; then
        "${HELPER[@]}" --config "$SEC_DIR/script-client.properties" list "$HOST:$INTERNAL_PORT" 15
    else
        "${HELPER[@]}" list "$BOOTSTRAP" 15
    fi
}

cmd_env() {   # ROLE
    local role=$1 r
    for r in "${ROLES[@]}"; do [[ $r == "$role" ]] && break; done
    [[ $r == "$role" ]] || die "unknown role '$role' (roles: ${ROLES[*]})"
    broker_pid >/dev/null || { say "the broker is stopped"; return 3; }
    local file="$DATA_DIR/plaintext.env"
    running_secure && file="$SEC_DIR/$role.env"
    [[ -f $file ]] || die "$file is missing: run '$0 start' again"
    echo "$file"
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
    env)
        (($# == 1)) || { usage >&2; die "env takes a role"; }
        cmd_env "$1" ;;
    stop|status|topics|reset)
        (($# == 0)) || { usage >&2; die "$verb takes no options"; }
        "cmd_$verb" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 64 ;;
esac
