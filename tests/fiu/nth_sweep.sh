#!/usr/bin/env bash
# The "fail the Nth call" sweep of issue 12 (the longer mode, run by .ci/run
# after tests/fiu/sweep.sh): for each class of libfiu failure points, every
# call that ONE push makes (storage I/O, network I/O, allocations) is made
# to fail in a run of its own, point by point, N = 1, 2, ... until a push
# makes fewer than N calls of that point. After each run the daemon is
# restarted cleanly and every acknowledged change set must be there, whole;
# see tests/fiu/nth_sweep.c for every check and tests/fiu/nth_preload.c for
# how the Nth call is failed.
#   tests/fiu/nth_sweep.sh [BUILD_DIR]
#   FIU_NTH_BUDGET_S (default 360) bounds the whole sweep: each class gets
#   its share; FIU_NTH_MAX (default 400) caps N per point. A capped point
#   says "CAPPED" in the report.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
bin="$build/tests/fiu/fiu_nth_sweep"
preload="$(pwd)/$build/tests/fiu/nth_preload.so"
[ -x "$bin" ] && [ -f "$preload" ] || { echo "nth sweep: $bin or $preload not built" >&2; exit 2; }
[ -f /usr/lib/fiu/fiu_posix_preload.so ] || { echo "nth sweep: fiu-utils missing (deploy/install-deps.sh --test)" >&2; exit 2; }
budget=${FIU_NTH_BUDGET_S:-360}
max=${FIU_NTH_MAX:-400}

storage="posix/io/oc/open posix/io/oc/close posix/io/sync/fsync posix/io/sync/fdatasync
  posix/io/rw/read posix/io/rw/pread posix/io/rw/readv posix/io/rw/preadv posix/io/rw/write
  posix/io/rw/pwrite posix/io/rw/writev posix/io/rw/pwritev posix/io/rw/truncate
  posix/io/rw/ftruncate posix/io/dir/readdir posix/io/dir/closedir posix/io/dir/unlink
  posix/io/dir/rename"
net="posix/io/net/socket posix/io/net/bind posix/io/net/listen posix/io/net/accept
  posix/io/net/connect posix/io/net/recv posix/io/net/recvfrom posix/io/net/recvmsg
  posix/io/net/send posix/io/net/sendto posix/io/net/sendmsg posix/io/net/shutdown
  posix/io/net/select posix/io/net/pselect posix/io/net/poll"
alloc="libc/mm/malloc libc/mm/calloc libc/mm/realloc"

start=$(date +%s)
status=0
report=$(mktemp)
left=3
for class in storage alloc net; do
  used=$(( $(date +%s) - start ))
  share=$(( (budget - used) / left ))
  left=$((left - 1))
  [ "$share" -lt 10 ] && share=10
  points=$(echo ${!class})   # one line
  # the runs, one line each, as they go; the class's counts at the end
  "$bin" --preload "$preload" --class "$class" --points "$points" --max "$max" \
    --budget "$share" >>"$report"
  rc=$?
  [ "$rc" -ne 0 ] && status=1
done
cat "$report"
rm -f "$report"
echo "nth sweep: $(( $(date +%s) - start )) s in all (budget $budget s), exit $status (0: nothing acknowledged was lost or split, no other code, every restart clean, the daemon recovered by itself every time)"
exit "$status"
