/*
 * cmd_devices.c: the device registry's subcommands (admin layer; admin.h).
 *   enroll   makes a device's CURVE key pair, records its public key, name,
 *            role and scopes, and writes its credential file (JSON, mode
 *            0600, O_EXCL: never overwritten); the client secret key is only
 *            in that file. Names are never reused; a scope may not be a
 *            prefix of another enrolled scope (reminder topics match by
 *            prefix). The credential exists only if the enrollment commits.
 *   revoke   marks a device revoked (its name stays taken).
 *   devices  lists the enrolled devices, as a table or JSON, each with what
 *            the daemon last heard from it (registry_seen: last seen, its
 *            client string, its last Hello.report) and whether it is at
 *            risk (not seen, or holding an unpushed edit, for
 *            --at-risk-days); devices that reported without being enrolled
 *            (--dev: "replica:<id>") follow; the table ends with a summary.
 *            Read-only: it writes nothing, and runs beside a daemon.
 * enroll and revoke write an audit entry in the same transaction.
 *
 * All three run while the daemon runs or not: they share the store with it
 * (LMDB serialises writers), and the ZAP handler reads the registry at every
 * handshake, so a change takes effect at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zmq.h>

#include "admin.h"
#include "audit.h"
#include "clock.h"
#include "fieldsync/crypto.h"
#include "peer.h"
#include "registry.h"
#include "sys.h"
#include "zap.h"

static const char *
role_name(device_role r)
{
	return r == ROLE_SCHEDULER ? "scheduler" : "device";
}

/* [a-z0-9][a-z0-9._-]{0,63}: the grammar auth.c keeps for names. */
static bool
device_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > AUTH_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      (i > 0 && (ch == '.' || ch == '_' || ch == '-'))))
			return false;
	}
	return true;
}

/* ---- enroll ---------------------------------------------------------------- */

struct enroll_job {
	device_info d;
	const char *actor, *endpoint, *out, *server_pub;
	const char *client_secret;
	char why[600]; /* a refusal, for the operator */
	bool file_made;
};

/* True when a and b differ and one starts with the other. */
static bool
scope_prefix_clash(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la == lb)
		return false;
	return la < lb ? strncmp(a, b, la) == 0 : strncmp(a, b, lb) == 0;
}

static bool
clash_check(void *arg, const device_info *d)
{
	struct enroll_job *j = arg;
	for (size_t i = 0; i < j->d.n_scopes; i++)
		for (size_t k = 0; k < d->n_scopes; k++)
			if (scope_prefix_clash(j->d.scopes[i], d->scopes[k])) {
				snprintf(
					j->why, sizeof(j->why),
					"scope '%s' clashes with scope '%s' of device '%s'%s: one is a "
					"prefix of the other, and reminder topics "
					"(reminder/<rule>/<scope>) are subscribed by prefix, so a "
					"subscriber to one would also get the other's events; choose a "
					"scope name that neither starts nor is the start of another",
					j->d.scopes[i], d->scopes[k], d->name,
					d->revoked ? " (revoked)" : "");
				return false;
			}
	return true;
}

