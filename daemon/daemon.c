/*
 * daemon: the process lifecycle of fieldsyncd (layer 7): start order,
 * signals, reload, the main loop and the drain.
 *
 * Start order (each step fails closed):
 *   secrets hygiene (not dumpable: no core dump, no ptrace by peers of the
 *   same uid; the server secret in a page of its own, DONTDUMP and locked,
 *   wiped at exit)  ->  --dev only on a store that is not a production
 *   one (no server keys, no enrolled device, no production key store)
 *   ->  an interrupted purge's re-key finished (purge_recover)  ->  server
 *   keys (production)  ->  ops HTTP  ->  the writer's pipe  ->  ZAP
 *   (before any server socket binds)  ->  the reminder endpoint (before the
 *   writer starts: its first round may publish)  ->  the writer actor  ->
 *   the sync endpoint. Readiness (/readyz) turns true after the last.
 *
 * The main thread owns every socket and polls the ROUTER, the writer's
 * pipe, the ROUTER's monitor and the XPUB. An upward flow is a message:
 * the writer sends finished jobs and event batches over its pipe.
 *
 * Signals: SIGHUP sets a flag the loop turns into reload() (log level, rule
 * table and time zone; a bad one is logged and the old ones stay; the writer
 * re-evaluates every case when the rules' fingerprint changed). SIGTERM/SIGINT:
 * stop reading the ROUTER, tell the writer to finish what is queued,
 * forward those replies, close, exit 0.
 *
 * systemd (Type=notify): READY=1 once every socket is bound, RELOADING=1
 * then READY=1 around a reload, STOPPING=1 when the drain begins
 * (sd_notify does nothing outside systemd: no NOTIFY_SOCKET).
 *
 * daemon_check_start() holds the start-up checks that must pass before a
 * store is created (main.c runs them first; check-config runs them alone).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <zmq.h>

#include "actor.h"
#include "clock.h"
#include "daemon_run.h"
#include "fieldsync/calendar.h"
#include "fieldsync/crypto.h"
#include "fieldsync/rules.h"
#include "keyring.h"
#include "log.h"
#include "metrics.h"
#include "ops_http.h"
#include "purge.h"
#include "registry.h"
#include "reminder_endpoint.h"
#include "sync_endpoint.h"
#include "sys.h"
#include "writer.h"
#include "zap.h"

#define PIPE_ENDPOINT "inproc://fieldsyncd-writer"

static volatile sig_atomic_t g_stop, g_reload;

/* What the ops HTTP thread may look at: atomics and short read txns only. */
static struct ops_state {
	_Atomic int64_t beat_ms; /* the event loop's last turn (monotonic) */
	atomic_bool bound, draining;
	store *s;
	const config *c;
	_Atomic(registry_seen *) seen; /* the sync endpoint's device reports */
} g_ops;

/* /healthz: shallow, the event loop turned within the last 5 s. */
static bool
ops_alive(void *arg)
{
	(void)arg;
	return clock_mono_ms() - atomic_load(&g_ops.beat_ms) < 5000;
}

/* /readyz: deep. */
static bool
ops_ready(void *arg, char *why, size_t len)
{
	store_txn *t = NULL;
	uint64_t free_bytes = 0;
	(void)arg;
	if (atomic_load(&g_ops.draining)) {
		snprintf(why, len, "draining: shutdown in progress");
		return false;
	}
	if (!atomic_load(&g_ops.bound)) {
		snprintf(why, len, "starting: the sockets are not bound yet");
		return false;
	}
	if (store_read_begin(g_ops.s, &t) != FSD_OK) {
		snprintf(why, len, "the store cannot be read");
		return false;
	}
	store_read_end(&t);
	return ops_disk_ok(g_ops.c->data_dir, g_ops.c->min_free_bytes, &free_bytes, why, len);
}

struct fleet {
	int64_t now, at_risk_ms, oldest_edit_ms;
	int64_t silent, at_risk;
};

static bool
fleet_one(void *arg, const device_seen *d)
{
	struct fleet *f = arg;
	if (f->now - d->last_seen_ms > f->at_risk_ms)
		f->silent++;
	if (registry_seen_at_risk(d, f->now, f->at_risk_ms))
		f->at_risk++;
	if (d->has_report && d->pending > 0 && d->oldest_pending_ms > 0 &&
	    (f->oldest_edit_ms == 0 || d->oldest_pending_ms < f->oldest_edit_ms))
		f->oldest_edit_ms = d->oldest_pending_ms;
	return true;
}

