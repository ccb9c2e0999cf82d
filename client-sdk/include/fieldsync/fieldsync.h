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
 *   - Memory: every buffer the SDK allocates for the caller is freed with
 *     fs_free() (never free(): the SDK may use another allocator than the
 *     app, e.g. a shared library with its own C runtime); handles have their
 *     own free functions, named with each call.
 *   - Linking: the shared library exports only the fs_* functions below
 *     (FIELDSYNC_API); the static archive holds the shared core too, its
 *     dependencies are listed by `pkg-config --static fieldsync`.
 */
#ifndef FIELDSYNC_H
#define FIELDSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; fs_version() is the library's. */
#define FIELDSYNC_VERSION_MAJOR 0
#define FIELDSYNC_VERSION_MINOR 1
#define FIELDSYNC_VERSION_PATCH 0
#define FIELDSYNC_VERSION_STRING "0.1.0"

/* What the shared library exports: only the functions marked with it. */
#ifndef FIELDSYNC_API
#if defined(_WIN32)
#define FIELDSYNC_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#define FIELDSYNC_API __attribute__((visibility("default")))
#else
#define FIELDSYNC_API
#endif
#endif

typedef enum fs_err {
	FS_OK = 0,
	FS_ERR_INVALID,          /* a bad argument: name, id, scope or typed payload */
	FS_ERR_NOT_FOUND,        /* no such record (or it is deleted); no store at dir */
	FS_ERR_EXISTS,           /* fs_store_create: a store is already there */
	FS_ERR_NOMEM,            /* out of memory */
	FS_ERR_IO,               /* the local store could not be read or written */
	FS_ERR_CORRUPT,          /* stored data does not decode */
	FS_ERR_VERSION,          /* the store was written by an unknown schema */
	FS_ERR_FULL,             /* the local store is full (LMDB map or disk) */
	FS_ERR_TIMEOUT,          /* sync: no answer within the timeout; retry later */
	FS_ERR_NETWORK,          /* sync: the endpoint cannot be used (bad address) */
	FS_ERR_PROTOCOL,         /* sync: the peer answered outside PROTOCOL.md */
	FS_ERR_BUSY,             /* sync: the daemon asked to retry later (BUSY, UNAVAILABLE) */
	FS_ERR_REFUSED,          /* sync: the daemon refused us (FORBIDDEN, UNSUPPORTED_PROTOCOL) */
	FS_ERR_SERVER,           /* sync: the daemon reported an internal error; retry later */
	FS_ERR_KEY_REQUIRED,     /* the store is encrypted: open it with its key */
	FS_ERR_KEY_WRONG,        /* the key given does not open this store */
	FS_ERR_NOT_ENCRYPTED,    /* a key was given for a store that is not encrypted */
	FS_ERR_FORBIDDEN,        /* a write in a scope the store's credential does not grant */
	FS_ERR_CANCELLED,        /* sync: stopped by fs_sync_cancel(); nothing was lost */
	FS_ERR_PLAIN_CREDENTIAL, /* a plain store holds a credential: fs_store_migrate it */
	FS_ERR_KEY_REFUSED,      /* sync: the daemon refused this device's key (revoked, unknown) */
	FS_ERR_TRIMMED, /* watch: events after the cursor are past the daemon's retention */
} fs_err;

/* A static English sentence for e; never NULL. */
FIELDSYNC_API const char *fs_strerror(fs_err e);

/* The library's version, "MAJOR.MINOR.PATCH" (static text; any thread). It
 * may be newer than the header's FIELDSYNC_VERSION_STRING when the shared
 * library was updated under an app. */
FIELDSYNC_API const char *fs_version(void);

/*
 * What the last failing call of THIS thread was about, naming the argument
 * or field at fault: "scope: 'team-south' is not granted by the store's
 * credential", "payload: ...", "writes[3].id: empty or longer than 128
 * bytes", "json: ...". Never payload bytes. Thread-local. The calls that
 * check what the app passes - fs_put, fs_delete, fs_resolve, fs_put_many,
 * fs_list_records, fs_contacts_of_case, fs_changes_since and
 * fs_json_to_payload - clear it on entry and set it when they fail; other
 * calls leave it alone. Read it right after the failure, in the same
 * thread: the text is valid until that thread's next such call.
 */
FIELDSYNC_API const char *fs_last_error_detail(void);

/*
 * Frees a buffer the SDK allocated for the caller (fs_json_to_payload,
 * fs_payload_to_json). NULL is fine. Any thread.
 */
