#!/usr/bin/env bash
# A Postgres failover trial on one machine: a pg_auto_failover monitor, a primary and a
# synchronous secondary (database "widgets"), all three under a folder of the caller's.
#
# usage:
#   deploy/pg-auto-failover.sh start DIR [MONITOR_PORT [NODE1_PORT [NODE2_PORT]]]
#                                   (defaults 5440, 5441, 5442; DIR is made if missing)
#   deploy/pg-auto-failover.sh uri DIR          the nodes' multi-host URL (libpq form)
#   deploy/pg-auto-failover.sh state DIR [--json]   pg_autoctl show state
#   deploy/pg-auto-failover.sh kill DIR NODE    lose NODE (node1 or node2) as a machine is lost
#   deploy/pg-auto-failover.sh restart DIR NODE bring a killed NODE back: it rejoins as secondary
#   deploy/pg-auto-failover.sh stop DIR         stop all three; removing DIR is the caller's job
#
# Needs Debian's postgresql-15-auto-failover and pg-auto-failover-cli. Run as root, every
# pg_autoctl command runs as the postgres user (PG_USER), which gets DIR; run as anyone else, the
# cluster is that user's. PG_CTL names another pg_ctl. Logs: DIR/monitor.log, DIR/node1.log,
# DIR/node2.log, and each Postgres's own under DIR/<name>/log.
#
# For a trial only. Everything listens on 127.0.0.1 and trusts every connection from there
# (--auth trust), without TLS (--no-ssl): the traffic never leaves the loopback interface, and the
# URL says sslmode=prefer. Three machines need real authentication and TLS: docs/operations.md.
#
# Failure detection is shortened so that a trial fails over in seconds (production defaults
# after the #):
#   monitor, pgautofailover.* (ALTER SYSTEM, reloaded):
#     health_check_period 1 s (5 s), health_check_timeout 1 s (5 s),
#     health_check_max_retries 1 (2), health_check_retry_delay 0.5 s (2 s),
#     node_considered_unhealthy_timeout 3 s (20 s), primary_demote_timeout 3 s (30 s),
#     startup_grace_period 3 s (10 s)
#   keepers, timeout.* (pg_autoctl config set):
#     network_partition_timeout 2 s (20 s), postgresql_restart_failure_timeout 5 s (20 s)
#   nodes (ALTER SYSTEM): wal_retrieve_retry_interval 0.5 s (5 s)
# The order matters as in production: a primary cut off from the monitor and its standby stops
# itself after network_partition_timeout, before the monitor, primary_demote_timeout after
# choosing to fail over, lets the standby take writes.
set -euo pipefail

PG_CTL=${PG_CTL:-/usr/lib/postgresql/15/bin/pg_ctl}
PG_USER=${PG_USER:-postgres}
START_TIMEOUT=${START_TIMEOUT:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

readonly NAMES=(monitor node1 node2)
readonly MONITOR_SETTINGS=(
  "pgautofailover.health_check_period = 1000"
  "pgautofailover.health_check_timeout = 1000"
  "pgautofailover.health_check_max_retries = 1"
  "pgautofailover.health_check_retry_delay = 500"
  "pgautofailover.node_considered_unhealthy_timeout = 3000"
  "pgautofailover.primary_demote_timeout = 3000"
  "pgautofailover.startup_grace_period = 3000"
)
# A standby that lost its primary waits this long between attempts to reach it again, and a
# promotion asked for meanwhile waits for the end of that pause (5 s by default).
readonly WAL_RETRIEVE_RETRY_INTERVAL=500ms
readonly KEEPER_SETTINGS=(
  "timeout.network_partition_timeout 2"
  "timeout.postgresql_restart_failure_timeout 5"
)

dir=""
monitor_port=""
monitor_uri=""
node1_port=""

die() {
  echo "pg-auto-failover: $*" >&2
  exit 1
}

say() {
  echo "pg-auto-failover: $*" >&2
}

# The command line that runs "$@" as the cluster's user, in `argv`. pg_autoctl keeps its
# configuration, state and pid files under XDG_* (else in the user's home and /tmp) and Postgres
# its sockets in /var/run/postgresql: both would outlive DIR, a killed node's socket and lock file
# included, so all of it goes in DIR (PG_REGRESS_SOCK_DIR is pg_autoctl's own switch for
# `postgres -k`, from its test suite).
pg_argv() {
  # The caller's libpq settings (PGUSER, PGDATABASE, ...) would send psql and pg_autoctl elsewhere.
  argv=(env -u PGUSER -u PGDATABASE -u PGPORT -u PGDATA -u PGSERVICE -u PGOPTIONS -u PGPASSWORD
    "XDG_CONFIG_HOME=$dir/pg_autoctl/config"
    "XDG_DATA_HOME=$dir/pg_autoctl/data"
    "XDG_RUNTIME_DIR=$dir/pg_autoctl/run"
    "PG_REGRESS_SOCK_DIR=$dir/sockets"
    "PGHOST=$dir/sockets"
    "TMPDIR=$dir/tmp"
    "$@")
  if [[ $EUID -eq 0 ]]; then
    argv=(runuser -u "$PG_USER" -- "${argv[@]}")
  fi
}

as_pg() {
  local argv
  pg_argv "$@"
  "${argv[@]}"
}

# Whether process $1 runs: a killed one stays a zombie until reaped, which `kill -0` counts.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # past the command name, which may hold spaces
  [[ ${stat%% *} != Z ]]
}

