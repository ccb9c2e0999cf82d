/*
 * auth.c: the CURVE server keys, the device registry, the audit log and the
 * ZAP handler (RFC 27).
 *
 * NOTES ON THE DESIGN OF AUTHENTICATION
 *
 * Server keys. DATA_DIR/server.key holds the secret key and DATA_DIR/server.pub
 * the public key, each one line of Z85 (40 characters), both made with mode
 * 0600 and O_EXCL (auth_server_keys_create never overwrites a key). Loading
 * (auth_server_keys_load) refuses a missing file, a secret key file that
 * group or others may read, a key that is not Z85, and a public key that does
 * not belong to the secret key. The daemon never writes the keys again.
 *
 * The registry. Two tables of the store, written in one transaction:
 *   devices       client public key (Z85, 40 bytes) -> DeviceRow (storage.proto)
 *   device_names  device name -> client public key
 * Invariants: every name maps to exactly one key and back (auth_device_put
 * refuses to give a name to a second key); a row is never deleted, revoking
 * sets `revoked`, so names are never reused and stay audit identities. The
 * client secret key is never stored anywhere by the daemon. Admin commands
 * (another process) write the registry while the daemon runs; LMDB
 * serialises the writers, and every reader sees the last commit.
 *
 * The audit log. Table audit: u64 BE seq -> one JSON object. seq is 1 + the
 * last one, counted in meta "audit_seq" in the same transaction, and written
 * with MDB_APPEND, so an entry can only ever be added after the last one.
 *
 * ZAP. A thread (zap_start) owns a REP socket bound to
 * inproc://zeromq.zap.01 in the daemon's context and the far end of an inproc
 * PAIR (the stop pipe). libzmq sends it one request per CURVE handshake; it
 * looks the key up in a short read transaction of its own and answers at
 * once, so enrollments and revocations apply to the next handshake. Every
 * request gets a reply, malformed ones too (400): a REP socket that does not
 * answer cannot read the next request, and a handshake without a reply hangs.
 * A store error answers 500, which libzmq treats as a refusal: the handler
 * fails closed. Refusals are logged at info, but a client that keeps retrying
 * with the same key (libzmq reconnects every 100 ms) is logged once a minute,
 * with the number of refusals not logged; the metric counts every one. Server sockets must set ZMQ_ZAP_ENFORCE_DOMAIN: without it
 * libzmq 4.3 admits every CURVE client when no handler is bound (tested:
 * tests/unit/test_auth.c), so stop the handler only after they are closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zmq.h>

#include "internal.h"
#include "metrics.h"
#include "storage.pb-c.h"

typedef Fieldsyncd__Store__DeviceRow device_row;

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES_MAX 8
#define KEY_FILE_MAX 256 /* a key file is one line; anything longer is not a key */

/* Zeroes secrets in a way the compiler may not drop. */
static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n-- > 0)
		*v++ = 0;
}

static bool
name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > AUTH_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		          (i > 0 && (c == '.' || c == '_' || c == '-'));
		if (!ok)
			return false;
	}
	return true;
}

/* True for 40 characters of Z85 that decode to 32 bytes. */
static bool
z85_key_valid(const char *z)
{
	uint8_t bin[32];
	if (z == NULL || strlen(z) != AUTH_Z85_KEY_LEN)
		return false;
	return zmq_z85_decode(bin, z) != NULL;
}

/* ---- server keys ------------------------------------------------------- */

static bool
key_path(char *out, size_t cap, const char *dir, const char *file)
{
	int n = snprintf(out, cap, "%s/%s", dir, file);
	return n > 0 && (size_t)n < cap;
}

