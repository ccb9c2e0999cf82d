/*
 * events: the reminder event log (data layer).
 *
 * Table events: [u64 BE seq] -> packed ReminderEvent (the bytes published
 * and replayed). meta "event_seq" is the last seq, gap-free because it only
 * moves inside the transaction that stores the event; meta "published_seq"
 * is how far the daemon handed events to its publisher (a crash may have
 * kept later ones from subscribers; they dedupe by seq).
 *
 * Retention (events_trim): the oldest events go, older than an age or
 * beyond a count, in bounded batches inside the writer's rounds, and only
 * events already handed to the publisher (seq <= published_seq). What is
 * kept is always one unbroken run of seqs: meta "event_oldest_seq" is the
 * first seq kept (absent: nothing was ever trimmed, i.e. 1). A replay
 * from before it (events since_seq+1 .. oldest-1 gone) is answered
 * "TRIMMED" (events_replay's *trimmed_before; docs/reminders.md), never
 * with a silent gap. A stored event that does not decode is skipped by
 * replay and republishing, logged by seq and counted, never failing a page.
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

/* Events trimmed per writer round at most (a round's extra work stays small). */
#define EVENTS_TRIM_BATCH 1000

/* The first seq kept: 1 when nothing was ever trimmed; last seq + 1 when
 * every event was trimmed. */
uint64_t events_oldest_seq(store_txn *t);

/*
 * Retention, in write txn t: removes at most `batch` of the oldest events
 * that are older than max_age_days before now_ms (an event's emitted_at_ms;
 * a purge's marker, which has no time, goes with the next dated event
 * after it) or beyond the newest max_count; 0 turns either limit off. Only
 * events up to published_seq (handed to the publisher) are ever removed,
 * and never the newest event (a reader at the head can always replay).
 * Moves "event_oldest_seq", counts the removed in *trimmed (may be NULL) and
 * the metrics (trimmed total, oldest seq). A failed store call is returned
 * (the round aborts).
 */
fsd_err events_trim(store_txn *t, int64_t now_ms, uint32_t max_age_days, uint64_t max_count,
                    size_t batch, size_t *trimmed);
/* Whether events_trim would take something now, given the seq last handed to
 * the publisher (not yet stored as published): a cheap look at the count and
 * the oldest event, for the idle writer. */
bool events_trim_due(store_txn *t, uint64_t handed, int64_t now_ms, uint32_t max_age_days,
                     uint64_t max_count);

/* Which scopes a reader may see (a peer's grants). */
typedef bool (*events_visible_fn)(const void *arg, const char *scope);
/* A replay page after req->since_seq in a read txn of s: at most
 * req->limit (default 500, at most 1000) events the reader may see, within
 * `budget` bytes. On FSD_OK the events are the caller's (events_replay_free).
 * When events after since_seq were trimmed (since_seq + 1 < the oldest
 * kept), the page is empty and *trimmed_before is the oldest seq kept, to
 * be answered TRIMMED (wire_replay_answer); else *trimmed_before is 0. */
fsd_err events_replay(store *s, size_t budget, events_visible_fn visible, const void *arg,
                      const Fieldsync__V1__ReplayRequest *req, Fieldsync__V1__ReplayReply *out,
                      uint64_t *trimmed_before);
void events_replay_free(Fieldsync__V1__ReplayReply *r);

#endif
