#!/usr/bin/env bash
# bench/compare.sh: parleyd side by side with the PeerJS server and nginx, in one run on one
# machine, and one table of ratios against the bench issue's bars (docs/performance.md).
#
# Usage: bench/compare.sh [options]
#
#   --quick            a smoke run (~2 min): 2 s runs, 1 repetition, 2,000 idle sockets,
#                      1,000 churn rooms for 10 s (explicit options below still win)
#   --duration S       seconds per measured run (default 10)
#   --repeat R         runs per measurement; the table shows the median [min–max] (default 3)
#   --idle-conns N     idle WebSockets to open and hold per server (default 10000; the hard
#                      RLIMIT_NOFILE bounds it: parleyd and parley-bench each hold N)
#   --churn-rooms N    churn: rooms of 10 members heartbeating every 30 s (default 10000)
#   --churn-duration S churn: seconds measured once every member has joined (default 60)
#   --relay-conns N    relay: WebSockets, two per pair (default 16)
#   --relay-window N   relay, flat out: messages each sender keeps in flight (default 16)
#   --rest-conns N     rest: keep-alive connections (default 64)
#   --wrk-conns N      wrk -c (default 50; always -t1)
#   --only LIST        comma-separated subset of: relay,rest,http,idle,churn (default all)
#   --out DIR          raw JSON, wrk outputs, logs and table.md go here
#                      (default /tmp/parley-compare-YYYYmmdd-HHMMSS)
#   --build-dir DIR    where parleyd and parley-bench are built (default build-bench, a
#                      Release tree of its own: the shared build/ may be a Debug build)
#   --no-build         use the binaries already in the build dir
#   --help
#
# It installs what is missing (nginx, wrk, redis-server with apt-get, without starting their
# system services; the PeerJS server with npm ci in bench/peerjs), builds parleyd and
# parley-bench, then for each workload starts its own servers on free loopback ports:
# parleyd on the memory engine, parleyd on the Redis engine (with a private redis-server),
# and the baseline (the PeerJS server for relay and idle, nginx for raw HTTP). The servers
# are measured one after the other, back to back, R times; the table shows medians.
#
# Exit status: 0 when every workload ran (whether or not its bar was met: this is a
# measurement), 1 when a workload could not run, 2 on a usage error. Every process it starts
# is stopped on exit, including on Ctrl-C.
# shellcheck disable=SC2317  # functions run from traps and through "workload_$w"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3
CMP="$ROOT/bench/compare/cmp.py"
PEERJS_DIR="$ROOT/bench/peerjs"
PEERJS_BIN="$PEERJS_DIR/node_modules/peer/dist/bin/peerjs.js"
ALL_WORKLOADS="relay,rest,http,idle,churn"

usage() { awk 'NR == 1 { next } /^# shellcheck/ { exit } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

# ------------------------------------------------------------------------------------------
# Options

QUICK=0 BUILD=1 DURATION="" REPEAT="" IDLE_CONNS="" CHURN_ROOMS="" CHURN_DURATION=""
RELAY_CONNS=16 RELAY_WINDOW=16 REST_CONNS=64 WRK_CONNS=50 ONLY="$ALL_WORKLOADS" OUT="" BUILD_DIR=""
CHURN_MEMBERS=10 CHURN_HEARTBEAT=30 IDLE_HOLD=5

die_usage() { echo "compare.sh: $*" >&2; echo "try: bench/compare.sh --help" >&2; exit 2; }
need_int() { # name value min
  if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ]; then
    die_usage "$1 wants an integer ≥ $3, got '$2'"
  fi
}
while [ $# -gt 0 ]; do
  opt="$1"
  case "$opt" in
    --quick) QUICK=1; shift; continue ;;
    --no-build) BUILD=0; shift; continue ;;
    -h|--help) usage; exit 0 ;;
    --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
    --duration|--repeat|--idle-conns|--churn-rooms|--churn-duration|--relay-conns|\
    --rest-conns|--wrk-conns|--only|--out|--build-dir)
      [ $# -ge 2 ] || die_usage "$opt needs a value" ;;
    *) die_usage "unknown argument: $opt" ;;
  esac
  val="$2"; shift 2
  case "$opt" in
    --duration) need_int "$opt" "$val" 1; DURATION="$val" ;;
    --repeat) need_int "$opt" "$val" 1; REPEAT="$val" ;;
    --idle-conns) need_int "$opt" "$val" 1; IDLE_CONNS="$val" ;;
    --churn-rooms) need_int "$opt" "$val" 1; CHURN_ROOMS="$val" ;;
    --churn-duration) need_int "$opt" "$val" 1; CHURN_DURATION="$val" ;;
    --relay-conns) need_int "$opt" "$val" 2; RELAY_CONNS="$val" ;;
    --relay-window) need_int "$opt" "$val" 1; RELAY_WINDOW="$val" ;;
    --rest-conns) need_int "$opt" "$val" 1; REST_CONNS="$val" ;;
    --wrk-conns) need_int "$opt" "$val" 1; WRK_CONNS="$val" ;;
    --only) ONLY="$val" ;;
    --out) OUT="$val" ;;
    --build-dir) BUILD_DIR="$val" ;;
  esac
