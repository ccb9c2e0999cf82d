/*
 * quota: per-device push quotas, two token buckets per device (logic
 * layer; quota.h).
 *
 * A bucket's level is kept in "minute units": a quota of Q per minute
 * refills Q units per minute, i.e. level += Q * elapsed_ms / 60000, up to
 * Q (one minute's burst). A cost of n takes n units. Doubles are exact
 * enough: the levels stay below 2^53 (quotas are capped by config.c).
 *
 * The table is a plain array searched by a 64-bit hash of the name first:
 * a few thousand entries are scanned in microseconds, far below a
 * change set's commit, and nothing grows past QUOTA_DEVICES_MAX.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "quota.h"
#include "registry.h"

#define MINUTE_MS 60000.0
#define RECENT 8 /* change sets per device remembered as charged */

struct entry {
	uint64_t hash;
	char name[AUTH_NAME_MAX + 1];
	double sets, bytes;      /* bucket levels */
	int64_t at_ms;           /* when the levels were last brought up to date */
	bool warned;             /* a refusal was logged since it was last within quota */
	uint64_t recent[RECENT]; /* hashes of its last change sets charged */
	unsigned next;
};

struct quota {
	size_t cap, n;
	struct entry *e;
};

static uint64_t
name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

quota *
quota_new(size_t max_devices)
{
	quota *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	q->cap = max_devices ? max_devices : QUOTA_DEVICES_MAX;
	if ((q->e = calloc(q->cap, sizeof(*q->e))) == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

void
quota_free(quota **q)
{
	if (q == NULL || *q == NULL)
		return;
	free((*q)->e);
	free(*q);
	*q = NULL;
}

size_t
quota_tracked(const quota *q)
{
	return q->n;
}

/* The entry of device, made (full buckets) when it is new; the least
 * recently seen entry makes room when the table is full. */
static struct entry *
entry_of(quota *q, const char *device, uint64_t sets_q, uint64_t bytes_q, int64_t now_ms)
{
	uint64_t h = name_hash(device);
	size_t oldest = 0;
	for (size_t i = 0; i < q->n; i++) {
		if (q->e[i].hash == h && strcmp(q->e[i].name, device) == 0)
			return &q->e[i];
		if (q->e[i].at_ms < q->e[oldest].at_ms)
			oldest = i;
	}
	struct entry *e = q->n < q->cap ? &q->e[q->n++] : &q->e[oldest];
	memset(e, 0, sizeof(*e));
	e->hash = h;
	snprintf(e->name, sizeof(e->name), "%s", device);
	e->sets = (double)sets_q;
	e->bytes = (double)bytes_q;
	e->at_ms = now_ms;
	return e;
}

static void
refill(double *level, uint64_t per_min, int64_t elapsed_ms)
{
	*level += (double)per_min * (double)elapsed_ms / MINUTE_MS;
	if (*level > (double)per_min)
		*level = (double)per_min;
}

/* Milliseconds until a bucket at `level` holds `need` (0: it does). */
static double
wait_ms(double level, double need, uint64_t per_min)
{
	if (per_min == 0 || level >= need)
		return 0;
	return (need - level) * MINUTE_MS / (double)per_min;
}

bool
quota_take(quota *q, const char *device, const char *changeset_id, uint64_t bytes,
           uint64_t sets_per_min, uint64_t bytes_per_min, int64_t now_ms, uint32_t *retry_after_ms)
{
	*retry_after_ms = 0;
	if (sets_per_min == 0 && bytes_per_min == 0)
		return true;
	struct entry *e =
		entry_of(q, device != NULL ? device : "", sets_per_min, bytes_per_min, now_ms);
	/* a resend of a set charged a moment ago (its reply was lost) is free:
	 * the daemon answers it from the reply store */
	uint64_t id = changeset_id != NULL && changeset_id[0] != '\0' ? name_hash(changeset_id) : 0;
	for (unsigned i = 0; id != 0 && i < RECENT; i++)
		if (e->recent[i] == id)
			return true;
	int64_t elapsed = now_ms > e->at_ms ? now_ms - e->at_ms : 0;
	refill(&e->sets, sets_per_min, elapsed);
	refill(&e->bytes, bytes_per_min, elapsed);
	e->at_ms = now_ms;
	/* a set larger than a whole minute's bytes needs a full bucket only */
	double need_bytes =
		(double)bytes < (double)bytes_per_min ? (double)bytes : (double)bytes_per_min;
	double w = wait_ms(e->sets, 1, sets_per_min);
	double wb = wait_ms(e->bytes, need_bytes, bytes_per_min);
	if (wb > w)
		w = wb;
	if (w > 0) {
		w += 1; /* round up: the set passes when the wait is over */
		*retry_after_ms = w > MINUTE_MS ? (uint32_t)MINUTE_MS : (uint32_t)w;
		return false;
	}
	if (sets_per_min != 0)
		e->sets -= 1;
	if (bytes_per_min != 0)
		e->bytes -= (double)bytes;
	e->warned = false;
	if (id != 0)
		e->recent[e->next++ % RECENT] = id;
	return true;
}

/* The sync endpoint's table: static storage, one thread (quota.h). */
static struct entry g_entries[QUOTA_DEVICES_MAX];
static quota g_push = {QUOTA_DEVICES_MAX, 0, g_entries};

bool
quota_push_allow(const config *c, const char *device, const char *changeset_id, uint64_t bytes,
                 int64_t now_ms, uint32_t *retry_after_ms)
{
	if (device == NULL || device[0] == '\0')
		return true; /* --dev without Hello: no device to charge */
	if (quota_take(&g_push, device, changeset_id, bytes, c->push_quota_changesets,
	               c->push_quota_bytes, now_ms, retry_after_ms))
		return true;
	metrics_inc(METRIC_PUSH_QUOTA_REFUSED_TOTAL, 0, 1);
	struct entry *e = entry_of(&g_push, device != NULL ? device : "", 0, 0, now_ms);
	if (!e->warned) {
		e->warned = true;
		log_event(LOG_WARN, "push quota exceeded: change sets answered BUSY",
		          LS("device", e->name), LU("retry_after_ms", *retry_after_ms), NULL);
	}
	return false;
}
