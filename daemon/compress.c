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

fsd_err
compress_zstd_open(const uint8_t *src, size_t len, uint64_t size, uint64_t cap, uint8_t **out)
{
	if (size > cap)
		return FSD_TOO_LARGE;
	unsigned long long fsz = ZSTD_getFrameContentSize(src, len);
	if (size == 0 || fsz != size)
		return FSD_INVALID; /* also ZSTD_CONTENTSIZE_UNKNOWN and _ERROR */
	uint8_t *buf = malloc((size_t)size);
	if (buf == NULL)
		return FSD_NOMEM;
	size_t n = ZSTD_decompress(buf, (size_t)size, src, len);
	if (ZSTD_isError(n) || n != size) {
		free(buf);
		return FSD_INVALID;
	}
	*out = buf;
	return FSD_OK;
}
