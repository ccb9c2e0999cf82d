#!/usr/bin/env bash
# README command 2: install what is missing, build with warnings as errors,
# and run the whole test suite (unit + integration) with ctest.
#   FS_SANITIZE=address,undefined tests/run.sh   runs it under ASan + UBSan
#   BUILD_DIR=...                                 picks the build directory
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
build_dir=${BUILD_DIR:-build}
san=${FS_SANITIZE:-}
type=RelWithDebInfo
[ -n "$san" ] && type=Debug
cmake -S . -B "$build_dir" -DFS_WERROR=ON -DFS_SANITIZE="$san" -DCMAKE_BUILD_TYPE="$type" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j2
