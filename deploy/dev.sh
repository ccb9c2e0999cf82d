#!/usr/bin/env bash
# README command 1: install what is missing, build, and start fieldsyncd in
# development mode on loopback ports with its data under ./var.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target fieldsyncd fieldsync-cli
cat >&2 <<'TOUR'

fieldsyncd is starting in development mode (no CURVE, every scope granted).
In another terminal, push and pull with the fieldsync CLI:

  export FIELDSYNC_STORE=./var/tablet-a
  build/client-sdk/fieldsync init
  echo 'hello from tablet A' | build/client-sdk/fieldsync put note n1
  build/client-sdk/fieldsync sync --endpoint tcp://127.0.0.1:7400
  FIELDSYNC_STORE=./var/tablet-b build/client-sdk/fieldsync init
  FIELDSYNC_STORE=./var/tablet-b build/client-sdk/fieldsync sync --endpoint tcp://127.0.0.1:7400
  FIELDSYNC_STORE=./var/tablet-b build/client-sdk/fieldsync get note n1

Stop the daemon with Ctrl-C: it commits and answers what is queued, then exits.

TOUR
exec build/daemon/fieldsyncd --dev --data-dir ./var/daemon \
  --sync-endpoint tcp://127.0.0.1:7400 --reminder-endpoint tcp://127.0.0.1:7401 \
  --ops-listen 127.0.0.1:7480 "$@"
