/*
 * metrics.c: counters, gauges and histograms read back exactly; the label
 * sets are the fixed enums and nothing else; the rendered text is parsed
 * line by line against the Prometheus text format 0.0.4 (HELP and TYPE
 * before each family's samples, the fieldsync_ prefix, _total on counters
 * only, cumulative buckets ending in +Inf equal to _count); a cut render
 * behaves like snprintf; threads hammering the same cells lose nothing.
 * (promtool's own verdict on the text is in test_ops_http.c.)
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "fieldsync/rules.h"

/* ---- a small parser of the text format ---------------------------------- */

#define SAMPLES_MAX 1024
#define FAMILIES_MAX 64

struct sample {
	char name[96];
	char labels[160]; /* the text between the braces, "" when none */
	double value;
};

struct family {
	char name[96];
	char type[16];
	bool help;
};

struct exposition {
	struct sample s[SAMPLES_MAX];
	size_t n;
	struct family f[FAMILIES_MAX];
	size_t nf;
};

static struct family *
family_find(struct exposition *e, const char *name)
{
	for (size_t i = 0; i < e->nf; i++)
		if (strcmp(e->f[i].name, name) == 0)
			return &e->f[i];
	return NULL;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The family a sample belongs to: its name, or without a histogram suffix. */
static struct family *
family_of(struct exposition *e, const char *sample)
{
	struct family *f = family_find(e, sample);
	if (f != NULL)
		return f;
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	for (size_t i = 0; i < 3; i++) {
		if (!ends_with(sample, sfx[i]))
			continue;
		char base[96];
		size_t l = strlen(sample) - strlen(sfx[i]);
		memcpy(base, sample, l);
		base[l] = '\0';
		f = family_find(e, base);
		if (f != NULL && strcmp(f->type, "histogram") == 0)
			return f;
	}
	return NULL;
}

static bool
is_name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* Checks one label list `k="v",k="v"`: names and values from the fixed sets. */
static void
check_labels(const char *labels, const char *line)
{
	static const char *const names[] = {"type",  "result",  "reason", "rule",
	                                    "state", "le", "version", "protocol"};
	const char *p = labels;
	while (*p) {
		const char *eq = strchr(p, '=');
		cr_assert_not_null(eq, "label without '=': %s", line);
		bool known = false;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if ((size_t)(eq - p) == strlen(names[i]) && strncmp(p, names[i], eq - p) == 0)
				known = true;
		cr_assert(known, "unexpected label name in: %s", line);
		cr_assert_eq(eq[1], '"', "label value not quoted: %s", line);
		const char *v = eq + 2, *q = strchr(v, '"');
		cr_assert_not_null(q, "unterminated label value: %s", line);
		for (const char *c = v; c < q; c++) /* ids and enums: [a-z0-9_+.-] */
			cr_assert(((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
			           *c == '-' || *c == '.' || *c == '+' || *c == 'I'),
			          "label value outside the fixed sets: %s", line);
		p = q + 1;
		if (*p == ',')
			p++;
		else
			cr_assert_eq(*p, '\0', "junk after a label: %s", line);
	}
}

/* Parses text (every line must be HELP, TYPE or a sample) into *e. */
static void
parse(const char *text, struct exposition *e)
{
	char line[512];
	const char *p = text;
	memset(e, 0, sizeof(*e));
	cr_assert(ends_with(text, "\n"), "the exposition must end with a newline");
	while (*p) {
		const char *nl = strchr(p, '\n');
		cr_assert_not_null(nl);
		size_t l = (size_t)(nl - p);
		cr_assert_lt(l, sizeof(line));
		memcpy(line, p, l);
		line[l] = '\0';
		p = nl + 1;
		cr_assert_gt(l, 0, "empty line in the exposition");

		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
			char name[96], rest[400];
			cr_assert_eq(sscanf(line + 7, "%95s %399[^\n]", name, rest), 2, "bad line: %s", line);
			struct family *f = family_find(e, name);
			if (f == NULL) {
				cr_assert_lt(e->nf, FAMILIES_MAX);
				f = &e->f[e->nf++];
				snprintf(f->name, sizeof(f->name), "%s", name);
			}
			if (line[2] == 'H') {
				cr_assert(!f->help, "two HELP lines for %s", name);
				f->help = true;
			} else {
				cr_assert_eq(f->type[0], '\0', "two TYPE lines for %s", name);
				cr_assert(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 ||
				              strcmp(rest, "histogram") == 0,
				          "unknown type: %s", line);
				snprintf(f->type, sizeof(f->type), "%.15s", rest);
			}
			continue;
		}
		cr_assert_neq(line[0], '#', "unexpected comment: %s", line);

		cr_assert_lt(e->n, SAMPLES_MAX);
		struct sample *s = &e->s[e->n++];
		size_t i = 0;
		while (is_name_char(line[i], i == 0))
			i++;
		cr_assert_gt(i, 0, "no metric name: %s", line);
		cr_assert_lt(i, sizeof(s->name));
		memcpy(s->name, line, i);
		s->name[i] = '\0';
		const char *after = line + i;
		if (*after == '{') {
			const char *close = strchr(after, '}');
			cr_assert_not_null(close, "unterminated labels: %s", line);
			size_t ll = (size_t)(close - after - 1);
			cr_assert_lt(ll, sizeof(s->labels));
			memcpy(s->labels, after + 1, ll);
			s->labels[ll] = '\0';
			check_labels(s->labels, line);
			after = close + 1;
		}
		cr_assert_eq(*after, ' ', "no space before the value: %s", line);
		char *end;
		if (strcmp(after + 1, "+Inf") == 0) {
			s->value = INFINITY;
		} else {
			s->value = strtod(after + 1, &end);
			cr_assert(end != after + 1 && *end == '\0', "bad value: %s", line);
		}

		cr_assert(strncmp(s->name, "fieldsync_", 10) == 0, "no fieldsync_ prefix: %s", line);
		struct family *f = family_of(e, s->name);
		cr_assert_not_null(f, "sample before its HELP/TYPE: %s", line);
		cr_assert(f->help && f->type[0], "family %s lacks HELP or TYPE", f->name);
	}
}

/* The value of the sample `name{labels}`; fails when it is not there once. */
static double
value_of(const struct exposition *e, const char *name, const char *labels)
{
	const struct sample *hit = NULL;
	for (size_t i = 0; i < e->n; i++) {
		if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0) {
			cr_assert_null(hit, "series %s{%s} appears twice", name, labels);
			hit = &e->s[i];
		}
	}
	cr_assert_not_null(hit, "series %s{%s} is missing", name, labels);
	return hit->value;
}

