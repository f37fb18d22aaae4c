#!/usr/bin/env bash
# Parley quickstart: install the Debian packages, build parleyd (Release, into build/),
# make a development JWT secret and a ready-made user token, print example requests, and
# run parleyd on 127.0.0.1:8080 with the in-memory store.
#
# Usage: deploy/quickstart.sh               run parleyd in the foreground (Ctrl-C stops it)
#        deploy/quickstart.sh --background  start it in the background, wait for /healthz,
#                                           print its pid and log file
#        deploy/quickstart.sh --stop        stop a parleyd started with --background
#
# Files (all under build/, which git ignores):
#   build/dev-secret    the HS256 secret (48 random bytes, base64url), made once, mode 600
#   build/dev-token     a fresh 24 h token for user "dev-user" ("Dev User", custom emoji
#                       of the domain "localhost"), made every run
#   build/parleyd.log   the server log in --background mode
#   build/parleyd.pid   its pid
#
# The address can be changed with PARLEY_LISTEN=host:port in the environment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
SECRET_FILE="$BUILD/dev-secret"
TOKEN_FILE="$BUILD/dev-token"
LOG_FILE="$BUILD/parleyd.log"
PID_FILE="$BUILD/parleyd.pid"
LISTEN="${PARLEY_LISTEN:-127.0.0.1:8080}"
BASE="http://$LISTEN"

mode=foreground
case "${1:-}" in
  "") ;;
  --background|-b) mode=background ;;
  --stop) mode=stop ;;
  -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "quickstart: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

if [ -t 1 ]; then
  say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
else
  say() { printf '==> %s\n' "$*"; }
fi

running_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid="$(cat "$PID_FILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

if [ "$mode" = stop ]; then
  if pid="$(running_pid)"; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "quickstart: parleyd (pid $pid) did not stop within 10 s" >&2
      exit 1
    fi
    rm -f "$PID_FILE"
    echo "quickstart: stopped parleyd (pid $pid)"
  else
    echo "quickstart: no parleyd started by --background is running"
  fi
  exit 0
fi

say "Installing Debian packages"
"$ROOT/deploy/install-deps.sh"

say "Building parleyd (Release) into build/"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target parleyd -j"$(nproc)"

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

if [ ! -s "$SECRET_FILE" ]; then
  say "Generating a development JWT secret in build/dev-secret"
  (umask 077 && openssl rand 48 | b64url > "$SECRET_FILE")
fi
SECRET="$(cat "$SECRET_FILE")"

# An HS256 JWT: base64url(header).base64url(payload).base64url(HMAC-SHA256(secret, both)).
now="$(date +%s)"
header="$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)"
# "domains": the sites whose custom emoji this user may upload (localhost, for trying it).
payload="$(printf '{"sub":"dev-user","name":"Dev User","domains":["localhost"],"iat":%d,"exp":%d}' "$now" "$((now + 86400))" | b64url)"
signature="$(printf '%s' "$header.$payload" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)"
TOKEN="$header.$payload.$signature"
(umask 077 && printf '%s\n' "$TOKEN" > "$TOKEN_FILE")

cat <<INFO

  JWT secret (HS256, build/dev-secret):
    $SECRET

  User token for "dev-user" / "Dev User", valid 24 h (build/dev-token):
    TOKEN=$TOKEN

  Try it (in another shell, after setting TOKEN as above or TOKEN=\$(cat build/dev-token)):

    # create a room (the caller becomes its broadcaster and first member)
    curl -s -X POST $BASE/signaling/create-room \\
         -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
         -d '{"customName":"My first room"}'

    # list the live public rooms
    curl -s $BASE/signaling/rooms

    # join it by its broadcaster's name (or with {"roomId":"..."})
    curl -s -X POST $BASE/signaling/join-room \\
         -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
         -d '{"broadcasterName":"Dev User"}'

INFO

export PARLEY_LISTEN="$LISTEN"
export PARLEY_STORE=memory
export PARLEY_JWT_SECRET="$SECRET"

if [ "$mode" = foreground ]; then
  say "Starting parleyd on $LISTEN (Ctrl-C stops it)"
  exec "$BUILD/bin/parleyd"
fi

if pid="$(running_pid)"; then
  echo "quickstart: parleyd is already running (pid $pid); stop it with: deploy/quickstart.sh --stop" >&2
  exit 1
fi
if curl -fsS -o /dev/null --max-time 2 "$BASE/healthz" 2>/dev/null; then
  echo "quickstart: something already answers on $LISTEN; stop it first" >&2
  exit 1
fi

say "Starting parleyd on $LISTEN in the background"
nohup "$BUILD/bin/parleyd" >"$LOG_FILE" 2>&1 </dev/null &
pid=$!
printf '%s\n' "$pid" > "$PID_FILE"

for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "quickstart: parleyd exited during startup; the end of $LOG_FILE:" >&2
    tail -n 20 "$LOG_FILE" >&2
    rm -f "$PID_FILE"
    exit 1
  fi
  if curl -fsS -o /dev/null --max-time 1 "$BASE/healthz" 2>/dev/null; then
    echo "parleyd is up: pid $pid, log $LOG_FILE, $BASE/healthz answers"
    echo "stop it with: deploy/quickstart.sh --stop   (or kill $pid)"
    exit 0
  fi
  sleep 0.1
done
echo "quickstart: parleyd (pid $pid) did not answer $BASE/healthz within 10 s; log: $LOG_FILE" >&2
exit 1
