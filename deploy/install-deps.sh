#!/usr/bin/env bash
# Installs the Debian 12 packages fieldsync builds and tests with, only when
# one is missing. Root runs apt-get directly; anyone else goes through sudo.
set -euo pipefail
# Usage: install-deps.sh [--test]   (--test adds what only the test suite needs)
pkgs=(build-essential cmake pkg-config libzmq3-dev liblmdb-dev lmdb-utils
      protobuf-c-compiler libprotobuf-c-dev libssl-dev libcriterion-dev
      libcjson-dev libmicrohttpd-dev libinih-dev libzstd-dev libsystemd-dev tzdata)
if [ "${1:-}" = "--test" ]; then
  # promtool (prometheus) checks /metrics; python3-zmq, python3-protobuf and
  # protoc run the Python scheduler example; python3-yaml reads deploy/k8s
  # (test_deploy); clang runs the fuzzers;
  # libfiu-dev and fiu-utils (fiu-run) inject I/O and allocation failures.
  pkgs+=(prometheus python3 python3-yaml python3-zmq python3-protobuf protobuf-compiler clang libclang-rt-14-dev clang-format
         libfiu-dev fiu-utils)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${missing[@]}"
