#!/usr/bin/env bash
# Installs the Debian 12 packages fieldsync builds and tests with, only when
# one is missing. Root runs apt-get directly; anyone else goes through sudo.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libzmq3-dev liblmdb-dev lmdb-utils
      protobuf-c-compiler libprotobuf-c-dev libssl-dev libcriterion-dev
      libcjson-dev tzdata)
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
