/*
 * compress: zstd for pull pages (infra layer; issue 15, protocol.md §5.1).
 *
 * Pull pages are compressed; a device's change set may arrive compressed
 * (protocol.md §4.1) and is opened under a cap checked before anything is
 * allocated. Pure functions, any thread; the output is malloc'd and the
 * caller's.
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

/*
 * Opens one zstd frame of exactly `size` bytes (its header must say so):
 * FSD_OK with *out (malloc'd, size bytes); FSD_TOO_LARGE when size is over
 * cap (nothing allocated); FSD_INVALID when the frame is not one of that
 * size; FSD_NOMEM.
 */
fsd_err compress_zstd_open(const uint8_t *src, size_t len, uint64_t size, uint64_t cap,
                           uint8_t **out);

#endif