/* Writes the credential file: new (O_EXCL), mode 0600, synced. */
static bool
write_credential(struct enroll_job *j)
{
	cJSON *o = cJSON_CreateObject(), *sc = NULL;
	char *text = NULL;
	bool ok = false;
	int fd = -1;

	if (o == NULL || !cJSON_AddStringToObject(o, "endpoint", j->endpoint) ||
	    !cJSON_AddStringToObject(o, "server_public_key", j->server_pub) ||
	    !cJSON_AddStringToObject(o, "client_public_key", j->d.public_key) ||
	    !cJSON_AddStringToObject(o, "client_secret_key", j->client_secret) ||
	    !cJSON_AddStringToObject(o, "name", j->d.name) ||
	    (sc = cJSON_AddArrayToObject(o, "scopes")) == NULL ||
	    !cJSON_AddStringToObject(o, "role", role_name(j->d.role))) {
		snprintf(j->why, sizeof(j->why), "out of memory");
		goto out;
	}
	for (size_t i = 0; i < j->d.n_scopes; i++)
		if (!cJSON_AddItemToArray(sc, cJSON_CreateString(j->d.scopes[i]))) {
			snprintf(j->why, sizeof(j->why), "out of memory");
			goto out;
		}
	if ((text = cJSON_Print(o)) == NULL) {
		snprintf(j->why, sizeof(j->why), "out of memory");
		goto out;
	}
	fd = open(j->out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(j->why, sizeof(j->why), "cannot create %s: %s%s", j->out, strerror(errno),
		         errno == EEXIST ? " (a credential is never overwritten)" : "");
		goto out;
	}
	j->file_made = true;
	if (fchmod(fd, 0600) != 0 || !sys_write_all(fd, (const uint8_t *)text, strlen(text)) ||
	    write(fd, "\n", 1) != 1 || fsync(fd) != 0)
		goto io_fail;
	ok = true;
	goto out;
io_fail:
	snprintf(j->why, sizeof(j->why), "cannot write %s: %s", j->out, strerror(errno));
out:
	if (fd >= 0 && close(fd) != 0 && ok) {
		snprintf(j->why, sizeof(j->why), "cannot write %s: %s", j->out, strerror(errno));
		ok = false;
	}
	if (text != NULL) {
		fsc_cleanse(text, strlen(text)); /* it held the client secret key */
		free(text);
	}
	cJSON *secret = o ? cJSON_GetObjectItemCaseSensitive(o, "client_secret_key") : NULL;
	if (cJSON_IsString(secret))
		fsc_cleanse(secret->valuestring, strlen(secret->valuestring));
	cJSON_Delete(o);
	return ok;
}

static fsd_err
enroll_txn(store_txn *t, void *arg)
{
	struct enroll_job *j = arg;
	device_info old;
	char detail[AUTH_SCOPES_MAX * (FSP_SCOPE_MAX + 1) + 32];
	size_t off;
	fsd_err rc = registry_device_by_name(t, j->d.name, &old);

	if (rc == FSD_OK) {
		snprintf(j->why, sizeof(j->why),
		         "a device named '%s' is already enrolled%s; names "
		         "are never reused (they identify the device in the audit log): choose "
		         "another name",
		         j->d.name, old.revoked ? " (and was revoked)" : "");
		return FSD_ERROR;
	}
	if (rc != FSD_NOTFOUND)
		return rc;
	if ((rc = registry_device_list(t, clash_check, j)) != FSD_OK || j->why[0] != '\0')
		return rc != FSD_OK ? rc : FSD_ERROR;
	j->d.enrolled_at_ms = clock_wall_ms();
	if ((rc = registry_device_put(t, &j->d)) != FSD_OK)
		return rc;
	off = (size_t)snprintf(detail, sizeof(detail), "role=%s scopes=", role_name(j->d.role));
	for (size_t i = 0; i < j->d.n_scopes && off < sizeof(detail); i++)
		off += (size_t)snprintf(detail + off, sizeof(detail) - off, "%s%s", i ? "," : "",
		                        j->d.scopes[i]);
	return audit_append(t, j->actor, "enroll", "device", j->d.name, detail);
}

/* Splits "a,b" into d->scopes; prints why and returns false when bad. */
static bool
parse_scopes(const char *list, device_info *d)
{
	const char *p = list;
	d->n_scopes = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (d->n_scopes == AUTH_SCOPES_MAX) {
			fprintf(stderr, "fieldsyncd: --scopes: at most %d scopes\n",
			        AUTH_SCOPES_MAX);
			return false;
		}
		if (n == 0 || n > FSP_SCOPE_MAX) {
			fprintf(stderr,
			        "fieldsyncd: --scopes: an empty or over-long scope in '%s'\n",
			        list);
			return false;
		}
		char *s = d->scopes[d->n_scopes];
		memcpy(s, p, n);
		s[n] = '\0';
		if (!fsp_scope_valid(s)) {
			fprintf(stderr,
			        "fieldsyncd: --scopes: '%s' is not a scope "
			        "([a-z0-9][a-z0-9._-]{0,63})\n",
			        s);
			return false;
		}
		for (size_t i = 0; i < d->n_scopes; i++) {
			if (strcmp(d->scopes[i], s) == 0) {
				fprintf(stderr, "fieldsyncd: --scopes: '%s' is listed twice\n", s);
				return false;
			}
			if (scope_prefix_clash(d->scopes[i], s)) {
				fprintf(stderr,
				        "fieldsyncd: --scopes: '%s' and '%s': one is a prefix of the "
				        "other, and reminder topics (reminder/<rule>/<scope>) are "
				        "subscribed by prefix; choose names that do not start one "
				        "another\n",
				        d->scopes[i], s);
				return false;
			}
		}
		d->n_scopes++;
		if (comma == NULL)
			return true;
		p = comma + 1;
	}
}

