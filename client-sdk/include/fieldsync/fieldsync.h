/*
 * libfieldsync: the tablet's offline store and its sync with fieldsyncd
 * (PROTOCOL.md). An app opens one store per device user, reads and writes
 * records while offline, and calls fs_sync() when the network is back.
 *
 * Conventions
 *   - Every function that can fail returns fs_err (FS_OK = 0); results come
 *     through out-parameters, which are left untouched on failure unless
 *     said otherwise.
 *   - Handles are opaque and come in pairs: fs_store_open/fs_store_close,
 *     fs_get/fs_record_free, fs_list_*()/fs_list_free. The close/free
 *     functions accept NULL (and a pointer to NULL) and null the pointer.
 *   - Every local write (put, delete, resolve) is durably committed before
 *     the call returns.
 *   - One fs_store may be used from several threads; fs_sync() may run in
 *     one thread while others read and write. A store directory may also be
 *     used by several processes at once (e.g. the CLI while an app runs),
 *     but must not be opened twice in one process (an LMDB rule).
 *   - No function logs; error texts never contain payload bytes.
 */
#ifndef FIELDSYNC_H
#define FIELDSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fs_err {
	FS_OK = 0,
	FS_ERR_INVALID,       /* a bad argument: name, id, scope or typed payload */
	FS_ERR_NOT_FOUND,     /* no such record (or it is deleted); no store at dir */
	FS_ERR_EXISTS,        /* fs_store_create: a store is already there */
	FS_ERR_NOMEM,         /* out of memory */
	FS_ERR_IO,            /* the local store could not be read or written */
	FS_ERR_CORRUPT,       /* stored data does not decode */
	FS_ERR_VERSION,       /* the store was written by an unknown schema */
	FS_ERR_FULL,          /* the local store is full (LMDB map or disk) */
	FS_ERR_TIMEOUT,       /* sync: no answer within the timeout; retry later */
	FS_ERR_NETWORK,       /* sync: the endpoint cannot be used (bad address) */
	FS_ERR_PROTOCOL,      /* sync: the peer answered outside PROTOCOL.md */
	FS_ERR_BUSY,          /* sync: the daemon asked to retry later (BUSY, UNAVAILABLE) */
	FS_ERR_REFUSED,       /* sync: the daemon refused us (FORBIDDEN, UNSUPPORTED_PROTOCOL) */
	FS_ERR_SERVER,        /* sync: the daemon reported an internal error; retry later */
	FS_ERR_KEY_REQUIRED,  /* the store is encrypted: open it with its key */
	FS_ERR_KEY_WRONG,     /* the key given does not open this store */
	FS_ERR_NOT_ENCRYPTED, /* a key was given for a store that is not encrypted */
	/* 18, 19: FS_ERR_FORBIDDEN, FS_ERR_CANCELLED (the CLI names them already) */
	FS_ERR_KEY_REFUSED = 20, /* sync: the daemon refused this device's key (revoked, unknown) */
} fs_err;

/* A static English sentence for e; never NULL. */
const char *fs_strerror(fs_err e);

/* ---- the store ---------------------------------------------------------- */

typedef struct fs_store fs_store;

/*
 * Creates a new store in dir (made with mode 0700 when missing; an existing
 * empty directory is fine) with a fresh random replica id, and opens it.
 * default_scope NULL means "default". FS_ERR_EXISTS when dir already holds
 * a store, FS_ERR_INVALID when the scope does not match
 * [a-z0-9][a-z0-9._-]{0,63}. On success *out is the open store.
 */
fs_err fs_store_create(const char *dir, const char *default_scope, fs_store **out);

/* Opens the store in dir. FS_ERR_NOT_FOUND when there is none,
 * FS_ERR_KEY_REQUIRED when it is encrypted (use fs_store_open_ex). */
fs_err fs_store_open(const char *dir, fs_store **out);

/* ---- credentials (issued by `fieldsyncd enroll`) ------------------------- */