static char *
render(void)
{
	size_t len = 0;
	char *t = metrics_render_alloc(&len);
	cr_assert_not_null(t);
	cr_assert_eq(strlen(t), len);
	return t;
}

static struct exposition g_e; /* big: not on the stack */

static void
setup(void)
{
	metrics_reset();
}

TestSuite(metrics, .init = setup);

/* ---- tests ----------------------------------------------------------------- */

Test(metrics, counters_by_label)
{
	metrics_inc(METRIC_CHANGES_TOTAL, MCH_APPLIED, 3);
	metrics_inc(METRIC_CHANGES_TOTAL, MCH_APPLIED, 2);
	metrics_inc(METRIC_CHANGES_TOTAL, MCH_CONFLICT, 1);
	metrics_inc(METRIC_CHANGESETS_TOTAL, MCS_REJECTED, 7);
	metrics_inc(METRIC_REPLAYS_TOTAL, 0, 1);
	metrics_inc(METRIC_ZAP_DENIALS_TOTAL, MZAP_REVOKED, 4);
	metrics_inc(METRIC_REMINDER_EVENTS_TOTAL,
	            metrics_rule_state(RULE_HANDOVER, FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE), 2);

	cr_assert_eq(metrics_value(METRIC_CHANGES_TOTAL, MCH_APPLIED), 5);
	cr_assert_eq(metrics_value(METRIC_CHANGES_TOTAL, MCH_CONFLICT), 1);
	cr_assert_eq(metrics_value(METRIC_CHANGES_TOTAL, MCH_DUPLICATE), 0);

	char *t = render();
	parse(t, &g_e);
	cr_assert_eq(value_of(&g_e, "fieldsync_changes_total", "result=\"applied\""), 5);
	cr_assert_eq(value_of(&g_e, "fieldsync_changes_total", "result=\"conflict\""), 1);
	cr_assert_eq(value_of(&g_e, "fieldsync_changes_total", "result=\"obsolete\""), 0);
	cr_assert_eq(value_of(&g_e, "fieldsync_changesets_total", "result=\"rejected\""), 7);
	cr_assert_eq(value_of(&g_e, "fieldsync_replays_total", ""), 1);
	cr_assert_eq(value_of(&g_e, "fieldsync_zap_denials_total", "reason=\"revoked\""), 4);
	cr_assert_eq(value_of(&g_e, "fieldsync_reminder_events_total",
	                      "rule=\"handover\",state=\"overdue\""),
	             2);
	cr_assert_eq(value_of(&g_e, "fieldsync_reminder_events_total",
	                      "rule=\"quick-help\",state=\"scheduled\""),
	             0);
	free(t);
}

