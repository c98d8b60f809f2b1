#!/usr/bin/env bash
# A multi-node Ray cluster on one machine: one head plus NTPT_WORKERS worker nodes, all on
# 127.0.0.1, for `ntpt sweep SPEC --address 127.0.0.1:PORT`. See clusters/README.md.
#
#   clusters/local.sh up | down | status
#
# Environment (defaults in brackets):
#   NTPT_HEAD_PORT      GCS port of the head node [6379]
#   NTPT_WORKERS        worker nodes started besides the head [1]
#   NTPT_CPUS_PER_NODE  CPUs each node (head included) advertises [this machine's CPUs / nodes]
#   RAY_AUTH_MODE       exported to every Ray process [disabled]; export the SAME value in the
#                       shell that runs `ntpt sweep`, or it cannot join the cluster
#   NTPT_RAY            the ray executable [ray]
#
# Ray 2.60 replaces 127.0.0.1 by the machine's network address for multi-node clusters (it
# refuses loopback-only ones), so the nodes listen on that address too: use a firewalled machine.
#
# The nodes together get (NTPT_WORKERS + 1) * NTPT_CPUS_PER_NODE CPUs; `up` refuses to give them
# more than the machine has (each sweep actor takes one CPU and runs torch on one thread).
set -euo pipefail

PORT="${NTPT_HEAD_PORT:-6379}"
WORKERS="${NTPT_WORKERS:-1}"
# nproc alone would answer OMP_NUM_THREADS (exported below as 1).
HAVE="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
if [[ "$WORKERS" =~ ^[0-9]+$ ]] && (( HAVE / (10#$WORKERS + 1) >= 1 )); then
    CPUS="${NTPT_CPUS_PER_NODE:-$(( HAVE / (10#$WORKERS + 1) ))}"
else
    CPUS="${NTPT_CPUS_PER_NODE:-1}"
fi
RAY="${NTPT_RAY:-ray}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

usage() {
    cat >&2 <<USAGE
usage: $(basename "$0") up|down|status

  up      start a Ray head on 127.0.0.1:\$NTPT_HEAD_PORT and \$NTPT_WORKERS worker nodes
  down    stop them (ray stop --force: stops EVERY Ray node of this user on this machine)
  status  show the cluster's nodes and resources

environment: NTPT_HEAD_PORT=$PORT NTPT_WORKERS=$WORKERS NTPT_CPUS_PER_NODE=$CPUS RAY_AUTH_MODE=$RAY_AUTH_MODE
then run:    export RAY_AUTH_MODE=$RAY_AUTH_MODE; ntpt sweep SPEC.toml --address 127.0.0.1:$PORT
USAGE
}

die() { echo "local.sh: $*" >&2; exit 1; }

need_ray() {
    command -v "$RAY" >/dev/null 2>&1 ||
        die "'$RAY' not found: activate the project's virtualenv (or set NTPT_RAY=/path/to/ray)"
}

is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }

up() {
    is_count "$PORT" && (( 10#$PORT > 0 && 10#$PORT < 65536 )) ||
        die "NTPT_HEAD_PORT must be a port number, got '$PORT'"
    is_count "$WORKERS" || die "NTPT_WORKERS must be a count >= 0, got '$WORKERS'"
    is_count "$CPUS" && (( 10#$CPUS >= 1 )) || die "NTPT_CPUS_PER_NODE must be >= 1, got '$CPUS'"
    PORT=$((10#$PORT)) WORKERS=$((10#$WORKERS)) CPUS=$((10#$CPUS))  # "08" is not octal here
    need_ray
    local have=$HAVE total
    total=$(( (WORKERS + 1) * CPUS ))
    (( total <= have )) ||
        die "$((WORKERS + 1)) nodes x $CPUS CPUs = $total CPUs, but this machine has $have;" \
            "lower NTPT_WORKERS or NTPT_CPUS_PER_NODE (oversubscribing only slows every restart down)"

    trap 'echo "local.sh: a node failed to start; \"$0 down\" stops those that did" >&2' ERR
    echo "head: 127.0.0.1:$PORT, $CPUS CPUs (RAY_AUTH_MODE=$RAY_AUTH_MODE)"
    "$RAY" start --head --node-ip-address 127.0.0.1 --port "$PORT" --num-cpus "$CPUS" \
        --include-dashboard=false --disable-usage-stats
    local i
    for (( i = 1; i <= WORKERS; i++ )); do
        echo "worker $i/$WORKERS: $CPUS CPUs"
        "$RAY" start --address "127.0.0.1:$PORT" --node-ip-address 127.0.0.1 --num-cpus "$CPUS" \
            --disable-usage-stats
    done
    cat <<DONE

Ray cluster up: $((WORKERS + 1)) nodes, $total CPUs. In the shell that runs the sweep:
    export RAY_AUTH_MODE=$RAY_AUTH_MODE
    ntpt sweep search/math.toml --address 127.0.0.1:$PORT
Stop it with: $0 down
DONE
}

case "${1:-}" in
    up) [[ $# -eq 1 ]] || { usage; exit 2; }; up ;;
    down) [[ $# -eq 1 ]] || { usage; exit 2; }; need_ray; "$RAY" stop --force ;;
    status) [[ $# -eq 1 ]] || { usage; exit 2; }; need_ray; "$RAY" status --address "127.0.0.1:$PORT" ;;
    -h|--help|help) usage; exit 0 ;;
    *) usage; exit 2 ;;
esac
