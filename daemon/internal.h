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
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "err.h"
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
	char time_zone[128];        /* IANA zone of the deadline arithmetic */
	char rules_file[512];       /* JSON rule table; "" = METHOD.md's defaults */
	char master_key_file[512];  /* encryption at rest; "" = FIELDSYNC_MASTER_KEY or none */
	char config_file[512];      /* the INI file read, "" for none */
	uint64_t min_free_bytes;    /* readiness needs this much free disk */
	int argc;                   /* what config_load read, for a reload (SIGHUP) */
	char **argv;
	int64_t clock_offset_ms;    /* testing aid: shifts the daemon's clock */
	int log_level;              /* LOG_DEBUG .. LOG_ERROR */
} config;

typedef enum {
	CONFIG_RUN = 0, /* start the daemon */
	CONFIG_EXIT_OK, /* --help or --version was printed */
	CONFIG_EXIT_ERR /* bad option; the message was printed */
} config_action;

/* Fills *c from defaults, then the INI file, then FIELDSYNC_* environment,
 * then argv. */
config_action config_load(config *c, int argc, char **argv);
/* Prints the effective configuration as INI, secrets redacted. */
void config_print(const config *c, FILE *f);

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
/* LMDB figures for /metrics: map size, bytes in use, reader slots taken. */
void store_stats(store *s, uint64_t *map_size, uint64_t *used, uint32_t *readers);
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
 * fn says FEED_STOP or the feed ends. fn owns rs from the call on (it keeps
 * it or frees it with store_record_free), whatever it answers. *last is the
 * seq of the last record fn took or skipped (since when none). *more tells
 * whether records remain after *last.
 */
typedef enum {
	FEED_TAKE = 0, /* taken: go on */
	FEED_SKIP,     /* not for this reader: go on (it still counts as read) */
	FEED_STOP,     /* the page is full: stop before this record */
} feed_verdict;
typedef feed_verdict (*store_feed_fn)(void *arg, store_txn *t, fs_record_state *rs);
store_rc store_feed_scan(store_txn *t, uint64_t since, store_feed_fn fn, void *arg,
                         uint64_t *last, bool *more);

/* Scopes a record was in before it moved (PROTOCOL.md §5 `revoked`). */
store_rc store_former_scope_add(store_txn *t, const char *collection, const char *id,
                                const char *scope);
/* True when one of the record's former scopes is in the given set. */
bool store_former_scope_any(store_txn *t, const char *collection, const char *id,
                            bool (*granted)(const void *arg, const char *scope),
                            const void *arg);

/*
 * Generic tables for the modules that keep their own layout (reminders.c).
 * Keys and values are bytes; *val is valid until the transaction ends.
 */
typedef enum {
	STORE_T_CASE_CONTACTS = 0, /* [u8 len][case_id][contact_id] -> "" */
	STORE_T_REMINDERS,         /* [u8 len][case_id][reminder_id] -> ReminderRow */
	STORE_T_TIMERS,            /* [u64 BE fire_ms][reminders key] -> "" */
	STORE_T_EVENTS,            /* u64 BE seq -> ReminderEvent */
	STORE_T_DEVICES,           /* client public key (Z85) -> DeviceRow (auth.c) */
	STORE_T_DEVICE_NAMES,      /* device name -> client public key (Z85) */
	STORE_T_KEYS,              /* data-key name -> wrapped DEK (crypto at rest) */
	STORE_T_FORMER_SCOPES,     /* key(collection, id) -> scopes it was in before */
	STORE_T_AUDIT,             /* u64 BE seq -> one audit entry (JSON text) */
	STORE_T_COUNT
} store_table;

store_rc store_kv_get(store_txn *t, store_table tb, const void *key, size_t klen,
                      const void **val, size_t *vlen);
/* append: the key sorts after every key in the table (MDB_APPEND). */
store_rc store_kv_put(store_txn *t, store_table tb, const void *key, size_t klen,
                      const void *val, size_t vlen, bool append);
store_rc store_kv_del(store_txn *t, store_table tb, const void *key, size_t klen);
/* Calls fn for each entry with key >= from whose key starts with prefix
 * (plen 0: any), in key order, until fn returns false. fn must not write to
 * the table it is walking. */
typedef bool (*store_kv_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                            size_t vlen);
store_rc store_kv_scan(store_txn *t, store_table tb, const void *from, size_t flen,
                       const void *prefix, size_t plen, store_kv_fn fn, void *arg);
/* Named u64 counters in meta ("event_seq", "published_seq"); 0 when absent. */
uint64_t store_meta_u64(store_txn *t, const char *name);
store_rc store_meta_set_u64(store_txn *t, const char *name, uint64_t v);
void store_put_be64(uint8_t *p, uint64_t v);
uint64_t store_get_be64(const uint8_t *p);

