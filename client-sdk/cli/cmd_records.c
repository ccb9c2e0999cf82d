/*
 * cmd_records.c: the record commands of the `fieldsync` CLI (put, get,
 * delete, list, conflicts, resolve): the value read from stdin (JSON for the
 * typed collections, raw bytes otherwise), the value printed back, the
 * sibling and conflict listings as JSON (one object per line). COLLECTION,
 * ID and --scope are checked here first, so a refusal names the one at
 * fault.
 *
 * Contract: each cmd_* takes an open store it does not close and returns an
 * exit status (cli.h); messages go to stderr and never quote a payload.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fieldsync/limits.h"
#include "fieldsync/merge.h"

#define STDIN_MAX (16u << 20)

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
	if (e == FS_ERR_NOMEM) {
		fprintf(stderr, "fieldsync: out of memory\n");
		return EX_FAIL;
	}
	if (e != FS_OK)
		return cli_usage_error("refused: the %s on stdin is not valid: %s; nothing was "
		                       "stored",
		                       collection, why);
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

/* COLLECTION, ID (when given) and --scope, each against its syntax. */
static int
check_names(const cli_opts *o)
{
	const char *coll = o->args[0], *id = o->nargs > 1 ? o->args[1] : NULL;
	if (!fsp_collection_valid(coll))
		return cli_usage_error("'%s' is not a collection name: use [a-z][a-z0-9_-]{0,63}, "
		                       "e.g. case, contact or notes",
		                       coll);
	if (id != NULL && (id[0] == '\0' || strlen(id) > FSP_ID_MAX))
		return cli_usage_error("the ID must be 1 to %d bytes long", FSP_ID_MAX);
	if (o->scope != NULL && !fsp_scope_valid(o->scope))
		return cli_usage_error("--scope '%s' is not a scope name: use "
		                       "[a-z0-9][a-z0-9._-]{0,63}, e.g. team-north",
		                       o->scope);
	return 0;
}

/* {"collection":..,"id":..,"scope":..,"version":{..}} of the record as it
 * is now (put --json). */
static int
print_written(fs_store *s, const char *coll, const char *id)
{
	fs_record *r = NULL;
	fs_sibling sb;
	fs_err e = fs_get(s, coll, id, &r);
	if (e != FS_OK)
		return cli_fail("get", e);
	cJSON *o = cJSON_CreateObject();
	if (o != NULL) {
		cJSON_AddStringToObject(o, "collection", fs_record_collection(r));
		cJSON_AddStringToObject(o, "id", fs_record_id(r));
		cJSON_AddStringToObject(o, "scope", fs_record_scope(r));
		fs_record_sibling(r, 0, &sb);
		cJSON_AddItemToObject(o, "version", version_json(sb.version));
		cli_add_raw_int(o, "modified_at_ms", sb.modified_at_ms);
	}
	fs_record_free(&r);
	return cli_print_json(o);
}

int
cmd_write(fs_store *s, const cli_opts *o)
{
	const char *coll = o->args[0], *id = o->args[1];
	uint8_t *p = NULL;
	size_t n = 0;
	fs_err e;
	int rc = check_names(o);
	if (rc != 0)
		return rc;
	if ((rc = value_from_stdin(coll, &p, &n)) != 0)
		return rc;
	if (strcmp(o->cmd, "resolve") == 0)
		e = fs_resolve(s, coll, id, p, n);
	else
		e = fs_put(s, coll, id, o->scope, p, n);
	free(p);
	if (e == FS_ERR_INVALID)
		return cli_usage_error("%s %s/%s: the store refused the value; nothing was stored",
		                       o->cmd, coll, id);
	if (e == FS_ERR_NOT_FOUND && strcmp(o->cmd, "resolve") == 0) {
		fprintf(stderr, "fieldsync: resolve: no record %s/%s; use put to create it\n", coll,
		        id);
		return EX_NOTFOUND;
	}
	if (e != FS_OK)
		return cli_fail(o->cmd, e);
	return o->json ? print_written(s, coll, id) : 0;
}