/*
 * A device or scheduler credential: the JSON object `fieldsyncd enroll`
 * writes (mode 0600) with the string members "endpoint",
 * "server_public_key", "client_public_key", "client_secret_key" (Z85, 40
 * characters each), "name", "role" ("device" or "scheduler") and "scopes"
 * (a non-empty array of scope names). Members not listed are ignored.
 * All strings are owned by the fs_credential; free it with
 * fs_credential_free(), which wipes the secret key.
 */
typedef struct fs_credential {
	const char *endpoint;          /* the daemon's sync endpoint, "tcp://host:port" */
	const char *server_public_key; /* Z85 */
	const char *client_public_key; /* Z85 */
	const char *client_secret_key; /* Z85; NULL in what fs_store_credential() returns */
	const char *name;              /* the device's name at enrollment */
	const char *role;              /* "device" or "scheduler" */
	const char *const *scopes;     /* n_scopes >= 1 names, each [a-z0-9][a-z0-9._-]{0,63} */
	size_t n_scopes;
} fs_credential;

/*
 * Parses and validates a credential: every member present with the right
 * type; keys 40 characters of the Z85 alphabet that decode to 32 bytes, the
 * client public key the one that belongs to the secret key; scopes valid
 * and distinct; role known; the endpoint a connectable address (no "*").
 * FS_ERR_INVALID with a sentence in why (never quoting a key) on any
 * problem. *out is the caller's (fs_credential_free).
 */
fs_err fs_credential_parse(const char *json, size_t len, fs_credential **out, char *why,
                           size_t why_len);

/*
 * Reads a credential file and parses it. Refuses a file that group or
 * others may access (mode & 077: it holds a secret key) with FS_ERR_INVALID
 * and a sentence saying so; FS_ERR_NOT_FOUND when it does not exist,
 * FS_ERR_IO when it cannot be read.
 */
fs_err fs_credential_load(const char *path, fs_credential **out, char *why, size_t why_len);

/* Frees *c (may be NULL or point to NULL), wiping the secret key first. */
void fs_credential_free(fs_credential **c);

/* ---- encrypted stores --------------------------------------------------- */

#define FS_STORE_KEY_LEN 32

/*
 * Options for fs_store_create_ex/fs_store_open_ex. Zero-initialise, then set
 * what you need. Nothing is kept after the call returns: the store holds its
 * own copy of the key (wiped at close), and the caller may wipe theirs.
 *
 * With a key the store is encrypted (AES-256-GCM, the same envelope scheme
 * as the daemon, proto/include/fieldsync/crypto.h): every payload in the
 * local files is sealed with a data key - one per case for a case and its
 * contacts, one per record otherwise - and the data keys are stored wrapped
 * by this key. Ids, scopes and versions are not encrypted (PROTOCOL.md: ids
 * are never personal data). Typical source of the key: the platform
 * keystore, or a key file read with fsc_master_load_file().
 */
typedef struct fs_store_opts {
	const char *default_scope;       /* create: NULL means the credential's first
	                               scope, or "default" without a credential */
	const uint8_t *key;              /* NULL: not encrypted; else key_len bytes */
	size_t key_len;                  /* FS_STORE_KEY_LEN */
	const char *key_id;              /* the key's name, required with key: 1..64 of
	                               [A-Za-z0-9._-] (not secret, stored in clear) */
	const fs_credential *credential; /* create: store it (see fs_store_set_credential) */
} fs_store_opts;

/*
 * fs_store_create with options. FS_ERR_INVALID for a bad key length or id,
 * a bad scope, or a default_scope the credential does not grant.
 */
fs_err fs_store_create_ex(const char *dir, const fs_store_opts *opts, fs_store **out);

/*
 * fs_store_open with options (only key, key_len and key_id are used).
 * FS_ERR_KEY_REQUIRED: the store is encrypted and no key was given;
 * FS_ERR_KEY_WRONG: the key (or its id) is not the store's;
 * FS_ERR_NOT_ENCRYPTED: a key was given for a store that is not encrypted
 * (it is never encrypted behind the caller's back).
 */
fs_err fs_store_open_ex(const char *dir, const fs_store_opts *opts, fs_store **out);

/* True when the store is encrypted. */
bool fs_store_encrypted(const fs_store *s);

