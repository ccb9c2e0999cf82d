/*
 * cmd_watch.c: the watch command of the `fieldsync` CLI, the reference
 * scheduler: follows reminder events from the daemon, each once and in seq
 * order (the SDK fills gaps by replay), optionally resuming from and saving
 * its cursor in a --state file. Needs no store.
 *
 * Contract: runs until --count events, SIGINT/SIGTERM or an error; returns
 * an exit status (cli.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t g_watch_stop;

static void
watch_on_signal(int sig)
{
	(void)sig;
	g_watch_stop = 1;
}

static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end = NULL;
	if (s == NULL || !(s[0] >= '0' && s[0] <= '9'))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		return false;
	*out = v;
	return true;
}

/* The cursor saved in a --state file: the text of one number. */
static bool
state_read(const char *path, uint64_t *seq)
{
	char buf[32] = "";
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return parse_u64(buf, seq);
}

/* Writes the cursor atomically (temp file, fsync, rename). */
static bool
state_write(const char *path, uint64_t seq)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return false;
	bool ok = fprintf(f, "%" PRIu64 "\n", seq) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	return ok && rename(tmp, path) == 0;
}

static void
print_reminder(const fs_reminder *r, bool json)
{
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "seq", (double)r->seq);
		cJSON_AddStringToObject(o, "reminder_id", r->reminder_id);
		cJSON_AddStringToObject(o, "rule", r->rule);
		cJSON_AddStringToObject(o, "state", r->state);
		cJSON_AddStringToObject(o, "scope", r->scope);
		cJSON_AddStringToObject(o, "case_id", r->case_id);
		cJSON_AddStringToObject(o, "contact_person", r->contact_person);
		cJSON_AddNumberToObject(o, "due_at_ms", (double)r->due_at_ms);
		cJSON_AddNumberToObject(o, "emitted_at_ms", (double)r->emitted_at_ms);
		char *text = cJSON_PrintUnformatted(o);
		if (text != NULL)
			printf("%s\n", text);
		free(text);
		cJSON_Delete(o);
	} else {
		char due[32] = "";
		time_t t = (time_t)(r->due_at_ms / 1000);
		struct tm tm;
		if (gmtime_r(&t, &tm) != NULL)
			strftime(due, sizeof(due), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%" PRIu64 " %-9s %-18s %s scope=%s case=%s contact_person=%s due=%s\n",
		       r->seq, r->state, r->rule, r->reminder_id, r->scope, r->case_id,
		       r->contact_person, due);
	}
	fflush(stdout);
}

int
cmd_watch(const char *endpoint, const char *reminders, const char *since, const char *rule,
          const char *scope, bool json, const char *count, const char *state_file,
          const char *cred_file)
{
	fs_watch_opts o = {.sync_endpoint = endpoint,
	                   .reminder_endpoint = reminders,
	                   .rule = rule,
	                   .scope = scope};
	uint64_t max = 0, done = 0;
	fs_watcher *w = NULL;
	fs_credential *cred = NULL;
	struct sigaction sa;
	int rc = 0;

	if (since != NULL && !parse_u64(since, &o.since_seq))
		return cli_usage("--since takes a seq (a whole number)");
	if (count != NULL && (!parse_u64(count, &max) || max == 0))
		return cli_usage("--count takes a positive number");
	if (cred_file != NULL) {
		if ((rc = cli_load_credential(cred_file, "watch", "", &cred)) != 0)
			return rc;
		if (o.sync_endpoint == NULL)
			o.sync_endpoint = cred->endpoint;
		o.curve_server_key = cred->server_public_key;
		o.curve_public_key = cred->client_public_key;
		o.curve_secret_key = cred->client_secret_key;
	}
	if (o.sync_endpoint == NULL || reminders == NULL) {
		fs_credential_free(&cred);
		return cli_usage("watch needs --endpoint SYNC_EP (or --credential FILE) and "
		                 "--reminders PUB_EP");
	}
	if (since == NULL && state_file != NULL)
		state_read(state_file, &o.since_seq); /* resume where the last run stopped */
	fs_err e = fs_watcher_open(&o, &w);
	fs_credential_free(&cred); /* the watcher keeps its own copy of the keys */
	if (e != FS_OK)
		return cli_fail("watch", e);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watch_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!g_watch_stop && (max == 0 || done < max)) {
		const fs_reminder *r = NULL;
		e = fs_watcher_next(w, 1000, &r);
		if (e == FS_ERR_TIMEOUT)
			continue;
		if (e != FS_OK) {
			rc = cli_fail("watch", e);
			break;
		}
		print_reminder(r, json);
		done++;
		if (state_file != NULL && !state_write(state_file, fs_watcher_cursor(w))) {
			fprintf(stderr, "fieldsync: cannot write the state file %s\n", state_file);
			rc = EX_FAIL;
			break;
		}
	}
	fs_watcher_close(&w);
	return rc;
}
