/*
 * zap: the CURVE server keys and the ZAP handler (endpoint layer).
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "sys.h"
#include "zap.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES_MAX 8
#define KEY_FILE_MAX 256 /* a key file is one line; anything longer is not a key */

/* ---- server keys ------------------------------------------------------- */

static bool
key_path(char *out, size_t cap, const char *dir, const char *file)
{
	int n = snprintf(out, cap, "%s/%s", dir, file);
	return n > 0 && (size_t)n < cap;
}

fsd_err
zap_keys_create(const char *data_dir, char *err, size_t errlen)
{
	char pub[AUTH_Z85_KEY_LEN + 1], sec[AUTH_Z85_KEY_LEN + 1];
	char pub_path[600], sec_path[600], line[AUTH_Z85_KEY_LEN + 2];
	struct stat st;
	fsd_err rc = FSD_IO;

	if (!key_path(sec_path, sizeof(sec_path), data_dir, "server.key") ||
	    !key_path(pub_path, sizeof(pub_path), data_dir, "server.pub")) {
		snprintf(err, errlen, "data directory path too long");
		return FSD_INVALID;
	}
	if (lstat(sec_path, &st) == 0 || lstat(pub_path, &st) == 0) {
		snprintf(err, errlen,
		         "%s is already initialised (%s exists); the server keys are "
		         "never overwritten",
		         data_dir, lstat(sec_path, &st) == 0 ? sec_path : pub_path);
		return FSD_EXISTS;
	}
	if (zmq_curve_keypair(pub, sec) != 0) {
		snprintf(err, errlen, "cannot make a CURVE key pair: %s",
		         zmq_strerror(zmq_errno()));
		return FSD_ERROR;
	}
	snprintf(line, sizeof(line), "%s\n", sec);
	if (sys_write_new_file(sec_path, line, err, errlen) != FSD_OK)
		goto out;
	snprintf(line, sizeof(line), "%s\n", pub);
	if (sys_write_new_file(pub_path, line, err, errlen) != FSD_OK) {
		unlink(sec_path);
		goto out;
	}
	sys_sync_dir(data_dir);
	rc = FSD_OK;
out:
	sys_wipe(sec, sizeof(sec));
	sys_wipe(line, sizeof(line));
	return rc;
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
			snprintf(err, errlen,
			         "%s is missing: make the server keys with "
			         "'fieldsyncd init --data-dir DIR'",
			         path);
		else
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto out;
	}
	if (secret && (st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		         "%s: group or others may read the server secret key (mode %04o); "
		         "chmod 600 %s",
		         path, (unsigned)(st.st_mode & 07777), path);
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
	if (!registry_key_valid(buf)) {
		snprintf(err, errlen,
		         "%s does not hold a CURVE key (one line of 40 Z85 characters)", path);
		goto out;
	}
	memcpy(key, buf, AUTH_Z85_KEY_LEN + 1);
	ok = true;
out:
	sys_wipe(buf, sizeof(buf));
	close(fd);
	return ok;
}

fsd_err
zap_keys_load(const char *data_dir, char pub[AUTH_Z85_KEY_LEN + 1], char sec[AUTH_Z85_KEY_LEN + 1],
              char *err, size_t errlen)
{
	char pub_path[600], sec_path[600], derived[AUTH_Z85_KEY_LEN + 1];

	if (!key_path(sec_path, sizeof(sec_path), data_dir, "server.key") ||
	    !key_path(pub_path, sizeof(pub_path), data_dir, "server.pub")) {
		snprintf(err, errlen, "data directory path too long");
		return FSD_INVALID;
	}
	if (!read_key_file(sec_path, true, sec, err, errlen))
		return FSD_INVALID;
	if (!read_key_file(pub_path, false, pub, err, errlen))
		goto fail;
	if (zmq_curve_public(derived, sec) != 0 || strcmp(derived, pub) != 0) {
		snprintf(err, errlen, "%s does not hold the public key of %s", pub_path, sec_path);
		goto fail;
	}
	return FSD_OK;
fail:
	sys_wipe(sec, AUTH_Z85_KEY_LEN + 1);
	return FSD_INVALID;
}

/* ---- the ZAP handler ----------------------------------------------------- */

#define ZAP_REPEAT_LOG_MS 60000 /* the same key refused again within this: not logged */

struct zap_handler {
	store *s;
	char last_refused[AUTH_Z85_KEY_LEN + 1]; /* libzmq clients retry every 100 ms: */
	int64_t last_refused_ms;                 /* one log line per key and minute */
	uint64_t repeats;                        /* refusals not logged since */
	void *rep;                               /* the thread's: requests from libzmq */
	void *stop_r;                            /* the thread's end of the stop pipe */
	void *stop_w;                            /* the owner's end */
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
	fsd_err rc;
	bool quiet = false;
	uint64_t repeats = 0;

