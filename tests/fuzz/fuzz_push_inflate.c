/*
 * libFuzzer target: a change set that came compressed (docs/protocol.md
 * §4.1), as the daemon opens it: the bytes are a PushRequest; when it
 * decodes, wire_push_inflate (daemon/wire_page.c) opens its changes_zstd
 * under a cap of 1 MiB with the decoder's heap budget.
 *
 * Checks beyond "no crash, no leak, no UB": a declared size over the cap
 * is TOO_LARGE (refused before anything is allocated); changes both plain
 * and compressed are refused; a page that opens holds what it declared.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wire_page.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP ((uint64_t)1 << 20)

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_push_inflate: %s\n", what);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Fieldsync__V1__PushRequest *p = fieldsync__v1__push_request__unpack(NULL, size, data);
	if (p == NULL)
		return 0;
	bool zipped = p->changes_zstd.len != 0;
	bool over = p->changes_size > CAP;
	size_t plain = p->n_changes;
	fsd_err rc = wire_push_inflate(p, CAP);
	if (zipped && plain == 0 && over && rc != FSD_TOO_LARGE)
		fail("a change set over the cap was not refused as TOO_LARGE");
	if (zipped && plain != 0 && rc == FSD_OK)
		fail("changes both plain and compressed were accepted");
	if (!zipped && rc != FSD_OK)
		fail("a plain change set was refused");
	fieldsync__v1__push_request__free_unpacked(p, NULL);
	return 0;
}
