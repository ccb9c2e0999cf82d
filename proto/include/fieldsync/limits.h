/*
 * libfieldsync-proto: the size limits of PROTOCOL.md §3 and the ones
 * fieldsync adds (docs/protocol-notes.md). One definition, shared by the
 * daemon and the tablet SDK, included by every core header that sizes a
 * buffer (merge.h, casework.h, keys.h, seal.h). Constants only.
 */
#ifndef FIELDSYNC_LIMITS_H
#define FIELDSYNC_LIMITS_H

#define FSP_COLLECTION_MAX 64 /* [a-z][a-z0-9_-]{0,63} */
#define FSP_ID_MAX 128        /* 1..128 bytes */
#define FSP_SCOPE_MAX 64      /* [a-z0-9][a-z0-9._-]{0,63} */
#define FSP_REPLICA_MAX 64    /* 1..64 bytes, no '\0' */
#define FSP_DOTS_MAX 256      /* dots in one version vector */

/* The largest frame a client must accept (libfieldsync's ZMQ_MAXMSGSIZE
 * and its cap on a decompressed page), and the most bytes the daemon puts
 * into one pull page (its records, encoded): under the first by room for
 * the Envelope around them. docs/protocol-notes.md "Record caps, page
 * bound and push quotas". */
#define FSP_RECV_MAX (64u << 20)
#define FSP_PAGE_BYTES_MAX (60u << 20)

#endif
