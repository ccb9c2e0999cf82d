/*
 * metrics: the daemon's metrics (infrastructure layer): one static table, relaxed atomics, Prometheus text.
 *
 * NOTES ON THE DESIGN
 *
 * Storage: every metric owns a static array of 64-bit atomic cells, one per
 * label value (a label-less metric has one). Counters are plain u64; gauges
 * are i64 kept as their two's-complement u64, so metrics_add() is one
 * fetch_add for either sign. A histogram has one cell per bucket plus one
 * for +Inf, each counting the observations that fell in exactly that bucket
 * (not cumulatively): an observation is a single fetch_add, and the render
 * builds the cumulative counts and _count from the same snapshot, so _count
 * always equals the +Inf bucket. The sum is a double kept as its bits and
 * added with a compare-and-swap loop: lock-free, and exact to the double.
 *
 * Labels: a metric has one label set (label_set below), each value a string
 * constant of this file. The index a caller passes is checked against the
 * set's size; nothing a peer sends can reach a label.
 *
 * Rendering reads each cell once with a relaxed load. It allocates nothing
 * (metrics_render) or one buffer (metrics_render_alloc), and never blocks an
 * updater. Numbers are printed by snprintf in the C locale the daemon runs
 * in (it never calls setlocale).
 */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fieldsync/rules.h"
#include "metrics.h"

daemon_stats g_stats;

_Static_assert(METRIC_RULES == RULE_COUNT, "metrics.c: rule labels out of step with rules.h");
_Static_assert(METRIC_STATES == FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED + 1,
               "metrics.c: state labels out of step with ReminderEvent.State");

typedef _Atomic uint64_t cell;

typedef enum { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM } metric_type;

typedef enum {
	LS_NONE = 0,
	LS_REQUEST,
	LS_CHANGESET,
	LS_CHANGE,
	LS_ZAP,
	LS_FORBIDDEN,
	LS_BUILD,
	LS_RULE_STATE,
	LS_COUNT
} label_set;

static const char *const g_request_types[MREQ_COUNT] = {
	[MREQ_HELLO] = "hello",   [MREQ_PUSH] = "push",           [MREQ_PULL] = "pull",
	[MREQ_REPLAY] = "replay", [MREQ_MALFORMED] = "malformed",
};
static const char *const g_changeset_results[MCS_COUNT] = {
	[MCS_APPLIED] = "applied", [MCS_DUPLICATE] = "duplicate", [MCS_REJECTED] = "rejected",
	[MCS_BUSY] = "busy",       [MCS_FAILED] = "failed",
};
static const char *const g_change_results[MCH_COUNT] = {
	[MCH_APPLIED] = "applied",   [MCH_DUPLICATE] = "duplicate", [MCH_OBSOLETE] = "obsolete",
	[MCH_CONFLICT] = "conflict", [MCH_REJECTED] = "rejected",
};
static const char *const g_zap_reasons[MZAP_COUNT] = {
	[MZAP_MECHANISM] = "mechanism",
	[MZAP_UNKNOWN_KEY] = "unknown_key",
	[MZAP_REVOKED] = "revoked",
	[MZAP_HANDSHAKE] = "handshake",
};
static const char *const g_forbidden_reasons[MFORB_COUNT] = {
	[MFORB_SCOPE] = "scope",
	[MFORB_ROLE] = "role",
	[MFORB_NOT_ENROLLED] = "not_enrolled",
};
/* fieldsync_build_info's one label set. */
static const char *const g_build_version[1] = {FIELDSYNCD_VERSION};
static const char *const g_build_protocol[1] = {"1"};
/* rules.c's rule_name() for each rule_id; test_metrics.c compares them. */
static const char *const g_rules[METRIC_RULES] = {
	"quick-help",   "counselling-limit", "treatment-start", "treatment-window",
	"group-course", "parent-session",    "network-meeting", "follow-up",
	"handover",     "notification-duty",
};
static const char *const g_states[METRIC_STATES] = {
	"scheduled", "warning", "due", "overdue", "met", "cancelled",
};

