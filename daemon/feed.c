/*
 * feed: the change feed (logic layer; feed.h, PROTOCOL.md §5): a page of RecordStates after since_seq,
 * in seq order, each record once at its latest position. A page ends at
 * `limit` records or at a byte budget well under the frame limit, whichever
 * comes first; `more` tells the device to ask again from `last_seq`.
 *
 * The feed a peer sees holds its granted scopes only:
 *   record in a granted scope            the full state (or its purge marker)
 *   record moved out of a granted scope  {collection, id, scope, seq, revoked}
 *                                        without siblings: delete it locally
 *   anything else                        skipped (last_seq still moves past it)
 * A page examines at most SCAN_MAX records, so a device with few granted
 * records in a large feed gets short pages quickly instead of one long scan.
 */
#include <stdlib.h>
#include <string.h>

#include "feed.h"
#include "metrics.h"
#include "records.h"

#define PULL_DEFAULT_LIMIT 500
#define SCAN_MAX 20000

struct page {
	const peer_auth *peer;
	fs_record_state **items;
	size_t n, cap, examined;
	size_t bytes, budget;
};

/* Strips a state down to the "revoked" marker for a peer that lost it. */
static void
make_revoked(fs_record_state *rs)
{
	for (size_t i = 0; i < rs->n_siblings; i++)
		fieldsync__v1__record__free_unpacked(rs->siblings[i], NULL);
	free(rs->siblings);
	rs->siblings = NULL;
	rs->n_siblings = 0;
	rs->revoked = true;
}

static feed_verdict
page_take(void *arg, store_txn *t, fs_record_state *rs)
{
	struct page *pg = arg;
	if (pg->n == pg->cap || pg->examined++ >= SCAN_MAX) {
		records_free(rs);
		return FEED_STOP;
	}
	if (!peer_may(pg->peer, rs->scope)) {
		if (!records_former_scope_any(t, rs->collection, rs->id, peer_may_cb, pg->peer)) {
			records_free(rs);
			return FEED_SKIP;
		}
		make_revoked(rs);
	}
	size_t sz = fieldsync__v1__record_state__get_packed_size(rs) + 8;
	if (pg->n > 0 && pg->bytes + sz > pg->budget) {
		records_free(rs);
		return FEED_STOP;
	}
	pg->items[pg->n++] = rs;
	pg->bytes += sz;
	return FEED_TAKE;
}

fsd_err
feed_pull(store *s, const config *c, const peer_auth *peer, const Fieldsync__V1__PullRequest *req,
          feed_page *out)
{
	struct page pg = {.peer = peer};
	store_txn *t = NULL;
	uint64_t last = 0;
	bool more = false;
	fsd_err rc;

	fieldsync__v1__pull_reply__init(&out->reply);
	pg.cap = req->limit == 0 ? PULL_DEFAULT_LIMIT : req->limit;
	if (pg.cap > c->pull_limit_max)
		pg.cap = c->pull_limit_max;
	pg.budget = c->max_message_bytes / 2;
	pg.items = calloc(pg.cap, sizeof(*pg.items));
	if (pg.items == NULL)
		return FSD_NOMEM;
	if ((rc = store_read_begin(s, &t)) != FSD_OK)
		goto fail;
	rc = records_feed_scan(t, req->since_seq, page_take, &pg, &last, &more);
	store_read_end(&t);
	if (rc != FSD_OK)
		goto fail;
	out->reply.records = pg.items;
	out->reply.n_records = pg.n;
	out->reply.last_seq = last;
	out->reply.more = more;
	metrics_inc(METRIC_PULLED_RECORDS_TOTAL, 0, pg.n);
	return FSD_OK;
fail:
	for (size_t i = 0; i < pg.n; i++)
		records_free(pg.items[i]);
	free(pg.items);
	return rc;
}

void
feed_page_free(feed_page *p)
{
	for (size_t i = 0; i < p->reply.n_records; i++)
		records_free(p->reply.records[i]);
	free(p->reply.records);
	p->reply.records = NULL;
	p->reply.n_records = 0;
}
