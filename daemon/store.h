/*
 * store: the one owner of LMDB (storage layer).
 *
 * A store is one LMDB environment: its transactions, a set of generic
 * tables (byte keys -> byte values) and named u64 counters in the table
 * meta. The store knows no record, event or device: every table is declared
 * by the module that owns its layout (a `const store_table` in that
 * module's header) and handed to store_open_with(); schema.c's store_open()
 * opens the daemon's store with all of them. <lmdb.h> is included by
 * store.c alone (.ci/check-layers enforces it): hot copies for backups
 * (store_copy_env) are here too. LMDB codes are mapped to fsd_err and
 * never leak. Integers in keys and values are the shared core's encodings
 * (fieldsync/keys.h: be64 for keys that sort by number, le64/le32 in meta).
 *
 * Threads: read transactions are short and may be used on any thread (one
 * at a time); the one write transaction belongs to the writer thread (or
 * to an admin process: LMDB serialises writers). A value returned by
 * store_kv_get() is valid until its transaction ends.
 *
 * Keyring: the store carries the keyring it was given (store_set_keyring)
 * for the data layer to seal with; it never calls it itself.
 */
#ifndef FIELDSYNCD_STORE_H
#define FIELDSYNCD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct store store;
typedef struct store_txn store_txn;
struct keyring;

/* A table: declared (const, static storage) by the module that owns it. */
typedef struct store_table {
	const char *name; /* the LMDB database name: never change it */
} store_table;

#define STORE_TABLES_MAX 24

/* Opens (creating when new) the store under dir with the tables of the
 * NULL-terminated list (a table named NULL is the environment's unnamed
 * one). STORE_PLAIN: an environment of those tables alone, without the
 * meta table (no schema, server id, seq or counters): the keyring's.
 * NULL on failure, logged. */
enum { STORE_PLAIN = 1 };
store *store_open_with(const char *dir, uint64_t map_size, uint64_t map_size_max,
                       const store_table *const *tables, unsigned flags);
void store_close(store **s);
const char *store_server_id(const store *s);
/* The store's generation (PROTOCOL.md §7, Welcome.generation): made with
 * the store, kept across restarts, made anew by store_new_generation (a
 * restore). A store written by release 1 gets one at its first open. */
const char *store_generation(const store *s);
fsd_err store_new_generation(store *s);

/*
 * The single-writer lock on a data directory (DIR/fieldsyncd.lock, an
 * exclusive flock holding the holder's pid). store_lock_dir: FSD_OK and *fd
 * holds the lock until store_unlock_dir; FSD_BUSY when another process
 * holds it (*holder: its pid, 0 unknown); FSD_NOTFOUND when dir does not
 * exist and create is false. store_lock_holder looks without taking or
 * creating anything: the holder's pid, -1 held by an unknown pid, 0 free.
 */
fsd_err store_lock_dir(const char *dir, bool create, int *fd, long *holder);
void store_unlock_dir(int *fd);
long store_lock_holder(const char *dir);

/*
 * Health (store.c, "Storage failures and recovery"): a store is failing
 * from a failed commit (or LMDB's MDB_PANIC) until a commit succeeds again;
 * the thread that writes it reopens a panicked environment and probes the
 * disk by itself, at most once a second, while it is failing.
 * store_healthy: s is not failing. store_health: no store of this process
 * is failing; else false with a one-line reason (no personal data) in
 * why[0..len). Both are safe on any thread.
 */
bool store_healthy(store *s);
bool store_health(char *why, size_t len);
/* The keyring's word that a data key that is there does not open with the
 * master keys held (store_health then says so until a restart: the records
 * it seals look unreadable, which is not one record's damage). */
void store_note_keys_failing(void);
/* How many times this thread noted it (a Pull fails its page when that
 * moved during the page: the cursor must not pass records it never got). */
unsigned store_keys_failures_here(void);

/* Read transactions: short, any thread. */
fsd_err store_read_begin(store *s, store_txn **t);
void store_read_end(store_txn **t);

