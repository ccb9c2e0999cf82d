/*
 * fieldsync: the command-line face of libfieldsync, for scripts, tests and
 * staff support. See client-sdk/README.md and `fieldsync --help`.
 *
 * Exit status: 0 success, 1 failure (store, network, daemon), 2 bad usage
 * or refused input, 3 no such record, 4 the record is in conflict (get
 * without --json). Messages go to stderr and never quote a payload.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>

#include "fieldsync/crypto.h"
#include "fieldsync/fieldsync.h"

#define EX_FAIL 1
#define EX_USAGE 2
#define EX_NOTFOUND 3
#define EX_CONFLICT 4
#define STDIN_MAX (16u << 20)

static const char usage_text[] =
	"usage: fieldsync [--store DIR] [--key-file FILE] COMMAND [ARGS]\n"
	"  The store directory comes from --store or $FIELDSYNC_STORE.\n"
	"  --key-file FILE (or $FIELDSYNC_STORE_KEY_FILE): the store is encrypted with the\n"
	"  key in FILE, one line \"<id>:<64 hex digits>\", mode 0600; every command that\n"
	"  opens or creates the store uses it.\n"
	"commands:\n"
	"  init [--scope S] [--credential FILE] create the store (default scope \"default\",\n"
	"                                       or the credential's first scope); with\n"
	"                                       --credential, sync uses its endpoint and CURVE\n"
	"  put COLLECTION ID [--scope S]        write the value read from stdin\n"
	"  get COLLECTION ID [--json]           print the value (--json: every sibling)\n"
	"  delete COLLECTION ID                 delete the record\n"
	"  list COLLECTION                      print the ids of live records\n"
	"  conflicts [--json]                   list records in conflict\n"
	"  resolve COLLECTION ID                write the merged value from stdin\n"
	"  sync [--endpoint EP] [--timeout SEC] push local changes, pull the feed (EP\n"
	"                                       defaults to the credential's endpoint)\n"
	"  status [--json]                      pending changes, last sync, last error\n"
	"  keygen [--key-id ID]                 write a new random key to the --key-file\n"
	"                                       (mode 0600; never overwrites; ID default k1)\n"
	"  rekey --new-key-file FILE            re-wrap the store's data keys with the key in\n"
	"                                       FILE; afterwards only that key opens the store\n"
	"  watch --endpoint SYNC_EP --reminders PUB_EP [--since SEQ] [--rule R]\n"
	"        [--scope S] [--json] [--count N] [--state FILE] [--credential FILE]\n"
	"                                       follow reminder events, each once, in seq\n"
	"                                       order; gaps are filled by replay (no store);\n"
	"                                       --credential: CURVE, and SYNC_EP defaults\n"
	"                                       to the credential's endpoint\n"
	"Collections \"case\" and \"contact\" are read and printed as JSON (METHOD.md);\n"
	"others take their bytes from stdin and print them as they are.\n";

static int
usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "fieldsync: %s\n", why);
	fputs(usage_text, stderr);
	return EX_USAGE;
}

static int
fail(const char *what, fs_err e)
{
	fprintf(stderr, "fieldsync: %s: %s\n", what, fs_strerror(e));
	if (e == FS_ERR_NOT_FOUND)
		return EX_NOTFOUND;
	if (e == FS_ERR_INVALID)
		return EX_USAGE;
	return EX_FAIL;
}

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

/* Reads all of stdin, at most STDIN_MAX bytes. */
static int
read_stdin(uint8_t **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return EX_FAIL;
	for (;;) {
		if (n == cap) {
			if (cap > STDIN_MAX) {
				free(buf);
				fprintf(stderr,
				        "fieldsync: the value on stdin is larger than %u bytes\n",
				        STDIN_MAX);
				return EX_USAGE;
			}
			uint8_t *b = realloc(buf, cap * 2);
			if (b == NULL) {
				free(buf);
				return EX_FAIL;
			}
			buf = b;
			cap *= 2;
		}
		size_t r = fread(buf + n, 1, cap - n, stdin);
		n += r;
		if (r == 0) {
			if (ferror(stdin)) {
				free(buf);
				fprintf(stderr, "fieldsync: cannot read stdin\n");
				return EX_FAIL;
			}
			break;
		}
	}
	if (n > STDIN_MAX) {
		free(buf);
		fprintf(stderr, "fieldsync: the value on stdin is larger than %u bytes\n",
		        STDIN_MAX);
		return EX_USAGE;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* The payload to store: JSON converted for typed collections, raw otherwise. */
static int
value_from_stdin(const char *collection, uint8_t **out, size_t *len)
{
	uint8_t *raw = NULL;
	size_t n = 0;
	int rc = read_stdin(&raw, &n);
	if (rc != 0)
		return rc;
	if (!fs_collection_typed(collection)) {
		*out = raw;
		*len = n;
		return 0;
	}
	char why[256];
	uint8_t *p = NULL;
	size_t pl = 0;
	fs_err e = fs_json_to_payload(collection, (const char *)raw, n, &p, &pl, why, sizeof(why));
	free(raw);
	if (e != FS_OK) {
		fprintf(stderr, "fieldsync: refused: the %s is not valid: %s; nothing was stored\n",
		        collection, why);
		return e == FS_ERR_NOMEM ? EX_FAIL : EX_USAGE;
	}
	*out = p;
	*len = pl;
	return 0;
}

static bool
utf8_text(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t k;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0 && c >= 0xc2)
			k = 1;
		else if ((c & 0xf0) == 0xe0)
			k = 2;
		else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
			k = 3;
		else
			return false;
		for (size_t j = 1; j <= k; j++)
			if (i + j >= n || (p[i + j] & 0xc0) != 0x80)
				return false;
		i += k + 1;
	}
	return true;
}

