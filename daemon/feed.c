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
 *   the peer's own value, still the      skipped (no echo, PROTOCOL.md §7: the
 *   record's only sibling                device has it; last_seq moves past it)
 *   a record whose data key is there but the page fails (FSD_IO: UNAVAILABLE):
 *   does not unwrap (wrong master key)   the cursor never passes it
 *   a record that cannot be read         skipped, counted
 *   (undecodable, or a payload that      (fieldsync_records_unreadable_total) and
 *   does not open: a purged data key     logged by collection/id; last_seq moves
 *   after a restore, damage)             past it, the page never fails
 *   anything else                        skipped (last_seq still moves past it)
 * No page is larger than --max-page-bytes (at most FSP_PAGE_BYTES_MAX,
 * under what every client accepts); a record larger than that alone is
 * FSD_TOO_LARGE when a page would start with it (logged by id, counted).
 * Scopes are filtered before anything is opened: another scope's unreadable
 * record is never even tried.
 * A page examines at most SCAN_MAX records, so a device with few granted
 * records in a large feed gets short pages quickly instead of one long scan.
 */
#include <stdlib.h>
#include <string.h>

#include "feed.h"
#include "log.h"
#include "metrics.h"
#include "records.h"

#define PULL_DEFAULT_LIMIT 500
#define SCAN_MAX 20000

struct page {
	const peer_auth *peer;
	const char *replica; /* the puller's Hello.replica_id; NULL: none (no echo rule) */
	fs_record_state **items;
	size_t n, cap, examined;
	size_t bytes, budget;
	size_t page_max;      /* --max-page-bytes: no page is larger, whatever it holds */
	fs_record_state *big; /* the page would start with a record larger than that */
	size_t big_bytes;
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

/* No echo (PROTOCOL.md §7): the record's only sibling was written by this
 * device (modified_by is the daemon's word: the device name, or in --dev
 * the Hello's replica id) and its version holds a dot of the replica that
 * pulls (the connection's Hello), so this store has it already. A device
 * whose store was reset (a new replica, the same key) gets its values. */
static bool
is_echo(const struct page *pg, const fs_record_state *rs)
{
	if (pg->replica == NULL || pg->replica[0] == '\0' || pg->peer->name[0] == '\0' ||
	    rs->purged || rs->revoked || rs->n_siblings != 1 || rs->siblings[0] == NULL)
		return false;
	const fsp_record *r = rs->siblings[0];
	if (r->modified_by == NULL || strcmp(r->modified_by, pg->peer->name) != 0 ||
	    r->version == NULL)
		return false;
	for (size_t i = 0; i < r->version->n_dots; i++)
		if (r->version->dots[i] != NULL &&
		    strcmp(r->version->dots[i]->replica, pg->replica) == 0)
			return true;
	return false;
}

static feed_verdict
page_take(void *arg, store_txn *t, fs_record_state *rs, const records_feed_item *it)
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
	} else if (is_echo(pg, rs) || records_feed_open(t, rs, it) != FSD_OK) {
		records_free(rs); /* an unreadable record is passed over, counted, logged */
		return FEED_SKIP;
	}
	size_t sz = fieldsync__v1__record_state__get_packed_size(rs) + 8;
	if (sz > pg->page_max) { /* no page can carry it (caps raised, or release 1) */
		if (pg->n == 0) {
			pg->big = rs;
			pg->big_bytes = sz;
		} else {
			records_free(rs);
		}
		return FEED_STOP;
	}
	if (pg->n > 0 && pg->bytes + sz > pg->budget) {
		records_free(rs);
		return FEED_STOP;
	}
	pg->items[pg->n++] = rs;
	pg->bytes += sz;
	return FEED_TAKE;
}

/* A record no page can carry: the operator hears of it (log by id, metric,
 * `fieldsyncd verify`), the device gets Error{TOO_LARGE} (sync_endpoint),
 * never a page past its receive limit that it would drop without a word. */
static fsd_err
oversize(fs_record_state *rs, size_t bytes, size_t page_max)
{
	metrics_inc(METRIC_PULL_OVERSIZE_RECORDS_TOTAL, 0, 1);
	log_event(LOG_ERROR, "a record is larger than a pull page: resolve its conflict",
	          LS("collection", rs->collection), LS("id", rs->id), LU("seq", rs->seq),
	          LU("siblings", rs->n_siblings), LU("bytes", bytes),
	          LU("max_page_bytes", page_max), NULL);
	records_free(rs);
	return FSD_TOO_LARGE;
}

fsd_err
feed_pull(store *s, const config *c, const peer_auth *peer, const Fieldsync__V1__PullRequest *req,
          feed_page *out)
{
	return feed_pull_from(s, c, peer, NULL, req, out);
}

fsd_err
feed_pull_from(store *s, const config *c, const peer_auth *peer, const char *replica,
               const Fieldsync__V1__PullRequest *req, feed_page *out)
{
	struct page pg = {.peer = peer, .replica = replica};
	store_txn *t = NULL;
	uint64_t last = 0;
	bool more = false;
	fsd_err rc;

	fieldsync__v1__pull_reply__init(&out->reply);
	pg.cap = req->limit == 0 ? PULL_DEFAULT_LIMIT : req->limit;
	if (pg.cap > c->pull_limit_max)
		pg.cap = c->pull_limit_max;
	/* a page fits every client's receive limit (FSP_RECV_MAX): config.c
	 * keeps max_page_bytes at or under FSP_PAGE_BYTES_MAX */
	pg.page_max = c->max_page_bytes;
	pg.budget = c->max_message_bytes / 2 < pg.page_max ? c->max_message_bytes / 2 : pg.page_max;
	pg.items = calloc(pg.cap, sizeof(*pg.items));
	if (pg.items == NULL)
		return FSD_NOMEM;
	if ((rc = store_read_begin(s, &t)) != FSD_OK)
		goto fail;
	unsigned key_failures = store_keys_failures_here();
	rc = records_feed_scan(t, req->since_seq, page_take, &pg, &last, &more);
	store_read_end(&t);
	/* a data key that is there did not unwrap: not one record's damage;
	 * the page fails (UNAVAILABLE) so no cursor passes it (security.md) */
	if (rc == FSD_OK && store_keys_failures_here() != key_failures)
		rc = FSD_IO;
	if (rc != FSD_OK)
		goto fail;
	if (pg.big != NULL) {
		rc = oversize(pg.big, pg.big_bytes, pg.page_max);
		goto fail;
	}
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
