/*
 * caseindex.h - the contacts of each case (caseindex.c), kept in the
 * transaction of every write of a contact to `records`:
 *
 *   case_contacts  [case_id][0x00][contact id] -> "" (a key scan of a case)
 *   contact_cases  contact id -> its case ids, each NUL-terminated (so an
 *                  update removes the old entries without opening the
 *                  old payloads, which a purge may have made unreadable)
 *
 * A contact is indexed under the case of each live sibling
 * (fsp_contact_case_ids). fs_contacts_of_case (lists.c) reads it.
 *
 * Layer: data (over db and the core's casework.h). Functions that take an
 * MDB_txn never end it. Threads: as every store file (db.h).
 */
#ifndef FIELDSYNC_SDK_CASEINDEX_H
#define FIELDSYNC_SDK_CASEINDEX_H

#include "db.h"

/* Opens (flags MDB_CREATE: creates) the two tables into s. */
int sdk_caseidx_open(fs_store *s, MDB_txn *t, unsigned flags);

/*
 * Indexes record (collection, id) as rs says (payloads plaintext; NULL: the
 * record is gone). Does nothing for a collection other than "contact".
 */
int sdk_caseidx_set(fs_store *s, MDB_txn *t, const char *collection, const char *id,
                    const sdk_record_state *rs);

/* Indexes every contact in `records` (a store made by an older SDK). */
int sdk_caseidx_build(fs_store *s, MDB_txn *t);

/* Calls fn for each contact id indexed under case_id, in id order, until
 * fn returns non-zero (that value is returned). */
int sdk_caseidx_each(fs_store *s, MDB_txn *t, const char *case_id,
                     int (*fn)(void *arg, const char *contact_id), void *arg);

#endif
