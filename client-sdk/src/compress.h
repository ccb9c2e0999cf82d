/*
 * compress.h - the optional encodings of a pull page (compress.c; issue 15,
 * protocol.md §5.1): records that came as one zstd frame, and lean siblings
 * whose collection, id and scope were left out because their RecordState
 * carries them.
 *
 * Also the other direction: a change set's changes compressed for a daemon
 * that offered zstd.
 *
 * Layer: wire (over base; no LMDB, no socket).
 *
 * Contract: nothing from the network is trusted. A compressed page is
 * decompressed only when it declares its size, the size is at most the
 * cap, and the frame says the same size; the cap is checked before any
 * allocation, so a zip bomb is FS_ERR_PROTOCOL, never a crash or a large
 * allocation. Both functions change the page in place; what they add is
 * freed with it (fieldsync__v1__pull_reply__free_unpacked or its
 * envelope's, default allocator). Thread-safe, no state.
 */
#ifndef FIELDSYNC_SDK_COMPRESS_H
#define FIELDSYNC_SDK_COMPRESS_H

#include "base.h"

#define SDK_ENCODING_ZSTD 1u                  /* Hello.accept_encoding bit */
#define SDK_PAGE_RAW_MAX ((uint64_t)64 << 20) /* the largest records_size taken */

/*
 * When rep carries records_zstd: decompresses it (at most cap bytes) and
 * moves the records it holds into rep->records. FS_OK (also when there is
 * nothing to do), FS_ERR_PROTOCOL (records both ways, no size, over the
 * cap, a frame that does not decode to the size, records that do not
 * decode), FS_ERR_NOMEM.
 */
fs_err sdk_page_inflate(sdk_pull_reply *rep, uint64_t cap);

/* Fills a sibling's empty collection, id and scope from its RecordState. */
fs_err sdk_page_unlean(sdk_pull_reply *rep);

/*
 * A change set to send compressed (protocol.md §4.1): when req's changes
 * encode to at least SDK_PUSH_FLOOR bytes and shrink, *out becomes a
 * shallow copy of req with the changes in out->changes_zstd (*z, malloc'd:
 * the caller frees it after sending) and returns true; else false and
 * nothing is set (send req as it is). req is not changed.
 */
#define SDK_PUSH_FLOOR 512
bool sdk_push_deflate(const sdk_push_request *req, sdk_push_request *out, uint8_t **z);

#endif
