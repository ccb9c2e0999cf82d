#!/usr/bin/env bash
# Self-test of .ci/check-layers on small synthetic trees: a clean layered
# tree passes; an upward include, a circle of modules, the core including
# the daemon, the SDK including the daemon, a file missing from the layer
# table, a product file including the test umbrella and a daemon file other
# than store.c including <lmdb.h> each fail with the line that names them. Registered in ctest as `layers-selftest`.
set -uo pipefail
check=("$(cd "$(dirname "$0")/../.." && pwd)/.ci/check-layers")
# Under ctest the interpreter CMake found runs it (no reliance on PATH).
[ -n "${CHECK_LAYERS_PYTHON:-}" ] && check=("$CHECK_LAYERS_PYTHON" "${check[@]}")
work=$(mktemp -d "${TMPDIR:-/tmp}/check-layers.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0

# put TREE FILE [INCLUDE...]: writes FILE with one #include "X" per INCLUDE.
put() {
	local tree=$1 file=$2
	shift 2
	mkdir -p "$(dirname "$work/$tree/$file")"
	{
		echo "/* $file */"
		echo "#include <stdio.h>"
		for i in "$@"; do echo "#include \"$i\""; done
	} >"$work/$tree/$file"
}

# A clean tree, every kind of allowed include.
clean() {
	local t=$1
	put "$t" proto/include/fieldsync/merge.h fieldsync/v1/sync.pb-c.h
	put "$t" proto/merge.c fieldsync/merge.h fieldsync/v1/sync.pb-c.h
	put "$t" daemon/log.h
	put "$t" daemon/log.c log.h
	put "$t" daemon/err.h
	put "$t" daemon/store.h err.h storage.pb-c.h
	put "$t" daemon/store.c store.h log.h err.h
	put "$t" daemon/records.h store.h
	put "$t" daemon/records.c records.h store.h fieldsync/merge.h
	put "$t" daemon/replies.h
	put "$t" daemon/replies.c replies.h records.h
	put "$t" daemon/wire.h fieldsync/v1/sync.pb-c.h
	put "$t" daemon/wire.c wire.h records.h
	put "$t" daemon/daemon.h
	put "$t" daemon/daemon.c daemon.h wire.h log.h
	put "$t" daemon/admin/admin.h
	put "$t" daemon/admin/verify.c admin.h ../store.h records.h
	put "$t" daemon/main.c daemon.h admin/admin.h
	put "$t" daemon/fieldsyncd.h log.h store.h records.h wire.h daemon.h
	put "$t" client-sdk/include/fieldsync/fieldsync.h
	put "$t" client-sdk/src/internal.h fieldsync/fieldsync.h
	put "$t" client-sdk/src/store.c internal.h fieldsync/merge.h fieldsync/v1/sync.pb-c.h
	put "$t" client-sdk/cli/fieldsync.c fieldsync/fieldsync.h
}

# expect NAME WANT_RC [PATTERN...]: runs the check on tree NAME, checks the
# exit status and that each PATTERN (grep -E) is in its output.
expect() {
	local name=$1 want=$2
	shift 2
	local out rc
	out=$("${check[@]}" --root "$work/$name" 2>&1)
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "FAIL $name: exit $rc, wanted $want; output:"
		echo "$out" | sed 's/^/    /'
		failures=$((failures + 1))
		return
	fi
	for p in "$@"; do
		if ! grep -qE -- "$p" <<<"$out"; then
			echo "FAIL $name: no line matching '$p' in:"
			echo "$out" | sed 's/^/    /'
			failures=$((failures + 1))
			return
		fi
	done
	echo "ok   $name"
}

clean clean
expect clean 0

clean upward
put upward daemon/log.c log.h store.h
expect upward 1 '^daemon/log\.c:4 includes store\.h \(layer storage\) from layer infra$'

clean circle
put circle daemon/records.c records.h replies.h
expect circle 1 'circle of includes: .*daemon/records\.c:4 includes replies\.h.*daemon/replies\.c:4 includes records\.h|circle of includes: .*daemon/replies\.c:4 includes records\.h.*daemon/records\.c:4 includes replies\.h'

clean circle3
put circle3 daemon/log.c log.h err.h
put circle3 daemon/err.c err.h config.h
put circle3 daemon/config.h
put circle3 daemon/config.c config.h log.h
expect circle3 1 'circle of includes: .*daemon/log\.c:4 includes err\.h' \
	'circle of includes: .*daemon/err\.c:4 includes config\.h' \
	'circle of includes: .*daemon/config\.c:4 includes log\.h'

clean core
put core proto/merge.c fieldsync/merge.h store.h
expect core 1 '^proto/merge\.c:4 includes store\.h \(layer storage\) from layer core$'

clean core_sdk
put core_sdk proto/merge.c fieldsync/merge.h fieldsync/fieldsync.h
expect core_sdk 1 '^proto/merge\.c:4 includes fieldsync/fieldsync\.h \(layer sdk\) from layer core$'

clean sdk
put sdk client-sdk/src/store.c internal.h ../../daemon/records.h
expect sdk 1 '^client-sdk/src/store\.c:4 includes \.\./\.\./daemon/records\.h \(layer data\) from layer sdk$'

clean unplaced
put unplaced daemon/internal.h
put unplaced daemon/store.c store.h internal.h
expect unplaced 1 '^daemon/internal\.h:1 is not in the layer table' \
	'^daemon/store\.c:4 includes internal\.h \(layer unplaced\) from layer storage$'

clean umbrella
put umbrella daemon/wire.c wire.h fieldsyncd.h
expect umbrella 1 '^daemon/wire\.c:4 includes fieldsyncd\.h \(a test umbrella header\)'

clean daemon_admin
put daemon_admin daemon/daemon.c daemon.h admin/admin.h
expect daemon_admin 1 '^daemon/daemon\.c:4 includes admin/admin\.h \(layer admin\) from layer daemon$'

clean missing
put missing daemon/store.c store.h nowhere.h
expect missing 1 '^daemon/store\.c:4 includes nowhere\.h \(not found in the tree\)'

# <lmdb.h> is the store's files' alone (store.c, store_kv.c, store_impl.h);
# client-sdk/ may include it. store_impl.h is store*.c's private header.
clean lmdb
printf '/* store.c */\n#include <lmdb.h>\n#include "store.h"\n' >"$work/lmdb/daemon/store.c"
printf '/* store.c */\n#include <lmdb.h>\n' >"$work/lmdb/client-sdk/src/store.c"
expect lmdb 0
printf '/* records.c */\n#include <lmdb.h>\n#include "records.h"\n' >"$work/lmdb/daemon/records.c"
expect lmdb 1 '^daemon/records\.c:2 includes <lmdb\.h>, which only daemon/store\.c, daemon/store_impl\.h, daemon/store_kv\.c may include$'
clean lmdbpriv
printf '/* store_impl.h */\n#include <lmdb.h>\n' >"$work/lmdbpriv/daemon/store_impl.h"
printf '/* store_kv.c */\n#include "store.h"\n#include "store_impl.h"\n' >"$work/lmdbpriv/daemon/store_kv.c"
put lmdbpriv daemon/store.h
expect lmdbpriv 0
printf '/* records.c */\n#include "store.h"\n#include "store_impl.h"\n' >"$work/lmdbpriv/daemon/records.c"
expect lmdbpriv 1 '^daemon/records\.c:3 includes store_impl\.h, which only daemon/store\.c, daemon/store_kv\.c may include$'

# The CLI's "internal.h" is the SDK's, not the daemon's of the same name.
clean cli
put cli daemon/internal.h
put cli client-sdk/cli/fieldsync.c fieldsync/fieldsync.h internal.h
put cli daemon/fieldsyncd.h internal.h
expect cli 1 '^daemon/internal\.h:1 is not in the layer table'
if "${check[@]}" --root "$work/cli" 2>/dev/null | grep -q '^client-sdk/'; then
	echo "FAIL cli: client-sdk/cli/fieldsync.c's internal.h taken for the daemon's"
	failures=$((failures + 1))
fi

# The real tree is checked by the `layers` test (FS_CHECK_LAYERS=ON).
if [ "$failures" -ne 0 ]; then
	echo "check-layers self-test: $failures failure(s)"
	exit 1
fi
echo "check-layers self-test: all passed"
