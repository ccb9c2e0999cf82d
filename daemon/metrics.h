/*
 * metrics: the daemon's Prometheus metrics (infrastructure layer). Not a general library: the
 * metrics are a fixed table (metrics.c), each with at most one fixed label
 * set drawn from the small enums below, so no label can ever carry a name,
 * a case id or anything else a device sent.
 *
 * Every function is safe from any thread at any time and takes no lock:
 * counters, gauges and histogram buckets are relaxed 64-bit atomics. A
 * render taken while other threads update may mix values from just before
 * and just after an update, never a torn value; a histogram's _count is
 * always equal to its +Inf bucket.
 */
#ifndef FIELDSYNCD_METRICS_H
#define FIELDSYNCD_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	/* gauges */
	METRIC_UP = 0,              /* fieldsync_up: 1 while the process runs */
	METRIC_DRAINING,            /* fieldsync_draining: 1 once shutdown began */
	METRIC_CONFLICTS_OPEN,      /* fieldsync_conflicts_open */
	METRIC_PEERS_CONNECTED,     /* fieldsync_peers_connected */
	METRIC_REMINDERS,           /* fieldsync_reminders{rule,state} */
	METRIC_LMDB_MAP_SIZE_BYTES, /* fieldsync_lmdb_map_size_bytes */
	METRIC_LMDB_USED_BYTES,     /* fieldsync_lmdb_used_bytes */
	METRIC_LMDB_READERS,        /* fieldsync_lmdb_readers */
	METRIC_DISK_FREE_BYTES,     /* fieldsync_disk_free_bytes (the data directory) */
	METRIC_EVENTS_LAST_SEQ,     /* fieldsync_reminder_events_last_seq */
	METRIC_BUILD_INFO,          /* fieldsync_build_info{version,protocol}: always 1 */
	METRIC_DEVICES_SILENT,      /* fieldsync_devices_silent: not seen for --at-risk-days */
	METRIC_DEVICES_AT_RISK,     /* fieldsync_devices_at_risk: silent or an old unpushed edit */
	METRIC_OLDEST_UNPUSHED_EDIT_AGE_SECONDS, /* fieldsync_oldest_unpushed_edit_age_seconds */
	/* counters */
	METRIC_REQUESTS_TOTAL,             /* fieldsync_requests_total{type} */
	METRIC_CHANGESETS_TOTAL,           /* fieldsync_changesets_total{result} */
	METRIC_CHANGES_TOTAL,              /* fieldsync_changes_total{result} */
	METRIC_PULLED_RECORDS_TOTAL,       /* fieldsync_pulled_records_total */
	METRIC_REMINDER_EVENTS_TOTAL,      /* fieldsync_reminder_events_total{rule,state} */
	METRIC_REMINDER_EVENTS_SENT_TOTAL, /* fieldsync_reminder_events_sent_total */
	METRIC_REPLAYS_TOTAL,              /* fieldsync_replays_total */
	METRIC_REPLIES_UNROUTABLE_TOTAL,   /* fieldsync_replies_unroutable_total */
	METRIC_ZAP_DENIALS_TOTAL,          /* fieldsync_zap_denials_total{reason} */
	METRIC_FORBIDDEN_TOTAL,            /* fieldsync_forbidden_total{reason} */
	METRIC_RECORDS_UNREADABLE_TOTAL,   /* fieldsync_records_unreadable_total */
	/* histograms */
	METRIC_COMMIT_DURATION_SECONDS, /* fieldsync_commit_duration_seconds */
	METRIC_COMMIT_BATCH_CHANGESETS, /* fieldsync_commit_batch_changesets */
	/* event retention (events.c) */
	METRIC_EVENTS_OLDEST_SEQ,       /* gauge fieldsync_reminder_events_oldest_seq */
	METRIC_EVENTS_TRIMMED_TOTAL,    /* counter fieldsync_reminder_events_trimmed_total */
	METRIC_EVENTS_UNREADABLE_TOTAL, /* counter fieldsync_reminder_events_unreadable_total */
	METRIC_HISTORY_REFUSED_TOTAL,   /* fieldsync_history_refused_total (counter) */
	/* counters (issue 11: push quotas, the page bound) */
	METRIC_PUSH_QUOTA_REFUSED_TOTAL,    /* fieldsync_push_quota_refused_total */
	METRIC_PULL_OVERSIZE_RECORDS_TOTAL, /* fieldsync_pull_oversize_records_total */
	/* storage health (store.c) */
	METRIC_STORAGE_FAILING,       /* gauge fieldsync_storage_failing */
	METRIC_STORAGE_REOPENS_TOTAL, /* counter fieldsync_storage_reopens_total */
	/* reminders (reminders.c): due timers of a case that cannot be read */
	METRIC_REMINDER_TIMERS_SKIPPED_TOTAL, /* counter fieldsync_reminder_timers_skipped_total */
	METRIC_COUNT
} metric_id;