/* Writes text to a new file (O_EXCL, mode 0600) and syncs it. */
static bool
write_new_file(const char *path, const char *text, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t len = strlen(text), done = 0;
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return false;
	}
	if (fchmod(fd, 0600) != 0) /* the umask may have taken bits away, never add them */
		goto fail;
	while (done < len) {
		ssize_t w = write(fd, text + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		done += (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	return true;
fail:
	snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(path);
	return false;
}

static void
sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

bool
auth_server_keys_create(const char *data_dir, char *err, size_t errlen)
{
	char pub[AUTH_Z85_KEY_LEN + 1], sec[AUTH_Z85_KEY_LEN + 1];
	char pub_path[600], sec_path[600], line[AUTH_Z85_KEY_LEN + 2];
	struct stat st;
	bool ok = false;

	if (!key_path(sec_path, sizeof(sec_path), data_dir, "server.key") ||
	    !key_path(pub_path, sizeof(pub_path), data_dir, "server.pub")) {
		snprintf(err, errlen, "data directory path too long");
		return false;
	}
	if (lstat(sec_path, &st) == 0 || lstat(pub_path, &st) == 0) {
		snprintf(err, errlen, "%s is already initialised (%s exists); the server keys are "
		         "never overwritten", data_dir, lstat(sec_path, &st) == 0 ? sec_path : pub_path);
		return false;
	}
	if (zmq_curve_keypair(pub, sec) != 0) {
		snprintf(err, errlen, "cannot make a CURVE key pair: %s", zmq_strerror(zmq_errno()));
		return false;
	}
	snprintf(line, sizeof(line), "%s\n", sec);
	if (!write_new_file(sec_path, line, err, errlen))
		goto out;
	snprintf(line, sizeof(line), "%s\n", pub);
	if (!write_new_file(pub_path, line, err, errlen)) {
		unlink(sec_path);
		goto out;
	}
	sync_dir(data_dir);
	ok = true;
out:
	wipe(sec, sizeof(sec));
	wipe(line, sizeof(line));
	return ok;
}

/* Reads one Z85 key from path into key; secret: refuse group/other access. */
static bool
read_key_file(const char *path, bool secret, char key[AUTH_Z85_KEY_LEN + 1], char *err,
              size_t errlen)
{
	char buf[KEY_FILE_MAX + 1];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	bool ok = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "%s is missing: make the server keys with "
			         "'fieldsyncd init --data-dir DIR'", path);
		else
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto out;
	}
	if (secret && (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: group or others may read the server secret key (mode %04o); "
		         "chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
	                   buf[len - 1] == '\t'))
		buf[--len] = '\0';
	if (!z85_key_valid(buf)) {
		snprintf(err, errlen, "%s does not hold a CURVE key (one line of 40 Z85 characters)",
		         path);
		goto out;
	}
	memcpy(key, buf, AUTH_Z85_KEY_LEN + 1);
	ok = true;
out:
	wipe(buf, sizeof(buf));
	close(fd);
	return ok;
}

bool
auth_server_keys_load(const char *data_dir, char pub[AUTH_Z85_KEY_LEN + 1],
                      char sec[AUTH_Z85_KEY_LEN + 1], char *err, size_t errlen)
{
	char pub_path[600], sec_path[600], derived[AUTH_Z85_KEY_LEN + 1];

	if (!key_path(sec_path, sizeof(sec_path), data_dir, "server.key") ||
	    !key_path(pub_path, sizeof(pub_path), data_dir, "server.pub")) {
		snprintf(err, errlen, "data directory path too long");
		return false;
	}
	if (!read_key_file(sec_path, true, sec, err, errlen))
		return false;
	if (!read_key_file(pub_path, false, pub, err, errlen))
		goto fail;
	if (zmq_curve_public(derived, sec) != 0 || strcmp(derived, pub) != 0) {
		snprintf(err, errlen, "%s does not hold the public key of %s", pub_path, sec_path);
		goto fail;
	}
	return true;
fail:
	wipe(sec, AUTH_Z85_KEY_LEN + 1);
	return false;
}

/* ---- the registry -------------------------------------------------------- */

/* Decodes a stored row; STORE_CORRUPT when it does not fit a device_info. */
static store_rc
row_decode(const void *val, size_t vlen, device_info *out)
{
	device_row *row = fieldsyncd__store__device_row__unpack(NULL, vlen, val);
	store_rc rc = STORE_CORRUPT;

	memset(out, 0, sizeof(*out));
	if (row == NULL)
		return STORE_CORRUPT;
	if (strlen(row->name) > AUTH_NAME_MAX || strlen(row->public_key) != AUTH_Z85_KEY_LEN ||
	    row->n_scopes > AUTH_SCOPES_MAX || row->role > ROLE_SCHEDULER)
		goto out;
	for (size_t i = 0; i < row->n_scopes; i++) {
		if (strlen(row->scopes[i]) > FSP_SCOPE_MAX)
			goto out;
		strcpy(out->scopes[i], row->scopes[i]);
	}
	strcpy(out->name, row->name);
	strcpy(out->public_key, row->public_key);
	out->role = (device_role)row->role;
	out->n_scopes = row->n_scopes;
	out->revoked = row->revoked;
	out->enrolled_at_ms = row->enrolled_at_ms;
	out->revoked_at_ms = row->revoked_at_ms;
	rc = STORE_OK;
out:
	fieldsyncd__store__device_row__free_unpacked(row, NULL);
	return rc;
}