/* Stored change-set replies. *data is valid until the transaction ends. */
store_rc store_reply_get(store_txn *t, const char *changeset_id, const uint8_t **data,
                         size_t *len);
store_rc store_reply_put(store_txn *t, const char *changeset_id, const uint8_t *data,
                         size_t len, uint64_t keep);

/* ---- peers: who a request comes from (validate.c) ------------------------ */

#define AUTH_NAME_MAX 64
#define AUTH_SCOPES_MAX 32
#define AUTH_Z85_KEY_LEN 40

/* What a request may do, from the authenticated key (or --dev). Copied into
 * each push job, so a revocation never races a queued change set. */
typedef struct peer_auth {
	bool all_scopes; /* --dev: every scope */
	bool may_sync;   /* devices push and pull; schedulers only replay */
	char name[AUTH_NAME_MAX + 1]; /* the enrolled device name; --dev: Hello's replica id */
	size_t n_scopes;
	char scopes[AUTH_SCOPES_MAX][FSP_SCOPE_MAX + 1];
} peer_auth;

bool peer_may(const peer_auth *p, const char *scope);
/* peer_may() for callbacks taking a const void *. */
bool peer_may_cb(const void *peer, const char *scope);

/* ---- keyring.c: encryption at rest --------------------------------------- */

typedef struct keyring keyring;

/* Loads the master keys (file first, else env text) and opens DATA_DIR/keys.
 * NULL with a sentence in err. */
keyring *keyring_open(const char *data_dir, const char *key_file, const char *key_env,
                      char *err, size_t errlen);
void keyring_close(keyring **k);
const char *keyring_current_id(const keyring *k);
/* The DEK a record value is sealed with: "c:<case>" or "r:<collection>/<id>". */
void keyring_dek_name(const char *collection, const char *id, const uint8_t *payload,
                      size_t len, char *name, size_t namelen);
/* Seals in[0..len) with DEK `name` (made when absent); *out malloc'd. */
bool keyring_seal(keyring *k, const char *name, const void *aad, size_t aad_len,
                  const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);
bool keyring_is_sealed(const uint8_t *in, size_t len);
enum { KEYRING_PLAIN = 0, KEYRING_OPENED, KEYRING_NO_KEY, KEYRING_BAD };
/* Opens a sealed value (*out malloc'd, or NULL for an empty one). Returns
 * KEYRING_PLAIN for a value that is not sealed (*out NULL: use it as is),
 * KEYRING_NO_KEY when its DEK is gone (purged) or k is NULL, KEYRING_BAD
 * when it does not verify. */
int keyring_open_value(keyring *k, const void *aad, size_t aad_len, const uint8_t *in,
                       size_t len, uint8_t **out, size_t *out_len);
/* Destroys DEK `name` (crypto-shredding). */
bool keyring_destroy(keyring *k, const char *name);
/* Rewraps every DEK with the current master key. */
bool keyring_rewrap_all(keyring *k, size_t *n_rewrapped, char *err, size_t errlen);

/* Gives the store a keyring: record payloads are sealed on the way in and
 * opened on the way out. The store does not own it. */
void store_set_keyring(store *s, keyring *k);
keyring *store_keyring(const store *s);
/* The record's scope, seq and purge mark without opening its payloads. */
store_rc store_record_head(store_txn *t, const char *collection, const char *id,
                           char scope[FSP_SCOPE_MAX + 1], uint64_t *seq, bool *purged);
/* Writes rs again in place (same seq, the feed untouched): re-sealing it
 * after its data key was replaced. */
store_rc store_record_rewrite(store_txn *t, const fs_record_state *rs);
/* Seals/opens an opaque value (reminder rows) with DEK `name`; without a
 * keyring both copy. *out malloc'd. */
store_rc store_seal(store_txn *t, const char *name, const void *aad, size_t aad_len,
                    const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);
store_rc store_unseal(store_txn *t, const void *aad, size_t aad_len, const uint8_t *in,
                      size_t len, uint8_t **out, size_t *out_len);

/* ---- validate.c --------------------------------------------------------- */

/*
 * Checks a push before anything is written. Returns true when every change
 * may go to the writer. Otherwise either *err_code is set (the whole request
 * is refused with an Error envelope: caps, changeset id) and *reply is NULL,
 * or *reply is a PushReply with every result REJECTED, the bad change(s)
 * saying why (caller frees with validate_reply_free()).
 */
bool validate_push(const config *c, const peer_auth *peer, const fs_push_request *p,
                   fs_error_code *err_code, char *err_msg, size_t err_len,
                   fs_push_reply **reply);
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