FIELDSYNC_API void fs_free(void *p);

/* ---- the store ---------------------------------------------------------- */

typedef struct fs_store fs_store;

/*
 * Creates a new store in dir (made with mode 0700 when missing; an existing
 * empty directory is fine) with a fresh random replica id, and opens it.
 * default_scope NULL means "default". FS_ERR_EXISTS when dir already holds
 * a store, FS_ERR_INVALID when the scope does not match
 * [a-z0-9][a-z0-9._-]{0,63}. On success *out is the open store.
 */
FIELDSYNC_API fs_err fs_store_create(const char *dir, const char *default_scope, fs_store **out);

/* Opens the store in dir. FS_ERR_NOT_FOUND when there is none,
 * FS_ERR_KEY_REQUIRED when it is encrypted (use fs_store_open_ex). */
FIELDSYNC_API fs_err fs_store_open(const char *dir, fs_store **out);

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
FIELDSYNC_API fs_err fs_credential_parse(const char *json, size_t len, fs_credential **out,
                                         char *why, size_t why_len);

/*
 * Reads a credential file and parses it. Refuses a file that group or
 * others may access (mode & 077: it holds a secret key) with FS_ERR_INVALID
 * and a sentence saying so; FS_ERR_NOT_FOUND when it does not exist,
 * FS_ERR_IO when it cannot be read.
 */
FIELDSYNC_API fs_err fs_credential_load(const char *path, fs_credential **out, char *why,
                                        size_t why_len);

/* Frees *c (may be NULL or point to NULL), wiping the secret key first. */
FIELDSYNC_API void fs_credential_free(fs_credential **c);

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
 * keystore (Android Keystore, iOS Keychain), or a file of one line
 * "<key_id>:<64 hex digits>" (the CLI's --key-file, the daemon's format).
 */
typedef struct fs_store_opts {
	const char *default_scope;       /* create: NULL means the credential's first
	                               scope, or "default" without a credential */
	const uint8_t *key;              /* NULL: not encrypted; else key_len bytes */
	size_t key_len;                  /* FS_STORE_KEY_LEN */
	const char *key_id;              /* the key's name, required with key: 1..64 of
	                               [A-Za-z0-9._-] (not secret, stored in clear) */
	const fs_credential *credential; /* create: store it (see fs_store_set_credential);
	                               needs a key: a store with a credential is
	                               always encrypted */
	/* Instead of key/key_len/key_id: called once by create/open/migrate to
	 * fill key[FS_STORE_KEY_LEN] and key_id (1..64 of [A-Za-z0-9._-], NUL-
	 * terminated) from the platform keystore; FS_OK or an error that is
	 * returned as it is. The SDK wipes its copy after use. */
	fs_err (*key_provider)(void *arg, uint8_t key[FS_STORE_KEY_LEN], char key_id[65]);
	void *key_provider_arg;
} fs_store_opts;

/*
 * fs_store_create with options. FS_ERR_INVALID for a bad key length or id,
 * a bad scope, or a default_scope the credential does not grant.
 */
FIELDSYNC_API fs_err fs_store_create_ex(const char *dir, const fs_store_opts *opts, fs_store **out);

/*
 * fs_store_open with options (only key, key_len and key_id are used).
 * FS_ERR_KEY_REQUIRED: the store is encrypted and no key was given;
 * FS_ERR_KEY_WRONG: the key (or its id) is not the store's;
 * FS_ERR_NOT_ENCRYPTED: a key was given for a store that is not encrypted
 * (it is never encrypted behind the caller's back).
 */
FIELDSYNC_API fs_err fs_store_open_ex(const char *dir, const fs_store_opts *opts, fs_store **out);

/* True when the store is encrypted. */
FIELDSYNC_API bool fs_store_encrypted(const fs_store *s);

/*
 * A store that holds a device credential is always encrypted:
 * fs_store_create_ex with a credential and fs_store_set_credential on a
 * plain store answer FS_ERR_KEY_REQUIRED, and fs_store_open_ex refuses a
 * plain store that holds one (written by an older SDK) with
 * FS_ERR_PLAIN_CREDENTIAL. fs_store_migrate encrypts such a store in place
 * with the key of opts (key or key_provider): every record, outbox entry,
 * change set in flight and the credential's secret key are sealed into a
 * new file that atomically replaces the old one (the replica id, the
 * checkpoint and the outbox are kept). No handle of any process may have
 * the store open. FS_ERR_EXISTS when it is encrypted already. CLI:
 * `fieldsync --store DIR --key-file FILE migrate`.
 */
