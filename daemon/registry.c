/*
 * registry: the enrolled devices (data layer). See registry.h.
 *
 * NOTES: Two tables of the store, written in one transaction:
 *   devices       client public key (Z85, 40 bytes) -> DeviceRow (storage.proto)
 *   device_names  device name -> client public key
 * Invariants: every name maps to exactly one key and back (auth_device_put
 * refuses to give a name to a second key); a row is never deleted, revoking
 * sets `revoked`, so names are never reused and stay audit identities. The
 * client secret key is never stored anywhere by the daemon. Admin commands
 * (another process) write the registry while the daemon runs; LMDB
 * serialises the writers, and every reader sees the last commit.
 *
 * Device reports (registry_seen_*) live in DATA_DIR/seen, a STORE_PLAIN
 * environment, its unnamed table: key (device name or "replica:<id>")
 * -> [u8 1][i64 LE last_seen_ms][u8 has_report][u64 LE pending]
 *    [i64 LE oldest_pending_ms][u64 LE failed][u64 LE last_seq][client].
 * Last write wins; nothing else reads or writes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <zmq.h>

#include "fieldsync/keys.h"
#include "log.h"
#include "registry.h"
#include "storage.pb-c.h"

typedef Fieldsyncd__Store__DeviceRow device_row;

const store_table registry_devices_table = {"devices"};
const store_table registry_names_table = {"device_names"};

static bool
name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > AUTH_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		          (i > 0 && (c == '.' || c == '_' || c == '-'));
		if (!ok)
			return false;
	}
	return true;
}

/* True for 40 characters of Z85 that decode to 32 bytes. */
bool
registry_key_valid(const char *z)
{
	uint8_t bin[32];
	if (z == NULL || strlen(z) != AUTH_Z85_KEY_LEN)
		return false;
	return zmq_z85_decode(bin, z) != NULL;
}

/* ---- the registry -------------------------------------------------------- */

/* Decodes a stored row; FSD_CORRUPT when it does not fit a device_info. */
static fsd_err
row_decode(const void *val, size_t vlen, device_info *out)
{
	device_row *row = fieldsyncd__store__device_row__unpack(NULL, vlen, val);
	fsd_err rc = FSD_CORRUPT;

	memset(out, 0, sizeof(*out));
	if (row == NULL)
		return FSD_CORRUPT;
	if (strlen(row->name) > AUTH_NAME_MAX || strlen(row->public_key) != AUTH_Z85_KEY_LEN ||
	    row->n_scopes > AUTH_SCOPES_MAX || row->role > ROLE_SCHEDULER)
		goto out;
	for (size_t i = 0; i < row->n_scopes; i++) {
		if (strlen(row->scopes[i]) > FSP_SCOPE_MAX)
			goto out;
		strcpy(out->scopes[i], row->scopes[i]);
	}
	strcpy(out->name, row->name);
	strcpy(out->public_key, row->public_key);
	out->role = (device_role)row->role;
	out->n_scopes = row->n_scopes;
	out->revoked = row->revoked;
	out->enrolled_at_ms = row->enrolled_at_ms;
	out->revoked_at_ms = row->revoked_at_ms;
	rc = FSD_OK;
out:
	fieldsyncd__store__device_row__free_unpacked(row, NULL);
	return rc;
}

fsd_err
registry_device_by_key(store_txn *t, const char *public_key, device_info *out)
{
	const void *val;
	size_t vlen;
	fsd_err rc;

	if (public_key == NULL || strlen(public_key) != AUTH_Z85_KEY_LEN)
		return FSD_NOTFOUND;
	rc = store_kv_get(t, &registry_devices_table, public_key, AUTH_Z85_KEY_LEN, &val, &vlen);
	if (rc != FSD_OK)
		return rc;
	if ((rc = row_decode(val, vlen, out)) != FSD_OK ||
	    strcmp(out->public_key, public_key) != 0) {
		log_event(LOG_ERROR, "a device registry row does not decode", NULL);
		return FSD_CORRUPT;
	}
	return FSD_OK;
}

fsd_err
registry_device_by_name(store_txn *t, const char *name, device_info *out)
{
	char key[AUTH_Z85_KEY_LEN + 1];
	const void *val;
	size_t vlen;
	fsd_err rc;

	if (name == NULL || !name_valid(name))
		return FSD_NOTFOUND;
	rc = store_kv_get(t, &registry_names_table, name, strlen(name), &val, &vlen);
	if (rc != FSD_OK)
		return rc;
	if (vlen != AUTH_Z85_KEY_LEN)
		return FSD_CORRUPT;
	memcpy(key, val, AUTH_Z85_KEY_LEN);
	key[AUTH_Z85_KEY_LEN] = '\0';
	if ((rc = registry_device_by_key(t, key, out)) == FSD_NOTFOUND)
		return FSD_CORRUPT; /* a name without its row */
	if (rc == FSD_OK && strcmp(out->name, name) != 0)
		return FSD_CORRUPT;
	return rc;
}

