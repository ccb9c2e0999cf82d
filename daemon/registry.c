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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

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