/* The label sets. A metric without labels takes label 0. */

/* fieldsync_requests_total{type}: one per request frame read from the ROUTER. */
typedef enum {
	MREQ_HELLO = 0,
	MREQ_PUSH,
	MREQ_PULL,
	MREQ_REPLAY,
	MREQ_MALFORMED, /* not an Envelope, several frames, or no request in it */
	MREQ_COUNT
} metric_request_type;

/* fieldsync_changesets_total{result}: what happened to one pushed change set. */
typedef enum {
	MCS_APPLIED = 0, /* committed (its changes may be duplicate, obsolete...) */
	MCS_DUPLICATE,   /* a retry: answered from the stored reply */
	MCS_REJECTED,    /* refused whole: validation, a reused dot, scope, purge */
	MCS_BUSY,        /* queue or disk full: Error BUSY, nothing applied */
	MCS_FAILED,      /* storage error: Error UNAVAILABLE, nothing applied */
	MCS_COUNT
} metric_changeset_result;

/* fieldsync_changes_total{result}: one per change of a committed change set
 * (ChangeResult.Status), plus every change of a rejected set. */
typedef enum {
	MCH_APPLIED = 0,
	MCH_DUPLICATE,
	MCH_OBSOLETE,
	MCH_CONFLICT,
	MCH_REJECTED,
	MCH_COUNT
} metric_change_result;

/* fieldsync_zap_denials_total{reason}: every refused handshake, from the
 * ZAP handler (unknown key, revoked) or the socket monitor (a NULL or PLAIN
 * peer never reaches ZAP: mechanism; any other failed handshake). */
typedef enum {
	MZAP_MECHANISM = 0, /* NULL or PLAIN where CURVE is required */
	MZAP_UNKNOWN_KEY,   /* a CURVE key nobody enrolled */
	MZAP_REVOKED,       /* an enrolled key that was revoked */
	MZAP_HANDSHAKE,     /* another failed handshake (wrong server key, garbage) */
	MZAP_COUNT
} metric_zap_reason;

/* fieldsync_forbidden_total{reason}: requests answered FORBIDDEN (or a
 * push rejected FORBIDDEN: a scope not granted). */
typedef enum {
	MFORB_SCOPE = 0,    /* a push into a scope the device was not granted */
	MFORB_ROLE,         /* a scheduler pushing or pulling */
	MFORB_NOT_ENROLLED, /* the key was revoked (or is unknown) after the handshake */
	MFORB_COUNT
} metric_forbidden_reason;

/* fieldsync_reminders and fieldsync_reminder_events_total {rule,state}: the
 * rule is a rule_id (rules.h), the state a ReminderEvent.State (sync.proto);
 * metrics.c checks at compile time that the counts agree. */
#define METRIC_RULES 10
#define METRIC_STATES 6

/* The label index of (rule, state); out of range gives an index that every
 * function ignores. */
size_t metrics_rule_state(int rule, int state);

/*
 * Updates. A label index outside the metric's label set, or a metric id
 * out of range, is ignored (a stored rule number from a newer version must
 * not crash the daemon). Calling an update of the wrong kind (metrics_inc on
 * a gauge) is a programmer error: it asserts.
 */
void metrics_inc(metric_id m, size_t label, uint64_t n);    /* counters */
void metrics_set(metric_id m, size_t label, int64_t v);     /* gauges */
void metrics_add(metric_id m, size_t label, int64_t delta); /* gauges */
void metrics_observe(metric_id m, double v);                /* histograms */

/* Reads one value (counter or gauge; a histogram's count). 0 when out of range. */
int64_t metrics_value(metric_id m, size_t label);

/* Zeroes every metric. For tests; never while other threads update. */
void metrics_reset(void);

/*
 * Writes the Prometheus text exposition (format 0.0.4) of every metric into
 * buf[0..cap), NUL-terminated when cap > 0, like snprintf: returns the
 * length the whole text needs (excluding the NUL), which is >= cap when it
 * was cut. Writes nothing else, allocates nothing.
 */
size_t metrics_render(char *buf, size_t cap);

/* metrics_render() into a malloc'd buffer the caller frees; *len is its
 * length. NULL when out of memory. */
char *metrics_render_alloc(size_t *len);

/* Plain counters for the drain log line (any thread, relaxed atomics). */
typedef struct daemon_stats {
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t malformed;
	atomic_uint_fast64_t pushes;
	atomic_uint_fast64_t changes_applied;
	atomic_uint_fast64_t commits;
	atomic_uint_fast64_t busy;
	atomic_uint_fast64_t replies_unroutable;
	atomic_uint_fast64_t events_published;
	atomic_uint_fast64_t replays;
} daemon_stats;

extern daemon_stats g_stats;

#endif