int
cmd_get(fs_store *s, const cli_opts *o)
{
	const char *coll = o->args[0], *id = o->args[1];
	fs_record *r = NULL;
	bool json = o->json, typed = fs_collection_typed(coll);
	int rc = check_names(o);
	if (rc != 0)
		return rc;
	fs_err e = fs_get(s, coll, id, &r);
	if (e != FS_OK)
		return cli_fail("get", e);
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
				rc = cli_fail("get", e);
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
	cJSON *jo = cJSON_CreateObject(), *arr;
	if (jo == NULL) {
		rc = EX_FAIL;
		goto out;
	}
	cJSON_AddStringToObject(jo, "collection", fs_record_collection(r));
	cJSON_AddStringToObject(jo, "id", fs_record_id(r));
	cJSON_AddStringToObject(jo, "scope", fs_record_scope(r));
	cJSON_AddBoolToObject(jo, "conflict", n > 1);
	arr = cJSON_AddArrayToObject(jo, "siblings");
	for (size_t i = 0; arr != NULL && i < n; i++) {
		fs_sibling sb;
		cJSON *j = cJSON_CreateObject();
		if (j == NULL)
			break;
		cJSON_AddItemToArray(arr, j);
		fs_record_sibling(r, i, &sb);
		cJSON_AddItemToObject(j, "version", version_json(sb.version));
		cJSON_AddBoolToObject(j, "deleted", sb.deleted);
		cli_add_raw_int(j, "modified_at_ms", sb.modified_at_ms);
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
	rc = cli_print_json(jo);
out:
	fs_record_free(&r);
	return rc;
}

/* One object per record: {"collection","id","scope","siblings"}. */
static int
print_items(const fs_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		cJSON *j = cJSON_CreateObject();
		if (j != NULL) {
			cJSON_AddStringToObject(j, "collection", l->items[i].collection);
			cJSON_AddStringToObject(j, "id", l->items[i].id);
			cJSON_AddStringToObject(j, "scope", l->items[i].scope);
			cli_add_raw_int(j, "siblings", (int64_t)l->items[i].siblings);
		}
		int rc = cli_print_json(j);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
cmd_list(fs_store *s, const cli_opts *o)
{
	fs_list *l = NULL;
	int rc = check_names(o);
	if (rc != 0)
		return rc;
	fs_err e = fs_list_collection(s, o->args[0], &l);
	if (e != FS_OK)
		return cli_fail("list", e);
	if (o->json) {
		rc = print_items(l);
	} else {
		for (size_t i = 0; i < l->n; i++)
			puts(l->items[i].id);
		rc = fflush(stdout) == 0 ? 0 : EX_FAIL;
	}
	fs_list_free(&l);
	return rc;
}

int
cmd_conflicts(fs_store *s, const cli_opts *o)
{
	fs_list *l = NULL;
	int rc = 0;
	fs_err e = fs_list_conflicts(s, &l);
	if (e != FS_OK)
		return cli_fail("conflicts", e);
	if (o->json) {
		rc = print_items(l);
	} else {
		for (size_t i = 0; i < l->n; i++)
			printf("%s\t%s\t%zu\n", l->items[i].collection, l->items[i].id,
			       l->items[i].siblings);
		rc = fflush(stdout) == 0 ? 0 : EX_FAIL;
	}
	fs_list_free(&l);
	return rc;
}

int
cmd_delete(fs_store *s, const cli_opts *o)
{
	int rc = check_names(o);
	if (rc != 0)
		return rc;
	fs_err e = fs_delete(s, o->args[0], o->args[1]);
	if (e != FS_OK)
		return cli_fail("delete", e);
	if (!o->json)
		return 0;
	cJSON *j = cJSON_CreateObject();
	if (j != NULL) {
		cJSON_AddStringToObject(j, "collection", o->args[0]);
		cJSON_AddStringToObject(j, "id", o->args[1]);
		cJSON_AddBoolToObject(j, "deleted", true);
	}
	return cli_print_json(j);
}