fs_err fs_store_migrate(const char *dir, const fs_store_opts *opts);

/*
 * Key rotation: re-wraps every data key of an encrypted store with the new
 * key, in one durable transaction; from then on only the new key opens the
 * store (the data itself is not re-encrypted: its data keys do not change).
 * FS_ERR_NOT_ENCRYPTED for a plain store. No other call may run on s, and
 * no other process may have the store open, while it runs.
 */
FIELDSYNC_API fs_err fs_store_rekey(fs_store *s, const uint8_t *key, size_t key_len,
                                    const char *key_id);

/*
 * Stores credential c in the store, replacing any earlier one; the secret
 * key is sealed when the store is encrypted. From then on fs_sync() uses
 * CURVE with its keys. The default scope does not change.
 */
FIELDSYNC_API fs_err fs_store_set_credential(fs_store *s, const fs_credential *c);

/*
 * The store's credential WITHOUT its secret key (client_secret_key NULL).
 * FS_ERR_NOT_FOUND when the store has none. Free with fs_credential_free().
 */
FIELDSYNC_API fs_err fs_store_credential(fs_store *s, fs_credential **out);

/* Closes *s (may be NULL or point to NULL) and sets *s = NULL. No sync
 * may be running on it. */
FIELDSYNC_API void fs_store_close(fs_store **s);

/* The replica id (UUID text) and default scope; valid until close. */
FIELDSYNC_API const char *fs_store_replica_id(const fs_store *s);
FIELDSYNC_API const char *fs_store_default_scope(const fs_store *s);

/* ---- records ------------------------------------------------------------ */

/*
 * Writes a value. Its version is join(all versions held for the record) + 1
 * on this replica, so it supersedes every sibling. scope NULL keeps the
 * record's current scope, or uses the default scope for a new record.
 * For the typed collections "case" and "contact" the payload must be a
 * valid fieldsync.v1.Case/Contact (see fs_json_to_payload). The payload is
 * copied. FS_ERR_INVALID on a bad collection, id, scope or payload;
 * FS_ERR_FORBIDDEN when the store holds a credential and the record's scope
 * (given, kept or default) is not one it grants: the daemon would refuse
 * the change, so it is refused here and nothing is stored.
 * fs_last_error_detail() names the field at fault.
 */
FIELDSYNC_API fs_err fs_put(fs_store *s, const char *collection, const char *id, const char *scope,
                            const void *payload, size_t len);

/* Writes a tombstone that supersedes every sibling. FS_ERR_NOT_FOUND when
 * the record is absent or already deleted; FS_ERR_FORBIDDEN as fs_put
 * (for fs_resolve too). */
FIELDSYNC_API fs_err fs_delete(fs_store *s, const char *collection, const char *id);

/* Resolves a conflict: like fs_put, but the record must exist
 * (FS_ERR_NOT_FOUND otherwise). To resolve by deleting, call fs_delete. */
FIELDSYNC_API fs_err fs_resolve(fs_store *s, const char *collection, const char *id,
                                const void *payload, size_t len);

/*
 * Batch writes: every write of w[0..n) in ONE durable transaction (one
 * fsync), all or nothing. A write is fs_put (deleted false: collection, id,
 * scope, payload, len) or fs_delete (deleted true: collection and id; the
 * record must be live, else FS_ERR_NOT_FOUND). Writes apply in order, so a
 * record written twice ends with the later value. On failure nothing is
 * stored, *bad (may be NULL) is the index of the write at fault ((size_t)-1
 * when no single write is: I/O, a full store) and fs_last_error_detail()
 * says "writes[i].field: ...". n == 0 is FS_OK. Copies what it needs; like
 * every write, it may run while another thread syncs.
 */
typedef struct fs_write {
	const char *collection;
	const char *id;
	const char *scope; /* NULL: as fs_put */
	const void *payload;
	size_t len;
	bool deleted; /* a tombstone (fs_delete); payload and scope ignored */
} fs_write;