done
if [ "$QUICK" -eq 1 ]; then
  : "${DURATION:=2}" "${REPEAT:=1}" "${IDLE_CONNS:=2000}" "${CHURN_ROOMS:=1000}" "${CHURN_DURATION:=10}"
else
  : "${DURATION:=10}" "${REPEAT:=3}" "${IDLE_CONNS:=10000}" "${CHURN_ROOMS:=10000}" "${CHURN_DURATION:=60}"
fi
IFS=, read -r -a WORKLOADS <<<"$ONLY"
for w in "${WORKLOADS[@]}"; do
  [[ ",$ALL_WORKLOADS," == *",$w,"* ]] || die_usage "--only: unknown workload '$w' ($ALL_WORKLOADS)"
done
wants() { [[ ",$ONLY," == *",$1,"* ]]; }
: "${BUILD_DIR:=$ROOT/build-bench}"
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
PARLEYD="$BUILD_DIR/bin/parleyd"
BENCH="$BUILD_DIR/bin/parley-bench"
: "${OUT:=/tmp/parley-compare-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/raw" "$OUT/logs" "$OUT/run"
OUT="$(cd "$OUT" && pwd)"
RESULTS="$OUT/results.tsv" NOTES="$OUT/notes.txt"
: >"$RESULTS"; : >"$NOTES"

say() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/compare.log" >&2; }
note() { printf '%s\n' "$*" >>"$NOTES"; say "note: $*"; }

# ------------------------------------------------------------------------------------------
# Processes: every server is a direct child whose pid is in PIDS; the one foreground step
# (a build, a bench run, wrk) runs in the background too, as CURRENT, so that a signal is
# handled at once and not after the step ends.

PIDS=()
CURRENT=""
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARK="# bench/compare.sh: temporary, keeps services from starting while they install"
POLICY_MADE=0

stop_pid() { # pid [seconds]: TERM, then KILL after the grace period; reaps it
  local pid="$1" grace="${2:-5}" i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid did not stop in ${grace} s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  local pid keep=()
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=("${keep[@]}")
}