/*
 * Key rotation: re-wraps every data key of an encrypted store with the new
 * key, in one durable transaction; from then on only the new key opens the
 * store (the data itself is not re-encrypted: its data keys do not change).
 * FS_ERR_NOT_ENCRYPTED for a plain store. No other call may run on s, and
 * no other process may have the store open, while it runs.
 */
fs_err fs_store_rekey(fs_store *s, const uint8_t *key, size_t key_len, const char *key_id);

/*
 * Stores credential c in the store, replacing any earlier one; the secret
 * key is sealed when the store is encrypted. From then on fs_sync() uses
 * CURVE with its keys. The default scope does not change.
 */
fs_err fs_store_set_credential(fs_store *s, const fs_credential *c);

/*
 * The store's credential WITHOUT its secret key (client_secret_key NULL).
 * FS_ERR_NOT_FOUND when the store has none. Free with fs_credential_free().
 */
fs_err fs_store_credential(fs_store *s, fs_credential **out);

/* Closes *s (may be NULL or point to NULL) and sets *s = NULL. No sync
 * may be running on it. */
void fs_store_close(fs_store **s);

/* The replica id (UUID text) and default scope; valid until close. */
const char *fs_store_replica_id(const fs_store *s);
const char *fs_store_default_scope(const fs_store *s);

/* ---- records ------------------------------------------------------------ */

/*
 * Writes a value. Its version is join(all versions held for the record) + 1
 * on this replica, so it supersedes every sibling. scope NULL keeps the
 * record's current scope, or uses the default scope for a new record.
 * For the typed collections "case" and "contact" the payload must be a
 * valid fieldsync.v1.Case/Contact (see fs_json_to_payload). The payload is
 * copied. FS_ERR_INVALID on a bad collection, id, scope or payload.
 */
fs_err fs_put(fs_store *s, const char *collection, const char *id, const char *scope,
              const void *payload, size_t len);

/* Writes a tombstone that supersedes every sibling. FS_ERR_NOT_FOUND when
 * the record is absent or already deleted. */
fs_err fs_delete(fs_store *s, const char *collection, const char *id);

/* Resolves a conflict: like fs_put, but the record must exist
 * (FS_ERR_NOT_FOUND otherwise). To resolve by deleting, call fs_delete. */
fs_err fs_resolve(fs_store *s, const char *collection, const char *id, const void *payload,
                  size_t len);

/* One value of a record, a view into an fs_record (valid until it is freed). */
typedef struct fs_sibling {
	bool deleted;           /* a tombstone: payload is empty */
	const uint8_t *payload; /* len bytes; NULL when len is 0 */
	size_t len;
	const char *version;     /* "replica:counter,replica:counter" sorted by replica */
	int64_t modified_at_ms;  /* device clock of the edit */
	const char *modified_by; /* the replica that made it; "" when unknown */
} fs_sibling;

typedef struct fs_record fs_record;

/*
 * Reads a record with every sibling (more than one when it is in conflict).
 * FS_ERR_NOT_FOUND when absent or when every sibling is a tombstone.
 * *out is owned by the caller: free with fs_record_free().
 */
fs_err fs_get(fs_store *s, const char *collection, const char *id, fs_record **out);
void fs_record_free(fs_record **r);
const char *fs_record_collection(const fs_record *r);
const char *fs_record_id(const fs_record *r);
const char *fs_record_scope(const fs_record *r);
size_t fs_record_sibling_count(const fs_record *r);
/* Fills *out with sibling i (i < count); pointers live as long as r. */
void fs_record_sibling(const fs_record *r, size_t i, fs_sibling *out);

/* A list of records (ids, conflicts, failed changes). Caller frees with fs_list_free. */
typedef struct fs_list_item {
	const char *collection;
	const char *id;
	const char *scope;
	size_t siblings;    /* number of siblings; > 1 means a conflict */
	const char *reason; /* fs_list_failed only: the daemon's reason; else NULL */
} fs_list_item;

typedef struct fs_list {
	size_t n;
	fs_list_item *items;
} fs_list;

void fs_list_free(fs_list **l);