/* Up to two labels; the index of (a, b) is a * n[1] + b. */
static const struct label_def {
	size_t n_names;
	const char *name[2];
	const char *const *value[2];
	size_t n[2];
} g_label_sets[LS_COUNT] = {
	[LS_NONE] = {0, {NULL, NULL}, {NULL, NULL}, {1, 1}},
	[LS_REQUEST] = {1, {"type", NULL}, {g_request_types, NULL}, {MREQ_COUNT, 1}},
	[LS_CHANGESET] = {1, {"result", NULL}, {g_changeset_results, NULL}, {MCS_COUNT, 1}},
	[LS_CHANGE] = {1, {"result", NULL}, {g_change_results, NULL}, {MCH_COUNT, 1}},
	[LS_ZAP] = {1, {"reason", NULL}, {g_zap_reasons, NULL}, {MZAP_COUNT, 1}},
	[LS_FORBIDDEN] = {1, {"reason", NULL}, {g_forbidden_reasons, NULL}, {MFORB_COUNT, 1}},
	[LS_BUILD] = {2, {"version", "protocol"}, {g_build_version, g_build_protocol}, {1, 1}},
	[LS_RULE_STATE] = {2,
                           {"rule", "state"},
                           {g_rules, g_states},
                           {METRIC_RULES, METRIC_STATES}},
};

static size_t
label_count(label_set ls)
{
	return g_label_sets[ls].n[0] * g_label_sets[ls].n[1];
}

/* Bucket upper bounds, ascending; +Inf is implicit. */
static const double g_duration_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5};
static const double g_batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
#define NB(a) (sizeof(a) / sizeof((a)[0]))

/* The cells, one array per metric, sized by its label set or buckets. */
static cell c_up[1], c_draining[1], c_conflicts[1], c_peers[1];
static cell c_reminders[METRIC_RULES * METRIC_STATES];
static cell c_map_size[1], c_used[1], c_readers[1], c_disk_free[1], c_last_seq[1];
static cell c_requests[MREQ_COUNT], c_changesets[MCS_COUNT], c_changes[MCH_COUNT];
static cell c_pulled[1], c_rem_events[METRIC_RULES * METRIC_STATES], c_published[1];
static cell c_history_refused[1];
static cell c_storage_failing[1], c_storage_reopens[1];
static cell c_timers_skipped[1];
static cell c_replays[1], c_unroutable[1], c_zap[MZAP_COUNT], c_forbidden[MFORB_COUNT];
static cell c_unreadable[1];
static cell c_build[1] = {1}, c_silent[1], c_at_risk[1], c_oldest_edit[1];
static cell c_duration[NB(g_duration_bounds) + 1], c_duration_sum[1];
static cell c_batch[NB(g_batch_bounds) + 1], c_batch_sum[1];
static cell c_ev_oldest[1], c_ev_trimmed[1], c_ev_unreadable[1];
static cell c_quota_refused[1], c_oversize[1];

