/*
 * Deadlines on the tablet, offline (fieldsync.h: fs_deadlines; deadlines.h).
 *
 * fs_deadlines() reads, in one read transaction, the rule table and zone
 * the last Welcome carried (meta "dl_rules", "dl_zone", "dl_tzif"; before
 * any: METHOD.md's defaults in Europe/Copenhagen), every live `case` record
 * (or the one the filter names) and every live sibling of every `contact`,
 * and hands each case to the shared core's rules_evaluate() exactly as the
 * daemon's reminders.c does: every live case sibling that decodes, every
 * live contact sibling whose case_id names the case (a contact in conflict
 * contributes each sibling), at the caller's now_ms. What it lists is what
 * the daemon stores for the same data at the same instant: the started
 * reminders (rules_reminder.started) in the state rules_state_at() gives.
 *
 * Scope (METHOD.md reading 10): a case counts only the contacts stored in
 * its own scope (the record's scope equals the case record's), so a
 * contact of another team never counts for a case.
 *
 * The contacts of a case: until the store has an index of them
 * (fs_contacts_of_case), the contact collection is read once per call and
 * grouped by case_id (sorted), so a call costs one pass over the cases and
 * the contacts, O(n log n).
 *
 * Layer: operations (over records and the core's rules and calendar).
 * Nothing is cached between calls: a Welcome that changes the table is
 * used by the next call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deadlines.h"
#include "fieldsync/calendar.h"
#include "fieldsync/keys.h"
#include "fieldsync/rules.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "records.h"

#define DEFAULT_ZONE "Europe/Copenhagen"
#define META_RULES "dl_rules"
#define META_ZONE "dl_zone"
#define META_TZIF "dl_tzif"

/*
 * Europe/Copenhagen as a TZif image without transitions: CET with the EU
 * rule of its footer, exact from 1996 on. Used only by a tablet that has
 * neither synced yet nor a tz database.
 */
static const char builtin_copenhagen[] =
	"TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0" /* magic, version 2, reserved */
	"\0\0\0\0\0\0\0\0\0\0\0\0"            /* no UT/std indicators, leap seconds */
	"\0\0\0\0\0\0\0\1\0\0\0\4"            /* no transitions, 1 type, 4 chars */
	"\0\0\x0e\x10\0\0CET\0"               /* +3600 s, not DST, "CET" */
	"TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0" /* the 64-bit part: the same */
	"\0\0\0\0\0\0\0\0\0\0\0\0"
	"\0\0\0\0\0\0\0\1\0\0\0\4"
	"\0\0\x0e\x10\0\0CET\0"
	"\nCET-1CEST,M3.5.0,M10.5.0/3\n"; /* the footer: the EU rule */
#define BUILTIN_LEN (sizeof(builtin_copenhagen) - 1)

/* ---- the table and zone ------------------------------------------------- */

/* Meta value `name` into *out (malloc'd, NUL-terminated, *len bytes);
 * *out NULL when absent. */
static int
meta_read(fs_store *s, MDB_txn *t, const char *name, char **out, size_t *len)
{
	MDB_val k = {strlen(name), (void *)name}, d;
	int rc = mdb_get(t, s->meta, &k, &d);

	*out = NULL;
	*len = 0;
	if (rc == MDB_NOTFOUND)
		return MDB_SUCCESS;
	if (rc != MDB_SUCCESS)
		return rc;
	if ((*out = malloc(d.mv_size + 1)) == NULL)
		return ENOMEM;
	memcpy(*out, d.mv_data, d.mv_size);
	(*out)[d.mv_size] = '\0';
	*len = d.mv_size;
	return MDB_SUCCESS;
}

/* The zone from a name and TZif bytes (none: the tz database). */
static fs_tz *
zone_load(const char *name, const void *tzif, size_t len)
{
	if (tzif != NULL && len > 0)
		return tz_load_tzif(name, tzif, len, NULL, 0);
	return tz_load(name, NULL, 0);
}

typedef struct dl_env {
	rules_config rc;
	fs_tz *tz;
	bool from_daemon;
} dl_env;