int
admin_cmd_enroll(const admin_args *a)
{
	struct enroll_job j = {.actor = admin_actor(a),
	                       .endpoint = admin_opt(a, "endpoint"),
	                       .out = admin_opt(a, "out")};
	const char *dir = admin_opt(a, "data-dir"), *name = admin_opt(a, "name"),
		   *role = admin_opt(a, "role");
	char spub[AUTH_Z85_KEY_LEN + 1], ssec[AUTH_Z85_KEY_LEN + 1], csec[AUTH_Z85_KEY_LEN + 1];
	char err[700];
	store *s = NULL;
	fsd_err rc;
	int code = FSD_EXIT_FAIL;

	if (!device_name_valid(name)) {
		fprintf(stderr,
		        "fieldsyncd: --name '%s' is not a device name "
		        "([a-z0-9][a-z0-9._-]{0,63})\n",
		        name);
		return FSD_EXIT_USAGE;
	}
	snprintf(j.d.name, sizeof(j.d.name), "%s", name);
	if (!parse_scopes(admin_opt(a, "scopes"), &j.d))
		return FSD_EXIT_USAGE;
	if (strcmp(role, "device") == 0) {
		j.d.role = ROLE_DEVICE;
	} else if (strcmp(role, "scheduler") == 0) {
		j.d.role = ROLE_SCHEDULER;
	} else {
		fprintf(stderr, "fieldsyncd: --role must be 'device' or 'scheduler', not '%s'\n",
		        role);
		return FSD_EXIT_USAGE;
	}
	if (strstr(j.endpoint, "://") == NULL || strchr(j.endpoint, '*') != NULL ||
	    strlen(j.endpoint) > 255) {
		fprintf(stderr,
		        "fieldsyncd: --endpoint is the address a device connects to, e.g. "
		        "tcp://sync.example.org:7400 (not '%s')\n",
		        j.endpoint);
		return FSD_EXIT_USAGE;
	}
	if (zap_keys_load(dir, spub, ssec, err, sizeof(err)) != FSD_OK) {
		fprintf(stderr, "fieldsyncd: %s\n", err);
		return FSD_EXIT_FAIL;
	}
	fsc_cleanse(ssec, sizeof(ssec));
	j.server_pub = spub;
	if ((s = admin_open_store(dir, false)) == NULL)
		return FSD_EXIT_FAIL;
	if (zmq_curve_keypair(j.d.public_key, csec) != 0) {
		fprintf(stderr, "fieldsyncd: cannot make a key pair: %s\n",
		        zmq_strerror(zmq_errno()));
		goto out;
	}
	j.client_secret = csec;
	for (int tries = 0;; tries++) {
		store_txn *t;
		if ((rc = store_write_begin(s, &t)) != FSD_OK)
			break;
		j.why[0] = '\0';
		if ((rc = enroll_txn(t, &j)) == FSD_OK && !write_credential(&j))
			rc = FSD_ERROR;
		if (rc == FSD_OK) {
			rc = store_commit(&t);
		} else {
			store_abort(&t);
		}
		if (rc != FSD_OK && j.file_made) { /* the key is not enrolled: no credential */
			unlink(j.out);
			j.file_made = false;
		}
		if (rc == FSD_FULL && tries < 4 && store_grow(s) == FSD_OK)
			continue;
		break;
	}
	if (rc != FSD_OK) {
		fprintf(stderr, "fieldsyncd: enroll refused: %s\n",
		        j.why[0] ? j.why : fsd_strerror(rc));
		goto out;
	}
	printf("enrolled %s (%s) with public key %s; credential written to %s (mode 0600): "
	       "hand it to the device and delete it here\n",
	       j.d.name, role_name(j.d.role), j.d.public_key, j.out);
	code = FSD_EXIT_OK;
out:
	fsc_cleanse(csec, sizeof(csec));
	store_close(&s);
	return code;
}

