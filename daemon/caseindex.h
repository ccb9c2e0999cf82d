/*
 * caseindex: which contacts belong to a case, and the casework facts the
 * lower layers need (data layer).
 *
 * Table case_contacts: [u8 len][case_id][contact_id] -> "", kept by the
 * reminders (reminders_note_record) for every case_id any live sibling of a
 * contact names, read by the reminders (to load a case) and by purge.
 *
 * Data-key names (encryption at rest, see keyring.h):
 *   "c:<case_id>"           a case record, its contacts, its reminders
 *   "r:<collection>/<id>"   any other record
 * caseindex_dek_name() is the one place that says which a value gets.
 * (The shared core in proto/ will offer the contact's case id; until then
 * it is decoded here.) No state; writes in the caller's write transaction.
 */
#ifndef FIELDSYNCD_CASEINDEX_H
#define FIELDSYNCD_CASEINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fieldsync/merge.h"
#include "store.h"

extern const store_table caseindex_table;

fsd_err caseindex_add(store_txn *t, const char *case_id, const char *contact_id);
/* Removes the pair; FSD_OK when it was not there. */
fsd_err caseindex_del(store_txn *t, const char *case_id, const char *contact_id);
/* Calls fn for every contact id listed for case_id, in key order, until fn
 * returns false. */
typedef bool (*caseindex_fn)(void *arg, const char *contact_id);
fsd_err caseindex_contacts(store_txn *t, const char *case_id, caseindex_fn fn, void *arg);

/* The case id a Contact payload names: true with out set (1..FSP_ID_MAX
 * bytes), false when it does not decode or names none. */
bool caseindex_contact_case(const uint8_t *payload, size_t len, char out[FSP_ID_MAX + 1]);
#define CASEINDEX_DEK_NAME_MAX (FSP_ID_MAX + 3)
/* The data key of everything that belongs to case_id: "c:<case_id>". */
void caseindex_case_dek_name(const char *case_id, char *name, size_t namelen);
/* The data key a value of collection/id with this payload is sealed with. */
void caseindex_dek_name(const char *collection, const char *id, const uint8_t *payload, size_t len,
                        char *name, size_t namelen);

#endif
