/*
 * keyring: encryption at rest: master keys, data keys (DEKs) and sealed
 * values (storage layer). See keyring.c's design note for the format.
 *
 * The keyring keeps its DEKs in an LMDB environment of its own,
 * DATA_DIR/keys (one unnamed table, as it always had). Any thread: every
 * seal or open unwraps its DEK in a short transaction of its own, so a DEK
 * destroyed by another process is gone at once. Master keys are operator
 * input: keyring_open() and keyring_rewrap_all() say why they failed in a
 * sentence. The data-key NAME of a value is its owner's business
 * (caseindex_dek_name()); the keyring only seals with the name given.
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

/* Loads the master keys (file first, else env text) and opens DATA_DIR/keys.
 * NULL with a sentence in err. */
keyring *keyring_open(const char *data_dir, const char *key_file, const char *key_env,
                      char *err, size_t errlen);
void keyring_close(keyring **k);
const char *keyring_current_id(const keyring *k);
/* Seals in[0..len) with DEK `name` (made when absent); *out malloc'd. */
bool keyring_seal(keyring *k, const char *name, const void *aad, size_t aad_len,
                  const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);
bool keyring_is_sealed(const uint8_t *in, size_t len);
enum { KEYRING_PLAIN = 0, KEYRING_OPENED, KEYRING_NO_KEY, KEYRING_BAD };
/* Opens a sealed value (*out malloc'd, or NULL for an empty one). Returns
 * KEYRING_PLAIN for a value that is not sealed (*out NULL: use it as is),
 * KEYRING_NO_KEY when its DEK is gone (purged) or k is NULL, KEYRING_BAD
 * when it does not verify. */
int keyring_open_value(keyring *k, const void *aad, size_t aad_len, const uint8_t *in,
                       size_t len, uint8_t **out, size_t *out_len);
/* Destroys DEK `name` (crypto-shredding). */
bool keyring_destroy(keyring *k, const char *name);
/* Rewraps every DEK with the current master key. */
bool keyring_rewrap_all(keyring *k, size_t *n_rewrapped, char *err, size_t errlen);


/* Seals/opens an opaque value (reminder rows) with DEK `name`, using the
 * keyring of t's store; without one both copy. *out malloc'd. Unseal says
 * FSD_CORRUPT for a value that does not open (its key gone or bad bytes). */
fsd_err keyring_txn_seal(store_txn *t, const char *name, const void *aad, size_t aad_len,
                         const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);
fsd_err keyring_txn_unseal(store_txn *t, const void *aad, size_t aad_len, const uint8_t *in,
                           size_t len, uint8_t **out, size_t *out_len);

#endif