/* Fleet health from the device reports: counts, never a per-device label. */
static void
fleet_metrics(const config *c)
{
	struct fleet f = {.now = clock_deadline_ms(c->clock_offset_ms), /* the daemon's clock */
	                  .at_risk_ms = (int64_t)c->at_risk_days * 86400000};
	if (registry_seen_walk(atomic_load(&g_ops.seen), fleet_one, &f) != FSD_OK)
		return;
	metrics_set(METRIC_DEVICES_SILENT, 0, f.silent);
	metrics_set(METRIC_DEVICES_AT_RISK, 0, f.at_risk);
	metrics_set(METRIC_OLDEST_UNPUSHED_EDIT_AGE_SECONDS, 0,
	            f.oldest_edit_ms > 0 && f.now > f.oldest_edit_ms
	                    ? (f.now - f.oldest_edit_ms) / 1000
	                    : 0);
}

static void
ops_before_metrics(void *arg)
{
	uint64_t map = 0, used = 0, free_bytes = 0;
	uint32_t readers = 0;
	char why[128];
	(void)arg;
	store_stats(g_ops.s, &map, &used, &readers);
	metrics_set(METRIC_LMDB_MAP_SIZE_BYTES, 0, (int64_t)map);
	metrics_set(METRIC_LMDB_USED_BYTES, 0, (int64_t)used);
	metrics_set(METRIC_LMDB_READERS, 0, readers);
	ops_disk_ok(g_ops.c->data_dir, 0, &free_bytes, why, sizeof(why));
	metrics_set(METRIC_DISK_FREE_BYTES, 0, (int64_t)free_bytes);
	fleet_metrics(g_ops.c);
}

struct daemon {
	const config *c;
	store *s;
	void *ctx, *pipe;    /* pipe: our end of the writer's */
	bool secure;         /* CURVE + ZAP: not --dev */
	char *server_secret; /* AUTH_Z85_KEY_LEN + 1 in a page of its own */
	zap_handler *zap;
	writer *w;
	reminders *rem; /* until the writer takes it */
	sync_endpoint *se;
	reminder_endpoint *re;
	uint64_t revoked_fingerprint; /* to notice a revocation (watch_revocations) */
	int64_t next_revocation_check_ms;
};

static void
on_signal(int sig)
{
	if (sig == SIGHUP) {
		g_reload = 1;
	} else {
		g_stop = 1;
		atomic_store(&g_ops.draining, true); /* readiness false at once (lock-free) */
	}
}

/*
 * SIGHUP: read the configuration again (file, env, flags as at start) and
 * apply what can change without dropping a connection: the log level, the
 * rule table and the time zone. A bad file, table or zone is logged and the
 * old ones stay.
 */
static void
reload(struct daemon *tp)
{
	config nc;
	char err[600];
	rules_config *rc = malloc(sizeof(*rc));
	if (rc == NULL)
		return;
	if (config_load(&nc, tp->c->argc, tp->c->argv) != CONFIG_RUN) {
		log_event(LOG_ERROR, "reload refused: the configuration is bad; nothing changed",
		          NULL);
		free(rc);
		return;
	}
	if (reminders_load_rules(&nc, rc, err, sizeof(err)) != FSD_OK) {
		log_event(LOG_ERROR, "reload refused: bad rule table; nothing changed",
		          LS("error", err), NULL);
		free(rc);
		return;
	}
	char tzerr[256] = "";
	fs_tz *tz = tz_load(nc.time_zone, tzerr, sizeof(tzerr));
	if (tz == NULL) {
		log_event(LOG_ERROR, "reload refused: bad time zone; nothing changed",
		          LS("time_zone", nc.time_zone), LS("error", tzerr), NULL);
		free(rc);
		return;
	}
	sd_notify(0, "RELOADING=1");
	log_set_level(nc.log_level);
	if (sync_endpoint_set_deadlines(tp->se, rc, tz) != FSD_OK) /* Welcome tells tablets */
		log_event(LOG_WARN, "Welcome still carries the old rule table and zone", NULL);
	if (actor_send(tp->pipe, WRITER_RULES, rc, 0) != FSD_OK)
		free(rc);
	if (actor_send(tp->pipe, WRITER_ZONE, tz, 0) != FSD_OK)
		tz_free(&tz);
	log_event(LOG_INFO, "configuration reloaded (log level, rule table, time zone)", NULL);
	sd_notify(0, "READY=1");
}