remove_policy() {
  if [ "$POLICY_MADE" -eq 1 ] && grep -qF "$POLICY_MARK" "$POLICY_RC" 2>/dev/null; then
    rm -f "$POLICY_RC"
  fi
  POLICY_MADE=0
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$CURRENT" ]; then stop_pid "$CURRENT" 2; fi
  stop_all
  remove_policy
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted: stopping everything this script started"; exit 130' INT TERM HUP

# step SECONDS STDOUT STDERR CMD...: run CMD bounded by SECONDS; returns its exit status
step() {
  local secs="$1" out="$2" err="$3" rc=0
  shift 3
  timeout -k 5 "$secs" "$@" >"$out" 2>"$err" &
  CURRENT=$!
  wait "$CURRENT" || rc=$?
  CURRENT=""
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    say "timed out after ${secs} s: $*"
  fi
  return "$rc"
}

# ------------------------------------------------------------------------------------------
# Install what is missing

SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi

install_missing() {
  local pkgs=() p
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || pkgs+=(nginx)
  command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
  command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  [ -x "$PY" ] || pkgs+=(python3)
  if wants relay || wants idle; then
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
  fi
  if [ "${#pkgs[@]}" -gt 0 ]; then
    say "installing: ${pkgs[*]}"
    # Debian's nginx and redis-server packages start their system services as they install;
    # a policy-rc.d that answers 101 keeps them stopped (as deploy/install-deps.sh does).
    # Only when the machine has no policy-rc.d of its own; removed again on exit.
    if [ ! -e "$POLICY_RC" ]; then
      printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" | "${SUDO[@]}" tee "$POLICY_RC" >/dev/null
      "${SUDO[@]}" chmod 755 "$POLICY_RC"
      POLICY_MADE=1
    fi
    step 600 "$OUT/logs/apt.log" "$OUT/logs/apt.err" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get update || { say "apt-get update failed (logs/apt.err)"; exit 1; }
    step 900 "$OUT/logs/apt-install.log" "$OUT/logs/apt-install.err" "${SUDO[@]}" \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${pkgs[@]}" ||
      { say "apt-get install failed (logs/apt-install.err)"; exit 1; }
    remove_policy
  fi
  if (wants relay || wants idle) && [ ! -f "$PEERJS_BIN" ]; then
    say "npm ci in bench/peerjs (the PeerJS server)"
    (cd "$PEERJS_DIR" && step 600 "$OUT/logs/npm.log" "$OUT/logs/npm.err" npm ci --no-audit --no-fund) ||
      { say "npm ci failed (logs/npm.err)"; exit 1; }
  fi
  for p in nginx wrk redis-server curl; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || { say "missing after install: $p"; exit 1; }
  done
}
install_missing
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# ------------------------------------------------------------------------------------------
# Build

if [ "$BUILD" -eq 1 ]; then
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    say "configuring $BUILD_DIR (Release, no tests)"
    step 300 "$OUT/logs/cmake.log" "$OUT/logs/cmake.err" cmake -S "$ROOT" -B "$BUILD_DIR" \
      -DCMAKE_BUILD_TYPE=Release -DPARLEY_TESTS=OFF || { say "cmake failed (logs/cmake.err)"; exit 1; }
  fi
  say "building parleyd and parley-bench in $BUILD_DIR"
  step 900 "$OUT/logs/build.log" "$OUT/logs/build.err" cmake --build "$BUILD_DIR" -j"$(nproc)" \
    --target parleyd parley-bench || { say "build failed (logs/build.err)"; tail -20 "$OUT/logs/build.err" >&2; exit 1; }
fi
for b in "$PARLEYD" "$BENCH"; do
  [ -x "$b" ] || { say "$b is missing (build it, or drop --no-build)"; exit 1; }
done
BUILD_TYPE="$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)"
case "$BUILD_TYPE" in
  Release|RelWithDebInfo) ;;
  *) note "parleyd is a '${BUILD_TYPE:-unknown}' build ($BUILD_DIR): figures are not representative" ;;
esac

# The hard limit on open files bounds the idle workload; every child inherits the soft one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
if wants idle && [ "$NOFILE" != unlimited ] && [ "$IDLE_CONNS" -gt $((NOFILE - 200)) ]; then
  die_usage "--idle-conns $IDLE_CONNS is more than RLIMIT_NOFILE ($NOFILE) allows (less ~200)"
fi

# ------------------------------------------------------------------------------------------
# The machine

machine() {
  local cpu deb
  cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
  deb="$(cat /etc/debian_version 2>/dev/null || echo '?')"
  echo "machine:      $(nproc) CPUs, ${cpu:-unknown CPU}, $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
  echo "kernel:       $(uname -sr), Debian $deb"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) at start (other load skews every figure)"
  echo "parleyd:      $("$PARLEYD" --version 2>&1 | head -1) (${BUILD_TYPE:-?} build, $BUILD_DIR)"
  echo "source:       commit $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- server common bench CMakeLists.txt 2>/dev/null || echo ' with local changes')"
  echo "parley-bench: $("$BENCH" --version 2>&1 | head -1)"
  if command -v node >/dev/null 2>&1; then
    echo "node:         $(node --version 2>&1)"
    echo "peer:         $(node -p "require('$PEERJS_DIR/node_modules/peer/package.json').version" 2>/dev/null || echo 'not installed')"
  fi
  echo "nginx:        $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
  echo "wrk:          $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "redis-server: $(redis-server --version | sed 's/^Redis server //; s/ sha=.*//')"
  echo "RLIMIT_NOFILE: $NOFILE"
  echo "settings:     workloads $ONLY; $DURATION s runs × $REPEAT; wrk -t1 -c$WRK_CONNS; relay $RELAY_CONNS sockets, window $RELAY_WINDOW; rest $REST_CONNS connections; idle $IDLE_CONNS sockets; churn $CHURN_ROOMS rooms × $CHURN_MEMBERS members, heartbeat $CHURN_HEARTBEAT s, $CHURN_DURATION s"
  echo "out:          $OUT"
}
machine | tee "$OUT/machine.txt" >&2
MACHINE_SHORT="$(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(uname -r)"

