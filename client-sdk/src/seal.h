/*
 * seal.h - encryption of values in an encrypted store (seal.c): the data
 * keys (DEKs) in the table `keys`, and sealing and opening payloads with
 * them. The format - DEK names, a contact's case, the AAD
 * "<collection>\0<id>", the frame [0xFE 'K'][u8 name length][DEK name]
 * [fsc_seal output] - is the shared core's (fieldsync/seal.h), the same
 * code the daemon's keyring runs; callers that need a name or a test on a
 * sealed value (pull.c's erasure) call fss_dek_case, fss_dek_record and
 * fss_sealed_under directly.
 *
 * Layer: seal (over db and the core).
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

/*
 * Seals payload p[0..len) of (coll, id) under the DEK fss_dek_for names
 * (created in t if new): *out malloc'd (caller frees). An empty payload
 * stays empty (*out NULL, *out_len 0): there is nothing to hide. EINVAL
 * on names sdk_names_valid refuses, RC_CRYPTO when sealing fails.
 */
int sdk_seal_value(fs_store *s, MDB_txn *t, const char *coll, const char *id, const uint8_t *p,
                   size_t len, uint8_t **out, size_t *out_len);

/* Opens what sdk_seal_value made: *out malloc'd (NULL, 0 for empty).
 * RC_SEAL_BAD when it is not FSS_SEALED (plain or malformed), its DEK is
 * gone, or it does not verify. */
int sdk_open_value(fs_store *s, MDB_txn *t, const char *coll, const char *id, const uint8_t *in,
                   size_t len, uint8_t **out, size_t *out_len);

/* Replaces r's sealed payload by its plaintext, in place (r comes from a
 * protobuf-c unpack with the default allocator, so its bytes are malloc'd).
 * Does nothing on a plain store or an empty payload. */
int sdk_record_open(fs_store *s, MDB_txn *t, const char *coll, const char *id, fsp_record *r);

/* Removes DEK `name` (crypto-shredding); absent is fine. */
int sdk_dek_destroy(fs_store *s, MDB_txn *t, const char *name);

/* Re-wraps every DEK from the store key s->master to nm, in t. FS_ERR_CORRUPT
 * when one does not unwrap (the caller aborts t: nothing changes). */
fs_err sdk_dek_rewrap_all(fs_store *s, MDB_txn *t, const fsc_master *nm);

#endif
