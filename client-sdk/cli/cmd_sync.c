/*
 * cmd_sync.c: the sync and status commands of the `fieldsync` CLI: one sync
 * with a progress bar on a terminal (after a second), then a summary line;
 * the store's state (replica, credential, pending and failed changes, the
 * last error) as text or JSON.
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

static const char *
err_name(fs_err e)
{
	static const char *const names[] = {
		"OK",      "INVALID", "NOT_FOUND", "EXISTS",       "NOMEM",     "IO",
		"CORRUPT", "VERSION", "FULL",      "TIMEOUT",      "NETWORK",   "PROTOCOL",
		"BUSY",    "REFUSED", "SERVER",    "KEY_REQUIRED", "KEY_WRONG", "NOT_ENCRYPTED",
	};
	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "UNKNOWN";
}

int
cmd_status(fs_store *s, bool json)
{
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
		if (st.last_sync_ms)
			printf("last sync   %" PRId64 " ms\n", st.last_sync_ms);
		else
			printf("last sync   never\n");
		if (st.last_error != FS_OK)
			printf("last error  %s: %s\n", err_name(st.last_error), st.last_error_msg);
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
				cJSON_AddStringToObject(le, "code", err_name(st.last_error));
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
	bool tty, shown;
	int64_t start;
} bar;

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A progress bar on a terminal, once the sync has run for a second. */
static void
on_progress(void *arg, const fs_progress *p)
{
	bar *b = arg;
	if (!b->tty || mono_ms() - b->start < 1000)
		return;
	b->shown = true;
	if (p->phase == FS_SYNC_PUSH && p->total > 0) {
		int w = 30, fill = (int)((double)p->done / (double)p->total * w);
		if (fill > w)
			fill = w;
		printf("\rpush [%.*s%*s] %" PRIu64 "/%" PRIu64 "   ", fill,
		       "##############################", w - fill, "", p->done, p->total);
	} else if (p->phase == FS_SYNC_PULL) {
		printf("\rpull %" PRIu64 " records                                    ", p->done);
	} else {
		printf("\rconnecting...");
	}
	fflush(stdout);
}

int
cmd_sync(fs_store *s, const char *endpoint, double timeout_s)
{
	bar b = {isatty(STDOUT_FILENO) == 1, false, mono_ms()};
	fs_sync_opts o = {0};
	fs_sync_stats st;
	if (endpoint == NULL) {
		fs_credential *c = NULL;
		fs_err ce = fs_store_credential(s, &c);
		fs_credential_free(&c);
		if (ce == FS_ERR_NOT_FOUND)
			return cli_usage(
				"sync needs --endpoint EP (the store was not set up from a credential)");
		if (ce != FS_OK)
			return cli_fail("sync", ce);
	}
	o.endpoint = endpoint;
	o.timeout_ms = (int)(timeout_s * 1000.0);
	if (o.timeout_ms < 1)
		o.timeout_ms = 1;
	o.progress = on_progress;
	o.progress_arg = &b;
	fs_err e = fs_sync(s, &o, &st);
	if (b.shown)
		putchar('\n');
	printf("pushed %" PRIu64 " (%" PRIu64 " conflicts), failed %" PRIu64 ", pulled %" PRIu64
	       "\n",
	       st.pushed, st.conflicts, st.failed, st.pulled);
	fflush(stdout);
	if (e != FS_OK) {
		fs_status ss;
		if (fs_status_get(s, &ss) == FS_OK && ss.last_error_msg[0] != '\0' &&
		    strcmp(ss.last_error_msg, fs_strerror(e)) != 0)
			fprintf(stderr, "fieldsync: sync failed: %s (%s)\n", fs_strerror(e),
			        ss.last_error_msg);
		else
			fprintf(stderr, "fieldsync: sync failed: %s\n", fs_strerror(e));
		fprintf(stderr, "fieldsync: nothing local was lost; run sync again later\n");
		return e == FS_ERR_KEY_REFUSED ? 5 : EX_FAIL; /* 5: the daemon refused this key */
	}
	if (st.failed > 0)
		fprintf(stderr,
		        "fieldsync: %" PRIu64 " change(s) were refused by the daemon; "
		        "see `fieldsync status`\n",
		        st.failed);
	return 0;
}