/* The live (not deleted) records of a collection, in id byte order. */
fs_err fs_list_collection(fs_store *s, const char *collection, fs_list **out);
/* Every record with more than one sibling, in (collection, id) order. */
fs_err fs_list_conflicts(fs_store *s, fs_list **out);
/*
 * Local changes the daemon refused (REJECTED, or a request-level INVALID /
 * TOO_LARGE / MALFORMED for that change alone). They are parked: kept in
 * the outbox and in the store, never pushed again until the record is
 * written again or fs_retry_failed() requeues them.
 */
fs_err fs_list_failed(fs_store *s, fs_list **out);
/* Puts every parked change back in the queue; *n (may be NULL) = how many. */
fs_err fs_retry_failed(fs_store *s, size_t *n);

/* ---- sync --------------------------------------------------------------- */

typedef enum fs_sync_phase {
	FS_SYNC_CONNECT = 0, /* Hello sent, waiting for Welcome */
	FS_SYNC_PUSH,        /* done/total: changes acknowledged / to push */
	FS_SYNC_PULL,        /* done: records pulled; total: 0 (unknown) */
} fs_sync_phase;

typedef struct fs_progress {
	fs_sync_phase phase;
	uint64_t done;
	uint64_t total;
} fs_progress;

/* Called from inside fs_sync(), in its thread, between network round trips.
 * It may read and write the store. */
typedef void (*fs_progress_fn)(void *arg, const fs_progress *p);

typedef struct fs_sync_opts {
	const char *endpoint;    /* "tcp://host:port"; NULL: the credential's */
	int timeout_ms;          /* the whole sync; <= 0 means 30000 */
	fs_progress_fn progress; /* may be NULL */
	void *progress_arg;
	uint32_t pull_limit; /* records per PullRequest; 0 means 500 */
} fs_sync_opts;

typedef struct fs_sync_stats {
	uint64_t pushed;     /* changes acknowledged by the daemon */
	uint64_t conflicts;  /* of which the daemon answered CONFLICT */
	uint64_t failed;     /* changes parked in this sync (see fs_list_failed) */
	uint64_t pulled;     /* records received from the feed */
	uint64_t changesets; /* PushRequests answered */
	uint64_t requeued;   /* own values queued again: the daemon's generation changed */
} fs_sync_stats;

/*
 * One sync: Hello, push the outbox in change sets of at most Welcome's
 * max_changes_per_push (first any change set sent before and not answered,
 * again with the same changeset_id), then pull until `more` is false,
 * merging with the shared merge rule. Never returns later than the timeout
 * (plus the time of a local commit). Whatever happens, nothing local is
 * lost: unacknowledged changes stay in the outbox for the next sync.
 * stats may be NULL; it is filled even on failure with what was done.
 * The outcome is also recorded for fs_status().
 * When the store holds a credential the connection uses CURVE: the daemon
 * must prove it holds the server key of the credential, and the tablet
 * authenticates with its client key pair. A handshake that fails ends the
 * sync at once with a message in fs_status: FS_ERR_KEY_REFUSED when the
 * daemon refused the key (revoked, never enrolled), FS_ERR_REFUSED when
 * the endpoint lacks the server key; a libzmq without CURVE is
 * FS_ERR_NETWORK, never a clear-text sync. FS_ERR_INVALID when there is
 * neither an endpoint nor a credential.
 * Welcome.generation (PROTOCOL.md §7): when the daemon names another
 * generation than at the last sync (it was restored from a backup), the
 * sync pulls from 0 and pushes again every current value this device
 * authored (stats->requeued), so nothing it had acknowledged is lost.
 */
fs_err fs_sync(fs_store *s, const fs_sync_opts *opts, fs_sync_stats *stats);

typedef struct fs_status {
	uint64_t pending;      /* local changes not yet acknowledged (not parked) */
	uint64_t failed;       /* parked changes (fs_list_failed) */
	uint64_t last_seq;     /* the pull checkpoint */
	int64_t last_sync_ms;  /* end of the last successful sync; 0 = never */
	int64_t last_error_ms; /* when the last failed sync ended; 0 = never */
	fs_err last_error;     /* of the last sync; FS_OK when it succeeded */
	char last_error_msg[256];
} fs_status;

fs_err fs_status_get(fs_store *s, fs_status *out);

