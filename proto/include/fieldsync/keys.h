/*
 * libfieldsync-proto: the bytes of LMDB keys and of the integers stored in
 * them, as both hosts write them. The one implementation, used by the
 * daemon (data.mdb: records, feed, meta, the case index and reminder rows)
 * and by the tablet SDK (its store: records, outbox, inflight, meta).
 * Nothing changes on disk: these are the layouts both hosts already wrote.
 *
 *   record key   [u8 len(collection)][collection][id]      both hosts'
 *                `records` table, the SDK's `outbox`, the value of the
 *                daemon's `feed`; a collection is a key prefix
 *   case key     [u8 len(case_id)][case_id][tail]           the daemon's
 *                case_contacts (tail = contact id) and reminders (tail =
 *                reminder id); a case is a key prefix (tail "")
 *   be64         u64 big-endian: keys that must sort by number (the feed's
 *                seq, the reminder due index, the SDK's inflight sets)
 *   le64, le32   little-endian: counters and the schema number in meta
 *
 * Contract: pure functions; callers own every buffer. An encoder writes at
 * most the *_MAX bytes its buffer is declared with and returns the length,
 * or 0 (writing nothing) when an input is empty or too long: it never
 * truncates, so two different records never share a key. Decoders never
 * read past len. Thread-safe, no allocation, no logging.
 */
#ifndef FIELDSYNC_KEYS_H
#define FIELDSYNC_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/limits.h"

#define FSK_RECORD_KEY_MAX (1 + FSP_COLLECTION_MAX + FSP_ID_MAX)

/* Integers at p[0..8) (p[0..4) for le32), unaligned access allowed. */
void fsk_put_be64(uint8_t p[8], uint64_t v);
uint64_t fsk_get_be64(const uint8_t p[8]);
void fsk_put_le64(uint8_t p[8], uint64_t v);
uint64_t fsk_get_le64(const uint8_t p[8]);
void fsk_put_le32(uint8_t p[4], uint32_t v);
uint32_t fsk_get_le32(const uint8_t p[4]);

/*
 * The record key of (collection, id) into key: its length (2 ..
 * FSK_RECORD_KEY_MAX), or 0 when collection is not 1..FSP_COLLECTION_MAX
 * bytes or id not 1..FSP_ID_MAX bytes. Does not check the collection's
 * syntax (fsp_collection_valid does).
 */
size_t fsk_record_key(uint8_t key[FSK_RECORD_KEY_MAX], const char *collection, const char *id);

/*
 * The prefix every key of collection starts with ([u8 len][collection]):
 * its length, or 0 when collection is not 1..FSP_COLLECTION_MAX bytes.
 */
size_t fsk_record_prefix(uint8_t key[1 + FSP_COLLECTION_MAX], const char *collection);

/*
 * Splits a record key back into NUL-terminated collection and id. False
 * (both set to "") when key[0..len) is not one fsk_record_key could have
 * made: a length byte of 0 or over FSP_COLLECTION_MAX, an empty id or one
 * over FSP_ID_MAX, or a NUL byte in either part.
 */
bool fsk_record_key_split(const uint8_t *key, size_t len, char coll[FSP_COLLECTION_MAX + 1],
                          char id[FSP_ID_MAX + 1]);

/*
 * The case key of (case_id, tail) into key[0..cap): its length, or 0 when
 * case_id is not 1..FSP_ID_MAX bytes or the key does not fit in cap. tail
 * "" gives the case's prefix (for a scan).
 */
size_t fsk_case_key(uint8_t *key, size_t cap, const char *case_id, const char *tail);

#endif