static bool
fingerprint_revoked(void *arg, const device_info *d)
{
	uint64_t *h = arg;
	if (d->revoked)
		for (const char *p = d->public_key; *p; p++)
			*h = (*h ^ (uint8_t)*p) * 1099511628211ULL;
	return true;
}

/*
 * Once a second (production): when a device was revoked since the last look
 * (`fieldsyncd revoke` writes the registry from another process), close its
 * connections on both sockets and nobody else's. Nothing is re-bound: the
 * other devices and subscribers keep their connections and every event.
 * (Every request on the sync endpoint is checked against the registry too,
 * so a revoked device is refused at once, before its connection closes.)
 */
static void
watch_revocations(struct daemon *tp)
{
	int64_t now = clock_mono_ms();
	uint64_t h = 1469598103934665603ULL; /* FNV-1a of the revoked keys */
	store_txn *t = NULL;
	if (!tp->secure || now < tp->next_revocation_check_ms)
		return;
	tp->next_revocation_check_ms = now + 1000;
	if (store_read_begin(tp->s, &t) != FSD_OK)
		return;
	registry_device_list(t, fingerprint_revoked, &h);
	store_read_end(&t);
	if (tp->revoked_fingerprint != 0 && h != tp->revoked_fingerprint) {
		size_t a = sync_endpoint_cut(tp->se), b = reminder_endpoint_cut(tp->re);
		log_event(LOG_INFO, "a device was revoked: its connections are closed, no other",
		          LU("sync_connections", a), LU("subscriber_connections", b), NULL);
	}
	tp->revoked_fingerprint = h;
}

/* Forwards what the writer finished. Returns false on "stopped". */
static bool
read_pipe(struct daemon *tp)
{
	for (;;) {
		void *p = NULL;
		int tag;
		if (actor_recv(tp->pipe, ZMQ_DONTWAIT, &tag, &p) != FSD_OK)
			return true;
		if (tag == ACTOR_STOP)
			return false;
		if (tag == WRITER_EVENTS && p != NULL)
			reminder_endpoint_publish(tp->re, p);
		else if (tag == WRITER_JOB && p != NULL)
			sync_endpoint_reply(tp->se, p);
	}
}

static bool
count_device(void *arg, const device_info *d)
{
	(void)d;
	++*(size_t *)arg;
	return false; /* one is enough */
}

/*
 * --dev grants every scope to anonymous peers: refused on a production
 * store (server keys made by `init`, an enrolled device, or a key store a
 * production daemon used: keys/production, which mark_production writes),
 * so that FIELDSYNC_DEV=1 left in an environment cannot open real data to
 * anyone. A fresh directory with a master key stays allowed (tests encrypt
 * without CURVE that way).
 */
static bool
dev_allowed(const config *c, store *s)
{
	char p[700];
	size_t devices = 0;
	store_txn *t = NULL;
	const char *why = NULL;
	snprintf(p, sizeof(p), "%s/server.key", c->data_dir);
	if (sys_file_exists(p))
		why = "it has server keys (server.key: made by `fieldsyncd init`)";
	snprintf(p, sizeof(p), "%s/server.pub", c->data_dir);
	if (why == NULL && sys_file_exists(p))
		why = "it has server keys (server.pub: made by `fieldsyncd init`)";
	snprintf(p, sizeof(p), "%s/keys/production", c->data_dir);
	if (why == NULL && sys_file_exists(p))
		why = "its key store was used by a production daemon (keys/production)";
	if (why == NULL && store_read_begin(s, &t) == FSD_OK) {
		registry_device_list(t, count_device, &devices);
		store_read_end(&t);
		if (devices > 0)
			why = "it has enrolled devices";
	}
	if (why == NULL)
		return true;
	log_event(LOG_ERROR, "--dev refused on a production store", LS("data_dir", c->data_dir),
	          LS("reason", why), NULL);
	fprintf(stderr,
	        "fieldsyncd: refusing --dev (or FIELDSYNC_DEV=1) on %s: %s. Development mode "
	        "has no CURVE and no authentication and would hand its data to anyone. "
	        "Start without --dev (unset FIELDSYNC_DEV), or use a fresh data directory "
	        "for development.\n",
	        c->data_dir, why);
	return false;
}