/* The one write transaction, writer thread only. */
fsd_err store_write_begin(store *s, store_txn **t);
fsd_err store_nested_begin(store_txn *parent, store_txn **t);
fsd_err store_commit(store_txn **t); /* durable on FSD_OK */
void store_abort(store_txn **t);
/* LMDB figures for /metrics: map size, bytes in use, reader slots taken. */
void store_stats(store *s, uint64_t *map_size, uint64_t *used, uint32_t *readers);
/* Doubles the map (up to the maximum); no transaction may be open. */
fsd_err store_grow(store *s);
/* The store a transaction belongs to. */
store *store_txn_store(store_txn *t);

/* The last seq handed out, as committed or as this write txn left it. */
uint64_t store_last_seq(store_txn *t);
/* Hands out the next seq inside write txn t. */
uint64_t store_next_seq(store_txn *t);

/* Generic tables. Keys and values are bytes; *val is valid until the
 * transaction ends. A table not given to store_open_with is an error. */
fsd_err store_kv_get(store_txn *t, const store_table *tb, const void *key, size_t klen,
                     const void **val, size_t *vlen);
/* append: the key sorts after every key in the table (MDB_APPEND). */
fsd_err store_kv_put(store_txn *t, const store_table *tb, const void *key, size_t klen,
                     const void *val, size_t vlen, bool append);
/* Adds key only when absent: FSD_EXISTS when it is there (MDB_NOOVERWRITE). */
fsd_err store_kv_add(store_txn *t, const store_table *tb, const void *key, size_t klen,
                     const void *val, size_t vlen);
/* Reserves vlen bytes for key and returns them in *val to be filled before
 * any other write in t (MDB_RESERVE). */
fsd_err store_kv_reserve(store_txn *t, const store_table *tb, const void *key, size_t klen,
                         size_t vlen, void **val);
fsd_err store_kv_del(store_txn *t, const store_table *tb, const void *key, size_t klen);
/* Number of entries in the table. */
fsd_err store_kv_count(store_txn *t, const store_table *tb, uint64_t *n);
/* Calls fn for each entry with key >= from whose key starts with prefix
 * (plen 0: any), in key order, until fn returns false. fn must not write to
 * the table it is walking. */
typedef bool (*store_kv_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                            size_t vlen);
fsd_err store_kv_scan(store_txn *t, const store_table *tb, const void *from, size_t flen,
                      const void *prefix, size_t plen, store_kv_fn fn, void *arg);

/* Named u64 counters in meta (u64 LE, fsk_put_le64), each named and owned
 * by one module ("event_seq", "audit_seq", "conflicts_open", ...); 0 when
 * absent. Keys that sort by number are fsk_put_be64 (fieldsync/keys.h). */
uint64_t store_meta_u64(store_txn *t, const char *name);
fsd_err store_meta_set_u64(store_txn *t, const char *name, uint64_t v);

/*
 * Hot copy of the LMDB environment in dir (the daemon's store or the key
 * store, while a daemon runs or not) into fd, which stays open: one read
 * transaction, so the copy is the consistent snapshot of the moment it
 * began and readers never block the writer; compact drops free pages
 * (MDB_CP_COMPACT). The copy is an environment's data.mdb: a directory
 * holding it opens with store_open_with. dir is opened read-only and
 * nothing in it changes. FSD_NOTFOUND when dir holds no environment; a
 * failure is logged with LMDB's reason.
 */
fsd_err store_copy_env(const char *dir, int fd, bool compact);
/* The bytes in use in the environment in dir (read-only look, for a
 * copy's progress); FSD_NOTFOUND when there is none. */
fsd_err store_env_in_use(const char *dir, uint64_t *bytes);
/* Walks the unnamed table of the environment in dir, read-only, creating
 * nothing (the keyring's look at its key store before a start);
 * FSD_NOTFOUND when there is no environment. */
fsd_err store_env_scan(const char *dir, store_kv_fn fn, void *arg);

/* The keyring the data layer seals with (NULL: values stay plain). The
 * store does not own it and never calls it. */
void store_set_keyring(store *s, struct keyring *k);
struct keyring *store_keyring(const store *s);

#endif
