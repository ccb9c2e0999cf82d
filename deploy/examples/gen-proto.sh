#!/usr/bin/env bash
# Generates the Python protobuf code scheduler.py imports (never committed):
#   deploy/examples/gen-proto.sh [DIR]     (default DIR: build/python)
# writes DIR/fieldsync/v1/sync_pb2.py. Needs protoc (Debian: protobuf-compiler).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/python}
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
mkdir -p "$out"
protoc --python_out="$out" -I "$root/proto" "$root/proto/fieldsync/v1/sync.proto"
echo "$out"
