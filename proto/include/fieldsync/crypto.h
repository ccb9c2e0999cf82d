/*
 * libfieldsync-crypto: encryption at rest, shared by the daemon and the
 * tablet SDK so both encrypt "the same way" (OpenSSL EVP, AES-256-GCM).
 *
 * Envelope encryption: every record payload is sealed with a random 256-bit
 * data key (DEK); each DEK is stored wrapped (sealed) by the master key.
 * Destroying a DEK makes everything sealed with it unreadable, in the live
 * store and in every backup (crypto-shredding).
 *
 * Sealed format (fsc_seal): [u8 version=1][12-byte random nonce][ciphertext]
 * [16-byte GCM tag]. The associated data (AAD) binds a ciphertext to where
 * it belongs (e.g. "contact\0<id>"), so a sealed value moved to another
 * record does not open.
 *
 * Wrapped key format (fsc_wrap): [u8 version=1][u8 master key id length][id]
 * [sealed DEK with AAD "fieldsync-dek"], so a store knows which master key
 * wrapped each DEK and a rotation can re-wrap them one by one.
 *
 * Also here: randomness and UUIDs (fsc_random, fsc_uuid), both from
 * OpenSSL's RAND_bytes, so both hosts get them the same portable way and
 * fail closed the same way. The sealed-value framing around fsc_seal and
 * the data-key names are in fieldsync/seal.h (same library).
 *
 * Nothing here logs, and no function leaves key material in memory it frees
 * (buffers holding keys are cleansed with OPENSSL_cleanse).
 */
#ifndef FIELDSYNC_CRYPTO_H
#define FIELDSYNC_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FSC_KEY_LEN 32
#define FSC_SEAL_OVERHEAD (1 + 12 + 16)
#define FSC_KEY_ID_MAX 64

/* A master key and its id (the id is not secret: e.g. "2026-11", "k2"). */
typedef struct fsc_master {
	uint8_t key[FSC_KEY_LEN];
	char id[FSC_KEY_ID_MAX + 1];
} fsc_master;

/* Fills buf with len bytes from OpenSSL's CSPRNG. False on failure. */
bool fsc_random(void *buf, size_t len);

/* A fresh random data key. */
bool fsc_new_key(uint8_t key[FSC_KEY_LEN]);

/*
 * A random (version 4, RFC 9562 variant) UUID as 36 lowercase characters
 * "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx" plus NUL, from fsc_random.
 * Fails closed: false, out "", when the CSPRNG has no bytes; never falls
 * back to the clock, the pid or any other guessable source. The one UUID
 * maker of both hosts (the daemon's server id, the SDK's replica and
 * change-set ids).
 */
#define FSC_UUID_LEN 36
bool fsc_uuid(char out[FSC_UUID_LEN + 1]);

/*
 * Seals plaintext[0..len) with key and aad. *out is malloc'd (caller frees),
 * *out_len = len + FSC_SEAL_OVERHEAD. False on failure (out of memory,
 * OpenSSL error), *out NULL.
 */
bool fsc_seal(const uint8_t key[FSC_KEY_LEN], const void *aad, size_t aad_len,
              const uint8_t *plaintext, size_t len, uint8_t **out, size_t *out_len);

/*
 * Opens what fsc_seal made. False when the tag does not verify (wrong key,
 * wrong aad, tampered or truncated data) or on failure; *out NULL then.
 * *out is malloc'd (caller frees), or NULL with *out_len 0 for an empty
 * plaintext.
 */
bool fsc_open(const uint8_t key[FSC_KEY_LEN], const void *aad, size_t aad_len,
              const uint8_t *sealed, size_t len, uint8_t **out, size_t *out_len);

/* Wraps a DEK with the master key: *out malloc'd. */
bool fsc_wrap(const fsc_master *m, const uint8_t dek[FSC_KEY_LEN], uint8_t **out, size_t *out_len);

/* The master key id a wrapped DEK names (copied to id, NUL-terminated). */
bool fsc_wrapped_key_id(const uint8_t *wrapped, size_t len, char id[FSC_KEY_ID_MAX + 1]);

/* Unwraps a DEK; false when m is not the key that wrapped it or data is bad. */
bool fsc_unwrap(const fsc_master *m, const uint8_t *wrapped, size_t len, uint8_t dek[FSC_KEY_LEN]);

/*
 * Reads a master key file: one line "<id>:<64 hex digits>" (e.g.
 * "k1:00ff..."), trailing newline allowed. Refuses a file that group or
 * others can read (mode & 077), says why in err. False on any problem.
 */
bool fsc_master_load_file(const char *path, fsc_master *m, char *err, size_t errlen);

/* Parses the same "<id>:<hex>" text (e.g. from an environment variable). */
bool fsc_master_parse(const char *text, fsc_master *m, char *err, size_t errlen);

/* Writes a new random master key file (mode 0600, refuses to overwrite). */
bool fsc_master_create_file(const char *path, const char *id, char *err, size_t errlen);

/* Best effort for memory that holds key material: out of core dumps
 * (MADV_DONTDUMP) and out of swap (mlock, where RLIMIT_MEMLOCK permits;
 * EPERM ignored). Whole pages around p..p+len are marked: put keys in
 * page-aligned allocations of their own when other data must still dump. */
void fsc_protect(void *p, size_t len);
/* Wipes key material (OPENSSL_cleanse: the compiler cannot drop it). */
void fsc_cleanse(void *p, size_t len);

#endif
