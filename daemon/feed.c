/*
 * The change feed (PROTOCOL.md §5): a page of RecordStates after since_seq,
 * in seq order, each record once at its latest position. A page ends at
 * `limit` records or at a byte budget well under the frame limit, whichever
 * comes first; `more` tells the device to ask again from `last_seq`.
 */
#include <stdlib.h>

#include "internal.h"

#define PULL_DEFAULT_LIMIT 500

struct page {
	fs_record_state **items;
	size_t n, cap;
	size_t bytes, budget;
};

/* Takes rs into the page, or declines (returns false) when the page is full. */
static bool
page_take(void *arg, fs_record_state *rs)
{
	struct page *pg = arg;
	size_t sz = fieldsync__v1__record_state__get_packed_size(rs) + 8;
	if (pg->n == pg->cap || (pg->n > 0 && pg->bytes + sz > pg->budget)) {
		store_record_free(rs);
		return false;
	}
	pg->items[pg->n++] = rs;
	pg->bytes += sz;
	return true;
}

store_rc
feed_pull(store *s, const config *c, uint64_t request_id,
          const Fieldsync__V1__PullRequest *req, uint8_t **out, size_t *len)
{
	struct page pg = {0};
	store_txn *t = NULL;
	Fieldsync__V1__PullReply reply;
	fs_envelope e;
	uint64_t last = 0;
	bool more = false;
	store_rc rc;

	*out = NULL;
	pg.cap = req->limit == 0 ? PULL_DEFAULT_LIMIT : req->limit;
	if (pg.cap > c->pull_limit_max)
		pg.cap = c->pull_limit_max;
	pg.budget = c->max_message_bytes / 2;
	pg.items = calloc(pg.cap, sizeof(*pg.items));
	if (pg.items == NULL)
		return STORE_ERROR;
	if ((rc = store_read_begin(s, &t)) != STORE_OK)
		goto out;
	rc = store_feed_scan(t, req->since_seq, page_take, &pg, &last, &more);
	store_read_end(&t);
	if (rc != STORE_OK)
		goto out;

	fieldsync__v1__pull_reply__init(&reply);
	reply.records = pg.items;
	reply.n_records = pg.n;
	reply.last_seq = last;
	reply.more = more;
	fieldsync__v1__envelope__init(&e);
	e.request_id = request_id;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY;
	e.pull_reply = &reply;
	*out = wire_pack(&e, len);
	if (*out == NULL)
		rc = STORE_ERROR;
out:
	for (size_t i = 0; i < pg.n; i++)
		store_record_free(pg.items[i]);
	free(pg.items);
	return rc;
}