FIELDSYNC_API fs_err fs_put_many(fs_store *s, const fs_write *w, size_t n, size_t *bad);

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
FIELDSYNC_API fs_err fs_get(fs_store *s, const char *collection, const char *id, fs_record **out);
FIELDSYNC_API void fs_record_free(fs_record **r);
FIELDSYNC_API const char *fs_record_collection(const fs_record *r);
FIELDSYNC_API const char *fs_record_id(const fs_record *r);
FIELDSYNC_API const char *fs_record_scope(const fs_record *r);
FIELDSYNC_API size_t fs_record_sibling_count(const fs_record *r);
/* Fills *out with sibling i (i < count); pointers live as long as r. */
FIELDSYNC_API void fs_record_sibling(const fs_record *r, size_t i, fs_sibling *out);

/* The metadata of one sibling in a list (fs_list_records, fs_contacts_of_case). */
typedef struct fs_sibling_meta {
	bool deleted;            /* a tombstone */
	size_t len;              /* payload bytes (plaintext) */
	const char *version;     /* as fs_sibling.version */
	int64_t modified_at_ms;  /* device clock of the edit */
	const char *modified_by; /* the replica that made it; "" when unknown */
} fs_sibling_meta;

/* A list of records (ids, conflicts, failed changes). Caller frees with fs_list_free. */
typedef struct fs_list_item {
	const char *collection;
	const char *id;
	const char *scope;
	size_t siblings;    /* number of siblings; > 1 means a conflict */
	const char *reason; /* fs_list_failed only: the daemon's reason; else NULL */
	/* fs_list_records and fs_contacts_of_case: `siblings` entries, in the order of
	 * fs_get; NULL from the other lists. Owned by the list. */
	const fs_sibling_meta *meta;
} fs_list_item;

typedef struct fs_list {
	size_t n;
	fs_list_item *items;
} fs_list;

FIELDSYNC_API void fs_list_free(fs_list **l);

/*
 * The live records (at least one sibling not deleted) of a collection, or
 * of every collection when collection is NULL, in (collection, id) byte
 * order, each with its siblings' metadata (item.meta) but no payload: one
 * read transaction, so the list is a consistent snapshot. Any thread.
 * *out is the caller's (fs_list_free).
 */
FIELDSYNC_API fs_err fs_list_records(fs_store *s, const char *collection, fs_list **out);

/*
 * The live contacts of case case_id (a contact belongs to the case its
 * payload's case_id names; a contact in conflict is listed under the case of
 * each live sibling), in id order, with metadata as fs_list_records. Served by an
 * index kept in the same transaction as every contact write and pulled
 * page; a store made by an older SDK gets its index built when it is first
 * opened by this one (one write transaction at fs_store_open). An empty
 * list when there are none. Any thread; one read transaction, a consistent
 * snapshot. *out is the caller's (fs_list_free).
 */
FIELDSYNC_API fs_err fs_contacts_of_case(fs_store *s, const char *case_id, fs_list **out);

/* The live (not deleted) records of a collection, in id byte order (no metadata: see fs_list_records). */
FIELDSYNC_API fs_err fs_list_collection(fs_store *s, const char *collection, fs_list **out);
/* Every record with more than one sibling, in (collection, id) order. */
FIELDSYNC_API fs_err fs_list_conflicts(fs_store *s, fs_list **out);
/*
 * Local changes the daemon refused (REJECTED, or a request-level INVALID /
 * TOO_LARGE / MALFORMED for that change alone). They are parked: kept in
 * the outbox and in the store, never pushed again until the record is
 * written again or fs_retry_failed() requeues them.
 */
FIELDSYNC_API fs_err fs_list_failed(fs_store *s, fs_list **out);
/* Puts every parked change back in the queue; *n (may be NULL) = how many. */
FIELDSYNC_API fs_err fs_retry_failed(fs_store *s, size_t *n);

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

/*
 * Called from inside fs_sync(), in its thread, after each pulled page is
 * committed: fs_changes_since(s, from_seq, ...) lists what the page changed
 * (the store's change counter went from from_seq to to_seq; equal when the
 * page changed nothing). It may read and write the store.
 */
typedef void (*fs_page_fn)(void *arg, uint64_t from_seq, uint64_t to_seq);

