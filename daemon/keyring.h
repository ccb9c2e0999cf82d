/*
 * keyring: encryption at rest: master keys, data keys (DEKs) and sealed
 * values (storage layer). See keyring.c's design note for the format.
 *
 * The keyring keeps its DEKs in a store of its own, DATA_DIR/keys (a
 * STORE_PLAIN environment: its unnamed table alone, as it always had). Any thread (one
 * key-store operation at a time per process): every seal or open unwraps its
 * DEK in a short transaction of its own, so a DEK destroyed by another
 * process is gone at once. Erasure is physical: keyring_destroy compacts the
 * key store into a new file that replaces the old one (crash-safe; see
 * keyring.c), and every operation follows the live file. Master keys are operator
 * input: keyring_open() and keyring_rewrap_all() say why they failed in a
 * sentence. The data-key NAME of a value is its owner's business (the
 * shared core names them: fss_dek_for, fss_dek_case); the keyring only
 * seals with the name given. The sealed-value framing is the core's
 * (fieldsync/seal.h); the keyring fetches DEKs and maps its answers.
 */
#ifndef FIELDSYNCD_KEYRING_H
#define FIELDSYNCD_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

/* The main store's "keys" table (kept, empty, for the keyring). */
extern const store_table keyring_table;

typedef struct keyring keyring;

/* Loads the master keys (file first, else env text), opens DATA_DIR/keys
 * and checks that they open it (keyring_check_master). FSD_OK with *out, or
 * an error with a sentence for the operator in err. */
fsd_err keyring_open(const char *data_dir, const char *key_file, const char *key_env, keyring **out,
                     char *err, size_t errlen);
void keyring_close(keyring **k);
/* Reads and checks the master keys as keyring_open() does, without opening
 * or creating anything (check-config, the daemon's start-up checks); with
 * data_dir, also that they open DATA_DIR/keys when it exists: every master
 * key id its wrapped data keys name is given, and for each, one of its data
 * keys unwraps (FSD_NOKEY otherwise; keyring_open checks the same). */
fsd_err keyring_check_master(const char *data_dir, const char *key_file, const char *key_env,
                             char *err, size_t errlen);
const char *keyring_current_id(const keyring *k);
/* Seals in[0..len) with DEK `name` (made when absent); *out malloc'd. */
fsd_err keyring_seal(keyring *k, const char *name, const void *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);
/* Opens a value (fss_classify, then fss_open with the DEK its name
 * designates). FSD_OK: *out is the opened value (malloc'd, never NULL,
 * *out_len may be 0), or *out is NULL when the value is not sealed (use it
 * as it is): FSS_PLAIN, or FSS_MALFORMED when k is NULL (without a keyring
 * nothing was sealed, so it is plaintext). FSD_NOKEY when a sealed value's
 * DEK is gone (purged) or k is NULL; FSD_CORRUPT when it does not verify
 * or, with a keyring, when it is FSS_MALFORMED. Whether a value is sealed:
 * fss_is_sealed (fieldsync/seal.h). */
fsd_err keyring_open_value(keyring *k, const void *aad, size_t aad_len, const uint8_t *in,
                           size_t len, uint8_t **out, size_t *out_len);
/* Destroys DEK `name` (crypto-shredding); FSD_OK when it was not there.
 * Its bytes are gone from DATA_DIR/keys when this returns FSD_OK: the key
 * store is compacted (keyring_compact); a crash before that is finished by
 * the next keyring_open. */
fsd_err keyring_destroy(keyring *k, const char *name);
/* Copies the live keys into a fresh file that atomically replaces
 * DATA_DIR/keys/data.mdb (freed pages dropped); waits for every process's
 * key-store operation in flight. */
fsd_err keyring_compact(keyring *k);
/*
 * Re-keying without a window that loses data: keyring_retire moves DEK
 * `name` aside (to a retired slot tagged with token) so that a fresh one can
 * be made under the same name; keyring_open_value falls back to a name's
 * retired keys when its DEK does not open a value. Once the re-sealed data
 * has committed, keyring_destroy_retired destroys every retired key of the
 * name physically (like keyring_destroy). keyring_retired lists the retired
 * slots (name, token) for the recovery after a crash (purge_recover).
 */
fsd_err keyring_retire(keyring *k, const char *name, uint64_t token);
fsd_err keyring_destroy_retired(keyring *k, const char *name);
typedef bool (*keyring_retired_fn)(void *arg, const char *name, uint64_t token);
fsd_err keyring_retired(keyring *k, keyring_retired_fn fn, void *arg);

/* Rewraps every DEK with the current master key; a sentence in err. */
fsd_err keyring_rewrap_all(keyring *k, size_t *n_rewrapped, char *err, size_t errlen);

/* Seals/opens an opaque value (reminder rows) with DEK `name`, using the
 * keyring of t's store; without one both copy. *out malloc'd. Unseal says
 * FSD_CORRUPT for a value that does not open (its key gone or bad bytes). */
fsd_err keyring_txn_seal(store_txn *t, const char *name, const void *aad, size_t aad_len,
                         const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);
fsd_err keyring_txn_unseal(store_txn *t, const void *aad, size_t aad_len, const uint8_t *in,
                           size_t len, uint8_t **out, size_t *out_len);

#endif