/* ---- revoke ---------------------------------------------------------------- */

struct revoke_job {
	const char *name, *actor;
	device_info d;
	bool already;
};

static fsd_err
revoke_txn(store_txn *t, void *arg)
{
	struct revoke_job *j = arg;
	fsd_err rc = registry_device_by_name(t, j->name, &j->d);
	if (rc != FSD_OK)
		return rc;
	if (j->d.revoked) {
		j->already = true;
		return FSD_OK; /* commits nothing new */
	}
	j->d.revoked = true;
	j->d.revoked_at_ms = clock_wall_ms();
	if ((rc = registry_device_put(t, &j->d)) != FSD_OK)
		return rc;
	char detail[32];
	snprintf(detail, sizeof(detail), "role=%s", role_name(j->d.role));
	return audit_append(t, j->actor, "revoke", "device", j->name, detail);
}

int
admin_cmd_revoke(const admin_args *a)
{
	struct revoke_job j = {.name = admin_opt(a, "name"), .actor = admin_actor(a)};
	store *s = admin_open_store(admin_opt(a, "data-dir"), false);
	fsd_err rc;
	char when[32];

	if (s == NULL)
		return FSD_EXIT_FAIL;
	rc = admin_write_txn(s, revoke_txn, &j);
	store_close(&s);
	if (rc == FSD_NOTFOUND) {
		fprintf(stderr, "fieldsyncd: no device named '%s' is enrolled\n", j.name);
		return FSD_EXIT_FAIL;
	}
	if (rc != FSD_OK) {
		fprintf(stderr, "fieldsyncd: revoke failed: %s\n", fsd_strerror(rc));
		return FSD_EXIT_FAIL;
	}
	admin_iso_time(j.d.revoked_at_ms, when, sizeof(when));
	if (j.already)
		printf("%s was already revoked (%s); nothing changed\n", j.name, when);
	else
		printf("revoked %s at %s: new connections with its key are refused, and so is every "
		       "request on one already open\n",
		       j.name, when);
	return FSD_EXIT_OK;
}

/* ---- devices ----------------------------------------------------------------- */

static bool
list_device(void *arg, const device_info *d)
{
	admin_list *l = arg;
	char enrolled[32], revoked[32];
	cJSON *o = cJSON_CreateObject(), *sc = NULL;

	admin_iso_time(d->enrolled_at_ms, enrolled, sizeof(enrolled));
	admin_iso_time(d->revoked ? d->revoked_at_ms : 0, revoked, sizeof(revoked));
	if (o == NULL || !cJSON_AddItemToArray(l->items, o) ||
	    !cJSON_AddStringToObject(o, "name", d->name) ||
	    !cJSON_AddStringToObject(o, "role", role_name(d->role)) ||
	    (sc = cJSON_AddArrayToObject(o, "scopes")) == NULL ||
	    !cJSON_AddStringToObject(o, "public_key", d->public_key) ||
	    !cJSON_AddStringToObject(o, "enrolled_at", enrolled) ||
	    !cJSON_AddNumberToObject(o, "enrolled_at_ms", (double)d->enrolled_at_ms) ||
	    !cJSON_AddBoolToObject(o, "revoked", d->revoked) ||
	    !(d->revoked ? cJSON_AddStringToObject(o, "revoked_at", revoked)
	                 : cJSON_AddNullToObject(o, "revoked_at"))) {
		l->ok = false;
		return false;
	}
	for (size_t i = 0; i < d->n_scopes; i++)
		if (!cJSON_AddItemToArray(sc, cJSON_CreateString(d->scopes[i]))) {
			l->ok = false;
			return false;
		}
	return true;
}

