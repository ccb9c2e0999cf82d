/*
 * fieldsyncd: the one private header. Each module's interface is a block
 * below, in the order a request travels: config, log, store, feed, validate,
 * writer, transport.
 *
 * Threads (STYLE.md): the transport thread owns the ROUTER and serves reads
 * (Hello, Pull) itself; the writer thread owns the only LMDB write
 * transaction. They talk over an inproc PAIR carrying job pointers.
 */
#ifndef FIELDSYNCD_INTERNAL_H
#define FIELDSYNCD_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/merge.h"
#include "fieldsync/v1/sync.pb-c.h"

#define FIELDSYNCD_VERSION "0.1.0"
#define FIELDSYNC_PROTOCOL 1

typedef Fieldsync__V1__Envelope fs_envelope;
typedef Fieldsync__V1__PushRequest fs_push_request;
typedef Fieldsync__V1__PushReply fs_push_reply;
typedef Fieldsync__V1__ChangeResult fs_change_result;
typedef Fieldsync__V1__RecordState fs_record_state;
typedef Fieldsync__V1__Error__Code fs_error_code;

/* ---- config.c ----------------------------------------------------------- */

typedef struct config {
	char data_dir[512];
	char sync_endpoint[256];
	char reminder_endpoint[256];
	char ops_listen[256];
	bool dev;
	uint64_t map_size;          /* initial LMDB map size, bytes */
	uint64_t map_size_max;      /* the map never grows past this */
	uint64_t max_message_bytes; /* ZMQ_MAXMSGSIZE */
	uint32_t max_changes_per_push;
	uint64_t max_payload_bytes;
	uint32_t pull_limit_max;
	uint64_t replies_kept;      /* stored change-set replies */
	uint32_t batch_max_jobs;    /* change sets per group commit */
	int log_level;              /* LOG_DEBUG .. LOG_ERROR */
} config;

typedef enum {
	CONFIG_RUN = 0, /* start the daemon */
	CONFIG_EXIT_OK, /* --help or --version was printed */
	CONFIG_EXIT_ERR /* bad option; the message was printed */
} config_action;

/* Fills *c from defaults, then FIELDSYNC_* environment, then argv. */
config_action config_load(config *c, int argc, char **argv);

/* ---- log.c -------------------------------------------------------------- */

enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(int level);
int log_level_parse(const char *s); /* -1 when unknown */

/*
 * Writes one JSON object per line to stderr: {"ts":..,"level":..,"msg":..,
 * then the key/value pairs}. The variadic list is (const char *key,
 * int kind, value) triples ended by NULL; kinds are LF_STR (const char *),
 * LF_INT (int64_t) and LF_UINT (uint64_t). Never pass payload content.
 */
enum { LF_STR = 1, LF_INT, LF_UINT };
void log_event(int level, const char *msg, ...);
/* Typed key/value pairs for log_event(): log_event(LOG_INFO, "m", LU("n", x), NULL). */
#define LS(k, v) (k), LF_STR, (const char *)(v)
#define LU(k, v) (k), LF_UINT, (uint64_t)(v)
#define LI(k, v) (k), LF_INT, (int64_t)(v)

/* ---- store.c ------------------------------------------------------------ */

typedef struct store store;
typedef struct store_txn store_txn;

typedef enum {
	STORE_OK = 0,
	STORE_NOTFOUND,
	STORE_FULL,    /* map full: grow and retry */
	STORE_NOSPACE, /* the disk refused the write (full, quota, file size, I/O): BUSY */
	STORE_CORRUPT, /* a stored value does not decode */
	STORE_ERROR,   /* anything else; logged where it happened */
} store_rc;

/* Opens (creating when new) the store under dir. NULL on failure, logged. */
store *store_open(const char *dir, uint64_t map_size, uint64_t map_size_max);
void store_close(store **s);
const char *store_server_id(const store *s);

/* Read transactions: short, any thread. */
store_rc store_read_begin(store *s, store_txn **t);
void store_read_end(store_txn **t);

/* The one write transaction, writer thread only. */
store_rc store_write_begin(store *s, store_txn **t);
store_rc store_nested_begin(store_txn *parent, store_txn **t);
store_rc store_commit(store_txn **t); /* durable on STORE_OK */
void store_abort(store_txn **t);
/* Doubles the map (up to the maximum); no transaction may be open. */
store_rc store_grow(store *s);

/* The last seq handed out, as committed or as this write txn left it. */
uint64_t store_last_seq(store_txn *t);
/* Hands out the next seq inside write txn t. */
uint64_t store_next_seq(store_txn *t);