/* ---- reminders.c -------------------------------------------------------- */

typedef struct reminders reminders;

/* Events committed and ready to publish: topic + packed ReminderEvent each. */
typedef struct event_batch {
	size_t n, cap;
	char **topics;
	uint8_t **data;
	size_t *len;
	uint64_t last_seq;
} event_batch;

void event_batch_free(event_batch *b);

/* Loads the time zone and the rule table; NULL with a sentence in err. */
reminders *reminders_new(const config *c, char *err, size_t errlen);
void reminders_free(reminders **r);
/* The rule table of c (--rules, else METHOD.md's); false with err. SIGHUP
 * loads a new one and the writer installs it with reminders_set_rules(): it
 * applies to every case evaluated from then on. */
struct rules_config;
bool reminders_load_rules(const config *c, struct rules_config *out, char *err, size_t errlen);
void reminders_set_rules(reminders *r, const struct rules_config *rc);

/*
 * Called by the writer for every record it writes, inside the write txn:
 * keeps the case -> contacts index and remembers which cases to evaluate.
 * before may be NULL (a new record).
 */
store_rc reminders_note_record(reminders *r, store_txn *t, const fs_record_state *before,
                               const fs_record_state *after);
/* Evaluates the cases noted since the last call, at now_ms, in txn t. */
store_rc reminders_flush(reminders *r, store_txn *t, int64_t now_ms);
/*
 * Erasure: every reminder of case_id goes, in txn t; an active one is first
 * CANCELLED (the event is stored; the daemon publishes events another
 * process stored). Works without a reminders handle (the purge command).
 */
store_rc reminders_erase_case(store_txn *t, const char *case_id, int64_t now_ms,
                              size_t *n_erased);
/* Fires the timers due at now_ms, at most 8192 in one call (transactions
 * stay small; the writer comes back at once while any is due). */
store_rc reminders_tick(reminders *r, store_txn *t, int64_t now_ms);
/* How many reminders of rule are in state now (for /metrics). */
uint64_t reminders_count(store_txn *t, int rule, int state);
/* The earliest timer, 0 when none. */
int64_t reminders_next_fire(reminders *r, store_txn *t);

/* The events emitted since the last take form the outbox. A mark lets a
 * rolled-back change set drop the events it emitted. */
size_t reminders_mark(const reminders *r);
void reminders_rollback(reminders *r, size_t mark);
/* Hands over the outbox (NULL when empty); the caller frees it. */
event_batch *reminders_take(reminders *r);
/* Stored events after seq `after` (e.g. written by another process). */
event_batch *reminders_events_after(store_txn *t, uint64_t after);
/* Events after published_seq that a crash may have kept from subscribers. */
event_batch *reminders_unpublished(reminders *r, store_txn *t);
/* Records (lazily, in t) that everything up to seq was handed to the publisher. */
store_rc reminders_set_published(reminders *r, store_txn *t, uint64_t seq);

/* Answers a ReplayRequest: a packed Envelope in *out (malloc'd). */
store_rc reminders_replay(store *s, const config *c, const peer_auth *peer, uint64_t request_id,
                          const Fieldsync__V1__ReplayRequest *req, uint8_t **out,
                          size_t *len);

/* ---- auth.c: server keys, the device registry, ZAP ---------------------- */

typedef enum { ROLE_DEVICE = 0, ROLE_SCHEDULER = 1 } device_role;

typedef struct device_info {
	char name[AUTH_NAME_MAX + 1];            /* [a-z0-9][a-z0-9._-]{0,63} */
	char public_key[AUTH_Z85_KEY_LEN + 1];   /* Z85 */
	device_role role;
	bool revoked;
	int64_t enrolled_at_ms, revoked_at_ms;
	size_t n_scopes;
	char scopes[AUTH_SCOPES_MAX][FSP_SCOPE_MAX + 1];
} device_info;

/*
 * The CURVE server key pair lives in DIR/server.key (secret key, Z85, mode
 * 0600) and DIR/server.pub (public key, Z85). auth_server_keys_load refuses
 * missing files and a secret key file that group or others may read, and
 * says why in err.
 */
bool auth_server_keys_create(const char *data_dir, char *err, size_t errlen);
bool auth_server_keys_load(const char *data_dir, char pub[AUTH_Z85_KEY_LEN + 1],
                           char sec[AUTH_Z85_KEY_LEN + 1], char *err, size_t errlen);

/* The registry, in the store's tables (any process: LMDB serialises writers). */
store_rc auth_device_by_key(store_txn *t, const char *public_key, device_info *out);
store_rc auth_device_by_name(store_txn *t, const char *name, device_info *out);
store_rc auth_device_put(store_txn *t, const device_info *d);
typedef bool (*auth_device_fn)(void *arg, const device_info *d);
store_rc auth_device_list(store_txn *t, auth_device_fn fn, void *arg);
bool auth_has_scope(const device_info *d, const char *scope);

