/*
 * seal.h - encryption of values in an encrypted store (seal.c): the data
 * keys (DEKs) in the table `keys`, their names, and the sealed-value format
 * [0xFE 'K'][u8 name length][DEK name][fsc_seal output] with AAD
 * "<collection>\0<id>" - byte for byte the daemon keyring's format.
 *
 * Layer: seal (over db). Each format detail (DEK names, the contact's case id,
 * the AAD, the frame) is one small function, so the shared core in proto/
 * can replace it without touching the callers.
 *
 * Contract: functions take the caller's MDB_txn and never end it; a DEK
 * made while sealing is written in that transaction, so a sealed value and
 * its key commit together. Plaintext and DEKs are wiped from the stack
 * before return; buffers handed out are malloc'd and the caller's.
 * Call these only on an encrypted store (s->encrypted), except
 * sdk_record_open which does nothing on a plain one.
 *
 * Threads: an fs_store may be used from several threads at once (db.h);
 * a transaction belongs to the thread that began it.
 */
#ifndef FIELDSYNC_SDK_SEAL_H
#define FIELDSYNC_SDK_SEAL_H

#include "db.h"

#define DEK_NAME_MAX (2 + FSP_COLLECTION_MAX + 1 + FSP_ID_MAX)

/* "c:<case_id>": the DEK of a case and of its contacts. */
void sdk_dek_name_case(const char *case_id, char name[DEK_NAME_MAX + 1]);

/* "r:<collection>/<id>": the DEK of any other record. */
void sdk_dek_name_record(const char *coll, const char *id, char name[DEK_NAME_MAX + 1]);

/*
 * Seals payload p[0..len) of (coll, id): *out malloc'd (caller frees). An
 * empty payload stays empty (*out NULL, *out_len 0): there is nothing to hide.
 */
int sdk_seal_value(fs_store *s, MDB_txn *t, const char *coll, const char *id,
                   const uint8_t *p, size_t len, uint8_t **out, size_t *out_len);

/* Opens what sdk_seal_value made: *out malloc'd (NULL, 0 for empty).
 * RC_SEAL_BAD when it is not sealed, its DEK is gone, or it does not verify. */
int sdk_open_value(fs_store *s, MDB_txn *t, const char *coll, const char *id,
                   const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

/* Replaces r's sealed payload by its plaintext, in place (r comes from a
 * protobuf-c unpack with the default allocator, so its bytes are malloc'd).
 * Does nothing on a plain store or an empty payload. */
int sdk_record_open(fs_store *s, MDB_txn *t, const char *coll, const char *id, fsp_record *r);

/* True when the sealed payload p was sealed under DEK `name`. */
bool sdk_sealed_under(const uint8_t *p, size_t len, const char *name);

/* Removes DEK `name` (crypto-shredding); absent is fine. */
int sdk_dek_destroy(fs_store *s, MDB_txn *t, const char *name);

/* Re-wraps every DEK from the store key s->master to nm, in t. FS_ERR_CORRUPT
 * when one does not unwrap (the caller aborts t: nothing changes). */
fs_err sdk_dek_rewrap_all(fs_store *s, MDB_txn *t, const fsc_master *nm);

#endif
