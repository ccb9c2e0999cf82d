/*
 * reminder_rows: the reminders' stored state: one row per reminder, its
 * timer, and the per-(rule, state) counters (data layer).
 *
 * Tables (declared here, opened by schema.c):
 *   reminders  [u8 len][case_id][reminder_id] (fsk_case_key, fieldsync/keys.h)
 *              -> ReminderRow (storage.proto),
 *              sealed with the case's data key (fss_dek_case: a purge
 *              destroys it with the case), the AAD being the row's key: the state last
 *              emitted, the times it was computed from, its next timer.
 *              The row under the bare case prefix (reminder_id "") is the
 *              case's held_at timer (reminders.c), never a reminder.
 *   timers     [u64 BE fire_ms][reminders key] -> "": the next instant at
 *              which a reminder's state changes with the clock alone.
 * meta "rem:<rule>:<state>" counts the reminders in each state (/metrics),
 * moved in the transaction that moves the reminder.
 *
 * What the rows mean (the state machine) is reminders.c's business. Writes
 * in the caller's write transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/keys.h"
#include "fieldsync/seal.h"
#include "keyring.h"
#include "reminder_rows.h"

const store_table reminders_table = {"reminders"};
const store_table reminders_timers_table = {"timers"};

#define KEY_MAX REMINDER_KEY_MAX

fsd_err
reminder_rows_timer_set(store_txn *t, const uint8_t *rkey, size_t rklen, int64_t old_fire,
                        int64_t new_fire)
{
	uint8_t key[8 + KEY_MAX];
	fsd_err rc = FSD_OK;
	if (old_fire == new_fire)
		return FSD_OK;
	memcpy(key + 8, rkey, rklen);
	if (old_fire > 0) {
		fsk_put_be64(key, (uint64_t)old_fire);
		rc = store_kv_del(t, &reminders_timers_table, key, 8 + rklen);
		if (rc == FSD_NOTFOUND)
			rc = FSD_OK;
	}
	if (rc == FSD_OK && new_fire > 0) {
		fsk_put_be64(key, (uint64_t)new_fire);
		rc = store_kv_put(t, &reminders_timers_table, key, 8 + rklen, "", 0, false);
	}
	return rc;
}

/* How many reminders are in each (rule, state), for /metrics: counters in
 * meta, moved in the transaction that moves the reminder. */
fsd_err
reminder_rows_count_add(store_txn *t, uint32_t rule, uint32_t state, int delta)
{
	char name[32];
	if (rule >= RULE_COUNT || state > FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED)
		return FSD_OK;
	snprintf(name, sizeof(name), "rem:%u:%u", rule, state);
	return store_meta_set_u64(t, name, store_meta_u64(t, name) + (uint64_t)(int64_t)delta);
}

uint64_t
reminder_rows_count(store_txn *t, int rule, int state)
{
	char name[32];
	snprintf(name, sizeof(name), "rem:%d:%d", rule, state);
	return store_meta_u64(t, name);
}

/* Reminder rows are sealed with their case's data key (a purge destroys
 * them with the case); the AAD is the row's key. */
fsd_err
reminder_rows_put(store_txn *t, const uint8_t *key, size_t klen, const reminder_row *row)
{
	size_t len = fieldsyncd__store__reminder_row__get_packed_size(row), sl = 0;
	uint8_t *buf = malloc(len ? len : 1), *sealed = NULL;
	char name[FSS_DEK_NAME_MAX + 1];
	fsd_err rc = FSD_ERROR;
	if (buf == NULL)
		return FSD_NOMEM;
	if (!fss_dek_case(row->case_id, name)) {
		free(buf);
		return FSD_INVALID;
	}
	fieldsyncd__store__reminder_row__pack(row, buf);
	rc = keyring_txn_seal(t, name, key, klen, buf, len, &sealed, &sl);
	if (rc == FSD_OK)
		rc = store_kv_put(t, &reminders_table, key, klen, sealed, sl, false);
	free(sealed);
	free(buf);
	return rc;
}

fsd_err
reminder_rows_get(store_txn *t, const uint8_t *key, size_t klen, reminder_row **out)
{
	const void *v;
	size_t vl, pl = 0;
	uint8_t *plain = NULL;
	fsd_err rc = store_kv_get(t, &reminders_table, key, klen, &v, &vl);
	*out = NULL;
	if (rc != FSD_OK)
		return rc;
	if ((rc = keyring_txn_unseal(t, key, klen, v, vl, &plain, &pl)) != FSD_OK)
		return rc;
	*out = fieldsyncd__store__reminder_row__unpack(NULL, pl, plain);
	free(plain);
	return *out == NULL ? FSD_CORRUPT : FSD_OK;
}

/* ---- re-sealing a case's rows (purge) ------------------------------------ */

struct reminder_rows_copy {
	uint8_t **keys, **vals;
	size_t *klens, *vlens;
	size_t n, cap;
	fsd_err failed; /* why the scan stopped early (FSD_OK: it did not) */
	store_txn *t;
};

