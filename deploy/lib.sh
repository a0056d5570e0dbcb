# Shell helpers shared by deploy/demo.sh and deploy/kafka/broker.sh (sourced, not run).
# The caller defines `say` (its own prefix on stderr).

# stop_pid PID WHAT: SIGTERM, up to 30 s for a clean exit, then SIGKILL and up to 5 s more.
# Returns at once when PID is gone; a child of the caller still has to be reaped with `wait`.
stop_pid() {
    local pid=$1 what=$2 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "$what (pid $pid) still running after 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
}