/*
 * Looks up a record. On STORE_OK *out is an unpacked RecordState the caller
 * frees with store_record_free().
 */
store_rc store_record_get(store_txn *t, const char *collection, const char *id,
                          fs_record_state **out);
/* Writes rs (its seq already set) and moves the record to rs->seq in the feed. */
store_rc store_record_put(store_txn *t, const fs_record_state *rs, uint64_t old_seq);
void store_record_free(fs_record_state *rs);

/*
 * Feed iteration: calls fn for each record with seq > since, ascending, until
 * fn returns false or the feed ends. *last is the seq of the last record
 * handed to fn (since when none). *more tells whether records remain.
 */
typedef bool (*store_feed_fn)(void *arg, fs_record_state *rs);
store_rc store_feed_scan(store_txn *t, uint64_t since, store_feed_fn fn, void *arg,
                         uint64_t *last, bool *more);

/* Stored change-set replies. *data is valid until the transaction ends. */
store_rc store_reply_get(store_txn *t, const char *changeset_id, const uint8_t **data,
                         size_t *len);
store_rc store_reply_put(store_txn *t, const char *changeset_id, const uint8_t *data,
                         size_t len, uint64_t keep);

/* ---- validate.c --------------------------------------------------------- */

/*
 * Checks a push before anything is written. Returns true when every change
 * may go to the writer. Otherwise either *err_code is set (the whole request
 * is refused with an Error envelope: caps, changeset id) and *reply is NULL,
 * or *reply is a PushReply with every result REJECTED, the bad change(s)
 * saying why (caller frees with validate_reply_free()).
 */
bool validate_push(const config *c, const fs_push_request *p, fs_error_code *err_code,
                   char *err_msg, size_t err_len, fs_push_reply **reply);
void validate_reply_free(fs_push_reply *r);

/*
 * Builds a PushReply for n changes where change `bad` was rejected for
 * `why`: that result says why (prefixed with code), every other says it was
 * not applied. Used by validation and by the writer (a reused dot).
 */
fs_push_reply *validate_reject_all(const char *changeset_id, size_t n, size_t bad,
                                   const char *code, const char *why);

/* ---- wire helpers (transport.c) ------------------------------------------ */

/* Packs an envelope into a malloc'd buffer. NULL on out of memory. */
uint8_t *wire_pack(const fs_envelope *e, size_t *len);
/* Packs Error{code, message, retry_after_ms} answering request_id. */
uint8_t *wire_error(uint64_t request_id, fs_error_code code, const char *message,
                    uint32_t retry_after_ms, size_t *len);
int64_t wire_now_ms(void);

/* ---- writer.c ----------------------------------------------------------- */

/* One push on its way through the writer; owned by whoever holds it. */
typedef struct push_job {
	uint8_t routing_id[256];
	size_t routing_len;
	uint64_t request_id;
	fs_envelope *request; /* unpacked; its push is validated */
	uint8_t *reply;       /* packed reply envelope, set by the writer */
	size_t reply_len;
	int64_t received_ms;
} push_job;

typedef struct writer writer;

/* Starts the writer thread; it connects a PAIR to `pipe_endpoint`. */
writer *writer_start(void *zctx, const char *pipe_endpoint, store *s, const config *c);
/* Waits for the thread to end after it was told to stop over the pipe. */
void writer_join(writer **w);
void push_job_free(push_job *j);

/* Messages on the pipe: a pointer-sized frame holding a push_job *, or a
 * zero-length frame meaning "stop after what is queued" (to the writer) or
 * "stopped" (from the writer). */

/* ---- feed.c ------------------------------------------------------------- */

/* Answers a PullRequest: a packed Envelope in *out (malloc'd). */
store_rc feed_pull(store *s, const config *c, uint64_t request_id,
                   const Fieldsync__V1__PullRequest *req, uint8_t **out, size_t *len);

/* ---- transport.c -------------------------------------------------------- */

typedef struct daemon_stats {
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t malformed;
	atomic_uint_fast64_t pushes;
	atomic_uint_fast64_t changes_applied;
	atomic_uint_fast64_t commits;
	atomic_uint_fast64_t busy;
	atomic_uint_fast64_t replies_unroutable;
} daemon_stats;

extern daemon_stats g_stats;

/* Runs the daemon until SIGTERM/SIGINT; returns the process exit code. */
int transport_run(const config *c, store *s);

#endif