fsd_err
registry_device_put(store_txn *t, const device_info *d)
{
	device_row row = FIELDSYNCD__STORE__DEVICE_ROW__INIT;
	char *scopes[AUTH_SCOPES_MAX];
	const void *val;
	size_t vlen, len;
	uint8_t *buf;
	fsd_err rc;

	if (!name_valid(d->name) || !registry_key_valid(d->public_key) || d->n_scopes == 0 ||
	    d->n_scopes > AUTH_SCOPES_MAX ||
	    (d->role != ROLE_DEVICE && d->role != ROLE_SCHEDULER)) {
		log_event(LOG_ERROR, "registry_device_put: invalid device", NULL);
		return FSD_INVALID;
	}
	for (size_t i = 0; i < d->n_scopes; i++) {
		if (!fsp_scope_valid(d->scopes[i])) {
			log_event(LOG_ERROR, "registry_device_put: invalid scope", NULL);
			return FSD_INVALID;
		}
		scopes[i] = (char *)d->scopes[i];
	}
	rc = store_kv_get(t, &registry_names_table, d->name, strlen(d->name), &val, &vlen);
	if (rc == FSD_OK && (vlen != AUTH_Z85_KEY_LEN || memcmp(val, d->public_key, vlen) != 0)) {
		log_event(LOG_ERROR, "device name already belongs to another key",
		          LS("device", d->name), NULL);
		return FSD_INVALID;
	}
	if (rc != FSD_OK && rc != FSD_NOTFOUND)
		return rc;
	row.name = (char *)d->name;
	row.public_key = (char *)d->public_key;
	row.role = (uint32_t)d->role;
	row.n_scopes = d->n_scopes;
	row.scopes = scopes;
	row.revoked = d->revoked;
	row.enrolled_at_ms = d->enrolled_at_ms;
	row.revoked_at_ms = d->revoked_at_ms;
	len = fieldsyncd__store__device_row__get_packed_size(&row);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return FSD_ERROR;
	fieldsyncd__store__device_row__pack(&row, buf);
	rc = store_kv_put(t, &registry_devices_table, d->public_key, AUTH_Z85_KEY_LEN, buf, len,
	                  false);
	if (rc == FSD_OK)
		rc = store_kv_put(t, &registry_names_table, d->name, strlen(d->name), d->public_key,
		                  AUTH_Z85_KEY_LEN, false);
	free(buf);
	return rc;
}

struct list_walk {
	store_txn *t;
	registry_device_fn fn;
	void *arg;
	fsd_err rc;
};

static bool
list_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct list_walk *w = arg;
	char pk[AUTH_Z85_KEY_LEN + 1];
	device_info d;
	(void)key;
	(void)klen;
	if (vlen != AUTH_Z85_KEY_LEN) {
		w->rc = FSD_CORRUPT;
		return false;
	}
	memcpy(pk, val, AUTH_Z85_KEY_LEN);
	pk[AUTH_Z85_KEY_LEN] = '\0';
	if ((w->rc = registry_device_by_key(w->t, pk, &d)) != FSD_OK) {
		if (w->rc == FSD_NOTFOUND)
			w->rc = FSD_CORRUPT;
		return false;
	}
	return w->fn(w->arg, &d);
}

fsd_err
registry_device_list(store_txn *t, registry_device_fn fn, void *arg)
{
	struct list_walk w = {t, fn, arg, FSD_OK};
	fsd_err rc = store_kv_scan(t, &registry_names_table, NULL, 0, NULL, 0, list_one, &w);
	return rc != FSD_OK ? rc : w.rc;
}

bool
registry_has_scope(const device_info *d, const char *scope)
{
	for (size_t i = 0; i < d->n_scopes && i < AUTH_SCOPES_MAX; i++)
		if (strcmp(d->scopes[i], scope) == 0)
			return true;
	return false;
}

/* ---- device reports ------------------------------------------------------- */

#define SEEN_BATCH 4096
#define SEEN_FIXED 42 /* the value's bytes before the client string */

static const store_table seen_table = {NULL}; /* the unnamed table */

struct registry_seen {
	store *env;
	device_seen *batch;
	size_t n;
	int64_t last_flush_ms;
	bool warned_full;
};

registry_seen *
registry_seen_open(const char *data_dir)
{
	static const store_table *const tables[] = {&seen_table, NULL};
	char dir[600];
	registry_seen *rs = calloc(1, sizeof(*rs));
	if (rs == NULL || (rs->batch = calloc(SEEN_BATCH, sizeof(*rs->batch))) == NULL) {
		free(rs);
		return NULL;
	}
	snprintf(dir, sizeof(dir), "%s/seen", data_dir);
	rs->env = store_open_with(dir, 64ULL << 20, 64ULL << 20, tables, STORE_PLAIN);
	if (rs->env == NULL) {
		registry_seen_close(&rs);
		return NULL;
	}
	return rs;
}

