/*
 * credstore.h - the store's credential (credstore.c): meta "credential"
 * (the public JSON) and "credential_secret" (the Z85 secret key, sealed
 * with the store DEK in an encrypted store).
 *
 * Layer: data. The public half (fs_store_set_credential,
 * fs_store_credential) is in fieldsync.h. Ownership: a credential handed
 * out is the caller's; fs_credential_free wipes its secret.
 *
 * Threads: an fs_store may be used from several threads at once (db.h);
 * a transaction belongs to the thread that began it.
 */
#ifndef FIELDSYNC_SDK_CREDSTORE_H
#define FIELDSYNC_SDK_CREDSTORE_H

#include "base.h"

struct MDB_txn; /* lmdb.h: only the store files see LMDB */

/* Stores credential c in t (validated again here: the struct is public);
 * the caller commits. */
fs_err sdk_cred_put(fs_store *s, struct MDB_txn *t, const fs_credential *c);

/* The store's credential WITH its secret key, for fs_sync(); caller frees
 * with fs_credential_free (which wipes it). FS_ERR_NOT_FOUND when none. */
fs_err sdk_store_credential_secret(fs_store *s, fs_credential **out);

#endif
