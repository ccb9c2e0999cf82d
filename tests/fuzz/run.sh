#!/usr/bin/env bash
# Builds the libFuzzer targets (CMake targets of tests/fuzz/CMakeLists.txt,
# linked against the real libraries) with clang in build-fuzz/, and runs each
# for a bounded time on a copy of the committed seed corpus.
#
#   tests/fuzz/run.sh                      every target, FUZZ_SECONDS (30) each
#   tests/fuzz/run.sh fuzz_envelope ...    only the targets named
#   FUZZ_SECONDS=600 tests/fuzz/run.sh     a longer run
#   tests/fuzz/run.sh --build-only         build, do not run
#   tests/fuzz/run.sh --repro TARGET FILE  run one input (a crash artifact)
#   tests/fuzz/run.sh --regen-corpus       rewrite tests/fuzz/corpus from gen_corpus.c
#
# Environment: FUZZ_SECONDS (per target, default 30), FUZZ_CC (default
# clang), FUZZ_BUILD_DIR (the CMake build directory, default build-fuzz),
# FUZZ_WORKDIR (run directory; default a fresh temp dir, removed after a
# clean run, kept when something failed or FUZZ_KEEP=1), FUZZ_SKIP_KNOWN=1
# (step over the known findings of fuzz_known.h, to look for new ones while
# those wait for a fix).
# Nothing is written into the repository except build-fuzz/ (ignored) and,
# by --regen-corpus, the corpus.
#
# Exit status: 0 when every target built and ran its time without a crash,
# leak, timeout or out-of-memory; 1 otherwise; 2 on a usage or setup error.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/fuzz
cd "$root"

ALL_TARGETS=(fuzz_envelope fuzz_payloads fuzz_rules_config fuzz_json_payload fuzz_pull_page fuzz_push_inflate)
CC=${FUZZ_CC:-clang}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
BUILD=${FUZZ_BUILD_DIR:-$root/build-fuzz}
SKIP_KNOWN=OFF
[ "${FUZZ_SKIP_KNOWN:-0}" = 1 ] && SKIP_KNOWN=ON

say() { printf 'fuzz: %s\n' "$*" >&2; }
work= keep=1
die() {
  say "$*"
  [ -n "$work" ] && [ "$keep" = 0 ] && rm -rf "$work"
  exit 2
}

# ---- arguments --------------------------------------------------------------

mode=run
repro_target= repro_file=
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --build-only) mode=build ;;
    --regen-corpus) mode=regen ;;
    --repro)
      [ $# -ge 3 ] || die "usage: $0 --repro TARGET FILE"
      mode=repro repro_target=$2 repro_file=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
      shift 2 ;;
    -h|--help) sed -n '2,20p' "$here/run.sh" | sed 's/^# \{0,1\}//'; exit 0 ;;
    fuzz_*) targets+=("$1") ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
[ "$mode" = repro ] && targets=("$repro_target")
for t in "${targets[@]}"; do
  [ -f "$here/$t.c" ] || die "no such target: $t"
done
case $SECONDS_PER_TARGET in
  ''|*[!0-9]*|0) die "FUZZ_SECONDS must be a positive integer, not '$SECONDS_PER_TARGET'" ;;
esac

# ---- tools ------------------------------------------------------------------

if [ -n "${FUZZ_WORKDIR:-}" ]; then
  work=$FUZZ_WORKDIR
  mkdir -p "$work" || die "cannot create $work"
  keep=1
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-fuzz.XXXXXX") || die "mktemp failed"
  keep=${FUZZ_KEEP:-0}
fi
mkdir -p "$work/logs" "$work/corpus" "$work/artifacts"

fuzzer_works() {
  command -v "$CC" >/dev/null 2>&1 || return 1
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
    'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' \
    >"$work/probe.c"
  "$CC" -fsanitize=fuzzer,address,undefined "$work/probe.c" -o "$work/probe" >/dev/null 2>&1
}

if ! fuzzer_works; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${FUZZ_CC:-}" ]; then
    say "clang or its fuzzer runtime is missing: installing clang libclang-rt-14-dev"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y clang libclang-rt-14-dev >&2 ||
      { apt-get update >&2 && apt-get install -y clang libclang-rt-14-dev >&2; } ||
      die "apt-get could not install clang libclang-rt-14-dev"
  fi
  fuzzer_works || die "$CC cannot build a libFuzzer target: install clang and libclang-rt-14-dev"
fi

# The whole project is configured (the targets link its libraries), so
# every build dependency must be there; install-deps.sh is quick when they are.
if [ -x "$root/deploy/install-deps.sh" ]; then
  "$root/deploy/install-deps.sh" >&2 || die "deploy/install-deps.sh failed"
fi
command -v cmake >/dev/null 2>&1 || die "cmake is missing"

# ---- build (CMake, -DFS_BUILD_FUZZ=ON) --------------------------------------

# The libraries get -fsanitize=fuzzer-no-link (coverage) with ASan + UBSan
# through FS_SANITIZE; each target adds -fsanitize=fuzzer (tests/fuzz/CMakeLists.txt).
# A build directory made with another compiler is started again.
cc_path=$(command -v "$CC")
if [ -f "$BUILD/CMakeCache.txt" ] &&
   ! grep -qx "CMAKE_C_COMPILER:[A-Z]*=$cc_path" "$BUILD/CMakeCache.txt"; then
  say "$BUILD was configured with another compiler: configuring it again"
  rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