store_rc
auth_device_by_key(store_txn *t, const char *public_key, device_info *out)
{
	const void *val;
	size_t vlen;
	store_rc rc;

	if (public_key == NULL || strlen(public_key) != AUTH_Z85_KEY_LEN)
		return STORE_NOTFOUND;
	rc = store_kv_get(t, STORE_T_DEVICES, public_key, AUTH_Z85_KEY_LEN, &val, &vlen);
	if (rc != STORE_OK)
		return rc;
	if ((rc = row_decode(val, vlen, out)) != STORE_OK || strcmp(out->public_key, public_key) != 0) {
		log_event(LOG_ERROR, "a device registry row does not decode", NULL);
		return STORE_CORRUPT;
	}
	return STORE_OK;
}

store_rc
auth_device_by_name(store_txn *t, const char *name, device_info *out)
{
	char key[AUTH_Z85_KEY_LEN + 1];
	const void *val;
	size_t vlen;
	store_rc rc;

	if (name == NULL || !name_valid(name))
		return STORE_NOTFOUND;
	rc = store_kv_get(t, STORE_T_DEVICE_NAMES, name, strlen(name), &val, &vlen);
	if (rc != STORE_OK)
		return rc;
	if (vlen != AUTH_Z85_KEY_LEN)
		return STORE_CORRUPT;
	memcpy(key, val, AUTH_Z85_KEY_LEN);
	key[AUTH_Z85_KEY_LEN] = '\0';
	if ((rc = auth_device_by_key(t, key, out)) == STORE_NOTFOUND)
		return STORE_CORRUPT; /* a name without its row */
	if (rc == STORE_OK && strcmp(out->name, name) != 0)
		return STORE_CORRUPT;
	return rc;
}

store_rc
auth_device_put(store_txn *t, const device_info *d)
{
	device_row row = FIELDSYNCD__STORE__DEVICE_ROW__INIT;
	char *scopes[AUTH_SCOPES_MAX];
	const void *val;
	size_t vlen, len;
	uint8_t *buf;
	store_rc rc;

	if (!name_valid(d->name) || !z85_key_valid(d->public_key) || d->n_scopes == 0 ||
	    d->n_scopes > AUTH_SCOPES_MAX || (d->role != ROLE_DEVICE && d->role != ROLE_SCHEDULER)) {
		log_event(LOG_ERROR, "auth_device_put: invalid device", NULL);
		return STORE_ERROR;
	}
	for (size_t i = 0; i < d->n_scopes; i++) {
		if (!fsp_scope_valid(d->scopes[i])) {
			log_event(LOG_ERROR, "auth_device_put: invalid scope", NULL);
			return STORE_ERROR;
		}
		scopes[i] = (char *)d->scopes[i];
	}
	rc = store_kv_get(t, STORE_T_DEVICE_NAMES, d->name, strlen(d->name), &val, &vlen);
	if (rc == STORE_OK && (vlen != AUTH_Z85_KEY_LEN || memcmp(val, d->public_key, vlen) != 0)) {
		log_event(LOG_ERROR, "device name already belongs to another key", LS("device", d->name),
		          NULL);
		return STORE_ERROR;
	}
	if (rc != STORE_OK && rc != STORE_NOTFOUND)
		return rc;
	row.name = (char *)d->name;
	row.public_key = (char *)d->public_key;
	row.role = (uint32_t)d->role;
	row.n_scopes = d->n_scopes;
	row.scopes = scopes;
	row.revoked = d->revoked;
	row.enrolled_at_ms = d->enrolled_at_ms;
	row.revoked_at_ms = d->revoked_at_ms;
	len = fieldsyncd__store__device_row__get_packed_size(&row);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return STORE_ERROR;
	fieldsyncd__store__device_row__pack(&row, buf);
	rc = store_kv_put(t, STORE_T_DEVICES, d->public_key, AUTH_Z85_KEY_LEN, buf, len, false);
	if (rc == STORE_OK)
		rc = store_kv_put(t, STORE_T_DEVICE_NAMES, d->name, strlen(d->name), d->public_key,
		                  AUTH_Z85_KEY_LEN, false);
	free(buf);
	return rc;
}

struct list_walk {
	store_txn *t;
	auth_device_fn fn;
	void *arg;
	store_rc rc;
};

