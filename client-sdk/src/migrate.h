/*
 * migrate.h - what fs_store_migrate (migrate.c) reuses of the store's
 * lifecycle (store.c, which defines these): the checks and steps of
 * fs_store_open_ex, on a store that no handle may hold open.
 *
 * Layer: operations. migrate.c is above store.c (it calls
 * fs_store_create_ex); store.c includes this header only for the
 * prototypes of its own functions. None of these takes or ends a
 * transaction it was not given.
 */
#ifndef FIELDSYNC_SDK_MIGRATE_H
#define FIELDSYNC_SDK_MIGRATE_H

#include <stdbool.h>

#include "db.h"

/* Whether DIR/data.mdb exists. */
bool sdk_store_has_data_file(const char *dir);

/* The key of opts into *m; *has false (and FS_OK) when opts carry no key.
 * FS_ERR_INVALID for a key of the wrong length or a bad key id. */
fs_err sdk_store_opts_key(const fs_store_opts *o, fsc_master *m, bool *has);

/* Opens the LMDB environment in dir (MDB_NOTLS, the store's map size). */
fs_err sdk_store_env_open(const char *dir, MDB_env **out);

/* Opens meta, records, outbox and inflight into s (flags: 0 or MDB_CREATE). */
int sdk_store_dbis_open(fs_store *s, MDB_txn *t, unsigned flags);

/* Reads schema, replica, scope and whether the store is encrypted into s;
 * FS_ERR_NOT_FOUND when the store was never initialised. */
fs_err sdk_store_load_meta(fs_store *s, MDB_txn *t);

/* fsync of path opened with flags (O_RDONLY | O_DIRECTORY for a directory). */
bool sdk_fsync_path(const char *path, int flags);

#endif
