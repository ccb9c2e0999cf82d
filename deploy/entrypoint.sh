#!/bin/sh
# The container image's entry point (deploy/Dockerfile): configuration comes
# from the environment (fieldsyncd --help lists every FIELDSYNC_* variable),
# arguments are passed on (e.g. --dev), and fieldsyncd replaces this shell so
# it receives SIGTERM itself and drains. tests/integration/test_deploy.c runs
# exactly this script as uid 10001 from a read-only directory.
#
# Two optional variables are read by this script only, for Kubernetes, where
# a Secret volume's files are owned by root and group-readable (fsGroup), which
# fieldsyncd refuses for secret keys (it wants 0600, owner only):
#   FIELDSYNC_SERVER_KEY_DIR     a directory holding server.key and server.pub
#                                (made once with `fieldsyncd init`): installed
#                                into the data dir, mode 0600, when missing
#                                there; a different key already there is an error.
#   FIELDSYNC_MASTER_KEY_SECRET  the master key file as mounted: copied to
#                                FIELDSYNC_MASTER_KEY_FILE (default
#                                /run/fieldsync/master.key, a memory volume), 0600.
# Without either, the master key is FIELDSYNC_MASTER_KEY_FILE, else the Docker
# secret /run/secrets/fieldsync-master-key when it exists (mounted 0600, uid 10001).
set -eu
: "${FIELDSYNC_DATA_DIR:=/var/lib/fieldsync}"
: "${FIELDSYNC_OPS_LISTEN:=0.0.0.0:7480}"
export FIELDSYNC_DATA_DIR FIELDSYNC_OPS_LISTEN
umask 077
mkdir -p "$FIELDSYNC_DATA_DIR"   # mode 0700 (a subdirectory of a volume's root, in k8s)

if [ -n "${FIELDSYNC_SERVER_KEY_DIR:-}" ]; then
	for f in server.key server.pub; do
		src="$FIELDSYNC_SERVER_KEY_DIR/$f" dst="$FIELDSYNC_DATA_DIR/$f"
		if [ ! -e "$dst" ]; then
			cat "$src" > "$dst.tmp" && mv "$dst.tmp" "$dst"
		elif ! cmp -s "$src" "$dst"; then
			echo "entrypoint: $dst differs from $src; refusing to start (remove it to take the Secret's key)" >&2
			exit 1
		fi
	done
fi

if [ -n "${FIELDSYNC_MASTER_KEY_SECRET:-}" ]; then
	: "${FIELDSYNC_MASTER_KEY_FILE:=/run/fieldsync/master.key}"
	cat "$FIELDSYNC_MASTER_KEY_SECRET" > "$FIELDSYNC_MASTER_KEY_FILE"
	export FIELDSYNC_MASTER_KEY_FILE
elif [ -z "${FIELDSYNC_MASTER_KEY_FILE:-}${FIELDSYNC_MASTER_KEY:-}" ] &&
     [ -e /run/secrets/fieldsync-master-key ]; then
	# Docker and Compose secrets: `secrets: [fieldsync-master-key]`
	export FIELDSYNC_MASTER_KEY_FILE=/run/secrets/fieldsync-master-key
fi

exec fieldsyncd "$@"