static bool
list_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct list_walk *w = arg;
	char pk[AUTH_Z85_KEY_LEN + 1];
	device_info d;
	(void)key;
	(void)klen;
	if (vlen != AUTH_Z85_KEY_LEN) {
		w->rc = STORE_CORRUPT;
		return false;
	}
	memcpy(pk, val, AUTH_Z85_KEY_LEN);
	pk[AUTH_Z85_KEY_LEN] = '\0';
	if ((w->rc = auth_device_by_key(w->t, pk, &d)) != STORE_OK) {
		if (w->rc == STORE_NOTFOUND)
			w->rc = STORE_CORRUPT;
		return false;
	}
	return w->fn(w->arg, &d);
}

store_rc
auth_device_list(store_txn *t, auth_device_fn fn, void *arg)
{
	struct list_walk w = {t, fn, arg, STORE_OK};
	store_rc rc = store_kv_scan(t, STORE_T_DEVICE_NAMES, NULL, 0, NULL, 0, list_one, &w);
	return rc != STORE_OK ? rc : w.rc;
}

bool
auth_has_scope(const device_info *d, const char *scope)
{
	for (size_t i = 0; i < d->n_scopes && i < AUTH_SCOPES_MAX; i++)
		if (strcmp(d->scopes[i], scope) == 0)
			return true;
	return false;
}

/* ---- the audit log ------------------------------------------------------- */

/* Adds s (cut at max bytes, on a UTF-8 boundary) to o unless empty. */
static bool
add_capped(cJSON *o, const char *key, const char *s, size_t max)
{
	char buf[513];
	size_t n;
	if (s == NULL || s[0] == '\0')
		return true;
	n = strlen(s);
	if (max > sizeof(buf) - 1)
		max = sizeof(buf) - 1;
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return cJSON_AddStringToObject(o, key, buf) != NULL;
}

store_rc
audit_append(store_txn *t, const char *actor, const char *action, const char *collection,
             const char *id, const char *detail)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	uint8_t key[8];
	uint64_t seq;
	store_rc rc = STORE_ERROR;

	if (o == NULL)
		return STORE_ERROR;
	if (cJSON_AddNumberToObject(o, "ts_ms", (double)clock_wall_ms()) == NULL ||
	    !add_capped(o, "actor", actor && actor[0] ? actor : "unknown", 128) ||
	    !add_capped(o, "action", action, 128) || !add_capped(o, "collection", collection, 128) ||
	    !add_capped(o, "id", id, 128) || !add_capped(o, "detail", detail, 512) ||
	    (text = cJSON_PrintUnformatted(o)) == NULL)
		goto out;
	seq = store_meta_u64(t, "audit_seq") + 1;
	store_put_be64(key, seq);
	if ((rc = store_kv_put(t, STORE_T_AUDIT, key, sizeof(key), text, strlen(text), true)) !=
	    STORE_OK)
		goto out;
	rc = store_meta_set_u64(t, "audit_seq", seq);
out:
	free(text);
	cJSON_Delete(o);
	return rc;
}

/* ---- the ZAP handler ----------------------------------------------------- */

#define ZAP_REPEAT_LOG_MS 60000 /* the same key refused again within this: not logged */

struct zap_handler {
	store *s;
	char last_refused[AUTH_Z85_KEY_LEN + 1]; /* libzmq clients retry every 100 ms: */
	int64_t last_refused_ms;                 /* one log line per key and minute */
	uint64_t repeats;                        /* refusals not logged since */
	void *rep;    /* the thread's: requests from libzmq */
	void *stop_r; /* the thread's end of the stop pipe */
	void *stop_w; /* the owner's end */
	pthread_t thread;
};

/* Copies printable ASCII of frame m into out (for logs); others become '?'. */
static void
frame_text(zmq_msg_t *m, char *out, size_t cap)
{
	size_t n = zmq_msg_size(m);
	const char *p = zmq_msg_data(m);
	if (n > cap - 1)
		n = cap - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
	out[n] = '\0';
}