void
registry_seen_close(registry_seen **rsp)
{
	if (rsp == NULL || *rsp == NULL)
		return;
	store_close(&(*rsp)->env);
	free((*rsp)->batch);
	free(*rsp);
	*rsp = NULL;
}

void
registry_seen_note(registry_seen *rs, const device_seen *d)
{
	if (rs == NULL)
		return;
	for (size_t i = 0; i < rs->n; i++)
		if (strcmp(rs->batch[i].key, d->key) == 0) {
			rs->batch[i] = *d;
			return;
		}
	if (rs->n == SEEN_BATCH) {
		if (!rs->warned_full)
			log_event(LOG_WARN,
			          "too many device reports between two writes; some dropped", NULL);
		rs->warned_full = true;
		return;
	}
	rs->batch[rs->n++] = *d;
}

static fsd_err
seen_put(store_txn *t, const device_seen *d)
{
	uint8_t v[SEEN_FIXED + REGISTRY_CLIENT_MAX];
	size_t cl = strnlen(d->client, REGISTRY_CLIENT_MAX);
	v[0] = 1;
	fsk_put_le64(v + 1, (uint64_t)d->last_seen_ms);
	v[9] = d->has_report;
	fsk_put_le64(v + 10, d->pending);
	fsk_put_le64(v + 18, (uint64_t)d->oldest_pending_ms);
	fsk_put_le64(v + 26, d->failed);
	fsk_put_le64(v + 34, d->last_seq);
	memcpy(v + SEEN_FIXED, d->client, cl);
	return store_kv_put(t, &seen_table, d->key, strlen(d->key), v, SEEN_FIXED + cl, false);
}

fsd_err
registry_seen_flush(registry_seen *rs, int64_t now_ms, int64_t min_interval_ms)
{
	store_txn *t = NULL;
	fsd_err rc;
	if (rs == NULL || rs->n == 0 || now_ms - rs->last_flush_ms < min_interval_ms)
		return FSD_OK;
	if ((rc = store_write_begin(rs->env, &t)) != FSD_OK)
		return rc;
	for (size_t i = 0; i < rs->n && rc == FSD_OK; i++)
		rc = seen_put(t, &rs->batch[i]);
	if (rc == FSD_OK)
		rc = store_commit(&t);
	else
		store_abort(&t);
	rs->last_flush_ms = now_ms;
	if (rc == FSD_OK) {
		rs->n = 0;
		rs->warned_full = false;
	}
	return rc;
}

struct seen_walk {
	registry_seen_fn fn;
	void *arg;
};

static bool
seen_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct seen_walk *w = arg;
	device_seen d;
	memset(&d, 0, sizeof(d));
	if (klen > REGISTRY_SEEN_KEY_MAX || vlen < SEEN_FIXED || val[0] != 1)
		return true; /* not ours: skipped */
	memcpy(d.key, key, klen);
	d.last_seen_ms = (int64_t)fsk_get_le64(val + 1);
	d.has_report = val[9] != 0;
	d.pending = fsk_get_le64(val + 10);
	d.oldest_pending_ms = (int64_t)fsk_get_le64(val + 18);
	d.failed = fsk_get_le64(val + 26);
	d.last_seq = fsk_get_le64(val + 34);
	size_t cl = vlen - SEEN_FIXED;
	if (cl > REGISTRY_CLIENT_MAX)
		cl = REGISTRY_CLIENT_MAX;
	memcpy(d.client, val + SEEN_FIXED, cl);
	return w->fn(w->arg, &d);
}

static fsd_err
seen_walk_env(store *env, registry_seen_fn fn, void *arg)
{
	store_txn *t = NULL;
	struct seen_walk w = {fn, arg};
	fsd_err rc = store_read_begin(env, &t);
	if (rc == FSD_OK) {
		rc = store_kv_scan(t, &seen_table, NULL, 0, NULL, 0, seen_row, &w);
		store_read_end(&t);
	}
	return rc;
}

fsd_err
registry_seen_walk(registry_seen *rs, registry_seen_fn fn, void *arg)
{
	return rs == NULL ? FSD_NOTFOUND : seen_walk_env(rs->env, fn, arg);
}

fsd_err
registry_seen_list(const char *data_dir, registry_seen_fn fn, void *arg)
{
	static const store_table *const tables[] = {&seen_table, NULL};
	char dir[600], path[700];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/seen", data_dir);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) != 0)
		return FSD_NOTFOUND;
	store *env = store_open_with(dir, 64ULL << 20, 64ULL << 20, tables, STORE_PLAIN);
	if (env == NULL)
		return FSD_IO;
	fsd_err rc = seen_walk_env(env, fn, arg);
	store_close(&env);
	return rc;
}

bool
registry_seen_at_risk(const device_seen *d, int64_t now_ms, int64_t at_risk_ms)
{
	if (now_ms - d->last_seen_ms > at_risk_ms)
		return true;
	return d->has_report && d->pending > 0 && d->oldest_pending_ms > 0 &&
	       now_ms - d->oldest_pending_ms > at_risk_ms;
}