static fs_err
env_load(fs_store *s, MDB_txn *t, dl_env *e)
{
	char *rules = NULL, *zone = NULL, *tzif = NULL;
	size_t rl, zl, tl;
	fs_err err = FS_OK;
	int rc;

	rules_config_default(&e->rc);
	e->tz = NULL;
	e->from_daemon = false;
	if ((rc = meta_read(s, t, META_RULES, &rules, &rl)) != MDB_SUCCESS ||
	    (rc = meta_read(s, t, META_ZONE, &zone, &zl)) != MDB_SUCCESS ||
	    (rc = meta_read(s, t, META_TZIF, &tzif, &tl)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if (rules != NULL && zone != NULL) {
		e->from_daemon = true;
		if (!rules_config_load_json(&e->rc, rules, NULL, 0) ||
		    (e->tz = zone_load(zone, tzif, tl)) == NULL)
			err = FS_ERR_CORRUPT;
		goto out;
	}
	e->tz = tz_load(DEFAULT_ZONE, NULL, 0);
	if (e->tz == NULL)
		e->tz = tz_load_tzif(DEFAULT_ZONE, (const uint8_t *)builtin_copenhagen, BUILTIN_LEN,
		                     NULL, 0);
	if (e->tz == NULL)
		err = FS_ERR_NOMEM;
out:
	free(rules);
	free(zone);
	free(tzif);
	if (err != FS_OK)
		tz_free(&e->tz);
	return err;
}

/* Whether meta `name` holds exactly data[0..len) (absent: len 0). */
static bool
meta_equal(fs_store *s, MDB_txn *t, const char *name, const void *data, size_t len)
{
	MDB_val k = {strlen(name), (void *)name}, d;
	int rc = mdb_get(t, s->meta, &k, &d);
	if (rc == MDB_NOTFOUND)
		return len == 0;
	return rc == MDB_SUCCESS && d.mv_size == len &&
	       (len == 0 || memcmp(d.mv_data, data, len) == 0);
}

static int
meta_set(fs_store *s, MDB_txn *t, const char *name, const void *data, size_t len)
{
	if (len > 0)
		return sdk_meta_put(s, t, name, data, len);
	MDB_val k = {strlen(name), (void *)name};
	int rc = mdb_del(t, s->meta, &k, NULL);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

fs_err
sdk_deadlines_welcome(fs_store *s, const Fieldsync__V1__Welcome *w)
{
	rules_config rc;
	fs_tz *tz;
	MDB_txn *t = NULL;
	int mrc;

	if (w->deadline_rules == NULL || w->deadline_rules[0] == '\0' || w->time_zone == NULL ||
	    w->time_zone[0] == '\0')
		return FS_OK; /* an older daemon: keep what we have */
	rules_config_default(&rc);
	if (!rules_config_load_json(&rc, w->deadline_rules, NULL, 0))
		return FS_OK;
	tz = zone_load(w->time_zone, w->time_zone_tzif.data, w->time_zone_tzif.len);
	if (tz == NULL)
		return FS_OK; /* not a zone we can use: the old one stays */
	tz_free(&tz);

	size_t rl = strlen(w->deadline_rules), zl = strlen(w->time_zone);
	if ((mrc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(mrc);
	if (meta_equal(s, t, META_RULES, w->deadline_rules, rl) &&
	    meta_equal(s, t, META_ZONE, w->time_zone, zl) &&
	    meta_equal(s, t, META_TZIF, w->time_zone_tzif.data, w->time_zone_tzif.len)) {
		sdk_txn_abort(&t); /* the same as last time: no commit */
		return FS_OK;
	}
	if ((mrc = meta_set(s, t, META_RULES, w->deadline_rules, rl)) != MDB_SUCCESS ||
	    (mrc = meta_set(s, t, META_ZONE, w->time_zone, zl)) != MDB_SUCCESS ||
	    (mrc = meta_set(s, t, META_TZIF, w->time_zone_tzif.data, w->time_zone_tzif.len)) !=
	            MDB_SUCCESS) {
		sdk_txn_abort(&t);
		return sdk_map_rc(mrc);
	}
	return sdk_txn_commit(&t);
}

/* ---- the local data ------------------------------------------------------ */

/* One live contact sibling, for its case. */
typedef struct dl_contact {
	const char *case_id; /* the sibling's */
	const char *id;      /* the record's */
	const char *scope;   /* the record's */
	Fieldsync__V1__Contact *c;
} dl_contact;

typedef struct dl_data {
	sdk_record_state **states; /* contact records (own the strings above) */
	char **ids;
	size_t n_states, cap_states;
	dl_contact *contacts;
	size_t n_contacts, cap_contacts;
} dl_data;

static void
data_free(dl_data *d)
{
	for (size_t i = 0; i < d->n_contacts; i++)
		fieldsync__v1__contact__free_unpacked(d->contacts[i].c, NULL);
	for (size_t i = 0; i < d->n_states; i++) {
		fieldsync__v1__record_state__free_unpacked(d->states[i], NULL);
		free(d->ids[i]);
	}
	free(d->contacts);
	free(d->states);
	free(d->ids);
	memset(d, 0, sizeof(*d));
}

static bool
grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t nc = *cap ? *cap * 2 : 64;
	void *q = realloc(*p, nc * size);
	if (q == NULL)
		return false;
	*p = q;
	*cap = nc;
	return true;
}

static int
by_case_id(const void *a, const void *b)
{
	return strcmp(((const dl_contact *)a)->case_id, ((const dl_contact *)b)->case_id);
}

/* Every live contact sibling of the store, sorted by case_id. */
static fs_err
contacts_load(fs_store *s, MDB_txn *t, dl_data *d)
{
	uint8_t prefix[1 + FSP_COLLECTION_MAX];
	size_t plen = fsk_record_prefix(prefix, "contact");
	MDB_cursor *c = NULL;
	MDB_val k = {plen, prefix}, v;
	int rc = mdb_cursor_open(t, s->records, &c);

	for (rc = rc == MDB_SUCCESS ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : rc;
	     rc == MDB_SUCCESS; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
		sdk_record_state *rs = NULL;
		if (k.mv_size <= plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (!fsk_record_key_split(k.mv_data, k.mv_size, coll, id))
			continue;
		if ((rc = sdk_record_load(s, t, k.mv_data, k.mv_size, &rs)) != MDB_SUCCESS)
			break;
		if (rs == NULL)
			continue;
		size_t cap = d->cap_states;
		char **ids = NULL;
		if (grow((void **)&d->states, &d->cap_states, d->n_states, sizeof(*d->states)) &&
		    (cap == d->cap_states ||
		     (ids = realloc(d->ids, d->cap_states * sizeof(*d->ids))) != NULL)) {
			if (ids != NULL)
				d->ids = ids;
		} else {
			d->cap_states = cap; /* d->ids still holds cap entries */
			fieldsync__v1__record_state__free_unpacked(rs, NULL);
			rc = ENOMEM;
			break;
		}
		d->states[d->n_states] = rs;
		if ((d->ids[d->n_states] = strdup(id)) == NULL) {
			fieldsync__v1__record_state__free_unpacked(rs, NULL);
			rc = ENOMEM;
			break;
		}
		d->n_states++;
		for (size_t i = 0; i < rs->n_siblings; i++) {
			const Fieldsync__V1__Record *r = rs->siblings[i];
			if (r->deleted)
				continue;
			Fieldsync__V1__Contact *ct =
				fieldsync__v1__contact__unpack(NULL, r->payload.len,
			                                       r->payload.data);
			if (ct == NULL)
				continue; /* checked on the way in; skip rather than fail */
			if (!grow((void **)&d->contacts, &d->cap_contacts, d->n_contacts,
			          sizeof(*d->contacts))) {
				fieldsync__v1__contact__free_unpacked(ct, NULL);
				rc = ENOMEM;
				break;
			}
			d->contacts[d->n_contacts++] =
				(dl_contact){ct->case_id, d->ids[d->n_states - 1],
			                     rs->scope ? rs->scope : "", ct};
		}
		if (rc == ENOMEM)
			break;
	}
	if (c != NULL)
		mdb_cursor_close(c);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return sdk_map_rc(rc);
	if (d->n_contacts > 1)
		qsort(d->contacts, d->n_contacts, sizeof(*d->contacts), by_case_id);
	return FS_OK;
}

/* ---- the list ------------------------------------------------------------ */

typedef struct dl_out {
	fs_deadline_list *l;
	size_t cap;
} dl_out;

static const char *
state_name(reminder_state st)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		&fieldsync__v1__reminder_event__state__descriptor, (int)st);
	return v != NULL ? v->name : "UNKNOWN";
}

static bool
out_add(dl_out *o, const rules_reminder *r, reminder_state st, const char *case_id,
        const char *scope)
{
	fs_deadline_list *l = o->l;
	if (!grow((void **)&l->items, &o->cap, l->n, sizeof(*l->items)))
		return false;
	fs_deadline *it = &l->items[l->n];
	memset(it, 0, sizeof(*it));
	it->reminder_id = strdup(r->reminder_id);
	it->rule = rule_name(r->rule); /* static */
	it->case_id = strdup(case_id);
	it->scope = strdup(scope);
	it->contact_person = strdup(r->contact_person);
	it->state = state_name(st); /* static */
	it->due_at_ms = r->due_at_ms;
	it->due_day_ms = r->due_day_ms;
	it->warning_at_ms = r->warning_at_ms;
	l->n++;
	return it->reminder_id && it->case_id && it->scope && it->contact_person;
}

static void
next_change(fs_deadline_list *l, int64_t t)
{
	if (t > 0 && (l->next_change_ms == 0 || t < l->next_change_ms))
		l->next_change_ms = t;
}

/* One case: its reminders at now into o, filtered. */
static fs_err
case_eval(const dl_env *e, const sdk_record_state *rs, const char *case_id, const dl_data *d,
          int64_t now, const fs_deadline_filter *f, dl_out *o)
{
	Fieldsync__V1__Case **cases = calloc(rs->n_siblings + 1, sizeof(*cases));
	rules_contact *rcs = NULL;
	rules_reminder *rems = NULL;
	size_t n_cases = 0, n_rcs = 0, lo = 0, hi = d->n_contacts, cap = 32, n;
	const char *scope = rs->scope ? rs->scope : "";
	int64_t next_eval = 0;
	fs_err err = FS_OK;

	if (cases == NULL)
		return FS_ERR_NOMEM;
	for (size_t i = 0; i < rs->n_siblings; i++) {
		const Fieldsync__V1__Record *r = rs->siblings[i];
		if (r->deleted)
			continue;
		Fieldsync__V1__Case *c =
			fieldsync__v1__case__unpack(NULL, r->payload.len, r->payload.data);
		if (c != NULL)
			cases[n_cases++] = c;
	}
	if (n_cases == 0)
		goto out; /* deleted, or nothing decodes: no reminders */
	while (lo < hi) { /* the first contact of this case */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(d->contacts[mid].case_id, case_id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (hi = lo; hi < d->n_contacts && strcmp(d->contacts[hi].case_id, case_id) == 0; hi++)
		;
	if (hi > lo && (rcs = calloc(hi - lo, sizeof(*rcs))) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	for (size_t i = lo; i < hi; i++)
		if (strcmp(d->contacts[i].scope, scope) == 0) /* reading 10 */
			rcs[n_rcs++] = (rules_contact){d->contacts[i].id, d->contacts[i].c};

	rules_input in = {
		.case_id = case_id,
		.cases = (const Fieldsync__V1__Case *const *)cases,
		.n_cases = n_cases,
		.contacts = rcs,
		.n_contacts = n_rcs,
	};
	for (;;) {
		rules_reminder *g = realloc(rems, cap * sizeof(*rems));
		if (g == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		rems = g;
		n = rules_evaluate(&e->rc, e->tz, &in, now, rems, cap, &next_eval);
		if (n <= cap)
			break;
		cap = n;
	}
	next_change(o->l, next_eval);
	for (size_t i = 0; i < n; i++) {
		const rules_reminder *r = &rems[i];
		if (!r->started) /* reading 7: the daemon has no row for it either */
			continue;
		reminder_state st = rules_state_at(r, now);
		if (f->contact_person != NULL && strcmp(f->contact_person, r->contact_person) != 0)
			continue;
		if (f->due_within_ms > 0 && (st == FIELDSYNC__V1__REMINDER_EVENT__STATE__MET ||
		                             r->due_at_ms - now > f->due_within_ms))
			continue;
		next_change(o->l, rules_next_change(r, now));
		if (!out_add(o, r, st, case_id, scope)) {
			err = FS_ERR_NOMEM;
			goto out;
		}
	}
out:
	for (size_t i = 0; i < n_cases; i++)
		fieldsync__v1__case__free_unpacked(cases[i], NULL);
	free(cases);
	free(rcs);
	free(rems);
	return err;
}

static int
group(const fs_deadline *d)
{
	if (strcmp(d->state, "OVERDUE") == 0)
		return 0;
	return strcmp(d->state, "MET") == 0 ? 2 : 1;
}

static int
by_urgency(const void *a, const void *b)
{
	const fs_deadline *x = a, *y = b;
	int gx = group(x), gy = group(y);
	if (gx != gy)
		return gx < gy ? -1 : 1;
	if (x->due_at_ms != y->due_at_ms)
		return x->due_at_ms < y->due_at_ms ? -1 : 1;
	return strcmp(x->reminder_id, y->reminder_id);
}

void
fs_deadlines_free(fs_deadline_list **lp)
{
	if (lp == NULL || *lp == NULL)
		return;
	fs_deadline_list *l = *lp;
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->items[i].reminder_id);
		free((char *)l->items[i].case_id);
		free((char *)l->items[i].scope);
		free((char *)l->items[i].contact_person);
	}
	free(l->items);
	free((char *)l->time_zone);
	free(l);
	*lp = NULL;
}

fs_err
fs_deadlines(fs_store *s, int64_t now_ms, const fs_deadline_filter *filter, fs_deadline_list **out)
{
	static const fs_deadline_filter none = {0};
	const fs_deadline_filter *f = filter != NULL ? filter : &none;
	uint8_t prefix[FSK_RECORD_KEY_MAX];
	size_t plen;
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	dl_env e = {0};
	dl_data d = {0};
	dl_out o = {0};
	fs_err err;
	int rc;

	if (s == NULL || out == NULL ||
	    (f->case_id != NULL && (strlen(f->case_id) == 0 || strlen(f->case_id) > FSP_ID_MAX)))
		return FS_ERR_INVALID;
	if ((o.l = calloc(1, sizeof(*o.l))) == NULL)
		return FS_ERR_NOMEM;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((err = env_load(s, t, &e)) != FS_OK || (err = contacts_load(s, t, &d)) != FS_OK)
		goto out;
	o.l->from_daemon = e.from_daemon;
	if ((o.l->time_zone = strdup(tz_name(e.tz))) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	/* the cases: one key with a case filter, else the collection's prefix */
	plen = f->case_id != NULL ? fsk_record_key(prefix, "case", f->case_id)
	                          : fsk_record_prefix(prefix, "case");
	MDB_val k = {plen, prefix}, v;
	if ((rc = mdb_cursor_open(t, s->records, &c)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
		sdk_record_state *rs = NULL;
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0 ||
		    (f->case_id != NULL && k.mv_size != plen))
			break;
		if (!fsk_record_key_split(k.mv_data, k.mv_size, coll, id))
			continue;
		if ((rc = sdk_record_load(s, t, k.mv_data, k.mv_size, &rs)) != MDB_SUCCESS)
			break;
		if (rs == NULL)
			continue;
		err = case_eval(&e, rs, id, &d, now_ms, f, &o);
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
		if (err != FS_OK)
			goto out;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if (o.l->n > 1)
		qsort(o.l->items, o.l->n, sizeof(*o.l->items), by_urgency);
	err = FS_OK;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	sdk_txn_abort(&t);
	data_free(&d);
	tz_free(&e.tz);
	if (err != FS_OK)
		fs_deadlines_free(&o.l);
	else
		*out = o.l;
	return err;
}