static fsd_err
setup(struct daemon *tp)
{
	const char *secret = tp->secure ? tp->server_secret : NULL;
	fsd_err rc;
	tp->ctx = zmq_ctx_new();
	if (tp->ctx == NULL)
		return FSD_IO;
	tp->pipe = zmq_socket(tp->ctx, ZMQ_PAIR);
	if (tp->pipe == NULL || zmq_bind(tp->pipe, PIPE_ENDPOINT) != 0)
		return FSD_IO;
	int qhwm = 4096;
	zmq_setsockopt(tp->pipe, ZMQ_SNDHWM, &qhwm, sizeof(qhwm));

	if (tp->secure) { /* ZAP before any server socket binds: fail closed */
		tp->zap = zap_start(tp->ctx, tp->s);
		if (tp->zap == NULL) {
			log_event(LOG_ERROR, "cannot start the ZAP handler", NULL);
			return FSD_IO;
		}
	}
	/* The PUB is bound before the writer starts: its first round may publish. */
	if ((rc = reminder_endpoint_open(tp->ctx, tp->c, tp->s, secret, &tp->re)) != FSD_OK)
		return rc;
	rc = writer_start(tp->ctx, PIPE_ENDPOINT, tp->s, tp->c, tp->rem, &tp->w);
	tp->rem = NULL; /* the writer owns it now, even when it failed to start */
	if (rc != FSD_OK)
		return rc;
	if ((rc = sync_endpoint_open(tp->ctx, tp->c, tp->s, tp->pipe, secret, &tp->se)) != FSD_OK)
		return rc;
	return FSD_OK;
}

