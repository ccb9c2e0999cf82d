/*
 * libfieldsync-crypto (see fieldsync/seal.h): the sealed-value framing
 * around fsc_seal, the data-key names and the record AAD, shared by the
 * daemon's keyring and the tablet SDK's encrypted store.
 *
 * Layer: the shared core, above crypto.c (fsc_seal, fsc_open) and the
 * casework helpers of libfieldsync-proto (fsp_contact_case_id,
 * fsp_collection_valid). No OpenSSL here, no key storage, no logging.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/casework.h"
#include "fieldsync/merge.h" /* fsp_collection_valid */
#include "fieldsync/seal.h"

#define HEADER 3 /* magic, magic, name length */

fss_kind
fss_classify(const uint8_t *in, size_t len)
{
	fss_parts p;
	if (in == NULL || len < 2 || in[0] != FSS_MAGIC0 || in[1] != FSS_MAGIC1)
		return FSS_PLAIN;
	return fss_parse(in, len, &p) ? FSS_SEALED : FSS_MALFORMED;
}

bool
fss_is_sealed(const uint8_t *in, size_t len)
{
	return fss_classify(in, len) == FSS_SEALED;
}

bool
fss_parse(const uint8_t *in, size_t len, fss_parts *out)
{
	size_t nl;

	memset(out, 0, sizeof(*out));
	if (in == NULL || len < HEADER || in[0] != FSS_MAGIC0 || in[1] != FSS_MAGIC1)
		return false;
	nl = in[2];
	/* len - HEADER cannot underflow; compare without adding to len */
	if (nl == 0 || nl > len - HEADER || len - HEADER - nl < FSC_SEAL_OVERHEAD ||
	    memchr(in + HEADER, '\0', nl) != NULL)
		return false;
	memcpy(out->name, in + HEADER, nl);
	out->name[nl] = '\0';
	out->name_len = nl;
	out->body = in + HEADER + nl;
	out->body_len = len - HEADER - nl;
	return true;
}

bool
fss_frame(const char *name, const uint8_t *body, size_t body_len, uint8_t **out, size_t *out_len)
{
	size_t nl = name == NULL ? 0 : strnlen(name, FSS_NAME_MAX + 1);
	uint8_t *buf;

	*out = NULL;
	*out_len = 0;
	if (nl == 0 || nl > FSS_NAME_MAX || body == NULL || body_len < FSC_SEAL_OVERHEAD ||
	    body_len > SIZE_MAX - HEADER - nl)
		return false;
	if ((buf = malloc(HEADER + nl + body_len)) == NULL)
		return false;
	buf[0] = FSS_MAGIC0;
	buf[1] = FSS_MAGIC1;
	buf[2] = (uint8_t)nl;
	memcpy(buf + HEADER, name, nl);
	memcpy(buf + HEADER + nl, body, body_len);
	*out = buf;
	*out_len = HEADER + nl + body_len;
	return true;
}

bool
fss_sealed_under(const uint8_t *in, size_t len, const char *name)
{
	fss_parts p;
	return name != NULL && fss_parse(in, len, &p) && strcmp(p.name, name) == 0;
}

bool
fss_seal(const uint8_t dek[FSC_KEY_LEN], const char *name, const void *aad, size_t aad_len,
         const uint8_t *plain, size_t len, uint8_t **out, size_t *out_len)
{
	uint8_t *body = NULL;
	size_t bl = 0, nl = name == NULL ? 0 : strnlen(name, FSS_NAME_MAX + 1);
	bool ok;

	*out = NULL;
	*out_len = 0;
	if (nl == 0 || nl > FSS_NAME_MAX) /* refuse before spending randomness */
		return false;
	if (!fsc_seal(dek, aad, aad_len, plain, len, &body, &bl))
		return false;
	ok = fss_frame(name, body, bl, out, out_len);
	free(body); /* ciphertext: nothing secret in it */
	return ok;
}

bool
fss_open(const uint8_t dek[FSC_KEY_LEN], const void *aad, size_t aad_len, const uint8_t *in,
         size_t len, uint8_t **out, size_t *out_len)
{
	fss_parts p;

	*out = NULL;
	*out_len = 0;
	if (!fss_parse(in, len, &p))
		return false;
	return fsc_open(dek, aad, aad_len, p.body, p.body_len, out, out_len);
}

bool
fss_dek_case(const char *case_id, char name[FSS_DEK_NAME_MAX + 1])
{
	name[0] = '\0';
	if (!fsp_case_id_valid(case_id))
		return false;
	snprintf(name, FSS_DEK_NAME_MAX + 1, "c:%s", case_id);
	return true;
}

bool
fss_dek_record(const char *collection, const char *id, char name[FSS_DEK_NAME_MAX + 1])
{
	size_t il = id == NULL ? 0 : strnlen(id, FSP_ID_MAX + 1);
	name[0] = '\0';
	if (collection == NULL || !fsp_collection_valid(collection) || il == 0 || il > FSP_ID_MAX)
		return false;
	snprintf(name, FSS_DEK_NAME_MAX + 1, "r:%s/%s", collection, id);
	return true;
}

bool
fss_dek_for(const char *collection, const char *id, const uint8_t *payload, size_t len,
            char name[FSS_DEK_NAME_MAX + 1])
{
	char case_id[FSP_ID_MAX + 1];

	if (!fss_dek_record(collection, id, name))
		return false;
	if (strcmp(collection, "case") == 0)
		return fss_dek_case(id, name);
	if (strcmp(collection, "contact") == 0 && fsp_contact_case_id(payload, len, case_id))
		return fss_dek_case(case_id, name);
	return true;
}

size_t
fss_record_aad(uint8_t aad[FSS_RECORD_AAD_MAX], const char *collection, const char *id)
{
	size_t cl = collection == NULL ? 0 : strnlen(collection, FSP_COLLECTION_MAX + 1);
	size_t il = id == NULL ? 0 : strnlen(id, FSP_ID_MAX + 1);
	if (cl == 0 || cl > FSP_COLLECTION_MAX || il == 0 || il > FSP_ID_MAX)
		return 0;
	memcpy(aad, collection, cl);
	aad[cl] = '\0';
	memcpy(aad + cl + 1, id, il);
	return cl + 1 + il;
}