static bool
frame_is(zmq_msg_t *m, const char *s)
{
	size_t n = strlen(s);
	return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

/*
 * Decides on one request of n frames (truncated: more than ZAP_FRAMES_MAX
 * came). Sets the status code, text and user id; never fails.
 */
static void
zap_decide(struct zap_handler *z, zmq_msg_t *f, size_t n, bool truncated, const char **status,
           const char **text, char user[AUTH_NAME_MAX + 1])
{
	char addr[64] = "", mech[16] = "", key[AUTH_Z85_KEY_LEN + 1], prefix[9];
	device_info d;
	store_txn *t = NULL;
	store_rc rc;
	bool quiet = false;
	uint64_t repeats = 0;

	user[0] = '\0';
	*status = "400";
	if (n < 6 || truncated || !frame_is(&f[0], "1.0")) {
		*text = "malformed ZAP request";
		log_event(LOG_INFO, "ZAP: refused", LS("reason", "malformed request"), LU("frames", n),
		          NULL);
		return;
	}
	frame_text(&f[3], addr, sizeof(addr));
	if (!frame_is(&f[5], "CURVE")) {
		frame_text(&f[5], mech, sizeof(mech));
		*text = "only CURVE clients are admitted";
		metrics_inc(METRIC_ZAP_DENIALS_TOTAL, MZAP_MECHANISM, 1);
		log_event(LOG_INFO, "ZAP: refused", LS("reason", "mechanism"), LS("mechanism", mech),
		          LS("address", addr), NULL);
		return;
	}
	if (n != 7 || zmq_msg_size(&f[6]) != 32) {
		*text = "malformed CURVE credentials";
		log_event(LOG_INFO, "ZAP: refused", LS("reason", "malformed request"),
		          LS("address", addr), NULL);
		return;
	}
	if (zmq_z85_encode(key, zmq_msg_data(&f[6]), 32) == NULL) {
		*status = "500";
		*text = "internal error";
		return;
	}
	memcpy(prefix, key, 8);
	prefix[8] = '\0';
	if ((rc = store_read_begin(z->s, &t)) == STORE_OK) {
		rc = auth_device_by_key(t, key, &d);
		store_read_end(&t);
	}
	if (rc == STORE_OK && !d.revoked) {
		z->last_refused[0] = '\0';
	} else if (rc == STORE_OK || rc == STORE_NOTFOUND) {
		int64_t now = clock_wall_ms();
		quiet = strcmp(z->last_refused, key) == 0 && now - z->last_refused_ms < ZAP_REPEAT_LOG_MS;
		if (quiet) {
			z->repeats++;
		} else {
			repeats = z->repeats;
			z->repeats = 0;
			strcpy(z->last_refused, key);
			z->last_refused_ms = now;
		}
	}
	if (rc == STORE_OK && !d.revoked) {
		*status = "200";
		*text = "OK";
		strcpy(user, d.name);
		log_event(LOG_DEBUG, "ZAP: admitted", LS("device", d.name), LS("address", addr), NULL);
	} else if (rc == STORE_OK) {
		*text = "revoked";
		metrics_inc(METRIC_ZAP_DENIALS_TOTAL, MZAP_REVOKED, 1);
		if (!quiet)
			log_event(LOG_INFO, "ZAP: refused", LS("reason", "revoked"), LS("device", d.name),
			          LS("address", addr), LU("repeats_not_logged", repeats), NULL);
	} else if (rc == STORE_NOTFOUND) {
		*text = "unknown key";
		metrics_inc(METRIC_ZAP_DENIALS_TOTAL, MZAP_UNKNOWN_KEY, 1);
		if (!quiet)
			log_event(LOG_INFO, "ZAP: refused", LS("reason", "unknown key"), LS("key", prefix),
			          LS("address", addr), LU("repeats_not_logged", repeats), NULL);
	} else {
		*status = "500"; /* libzmq refuses the client: fail closed */
		*text = "internal error";
		log_event(LOG_ERROR, "ZAP: registry lookup failed, client refused", LS("key", prefix),
		          LI("store_rc", rc), NULL);
	}
}

/* Reads one request and answers it. False when the context is going away. */
static bool
zap_serve_one(struct zap_handler *z)
{
	zmq_msg_t f[ZAP_FRAMES_MAX];
	size_t n = 0;
	bool more = true, truncated = false, alive = true;
	const char *status, *text;
	char user[AUTH_NAME_MAX + 1];

	while (more) {
		zmq_msg_t extra, *m = n < ZAP_FRAMES_MAX ? &f[n] : &extra;
		zmq_msg_init(m);
		if (zmq_msg_recv(m, z->rep, 0) < 0) {
			zmq_msg_close(m);
			if (zmq_errno() == EINTR)
				continue;
			alive = zmq_errno() != ETERM;
			goto out; /* a REP that lost its request cannot reply: nothing to answer */
		}
		more = zmq_msg_more(m);
		if (m == &extra) {
			truncated = true;
			zmq_msg_close(m);
		} else {
			n++;
		}
	}
	zap_decide(z, f, n, truncated, &status, &text, user);
	/* Reply: version, request id, status code, status text, user id, metadata. */
	if (zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE) < 0 ||
	    zmq_send(z->rep, n >= 2 ? zmq_msg_data(&f[1]) : "", n >= 2 ? zmq_msg_size(&f[1]) : 0,
	             ZMQ_SNDMORE) < 0 ||
	    zmq_send(z->rep, status, strlen(status), ZMQ_SNDMORE) < 0 ||
	    zmq_send(z->rep, text, strlen(text), ZMQ_SNDMORE) < 0 ||
	    zmq_send(z->rep, user, strlen(user), ZMQ_SNDMORE) < 0 || zmq_send(z->rep, "", 0, 0) < 0)
		alive = zmq_errno() != ETERM;
out:
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
	return alive;
}

