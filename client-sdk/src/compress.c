/*
 * Pull pages: zstd records and lean siblings (compress.h).
 *
 * Layer: wire. The decompressed size is checked against the cap and the
 * frame header before the buffer is allocated, and ZSTD_decompress never
 * writes past the buffer: a frame that lies about its size fails.
 */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "compress.h"

fs_err
sdk_page_inflate(sdk_pull_reply *rep, uint64_t cap)
{
	if (rep->records_zstd.len == 0)
		return FS_OK;
	if (rep->n_records != 0 || rep->records_size == 0 || rep->records_size > cap)
		return FS_ERR_PROTOCOL;
	unsigned long long fsz =
		ZSTD_getFrameContentSize(rep->records_zstd.data, rep->records_zstd.len);
	if (fsz == ZSTD_CONTENTSIZE_UNKNOWN || fsz == ZSTD_CONTENTSIZE_ERROR ||
	    fsz != rep->records_size)
		return FS_ERR_PROTOCOL;
	size_t size = (size_t)rep->records_size;
	uint8_t *raw = malloc(size);
	if (raw == NULL)
		return FS_ERR_NOMEM;
	size_t n = ZSTD_decompress(raw, size, rep->records_zstd.data, rep->records_zstd.len);
	if (ZSTD_isError(n) || n != size) {
		free(raw);
		return FS_ERR_PROTOCOL;
	}
	sdk_pull_reply *in = fieldsync__v1__pull_reply__unpack(NULL, size, raw);
	free(raw);
	if (in == NULL)
		return FS_ERR_PROTOCOL;
	rep->records = in->records;
	rep->n_records = in->n_records;
	in->records = NULL;
	in->n_records = 0;
	fieldsync__v1__pull_reply__free_unpacked(in, NULL);
	return FS_OK;
}

/* Sets *field to a copy of from when it is empty. */
static bool
fill(char **field, const char *from)
{
	if (*field != NULL && (*field)[0] != '\0')
		return true;
	char *dup = strdup(from != NULL ? from : "");
	if (dup == NULL)
		return false;
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = dup;
	return true;
}

fs_err
sdk_page_unlean(sdk_pull_reply *rep)
{
	for (size_t i = 0; i < rep->n_records; i++) {
		sdk_record_state *rs = rep->records[i];
		if (rs == NULL)
			continue;
		for (size_t j = 0; j < rs->n_siblings; j++) {
			fsp_record *s = rs->siblings[j];
			if (s == NULL)
				continue;
			if (!fill(&s->collection, rs->collection) || !fill(&s->id, rs->id) ||
			    !fill(&s->scope, rs->scope))
				return FS_ERR_NOMEM;
		}
	}
	return FS_OK;
}

bool
sdk_push_deflate(const sdk_push_request *req, sdk_push_request *out, uint8_t **z)
{
	sdk_push_request only = FIELDSYNC__V1__PUSH_REQUEST__INIT;
	only.n_changes = req->n_changes;
	only.changes = req->changes;
	size_t len = fieldsync__v1__push_request__get_packed_size(&only);
	if (len < SDK_PUSH_FLOOR)
		return false;
	uint8_t *raw = malloc(len);
	size_t cap = ZSTD_compressBound(len);
	uint8_t *buf = malloc(cap);
	if (raw == NULL || buf == NULL) {
		free(raw);
		free(buf);
		return false;
	}
	fieldsync__v1__push_request__pack(&only, raw);
	size_t n = ZSTD_compress(buf, cap, raw, len, 3);
	free(raw);
	if (ZSTD_isError(n) || n >= len) {
		free(buf);
		return false;
	}
	*out = *req;
	out->n_changes = 0;
	out->changes = NULL;
	out->changes_zstd.data = buf;
	out->changes_zstd.len = n;
	out->changes_size = len;
	*z = buf;
	return true;
}