/* Adds what the daemon last heard from a device to its JSON item. */
static bool
add_seen(cJSON *o, const device_seen *sn, int64_t now, int64_t at_risk_ms)
{
	char when[32];
	if (sn == NULL)
		return cJSON_AddNullToObject(o, "last_seen") != NULL &&
		       cJSON_AddNullToObject(o, "client") != NULL &&
		       cJSON_AddNullToObject(o, "report") != NULL &&
		       cJSON_AddBoolToObject(o, "at_risk", false) != NULL;
	admin_iso_time(sn->last_seen_ms, when, sizeof(when));
	cJSON *r = NULL;
	if (cJSON_AddStringToObject(o, "last_seen", when) == NULL ||
	    cJSON_AddNumberToObject(o, "last_seen_ms", (double)sn->last_seen_ms) == NULL ||
	    cJSON_AddStringToObject(o, "client", sn->client) == NULL ||
	    cJSON_AddBoolToObject(o, "at_risk", registry_seen_at_risk(sn, now, at_risk_ms)) == NULL)
		return false;
	if (!sn->has_report)
		return cJSON_AddNullToObject(o, "report") != NULL;
	return (r = cJSON_AddObjectToObject(o, "report")) != NULL &&
	       cJSON_AddNumberToObject(r, "pending", (double)sn->pending) != NULL &&
	       cJSON_AddNumberToObject(r, "oldest_pending_ms", (double)sn->oldest_pending_ms) !=
	               NULL &&
	       cJSON_AddNumberToObject(r, "failed", (double)sn->failed) != NULL &&
	       cJSON_AddNumberToObject(r, "last_seq", (double)sn->last_seq) != NULL;
}

static void
print_device(const cJSON *o)
{
	char scopes[AUTH_SCOPES_MAX * (FSP_SCOPE_MAX + 1) + 1] = "";
	char pending[48] = "-";
	size_t off = 0;
	const cJSON *it, *rep = cJSON_GetObjectItemCaseSensitive(o, "report");
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "scopes"))
	{
		if (cJSON_IsString(it) && off < sizeof(scopes))
			off += (size_t)snprintf(scopes + off, sizeof(scopes) - off, "%s%s",
			                        off ? "," : "", it->valuestring);
	}
	if (cJSON_IsObject(rep))
		snprintf(pending, sizeof(pending), "%.0f/%.0f",
		         cJSON_GetObjectItemCaseSensitive(rep, "pending")->valuedouble,
		         cJSON_GetObjectItemCaseSensitive(rep, "failed")->valuedouble);
	printf("%-24s %-9s %-40s %-20s %-20s %-20s %-10s %-7s %-18s %s\n", admin_jstr(o, "name"),
	       admin_jstr(o, "role"), admin_jstr(o, "public_key"), admin_jstr(o, "enrolled_at"),
	       admin_jstr(o, "revoked_at")[0] ? admin_jstr(o, "revoked_at") : "-",
	       admin_jstr(o, "last_seen")[0] ? admin_jstr(o, "last_seen") : "never", pending,
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "at_risk")) ? "AT-RISK" : "ok",
	       admin_jstr(o, "client")[0] ? admin_jstr(o, "client") : "-", scopes);
}

/* The device reports, read once into an array (they are few). */
struct seen_all {
	device_seen *v;
	size_t n, cap;
	bool ok;
};