# ------------------------------------------------------------------------------------------
# Servers

SECRET="$("$PY" "$CMP" secret)"
freeport() { "$PY" "$CMP" port; }
waitport() { "$PY" "$CMP" waitport "$1" "${2:-15}"; }

start_redis() { # sets REDIS_PORT
  REDIS_PORT="$(freeport)"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize no --protected-mode yes --dir "$OUT/run" \
    >>"$OUT/logs/redis-$REDIS_PORT.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  waitport "$REDIS_PORT" 15 || { say "redis-server did not start (logs/redis-$REDIS_PORT.log)"; return 1; }
}

# start_parleyd ENGINE: sets PD_URL_<ENGINE>, PD_PID_<ENGINE> (ENGINE memory or redis)
start_parleyd() {
  local engine="$1" port store=memory pid
  if [ "$engine" = redis ]; then
    start_redis || return 1
    REDIS_PID_redis="$REDIS_PID"
    store="redis://127.0.0.1:$REDIS_PORT"
  fi
  port="$(freeport)"
  # A clean environment: parleyd refuses PARLEY_* variables it does not know.
  env -i PATH="$PATH" HOME="${HOME:-/root}" \
    PARLEY_LISTEN="127.0.0.1:$port" PARLEY_STORE="$store" PARLEY_JWT_SECRET="$SECRET" \
    PARLEY_LOG_LEVEL=warn PARLEY_MAX_CONNECTIONS=200000 PARLEY_SHUTDOWN_TIMEOUT=1 \
    PARLEY_RL_CREATE_ROOM=0 PARLEY_RL_JOIN_USER=0 PARLEY_RL_JOIN_IP=0 PARLEY_RL_SIGNAL=0 \
    PARLEY_RL_POLL=0 PARLEY_RL_LIST=0 PARLEY_RL_EMOJI_UPLOAD=0 \
    "$PARLEYD" >>"$OUT/logs/parleyd-$engine-$port.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if ! waitport "$port" 15 || ! curl -sf -m 5 "http://127.0.0.1:$port/healthz" >/dev/null; then
    say "parleyd ($engine) did not start (logs/parleyd-$engine-$port.log)"
    return 1
  fi
  printf -v "PD_URL_$engine" '%s' "http://127.0.0.1:$port"
  printf -v "PD_PID_$engine" '%s' "$pid"
}

start_peerjs() { # sets PJ_URL, PJ_PID
  local port
  port="$(freeport)"
  # --concurrent_limit above the idle count; --alive_timeout long enough that held idle
  # sockets are not reaped as dead during the run. It logs a line per client: to a file.
  node "$PEERJS_BIN" --host 127.0.0.1 --port "$port" --key peerjs \
    --concurrent_limit $((IDLE_CONNS * 2 + 1000)) --alive_timeout 600000 \
    >>"$OUT/logs/peerjs-$port.log" 2>&1 &
  PJ_PID=$!
  PIDS+=("$PJ_PID")
  if ! waitport "$port" 30 || ! curl -sf -m 5 "http://127.0.0.1:$port/" >/dev/null; then
    say "the PeerJS server did not start (logs/peerjs-$port.log)"
    return 1
  fi
  PJ_URL="http://127.0.0.1:$port"
}

