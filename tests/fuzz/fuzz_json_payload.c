/*
 * libFuzzer target: the CLI's JSON -> protobuf mapping of the typed
 * collections (`fieldsync put case <id> '<json>'`), fs_json_to_payload() in
 * client-sdk/src/json.c, which parses text a person or a script typed.
 *
 * Each input is tried as a "case" and as a "contact":
 *   - FS_OK must come with bytes that pass fsp_typed_check() (the header's
 *     promise: the SDK accepts exactly what the daemon accepts);
 *   - a refusal must be FS_ERR_INVALID (or NOMEM) with a sentence in why;
 *   - what it accepts must survive the way back: fs_payload_to_json() of
 *     the bytes, then fs_json_to_payload() of that JSON, must give the same
 *     bytes again (what `fieldsync get` prints, `put` takes back unchanged).
 * Any violation calls abort(), so libFuzzer records it as a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/fieldsync.h"
#include "fieldsync/merge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_json_payload: %s\n", what);
	abort();
}

static void
one(const char *collection, const char *json, size_t len)
{
	uint8_t *out = NULL, *again = NULL;
	size_t out_len = 0, again_len = 0;
	char why[256] = "", *text = NULL;

	fs_err e = fs_json_to_payload(collection, json, len, &out, &out_len, why, sizeof(why));
	if (e != FS_OK) {
		if (e != FS_ERR_INVALID && e != FS_ERR_NOMEM)
			fail("fs_json_to_payload: unexpected error code");
		if (why[0] == '\0')
			fail("fs_json_to_payload refused without saying why");
		if (out != NULL)
			fail("fs_json_to_payload: *out set on failure");
		return;
	}
	if (out == NULL && out_len != 0)
		fail("fs_json_to_payload: NULL payload with a length");
	if (!fsp_typed_check(collection, out, out_len, why, sizeof(why)))
		fail("fs_json_to_payload accepted a value the shared check refuses");

	if (fs_payload_to_json(collection, out, out_len, &text) != FS_OK)
		fail("fs_payload_to_json refused an accepted payload");
	if (fs_json_to_payload(collection, text, strlen(text), &again, &again_len, why,
	                       sizeof(why)) != FS_OK)
		fail("the printed JSON of an accepted payload is refused");
	if (again_len != out_len || (out_len && memcmp(out, again, out_len) != 0))
		fail("JSON -> payload -> JSON -> payload changed the payload");
	free(again);
	free(text);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* fs_json_to_payload takes a length: no NUL needed, and none is added,
	 * so a read past the end is caught by ASan. */
	one("case", (const char *)data, size);
	one("contact", (const char *)data, size);
	return 0;
}