static bool
seen_add(void *arg, const device_seen *d)
{
	struct seen_all *a = arg;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		device_seen *v = realloc(a->v, cap * sizeof(*v));
		if (v == NULL) {
			a->ok = false;
			return false;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = *d;
	return true;
}

static fsd_err
read_devices(store_txn *t, admin_list *l)
{
	return registry_device_list(t, list_device, l);
}

int
admin_cmd_devices(const admin_args *a)
{
	const char *dir = admin_opt(a, "data-dir"), *days = admin_opt(a, "at-risk-days");
	admin_list l = {cJSON_CreateArray(), true};
	struct seen_all seen = {NULL, 0, 0, true};
	int64_t now = clock_wall_ms(), at_risk_ms;
	char *end = NULL;
	long nd = days != NULL ? strtol(days, &end, 10) : 3;
	store_txn *t = NULL;
	fsd_err rc = FSD_ERROR;
	int code = FSD_EXIT_FAIL;

	if (days != NULL && (end == days || *end != '\0' || nd < 1 || nd > 3650)) {
		fprintf(stderr, "fieldsyncd devices: --at-risk-days takes 1..3650\n");
		cJSON_Delete(l.items);
		return FSD_EXIT_USAGE;
	}
	at_risk_ms = (int64_t)nd * 86400000;
	store *s = admin_open_store(dir, false);
	if (s != NULL && l.items != NULL && (rc = store_read_begin(s, &t)) == FSD_OK) {
		rc = read_devices(t, &l);
		store_read_end(&t);
	}
	store_close(&s);
	if (rc == FSD_OK) {
		fsd_err src = registry_seen_list(dir, seen_add, &seen);
		if (src != FSD_OK && src != FSD_NOTFOUND)
			fprintf(stderr,
			        "fieldsyncd devices: the device reports cannot be read: %s\n",
			        fsd_strerror(src));
	}
	size_t n_items = 0, at_risk = 0, reporting = 0;
	bool *used = calloc(seen.n + 1, sizeof(bool));
	cJSON *it;
	if (used == NULL || !seen.ok)
		l.ok = false;
	cJSON_ArrayForEach(it, l.items)
	{
		const device_seen *sn = NULL;
		for (size_t i = 0; l.ok && i < seen.n; i++)
			if (strcmp(seen.v[i].key, admin_jstr(it, "name")) == 0) {
				sn = &seen.v[i];
				used[i] = true;
			}
		if (l.ok && !add_seen(it, sn, now, at_risk_ms))
			l.ok = false;
	}
	for (size_t i = 0; l.ok && i < seen.n; i++) { /* reported, not enrolled (--dev) */
		cJSON *o = cJSON_CreateObject();
		if (used[i])
			continue;
		if (o == NULL || !cJSON_AddItemToArray(l.items, o) ||
		    !cJSON_AddStringToObject(o, "name", seen.v[i].key) ||
		    !cJSON_AddStringToObject(o, "role", "unenrolled") ||
		    !cJSON_AddArrayToObject(o, "scopes") ||
		    !add_seen(o, &seen.v[i], now, at_risk_ms))
			l.ok = false;
	}
	cJSON_ArrayForEach(it, l.items)
	{
		n_items++;
		reporting += cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "last_seen"));
		at_risk += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "at_risk"));
	}
	if (rc == FSD_OK && l.ok && admin_opt(a, "json") != NULL) {
		char *text = cJSON_Print(l.items);
		if (text != NULL)
			printf("%s\n", text);
		else
			l.ok = false;
		free(text);
	} else if (rc == FSD_OK && l.ok) {
		printf("%-24s %-9s %-40s %-20s %-20s %-20s %-10s %-7s %-18s %s\n", "NAME", "ROLE",
		       "PUBLIC KEY", "ENROLLED", "REVOKED", "LAST SEEN", "PEND/FAIL", "RISK",
		       "CLIENT", "SCOPES");
		cJSON_ArrayForEach(it, l.items)
		{
			print_device(it);
		}
		printf("\n%zu devices, %zu reporting, %zu at risk (not seen, or an unpushed edit, "
		       "for %ld days)\n",
		       n_items, reporting, at_risk, nd);
	}
	if (rc != FSD_OK || !l.ok)
		fprintf(stderr, "fieldsyncd devices: failed: %s\n",
		        rc != FSD_OK ? fsd_strerror(rc) : "out of memory");
	else
		code = FSD_EXIT_OK;
	free(used);
	free(seen.v);
	cJSON_Delete(l.items);
	return code;
}
