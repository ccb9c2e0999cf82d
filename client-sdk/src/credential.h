/*
 * credential.h - credentials written by `fieldsyncd enroll` (credential.c):
 * Z85 CURVE keys, parsing and validating a credential, its public JSON.
 *
 * Layer: base (no LMDB, no sockets). The public half (fs_credential_load,
 * fs_credential_parse, fs_credential_free) is in fieldsync.h. Ownership:
 * every fs_credential returned here is the caller's, freed (and its secret
 * wiped) with fs_credential_free. Thread-safe: no shared state.
 */
#ifndef FIELDSYNC_SDK_CREDENTIAL_H
#define FIELDSYNC_SDK_CREDENTIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/fieldsync.h"

#define SDK_Z85_KEY_LEN 40

/* Decodes a 40-character Z85 key to 32 bytes; false when it is not one. */
bool sdk_z85_key_decode(const char *text, uint8_t key[32]);

/* True when public_z85 is the CURVE public key of secret_z85 (or when this
 * libzmq cannot tell: no CURVE support). */
bool sdk_curve_pair_ok(const char *public_z85, const char *secret_z85);

/* Parses a stored credential (no client_secret_key member), validating it
 * like fs_credential_parse. */
fs_err sdk_credential_parse_public(const char *json, size_t len, fs_credential **out);

/* A deep copy; with_secret false leaves client_secret_key NULL. NULL on no memory. */
fs_credential *sdk_credential_dup(const fs_credential *c, bool with_secret);

/* The credential without its secret key as compact JSON; malloc'd, NULL on no memory. */
char *sdk_credential_public_json(const fs_credential *c);

#endif