typedef struct fs_sync_opts {
	const char *endpoint;    /* "tcp://host:port"; NULL: the credential's */
	int timeout_ms;          /* the whole sync; <= 0 means 30000 */
	fs_progress_fn progress; /* may be NULL */
	void *progress_arg;
	uint32_t pull_limit; /* records per PullRequest; 0 means 500 */
	fs_page_fn on_page;  /* may be NULL */
	void *on_page_arg;
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
FIELDSYNC_API fs_err fs_sync(fs_store *s, const fs_sync_opts *opts, fs_sync_stats *stats);

/*
 * Asks every fs_sync() running on s to stop. Safe from any thread (e.g. an
 * iOS background task's expiration handler) and from a progress or page
 * callback; it does not wait. The sync returns FS_ERR_CANCELLED at its
 * next round trip - before sending its next request, or within about 50 ms
 * while it waits for a reply - and loses nothing: a change set sent but
 * not answered stays in flight and is resent with the same changeset_id by
 * the next sync (the daemon applies it once), and a pulled page is either
 * committed with its checkpoint or not at all. Returns true when a sync was
 * running; a cancel while none runs does nothing (it does not cancel the
 * next one).
 */
FIELDSYNC_API bool fs_sync_cancel(fs_store *s);

/* ---- the change feed ---------------------------------------------------- */

/*
 * Every write to `records` - local (fs_put, fs_delete, fs_resolve,
 * fs_put_many) or from the daemon (a pulled record that changed, a purge or
 * revocation) - takes the next value of the store's change counter, in the
 * same transaction as the write. fs_changes_since lists the records whose
 * latest change is after `since`, in counter order, each once (a record
 * changed twice is listed at its latest change), at most `limit` of them
 * (0: no limit); c->last_seq is the counter of the last item listed (or
 * `since` when none) and c->more says whether there are more: pass
 * c->last_seq as the next `since`. Read the record itself with fs_get (it
 * may have changed again since). A store made by an older SDK starts its
 * feed at its first write by this one. *out is the caller's
 * (fs_changes_free). Any thread.
 */
typedef enum fs_change_kind {
	FS_CHANGE_PUT = 0, /* a value was written or merged (the record may now be in conflict) */
	FS_CHANGE_DELETE,  /* a tombstone: fs_delete, or a pulled deletion */
	FS_CHANGE_ERASED,  /* purged or revoked by the daemon: the record is gone */
} fs_change_kind;

typedef struct fs_change {
	uint64_t seq; /* the change counter at this change */
	const char *collection;
	const char *id;
	bool remote; /* from a pulled page; false: a local write */
	fs_change_kind kind;
} fs_change;

typedef struct fs_changes {
	size_t n;
	fs_change *items;
	uint64_t last_seq;
	bool more;
} fs_changes;

FIELDSYNC_API fs_err fs_changes_since(fs_store *s, uint64_t since, size_t limit, fs_changes **out);
FIELDSYNC_API void fs_changes_free(fs_changes **c);

/* The store's change counter now (0: no change yet): start a feed from here
 * to see only what changes after this call. Any thread. */
FIELDSYNC_API fs_err fs_change_seq(fs_store *s, uint64_t *seq);

typedef struct fs_status {
	uint64_t pending;      /* local changes not yet acknowledged (not parked) */
	uint64_t failed;       /* parked changes (fs_list_failed) */
	uint64_t last_seq;     /* the pull checkpoint */
	int64_t last_sync_ms;  /* end of the last successful sync; 0 = never */
	int64_t last_error_ms; /* when the last failed sync ended; 0 = never */
	fs_err last_error;     /* of the last sync; FS_OK when it succeeded */
	char last_error_msg[256];
} fs_status;

FIELDSYNC_API fs_err fs_status_get(fs_store *s, fs_status *out);

/* ---- deadlines on the tablet, offline (docs/reminders.md) ---------------- */

/*
 * One reminder the local data implies, as the daemon computes it
 * (proto/include/fieldsync/rules.h, METHOD.md revision 2). Strings live as
 * long as the list.
 */
typedef struct fs_deadline {
	const char *reminder_id;    /* the daemon's: "<rule>/<case>[/<contact>]" */
	const char *rule;           /* "quick-help", ... */
	const char *case_id;        /* the case record's id */
	const char *scope;          /* the case record's scope */
	const char *contact_person; /* the case's staff id; "" when none */
	const char *state;          /* "SCHEDULED", "WARNING", "DUE", "OVERDUE" or "MET" */
	int64_t due_at_ms;          /* the deadline */
	int64_t due_day_ms;         /* the first instant of its local day (state DUE) */
	int64_t warning_at_ms;      /* state WARNING from here; 0: the rule has no warning */
} fs_deadline;

typedef struct fs_deadline_list {
	size_t n;
	/* OVERDUE first, then the other active ones, then MET; each group by
	 * due_at_ms, then reminder_id */
	fs_deadline *items;
	const char *time_zone; /* the service's zone the list was computed in */
	/* false: no Welcome carried a rule table yet, so METHOD.md's defaults
	 * in Europe/Copenhagen */
	bool from_daemon;
	/* the first instant after now_ms at which the list changes with the
	 * clock alone (a state moves, a talk still to come is held); 0: none */
	int64_t next_change_ms;
} fs_deadline_list;

/* Zero-initialise; each member set narrows the list. */
typedef struct fs_deadline_filter {
	const char *contact_person; /* only this staff id (the case's contact person) */
	const char *case_id;        /* only this case */
	int64_t due_within_ms;      /* > 0: only active reminders (not MET) due by
	                               now_ms + due_within_ms, overdue ones included */
} fs_deadline_filter;

/*
 * Every reminder the LOCAL data implies at now_ms: the started ones, MET
 * included, CANCELLED never (a case that ended or was deleted lists none of
 * its course rules). Local edits count at once, before any sync; every live
 * sibling of a record in conflict counts, as at the daemon (a conflict
 * never hides a deadline), and a case counts only the contacts in its own
 * scope (METHOD.md reading 10). The rule table and time zone are the ones
 * the daemon sent in the last Welcome that carried them (fs_sync keeps
 * them); before that, METHOD.md's defaults in Europe/Copenhagen (from the
 * tablet's tz database, else a built-in rule that matches it since 1996).
 * filter may be NULL. One read transaction; safe while fs_sync runs in
 * another thread. *out is the caller's: free with fs_deadlines_free().
 * FS_ERR_CORRUPT when a stored table or zone no longer loads.
 */
FIELDSYNC_API fs_err fs_deadlines(fs_store *s, int64_t now_ms, const fs_deadline_filter *filter,
                                  fs_deadline_list **out);
/* Frees *l (may be NULL or point to NULL) and sets *l = NULL. */
FIELDSYNC_API void fs_deadlines_free(fs_deadline_list **l);

/* ---- typed collections as JSON (METHOD.md) ------------------------------ */

/* True for "case" and "contact". */
FIELDSYNC_API bool fs_collection_typed(const char *collection);

/*
 * Converts a JSON object with METHOD.md's field names (enums by name, times
 * as integer ms) to the protobuf payload of a typed collection. Unknown
 * fields, wrong types and values the shared check refuses are
 * FS_ERR_INVALID, with a sentence in why (never quoting values). A missing
 * field takes its default; a missing contact.who5 is -1 ("not taken").
 * *out is the caller's, freed with fs_free (may be NULL with *out_len 0
 * for an all-default value). fs_last_error_detail() repeats why.
 */
FIELDSYNC_API fs_err fs_json_to_payload(const char *collection, const char *json, size_t json_len,
                                        uint8_t **out, size_t *out_len, char *why, size_t why_len);

/* The JSON object of a typed payload, every field present; text the
 * caller frees with fs_free. FS_ERR_CORRUPT when it does not decode. */
FIELDSYNC_API fs_err fs_payload_to_json(const char *collection, const uint8_t *payload, size_t len,
                                        char **out);

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
FIELDSYNC_API fs_err fs_watcher_open(const fs_watch_opts *opts, fs_watcher **out);

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
 * FS_ERR_TRIMMED when events after the cursor were removed by the daemon's
 * event retention before this watcher saw them (the daemon answered Replay
 * "TRIMMED: events before seq N ..."): they cannot be delivered; resynchronise
 * what depends on them (e.g. from the records). The watcher has then moved its
 * cursor to N - 1, so the next call goes on with the oldest kept event.
 */
FIELDSYNC_API fs_err fs_watcher_next(fs_watcher *w, int timeout_ms, const fs_reminder **ev);

/* Every event up to this seq was delivered or did not match: save it to
 * resume with since_seq later. */
FIELDSYNC_API uint64_t fs_watcher_cursor(const fs_watcher *w);

/* The seq of the daemon's last stored event (0: none), found by a few
 * Replay round trips within timeout_ms (FS_ERR_TIMEOUT otherwise). For the
 * cursor check above and for a scheduler's lag (last - cursor). */
FIELDSYNC_API fs_err fs_watcher_daemon_last_seq(fs_watcher *w, int timeout_ms, uint64_t *out);

FIELDSYNC_API void fs_watcher_close(fs_watcher **w);

#ifdef __cplusplus
}
#endif

#endif
