/*
 * caseindex: which contacts belong to a case (data layer).
 *
 * Table case_contacts: [u8 len][case_id][contact_id] -> "" (fsk_case_key,
 * fieldsync/keys.h), kept by the reminders (reminders_note_record) for
 * every case_id any live sibling of a contact names (fsp_contact_case_ids),
 * read by the reminders (to load a case) and by purge.
 *
 * The casework facts (the case id of a contact) and the data-key names are
 * the shared core's: fieldsync/casework.h and fieldsync/seal.h. No state;
 * writes in the caller's write transaction; an empty or over-long id is
 * FSD_INVALID.
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

#endif
