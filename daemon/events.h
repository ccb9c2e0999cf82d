/*
 * events: the reminder event log (data layer).
 *
 * Table events: [u64 BE seq] -> packed ReminderEvent (the bytes published
 * and replayed). meta "event_seq" is the last seq, gap-free because it only
 * moves inside the transaction that stores the event; meta "published_seq"
 * is how far the daemon handed events to its publisher (a crash may have
 * kept later ones from subscribers; they dedupe by seq).
 *
 * An event_batch is a list of committed (or about to be) events to
 * publish: topic "reminder/<rule>/<scope>", the packed bytes, and the
 * metric label metrics_rule_state(rule, state) (-1: none), so the
 * publisher never unpacks an event. Events hold ids and times only (a
 * case's contact_person is a staff identifier: fsp_typed_check); an erased
 * case's events become markers (events_erase_case). A batch belongs to one thread at a
 * time; it moves between threads as a message (writer.h).
 */
#ifndef FIELDSYNCD_EVENTS_H
#define FIELDSYNCD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fieldsync/v1/sync.pb-c.h"
#include "store.h"

extern const store_table events_table;

typedef struct event_batch {
	size_t n, cap;
	char **topics;
	uint8_t **data;
	size_t *len;
	int *label; /* metrics_rule_state(rule, state) of each, for the metric */
	uint64_t last_seq;
} event_batch;

void event_batch_free(event_batch *b);
/* Adds one event (takes data); FSD_NOMEM leaves data the caller's. */
fsd_err events_batch_add(event_batch *b, const char *topic, uint8_t *data, size_t len, uint64_t seq,
                         int label);
/* Drops the events after the first mark (a rolled-back change set's). */
void events_batch_truncate(event_batch *b, size_t mark);

/* Stores ev with the next seq (ev->seq is set) in write txn t and, when
 * queue is not NULL, adds it there for publishing. */
fsd_err events_append(store_txn *t, Fieldsync__V1__ReminderEvent *ev, int label,
                      event_batch *queue);
/* Stored events after seq `after` (e.g. written by another process) in
 * *out, NULL when none; the caller frees the batch. */
fsd_err events_after(store_txn *t, uint64_t after, event_batch **out);
/* The seq of the last stored event (0: none). */
uint64_t events_last_seq(store_txn *t);
/* Events after published_seq that a crash may have kept from subscribers. */
fsd_err events_unpublished(store_txn *t, event_batch **out);
/* Records (lazily, in t) that everything up to seq was handed to the publisher. */
fsd_err events_set_published(store_txn *t, uint64_t seq);

/* Erasure of a case (purge): every stored event of case_id is rewritten
 * as a marker with its seq and scope only (state CANCELLED; no case, rule,
 * staff or time), except those at keep_from or later (the purge's own
 * cancellations), which keep their ids and lose contact_person and the due
 * time. Markers are replayed (the seq stays gap-free) but never
 * republished. A scan of the whole log: O(events). */
fsd_err events_erase_case(store_txn *t, const char *case_id, uint64_t keep_from, size_t *n_erased);

/* Which scopes a reader may see (a peer's grants). */
typedef bool (*events_visible_fn)(const void *arg, const char *scope);
/* A replay page after req->since_seq in a read txn of s: at most
 * req->limit (default 500, at most 1000) events the reader may see, within
 * `budget` bytes. On FSD_OK the events are the caller's (events_replay_free). */
fsd_err events_replay(store *s, size_t budget, events_visible_fn visible, const void *arg,
                      const Fieldsync__V1__ReplayRequest *req, Fieldsync__V1__ReplayReply *out);
void events_replay_free(Fieldsync__V1__ReplayReply *r);

#endif
