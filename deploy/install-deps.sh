#!/usr/bin/env bash
# Installs every Debian package Parley needs to build, test, format and run (Debian 12).
#
# Idempotent and fast on a machine that already has everything: when dpkg reports every
# package installed, apt is not touched at all. Otherwise: `apt-get update`, then one
# `apt-get install`. Runs as root, or through sudo when not root and sudo exists.
#
# Usage: deploy/install-deps.sh [--force]   (--force: run apt even if all are installed)
set -euo pipefail

PACKAGES=(
  # build
  build-essential
  cmake
  pkg-config
  # libraries (server)
  libuv1-dev
  libjansson-dev
  libjwt-dev
  node-llhttp        # llhttp C sources under /usr/share/llhttp
  libssl-dev
  libwebsockets-dev
  libhiredis-dev
  libcurl4-openssl-dev # the 7TV proxy's upstream client (multi interface on the libuv loop)
  # libraries (client SDK: ICE, SCTP over DTLS)
  libnice-dev        # ICE (GLib)
  libglib2.0-dev
  libusrsctp-dev     # SCTP for DataChannels
  # runtime services and tools
  redis-server
  curl
  openssl            # deploy/quickstart.sh signs its development token with it
  jq                 # the README's curl walk-through reads fields with it
  # tests
  python3
  python3-websockets
  python3-jwt
  python3-cryptography
  python3-aiortc     # tests/interop: a WebRTC peer nobody here wrote (run with /usr/bin/python3)
  chromium           # tests/browser: Debian's Chromium (/usr/bin/chromium), driven by playwright-core
  imagemagick        # tests/integration/test_emoji.py makes its PNG/GIF/WebP uploads with it
  webp               # ... and its animated WebP with gif2webp (libwebp's tool)
  nginx              # tests/integration/test_cluster_proxy.py runs deploy/nginx/parley.conf in a private nginx
  nodejs             # tests/browser runs on node (the machines' NodeSource Node.js 20 counts)
  # style
  clang-format
)

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "install-deps.sh: unknown argument: $1" >&2; exit 2 ;;
esac

# npm comes with NodeSource's nodejs but is a package of its own in Debian: asked for only
# when no npm is on PATH (tests/run.sh runs `npm ci` in tests/browser).
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  if [ "$status" != "installed" ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ] && [ "$force" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: not root and sudo is not available; install as root: ${missing[*]}" >&2
    exit 1
  fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing: ${missing[*]}"
fi
export DEBIAN_FRONTEND=noninteractive

# Debian's nginx package starts the system service (a default site on port 80) as it installs.
# The tests run their own nginx on a free loopback port and want no service: while nginx is
# being installed here, a policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d
# and deb-systemd-invoke from starting it. Only when no policy-rc.d exists (one that is there
# is the machine's own policy and is left alone); removed again on exit, whatever happens.
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARK="# install-deps.sh: temporary, keeps nginx from starting while it installs"
policy_made=0
remove_policy() {
  if [ "$policy_made" -eq 1 ] && grep -qF "$POLICY_MARK" "$POLICY_RC" 2>/dev/null; then
    "${SUDO[@]}" rm -f "$POLICY_RC"
  fi
}
trap remove_policy EXIT
nginx_new=0
for pkg in "${missing[@]}"; do
  [ "$pkg" = nginx ] && nginx_new=1
done
if [ "$nginx_new" -eq 1 ] && [ ! -e "$POLICY_RC" ]; then
  printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" | "${SUDO[@]}" tee "$POLICY_RC" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY_RC"
  policy_made=1
fi

"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}"
remove_policy
policy_made=0
# Without our policy-rc.d (the machine had its own that allowed it), a just-installed
# nginx may have started: stop it through its own pid file (the package's default one).
if [ "$nginx_new" -eq 1 ] && [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
  echo "install-deps: stopping the nginx service the package started (the tests run their own)"
  "${SUDO[@]}" nginx -s quit || true
fi
echo "install-deps: done"
