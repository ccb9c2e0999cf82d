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

#endif
