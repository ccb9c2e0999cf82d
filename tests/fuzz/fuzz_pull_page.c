/*
 * libFuzzer target: a pull page as the tablet decodes it (docs/protocol.md
 * §5.1): the bytes are a PullReply; when it decodes, the SDK's
 * sdk_page_inflate (client-sdk/src/compress.c) opens its records_zstd
 * under a cap of 1 MiB, and sdk_page_unlean fills in lean siblings.
 *
 * Checks beyond "no crash, no leak, no UB": a page declaring more than the
 * cap is refused before anything is allocated (FS_ERR_PROTOCOL); a page
 * that inflates has no compressed records left to apply twice beside
 * its records; after unlean no sibling has an empty collection, id or
 * scope when its RecordState has them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP ((uint64_t)1 << 20)

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_pull_page: %s\n", what);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sdk_pull_reply *rep = fieldsync__v1__pull_reply__unpack(NULL, size, data);
	if (rep == NULL)
		return 0;
	bool zipped = rep->records_zstd.len != 0;
	bool over = rep->records_size > CAP;
	size_t plain = rep->n_records;
	fs_err err = sdk_page_inflate(rep, CAP);
	if (zipped && over && err != FS_ERR_PROTOCOL)
		fail("a page over the cap was not refused");
	if (zipped && plain != 0 && err == FS_OK)
		fail("records both plain and compressed were accepted");
	if (err == FS_OK && sdk_page_unlean(rep) == FS_OK) {
		for (size_t i = 0; i < rep->n_records; i++) {
			sdk_record_state *rs = rep->records[i];
			for (size_t j = 0; rs != NULL && j < rs->n_siblings; j++) {
				fsp_record *s = rs->siblings[j];
				if (s == NULL)
					continue;
				if ((rs->collection[0] && !s->collection[0]) ||
				    (rs->id[0] && !s->id[0]) || (rs->scope[0] && !s->scope[0]))
					fail("unlean left a field empty");
			}
		}
	}
	fieldsync__v1__pull_reply__free_unpacked(rep, NULL);
	return 0;
}