int
daemon_run(const config *c, store *s, reminders *rem)
{
	struct daemon tp = {.c = c, .s = s, .rem = rem};
	struct sigaction sa;
	ops_http *ops = NULL;
	int code = FSD_EXIT_FAIL;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: zmq_poll returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit must fail the write (EFBIG -> BUSY), not kill us. */
	signal(SIGXFSZ, SIG_IGN);

	/* no core dumps (they would hold the keys), no ptrace by same-uid peers */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	long pg = sysconf(_SC_PAGESIZE);
	if (posix_memalign((void **)&tp.server_secret, pg > 0 ? (size_t)pg : 4096,
	                   AUTH_Z85_KEY_LEN + 1) != 0) {
		tp.server_secret = NULL;
		goto out;
	}
	memset(tp.server_secret, 0, AUTH_Z85_KEY_LEN + 1);
	fsc_protect(tp.server_secret, AUTH_Z85_KEY_LEN + 1);
	tp.secure = !c->dev;
	if (c->dev && !dev_allowed(c, s)) {
		code = FSD_EXIT_USAGE;
		goto out;
	}
	if (purge_recover(s) != FSD_OK) { /* a purge's re-key a crash left half done */
		log_event(LOG_ERROR, "cannot finish an interrupted purge's re-key", NULL);
		goto out;
	}
	if (tp.secure) {
		char pub[AUTH_Z85_KEY_LEN + 1], err2[300];
		if (zap_keys_load(c->data_dir, pub, tp.server_secret, err2, sizeof(err2)) !=
		    FSD_OK) {
			log_event(LOG_ERROR, "cannot load the server keys", LS("error", err2),
			          NULL);
			fprintf(stderr, "fieldsyncd: %s\n", err2);
			code = FSD_EXIT_USAGE;
			goto out;
		}
		log_event(LOG_INFO, "CURVE on; only enrolled devices are admitted",
		          LS("server_public_key", pub), NULL);
		char mark[700], why[200];
		snprintf(mark, sizeof(mark), "%s/keys", c->data_dir);
		if (sys_file_exists(mark)) { /* --dev is refused on this key store from now on */
			snprintf(mark, sizeof(mark), "%s/keys/production", c->data_dir);
			if (!sys_file_exists(mark) &&
			    sys_write_new_file(mark, "a production daemon used this key store\n",
			                       why, sizeof(why)) != FSD_OK)
				log_event(LOG_WARN, "cannot mark the key store as production's",
				          LS("error", why), NULL);
		}
	}
	g_ops.s = s;
	g_ops.c = c;
	atomic_store(&g_ops.beat_ms, clock_mono_ms());
	ops_http_hooks hooks = {.alive = ops_alive,
	                        .ready = ops_ready,
	                        .before_metrics = ops_before_metrics};
	char err[256];
	ops_http_limits lim = {c->ops_max_connections, c->ops_per_ip, c->ops_idle_timeout_s};
	ops = ops_http_start_limited(c->ops_listen, &hooks, &lim, err, sizeof(err));
	if (ops == NULL) {
		log_event(LOG_ERROR, "cannot serve the ops HTTP endpoint",
		          LS("listen", c->ops_listen), LS("error", err), NULL);
		goto out;
	}
	metrics_set(METRIC_UP, 0, 1);
	if (setup(&tp) != FSD_OK) {
		log_event(LOG_ERROR, "start-up failed", NULL);
		goto out;
	}
	atomic_store(&g_ops.seen, sync_endpoint_seen(tp.se));
	atomic_store(&g_ops.bound, true);
	sd_notify(0, "READY=1\nSTATUS=serving");
	log_event(LOG_INFO, "ops HTTP ready", LS("listen", c->ops_listen),
	          LI("port", ops_http_port(ops)), NULL);
	while (!g_stop) {
		atomic_store(&g_ops.beat_ms, clock_mono_ms());
		watch_revocations(&tp);
		sync_endpoint_tick(tp.se);
		if (g_reload) {
			g_reload = 0;
			reload(&tp);
		}
		zmq_pollitem_t items[4] = {
			{sync_endpoint_socket(tp.se), 0, ZMQ_POLLIN, 0},
			{tp.pipe, 0, ZMQ_POLLIN, 0},
			{sync_endpoint_monitor(tp.se), 0,
		         sync_endpoint_monitor(tp.se) ? ZMQ_POLLIN : 0, 0},
			{reminder_endpoint_socket(tp.re), 0, ZMQ_POLLIN, 0},
		};
		if (zmq_poll(items, tp.secure ? 4 : 3, 1000) < 0) {
			if (zmq_errno() == EINTR)
				continue;
			log_event(LOG_ERROR, "poll failed", LS("error", zmq_strerror(zmq_errno())),
			          NULL);
			break;
		}
		if (items[1].revents & ZMQ_POLLIN)
			read_pipe(&tp);
		if (items[2].revents & ZMQ_POLLIN)
			sync_endpoint_read_monitor(tp.se);
		if (tp.secure && (items[3].revents & ZMQ_POLLIN))
			reminder_endpoint_read(tp.re);
		if (items[0].revents & ZMQ_POLLIN)
			sync_endpoint_read(tp.se);
	}
	atomic_store(&g_ops.draining, true); /* readiness goes false at once */
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	metrics_set(METRIC_DRAINING, 0, 1);
	log_event(LOG_INFO, "draining: no new requests; committing and answering what is queued",
	          LU("in_flight", sync_endpoint_inflight(tp.se)), NULL);
	actor_send_stop(tp.pipe);
	for (;;) {
		atomic_store(&g_ops.beat_ms, clock_mono_ms());
		zmq_pollitem_t it = {tp.pipe, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 1000) < 0 && zmq_errno() != EINTR)
			break;
		if ((it.revents & ZMQ_POLLIN) && !read_pipe(&tp))
			break;
	}
	code = FSD_EXIT_OK;
	log_event(LOG_INFO, "drained", LU("requests", atomic_load(&g_stats.requests)),
	          LU("pushes", atomic_load(&g_stats.pushes)),
	          LU("changes_applied", atomic_load(&g_stats.changes_applied)),
	          LU("commits", atomic_load(&g_stats.commits)),
	          LU("malformed", atomic_load(&g_stats.malformed)),
	          LU("busy", atomic_load(&g_stats.busy)),
	          LU("replies_unroutable", atomic_load(&g_stats.replies_unroutable)),
	          LU("events_published", atomic_load(&g_stats.events_published)),
	          LU("replays", atomic_load(&g_stats.replays)), NULL);
