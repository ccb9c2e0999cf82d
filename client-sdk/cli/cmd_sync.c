/*
 * cmd_sync.c: the sync and status commands of the `fieldsync` CLI: one sync
 * with a progress line on stderr when it is a terminal (after half a second;
 * done/total, rate and ETA), then a summary line (or one JSON object); the
 * store's state (replica, credential, pending and failed changes, the last
 * error) as text in local time, or JSON in ms.
 *
 * Contract: each cmd_* takes an open store it does not close and returns an
 * exit status (cli.h); never prints the credential's secret key.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int
cmd_status(fs_store *s, const cli_opts *opt)
{
	bool json = opt->json;
	char when[64];
	fs_status st;
	fs_list *failed = NULL;
	fs_err e = fs_status_get(s, &st);
	if (e == FS_OK)
		e = fs_list_failed(s, &failed);
	if (e != FS_OK)
		return cli_fail("status", e);
	fs_credential *cred = NULL;
	e = fs_store_credential(s, &cred);
	if (e != FS_OK && e != FS_ERR_NOT_FOUND) {
		fs_list_free(&failed);
		return cli_fail("status", e);
	}
	if (!json) {
		printf("replica     %s\n", fs_store_replica_id(s));
		printf("scope       %s\n", fs_store_default_scope(s));
		printf("encrypted   %s\n", fs_store_encrypted(s) ? "yes" : "no");
		if (cred != NULL) {
			printf("name        %s (%s)\n", cred->name, cred->role);
			printf("endpoint    %s\n", cred->endpoint);
			printf("scopes     ");
			for (size_t i = 0; i < cred->n_scopes; i++)
				printf(" %s", cred->scopes[i]);
			printf("\n");
		}
		fs_credential_free(&cred);
		printf("pending     %" PRIu64 "\n", st.pending);
		printf("failed      %" PRIu64 "\n", st.failed);
		printf("last_seq    %" PRIu64 "\n", st.last_seq);
		if (st.last_sync_ms) {
			cli_local_time(st.last_sync_ms, NULL, true, when, sizeof(when));
			printf("last sync   %s\n", when);
		} else {
			printf("last sync   never\n");
		}
		if (st.last_error != FS_OK) {
			cli_local_time(st.last_error_ms, NULL, true, when, sizeof(when));
			printf("last error  %s: %s (%s)\n", cli_err_name(st.last_error),
			       st.last_error_msg, when);
		}
		for (size_t i = 0; i < failed->n; i++)
			printf("failed      %s %s: %s\n", failed->items[i].collection,
			       failed->items[i].id,
			       failed->items[i].reason ? failed->items[i].reason : "");
		fs_list_free(&failed);
		return fflush(stdout) == 0 ? 0 : EX_FAIL;
	}
	cJSON *o = cJSON_CreateObject();
	if (o != NULL) {
		cJSON_AddStringToObject(o, "replica", fs_store_replica_id(s));
		cJSON_AddStringToObject(o, "scope", fs_store_default_scope(s));
		cJSON_AddBoolToObject(o, "encrypted", fs_store_encrypted(s));
		if (cred != NULL) { /* never the secret key */
			cJSON_AddStringToObject(o, "name", cred->name);
			cJSON_AddStringToObject(o, "role", cred->role);
			cJSON_AddStringToObject(o, "endpoint", cred->endpoint);
			cJSON *sc = cJSON_AddArrayToObject(o, "scopes");
			for (size_t i = 0; sc != NULL && i < cred->n_scopes; i++)
				cJSON_AddItemToArray(sc, cJSON_CreateString(cred->scopes[i]));
		}
		cli_add_raw_int(o, "pending", (int64_t)st.pending);
		cli_add_raw_int(o, "failed", (int64_t)st.failed);
		cli_add_raw_int(o, "last_seq", (int64_t)st.last_seq);
		cli_add_raw_int(o, "last_sync_ms", st.last_sync_ms);
		if (st.last_error == FS_OK) {
			cJSON_AddNullToObject(o, "last_error");
		} else {
			cJSON *le = cJSON_AddObjectToObject(o, "last_error");
			if (le != NULL) {
				cJSON_AddStringToObject(le, "code", cli_err_name(st.last_error));
				cJSON_AddStringToObject(le, "message", st.last_error_msg);
				cli_add_raw_int(le, "at_ms", st.last_error_ms);
			}
		}
		cJSON *fa = cJSON_AddArrayToObject(o, "failed_changes");
		for (size_t i = 0; fa != NULL && i < failed->n; i++) {
			cJSON *j = cJSON_CreateObject();
			if (j == NULL)
				break;
			cJSON_AddItemToArray(fa, j);
			cJSON_AddStringToObject(j, "collection", failed->items[i].collection);
			cJSON_AddStringToObject(j, "id", failed->items[i].id);
			cJSON_AddStringToObject(j, "reason",
			                        failed->items[i].reason ? failed->items[i].reason
			                                                : "");
		}
	}
	fs_list_free(&failed);
	fs_credential_free(&cred);
	return cli_print_json(o);
}