Test(metrics, labels_out_of_range_are_ignored)
{
	metrics_inc(METRIC_CHANGES_TOTAL, MCH_COUNT, 1);
	metrics_inc(METRIC_REPLAYS_TOTAL, 1, 1);
	metrics_inc((metric_id)METRIC_COUNT, 0, 1);
	metrics_set(METRIC_REMINDERS, metrics_rule_state(RULE_COUNT, 0), 5);
	metrics_set(METRIC_REMINDERS, metrics_rule_state(0, 6), 5);
	metrics_set(METRIC_REMINDERS, metrics_rule_state(-1, 0), 5);
	metrics_observe((metric_id)-1, 1.0);
	cr_assert_eq(metrics_rule_state(10, 0), SIZE_MAX);
	cr_assert_eq(metrics_value(METRIC_REPLAYS_TOTAL, 0), 0);
	cr_assert_eq(metrics_value(METRIC_CHANGES_TOTAL, MCH_COUNT), 0);
	for (size_t i = 0; i < METRIC_RULES * METRIC_STATES; i++)
		cr_assert_eq(metrics_value(METRIC_REMINDERS, i), 0);
}

Test(metrics, gauges_set_and_add)
{
	metrics_set(METRIC_LMDB_MAP_SIZE_BYTES, 0, INT64_C(1) << 40);
	metrics_set(METRIC_PEERS_CONNECTED, 0, 3);
	metrics_add(METRIC_PEERS_CONNECTED, 0, -5);
	size_t met = metrics_rule_state(RULE_FOLLOW_UP, FIELDSYNC__V1__REMINDER_EVENT__STATE__MET);
	metrics_add(METRIC_REMINDERS, met, 2);
	metrics_add(METRIC_REMINDERS, met, -1);

	cr_assert_eq(metrics_value(METRIC_PEERS_CONNECTED, 0), -2);
	char *t = render();
	parse(t, &g_e);
	cr_assert_eq(value_of(&g_e, "fieldsync_lmdb_map_size_bytes", ""), 1099511627776.0);
	cr_assert_eq(value_of(&g_e, "fieldsync_peers_connected", ""), -2);
	cr_assert_eq(value_of(&g_e, "fieldsync_reminders", "rule=\"follow-up\",state=\"met\""), 1);
	free(t);
}

