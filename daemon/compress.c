/*
 * compress: zstd for pull pages (infra layer). See compress.h.
 */
#include <stdlib.h>
#include <zstd.h>

#include "compress.h"

fsd_err
compress_zstd(const uint8_t *src, size_t len, int level, uint8_t **out, size_t *outlen)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *buf = malloc(cap ? cap : 1);
	if (buf == NULL)
		return FSD_NOMEM;
	/* ZSTD_compress writes the content size into the frame header. */
	size_t n = ZSTD_compress(buf, cap, src, len, level);
	if (ZSTD_isError(n)) {
		free(buf);
		return FSD_ERROR;
	}
	*out = buf;
	*outlen = n;
	return FSD_OK;
}
