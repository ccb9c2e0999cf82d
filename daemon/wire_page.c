/*
 * wire_page: a pull page, lean and/or compressed (wire layer). See
 * wire_page.h.
 */
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "wire.h"
#include "wire_page.h"

static char empty[] = "";

/* Blanks what each sibling repeats from its state; saved[] restores it. */
static char **
lean_strip(const Fieldsync__V1__PullReply *r)
{
	size_t n = 0, k = 0;
	for (size_t i = 0; i < r->n_records; i++)
		n += r->records[i]->n_siblings;
	char **saved = malloc((3 * n + 1) * sizeof(*saved));
	if (saved == NULL)
		return NULL;
	for (size_t i = 0; i < r->n_records; i++) {
		Fieldsync__V1__RecordState *rs = r->records[i];
		for (size_t j = 0; j < rs->n_siblings; j++) {
			Fieldsync__V1__Record *s = rs->siblings[j];
			saved[k++] = s->collection;
			saved[k++] = s->id;
			saved[k++] = s->scope;
			if (strcmp(s->collection, rs->collection) == 0)
				s->collection = empty;
			if (strcmp(s->id, rs->id) == 0)
				s->id = empty;
			if (strcmp(s->scope, rs->scope) == 0)
				s->scope = empty;
		}
	}
	return saved;
}

static void
lean_restore(const Fieldsync__V1__PullReply *r, char **saved)
{
	size_t k = 0;
	for (size_t i = 0; i < r->n_records; i++)
		for (size_t j = 0; j < r->records[i]->n_siblings; j++) {
			Fieldsync__V1__Record *s = r->records[i]->siblings[j];
			s->collection = saved[k++];
			s->id = saved[k++];
			s->scope = saved[k++];
		}
	free(saved);
}

fsd_err
wire_pull_page(uint64_t request_id, const Fieldsync__V1__PullReply *r, uint32_t encoding, bool lean,
               uint8_t **out, size_t *len)
{
	Fieldsync__V1__PullReply c = *r, only = FIELDSYNC__V1__PULL_REPLY__INIT;
	char **saved = NULL;
	uint8_t *raw = NULL, *z = NULL;
	size_t rawlen = 0, zlen = 0;
	fsd_err rc;

	if (lean && (saved = lean_strip(r)) == NULL)
		return FSD_NOMEM;
	if (encoding & WIRE_ENCODING_ZSTD) {
		/* A PullReply with records only encodes as its field 1 entries. */
		only.n_records = r->n_records;
		only.records = r->records;
		rawlen = fieldsync__v1__pull_reply__get_packed_size(&only);
		if (rawlen >= WIRE_PAGE_FLOOR) {
			if ((raw = malloc(rawlen)) == NULL) {
				rc = FSD_NOMEM;
				goto out;
			}
			fieldsync__v1__pull_reply__pack(&only, raw);
			rc = compress_zstd(raw, rawlen, COMPRESS_LEVEL, &z, &zlen);
			if (rc == FSD_NOMEM)
				goto out;
			if (rc == FSD_OK && zlen < rawlen) {
				c.n_records = 0;
				c.records = NULL;
				c.records_zstd.data = z;
				c.records_zstd.len = zlen;
				c.records_size = rawlen;
			}
		}
	}
	rc = wire_pull_reply(request_id, &c, out, len);
out:
	if (saved != NULL)
		lean_restore(r, saved);
	free(raw);
	free(z);
	return rc;
}

fsd_err
wire_push_inflate(Fieldsync__V1__PushRequest *p, uint64_t cap)
{
	uint8_t *raw = NULL;
	fsd_err rc;

	if (p->changes_zstd.len == 0)
		return FSD_OK;
	if (p->n_changes != 0)
		return FSD_INVALID;
	rc = compress_zstd_open(p->changes_zstd.data, p->changes_zstd.len, p->changes_size, cap,
	                        &raw);
	if (rc != FSD_OK)
		return rc;
	/* the heap budget of wire_decode_envelope, for the decompressed bytes */
	wire_budget b;
	Fieldsync__V1__PushRequest *in =
		fieldsync__v1__push_request__unpack(wire_budget_init(&b, (size_t)p->changes_size),
	                                            (size_t)p->changes_size, raw);
	free(raw);
	if (in == NULL) /* out of memory within the budget is not the peer's fault */
		return b.oom ? FSD_NOMEM : FSD_INVALID;
	p->changes = in->changes;
	p->n_changes = in->n_changes;
	in->changes = NULL;
	in->n_changes = 0;
	fieldsync__v1__push_request__free_unpacked(in, NULL);
	return FSD_OK;
}