	user[0] = '\0';
	*status = "400";
	if (n < 6 || truncated || !frame_is(&f[0], "1.0")) {
		*text = "malformed ZAP request";
		log_event(LOG_INFO, "ZAP: refused", LS("reason", "malformed request"),
		          LU("frames", n), NULL);
		return;
	}
	frame_text(&f[3], addr, sizeof(addr));
	if (!frame_is(&f[5], "CURVE")) {
		frame_text(&f[5], mech, sizeof(mech));
		*text = "only CURVE clients are admitted";
		metrics_inc(METRIC_ZAP_DENIALS_TOTAL, MZAP_MECHANISM, 1);
		log_event(LOG_INFO, "ZAP: refused", LS("reason", "mechanism"),
		          LS("mechanism", mech), LS("address", addr), NULL);
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
	if ((rc = store_read_begin(z->s, &t)) == FSD_OK) {
		rc = registry_device_by_key(t, key, &d);
		store_read_end(&t);
	}
	if (rc == FSD_OK && !d.revoked) {
		z->last_refused[0] = '\0';
	} else if (rc == FSD_OK || rc == FSD_NOTFOUND) {
		int64_t now = clock_wall_ms();
		quiet = strcmp(z->last_refused, key) == 0 &&
		        now - z->last_refused_ms < ZAP_REPEAT_LOG_MS;
		if (quiet) {
			z->repeats++;
		} else {
			repeats = z->repeats;
			z->repeats = 0;
			strcpy(z->last_refused, key);
			z->last_refused_ms = now;
		}
	}
	if (rc == FSD_OK && !d.revoked) {
		*status = "200";
		*text = "OK";
		strcpy(user, d.name);
		log_event(LOG_DEBUG, "ZAP: admitted", LS("device", d.name), LS("address", addr),
		          NULL);
	} else if (rc == FSD_OK) {
		*text = "revoked";
		metrics_inc(METRIC_ZAP_DENIALS_TOTAL, MZAP_REVOKED, 1);
		if (!quiet)
			log_event(LOG_INFO, "ZAP: refused", LS("reason", "revoked"),
			          LS("device", d.name), LS("address", addr),
			          LU("repeats_not_logged", repeats), NULL);
	} else if (rc == FSD_NOTFOUND) {
		*text = "unknown key";
		metrics_inc(METRIC_ZAP_DENIALS_TOTAL, MZAP_UNKNOWN_KEY, 1);
		if (!quiet)
			log_event(LOG_INFO, "ZAP: refused", LS("reason", "unknown key"),
			          LS("key", prefix), LS("address", addr),
			          LU("repeats_not_logged", repeats), NULL);
	} else {
		*status = "500"; /* libzmq refuses the client: fail closed */
		*text = "internal error";
		log_event(LOG_ERROR, "ZAP: registry lookup failed, client refused",
		          LS("key", prefix), LI("fsd_err", rc), NULL);
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
		zmq_pollitem_t items[2] = {{z->rep, 0, ZMQ_POLLIN, 0},
		                           {z->stop_r, 0, ZMQ_POLLIN, 0}};
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
	/* A fresh name each time: a handler freed just before may have had the
	 * same address, and its closed socket's endpoint lingers until the
	 * reaper gets to it. */
	static atomic_uint seq;
	snprintf(pipe_ep, sizeof(pipe_ep), "inproc://fieldsyncd-zap-stop-%p-%u", (void *)z,
	         atomic_fetch_add(&seq, 1));
	if ((z->rep = socket_new(zctx, ZMQ_REP)) == NULL || zmq_bind(z->rep, ZAP_ENDPOINT) != 0) {
		log_event(LOG_ERROR, "cannot start the ZAP handler", LS("endpoint", ZAP_ENDPOINT),
		          LS("error", zmq_strerror(zmq_errno())), NULL);
		goto fail;
	}
	if ((z->stop_w = socket_new(zctx, ZMQ_PAIR)) == NULL || zmq_bind(z->stop_w, pipe_ep) != 0 ||
	    (z->stop_r = socket_new(zctx, ZMQ_PAIR)) == NULL ||
	    zmq_connect(z->stop_r, pipe_ep) != 0) {
		log_event(LOG_ERROR, "cannot start the ZAP handler",
		          LS("error", zmq_strerror(zmq_errno())), NULL);
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

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN /* a draft option in zmq.h 4.3; libzmq 4.3 takes it */
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

/* CURVE server side and ZAP on a socket (production). Every option must
 * take: a socket that would run without them is refused (fail closed). */
fsd_err
zap_secure_socket(void *sock, const char *server_secret)
{
	int one = 1;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, server_secret, AUTH_Z85_KEY_LEN + 1) != 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "fieldsync", 9) != 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0) {
		log_event(LOG_ERROR, "cannot set up CURVE and ZAP on a socket",
		          LS("error", zmq_strerror(zmq_errno())), NULL);
		return FSD_IO;
	}
	return FSD_OK;
}
