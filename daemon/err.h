/*
 * err: the daemon's one error convention (infrastructure layer).
 *
 * Every daemon function that can fail returns an fsd_err (FSD_OK = 0) and
 * passes results through out-parameters. LMDB, ZeroMQ, OpenSSL and errno
 * codes are mapped to it at the module edge that meets them and never leak
 * further. A sentence buffer (char *err, size_t errlen) is used only where
 * operator input is parsed (config, rule tables, key files): there the
 * sentence is what the operator reads.
 *
 * Three shapes are not an fsd_err, on purpose: a constructor of an opaque
 * handle that tests and tools call (store_open, zap_start, ops_http_start,
 * as fs_store_open in STYLE.md) returns the handle or NULL, logged; a
 * predicate (peer_may) returns a bool; a decoder of
 * untrusted bytes (wire_decode_envelope) returns the message or NULL.
 *
 * What a peer is told is a wire code (Fieldsync__V1__Error__Code), an enum
 * value, never a string: wire_code() maps an fsd_err to it; the reason
 * text of a rejected change names the code from the generated descriptor.
 * Texts for operators come from fsd_strerror() alone.
 */
#ifndef FIELDSYNCD_ERR_H
#define FIELDSYNCD_ERR_H

typedef enum fsd_err {
	FSD_OK = 0,
	FSD_NOTFOUND,  /* no such record, key, device or entry */
	FSD_EXISTS,    /* already there (and kept as it was) */
	FSD_FULL,      /* the LMDB map is full: grow it and retry */
	FSD_NOSPACE,   /* the disk refused a write (full, quota, I/O): BUSY */
	FSD_CORRUPT,   /* stored bytes do not decode */
	FSD_NOMEM,     /* out of memory */
	FSD_INVALID,   /* input breaks a rule (a peer's or an operator's) */
	FSD_FORBIDDEN, /* not granted to this peer */
	FSD_TOO_LARGE, /* over a configured cap */
	FSD_BUSY,      /* try again later (overload, quota, draining) */
	FSD_NOKEY,     /* a sealed value whose data key is gone (purged) */
	FSD_IO,        /* a file or socket operation failed */
	FSD_ERROR,     /* anything else; logged where it happened */
} fsd_err;

/* A short, fixed English sentence for e; never NULL. */
const char *fsd_strerror(fsd_err e);

/* Process exit codes of fieldsyncd and its subcommands (fieldsyncd(8)). */
enum fsd_exit {
	FSD_EXIT_OK = 0,
	FSD_EXIT_FAIL = 1,  /* the command failed; the message says why */
	FSD_EXIT_USAGE = 2, /* bad options or arguments */
};

#endif