start_nginx() { # sets NG_URL
  local port dir="$OUT/run/nginx"
  port="$(freeport)"
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
# bench/compare.sh: the raw-HTTP baseline, one worker like parleyd's one event loop.
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # parleyd never closes a busy keep-alive connection; nginx (default 1000) neither, here.
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "ok\n"; }
  }
}
EOF
  step 30 "$OUT/logs/nginx-t.log" "$OUT/logs/nginx-t.err" "$NGINX" -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" ||
    { say "nginx -t failed (logs/nginx-t.err)"; return 1; }
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >>"$OUT/logs/nginx.log" 2>&1 &
  NG_PID=$!
  PIDS+=("$NG_PID")
  waitport "$port" 15 || { say "nginx did not start ($dir/error.log)"; return 1; }
  NG_URL="http://127.0.0.1:$port"
}

# ------------------------------------------------------------------------------------------
# Measurements

FAILED=()
fail_workload() { # workload why
  say "workload $1 could not run: $2"
  note "$1: could not run: $2"
  FAILED+=("$1")
}

# The processes whose CPU time is read around a run: the server under test (nginx: its
# worker), and for the Redis engine its redis-server apart.
srv_pids() {
  case "$1" in
    memory|redis) pd_pid "$1" ;;
    peerjs) printf '%s' "$PJ_PID" ;;
    nginx) pgrep -P "$NG_PID" | tr '\n' ' ' ;;
  esac
}
side_pids() { if [ "$1" = redis ]; then printf '%s' "$REDIS_PID_redis"; fi; }
TIME=()
if [ -x /usr/bin/time ]; then TIME=(/usr/bin/time -f '%U %S %e' -o); fi

# measured WORKLOAD TARGET REP SECONDS OUTFILE CMD...: CMD bounded by SECONDS, with the
# server's CPU time (and the client's, through /usr/bin/time) read around it and recorded
# as srv_cores, side_cores, client_cores (CPU seconds per second of the run's wall time).
measured() {
  local w="$1" t="$2" rep="$3" secs="$4" f="$5" before rc=0 tf
  shift 5
  tf="${f%.*}.time"
  local -a srv side timecmd=()
  read -r -a srv <<<"$(srv_pids "$t")"
  read -r -a side <<<"$(side_pids "$t")"
  if [ "${#TIME[@]}" -gt 0 ]; then timecmd=("${TIME[@]}" "$tf"); fi
  before="$("$PY" "$CMP" cpu "${srv[@]}" -- "${side[@]}")"
  step "$secs" "$f" "${f%.*}.err" "${timecmd[@]}" "$@" || rc=$?
  "$PY" "$CMP" cpurecord "$RESULTS" "$w" "$t" "$rep" "$before" "$tf" "${srv[@]}" -- "${side[@]}" || true
  return "$rc"
}

# bench_run WORKLOAD TARGET REP SECONDS SCENARIO ARGS...: one parley-bench run, recorded
bench_run() {
  local w="$1" t="$2" rep="$3" secs="$4" scen="$5" f
  shift 5
  f="$OUT/raw/$w-$t-$rep.json"
  say "$w: $t, run $rep/$REPEAT"
  if ! measured "$w" "$t" "$rep" "$secs" "$f" "$BENCH" "$scen" --json --quiet "$@"; then
    if [ ! -s "$f" ]; then
      say "parley-bench $scen ($t) failed: $(tail -3 "${f%.json}.err" | tr '\n' ' ')"
      return 1
    fi
  fi
  "$PY" "$CMP" record "$RESULTS" "$NOTES" "$w" "$t" "$rep" bench "$f"
}

wrk_run() { # WORKLOAD TARGET REP URL
  local w="$1" t="$2" rep="$3" url="$4" f
  f="$OUT/raw/$w-$t-$rep.wrk.txt"
  say "$w: $t, run $rep/$REPEAT: wrk $url"
  measured "$w" "$t" "$rep" $((DURATION + 30)) "$f" wrk -t1 -c"$WRK_CONNS" -d"${DURATION}s" \
    --timeout 5s --latency "$url" || { say "wrk failed: $(tail -3 "${f%.txt}.err")"; return 1; }
  "$PY" "$CMP" record "$RESULTS" "$NOTES" "$w" "$t" "$rep" wrk "$f"
}

median() { "$PY" "$CMP" median "$RESULTS" "$@"; }
pd_url() { local v="PD_URL_$1"; printf '%s' "${!v}"; }
pd_pid() { local v="PD_PID_$1"; printf '%s' "${!v}"; }

# Each workload starts its servers, runs, and stops them (in a subshell-free function: the
# pids stay in PIDS for the trap). A failing step makes the workload "could not run".