typedef struct bar {
	bool on, shown;
	int64_t start;
	fs_sync_phase phase;
	int64_t phase_start, drawn;
	uint64_t phase_done0;
} bar;

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "1m05s" */
static void
duration(double s, char *out, size_t len)
{
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(out, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else if (t >= 60)
		snprintf(out, len, "%ldm%02lds", t / 60, t % 60);
	else if (t > 0)
		snprintf(out, len, "%lds", t);
	else
		snprintf(out, len, "<1s");
}

/* The progress line on stderr, once the sync has run for half a second:
 * push [####      ] 400/1000  812/s  ETA 1s;  pull 2300 records  1450/s. */
static void
on_progress(void *arg, const fs_progress *p)
{
	bar *b = arg;
	int64_t now = mono_ms();
	if (p->phase != b->phase) {
		b->phase = p->phase;
		b->phase_start = now;
		b->phase_done0 = p->done;
	}
	if (!b->on || now - b->start < 500 ||
	    (now - b->drawn < 100 && !(p->total > 0 && p->done == p->total)))
		return; /* after half a second, at most ten lines a second */
	b->shown = true;
	b->drawn = now;
	double secs = (double)(now - b->phase_start) / 1000.0;
	double rate = secs > 0.05 ? (double)(p->done - b->phase_done0) / secs : 0;
	char eta[32] = "";
	if (p->phase == FS_SYNC_PUSH && p->total > 0) {
		int w = 24, fill = (int)((double)p->done / (double)p->total * w);
		if (fill > w)
			fill = w;
		if (rate > 0 && p->total > p->done)
			duration((double)(p->total - p->done) / rate, eta, sizeof(eta));
		fprintf(stderr, "\rpush [%.*s%*s] %" PRIu64 "/%" PRIu64 "  %.0f/s  ETA %s\033[K",
		        fill, "########################", w - fill, "", p->done, p->total, rate,
		        eta[0] ? eta : "-");
	} else if (p->phase == FS_SYNC_PULL) {
		fprintf(stderr, "\rpull %" PRIu64 " records  %.0f/s\033[K", p->done, rate);
	} else {
		fprintf(stderr, "\rconnecting...\033[K");
	}
	fflush(stderr);
}

/* The refused changes, for sync --json. */
static void
add_failed(fs_store *s, cJSON *o)
{
	fs_list *failed = NULL;
	if (fs_list_failed(s, &failed) != FS_OK)
		return;
	cJSON *fa = cJSON_AddArrayToObject(o, "failed_changes");
	for (size_t i = 0; fa != NULL && i < failed->n; i++) {
		cJSON *j = cJSON_CreateObject();
		if (j == NULL)
			break;
		cJSON_AddItemToArray(fa, j);
		cJSON_AddStringToObject(j, "collection", failed->items[i].collection);
		cJSON_AddStringToObject(j, "id", failed->items[i].id);
		cJSON_AddStringToObject(j, "reason",
		                        failed->items[i].reason ? failed->items[i].reason : "");
	}
	fs_list_free(&failed);
}

int
cmd_sync(fs_store *s, const cli_opts *opt, double timeout_s)
{
	bar b = {.on = isatty(STDERR_FILENO) == 1 && !opt->no_progress,
	         .start = mono_ms(),
	         .phase = FS_SYNC_CONNECT,
	         .phase_start = mono_ms()};
	fs_sync_opts o = {0};
	fs_sync_stats st;
	fs_status ss;
	char detail[300] = "";
	if (opt->endpoint == NULL) {
		fs_credential *c = NULL;
		fs_err ce = fs_store_credential(s, &c);
		fs_credential_free(&c);
		if (ce == FS_ERR_NOT_FOUND)
			return cli_usage_error(
				"sync needs --endpoint EP (or $FIELDSYNC_ENDPOINT): the "
				"store was not set up from a credential");
		if (ce != FS_OK)
			return cli_fail("sync", ce);
	}
	o.endpoint = opt->endpoint;
	o.timeout_ms = (int)(timeout_s * 1000.0);
	if (o.timeout_ms < 1)
		o.timeout_ms = 1;
	o.progress = on_progress;
	o.progress_arg = &b;
	memset(&st, 0, sizeof(st));
	fs_err e = fs_sync(s, &o, &st);
	if (b.shown)
		fputs("\r\033[K", stderr);
	if (e != FS_OK && fs_status_get(s, &ss) == FS_OK && ss.last_error_msg[0] != '\0' &&
	    strcmp(ss.last_error_msg, fs_strerror(e)) != 0)
		snprintf(detail, sizeof(detail), "%s", ss.last_error_msg);
	int rc = e != FS_OK ? cli_exit_status(e) : st.failed > 0 ? EX_DATAERR : 0;
	if (e == FS_ERR_INVALID) /* no endpoint at all: a usage error */
		rc = EX_USAGE;
	if (opt->json) {
		cJSON *j = cJSON_CreateObject();
		if (j != NULL) {
			cJSON_AddBoolToObject(j, "ok", e == FS_OK && st.failed == 0);
			cli_add_raw_int(j, "pushed", (int64_t)st.pushed);
			cli_add_raw_int(j, "conflicts", (int64_t)st.conflicts);
			cli_add_raw_int(j, "failed", (int64_t)st.failed);
			cli_add_raw_int(j, "pulled", (int64_t)st.pulled);
			cli_add_raw_int(j, "changesets", (int64_t)st.changesets);
			cli_add_raw_int(j, "refused", (int64_t)st.refused);
			if (e == FS_OK) {
				cJSON_AddNullToObject(j, "error");
			} else {
				cJSON *je = cJSON_AddObjectToObject(j, "error");
				if (je != NULL) {
					cJSON_AddStringToObject(je, "code", cli_err_name(e));
					cJSON_AddStringToObject(je, "message",
					                        detail[0] ? detail
					                                  : fs_strerror(e));
				}
			}
			if (st.failed > 0)
				add_failed(s, j);
			cli_add_raw_int(j, "exit", rc);
		}
		if (cli_print_json(j) != 0 && rc == 0)
			rc = EX_FAIL;
	} else {
		printf("pushed %" PRIu64 " (%" PRIu64 " conflicts), failed %" PRIu64
		       ", pulled %" PRIu64 "\n",
		       st.pushed, st.conflicts, st.failed, st.pulled);
		fflush(stdout);
	}
	if (e != FS_OK) {
		if (detail[0])
			fprintf(stderr, "fieldsync: sync failed: %s (%s)\n", fs_strerror(e),
			        detail);
		else
			fprintf(stderr, "fieldsync: sync failed: %s\n", fs_strerror(e));
		if (rc == EX_TEMPFAIL)
			fprintf(stderr,
			        "fieldsync: nothing local was lost; run sync again later\n");
		else if (rc == EX_NOPERM)
			fprintf(stderr,
			        "fieldsync: nothing local was lost; the daemon's operator must "
			        "enroll this device again (fieldsyncd enroll)\n");
		else
			fprintf(stderr, "fieldsync: nothing local was lost\n");
		return rc;
	}
	if (st.failed > 0)
		fprintf(stderr,
		        "fieldsync: %" PRIu64
		        " change(s) were refused by the daemon and are parked; "
		        "`fieldsync status` says why\n",
		        st.failed);
	if (st.refused > 0) /* pulled values that failed the strict checks */
		fprintf(stderr,
		        "fieldsync: %" PRIu64
		        " pulled record(s) failed the strict checks and were not stored "
		        "(the daemon's operator should run `fieldsyncd verify`)\n",
		        st.refused);
	return rc;
}