static char *
base64(const uint8_t *p, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = malloc(4 * ((n + 2) / 3) + 1), *q = o;
	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		*q++ = t[v >> 18 & 63];
		*q++ = t[v >> 12 & 63];
		*q++ = i + 1 < n ? t[v >> 6 & 63] : '=';
		*q++ = i + 2 < n ? t[v & 63] : '=';
	}
	*q = '\0';
	return o;
}

static bool
add_raw_int(cJSON *o, const char *name, int64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRId64, v);
	return cJSON_AddRawToObject(o, name, b) != NULL;
}

/* {"a":1,"b":2} from "a:1,b:2". */
static cJSON *
version_json(const char *text)
{
	cJSON *o = cJSON_CreateObject();
	char *copy = strdup(text), *save = NULL;
	if (o == NULL || copy == NULL) {
		free(copy);
		cJSON_Delete(o);
		return NULL;
	}
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(tok, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		cJSON_AddRawToObject(o, tok, colon + 1);
	}
	free(copy);
	return o;
}

static int
print_json(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (s == NULL) {
		fprintf(stderr, "fieldsync: out of memory\n");
		return EX_FAIL;
	}
	puts(s);
	free(s);
	return fflush(stdout) == 0 ? 0 : EX_FAIL;
}

/* ---- commands ----------------------------------------------------------- */

/* The store key from --key-file / $FIELDSYNC_STORE_KEY_FILE into *m; false
 * (message printed) when the file does not give one. */
static bool
load_key(const char *key_file, fsc_master *m)
{
	char err[512];
	if (fsc_master_load_file(key_file, m, err, sizeof(err)))
		return true;
	fprintf(stderr, "fieldsync: %s\n", err);
	return false;
}

static int
cmd_init(const char *dir, const char *scope, const char *key_file, const char *cred_file)
{
	fs_store *s = NULL;
	fs_credential *cred = NULL;
	fs_store_opts o;
	fsc_master m;
	char why[512];
	int rc = 0;

	memset(&o, 0, sizeof(o));
	memset(&m, 0, sizeof(m));
	o.default_scope = scope;
	if (cred_file != NULL) {
		fs_err ce = fs_credential_load(cred_file, &cred, why, sizeof(why));
		if (ce != FS_OK) {
			fprintf(stderr, "fieldsync: init: %s; nothing was created\n", why);
			return ce == FS_ERR_INVALID ? EX_USAGE : EX_FAIL;
		}
		o.credential = cred;
	}
	if (key_file != NULL) {
		if (!load_key(key_file, &m)) {
			rc = EX_USAGE;
			goto out;
		}
		o.key = m.key;
		o.key_len = sizeof(m.key);
		o.key_id = m.id;
	}
	fs_err e = fs_store_create_ex(dir, &o, &s);
	if (e == FS_ERR_INVALID) {
		rc = usage(cred != NULL && scope != NULL
		                   ? "the scope must be one the credential grants"
		                   : "the scope must match [a-z0-9][a-z0-9._-]{0,63}");
		goto out;
	}
	if (e != FS_OK) {
		rc = fail("init", e);
		goto out;
	}
	printf("created %sstore %s: replica %s, default scope %s", key_file ? "encrypted " : "",
	       dir, fs_store_replica_id(s), fs_store_default_scope(s));
	if (cred != NULL)
		printf(", device %s (%s) syncing with %s over CURVE", cred->name, cred->role,
		       cred->endpoint);
	printf("\n");
out:
	fs_store_close(&s);
	fs_credential_free(&cred);
	fsc_cleanse(&m, sizeof(m));
	return rc;
}