/*
 * Appends one entry to the audit table inside write txn t: key u64 BE seq
 * (1 + the last one), value one JSON object {"ts_ms","actor","action",
 * "collection","id","detail"} (empty or NULL fields left out; actor NULL:
 * "unknown"). Strings are cut at 128 bytes (detail 512). Never pass payload
 * content: identifiers only.
 */
store_rc audit_append(store_txn *t, const char *actor, const char *action,
                      const char *collection, const char *id, const char *detail);

/*
 * The ZAP handler (RFC 27): a thread with a REP socket bound to
 * inproc://zeromq.zap.01 in zctx. It admits a CURVE client only when its
 * public key is enrolled and not revoked (looked up for every handshake, so
 * enrollments and revocations take effect at once) and answers 200 with
 * User-Id = the device name; everything else (NULL or PLAIN mechanism,
 * unknown or revoked key) gets 400. Start it before binding the sockets.
 */
typedef struct zap_handler zap_handler;
zap_handler *zap_start(void *zctx, store *s);
void zap_stop(zap_handler **z);

/* ---- purge.c: erasure ------------------------------------------------------ */

typedef struct purge_report {
	size_t records, reminders, keys_destroyed;
} purge_report;

/*
 * Purges collection/id (whole_case: the case id and all its contacts) in one
 * write transaction of s, with an audit entry by actor. See purge.c.
 */
store_rc purge_run(store *s, const char *collection, const char *id, bool whole_case,
                   const char *actor, purge_report *rep);

/* ---- writer.c ----------------------------------------------------------- */

/* One push on its way through the writer; owned by whoever holds it. */
typedef struct push_job {
	uint8_t routing_id[256];
	size_t routing_len;
	uint64_t request_id;
	peer_auth auth;       /* who sent it, at the time it arrived */
	fs_envelope *request; /* unpacked; its push is validated */
	uint8_t *reply;       /* packed reply envelope, set by the writer */
	uint8_t m_result;     /* metric_changeset_result, counted after the commit */
	uint32_t m_changes[5];/* changes by metric_change_result */
	size_t reply_len;
	int64_t received_ms;
} push_job;

typedef struct writer writer;

/* Starts the writer thread; it connects a PAIR to `pipe_endpoint`. It owns
 * rem from then on (fires timers, evaluates cases, frees it at the end). */
writer *writer_start(void *zctx, const char *pipe_endpoint, store *s, const config *c,
                     reminders *rem);
/* Waits for the thread to end after it was told to stop over the pipe. */
void writer_join(writer **w);
void push_job_free(push_job *j);

/* Messages on the pipe: a frame of PIPE_MSG_LEN bytes, a tag byte then a
 * pointer: PIPE_JOB + push_job * (both ways) or PIPE_EVENTS + event_batch *
 * (writer to transport: publish these); or a zero-length frame meaning "stop
 * after what is queued" (to the writer) or "stopped" (from the writer). */
enum { PIPE_JOB = 'J', PIPE_EVENTS = 'E', PIPE_RULES = 'R' /* a malloc'd rules_config */ };
#define PIPE_MSG_LEN (1 + sizeof(void *))
bool pipe_send(void *sock, char tag, void *ptr, int flags);
/* Returns the tag (0 for the empty frame, -1 for nothing/error). */
int pipe_recv(void *sock, void **ptr, int flags);

/* ---- feed.c ------------------------------------------------------------- */

/* Answers a PullRequest: a packed Envelope in *out (malloc'd). */
store_rc feed_pull(store *s, const config *c, const peer_auth *peer, uint64_t request_id,
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
	atomic_uint_fast64_t events_published;
	atomic_uint_fast64_t replays;
} daemon_stats;

extern daemon_stats g_stats;

/* Runs the daemon until SIGTERM/SIGINT; returns the process exit code.
 * Takes ownership of rem. */
int transport_run(const config *c, store *s, reminders *rem);

/* reminders.c, for verify: re-runs the rules on case_id (loaded as the
 * writer loads it) in txn t and calls fn for every difference from the
 * stored rows: an implied reminder without a row, an active row whose due
 * time differs, an active row the data no longer implies. Ids only.
 * *n_checked grows by the reminders looked at. */
typedef void (*reminders_verify_fn)(void *arg, const char *case_id, const char *reminder_id,
                                    const char *problem);
store_rc reminders_verify_case(reminders *r, store_txn *t, const char *case_id,
                               reminders_verify_fn fn, void *arg, size_t *n_checked);

#endif
