#!/usr/bin/env bash
# The SDK on ARM: cross-builds the shared core and libfieldsync for 64-bit
# ARM (arm64, aarch64-linux-gnu) and 32-bit ARM (armhf, arm-linux-gnueabihf)
# and runs their unit tests under qemu-user:
#   arm64  test_sdk_* (the SDK's unit tests, but test_sdk_crypto_cli, which
#          drives the CLI) and the core's test_core_*, test_vv, test_merge_*
#   armhf  test_sdk_store and test_sdk_api (a 32-bit size_t, a 512 MiB map)
# The tests are built with the Criterion stand-in in tests/arm/shim (every
# test in one process, the same assertions): Criterion runs each test in a
# child process, and qemu-user 7.2 (Debian 12) hangs in any child process
# or thread a guest makes (clone), so a Criterion test binary never ends
# there; the tests also leave out what needs a thread (FS_TEST_NO_THREADS).
# Debian has no Criterion for armhf either. FS_ARM_CRITERION=ON links the
# real one, for an emulator that does not have the problem.
# Only the cross compilers and qemu-user are installed with apt. The ARM
# dependencies (libzmq, LMDB, protobuf-c, OpenSSL, cJSON, and what they
# need) are downloaded as .debs and unpacked into a private sysroot per
# architecture (dpkg -x), so no amd64 package is ever removed or replaced
# (multiarch -dev packages can conflict with the amd64 ones: Criterion's
# libnanomsg-dev does). Exits non-zero when any test fails.
#   ARM_BUILD_DIR=...   where to build (default build-arm)
#   ARM_ARCHES="arm64 armhf"
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${ARM_BUILD_DIR:-$root/build-arm}
arches=${ARM_ARCHES:-arm64 armhf}
t0=$(date +%s)
sudo=
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$out"

lap() { echo "arm.sh: $1 at $(($(date +%s) - t0)) s"; }

# ---- the build machine: cross compilers, qemu-user, protoc-c -------------
update=0
for a in $arches; do
	if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
		$sudo dpkg --add-architecture "$a"
		update=1
	fi
done
tools="qemu-user protobuf-c-compiler cmake pkg-config"
for a in $arches; do tools="$tools crossbuild-essential-$a"; done
missing=
for p in $tools; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ "$update" = 1 ] || [ -n "$missing" ] ||
	! apt-cache show "libzmq5:${arches%% *}" >/dev/null 2>&1; then
	$sudo apt-get update -qq
fi
if [ -n "$missing" ]; then
	# --no-remove: never take an installed package away
	$sudo apt-get install -y -qq --no-install-recommends --no-remove $missing
fi
lap "tools ready"

# ---- a dependency sysroot per architecture ---------------------------------
# Provided by the cross toolchain, or not needed to link and run the tests:
skip='^(libc6|libc6-dev|libc-dev-bin|linux-libc-dev|libgcc-s1|libstdc\+\+6|gcc-12-base|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|libtirpc-common|pkg-config|pkgconf|pkgconf-bin|libpkgconf3|icu-devtools|rpcsvc-proto|libicu-dev)$'
sysroot() { # arch dev-packages...
	local arch=$1
	shift
	local dir=$out/sysroot-$arch debs=$out/debs-$arch
	if [ -f "$dir/.complete" ]; then
		return
	fi
	rm -rf "$dir"
	mkdir -p "$dir" "$debs"
	local want=() p
	for p in "$@"; do want+=("$p:$arch"); done
	local list
	list=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "${want[@]}" |
		grep -E "^[a-z0-9][^ ]*:$arch\$" | sed "s/:$arch\$//" | grep -vE "$skip" | sort -u)
	# (as root, apt's sandbox user could not write here: download as root)
	(cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root \
		$(for p in $list; do echo "$p:$arch"; done))
	for f in "$debs"/*.deb; do dpkg -x "$f" "$dir"; done
	touch "$dir/.complete"
}

# ---- build and run ----------------------------------------------------------
fail=0
run_tests() { # arch qemu triple tests...
	local arch=$1 qemu=$2 triple=$3
	shift 3
	local sr=$out/sysroot-$arch bd=$out/$arch
	local ldp=$sr/usr/lib/$triple:$sr/lib/$triple
	for t in "$@"; do
		echo "== $arch: $t"
		if ! (cd tests/unit && timeout 600 "$qemu" -L "/usr/$triple" \
			-E "LD_LIBRARY_PATH=$ldp" "$bd/$t" --jobs 1 >"$bd/$t.log" 2>&1); then
			fail=1
			echo "FAILED: $arch $t" >&2
		fi
		grep -E '^\[(FAIL|====)\]|Assertion|Expectation' "$bd/$t.log" || true
	done
}

build() { # arch toolchain criterion tests...
	local arch=$1 tc=$2 crit=$3
	shift 3
	local tests="$*"
	FS_ARM_SYSROOT=$out/sysroot-$arch cmake -S tests/arm -B "$out/$arch" \
		-DCMAKE_TOOLCHAIN_FILE="$root/tests/toolchain-$tc.cmake" \
		-DFS_ARM_SYSROOT="$out/sysroot-$arch" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DFS_ARM_CRITERION="$crit" -DFS_ARM_TESTS="${tests// /;}" >"$out/$arch.configure.log" ||
		{ cat "$out/$arch.configure.log" >&2; exit 1; }
	cmake --build "$out/$arch" -j"$(nproc)" >"$out/$arch.build.log" 2>&1 ||
		{ tail -50 "$out/$arch.build.log" >&2; exit 1; }
	file "$out/$arch/client-sdk/libfieldsync.so.$(sed -n 's/^#define FIELDSYNC_VERSION_STRING "\(.*\)"/\1/p' client-sdk/include/fieldsync/fieldsync.h)"
}

deps="libzmq3-dev liblmdb-dev libprotobuf-c-dev libssl-dev libcjson-dev"
for arch in $arches; do
	case $arch in
	arm64)
		sysroot arm64 $deps $([ "${FS_ARM_CRITERION:-OFF}" = ON ] && echo libcriterion-dev)
		lap "arm64 sysroot ready"
		tests=$(cd tests/unit && ls test_sdk_*.c test_core_*.c test_vv.c test_merge_*.c |
			sed 's/\.c$//' | grep -v '^test_sdk_crypto_cli$' | tr '\n' ' ')
		build arm64 aarch64 "${FS_ARM_CRITERION:-OFF}" $tests
		lap "arm64 built"
		run_tests arm64 qemu-aarch64 aarch64-linux-gnu $tests
		lap "arm64 tests run"
		;;
	armhf)
		sysroot armhf $deps
		lap "armhf sysroot ready"
		build armhf armhf OFF test_sdk_store test_sdk_api
		lap "armhf built"
		run_tests armhf qemu-arm arm-linux-gnueabihf test_sdk_store test_sdk_api
		lap "armhf tests run"
		;;
	*)
		echo "arm.sh: unknown architecture $arch" >&2
		exit 2
		;;
	esac
done
lap "done"
if [ "$fail" -ne 0 ]; then
	echo "arm.sh: some ARM tests failed (logs in $out/<arch>/<test>.log)" >&2
	exit 1
fi
echo "arm.sh: every ARM test passed"