static int
cmd_keygen(const char *key_file, const char *key_id)
{
	char err[512];
	if (key_file == NULL)
		return usage(
			"keygen writes the file given with --key-file (or $FIELDSYNC_STORE_KEY_FILE)");
	if (!fsc_master_create_file(key_file, key_id ? key_id : "k1", err, sizeof(err))) {
		fprintf(stderr, "fieldsync: keygen: %s\n", err);
		return EX_FAIL;
	}
	printf("wrote a new key %s to %s (mode 0600); keep it apart from the store\n",
	       key_id ? key_id : "k1", key_file);
	return 0;
}

static int
cmd_rekey(fs_store *s, const char *new_key_file)
{
	fsc_master m;
	if (!load_key(new_key_file, &m))
		return EX_USAGE;
	fs_err e = fs_store_rekey(s, m.key, sizeof(m.key), m.id);
	if (e == FS_OK)
		printf("the store's data keys are now wrapped by key %s; only it opens the store\n",
		       m.id);
	fsc_cleanse(&m, sizeof(m));
	return e == FS_OK ? 0 : fail("rekey", e);
}

static int
cmd_write(fs_store *s, const char *what, const char *coll, const char *id, const char *scope)
{
	uint8_t *p = NULL;
	size_t n = 0;
	fs_err e;
	int rc = value_from_stdin(coll, &p, &n);
	if (rc != 0)
		return rc;
	if (strcmp(what, "resolve") == 0)
		e = fs_resolve(s, coll, id, p, n);
	else
		e = fs_put(s, coll, id, scope, p, n);
	free(p);
	if (e == FS_ERR_INVALID) {
		fprintf(stderr,
		        "fieldsync: %s: invalid collection, id, scope or value; nothing was stored\n",
		        what);
		return EX_USAGE;
	}
	return e == FS_OK ? 0 : fail(what, e);
}

static int
cmd_get(fs_store *s, const char *coll, const char *id, bool json)
{
	fs_record *r = NULL;
	fs_err e = fs_get(s, coll, id, &r);
	int rc = 0;
	bool typed = fs_collection_typed(coll);

	if (e != FS_OK)
		return fail("get", e);
	size_t n = fs_record_sibling_count(r);
	if (!json) {
		fs_sibling sb;
		if (n > 1) {
			fprintf(stderr,
			        "fieldsync: the record is in conflict (%zu versions); "
			        "use get --json to see them all, resolve to settle it\n",
			        n);
			rc = EX_CONFLICT;
			goto out;
		}
		fs_record_sibling(r, 0, &sb);
		if (typed) {
			char *text = NULL;
			if ((e = fs_payload_to_json(coll, sb.payload, sb.len, &text)) != FS_OK) {
				rc = fail("get", e);
				goto out;
			}
			puts(text);
			free(text);
		} else if (sb.len > 0 && fwrite(sb.payload, 1, sb.len, stdout) != sb.len) {
			rc = EX_FAIL;
		}
		if (fflush(stdout) != 0)
			rc = EX_FAIL;
		goto out;
	}
	cJSON *o = cJSON_CreateObject(), *arr;
	if (o == NULL) {
		rc = EX_FAIL;
		goto out;
	}
	cJSON_AddStringToObject(o, "collection", fs_record_collection(r));
	cJSON_AddStringToObject(o, "id", fs_record_id(r));
	cJSON_AddStringToObject(o, "scope", fs_record_scope(r));
	cJSON_AddBoolToObject(o, "conflict", n > 1);
	arr = cJSON_AddArrayToObject(o, "siblings");
	for (size_t i = 0; arr != NULL && i < n; i++) {
		fs_sibling sb;
		cJSON *j = cJSON_CreateObject();
		if (j == NULL)
			break;
		cJSON_AddItemToArray(arr, j);
		fs_record_sibling(r, i, &sb);
		cJSON_AddItemToObject(j, "version", version_json(sb.version));
		cJSON_AddBoolToObject(j, "deleted", sb.deleted);
		add_raw_int(j, "modified_at_ms", sb.modified_at_ms);
		cJSON_AddStringToObject(j, "modified_by", sb.modified_by);
		if (sb.deleted)
			continue;
		if (typed) {
			char *text = NULL;
			if (fs_payload_to_json(coll, sb.payload, sb.len, &text) == FS_OK)
				cJSON_AddRawToObject(j, "value", text);
			else
				cJSON_AddNullToObject(j, "value"); /* undecodable; never crash */
			free(text);
		} else if (utf8_text(sb.payload, sb.len)) {
			char *t = malloc(sb.len + 1);
			if (t != NULL) {
				if (sb.len)
					memcpy(t, sb.payload, sb.len);
				t[sb.len] = '\0';
				cJSON_AddStringToObject(j, "value", t);
				free(t);
			}
		} else {
			char *b = base64(sb.payload, sb.len);
			if (b != NULL)
				cJSON_AddStringToObject(j, "value_base64", b);
			free(b);
		}
	}
	rc = print_json(o);
out:
	fs_record_free(&r);
	return rc;
}

