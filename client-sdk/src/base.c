/*
 * The bottom layer of libfieldsync (base.h): clocks, the text of every
 * fs_err, the version, fs_free, and the thread-local error detail. No
 * shared state, no locks, no LMDB or ZeroMQ. Random ids come from the
 * shared core (fsc_uuid, fsc_random in fieldsync/crypto.h): OpenSSL's
 * RAND_bytes, never a system call of one platform.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base.h"

int64_t
sdk_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
sdk_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
fs_strerror(fs_err e)
{
	switch (e) {
	case FS_OK:
		return "success";
	case FS_ERR_INVALID:
		return "invalid argument";
	case FS_ERR_NOT_FOUND:
		return "not found";
	case FS_ERR_EXISTS:
		return "a store already exists there";
	case FS_ERR_NOMEM:
		return "out of memory";
	case FS_ERR_IO:
		return "the local store could not be read or written";
	case FS_ERR_CORRUPT:
		return "the local store holds data that does not decode";
	case FS_ERR_VERSION:
		return "the local store was written by an unknown schema version";
	case FS_ERR_FULL:
		return "the local store is full";
	case FS_ERR_TIMEOUT:
		return "no answer from the sync endpoint within the timeout";
	case FS_ERR_NETWORK:
		return "the sync endpoint cannot be used";
	case FS_ERR_PROTOCOL:
		return "the sync endpoint answered outside the protocol";
	case FS_ERR_BUSY:
		return "the daemon is busy or unavailable; retry later";
	case FS_ERR_REFUSED:
		return "the daemon refused the request";
	case FS_ERR_SERVER:
		return "the daemon reported an internal error";
	case FS_ERR_KEY_REQUIRED:
		return "the local store is encrypted: open it with its key";
	case FS_ERR_KEY_WRONG:
		return "the key given does not open the local store (wrong key or key id)";
	case FS_ERR_NOT_ENCRYPTED:
		return "a key was given but the local store is not encrypted";
	case FS_ERR_FORBIDDEN:
		return "the store's credential does not grant this scope";
	case FS_ERR_CANCELLED:
		return "the sync was cancelled";
	case FS_ERR_PLAIN_CREDENTIAL:
		return "the local store holds a device credential but is not encrypted: encrypt "
		       "it with `fieldsync --store DIR --key-file FILE migrate` (fs_store_migrate); "
		       "make a key with `fieldsync --key-file FILE keygen`";
	case FS_ERR_KEY_REFUSED:
		return "the daemon refused this device's key (revoked, or not enrolled there)";
	case FS_ERR_TRIMMED:
		return "reminder events after the cursor are no longer kept by the daemon "
		       "(event retention): resynchronise, then go on from the oldest kept event";
	}
	return "unknown error";
}

const char *
fs_version(void)
{
	return FIELDSYNC_VERSION_STRING;
}

void
fs_free(void *p)
{
	free(p);
}

/* ---- the error detail: one buffer per thread ----------------------------- */

static _Thread_local char detail[256];

const char *
fs_last_error_detail(void)
{
	return detail;
}

void
sdk_detail_clear(void)
{
	detail[0] = '\0';
}

void
sdk_detail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
}