workload_rest() {
  local rep e
  start_parleyd memory && start_parleyd redis || return 1
  for ((rep = 1; rep <= REPEAT; rep++)); do
    for e in memory redis; do
      bench_run rest "$e" "$rep" $((DURATION + 60)) rest --url "$(pd_url "$e")" --secret "$SECRET" \
        --duration "$DURATION" --connections "$REST_CONNS" || return 1
    done
  done
}

# The API route: GET /signaling/rooms/{roomId} of a public room made first (no auth, one
# store read, a small JSON body: the cheapest route that reads state). Its creator is its
# only member and expires without heartbeats (PARLEY_MEMBER_TTL, 90 s), taking the room
# with it: api_room ENGINE creates the room or heartbeats it, and checks the route answers.
api_room() {
  local e="$1" url sig f="$OUT/raw/api-room-$1.json" v
  url="$(pd_url "$e")"
  v="SIG_$e"
  if [ -z "${!v:-}" ]; then
    curl -sf -m 5 -X POST "$url/signaling/create-room" -H "Authorization: Bearer $API_TOKEN" \
      -H 'Content-Type: application/json' -d '{"isPublic":true,"customName":"compare"}' \
      >"$f" || { say "create-room on parleyd ($e) failed"; return 1; }
    printf -v "ROOM_$e" '%s' "$("$PY" "$CMP" get "$f" roomId)"
  else
    v="ROOM_$e"
    curl -sf -m 5 -X POST "$url/signaling/heartbeat" -H "Authorization: Bearer $(sig_of "$e")" \
      -H 'Content-Type: application/json' -d "{\"roomId\":\"${!v}\"}" >"$f" ||
      { say "heartbeat on parleyd ($e) failed"; return 1; }
  fi
  sig="$("$PY" "$CMP" get "$f" signalingToken)" || return 1
  printf -v "SIG_$e" '%s' "$sig"
  v="ROOM_$e"
  curl -sf -m 5 "$url/signaling/rooms/${!v}" >/dev/null ||
    { say "GET /signaling/rooms/${!v} on parleyd ($e) failed"; return 1; }
}
sig_of() { local v="SIG_$1"; printf '%s' "${!v}"; }
room_of() { local v="ROOM_$1"; printf '%s' "${!v}"; }

workload_http() {
  local rep e
  # shellcheck disable=SC2034  # set and read by name in api_room (ROOM_$e, SIG_$e)
  local ROOM_memory="" ROOM_redis="" SIG_memory="" SIG_redis=""
  API_TOKEN="$("$PY" "$CMP" token "$SECRET" compare-room "compare room")"
  start_parleyd memory && start_parleyd redis && start_nginx || return 1
  for ((rep = 1; rep <= REPEAT; rep++)); do
    for e in memory redis; do
      wrk_run healthz "$e" "$rep" "$(pd_url "$e")/healthz" || return 1
    done
    wrk_run healthz nginx "$rep" "$NG_URL/healthz" || return 1
    for e in memory redis; do
      api_room "$e" || return 1
      wrk_run api "$e" "$rep" "$(pd_url "$e")/signaling/rooms/$(room_of "$e")" || return 1
    done
    wrk_run api nginx "$rep" "$NG_URL/signaling/rooms/$(room_of memory)" || return 1
  done
}

workload_relay() {
  local rep e peak
  start_parleyd memory && start_parleyd redis && start_peerjs || return 1
  local -a parley_args=(--secret "$SECRET" --connections "$RELAY_CONNS" --window "$RELAY_WINDOW"
    --duration "$DURATION")
  local -a peerjs_args=(--target peerjs --key peerjs --url "$PJ_URL" --connections "$RELAY_CONNS"
    --window "$RELAY_WINDOW" --duration "$DURATION")
  # Flat out: each server's peak messages/s.
  for ((rep = 1; rep <= REPEAT; rep++)); do
    for e in memory redis; do
      bench_run relay "$e" "$rep" $((DURATION + 60)) relay --url "$(pd_url "$e")" "${parley_args[@]}" || return 1
    done
    bench_run relay peerjs "$rep" $((DURATION + 60)) relay "${peerjs_args[@]}" || return 1
  done
  # Then at half of each one's median peak: the latency under load that is not saturation.
  for ((rep = 1; rep <= REPEAT; rep++)); do
    for e in memory redis; do
      peak="$(median relay "$e" throughput)" || return 1
      bench_run relay-half "$e" "$rep" $((DURATION + 60)) relay --url "$(pd_url "$e")" "${parley_args[@]}" \
        --rate "$("$PY" -c "print(max(1, round($peak / 2)))")" || return 1
    done
    peak="$(median relay peerjs throughput)" || return 1
    bench_run relay-half peerjs "$rep" $((DURATION + 60)) relay "${peerjs_args[@]}" \
      --rate "$("$PY" -c "print(max(1, round($peak / 2)))")" || return 1
  done
}

