/*
 * libfieldsync-crypto: the sealed-value format and the data-key names. The
 * one implementation, used by the daemon's keyring (data.mdb payloads and
 * reminder rows) and by the tablet SDK's encrypted store (records, outbox,
 * inflight): a value sealed on either host opens on the other given the
 * same DEK. Nothing changes on disk: these are the bytes both hosts wrote.
 *
 * SEALED VALUE
 *
 *   [0xFE 'K'][u8 n][name: n bytes][fsc_seal output: >= FSC_SEAL_OVERHEAD]
 *
 * name (1..255 bytes, no NUL) is the DEK the value is sealed with, so a
 * reader knows which key to fetch. It is not authenticated: a changed name
 * only makes the reader fetch another DEK, under which the value does not
 * open (and a DEK is never shared between two names). A value is sealed only when all of it
 * holds (fss_parse): a value that merely starts with 0xFE 'K' but whose
 * name runs past its end, or leaves no room for a whole fsc_seal output,
 * is FSS_MALFORMED, never FSS_SEALED. Empty payloads are never sealed by
 * either host (a tombstone has none); fss_seal itself accepts them.
 *
 * DATA-KEY NAMES (which DEK seals what)
 *
 *   "c:<case_id>"             a case record, its contacts (a contact with a
 *                             valid case id in its payload), and, in the
 *                             daemon, the case's reminder rows
 *   "r:<collection>/<id>"     any other record, and a contact whose payload
 *                             names no valid case
 *
 * Destroying "c:<id>" crypto-shreds a case with its contacts; destroying
 * "r:<collection>/<id>" one record.
 *
 * AAD (where a sealed value belongs, so a copy elsewhere does not open)
 *
 *   record payloads   "<collection>\0<id>" (fss_record_aad), both hosts
 *   reminder rows     the row's LMDB key, [u8 len][case_id][reminder_id]
 *                     (fsk_case_key in keys.h), daemon only
 *
 * Contract: the DEKs themselves (storage, wrapping, creation, wiping)
 * belong to the hosts; a DEK passed in is only read, never copied, stored
 * or logged. Outputs named *out are malloc'd and owned by the caller;
 * on failure *out is NULL. Views (fss_parts.body) point into the caller's
 * input and live as long as it. Thread-safe.
 */
#ifndef FIELDSYNC_SEAL_H
#define FIELDSYNC_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/crypto.h"
#include "fieldsync/limits.h"

#define FSS_MAGIC0 0xFE
#define FSS_MAGIC1 0x4B  /* 'K' */
#define FSS_NAME_MAX 255 /* what the u8 length can say */
/* The longest name fss_dek_* make: "r:" collection "/" id. */
#define FSS_DEK_NAME_MAX (2 + FSP_COLLECTION_MAX + 1 + FSP_ID_MAX)
/* "<collection>\0<id>" */
#define FSS_RECORD_AAD_MAX (FSP_COLLECTION_MAX + 1 + FSP_ID_MAX)

typedef enum {
	FSS_PLAIN = 0, /* does not start with 0xFE 'K': not a sealed value */
	FSS_SEALED,    /* a well-formed sealed value (fss_parse succeeds) */
	FSS_MALFORMED, /* starts with 0xFE 'K' but the framing does not hold */
} fss_kind;

/* A sealed value taken apart by fss_parse. */
typedef struct fss_parts {
	char name[FSS_NAME_MAX + 1]; /* the DEK name, NUL-terminated copy */
	size_t name_len;             /* 1..FSS_NAME_MAX */
	const uint8_t *body;         /* the fsc_seal output: a view into the input */
	size_t body_len;             /* >= FSC_SEAL_OVERHEAD */
} fss_parts;

/* ---- the framing -------------------------------------------------------- */

/* What in[0..len) is. Never reads past len; in may be NULL when len is 0. */
fss_kind fss_classify(const uint8_t *in, size_t len);

/* fss_classify(in, len) == FSS_SEALED. */
bool fss_is_sealed(const uint8_t *in, size_t len);

/*
 * Takes a sealed value apart: true and *out filled when it is FSS_SEALED
 * (magic, a name of 1..255 bytes without NUL that fits, then at least
 * FSC_SEAL_OVERHEAD bytes); false otherwise, *out zeroed.
 */
bool fss_parse(const uint8_t *in, size_t len, fss_parts *out);

/*
 * Builds [0xFE 'K'][n][name][body] from a DEK name and an fsc_seal output.
 * False (nothing allocated) when name is not 1..FSS_NAME_MAX bytes, body
 * is shorter than FSC_SEAL_OVERHEAD, or memory runs out.
 */
bool fss_frame(const char *name, const uint8_t *body, size_t body_len, uint8_t **out,
               size_t *out_len);

/* True when in[0..len) is a sealed value naming exactly DEK `name`. */
bool fss_sealed_under(const uint8_t *in, size_t len, const char *name);

/* ---- sealing with a DEK the host fetched -------------------------------- */

/*
 * fsc_seal(dek, aad, plain) framed under `name`: the whole sealed value in
 * *out (caller frees). False on a bad name (see fss_frame), no randomness,
 * an OpenSSL error or out of memory.
 */
bool fss_seal(const uint8_t dek[FSC_KEY_LEN], const char *name, const void *aad, size_t aad_len,
              const uint8_t *plain, size_t len, uint8_t **out, size_t *out_len);

/*
 * Opens a sealed value with the DEK its name designates (the host looked it
 * up from fss_parse's name). False when in is not FSS_SEALED or the tag
 * does not verify (wrong DEK, wrong AAD, tampering); *out NULL then, and
 * no unverified plaintext is left anywhere. On success *out is malloc'd,
 * or NULL with *out_len 0 for an empty plaintext (fsc_open's rule).
 */
bool fss_open(const uint8_t dek[FSC_KEY_LEN], const void *aad, size_t aad_len, const uint8_t *in,
              size_t len, uint8_t **out, size_t *out_len);

/* ---- data-key names and AAD ----------------------------------------------- */

/* "c:<case_id>" into name. False ("") when case_id is not 1..FSP_ID_MAX bytes. */
bool fss_dek_case(const char *case_id, char name[FSS_DEK_NAME_MAX + 1]);

/*
 * "r:<collection>/<id>" into name. False ("") when collection fails
 * fsp_collection_valid (so it holds no '/', and a name has one reading) or
 * id is not 1..FSP_ID_MAX bytes.
 */
bool fss_dek_record(const char *collection, const char *id, char name[FSS_DEK_NAME_MAX + 1]);

/*
 * The DEK that seals a payload of (collection, id): "c:<id>" for a case,
 * "c:<case_id>" for a contact whose payload names a valid case
 * (fsp_contact_case_id), "r:<collection>/<id>" otherwise. False ("") when
 * collection or id are invalid as for fss_dek_record.
 */
bool fss_dek_for(const char *collection, const char *id, const uint8_t *payload, size_t len,
                 char name[FSS_DEK_NAME_MAX + 1]);

/*
 * The AAD of a record's payloads, "<collection>\0<id>" (no trailing NUL):
 * its length, or 0 when collection is not 1..FSP_COLLECTION_MAX bytes or id
 * not 1..FSP_ID_MAX bytes.
 */
size_t fss_record_aad(uint8_t aad[FSS_RECORD_AAD_MAX], const char *collection, const char *id);

#endif
