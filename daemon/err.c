/* err: the one table of error texts (see err.h). Infrastructure layer. */
#include "err.h"

const char *
fsd_strerror(fsd_err e)
{
	switch (e) {
	case FSD_OK:
		return "success";
	case FSD_NOTFOUND:
		return "not found";
	case FSD_EXISTS:
		return "already exists";
	case FSD_FULL:
		return "the store's map is full (raise --map-size-max)";
	case FSD_NOSPACE:
		return "the disk refused the write (full, quota or I/O error)";
	case FSD_CORRUPT:
		return "stored data does not decode";
	case FSD_NOMEM:
		return "out of memory";
	case FSD_INVALID:
		return "invalid input";
	case FSD_FORBIDDEN:
		return "not granted";
	case FSD_TOO_LARGE:
		return "too large";
	case FSD_BUSY:
		return "busy, try again later";
	case FSD_NOKEY:
		return "the data key is gone";
	case FSD_IO:
		return "input/output error";
	case FSD_ERROR:
		return "internal error";
	}
	return "unknown error";
}