static const struct metric_def {
	const char *name;
	const char *help; /* no backslash, no newline: printed as is */
	metric_type type;
	label_set labels;
	cell *cells;
	const double *bounds; /* histograms */
	size_t n_bounds;
	cell *sum; /* histograms: the double's bits */
} g_metrics[METRIC_COUNT] = {
#define GAUGE(id, nm, ls, c, h) [id] = {nm, h, MT_GAUGE, ls, c, NULL, 0, NULL}
#define COUNTER(id, nm, ls, c, h) [id] = {nm, h, MT_COUNTER, ls, c, NULL, 0, NULL}
#define HISTOGRAM(id, nm, c, b, s, h) [id] = {nm, h, MT_HISTOGRAM, LS_NONE, c, b, NB(b), s}
	GAUGE(METRIC_UP, "fieldsync_up", LS_NONE, c_up, "1 while fieldsyncd runs."),
	GAUGE(METRIC_DRAINING, "fieldsync_draining", LS_NONE, c_draining,
              "1 once shutdown began: no new requests are read."),
	GAUGE(METRIC_CONFLICTS_OPEN, "fieldsync_conflicts_open", LS_NONE, c_conflicts,
              "Records that currently hold more than one sibling."),
	GAUGE(METRIC_PEERS_CONNECTED, "fieldsync_peers_connected", LS_NONE, c_peers,
              "Connections currently open on the sync endpoint."),
	GAUGE(METRIC_REMINDERS, "fieldsync_reminders", LS_RULE_STATE, c_reminders,
              "Reminders by deadline rule and current state."),
	GAUGE(METRIC_LMDB_MAP_SIZE_BYTES, "fieldsync_lmdb_map_size_bytes", LS_NONE, c_map_size,
              "Current LMDB map size."),
	GAUGE(METRIC_LMDB_USED_BYTES, "fieldsync_lmdb_used_bytes", LS_NONE, c_used,
              "LMDB pages in use (last page number + 1) times the page size."),
	GAUGE(METRIC_LMDB_READERS, "fieldsync_lmdb_readers", LS_NONE, c_readers,
              "LMDB reader table slots in use."),
	GAUGE(METRIC_DISK_FREE_BYTES, "fieldsync_disk_free_bytes", LS_NONE, c_disk_free,
              "Bytes available to fieldsyncd on the data directory's file system."),
	GAUGE(METRIC_EVENTS_LAST_SEQ, "fieldsync_reminder_events_last_seq", LS_NONE, c_last_seq,
              "Seq of the last reminder event committed; a scheduler's lag is this minus its cursor."),
	GAUGE(METRIC_BUILD_INFO, "fieldsync_build_info", LS_BUILD, c_build,
              "Always 1; the labels name the fieldsyncd version and wire protocol."),
	GAUGE(METRIC_DEVICES_SILENT, "fieldsync_devices_silent", LS_NONE, c_silent,
              "Devices not seen for more than --at-risk-days days."),
	GAUGE(METRIC_DEVICES_AT_RISK, "fieldsync_devices_at_risk", LS_NONE, c_at_risk,
              "Devices silent for --at-risk-days, or holding an unpushed edit that old."),
	GAUGE(METRIC_OLDEST_UNPUSHED_EDIT_AGE_SECONDS, "fieldsync_oldest_unpushed_edit_age_seconds",
              LS_NONE, c_oldest_edit,
              "Age of the oldest edit any device reported as not yet pushed; 0 when none."),
	COUNTER(METRIC_REQUESTS_TOTAL, "fieldsync_requests_total", LS_REQUEST, c_requests,
                "Request frames read from the sync endpoint, by request type."),
	COUNTER(METRIC_CHANGESETS_TOTAL, "fieldsync_changesets_total", LS_CHANGESET, c_changesets,
                "Pushed change sets, by result."),
	COUNTER(METRIC_CHANGES_TOTAL, "fieldsync_changes_total", LS_CHANGE, c_changes,
                "Changes (records) in answered change sets, by result."),
	COUNTER(METRIC_PULLED_RECORDS_TOTAL, "fieldsync_pulled_records_total", LS_NONE, c_pulled,
                "Record states sent in pull replies."),
	COUNTER(METRIC_REMINDER_EVENTS_TOTAL, "fieldsync_reminder_events_total", LS_RULE_STATE,
                c_rem_events, "Reminder events committed, by rule and the state entered."),
	COUNTER(METRIC_REMINDER_EVENTS_SENT_TOTAL, "fieldsync_reminder_events_sent_total", LS_NONE,
                c_published,
                "Reminder events handed to the PUB socket; a subscriber whose queue is full drops them, so subscribers replay gaps."),
	COUNTER(METRIC_REPLAYS_TOTAL, "fieldsync_replays_total", LS_NONE, c_replays,
                "Replay requests answered."),
	COUNTER(METRIC_REPLIES_UNROUTABLE_TOTAL, "fieldsync_replies_unroutable_total", LS_NONE,
                c_unroutable, "Replies dropped because the peer was gone or too slow."),
	COUNTER(METRIC_ZAP_DENIALS_TOTAL, "fieldsync_zap_denials_total", LS_ZAP, c_zap,
                "Handshakes refused (ZAP handler or socket monitor), by reason."),
	COUNTER(METRIC_FORBIDDEN_TOTAL, "fieldsync_forbidden_total", LS_FORBIDDEN, c_forbidden,
                "Requests refused as FORBIDDEN, by reason."),
	COUNTER(METRIC_RECORDS_UNREADABLE_TOTAL, "fieldsync_records_unreadable_total", LS_NONE,
                c_unreadable,
                "Records skipped in a pull page because they cannot be read or opened."),
	HISTOGRAM(
		METRIC_COMMIT_DURATION_SECONDS, "fieldsync_commit_duration_seconds", c_duration,
		g_duration_bounds, c_duration_sum,
		"Duration of a group commit round, from the write transaction's begin to its durable commit."),
	HISTOGRAM(METRIC_COMMIT_BATCH_CHANGESETS, "fieldsync_commit_batch_changesets", c_batch,
                  g_batch_bounds, c_batch_sum,
                  "Change sets committed together in one group commit round."),
	GAUGE(METRIC_EVENTS_OLDEST_SEQ, "fieldsync_reminder_events_oldest_seq", LS_NONE,
              c_ev_oldest,
              "Seq of the oldest reminder event kept; a replay from before it is answered TRIMMED."),
	COUNTER(METRIC_EVENTS_TRIMMED_TOTAL, "fieldsync_reminder_events_trimmed_total", LS_NONE,
                c_ev_trimmed, "Reminder events removed by the retention (age or count)."),
	COUNTER(METRIC_EVENTS_UNREADABLE_TOTAL, "fieldsync_reminder_events_unreadable_total",
                LS_NONE, c_ev_unreadable,
                "Stored reminder events that did not decode and were skipped (logged by seq)."),
	COUNTER(METRIC_HISTORY_REFUSED_TOTAL, "fieldsync_history_refused_total", LS_NONE,
                c_history_refused,
                "Pushed values refused (REJECTED or DEFERRED) because their version claims history its replica never wrote or the daemon does not hold."),
	COUNTER(METRIC_PUSH_QUOTA_REFUSED_TOTAL, "fieldsync_push_quota_refused_total", LS_NONE,
                c_quota_refused,
                "Change sets answered BUSY because their device was over its push quota."),
	COUNTER(METRIC_PULL_OVERSIZE_RECORDS_TOTAL, "fieldsync_pull_oversize_records_total",
                LS_NONE, c_oversize,
                "Pulls refused TOO_LARGE because a record is larger than --max-page-bytes (fieldsyncd verify lists it)."),
	GAUGE(METRIC_STORAGE_FAILING, "fieldsync_storage_failing", LS_NONE, c_storage_failing,
              "LMDB environments whose last commit failed (or that LMDB stopped) and that no commit has proven since; /readyz is 503 meanwhile."),
	COUNTER(METRIC_STORAGE_REOPENS_TOTAL, "fieldsync_storage_reopens_total", LS_NONE,
                c_storage_reopens,
                "LMDB environments closed and opened again after LMDB stopped them on a failed write."),
	COUNTER(METRIC_REMINDER_TIMERS_SKIPPED_TOTAL, "fieldsync_reminder_timers_skipped_total",
                LS_NONE, c_timers_skipped,
                "Due reminder timers skipped because their case cannot be read (a data key gone, bytes that do not decode), each tried again later with backoff; also cases a re-evaluation after a rule change skipped for that reason."),
#undef GAUGE
#undef COUNTER
#undef HISTOGRAM
};