static int
cmd_list(fs_store *s, const char *coll)
{
	fs_list *l = NULL;
	fs_err e = fs_list_collection(s, coll, &l);
	if (e != FS_OK)
		return fail("list", e);
	for (size_t i = 0; i < l->n; i++)
		puts(l->items[i].id);
	fs_list_free(&l);
	return fflush(stdout) == 0 ? 0 : EX_FAIL;
}

static int
cmd_conflicts(fs_store *s, bool json)
{
	fs_list *l = NULL;
	fs_err e = fs_list_conflicts(s, &l);
	if (e != FS_OK)
		return fail("conflicts", e);
	if (!json) {
		for (size_t i = 0; i < l->n; i++)
			printf("%s\t%s\t%zu\n", l->items[i].collection, l->items[i].id,
			       l->items[i].siblings);
		fs_list_free(&l);
		return fflush(stdout) == 0 ? 0 : EX_FAIL;
	}
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a != NULL && i < l->n; i++) {
		cJSON *j = cJSON_CreateObject();
		if (j == NULL)
			break;
		cJSON_AddItemToArray(a, j);
		cJSON_AddStringToObject(j, "collection", l->items[i].collection);
		cJSON_AddStringToObject(j, "id", l->items[i].id);
		cJSON_AddStringToObject(j, "scope", l->items[i].scope);
		add_raw_int(j, "siblings", (int64_t)l->items[i].siblings);
	}
	fs_list_free(&l);
	return print_json(a);
}

