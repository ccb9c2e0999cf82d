/*
 * store_impl: the store's private contract (storage layer): the handle's
 * and the transaction's layout and the LMDB helpers store.c and
 * store_kv.c share; no file outside the store (store*.c) includes it.
 * It is the one header that brings in <lmdb.h>.
 */
#ifndef FIELDSYNCD_STORE_IMPL_H
#define FIELDSYNCD_STORE_IMPL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* store.h first (not included here: the layer check would see a circle). */
#ifndef FIELDSYNCD_STORE_H
#error "include store.h before store_impl.h"
#endif

struct store {
	struct keyring *kr; /* NULL: values are stored as they are (--dev without a key) */
	MDB_env *env;
	MDB_dbi meta;
	bool plain; /* STORE_PLAIN: no meta table */
	size_t n_tables;
	const store_table *table[STORE_TABLES_MAX];
	MDB_dbi dbi[STORE_TABLES_MAX];
	pthread_rwlock_t grow_lock;
	uint64_t map_size, map_size_max;
	char server_id[40];
	char generation[40];
	char *dir;              /* for a reopen after MDB_PANIC */
	atomic_bool failing;    /* a commit failed, or the environment panicked */
	atomic_bool panicked;   /* LMDB's MDB_PANIC: reopen before any transaction */
	atomic_int writes_open; /* top-level write txns begun and not ended */
	int64_t last_probe_ms;  /* the writer thread's last recovery attempt */
};

struct store_txn {
	store *s;
	MDB_txn *txn;
	store_txn *parent;
	bool write;
	uint64_t seq; /* last seq handed out as seen by this txn */
	bool seq_dirty;
};

/* An LMDB code as an fsd_err (store.c says which errno is which). */
fsd_err map_rc(int rc);
/* The dbi of table tb, or EINVAL (logged) when it was not opened. */
int table_dbi(store *s, const store_table *tb, MDB_dbi *out);
/* meta's u64 entries (little-endian); *out is 0 when absent. */
int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out);
int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val);

#endif