out:
	if (code != 0 && tp.w != NULL)
		actor_send_stop(tp.pipe); /* let a started writer end */
	writer_join(&tp.w);
	ops_http_stop(&ops); /* before the sync endpoint: /metrics reads its reports */
	atomic_store(&g_ops.seen, NULL);
	reminders_free(&tp.rem);
	sync_endpoint_close(&tp.se);
	reminder_endpoint_close(&tp.re);
	zap_stop(&tp.zap); /* after the server sockets: ZMQ_ZAP_ENFORCE_DOMAIN */
	if (tp.pipe != NULL)
		zmq_close(tp.pipe);
	if (tp.ctx != NULL)
		zmq_ctx_term(tp.ctx);
	if (tp.server_secret != NULL)
		fsc_cleanse(tp.server_secret, AUTH_Z85_KEY_LEN + 1);
	free(tp.server_secret);
	return code;
}

/* ---- start-up checks (daemon_check_start) --------------------------------- */

static void
check_line(FILE *report, bool ok, const char *what, const char *detail)
{
	if (report != NULL)
		fprintf(report, "# check %-12s %s%s%s\n", what, ok ? "ok" : "FAILED",
		        detail[0] ? ": " : "", detail);
}

int
daemon_check_start(const config *c, bool lock_held, FILE *report)
{
	char err[600], keys_dir[600], detail[700];
	const char *env_key = getenv("FIELDSYNC_MASTER_KEY");
	bool has_key = c->master_key_file[0] != '\0' || (env_key != NULL && env_key[0] != '\0');
	struct stat st;

	if (!lock_held) {
		long pid = store_lock_holder(c->data_dir);
		if (pid != 0) {
			snprintf(detail, sizeof(detail),
			         "%s is in use by another fieldsyncd (pid %ld); one daemon per "
			         "data directory",
			         c->data_dir, pid);
			if (pid < 0)
				snprintf(
					detail, sizeof(detail),
					"%s is in use by another process (its pid is unknown); one "
					"daemon per data directory",
					c->data_dir);
			check_line(report, false, "lock", detail);
			fprintf(stderr, "fieldsyncd: %s\n", detail);
			return FSD_EXIT_FAIL;
		}
		check_line(report, true, "lock",
		           stat(c->data_dir, &st) == 0 ? "free"
		                                       : "free (the data "
		                                         "directory will be "
		                                         "created)");
	}
	if (!c->dev) {
		char pub[AUTH_Z85_KEY_LEN + 1], sec[AUTH_Z85_KEY_LEN + 1];
		fsd_err rc = zap_keys_load(c->data_dir, pub, sec, err, sizeof(err));
		memset(sec, 0, sizeof(sec));
		check_line(report, rc == FSD_OK, "server-keys", rc == FSD_OK ? pub : err);
		if (rc != FSD_OK) {
			fprintf(stderr, "fieldsyncd: %s\n", err);
			return FSD_EXIT_USAGE;
		}
	}
	snprintf(keys_dir, sizeof(keys_dir), "%s/keys", c->data_dir);
	if (has_key || !c->dev) {
		fsd_err rc = keyring_check_master(c->data_dir, c->master_key_file, env_key, err,
		                                  sizeof(err));
		check_line(report, rc == FSD_OK, "master-key",
		           rc == FSD_OK ? "readable, opens the key store; encryption at rest is on"
		                        : err);
		if (rc != FSD_OK) {
			fprintf(stderr, "fieldsyncd: %s\n", err);
			return FSD_EXIT_USAGE;
		}
	} else if (stat(keys_dir, &st) == 0) { /* sealed data needs its keys */
		snprintf(detail, sizeof(detail),
		         "%s holds encrypted data: give --master-key-file or "
		         "FIELDSYNC_MASTER_KEY",
		         c->data_dir);
		check_line(report, false, "master-key", detail);
		fprintf(stderr, "fieldsyncd: %s\n", detail);
		return FSD_EXIT_USAGE;
	} else {
		check_line(report, true, "master-key",
		           "none (--dev: data at rest is NOT encrypted)");
	}
	return FSD_EXIT_OK;
}