workload_idle() {
  # --duration bounds parley-bench's whole idle run (setup, opening, settling, holding).
  local rep e run_s=$((IDLE_CONNS / 100 + 60)) secs
  secs=$((run_s + 60))
  # A fresh server per run: the memory a held socket costs, not what earlier runs left.
  for ((rep = 1; rep <= REPEAT; rep++)); do
    for e in memory redis; do
      start_parleyd "$e" || return 1
      # --members 1: a room per socket, so no join leaves envelopes waiting in the inboxes
      # that the sockets then drain (it would blur the memory of setup and of the sockets).
      bench_run idle "$e" "$rep" "$secs" idle --url "$(pd_url "$e")" --secret "$SECRET" --members 1 \
        --connections "$IDLE_CONNS" --server-pid "$(pd_pid "$e")" --duration "$run_s" --hold "$IDLE_HOLD" || return 1
      stop_all
    done
    start_peerjs || return 1
    bench_run idle peerjs "$rep" "$secs" idle --target peerjs --key peerjs --url "$PJ_URL" \
      --connections "$IDLE_CONNS" --server-pid "$PJ_PID" --duration "$run_s" --hold "$IDLE_HOLD" || return 1
    stop_all
  done
}

workload_churn() {
  local rep e members=$((CHURN_ROOMS * CHURN_MEMBERS))
  # Every member joins before the measured CHURN_DURATION starts; parley-bench caps that
  # setup at 30 s + 2 ms a member, which this bound leaves room for.
  local secs=$((60 + members * 2 / 1000 + CHURN_DURATION + 60))
  for ((rep = 1; rep <= REPEAT; rep++)); do
    for e in memory redis; do
      start_parleyd "$e" || return 1
      bench_run churn "$e" "$rep" "$secs" churn --url "$(pd_url "$e")" --secret "$SECRET" \
        --rooms "$CHURN_ROOMS" --members "$CHURN_MEMBERS" --heartbeat "$CHURN_HEARTBEAT" \
        --duration "$CHURN_DURATION" --server-pid "$(pd_pid "$e")" || return 1
      stop_all
    done
  done
}

API_ROUTE="GET /signaling/rooms/{roomId} (a public room)"
for w in relay rest http idle churn; do
  wants "$w" || continue
  say "=== workload $w"
  if ! "workload_$w"; then
    fail_workload "$w" "see $OUT/compare.log and $OUT/raw"
  fi
  stop_all
done

META_ARGS=(duration "$DURATION" repeat "$REPEAT" idle_conns "$IDLE_CONNS" churn_rooms "$CHURN_ROOMS"
  churn_members "$CHURN_MEMBERS" churn_heartbeat "$CHURN_HEARTBEAT" relay_conns "$RELAY_CONNS" relay_window "$RELAY_WINDOW"
  rest_conns "$REST_CONNS" wrk_conns "$WRK_CONNS" api_route "$API_ROUTE" machine "$MACHINE_SHORT")
"$PY" -c '
import json, sys
a = sys.argv[2:]
m = {k: int(v) if v.isdigit() else v for k, v in zip(a[::2], a[1::2])}
json.dump(m, open(sys.argv[1], "w"))' "$OUT/meta.json" "${META_ARGS[@]}"
echo >&2
cat "$OUT/machine.txt"
echo
"$PY" "$CMP" table "$RESULTS" "$NOTES" "$OUT/meta.json" "$OUT/table.md"
echo
say "raw results, logs and table.md in $OUT"
if [ "${#FAILED[@]}" -gt 0 ]; then
  say "could not run: ${FAILED[*]}"
  exit 1
fi
exit 0
