#!/usr/bin/env bash
# bench/profile.sh: instructions per unit of work of a parleyd binary, counted by
# valgrind's callgrind (docs/performance.md, "Profile"). Instruction counts do not depend on
# what else the machine is doing, so two builds can be compared on a busy machine.
#
#   bench/profile.sh [--parleyd PATH] [--bench PATH] [--store memory|redis] [--out DIR] [--keep]
#
# For each workload a fresh parleyd (memory store, rate limits off) runs under callgrind:
#   healthz  wrk -t1 -c10 -d3s on GET /healthz            (unit: request)
#   rest     parley-bench rest --requests 3000 -c 4        (unit: request)
#   relay    parley-bench relay --requests 20000 -c 10     (unit: message relayed)
# and a run with no traffic at all gives the fixed cost (start-up and shutdown), which is
# subtracted. Prints one line per workload: units, instructions per unit, and the five
# functions with the most inclusive instructions below the event loop. --keep leaves the
# callgrind files in --out (default a temporary directory) for callgrind_annotate.
# --store redis: parleyd on the Redis engine, with a fresh redis-server per workload, itself
# under callgrind counting only inside FCALL/EVALSHA/EVAL (the engine's Lua, with the Redis
# commands it calls): each line then adds Redis's instructions per unit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PARLEYD="$ROOT/build/bin/parleyd"
BENCH="$ROOT/build/bin/parley-bench"
OUT=""
KEEP=0
STORE=memory
while [ $# -gt 0 ]; do
  case "$1" in
    --parleyd) PARLEYD="$2"; shift 2 ;;
    --bench) BENCH="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --store) STORE="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$STORE" in
  memory) ;;
  redis) for tool in redis-server redis-cli; do
      command -v "$tool" >/dev/null || { echo "profile.sh: $tool is required" >&2; exit 2; }
    done ;;
  *) echo "profile.sh: --store is memory or redis" >&2; exit 2 ;;
esac
for tool in valgrind callgrind_annotate wrk curl; do
  command -v "$tool" >/dev/null || { echo "profile.sh: $tool is required" >&2; exit 2; }
done
if [ ! -x "$PARLEYD" ] || [ ! -x "$BENCH" ]; then
  echo "profile.sh: build parleyd and parley-bench first" >&2
  exit 2
fi
if [ -z "$OUT" ]; then OUT="$(mktemp -d /tmp/parley-profile.XXXXXX)"; fi
mkdir -p "$OUT"
SECRET="profile-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
PID=""
RPID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
  if [ -n "$RPID" ]; then kill "$RPID" 2>/dev/null || true; fi
  if [ "$KEEP" != 1 ]; then rm -rf "$OUT"; fi
}
trap cleanup EXIT INT TERM

freeport() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_redis NAME: redis-server under callgrind, counting inside the engine's calls only;
# sets RPORT and RPID.
start_redis() {
  RPORT="$(freeport)"
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.redis.cg" \
    --toggle-collect=fcallCommand --toggle-collect=evalShaCommand --toggle-collect=evalCommand \
    redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$OUT/$1.redis.log" 2>&1 &
  RPID=$!
  for _ in $(seq 1 200); do
    redis-cli -p "$RPORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "profile.sh: redis-server did not start under valgrind ($OUT/$1.redis.log)" >&2
  exit 1
}

# start NAME: parleyd under callgrind on a free port; sets PORT and PID.
start() {
  PORT="$(freeport)"
  local store=memory
  if [ "$STORE" = redis ]; then
    start_redis "$1"
    store="redis://127.0.0.1:$RPORT"
  fi
  env PARLEY_JWT_SECRET="$SECRET" PARLEY_LISTEN="127.0.0.1:$PORT" PARLEY_LOG_LEVEL=warn \
    PARLEY_STORE="$store" \
    PARLEY_RL_CREATE_ROOM=0 PARLEY_RL_JOIN_USER=0 PARLEY_RL_JOIN_IP=0 PARLEY_RL_SIGNAL=0 \
    PARLEY_RL_POLL=0 PARLEY_RL_LIST=0 \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.cg" "$PARLEYD" \
    >"$OUT/$1.log" 2>&1 &
  PID=$!
  # /readyz: with the Redis engine, once the store is up too (its library loaded).
  for _ in $(seq 1 300); do
    curl -sf -m 1 "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "profile.sh: parleyd did not start under valgrind ($OUT/$1.log)" >&2
  exit 1
}
stop() {
  kill -TERM "$PID"
  for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  wait "$PID" 2>/dev/null || true
  PID=""
  if [ -n "$RPID" ]; then
    redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || kill "$RPID" 2>/dev/null || true
    wait "$RPID" 2>/dev/null || true
    RPID=""
  fi
}
# (callgrind_annotate writes "." for a file with no events: redis-server when idle.)
total() { callgrind_annotate "$OUT/$1.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",","",$1); t = $1} END {print t + 0}'; }
top5() {
  callgrind_annotate --inclusive=yes "$OUT/$1.cg" 2>/dev/null |
    grep -E '/(server|common)/' | grep -vE ':(main|on_read|conn_process|pl_api_handle|on_lws)\b' |
    awk "NR <= 5" | sed -E 's/^ *([0-9,]+) \([^)]*\) +[^:]*\/([a-z_]+\.c):([a-zA-Z0-9_]+).*/\3 \1/' |
    awk -v n="$2" '{gsub(",","",$2); printf "%s %.0f, ", $1, $2 / n}'
}

start idle; curl -s "http://127.0.0.1:$PORT/healthz" >/dev/null; stop
BASE="$(total idle)"
RBASE=0
if [ "$STORE" = redis ]; then RBASE="$(total idle.redis)"; fi

# report NAME N UNIT: the instructions per unit of the run NAME that did N units.
report() {
  local redis=""
  if [ "$STORE" = redis ]; then
    redis="$(printf '  redis-server: %d/%s inside the engine'"'"'s calls' \
      $(( ($(total "$1.redis") - RBASE) / $2 )) "$3")"
  fi
  printf '%-8s %7d %-8s %8d instructions/%s  (%s)%s\n' "$1" "$2" "${3}s" \
    $(( ($(total "$1") - BASE) / $2 )) "$3" "$(top5 "$1" "$2")" "$redis"
}
json_field() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

start healthz
N="$(wrk -t1 -c10 -d3s "http://127.0.0.1:$PORT/healthz" | awk '/requests in/ {print $1}')"
stop
report healthz "$N" request

start rest
N="$("$BENCH" rest --url "http://127.0.0.1:$PORT" --secret "$SECRET" --requests 3000 \
      --connections 4 --json --quiet | json_field ok)"
stop
report rest "$N" request

start relay
N="$("$BENCH" relay --url "http://127.0.0.1:$PORT" --secret "$SECRET" --requests 20000 \
      --connections 10 --json --quiet | json_field received)"
stop
report relay "$N" message