static void *
zap_thread(void *arg)
{
	struct zap_handler *z = arg;
	for (;;) {
		zmq_pollitem_t items[2] = {{z->rep, 0, ZMQ_POLLIN, 0}, {z->stop_r, 0, ZMQ_POLLIN, 0}};
		if (zmq_poll(items, 2, -1) < 0) {
			if (zmq_errno() == EINTR)
				continue;
			break; /* ETERM: the context is shutting down */
		}
		if (items[1].revents & ZMQ_POLLIN)
			break;
		if ((items[0].revents & ZMQ_POLLIN) && !zap_serve_one(z))
			break;
	}
	zmq_unbind(z->rep, ZAP_ENDPOINT); /* now, not when the reaper gets to it */
	zmq_close(z->rep);
	zmq_close(z->stop_r);
	z->rep = z->stop_r = NULL;
	return NULL;
}

static void *
socket_new(void *zctx, int type)
{
	void *sock = zmq_socket(zctx, type);
	int zero = 0;
	if (sock != NULL)
		zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	return sock;
}

zap_handler *
zap_start(void *zctx, store *s)
{
	struct zap_handler *z = calloc(1, sizeof(*z));
	char pipe_ep[64];

	if (z == NULL)
		return NULL;
	z->s = s;
	snprintf(pipe_ep, sizeof(pipe_ep), "inproc://fieldsyncd-zap-stop-%p", (void *)z);
	if ((z->rep = socket_new(zctx, ZMQ_REP)) == NULL ||
	    zmq_bind(z->rep, ZAP_ENDPOINT) != 0) {
		log_event(LOG_ERROR, "cannot start the ZAP handler", LS("endpoint", ZAP_ENDPOINT),
		          LS("error", zmq_strerror(zmq_errno())), NULL);
		goto fail;
	}
	if ((z->stop_w = socket_new(zctx, ZMQ_PAIR)) == NULL || zmq_bind(z->stop_w, pipe_ep) != 0 ||
	    (z->stop_r = socket_new(zctx, ZMQ_PAIR)) == NULL || zmq_connect(z->stop_r, pipe_ep) != 0) {
		log_event(LOG_ERROR, "cannot start the ZAP handler", LS("error",
		          zmq_strerror(zmq_errno())), NULL);
		goto fail;
	}
	/* pthread_create is a full barrier: the sockets move to the new thread. */
	if (pthread_create(&z->thread, NULL, zap_thread, z) != 0) {
		log_event(LOG_ERROR, "cannot start the ZAP handler thread", NULL);
		goto fail;
	}
	log_event(LOG_DEBUG, "ZAP handler started", LS("endpoint", ZAP_ENDPOINT), NULL);
	return z;
fail:
	if (z->rep != NULL)
		zmq_close(z->rep);
	if (z->stop_r != NULL)
		zmq_close(z->stop_r);
	if (z->stop_w != NULL)
		zmq_close(z->stop_w);
	free(z);
	return NULL;
}

void
zap_stop(zap_handler **zp)
{
	if (zp == NULL || *zp == NULL)
		return;
	struct zap_handler *z = *zp;
	/* Fails only when the context is already shutting down, and then the
	 * thread's poll returns ETERM by itself. */
	zmq_send(z->stop_w, "", 0, 0);
	pthread_join(z->thread, NULL);
	zmq_close(z->stop_w);
	free(z);
	*zp = NULL;
}