fi
if ! cmake -S "$root" -B "$BUILD" -DCMAKE_C_COMPILER="$cc_path" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DFS_BUILD_FUZZ=ON -DFS_SANITIZE=fuzzer-no-link,address,undefined \
     -DFS_FUZZ_SKIP_KNOWN="$SKIP_KNOWN" -DFS_BUILD_BENCH=OFF -DFS_WERROR=OFF \
     >"$work/logs/configure.log" 2>&1; then
  cat "$work/logs/configure.log" >&2
  die "cmake could not configure $BUILD"
fi
JOBS=${FUZZ_JOBS:-2}

if [ "$mode" = regen ]; then
  cmake --build "$BUILD" -j"$JOBS" --target fuzz_gen_corpus >"$work/logs/gen_corpus.build.log" 2>&1 ||
    { cat "$work/logs/gen_corpus.build.log" >&2; die "gen_corpus.c does not build"; }
  rm -rf "$here/corpus.new"
  ASAN_OPTIONS=detect_leaks=0 "$BUILD/tests/fuzz/fuzz_gen_corpus" "$here/corpus.new" || die "gen_corpus failed"
  # the seeds of fuzz_pull_page and fuzz_push_inflate are zstd frames made with the zstd tool, kept
  for t in fuzz_pull_page fuzz_push_inflate; do
    [ -d "$here/corpus/$t" ] && cp -r "$here/corpus/$t" "$here/corpus.new/"
  done
  rm -rf "$here/corpus" && mv "$here/corpus.new" "$here/corpus"
  [ "$keep" -eq 1 ] || rm -rf "$work"
  say "wrote $(find "$here/corpus" -type f | wc -l) seeds, $(du -sb "$here/corpus" | cut -f1) bytes, to tests/fuzz/corpus"
  exit 0
fi

declare -A result
declare -A bin
build_failed=0
for t in "${targets[@]}"; do
  if cmake --build "$BUILD" -j"$JOBS" --target "$t" >"$work/logs/$t.build.log" 2>&1; then
    bin[$t]=$BUILD/tests/fuzz/$t
  else
    result[$t]="BUILD-FAILED"
    build_failed=1
    say "$t does not build:"
    grep -E -B2 -A6 'error|Error' "$work/logs/$t.build.log" | head -60 >&2
  fi
done
[ "$mode" = build ] && { say "binaries in $BUILD/tests/fuzz"; exit "$build_failed"; }

# ---- run --------------------------------------------------------------------

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
  for s in "$(command -v llvm-symbolizer 2>/dev/null)" /usr/lib/llvm-*/bin/llvm-symbolizer; do
    [ -n "$s" ] && [ -x "$s" ] && { export ASAN_SYMBOLIZER_PATH=$s; break; }
  done
fi

if [ "$mode" = repro ]; then
  [ -z "${result[$repro_target]:-}" ] || exit 1
  say "running $repro_target on $repro_file"
  "${bin[$repro_target]}" -rss_limit_mb=2048 -timeout=10 "$repro_file"
  rc=$?
  [ "$keep" -eq 1 ] || rm -rf "$work"
  exit "$rc"
fi

status=$build_failed
summary=()
for t in "${targets[@]}"; do
  if [ -n "${result[$t]:-}" ]; then
    summary+=("$(printf '%-18s %-12s' "$t" "${result[$t]}")")
    continue
  fi
  # A copy of the seeds: the fuzzer adds what it finds there, never in the repo.
  rm -rf "$work/corpus/$t" && mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  [ -d "$here/corpus/$t" ] && cp -R "$here/corpus/$t/." "$work/corpus/$t/"
  seeds=$(find "$work/corpus/$t" -type f | wc -l)
  args=(-max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/")
  [ -f "$here/dict/$t.dict" ] && args+=(-dict="$here/dict/$t.dict")
  say "running $t for ${SECONDS_PER_TARGET}s on $seeds seeds"
  log=$work/logs/$t.log
  "${bin[$t]}" "${args[@]}" "$work/corpus/$t" >"$log" 2>&1
  rc=$?

  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \2/p' "$log" | tail -n1)
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' "$log" | tail -n1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)

  if [ "$rc" -eq 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
    verdict=ok
  else
    status=1
    if grep -q 'LeakSanitizer' "$log"; then verdict=LEAK
    elif grep -q 'ERROR: libFuzzer: timeout' "$log"; then verdict=TIMEOUT
    elif grep -qE 'ERROR: libFuzzer: (out-of-memory|malloc limit)' "$log"; then verdict=OOM
    else verdict=CRASH
    fi
  fi
  line=$(printf '%-18s %-8s runs=%s exec/s=%s cov=%s ft=%s corpus=%s->%s rss=%sMB' \
    "$t" "$verdict" "${runs:-?}" "${rate:-?}" "${cov%% *}" "${cov##* }" "$seeds" "${corp:-?}" "${rss:-?}")
  summary+=("$line")
  if [ "$verdict" != ok ]; then
    say "$t: $verdict (exit $rc); the end of its log:"
    grep -nE -A40 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|^fuzz_' "$log" | head -80 >&2
    for a in "$work/artifacts/$t"/*; do
      [ -f "$a" ] || continue
      say "reproducer: $a ($(wc -c <"$a") bytes): $(od -An -tx1 -v "$a" | tr -d ' \n' | head -c 400)"
      say "  rerun: tests/fuzz/run.sh --repro $t $a"
    done
  fi
done

known=""
[ "${FUZZ_SKIP_KNOWN:-0}" = 1 ] && known=", known findings skipped"
echo "fuzz summary (${SECONDS_PER_TARGET}s per target, $CC $("$CC" -dumpversion 2>/dev/null)$known):"
printf '  %s\n' "${summary[@]}"
if [ "$status" -ne 0 ] || [ "$keep" -eq 1 ]; then
  echo "logs, corpora and artifacts: $work"
else
  rm -rf "$work"
fi
exit "$status"