Test(metrics, histogram_buckets)
{
	/* le is inclusive: 0.0005 falls in the first bucket, 0.00051 in the second. */
	const double obs[] = {0.0001, 0.0005, 0.00051, 0.003, 0.003, 1.0, 4.99, 5.0, 7.5, 60};
	double sum = 0;
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
		metrics_observe(METRIC_COMMIT_DURATION_SECONDS, obs[i]);
		sum += obs[i];
	}
	metrics_observe(METRIC_COMMIT_DURATION_SECONDS, NAN); /* ignored */
	metrics_observe(METRIC_COMMIT_BATCH_CHANGESETS, 1);
	metrics_observe(METRIC_COMMIT_BATCH_CHANGESETS, 3);
	metrics_observe(METRIC_COMMIT_BATCH_CHANGESETS, 4096);
	metrics_observe(METRIC_COMMIT_BATCH_CHANGESETS, 4097);

	char *t = render();
	parse(t, &g_e);
	const char *d = "fieldsync_commit_duration_seconds_bucket";
	cr_assert_eq(value_of(&g_e, d, "le=\"0.0005\""), 2);
	cr_assert_eq(value_of(&g_e, d, "le=\"0.001\""), 3);
	cr_assert_eq(value_of(&g_e, d, "le=\"0.0025\""), 3);
	cr_assert_eq(value_of(&g_e, d, "le=\"0.005\""), 5);
	cr_assert_eq(value_of(&g_e, d, "le=\"1\""), 6);
	cr_assert_eq(value_of(&g_e, d, "le=\"2.5\""), 6);
	cr_assert_eq(value_of(&g_e, d, "le=\"5\""), 8);
	cr_assert_eq(value_of(&g_e, d, "le=\"+Inf\""), 10);
	cr_assert_eq(value_of(&g_e, "fieldsync_commit_duration_seconds_count", ""), 10);
	cr_assert_float_eq(value_of(&g_e, "fieldsync_commit_duration_seconds_sum", ""), sum, 1e-12);
	cr_assert_eq(metrics_value(METRIC_COMMIT_DURATION_SECONDS, 0), 10);

	const char *b = "fieldsync_commit_batch_changesets_bucket";
	cr_assert_eq(value_of(&g_e, b, "le=\"1\""), 1);
	cr_assert_eq(value_of(&g_e, b, "le=\"2\""), 1);
	cr_assert_eq(value_of(&g_e, b, "le=\"4\""), 2);
	cr_assert_eq(value_of(&g_e, b, "le=\"4096\""), 3);
	cr_assert_eq(value_of(&g_e, b, "le=\"+Inf\""), 4);
	cr_assert_eq(value_of(&g_e, "fieldsync_commit_batch_changesets_sum", ""), 1 + 3 + 4096 + 4097);

	/* Buckets are cumulative: never decreasing, in order, +Inf last. */
	double prev = -1;
	size_t buckets = 0;
	for (size_t i = 0; i < g_e.n; i++) {
		if (strcmp(g_e.s[i].name, d) != 0)
			continue;
		cr_assert_geq(g_e.s[i].value, prev);
		prev = g_e.s[i].value;
		buckets++;
	}
	cr_assert_eq(buckets, 14); /* 13 bounds, 0.0005 .. 5, and +Inf */
	free(t);
}

