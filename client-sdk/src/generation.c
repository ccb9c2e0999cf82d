/*
 * generation.c - adopting a new daemon generation (re-pull, re-push) and
 * the device report of Hello. See generation.h; the store's layout is in
 * the design note atop store.c (meta "generation").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "generation.h"
#include "outbox.h"

#define GENERATION_MAX 64

/* True when the sibling was written by this device: the SDK writes its
 * replica id as modified_by, the daemon the device name (or, in --dev, the
 * replica id again). */
static bool
authored(const fs_store *s, const fsp_record *r, const char *device_name)
{
	if (r == NULL || r->modified_by == NULL || r->modified_by[0] == '\0')
		return false;
	return strcmp(r->modified_by, s->replica) == 0 ||
	       (device_name != NULL && device_name[0] != '\0' &&
	        strcmp(r->modified_by, device_name) == 0);
}

/* Puts every authored current value without an outbox entry back in it.
 * Payloads stay as stored (sealed in an encrypted store: the outbox seals
 * with the same key and AAD). */
static int
requeue_authored(fs_store *s, MDB_txn *t, const char *device_name, uint64_t *n)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc = mdb_cursor_open(t, s->records, &c);
	if (rc != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		MDB_val ob;
		if (mdb_get(t, s->outbox, &k, &ob) == MDB_SUCCESS)
			continue; /* a newer local value waits already */
		sdk_record_state *rs =
			fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
		if (rs == NULL)
			continue; /* reading it reports the damage; nothing to push */
		for (size_t i = 0; i < rs->n_siblings && rc == MDB_SUCCESS; i++) {
			if (!authored(s, rs->siblings[i], device_name))
				continue;
			size_t len = fieldsync__v1__record__get_packed_size(rs->siblings[i]);
			uint8_t *buf = malloc(len ? len : 1);
			if (buf == NULL) {
				rc = ENOMEM;
				break;
			}
			fieldsync__v1__record__pack(rs->siblings[i], buf);
			MDB_val key = k;
			rc = sdk_ob_put(s, t, &key, OB_PENDING, NULL, NULL, buf, len);
			free(buf);
			if (rc == MDB_SUCCESS)
				(*n)++;
			break; /* one outbox entry per record */
		}
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
		if (rc != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

fs_err
sdk_generation_adopt(fs_store *s, const char *generation, const char *device_name, bool *changed,
                     uint64_t *requeued)
{
	MDB_txn *t = NULL;
	MDB_val k = {10, "generation"}, v;
	size_t gl = generation != NULL ? strlen(generation) : 0;
	int rc;

	*changed = false;
	*requeued = 0;
	if (gl == 0 || gl > GENERATION_MAX)
		return FS_OK; /* a daemon without generations (or a bad one): nothing to do */
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	rc = mdb_get(t, s->meta, &k, &v);
	if (rc == MDB_SUCCESS && v.mv_size == gl && memcmp(v.mv_data, generation, gl) == 0) {
		sdk_txn_abort(&t);
		return FS_OK;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		goto fail;
	if ((rc = sdk_meta_put_u64(s, t, "checkpoint", 0)) != MDB_SUCCESS ||
	    (rc = requeue_authored(s, t, device_name, requeued)) != MDB_SUCCESS ||
	    (rc = sdk_meta_put(s, t, "generation", generation, gl)) != MDB_SUCCESS)
		goto fail;
	*changed = true;
	return sdk_txn_commit(&t);
fail:
	sdk_txn_abort(&t);
	*requeued = 0;
	return sdk_map_rc(rc);
}

fs_err
sdk_device_report(fs_store *s, uint64_t *pending, int64_t *oldest_pending_ms, uint64_t *failed,
                  uint64_t *checkpoint)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc;

	*pending = *failed = *checkpoint = 0;
	*oldest_pending_ms = 0;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	if ((rc = sdk_meta_get_u64(s, t, "checkpoint", checkpoint)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->outbox, &c)) != MDB_SUCCESS)
		goto out;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_ob_entry e;
		if (!sdk_ob_decode(&d, &e))
			continue;
		if (e.state == OB_PARKED) {
			(*failed)++;
			continue;
		}
		(*pending)++;
		fsp_record *r = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
		if (r == NULL)
			continue;
		if (r->modified_at_ms > 0 &&
		    (*oldest_pending_ms == 0 || r->modified_at_ms < *oldest_pending_ms))
			*oldest_pending_ms = r->modified_at_ms;
		fieldsync__v1__record__free_unpacked(r, NULL);
	}
	if (rc == MDB_NOTFOUND)
		rc = MDB_SUCCESS;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	sdk_txn_abort(&t);
	return sdk_map_rc(rc);
}