/* Collects each reminder row of a case, opened (plaintext in memory). */
static bool
collect_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct reminder_rows_copy *r = arg;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		void *a = realloc(r->keys, cap * sizeof(*r->keys)),
		     *b = realloc(r->vals, cap * sizeof(*r->vals));
		void *c = realloc(r->klens, cap * sizeof(*r->klens)),
		     *d = realloc(r->vlens, cap * sizeof(*r->vlens));
		if (a)
			r->keys = a;
		if (b)
			r->vals = b;
		if (c)
			r->klens = c;
		if (d)
			r->vlens = d;
		if (!a || !b || !c || !d) {
			r->failed = FSD_NOMEM;
			return false;
		}
		r->cap = cap;
	}
	uint8_t *k = malloc(klen), *v = NULL;
	size_t vl = 0;
	fsd_err urc =
		k == NULL ? FSD_NOMEM : keyring_txn_unseal(r->t, key, klen, val, vlen, &v, &vl);
	if (urc != FSD_OK) {
		free(k);
		r->failed = urc; /* the caller gets the cause, not a bare FSD_ERROR */
		return false;
	}
	memcpy(k, key, klen);
	r->keys[r->n] = k;
	r->klens[r->n] = klen;
	r->vals[r->n] = v;
	r->vlens[r->n] = vl;
	r->n++;
	return true;
}

fsd_err
reminder_rows_copy_case(store_txn *t, const char *case_id, reminder_rows_copy **out)
{
	uint8_t prefix[KEY_MAX];
	size_t plen = fsk_case_key(prefix, sizeof(prefix), case_id, "");
	reminder_rows_copy *rows = NULL;
	*out = NULL;
	if (plen == 0)
		return FSD_INVALID;
	if ((rows = calloc(1, sizeof(*rows))) == NULL)
		return FSD_NOMEM;
	rows->t = t;
	fsd_err rc =
		store_kv_scan(t, &reminders_table, prefix, plen, prefix, plen, collect_row, rows);
	if (rc == FSD_OK && rows->failed != FSD_OK)
		rc = rows->failed;
	if (rc != FSD_OK) {
		reminder_rows_copy_free(&rows);
		return rc;
	}
	*out = rows;
	return FSD_OK;
}

fsd_err
reminder_rows_copy_write(store_txn *t, const char *case_id, const reminder_rows_copy *rows)
{
	char name[FSS_DEK_NAME_MAX + 1];
	fsd_err rc = fss_dek_case(case_id, name) ? FSD_OK : FSD_INVALID;
	for (size_t i = 0; rc == FSD_OK && i < rows->n; i++) {
		uint8_t *sealed = NULL;
		size_t sl = 0;
		rc = keyring_txn_seal(t, name, rows->keys[i], rows->klens[i], rows->vals[i],
		                      rows->vlens[i], &sealed, &sl);
		if (rc == FSD_OK)
			rc = store_kv_put(t, &reminders_table, rows->keys[i], rows->klens[i],
			                  sealed, sl, false);
		free(sealed);
	}
	return rc;
}

void
reminder_rows_copy_free(reminder_rows_copy **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	reminder_rows_copy *rows = *rp;
	for (size_t i = 0; i < rows->n; i++) {
		free(rows->keys[i]);
		free(rows->vals[i]);
	}
	free(rows->keys);
	free(rows->vals);
	free(rows->klens);
	free(rows->vlens);
	free(rows);
	*rp = NULL;
}

/* ---- verification (fieldsyncd verify) --------------------------------------- */

struct row_check {
	store_txn *t;
	const reminder_rows_check_fns *fns;
	size_t *n_rows;
	bool stop;
};

static bool
check_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct row_check *c = arg;
	char case_id[FSP_ID_MAX + 1], who[FSP_ID_MAX + RULES_ID_MAX + 40];
	size_t cl = klen > 0 ? key[0] : 0;

	(*c->n_rows)++;
	if (cl == 0 || cl > FSP_ID_MAX || 1 + cl > klen || klen - 1 - cl > RULES_ID_MAX ||
	    memchr(key + 1, '\0', klen - 1) != NULL) {
		c->fns->problem(c->fns->arg, "reminder row (malformed key)",
		                "its key does not parse");
		return true;
	}
	memcpy(case_id, key + 1, cl);
	case_id[cl] = '\0';
	snprintf(who, sizeof(who), "reminder row %.*s of case %s", (int)(klen - 1 - cl),
	         (const char *)key + 1 + cl, case_id);
	if (c->fns->row_case != NULL && !c->fns->row_case(c->fns->arg, case_id)) {
		c->stop = true;
		return false;
	}
	/* Sealed and no keyring to open it: what it holds cannot be checked. */
	if (store_keyring(store_txn_store(c->t)) == NULL && fss_classify(val, vlen) != FSS_PLAIN)
		return true;
	uint8_t *plain = NULL;
	size_t pl = 0;
	if (keyring_txn_unseal(c->t, key, klen, val, vlen, &plain, &pl) != FSD_OK) {
		c->fns->problem(c->fns->arg, who, "it does not open");
		return true;
	}
	reminder_row *row = fieldsyncd__store__reminder_row__unpack(NULL, pl, plain);
	free(plain);
	if (row == NULL)
		c->fns->problem(c->fns->arg, who, "it does not decode");
	else
		fieldsyncd__store__reminder_row__free_unpacked(row, NULL);
	return true;
}

fsd_err
reminder_rows_check(store_txn *t, const reminder_rows_check_fns *fns, size_t *n_rows)
{
	struct row_check c = {t, fns, n_rows, false};
	*n_rows = 0;
	fsd_err rc = store_kv_scan(t, &reminders_table, NULL, 0, NULL, 0, check_row, &c);
	return rc == FSD_OK && c.stop ? FSD_NOMEM : rc;
}