Test(metrics, exposition_format)
{
	metrics_set(METRIC_UP, 0, 1);
	char *t = render();
	parse(t, &g_e);

	/* The families of the issue, each once, with the right type. */
	static const struct {
		const char *name, *type;
	} want[] = {
	    {"fieldsync_up", "gauge"},
	    {"fieldsync_draining", "gauge"},
	    {"fieldsync_changesets_total", "counter"},
	    {"fieldsync_changes_total", "counter"},
	    {"fieldsync_conflicts_open", "gauge"},
	    {"fieldsync_commit_duration_seconds", "histogram"},
	    {"fieldsync_commit_batch_changesets", "histogram"},
	    {"fieldsync_pulled_records_total", "counter"},
	    {"fieldsync_peers_connected", "gauge"},
	    {"fieldsync_reminders", "gauge"},
	    {"fieldsync_reminder_events_total", "counter"},
	    {"fieldsync_replays_total", "counter"},
	    {"fieldsync_replies_unroutable_total", "counter"},
	    {"fieldsync_zap_denials_total", "counter"},
	    {"fieldsync_lmdb_map_size_bytes", "gauge"},
	    {"fieldsync_lmdb_used_bytes", "gauge"},
	    {"fieldsync_lmdb_readers", "gauge"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct family *f = family_find(&g_e, want[i].name);
		cr_assert_not_null(f, "family %s is missing", want[i].name);
		cr_assert_str_eq(f->type, want[i].type, "%s", want[i].name);
	}
	cr_assert_eq(g_e.nf, METRIC_COUNT);
	/* _total exactly on counters; every family has samples. */
	for (size_t i = 0; i < g_e.nf; i++) {
		bool counter = strcmp(g_e.f[i].type, "counter") == 0;
		cr_assert_eq(ends_with(g_e.f[i].name, "_total"), counter, "%s", g_e.f[i].name);
		bool seen = false;
		for (size_t k = 0; k < g_e.n && !seen; k++)
			seen = family_of(&g_e, g_e.s[k].name) == &g_e.f[i];
		cr_assert(seen, "family %s has no sample", g_e.f[i].name);
	}
	/* Every label combination is exposed from the start, at 0. */
	size_t n = 0;
	for (size_t k = 0; k < g_e.n; k++)
		if (strcmp(g_e.s[k].name, "fieldsync_reminders") == 0)
			n++;
	cr_assert_eq(n, METRIC_RULES * METRIC_STATES);
	cr_assert_eq(value_of(&g_e, "fieldsync_up", ""), 1);
	free(t);
}

Test(metrics, rule_labels_match_rules_c)
{
	char label[96];
	metrics_reset();
	for (int r = 0; r < RULE_COUNT; r++)
		metrics_inc(METRIC_REMINDER_EVENTS_TOTAL, metrics_rule_state(r, 0), (uint64_t)r + 1);
	char *t = render();
	parse(t, &g_e);
	for (int r = 0; r < RULE_COUNT; r++) {
		snprintf(label, sizeof(label), "rule=\"%s\",state=\"scheduled\"", rule_name((rule_id)r));
		cr_assert_eq(value_of(&g_e, "fieldsync_reminder_events_total", label), r + 1);
	}
	free(t);
}

Test(metrics, render_cut_like_snprintf)
{
	size_t full = metrics_render(NULL, 0);
	cr_assert_gt(full, 1000);
	char *whole = malloc(full + 1);
	cr_assert_eq(metrics_render(whole, full + 1), full);
	cr_assert_eq(strlen(whole), full);

	char small[100];
	memset(small, 'x', sizeof(small));
	cr_assert_eq(metrics_render(small, sizeof(small)), full);
	cr_assert_eq(strlen(small), sizeof(small) - 1);
	cr_assert(strncmp(small, whole, sizeof(small) - 1) == 0);

	char *exact = malloc(full);
	cr_assert_eq(metrics_render(exact, full), full); /* one byte short: cut */
	cr_assert_eq(strlen(exact), full - 1);
	free(exact);
	free(whole);
}

/* ---- concurrency ----------------------------------------------------------- */

#define THREADS 8
#define ROUNDS 50000

static _Atomic int g_render_failures; /* no cr_assert off the test's thread */

static void *
hammer(void *arg)
{
	size_t id = (size_t)(uintptr_t)arg;
	for (int i = 0; i < ROUNDS; i++) {
		metrics_inc(METRIC_CHANGES_TOTAL, MCH_APPLIED, 1);
		metrics_inc(METRIC_CHANGES_TOTAL, id % MCH_COUNT, 2);
		metrics_add(METRIC_PEERS_CONNECTED, 0, 1);
		metrics_add(METRIC_PEERS_CONNECTED, 0, -1);
		metrics_add(METRIC_CONFLICTS_OPEN, 0, 1);
		metrics_observe(METRIC_COMMIT_DURATION_SECONDS, 0.25);
		metrics_observe(METRIC_COMMIT_BATCH_CHANGESETS, (double)(i % 8));
		if (i % 1000 == 0) { /* renders race the updates: never torn, never inconsistent */
			size_t len = 0;
			char *t = metrics_render_alloc(&len);
			if (t == NULL || strlen(t) != len)
				g_render_failures++;
			free(t);
		}
	}
	return NULL;
}

Test(metrics, threads_lose_nothing)
{
	pthread_t th[THREADS];
	for (size_t i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, hammer, (void *)(uintptr_t)i), 0);
	for (size_t i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(g_render_failures, 0);

	int64_t per_label[MCH_COUNT] = {0};
	per_label[MCH_APPLIED] += (int64_t)THREADS * ROUNDS;
	for (size_t i = 0; i < THREADS; i++)
		per_label[i % MCH_COUNT] += 2 * ROUNDS;
	for (size_t l = 0; l < MCH_COUNT; l++)
		cr_assert_eq(metrics_value(METRIC_CHANGES_TOTAL, l), per_label[l], "label %zu", l);
	cr_assert_eq(metrics_value(METRIC_PEERS_CONNECTED, 0), 0);
	cr_assert_eq(metrics_value(METRIC_CONFLICTS_OPEN, 0), (int64_t)THREADS * ROUNDS);
	cr_assert_eq(metrics_value(METRIC_COMMIT_DURATION_SECONDS, 0), (int64_t)THREADS * ROUNDS);

	char *t = render();
	parse(t, &g_e);
	/* 0.25 and small integers add exactly in a double: the CAS loop lost none. */
	cr_assert_eq(value_of(&g_e, "fieldsync_commit_duration_seconds_sum", ""),
	             0.25 * THREADS * ROUNDS);
	cr_assert_eq(value_of(&g_e, "fieldsync_commit_batch_changesets_sum", ""),
	             (double)THREADS * (ROUNDS / 8) * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7));
	cr_assert_eq(value_of(&g_e, "fieldsync_commit_batch_changesets_bucket", "le=\"+Inf\""),
	             (double)THREADS * ROUNDS);
	free(t);
}
