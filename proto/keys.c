/*
 * libfieldsync-proto (see fieldsync/keys.h): LMDB key layouts and integer
 * encodings shared by the daemon and the tablet SDK.
 *
 * Layer: the shared core; depends on nothing but libc. Every integer is
 * assembled byte by byte, so the bytes are the same on any host.
 */
#include <string.h>

#include "fieldsync/keys.h"

void
fsk_put_be64(uint8_t p[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t
fsk_get_be64(const uint8_t p[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void
fsk_put_le64(uint8_t p[8], uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t
fsk_get_le64(const uint8_t p[8])
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void
fsk_put_le32(uint8_t p[4], uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

uint32_t
fsk_get_le32(const uint8_t p[4])
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* strlen capped at max + 1: a length over max means "too long". */
static size_t
len_upto(const char *s, size_t max)
{
	return s == NULL ? 0 : strnlen(s, max + 1);
}

size_t
fsk_record_prefix(uint8_t key[1 + FSP_COLLECTION_MAX], const char *collection)
{
	size_t cl = len_upto(collection, FSP_COLLECTION_MAX);
	if (cl == 0 || cl > FSP_COLLECTION_MAX)
		return 0;
	key[0] = (uint8_t)cl;
	memcpy(key + 1, collection, cl);
	return 1 + cl;
}

size_t
fsk_record_key(uint8_t key[FSK_RECORD_KEY_MAX], const char *collection, const char *id)
{
	size_t il = len_upto(id, FSP_ID_MAX), n;
	if (il == 0 || il > FSP_ID_MAX || (n = fsk_record_prefix(key, collection)) == 0)
		return 0;
	memcpy(key + n, id, il);
	return n + il;
}

bool
fsk_record_key_split(const uint8_t *key, size_t len, char coll[FSP_COLLECTION_MAX + 1],
                     char id[FSP_ID_MAX + 1])
{
	size_t cl, il;

	coll[0] = '\0';
	id[0] = '\0';
	if (key == NULL || len < 2)
		return false;
	cl = key[0];
	if (cl == 0 || cl > FSP_COLLECTION_MAX || 1 + cl >= len)
		return false;
	il = len - 1 - cl;
	if (il > FSP_ID_MAX || memchr(key + 1, '\0', cl + il) != NULL)
		return false;
	memcpy(coll, key + 1, cl);
	coll[cl] = '\0';
	memcpy(id, key + 1 + cl, il);
	id[il] = '\0';
	return true;
}

size_t
fsk_case_key(uint8_t *key, size_t cap, const char *case_id, const char *tail)
{
	size_t cl = len_upto(case_id, FSP_ID_MAX), tl = tail == NULL ? 0 : strlen(tail);
	if (cl == 0 || cl > FSP_ID_MAX || key == NULL || cap < 1 + cl || tl > cap - 1 - cl)
		return 0;
	key[0] = (uint8_t)cl;
	memcpy(key + 1, case_id, cl);
	if (tl > 0)
		memcpy(key + 1 + cl, tail, tl);
	return 1 + cl + tl;
}