/* The cell of (m, label) for an update of kind t; NULL when out of range. */
static cell *
cell_at(metric_id m, size_t label, metric_type t)
{
	if ((unsigned)m >= METRIC_COUNT)
		return NULL;
	const struct metric_def *d = &g_metrics[m];
	assert(d->type == t && "metrics: update of the wrong kind for this metric");
	if (d->type != t || label >= label_count(d->labels))
		return NULL;
	return &d->cells[label];
}

size_t
metrics_rule_state(int rule, int state)
{
	if (rule < 0 || rule >= METRIC_RULES || state < 0 || state >= METRIC_STATES)
		return SIZE_MAX;
	return (size_t)rule * METRIC_STATES + (size_t)state;
}

void
metrics_inc(metric_id m, size_t label, uint64_t n)
{
	cell *c = cell_at(m, label, MT_COUNTER);
	if (c != NULL)
		atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void
metrics_set(metric_id m, size_t label, int64_t v)
{
	cell *c = cell_at(m, label, MT_GAUGE);
	if (c != NULL)
		atomic_store_explicit(c, (uint64_t)v, memory_order_relaxed);
}

void
metrics_add(metric_id m, size_t label, int64_t delta)
{
	cell *c = cell_at(m, label, MT_GAUGE);
	if (c != NULL) /* unsigned wrap-around is two's-complement addition */
		atomic_fetch_add_explicit(c, (uint64_t)delta, memory_order_relaxed);
}

static double
bits_to_double(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

static uint64_t
double_to_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

void
metrics_observe(metric_id m, double v)
{
	if ((unsigned)m >= METRIC_COUNT)
		return;
	const struct metric_def *d = &g_metrics[m];
	assert(d->type == MT_HISTOGRAM && "metrics: observe on a metric that is no histogram");
	if (d->type != MT_HISTOGRAM || isnan(v))
		return;
	size_t b = 0;
	while (b < d->n_bounds && v > d->bounds[b])
		b++;
	atomic_fetch_add_explicit(&d->cells[b], 1, memory_order_relaxed);
	uint64_t old = atomic_load_explicit(d->sum, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(d->sum, &old,
	                                              double_to_bits(bits_to_double(old) + v),
	                                              memory_order_relaxed, memory_order_relaxed))
		;
}

int64_t
metrics_value(metric_id m, size_t label)
{
	if ((unsigned)m >= METRIC_COUNT)
		return 0;
	const struct metric_def *d = &g_metrics[m];
	if (d->type == MT_HISTOGRAM) {
		uint64_t n = 0;
		for (size_t b = 0; b <= d->n_bounds; b++)
			n += atomic_load_explicit(&d->cells[b], memory_order_relaxed);
		return (int64_t)n;
	}
	if (label >= label_count(d->labels))
		return 0;
	return (int64_t)atomic_load_explicit(&d->cells[label], memory_order_relaxed);
}

void
metrics_reset(void)
{
	for (size_t m = 0; m < METRIC_COUNT; m++) {
		const struct metric_def *d = &g_metrics[m];
		size_t n = d->type == MT_HISTOGRAM ? d->n_bounds + 1 : label_count(d->labels);
		for (size_t i = 0; i < n; i++)
			atomic_store_explicit(&d->cells[i], 0, memory_order_relaxed);
		if (d->sum != NULL)
			atomic_store_explicit(d->sum, double_to_bits(0.0), memory_order_relaxed);
	}
	atomic_store_explicit(&c_build[0], 1, memory_order_relaxed); /* a constant */
}

/* ---- rendering ------------------------------------------------------------ */

/* snprintf-style output: n counts everything, buf takes what fits. */
struct out {
	char *buf;
	size_t cap, n;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	char *at = o->n < o->cap ? o->buf + o->n : NULL;
	size_t room = o->n < o->cap ? o->cap - o->n : 0;
	va_start(ap, fmt);
	int k = vsnprintf(at, room, fmt, ap);
	va_end(ap);
	if (k > 0)
		o->n += (size_t)k;
}

/* A float as Prometheus reads it: the shortest of %.15g/%.17g that round-trips. */
static void
put_double(struct out *o, double v)
{
	char s[40];
	if (isinf(v)) {
		put(o, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (isnan(v)) {
		put(o, "NaN");
		return;
	}
	snprintf(s, sizeof(s), "%.15g", v);
	if (strtod(s, NULL) != v)
		snprintf(s, sizeof(s), "%.17g", v);
	put(o, "%s", s);
}

/* `{a="x",b="y"}` for label index i of set ls; nothing for LS_NONE. */
static void
put_labels(struct out *o, label_set ls, size_t i)
{
	const struct label_def *l = &g_label_sets[ls];
	if (l->n_names == 0)
		return;
	size_t idx[2] = {i / l->n[1], i % l->n[1]};
	put(o, "{");
	for (size_t k = 0; k < l->n_names; k++)
		put(o, "%s%s=\"%s\"", k ? "," : "", l->name[k], l->value[k][idx[k]]);
	put(o, "}");
}

static void
render_histogram(struct out *o, const struct metric_def *d)
{
	uint64_t snap[32], cum = 0;
	assert(d->n_bounds + 1 <= sizeof(snap) / sizeof(snap[0]));
	for (size_t b = 0; b <= d->n_bounds; b++)
		snap[b] = atomic_load_explicit(&d->cells[b], memory_order_relaxed);
	double sum = bits_to_double(atomic_load_explicit(d->sum, memory_order_relaxed));
	for (size_t b = 0; b < d->n_bounds; b++) {
		cum += snap[b];
		put(o, "%s_bucket{le=\"", d->name);
		put_double(o, d->bounds[b]);
		put(o, "\"} %llu\n", (unsigned long long)cum);
	}
	cum += snap[d->n_bounds];
	put(o, "%s_bucket{le=\"+Inf\"} %llu\n", d->name, (unsigned long long)cum);
	put(o, "%s_sum ", d->name);
	put_double(o, sum);
	put(o, "\n%s_count %llu\n", d->name, (unsigned long long)cum);
}

size_t
metrics_render(char *buf, size_t cap)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};
	struct out o = {buf, cap, 0};

	if (cap > 0)
		buf[0] = '\0';
	for (size_t m = 0; m < METRIC_COUNT; m++) {
		const struct metric_def *d = &g_metrics[m];
		put(&o, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name,
		    type_names[d->type]);
		if (d->type == MT_HISTOGRAM) {
			render_histogram(&o, d);
			continue;
		}
		for (size_t i = 0; i < label_count(d->labels); i++) {
			uint64_t v = atomic_load_explicit(&d->cells[i], memory_order_relaxed);
			put(&o, "%s", d->name);
			put_labels(&o, d->labels, i);
			if (d->type == MT_GAUGE)
				put(&o, " %lld\n", (long long)(int64_t)v);
			else
				put(&o, " %llu\n", (unsigned long long)v);
		}
	}
	return o.n;
}

char *
metrics_render_alloc(size_t *len)
{
	size_t cap = 16384;
	for (;;) {
		char *buf = malloc(cap);
		if (buf == NULL)
			return NULL;
		size_t n = metrics_render(buf, cap);
		if (n < cap) {
			*len = n;
			return buf;
		}
		/* Values grew between the passes only by a few digits each. */
		free(buf);
		cap = n + 4096;
	}
}