static int
cmd_status(fs_store *s, bool json)
{
	fs_status st;
	fs_list *failed = NULL;
	fs_err e = fs_status_get(s, &st);
	if (e == FS_OK)
		e = fs_list_failed(s, &failed);
	if (e != FS_OK)
		return fail("status", e);
	fs_credential *cred = NULL;
	e = fs_store_credential(s, &cred);
	if (e != FS_OK && e != FS_ERR_NOT_FOUND) {
		fs_list_free(&failed);
		return fail("status", e);
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
		add_raw_int(o, "pending", (int64_t)st.pending);
		add_raw_int(o, "failed", (int64_t)st.failed);
		add_raw_int(o, "last_seq", (int64_t)st.last_seq);
		add_raw_int(o, "last_sync_ms", st.last_sync_ms);
		if (st.last_error == FS_OK) {
			cJSON_AddNullToObject(o, "last_error");
		} else {
			cJSON *le = cJSON_AddObjectToObject(o, "last_error");
			if (le != NULL) {
				cJSON_AddStringToObject(le, "code", err_name(st.last_error));
				cJSON_AddStringToObject(le, "message", st.last_error_msg);
				add_raw_int(le, "at_ms", st.last_error_ms);
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
	return print_json(o);
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

static int
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
			return usage(
				"sync needs --endpoint EP (the store was not set up from a credential)");
		if (ce != FS_OK)
			return fail("sync", ce);
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
		return EX_FAIL;
	}
	if (st.failed > 0)
		fprintf(stderr,
		        "fieldsync: %" PRIu64 " change(s) were refused by the daemon; "
		        "see `fieldsync status`\n",
		        st.failed);
	return 0;
}

/* ---- main --------------------------------------------------------------- */

/* ---- watch: the reference scheduler -------------------------------------- */

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

static int
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
	char why[512];

	if (since != NULL && !parse_u64(since, &o.since_seq))
		return usage("--since takes a seq (a whole number)");
	if (count != NULL && (!parse_u64(count, &max) || max == 0))
		return usage("--count takes a positive number");
	if (cred_file != NULL) {
		fs_err ce = fs_credential_load(cred_file, &cred, why, sizeof(why));
		if (ce != FS_OK) {
			fprintf(stderr, "fieldsync: watch: %s\n", why);
			return ce == FS_ERR_INVALID ? EX_USAGE : EX_FAIL;
		}
		if (o.sync_endpoint == NULL)
			o.sync_endpoint = cred->endpoint;
		o.curve_server_key = cred->server_public_key;
		o.curve_public_key = cred->client_public_key;
		o.curve_secret_key = cred->client_secret_key;
	}
	if (o.sync_endpoint == NULL || reminders == NULL) {
		fs_credential_free(&cred);
		return usage("watch needs --endpoint SYNC_EP (or --credential FILE) and "
		             "--reminders PUB_EP");
	}
	if (since == NULL && state_file != NULL)
		state_read(state_file, &o.since_seq); /* resume where the last run stopped */
	fs_err e = fs_watcher_open(&o, &w);
	fs_credential_free(&cred); /* the watcher keeps its own copy of the keys */
	if (e != FS_OK)
		return fail("watch", e);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watch_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = 0;
	while (!g_watch_stop && (max == 0 || done < max)) {
		const fs_reminder *r = NULL;
		e = fs_watcher_next(w, 1000, &r);
		if (e == FS_ERR_TIMEOUT)
			continue;
		if (e != FS_OK) {
			rc = fail("watch", e);
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

int
main(int argc, char **argv)
{
	const char *store_dir = getenv("FIELDSYNC_STORE");
	const char *pos[4] = {NULL, NULL, NULL, NULL};
	const char *key_file = getenv("FIELDSYNC_STORE_KEY_FILE");
	const char *scope = NULL, *endpoint = NULL, *timeout = NULL;
	const char *reminders = NULL, *since = NULL, *rule = NULL, *count = NULL, *state = NULL;
	const char *credential = NULL, *key_id = NULL, *new_key_file = NULL;
	bool json = false;
	int npos = 0, rc;
	fs_store *s = NULL;
	fs_store_opts so;
	fsc_master m;

	if (key_file != NULL && key_file[0] == '\0')
		key_file = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **opt = NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (strcmp(a, "--json") == 0) {
			json = true;
			continue;
		}
		if (strcmp(a, "--store") == 0)
			opt = &store_dir;
		else if (strcmp(a, "--scope") == 0)
			opt = &scope;
		else if (strcmp(a, "--endpoint") == 0)
			opt = &endpoint;
		else if (strcmp(a, "--timeout") == 0)
			opt = &timeout;
		else if (strcmp(a, "--reminders") == 0)
			opt = &reminders;
		else if (strcmp(a, "--since") == 0)
			opt = &since;
		else if (strcmp(a, "--rule") == 0)
			opt = &rule;
		else if (strcmp(a, "--count") == 0)
			opt = &count;
		else if (strcmp(a, "--state") == 0)
			opt = &state;
		else if (strcmp(a, "--key-file") == 0)
			opt = &key_file;
		else if (strcmp(a, "--credential") == 0)
			opt = &credential;
		else if (strcmp(a, "--key-id") == 0)
			opt = &key_id;
		else if (strcmp(a, "--new-key-file") == 0)
			opt = &new_key_file;
		if (opt != NULL) {
			if (i + 1 >= argc)
				return usage("an option needs a value");
			*opt = argv[++i];
			continue;
		}
		if (a[0] == '-' && a[1] == '-')
			return usage("unknown option");
		if (npos == 4)
			return usage("too many arguments");
		pos[npos++] = a;
	}
	if (npos == 0)
		return usage(NULL);
	if (strcmp(pos[0], "watch") == 0) { /* needs no store */
		if (npos != 1 || timeout != NULL || key_id || new_key_file)
			return usage("watch takes options only");
		return cmd_watch(endpoint, reminders, since, rule, scope, json, count, state,
		                 credential);
	}
	if (strcmp(pos[0], "keygen") == 0) { /* needs no store either */
		if (npos != 1 || scope || endpoint || timeout || json || credential ||
		    new_key_file || reminders || since || rule || count || state)
			return usage("keygen takes --key-file FILE and --key-id ID only");
		return cmd_keygen(key_file, key_id);
	}
	if (reminders || since || rule || count || state || key_id)
		return usage("option not valid for this command");
	if (store_dir == NULL || store_dir[0] == '\0')
		return usage("no store: give --store DIR or set FIELDSYNC_STORE");

	const char *cmd = pos[0];
	struct {
		const char *name;
		int args;
		bool scope, json, sync;
	} const cmds[] = {
		{"init", 0, true, false, false},     {"put", 2, true, false, false},
		{"get", 2, false, true, false},      {"delete", 2, false, false, false},
		{"list", 1, false, false, false},    {"conflicts", 0, false, true, false},
		{"resolve", 2, false, false, false}, {"sync", 0, false, false, true},
		{"status", 0, false, true, false},   {"rekey", 0, false, false, false},
	};
	int k = -1;
	for (int i = 0; i < (int)(sizeof(cmds) / sizeof(cmds[0])); i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			k = i;
	if (k < 0)
		return usage("unknown command");
	if (npos - 1 != cmds[k].args)
		return usage("wrong number of arguments");
	if ((scope && !cmds[k].scope) || (json && !cmds[k].json) ||
	    ((endpoint || timeout) && !cmds[k].sync) || (credential && strcmp(cmd, "init") != 0) ||
	    (new_key_file && strcmp(cmd, "rekey") != 0))
		return usage("option not valid for this command");

	if (strcmp(cmd, "init") == 0)
		return cmd_init(store_dir, scope, key_file, credential);
	if (strcmp(cmd, "rekey") == 0 && (new_key_file == NULL || key_file == NULL))
		return usage("rekey needs --key-file CURRENT and --new-key-file NEW");

	double timeout_s = 30.0;
	if (cmds[k].sync) {
		if (timeout != NULL) {
			char *end = NULL;
			errno = 0;
			timeout_s = strtod(timeout, &end);
			if (errno || end == timeout || *end != '\0' || !(timeout_s > 0) ||
			    timeout_s > 86400)
				return usage("--timeout takes seconds, e.g. 30 or 2.5");
		}
	}

	memset(&so, 0, sizeof(so));
	memset(&m, 0, sizeof(m));
	if (key_file != NULL) {
		if (!load_key(key_file, &m))
			return EX_USAGE;
		so.key = m.key;
		so.key_len = sizeof(m.key);
		so.key_id = m.id;
	}
	fs_err e = fs_store_open_ex(store_dir, &so, &s);
	fsc_cleanse(&m, sizeof(m)); /* the store keeps its own copy */
	if (e == FS_ERR_NOT_FOUND) {
		fprintf(stderr,
		        "fieldsync: no store at %s; run `fieldsync --store %s init` first\n",
		        store_dir, store_dir);
		return EX_FAIL;
	}
	if (e == FS_ERR_KEY_REQUIRED) {
		fprintf(stderr,
		        "fieldsync: the store at %s is encrypted: give --key-file FILE or set "
		        "FIELDSYNC_STORE_KEY_FILE\n",
		        store_dir);
		return EX_USAGE;
	}
	if (e == FS_ERR_KEY_WRONG) {
		fprintf(stderr,
		        "fieldsync: the key in %s does not open the store at %s (wrong key "
		        "or key id)\n",
		        key_file, store_dir);
		return EX_USAGE;
	}
	if (e == FS_ERR_NOT_ENCRYPTED) {
		fprintf(stderr,
		        "fieldsync: the store at %s is not encrypted; drop --key-file "
		        "(and FIELDSYNC_STORE_KEY_FILE) to use it\n",
		        store_dir);
		return EX_USAGE;
	}
	if (e != FS_OK)
		return fail("open store", e);

	if (strcmp(cmd, "put") == 0 || strcmp(cmd, "resolve") == 0)
		rc = cmd_write(s, cmd, pos[1], pos[2], scope);
	else if (strcmp(cmd, "get") == 0)
		rc = cmd_get(s, pos[1], pos[2], json);
	else if (strcmp(cmd, "delete") == 0)
		rc = (e = fs_delete(s, pos[1], pos[2])) == FS_OK ? 0 : fail("delete", e);
	else if (strcmp(cmd, "list") == 0)
		rc = cmd_list(s, pos[1]);
	else if (strcmp(cmd, "conflicts") == 0)
		rc = cmd_conflicts(s, json);
	else if (strcmp(cmd, "sync") == 0)
		rc = cmd_sync(s, endpoint, timeout_s);
	else if (strcmp(cmd, "rekey") == 0)
		rc = cmd_rekey(s, new_key_file);
	else
		rc = cmd_status(s, json);
	fs_store_close(&s);
	return rc;
}
