/*
 * compress: zstd for pull pages (infra layer; issue 15, protocol.md §5.1).
 *
 * The daemon only compresses: a device never sends compressed bytes, so
 * there is no decompressor here to attack. Pure functions, any thread; the
 * output is malloc'd and the caller's.
 */
#ifndef FIELDSYNCD_COMPRESS_H
#define FIELDSYNCD_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The zstd level pages are compressed with (fast, and ~3.2x on casework). */
#define COMPRESS_LEVEL 3

/*
 * Compresses src (len bytes) into one zstd frame that records its content
 * size: FSD_OK with *out (malloc'd) and *outlen; FSD_NOMEM; FSD_ERROR when
 * zstd fails.
 */
fsd_err compress_zstd(const uint8_t *src, size_t len, int level, uint8_t **out, size_t *outlen);

#endif