# The pid of NAME's `pg_autoctl run` (its process group: keeper, Postgres controller, postmaster),
# if it runs.
service_pid() {
  local file="$dir/pg_autoctl/run/pg_autoctl$dir/$1/pg_autoctl.pid" pid
  [[ -r $file ]] || return 1
  read -r pid <"$file" || return 1
  if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
    echo "$pid"
  else
    return 1
  fi
}

# Every process whose working directory is in DIR: each `pg_autoctl run` and its children work in
# their PGDATA (run_in_background), and so do a postmaster and its children. That finds the
# stragglers of a killed node too; this script itself works in /.
processes_in_dir() {
  local proc cwd
  for proc in /proc/[0-9]*; do
    cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
    if [[ $cwd == "$dir" || $cwd == "$dir/"* ]]; then
      echo "${proc#/proc/}"
    fi
  done
}

wait_for() {
  local what=$1 deadline=$((SECONDS + START_TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "gave up waiting for $what after ${START_TIMEOUT} s; see $dir/*.log"
    sleep 0.2
  done
}

# `pg_autoctl run` for NAME, in its own process group (setsid) so that `kill` takes the node's
# every process at once, and working in DIR so that `stop` finds what a kill left over. Not in
# its PGDATA: a node that rejoins by pg_basebackup (when pg_rewind fails) gets a new PGDATA, and
# a keeper left in the deleted one can no longer start Postgres ("could not identify current
# directory").
run_in_background() {
  local argv
  pg_argv setsid pg_autoctl run --pgdata "$dir/$1"
  (cd "$dir" && exec "${argv[@]}" >>"$dir/$1.log" 2>&1 </dev/null) &
}

monitor_sql() {
  as_pg psql -X -q -v ON_ERROR_STOP=1 -p "$monitor_port" -d pg_auto_failover -Atc "$1"
}

# in_place NAME STATE [NAME STATE ...]: each node is in STATE, as assigned by the monitor.
in_place() {
  local state
  state=$(as_pg pg_autoctl show state --pgdata "$dir/monitor")
  while (($# > 0)); do
    grep -Eq "^ *$1 .*\| +$2 +\| +$2 *\$" <<<"$state" || return 1
    shift 2
  done
}

# The primary asks for a synchronous standby only once the secondary has caught up.
synchronous() {
  local names
  names=$(as_pg psql -X -p "$1" -d widgets -Atc 'SHOW synchronous_standby_names')
  [[ -n $names ]]
}

create_node() {
  local name=$1 port=$2 setting
  as_pg pg_autoctl create postgres --pgdata "$dir/$name" --pgport "$port" --name "$name" \
    --hostname 127.0.0.1 --listen 127.0.0.1 --dbname widgets --monitor "$monitor_uri" \
    --auth trust --no-ssl --pgctl "$PG_CTL" >>"$dir/$name.log" 2>&1
  for setting in "${KEEPER_SETTINGS[@]}"; do
    # shellcheck disable=SC2086 # "section.option value": two words
    as_pg pg_autoctl config set --pgdata "$dir/$name" $setting >/dev/null
  done
  run_in_background "$name"
}

# Set on the primary before the secondary is made: pg_basebackup copies postgresql.auto.conf.
set_wal_retrieve_retry_interval() {
  as_pg psql -X -q -v ON_ERROR_STOP=1 -p "$node1_port" -d widgets \
    -c "ALTER SYSTEM SET wal_retrieve_retry_interval = '$WAL_RETRIEVE_RETRY_INTERVAL'" \
    -c "SELECT pg_reload_conf()"
}

cmd_start() {
  monitor_port=${1:-5440}
  node1_port=${2:-5441}
  local node2_port=${3:-5442} setting began=$SECONDS
  command -v pg_autoctl >/dev/null || die "pg_autoctl is missing: apt-get install postgresql-15-auto-failover pg-auto-failover-cli"
  [[ -x $PG_CTL ]] || die "no pg_ctl at $PG_CTL (set PG_CTL)"
  [[ ! -e $dir/monitor ]] || die "$dir already holds a cluster"
  mkdir -p "$dir"/pg_autoctl/{config,data,run} "$dir/sockets" "$dir/tmp"
  if [[ $EUID -eq 0 ]]; then
    chown -R "$PG_USER:" "$dir"
    runuser -u "$PG_USER" -- test -w "$dir" ||
      die "$PG_USER cannot reach $dir: every folder above it needs o+x"
  fi
  trap 'say "start failed, stopping what started; logs in $dir"; cmd_stop' EXIT

  say "monitor on 127.0.0.1:$monitor_port"
  as_pg pg_autoctl create monitor --pgdata "$dir/monitor" --pgport "$monitor_port" \
    --hostname 127.0.0.1 --listen 127.0.0.1 --auth trust --no-ssl --pgctl "$PG_CTL" \
    >>"$dir/monitor.log" 2>&1
  run_in_background monitor
  wait_for "the monitor" monitor_sql "SELECT 1 FROM pgautofailover.formation"
  for setting in "${MONITOR_SETTINGS[@]}"; do
    monitor_sql "ALTER SYSTEM SET $setting"
  done
  monitor_sql "SELECT pg_reload_conf()" >/dev/null
  monitor_uri=$(as_pg pg_autoctl show uri --pgdata "$dir/monitor" --formation monitor)

  say "primary on 127.0.0.1:$node1_port"
  create_node node1 "$node1_port"
  wait_for "node1 to take settings" set_wal_retrieve_retry_interval
  say "secondary on 127.0.0.1:$node2_port"
  create_node node2 "$node2_port"
  wait_for "node1 primary and node2 its secondary" in_place node1 primary node2 secondary
  say "node1 primary, node2 secondary after $((SECONDS - began)) s"
  wait_for "synchronous replication" synchronous "$node1_port"
  trap - EXIT
  say "ready in $((SECONDS - began)) s"
  cmd_uri
}

cmd_uri() {
  as_pg pg_autoctl show uri --pgdata "$dir/monitor" --formation default
}

cmd_state() {
  as_pg pg_autoctl show state --pgdata "$dir/monitor" "$@"
}

cmd_kill() {
  local name=${1:-} pid
  [[ $name == node1 || $name == node2 ]] || die "kill: which node? node1 or node2"
  pid=$(service_pid "$name") || die "$name is not running"
  # The keeper, its Postgres controller and the postmaster die together, as on a lost machine:
  # that always fails over. The postmaster alone mostly does not (its controller restarts it
  # within a second; only when the keeper reports it down first does the monitor fail over),
  # nor the keeper alone (its controller lives on and keeps Postgres up).
  kill -KILL -- "-$pid"
}

cmd_restart() {
  local name=${1:-} other
  [[ $name == node1 || $name == node2 ]] || die "restart: which node? node1 or node2"
  if service_pid "$name" >/dev/null; then die "$name is running"; fi
  other=$([[ $name == node1 ]] && echo node2 || echo node1)
  run_in_background "$name"
  wait_for "$name to rejoin as secondary" in_place "$other" primary "$name" secondary
  say "$name is the secondary again"
}

cmd_stop() {
  local name pid pids=() deadline=$((SECONDS + STOP_TIMEOUT))
  [[ -d $dir ]] || return 0
  for name in "${NAMES[@]}"; do
    if pid=$(service_pid "$name"); then
      as_pg pg_autoctl stop --pgdata "$dir/$name" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  # What a killed node left: the postmaster's children end on their own soon after it, and a
  # keeper killed alone leaves its Postgres controller running.
  deadline=$((SECONDS + 5))
  while [[ -n $(processes_in_dir) ]] && ((SECONDS < deadline)); do sleep 0.1; done
  for pid in $(processes_in_dir); do
    say "killing straggler $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    kill -KILL "$pid" 2>/dev/null || true
  done
}

main() {
  local command=${1:-} target=${2:-}
  [[ -n $command && -n $target ]] || die "usage: $0 start|uri|state|kill|restart|stop DIR [...]"
  shift 2
  if [[ $command == start ]]; then
    mkdir -p "$target"
  elif [[ ! -d $target ]]; then
    [[ $command == stop ]] && return 0
    die "no folder $target"
  fi
  dir=$(cd "$target" && pwd -P)
  # Out of DIR (see processes_in_dir), and somewhere the cluster's user may be.
  cd /
  case $command in
    start) cmd_start "$@" ;;
    uri) cmd_uri ;;
    state) cmd_state "$@" ;;
    kill) cmd_kill "$@" ;;
    restart) cmd_restart "$@" ;;
    stop) cmd_stop ;;
    *) die "unknown command $command: start, uri, state, kill, restart or stop" ;;
  esac
}

main "$@"