/* ---- typed collections as JSON (METHOD.md) ------------------------------ */

/* True for "case" and "contact". */
bool fs_collection_typed(const char *collection);

/*
 * Converts a JSON object with METHOD.md's field names (enums by name, times
 * as integer ms) to the protobuf payload of a typed collection. Unknown
 * fields, wrong types and values the shared check refuses are
 * FS_ERR_INVALID, with a sentence in why (never quoting values). A missing
 * field takes its default; a missing contact.who5 is -1 ("not taken").
 * *out is malloc'd (caller frees; may be NULL with *out_len 0 for an
 * all-default value).
 */
fs_err fs_json_to_payload(const char *collection, const char *json, size_t json_len, uint8_t **out,
                          size_t *out_len, char *why, size_t why_len);

/* The JSON object of a typed payload, every field present; malloc'd text,
 * caller frees. FS_ERR_CORRUPT when it does not decode. */
fs_err fs_payload_to_json(const char *collection, const uint8_t *payload, size_t len, char **out);

/* ---- reminders: the scheduler's side (PROTOCOL.md §6) -------------------- */

/*
 * A watcher follows the daemon's reminder events: it subscribes to the PUB
 * endpoint and fills every gap in seq by replay on the sync endpoint, so an
 * event is delivered once, in seq order, even to a slow subscriber, across
 * reconnects and daemon restarts. It needs no store.
 */
typedef struct fs_watcher fs_watcher;

/* One event. Strings are valid until the next fs_watcher_next() or close. */
typedef struct fs_reminder {
	uint64_t seq;
	const char *reminder_id, *rule, *scope, *case_id, *contact_person;
	const char *state; /* "SCHEDULED", "WARNING", "DUE", "OVERDUE", "MET", "CANCELLED" */
	int64_t due_at_ms, emitted_at_ms;
} fs_reminder;

typedef struct fs_watch_opts {
	const char *sync_endpoint;     /* for Replay */
	const char *reminder_endpoint; /* the PUB */
	uint64_t since_seq;            /* deliver events after this one (0: all) */
	const char *rule;              /* only this rule; NULL: all */
	const char *scope;             /* only this scope; NULL: all */
	/* CURVE for both the SUB and the replay DEALER: Z85 keys (40 characters),
	 * e.g. from a credential. All three, or none (no CURVE). Copied. */
	const char *curve_server_key; /* the daemon's public key */
	const char *curve_public_key; /* this client's key pair */
	const char *curve_secret_key;
} fs_watch_opts;

/* Opens a watcher; FS_ERR_NETWORK for an endpoint that cannot be used,
 * FS_ERR_INVALID for missing endpoints or bad or incomplete CURVE keys. */
fs_err fs_watcher_open(const fs_watch_opts *opts, fs_watcher **out);

/*
 * Waits up to timeout_ms for the next matching event and points *ev at it.
 * FS_ERR_TIMEOUT when none came (the daemon may be down: keep calling).
 * FS_ERR_PROTOCOL when the daemon answers replay with something else.
 * FS_ERR_REFUSED when the daemon refused the CURVE key (revoked, unknown).
 * FS_ERR_NOT_FOUND when the daemon does not hold the event at the cursor:
 * the cursor is ahead of the daemon (restored from an older backup, or
 * another daemon), so its next seqs would be ones already delivered. It
 * stays so: close the watcher and open one with the since_seq of your
 * choice (0: everything again; fs_watcher_daemon_last_seq: only new ones).
 */
fs_err fs_watcher_next(fs_watcher *w, int timeout_ms, const fs_reminder **ev);

/* Every event up to this seq was delivered or did not match: save it to
 * resume with since_seq later. */
uint64_t fs_watcher_cursor(const fs_watcher *w);

/* The seq of the daemon's last stored event (0: none), found by a few
 * Replay round trips within timeout_ms (FS_ERR_TIMEOUT otherwise). For the
 * cursor check above and for a scheduler's lag (last - cursor). */
fs_err fs_watcher_daemon_last_seq(fs_watcher *w, int timeout_ms, uint64_t *out);

void fs_watcher_close(fs_watcher **w);

#ifdef __cplusplus
}
#endif

#endif
