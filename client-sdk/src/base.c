/*
 * The bottom layer of libfieldsync (base.h): clocks and the text of every
 * fs_err. No state, no locks, no LMDB or ZeroMQ. Random ids come from the
 * shared core (fsc_uuid, fsc_random in fieldsync/crypto.h).
 */
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
	case FS_ERR_KEY_REFUSED:
		return "the daemon refused this device's key (revoked, or not enrolled there)";
	}
	return "unknown error";
}
