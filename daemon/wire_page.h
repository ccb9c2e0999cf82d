/*
 * wire_page: a pull page in the encodings a device asked for (wire layer;
 * issue 15, protocol.md §5.1). Peers that ask for nothing get exactly what
 * wire_pull_reply() builds.
 *
 *   lean      each sibling Record leaves out collection, id and scope when
 *             they equal its RecordState's (the device fills them back in)
 *   zstd      the records of a page of at least WIRE_PAGE_FLOOR encoded
 *             bytes travel as one zstd frame in PullReply.records_zstd
 *             with their size in records_size, when that is smaller
 *
 * The page is borrowed and left exactly as it was. Pure: any thread.
 * wire_push_inflate opens the other direction's compressed change set.
 */
#ifndef FIELDSYNCD_WIRE_PAGE_H
#define FIELDSYNCD_WIRE_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fieldsync/v1/sync.pb-c.h"

#define WIRE_ENCODING_ZSTD 1u /* Hello.accept_encoding, Welcome.encodings bit */
#define WIRE_PAGE_FLOOR 512   /* smaller record bytes are never compressed */

/* Builds the Envelope for page r: *out malloc'd (the caller's), FSD_NOMEM. */
fsd_err wire_pull_page(uint64_t request_id, const Fieldsync__V1__PullReply *r, uint32_t encoding,
                       bool lean, uint8_t **out, size_t *len);

/*
 * A change set that came compressed (protocol.md §4.1): opens
 * p->changes_zstd (at most cap bytes, checked first) and decodes its
 * changes into p->changes with the same heap budget as
 * wire_decode_envelope. FSD_OK (also when there is nothing to open; p is
 * then as in §4), FSD_TOO_LARGE (over the cap), FSD_INVALID (changes both
 * ways, a frame that is not of its declared size, changes that do not
 * decode), FSD_NOMEM. What it adds is freed with the envelope (default
 * allocator).
 */
fsd_err wire_push_inflate(Fieldsync__V1__PushRequest *p, uint64_t cap);

#endif
