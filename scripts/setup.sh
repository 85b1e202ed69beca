#!/bin/sh
# Installs what cordon and its tests need on Debian/Ubuntu, then builds cordon (npm ci).
set -eu
cd "$(dirname "$0")/.."
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # bubblewrap and a C compiler for cordon; the rest for its tests.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    bubblewrap gcc libc6-dev git python3 curl openssl iproute2 procps util-linux ca-certificates >/dev/null
else
  echo "setup: no apt-get here; install bubblewrap, gcc, git, python3, curl and openssl yourself" >&2
fi
npm ci --no-audit --no-fund
