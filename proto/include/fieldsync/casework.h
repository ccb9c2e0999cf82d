/*
 * libfieldsync-proto: the casework collections of METHOD.md ("case",
 * "contact") as both hosts must read them. The one implementation, used by
 * the daemon (validation, reminders, purge, the keyring's key choice) and
 * by the tablet SDK (JSON payloads, its store's key choice); nothing in
 * daemon/ or client-sdk/ decodes a Contact to find its case by itself.
 *
 * Contract: pure functions of their arguments. Payloads are borrowed bytes
 * (never kept, never modified); a function that decodes one frees what the
 * decoder allocated before it returns. Nothing here logs, and nothing
 * returns memory the caller must free. Thread-safe.
 */
#ifndef FIELDSYNC_CASEWORK_H
#define FIELDSYNC_CASEWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/limits.h"
#include "fieldsync/v1/sync.pb-c.h"

/* True when case_id can name a case: 1..FSP_ID_MAX bytes (NULL is not). */
bool fsp_case_id_valid(const char *case_id);

/*
 * The case a Contact payload belongs to. True when payload[0..len) decodes
 * as fieldsync.v1.Contact and its case_id passes fsp_case_id_valid(): the
 * id is copied to out, NUL-terminated. Otherwise false and out is "" (a
 * payload that does not decode, an empty case id, one of 129 bytes or
 * more). Does not check anything else of the contact (fsp_typed_check
 * does); accepts len 0 (an empty Contact, which has no case: false).
 */
bool fsp_contact_case_id(const uint8_t *payload, size_t len, char out[FSP_ID_MAX + 1]);

/*
 * The distinct cases the live (not deleted) siblings of a contact's state
 * name, in sibling order: ids[0..return) are NUL-terminated copies; at
 * most cap are written, siblings without a valid case are skipped. rs may
 * be NULL (0). The first one, ids[0], is "the contact's case" where one
 * answer is needed (purge).
 */
size_t fsp_contact_case_ids(const Fieldsync__V1__RecordState *rs, char ids[][FSP_ID_MAX + 1],
                            size_t cap);

/* A staff identifier (METHOD.md revision 2, item 9): 1..64 characters of
 * [A-Za-z0-9._-], never a name. */
#define FSP_STAFF_ID_MAX 64
bool fsp_staff_id_valid(const char *id);

/*
 * Typed collections: true when `collection` is "case" or "contact". For
 * those, fsp_typed_check() decodes the payload and checks the enum ranges,
 * the WHO-5 range, that times are not negative, that no field number 0 is
 * present, that a contact names its case (fsp_case_id_valid) and that a
 * case's contact_person, when set, is a staff identifier (fsp_staff_id_valid). Other
 * collections always pass. On failure returns false and writes a sentence
 * naming the field to why[0..why_len).
 */
bool fsp_collection_typed(const char *collection);
bool fsp_typed_check(const char *collection, const uint8_t *payload, size_t len, char *why,
                     size_t why_len);

#endif
