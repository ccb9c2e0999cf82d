/*
 * feed: a pull page for a peer (logic layer). Reads only, any thread, in a
 * short read transaction of its own.
 */
#ifndef FIELDSYNCD_FEED_H
#define FIELDSYNCD_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "fieldsync/v1/sync.pb-c.h"
#include "peer.h"
#include "store.h"

/* A page of the feed; the records are the page's (feed_page_free). */
typedef struct feed_page {
	Fieldsync__V1__PullReply reply;
} feed_page;

/* Answers a PullRequest for peer: FSD_OK with *out filled. */
fsd_err feed_pull(store *s, const config *c, const peer_auth *peer,
                  const Fieldsync__V1__PullRequest *req, feed_page *out);
/* The same for the replica that said Hello on this connection (NULL: it
 * did not): its own values, still a record's only sibling, are left out
 * (no echo, PROTOCOL.md §7); last_seq moves past them. */
fsd_err feed_pull_from(store *s, const config *c, const peer_auth *peer, const char *replica,
                       const Fieldsync__V1__PullRequest *req, feed_page *out);
void feed_page_free(feed_page *p);

#endif
