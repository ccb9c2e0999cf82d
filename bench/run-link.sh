#!/usr/bin/env bash
# bench_link from one command: builds what it needs (-j2), then runs it.
#   bench/run-link.sh            three links, 20,000 records (about 4 minutes)
#   bench/run-link.sh --quick    2,000 records on the 5/1 Mbit/s link
# Any other arguments go to bench_link (see its header comment).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
[ -f "$build_dir/CMakeCache.txt" ] || cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j2 --target bench_link linksim fieldsyncd >/dev/null
exec "$build_dir/bench/bench_link" "$@"
