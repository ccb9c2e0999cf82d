/*
 * admin.c: the operator's subcommands of fieldsyncd (init, enroll, revoke,
 * devices, audit). They open the same LMDB store as a running daemon (LMDB
 * serialises writers across processes), so they work while it runs and take
 * effect at once: the ZAP handler reads the registry at every handshake.
 *
 * Every subcommand: --help; errors on stderr; exit 0 on success, 1 when it
 * failed, 2 for bad usage. --data-dir also comes from FIELDSYNC_DATA_DIR.
 * Every change (init, enroll, revoke) writes one audit entry in the same
 * transaction. Nothing here prints or stores a client secret key, except the
 * credential file enroll writes (mode 0600, never overwritten).
 *
 * To add a subcommand: write `static int cmd_x(const admin_cmd *c, const
 * admin_args *a)` and add a row to `commands` below; options, --help, the
 * required-option checks and --data-dir are handled by admin_dispatch.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zmq.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "fieldsyncd.h"
#include "ops_http.h"

#define ADMIN_OPTS_MAX 12
#define ADMIN_MAP_SIZE (1ULL << 30)      /* as the daemon's default; LMDB keeps a larger file's */
#define ADMIN_MAP_SIZE_MAX (64ULL << 30)

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct admin_opt {
	const char *name; /* without "--"; NULL ends the list */
	const char *arg;  /* NULL: a flag */
	bool required;
	const char *help;
} admin_opt;

/* Option values by index in the command's opts: NULL when absent, "1" for a flag. */
typedef struct admin_args {
	const char *val[ADMIN_OPTS_MAX];
} admin_args;

typedef struct admin_cmd admin_cmd;
struct admin_cmd {
	const char *name;
	int (*fn)(const admin_cmd *c, const admin_args *a);
	const char *usage; /* what it does, for --help */
	admin_opt opts[ADMIN_OPTS_MAX];
};

static const char *
opt(const admin_cmd *c, const admin_args *a, const char *name)
{
	for (size_t i = 0; i < ADMIN_OPTS_MAX && c->opts[i].name != NULL; i++)
		if (strcmp(c->opts[i].name, name) == 0)
			return a->val[i];
	return NULL;
}

static void
print_usage(FILE *f, const admin_cmd *c)
{
	fprintf(f, "usage: fieldsyncd %s [OPTIONS]\n\n%s\n\noptions:\n", c->name, c->usage);
	for (size_t i = 0; i < ADMIN_OPTS_MAX && c->opts[i].name != NULL; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", c->opts[i].name, c->opts[i].arg ? " " : "",
		         c->opts[i].arg ? c->opts[i].arg : "");
		fprintf(f, "  %-22s %s%s\n", left, c->opts[i].help,
		        c->opts[i].required ? " (required)" : "");
	}
	fprintf(f, "  %-22s %s\n", "--help", "print this help and exit");
	fprintf(f, "\nexit status: 0 done, 1 failed, 2 bad usage.\n");
}

/* "who did it" for the audit log: --actor, else $SUDO_USER, $USER, "unknown". */
static const char *
actor_of(const admin_cmd *c, const admin_args *a)
{
	const char *v = opt(c, a, "actor");
	if (v == NULL || v[0] == '\0')
		v = getenv("SUDO_USER");
	if (v == NULL || v[0] == '\0')
		v = getenv("USER");
	return v != NULL && v[0] != '\0' ? v : "unknown";
}

static void
iso_time(int64_t ms, char *out, size_t cap)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || gmtime_r(&secs, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, cap, "-");
}

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

/* Opens the store of an initialised data dir (or makes it: create). */
static store *
open_store(const char *dir, bool create)
{
	char path[600];
	struct stat st;
	store *s;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (!create && stat(path, &st) != 0) {
		fprintf(stderr, "fieldsyncd: %s holds no store: run 'fieldsyncd init --data-dir %s' "
		                "first\n", dir, dir);
		return NULL;
	}
	if ((s = store_open(dir, ADMIN_MAP_SIZE, ADMIN_MAP_SIZE_MAX)) == NULL)
		fprintf(stderr, "fieldsyncd: cannot open the store in %s (see the log line above)\n", dir);
	return s;
}

/* Runs fn in a write transaction and commits; grows the map when full. */
typedef fsd_err (*txn_fn)(store_txn *t, void *arg);
static fsd_err
write_txn(store *s, txn_fn fn, void *arg)
{
	for (int tries = 0;; tries++) {
		store_txn *t;
		fsd_err rc = store_write_begin(s, &t);
		if (rc != FSD_OK)
			return rc;
		if ((rc = fn(t, arg)) == FSD_OK)
			rc = store_commit(&t);
		else
			store_abort(&t);
		if (rc == FSD_FULL && tries < 4 && store_grow(s) == FSD_OK)
			continue;
		return rc;
	}
}

static const char *
store_rc_text(fsd_err rc)
{
	switch (rc) {
	case FSD_OK: return "ok";
	case FSD_NOTFOUND: return "not found";
	case FSD_FULL: return "the store is full (raise --map-size-max)";
	case FSD_NOSPACE: return "the disk is full";
	case FSD_CORRUPT: return "a stored value does not decode";
	default: return "storage error";
	}
}

/* ---- init ------------------------------------------------------------------ */

struct init_job {
	const char *dir, *actor;
	char err[700];
	bool keys_made;
};

static fsd_err
init_txn(store_txn *t, void *arg)
{
	struct init_job *j = arg;
	fsd_err rc = audit_append(t, j->actor, "init", NULL, NULL, "server key pair created");
	if (rc != FSD_OK)
		return rc;
	if (!j->keys_made && zap_keys_create(j->dir, j->err, sizeof(j->err)) != FSD_OK)
		return FSD_ERROR;
	j->keys_made = true;
	return FSD_OK;
}

static int
cmd_init(const admin_cmd *c, const admin_args *a)
{
	struct init_job j = {.dir = opt(c, a, "data-dir"), .actor = actor_of(c, a)};
	char pub[AUTH_Z85_KEY_LEN + 1], sec[AUTH_Z85_KEY_LEN + 1], path[600];
	struct stat st;
	store *s;
	fsd_err rc;

	snprintf(path, sizeof(path), "%s/server.key", j.dir);
	if (lstat(path, &st) == 0) {
		fprintf(stderr, "fieldsyncd: %s is already initialised (%s exists); nothing was "
		                "changed\n", j.dir, path);
		return EXIT_FAIL;
	}
	if ((s = open_store(j.dir, true)) == NULL) /* makes the directory, mode 0700 */
		return EXIT_FAIL;
	if (stat(j.dir, &st) == 0 && (st.st_mode & 077) != 0)
		fprintf(stderr, "fieldsyncd: warning: group or others may enter %s (mode %04o); "
		                "chmod 700 %s\n", j.dir, (unsigned)(st.st_mode & 07777), j.dir);
	rc = write_txn(s, init_txn, &j);
	store_close(&s);
	if (rc != FSD_OK) {
		if (j.keys_made) { /* committing failed: leave no keys the log does not know */
			snprintf(path, sizeof(path), "%s/server.key", j.dir);
			unlink(path);
			snprintf(path, sizeof(path), "%s/server.pub", j.dir);
			unlink(path);
		}
		fprintf(stderr, "fieldsyncd: init failed: %s\n", j.err[0] ? j.err : store_rc_text(rc));
		return EXIT_FAIL;
	}
	if (zap_keys_load(j.dir, pub, sec, j.err, sizeof(j.err)) != FSD_OK) {
		fprintf(stderr, "fieldsyncd: %s\n", j.err);
		return EXIT_FAIL;
	}
	memset(sec, 0, sizeof(sec));
	fprintf(stderr, "fieldsyncd: initialised %s (enroll puts the server public key into "
	                "every credential); server public key:\n", j.dir);
	printf("%s\n", pub);
	return 0;
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
				snprintf(j->why, sizeof(j->why),
				         "scope '%s' clashes with scope '%s' of device '%s'%s: one is a "
				         "prefix of the other, and reminder topics "
				         "(reminder/<rule>/<scope>) are subscribed by prefix, so a "
				         "subscriber to one would also get the other's events; choose a "
				         "scope name that neither starts nor is the start of another",
				         j->d.scopes[i], d->scopes[k], d->name, d->revoked ? " (revoked)" : "");
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
	size_t len = strlen(text), done = 0;
	if (fchmod(fd, 0600) != 0)
		goto io_fail;
	while (done < len) {
		ssize_t w = write(fd, text + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto io_fail;
		done += (size_t)w;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) != 0)
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
		memset(text, 0, strlen(text)); /* it held the client secret key */
		free(text);
	}
	cJSON *secret = o ? cJSON_GetObjectItemCaseSensitive(o, "client_secret_key") : NULL;
	if (cJSON_IsString(secret))
		memset(secret->valuestring, 0, strlen(secret->valuestring));
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
		snprintf(j->why, sizeof(j->why), "a device named '%s' is already enrolled%s; names "
		         "are never reused (they identify the device in the audit log): choose "
		         "another name", j->d.name, old.revoked ? " (and was revoked)" : "");
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
			fprintf(stderr, "fieldsyncd: --scopes: at most %d scopes\n", AUTH_SCOPES_MAX);
			return false;
		}
		if (n == 0 || n > FSP_SCOPE_MAX) {
			fprintf(stderr, "fieldsyncd: --scopes: an empty or over-long scope in '%s'\n", list);
			return false;
		}
		char *s = d->scopes[d->n_scopes];
		memcpy(s, p, n);
		s[n] = '\0';
		if (!fsp_scope_valid(s)) {
			fprintf(stderr, "fieldsyncd: --scopes: '%s' is not a scope "
			                "([a-z0-9][a-z0-9._-]{0,63})\n", s);
			return false;
		}
		for (size_t i = 0; i < d->n_scopes; i++) {
			if (strcmp(d->scopes[i], s) == 0) {
				fprintf(stderr, "fieldsyncd: --scopes: '%s' is listed twice\n", s);
				return false;
			}
			if (scope_prefix_clash(d->scopes[i], s)) {
				fprintf(stderr, "fieldsyncd: --scopes: '%s' and '%s': one is a prefix of the "
				                "other, and reminder topics (reminder/<rule>/<scope>) are "
				                "subscribed by prefix; choose names that do not start one "
				                "another\n", d->scopes[i], s);
				return false;
			}
		}
		d->n_scopes++;
		if (comma == NULL)
			return true;
		p = comma + 1;
	}
}

static int
cmd_enroll(const admin_cmd *c, const admin_args *a)
{
	struct enroll_job j = {.actor = actor_of(c, a), .endpoint = opt(c, a, "endpoint"),
	                       .out = opt(c, a, "out")};
	const char *dir = opt(c, a, "data-dir"), *name = opt(c, a, "name"),
	           *role = opt(c, a, "role");
	char spub[AUTH_Z85_KEY_LEN + 1], ssec[AUTH_Z85_KEY_LEN + 1], csec[AUTH_Z85_KEY_LEN + 1];
	char err[700];
	store *s = NULL;
	fsd_err rc;
	int code = EXIT_FAIL;

	if (!device_name_valid(name)) {
		fprintf(stderr, "fieldsyncd: --name '%s' is not a device name "
		                "([a-z0-9][a-z0-9._-]{0,63})\n", name);
		return EXIT_USAGE;
	}
	snprintf(j.d.name, sizeof(j.d.name), "%s", name);
	if (!parse_scopes(opt(c, a, "scopes"), &j.d))
		return EXIT_USAGE;
	if (strcmp(role, "device") == 0) {
		j.d.role = ROLE_DEVICE;
	} else if (strcmp(role, "scheduler") == 0) {
		j.d.role = ROLE_SCHEDULER;
	} else {
		fprintf(stderr, "fieldsyncd: --role must be 'device' or 'scheduler', not '%s'\n", role);
		return EXIT_USAGE;
	}
	if (strstr(j.endpoint, "://") == NULL || strchr(j.endpoint, '*') != NULL ||
	    strlen(j.endpoint) > 255) {
		fprintf(stderr, "fieldsyncd: --endpoint is the address a device connects to, e.g. "
		                "tcp://sync.example.org:7400 (not '%s')\n", j.endpoint);
		return EXIT_USAGE;
	}
	if (zap_keys_load(dir, spub, ssec, err, sizeof(err)) != FSD_OK) {
		fprintf(stderr, "fieldsyncd: %s\n", err);
		return EXIT_FAIL;
	}
	memset(ssec, 0, sizeof(ssec));
	j.server_pub = spub;
	if ((s = open_store(dir, false)) == NULL)
		return EXIT_FAIL;
	if (zmq_curve_keypair(j.d.public_key, csec) != 0) {
		fprintf(stderr, "fieldsyncd: cannot make a key pair: %s\n", zmq_strerror(zmq_errno()));
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
		fprintf(stderr, "fieldsyncd: enroll refused: %s\n", j.why[0] ? j.why : store_rc_text(rc));
		goto out;
	}
	printf("enrolled %s (%s) with public key %s; credential written to %s (mode 0600): "
	       "hand it to the device and delete it here\n", j.d.name, role_name(j.d.role),
	       j.d.public_key, j.out);
	code = 0;
out:
	memset(csec, 0, sizeof(csec));
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

static int
cmd_revoke(const admin_cmd *c, const admin_args *a)
{
	struct revoke_job j = {.name = opt(c, a, "name"), .actor = actor_of(c, a)};
	store *s = open_store(opt(c, a, "data-dir"), false);
	fsd_err rc;
	char when[32];

	if (s == NULL)
		return EXIT_FAIL;
	rc = write_txn(s, revoke_txn, &j);
	store_close(&s);
	if (rc == FSD_NOTFOUND) {
		fprintf(stderr, "fieldsyncd: no device named '%s' is enrolled\n", j.name);
		return EXIT_FAIL;
	}
	if (rc != FSD_OK) {
		fprintf(stderr, "fieldsyncd: revoke failed: %s\n", store_rc_text(rc));
		return EXIT_FAIL;
	}
	iso_time(j.d.revoked_at_ms, when, sizeof(when));
	if (j.already)
		printf("%s was already revoked (%s); nothing changed\n", j.name, when);
	else
		printf("revoked %s at %s: new connections with its key are refused, and so is every "
		       "request on one already open\n", j.name, when);
	return 0;
}

/* ---- devices ----------------------------------------------------------------- */

/* What a read collects, so the read transaction ends before anything is printed. */
struct list_job {
	cJSON *items; /* an array of objects */
	bool ok;
};

static bool
list_device(void *arg, const device_info *d)
{
	struct list_job *j = arg;
	char enrolled[32], revoked[32];
	cJSON *o = cJSON_CreateObject(), *sc = NULL;

	iso_time(d->enrolled_at_ms, enrolled, sizeof(enrolled));
	iso_time(d->revoked ? d->revoked_at_ms : 0, revoked, sizeof(revoked));
	if (o == NULL || !cJSON_AddItemToArray(j->items, o) ||
	    !cJSON_AddStringToObject(o, "name", d->name) ||
	    !cJSON_AddStringToObject(o, "role", role_name(d->role)) ||
	    (sc = cJSON_AddArrayToObject(o, "scopes")) == NULL ||
	    !cJSON_AddStringToObject(o, "public_key", d->public_key) ||
	    !cJSON_AddStringToObject(o, "enrolled_at", enrolled) ||
	    !cJSON_AddNumberToObject(o, "enrolled_at_ms", (double)d->enrolled_at_ms) ||
	    !cJSON_AddBoolToObject(o, "revoked", d->revoked) ||
	    !(d->revoked ? cJSON_AddStringToObject(o, "revoked_at", revoked)
	                 : cJSON_AddNullToObject(o, "revoked_at"))) {
		j->ok = false;
		return false;
	}
	for (size_t i = 0; i < d->n_scopes; i++)
		if (!cJSON_AddItemToArray(sc, cJSON_CreateString(d->scopes[i]))) {
			j->ok = false;
			return false;
		}
	return true;
}

static const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void
print_device(const cJSON *o)
{
	char scopes[AUTH_SCOPES_MAX * (FSP_SCOPE_MAX + 1) + 1] = "";
	size_t off = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "scopes"))
	{
		if (cJSON_IsString(it) && off < sizeof(scopes))
			off += (size_t)snprintf(scopes + off, sizeof(scopes) - off, "%s%s", off ? "," : "",
			                        it->valuestring);
	}
	printf("%-24s %-9s %-40s %-20s %-20s %s\n", jstr(o, "name"), jstr(o, "role"),
	       jstr(o, "public_key"), jstr(o, "enrolled_at"),
	       jstr(o, "revoked_at")[0] ? jstr(o, "revoked_at") : "-", scopes);
}

static void
print_entry(const cJSON *o)
{
	const char *coll = jstr(o, "collection"), *id = jstr(o, "id"), *detail = jstr(o, "detail");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
	printf("%-6.0f %-20s %-16s %-8s %s%s%s%s%s\n", cJSON_IsNumber(seq) ? seq->valuedouble : 0,
	       jstr(o, "ts"), jstr(o, "actor"),
	       cJSON_GetObjectItemCaseSensitive(o, "unreadable") ? "(unreadable entry)"
	                                                         : jstr(o, "action"),
	       coll[0] || id[0] ? coll : "-", coll[0] && id[0] ? "/" : "", id, detail[0] ? "  " : "",
	       detail);
}

/*
 * Runs a read (devices or audit) that fills j.items, then prints them: a
 * JSON array with --json, else a header and one line per item.
 */
static int
list_and_print(const admin_cmd *c, const admin_args *a, const char *header,
               fsd_err (*read)(store_txn *t, struct list_job *j), void (*print)(const cJSON *o))
{
	struct list_job j = {cJSON_CreateArray(), true};
	store *s = open_store(opt(c, a, "data-dir"), false);
	store_txn *t = NULL;
	fsd_err rc = FSD_ERROR;

	if (s != NULL && j.items != NULL && (rc = store_read_begin(s, &t)) == FSD_OK) {
		rc = read(t, &j);
		store_read_end(&t);
	}
	store_close(&s);
	if (rc == FSD_OK && j.ok && opt(c, a, "json") != NULL) {
		char *text = cJSON_Print(j.items);
		if (text != NULL)
			printf("%s\n", text);
		else
			j.ok = false;
		free(text);
	} else if (rc == FSD_OK && j.ok) {
		const cJSON *it;
		printf("%s\n", header);
		cJSON_ArrayForEach(it, j.items)
		{
			print(it);
		}
	}
	cJSON_Delete(j.items);
	if (rc != FSD_OK || !j.ok) {
		fprintf(stderr, "fieldsyncd %s: failed: %s\n", c->name,
		        rc != FSD_OK ? store_rc_text(rc) : "out of memory");
		return EXIT_FAIL;
	}
	return 0;
}

static fsd_err
read_devices(store_txn *t, struct list_job *j)
{
	return registry_device_list(t, list_device, j);
}

static int
cmd_devices(const admin_cmd *c, const admin_args *a)
{
	char header[160];
	snprintf(header, sizeof(header), "%-24s %-9s %-40s %-20s %-20s %s", "NAME", "ROLE",
	         "PUBLIC KEY", "ENROLLED", "REVOKED", "SCOPES");
	return list_and_print(c, a, header, read_devices, print_device);
}

/* ---- audit ------------------------------------------------------------------- */

static bool
audit_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct list_job *j = arg;
	uint64_t seq = klen == 8 ? store_get_be64(key) : 0;
	cJSON *stored = cJSON_ParseWithLength((const char *)val, vlen), *o = cJSON_CreateObject();
	char when[32];

	/* seq first, then the entry as stored, then its time in words */
	if (o == NULL || !cJSON_AddItemToArray(j->items, o) ||
	    !cJSON_AddNumberToObject(o, "seq", (double)seq))
		goto fail;
	if (!cJSON_IsObject(stored)) { /* shown, never skipped: the log must not hide an entry */
		if (!cJSON_AddBoolToObject(o, "unreadable", true))
			goto fail;
	} else {
		while (stored->child != NULL) {
			cJSON *it = cJSON_DetachItemViaPointer(stored, stored->child);
			if (it->string == NULL) {
				cJSON_Delete(it);
				continue;
			}
			if (!cJSON_AddItemToObject(o, it->string, it)) {
				cJSON_Delete(it);
				goto fail;
			}
		}
	}
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts_ms");
	iso_time(cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0, when, sizeof(when));
	if (!cJSON_AddStringToObject(o, "ts", when))
		goto fail;
	cJSON_Delete(stored);
	return true;
fail:
	cJSON_Delete(stored);
	j->ok = false;
	return false;
}

static fsd_err
read_audit(store_txn *t, struct list_job *j)
{
	return store_kv_scan(t, &audit_table, NULL, 0, NULL, 0, audit_entry, j);
}

static int
cmd_audit(const admin_cmd *c, const admin_args *a)
{
	char header[160];
	snprintf(header, sizeof(header), "%-6s %-20s %-16s %-8s %s", "SEQ", "TIME", "ACTOR",
	         "ACTION", "WHAT");
	return list_and_print(c, a, header, read_audit, print_entry);
}

/* ---- purge and key rotation ---------------------------------------------- */

/* The keyring for a store with sealed data: --master-key-file or the env. */
static keyring *
open_keyring(const char *dir, const char *key_file, bool *needed)
{
	char keys_dir[600], err[400];
	struct stat st;
	const char *env = getenv("FIELDSYNC_MASTER_KEY");
	snprintf(keys_dir, sizeof(keys_dir), "%s/keys", dir);
	*needed = stat(keys_dir, &st) == 0;
	if (!*needed && (key_file == NULL || key_file[0] == '\0') && (env == NULL || env[0] == '\0'))
		return NULL; /* a plaintext (--dev) store */
	keyring *k = NULL;
	if (keyring_open(dir, key_file, env, &k, err, sizeof(err)) != FSD_OK)
		fprintf(stderr, "fieldsyncd: %s\n", err);
	return k;
}

static int
cmd_purge(const admin_cmd *c, const admin_args *a)
{
	const char *collection = opt(c, a, "collection"), *id = opt(c, a, "id");
	const char *case_id = opt(c, a, "case");
	bool whole_case = case_id != NULL, needed = false;
	purge_report rep;

	if (whole_case == (id != NULL) || (id != NULL && collection == NULL)) {
		fprintf(stderr, "fieldsyncd purge: give --case ID, or --collection C --id ID\n");
		return EXIT_USAGE;
	}
	if (whole_case)
		collection = "case", id = case_id;
	if (!fsp_collection_valid(collection) || id[0] == '\0' || strlen(id) > FSP_ID_MAX) {
		fprintf(stderr, "fieldsyncd purge: not a valid collection or id\n");
		return EXIT_USAGE;
	}
	store *s = open_store(opt(c, a, "data-dir"), false);
	if (s == NULL)
		return EXIT_FAIL;
	keyring *k = open_keyring(opt(c, a, "data-dir"), opt(c, a, "master-key-file"), &needed);
	if (k == NULL && needed) {
		store_close(&s);
		return EXIT_FAIL;
	}
	store_set_keyring(s, k);
	fsd_err rc = purge_run(s, collection, id, whole_case, actor_of(c, a), &rep);
	store_close(&s);
	keyring_close(&k);
	if (rc != FSD_OK) {
		fprintf(stderr, "fieldsyncd: purge failed: %s\n", store_rc_text(rc));
		return EXIT_FAIL;
	}
	if (rep.records == 0)
		printf("no such record: nothing to purge (an audit entry was written)\n");
	else
		printf("purged %zu record(s), %zu reminder(s); %zu data key(s) destroyed; every "
		       "tablet deletes them at its next sync\n",
		       rep.records, rep.reminders, rep.keys_destroyed);
	return 0;
}

static int
cmd_rotate(const admin_cmd *c, const admin_args *a)
{
	bool needed = false;
	size_t n = 0;
	char err[300];
	keyring *k = open_keyring(opt(c, a, "data-dir"), opt(c, a, "master-key-file"), &needed);
	if (k == NULL) {
		if (!needed)
			fprintf(stderr, "fieldsyncd: this store holds no encrypted data\n");
		return EXIT_FAIL;
	}
	bool ok = keyring_rewrap_all(k, &n, err, sizeof(err)) == FSD_OK;
	const char *id = keyring_current_id(k);
	char idc[80];
	snprintf(idc, sizeof(idc), "%s", id);
	keyring_close(&k);
	if (!ok) {
		fprintf(stderr, "fieldsyncd: rotate-master-key failed: %s\n", err);
		return EXIT_FAIL;
	}
	store *s = open_store(opt(c, a, "data-dir"), false);
	if (s != NULL) {
		store_txn *t = NULL;
		if (store_write_begin(s, &t) == FSD_OK) {
			if (audit_append(t, actor_of(c, a), "rotate-master-key", NULL, NULL, idc) == FSD_OK)
				store_commit(&t);
			else
				store_abort(&t);
		}
		store_close(&s);
	}
	printf("%zu data key(s) rewrapped with master key \"%s\"; the old master key can now be "
	       "removed from the key file\n", n, idc);
	return 0;
}

/* ---- health: for container HEALTHCHECKs (no curl in the image) ---------- */

static int
cmd_health(const admin_cmd *c, const admin_args *a)
{
	const char *listen = opt(c, a, "ops-listen");
	const char *path = opt(c, a, "ready") ? "/readyz" : "/healthz";
	struct sockaddr_storage addr;
	char err[200], req[128], buf[256];
	if (listen == NULL)
		listen = getenv("FIELDSYNC_OPS_LISTEN");
	if (listen == NULL || listen[0] == '\0')
		listen = "127.0.0.1:7480";
	if (!ops_http_parse_listen(listen, &addr, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd health: %s\n", err);
		return EXIT_USAGE;
	}
	/* 0.0.0.0 / :: listen on every address: ask loopback. */
	if (addr.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&addr;
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (addr.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	}
	int fd = socket(addr.ss_family, SOCK_STREAM, 0);
	struct timeval tv = {5, 0};
	if (fd < 0)
		return EXIT_FAIL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	socklen_t al = addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int code = -1;
	if (connect(fd, (struct sockaddr *)&addr, al) == 0) {
		int l = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
		ssize_t n = write(fd, req, (size_t)l) == l ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (n > 0) {
			buf[n] = '\0';
			if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
				code = -1;
		}
	}
	close(fd);
	if (code != 200) {
		fprintf(stderr, "fieldsyncd health: %s%s %s\n", listen, path,
		        code < 0 ? "did not answer" : "is not OK");
		return EXIT_FAIL;
	}
	return 0;
}

/* ---- the table ----------------------------------------------------------------- */

#define OPT_DATA_DIR {"data-dir", "DIR", true, "the daemon's data directory [FIELDSYNC_DATA_DIR]"}
#define OPT_ACTOR {"actor", "NAME", false, "who does this, for the audit log (default $SUDO_USER, $USER)"}
#define OPT_JSON {"json", NULL, false, "print a JSON array"}

static const admin_cmd commands[] = {
	{"init", cmd_init,
	 "Creates the store and the CURVE server key pair (DIR/server.key, DIR/server.pub,\n"
	 "mode 0600) and prints the server public key. Never overwrites existing keys.",
	 {OPT_DATA_DIR, OPT_ACTOR}},
	{"enroll", cmd_enroll,
	 "Enrolls a device or scheduler: makes its key pair, records its public key, name,\n"
	 "role and scopes, and writes its credential (JSON, mode 0600, never overwritten).\n"
	 "The client secret key is only in that file. Names are never reused; a scope may\n"
	 "not be a prefix of another enrolled scope (reminder topics match by prefix).\n"
	 "Takes effect at once, also while the daemon runs.",
	 {OPT_DATA_DIR,
	  {"name", "NAME", true, "device name, [a-z0-9][a-z0-9._-]{0,63}, unique"},
	  {"scopes", "A,B", true, "the scopes it may sync (at most 32)"},
	  {"role", "ROLE", true, "device (push and pull) or scheduler (replay and reminders)"},
	  {"endpoint", "EP", true, "the sync endpoint it connects to, e.g. tcp://sync.example.org:7400"},
	  {"out", "FILE", true, "where to write the credential"},
	  OPT_ACTOR}},
	{"revoke", cmd_revoke,
	 "Revokes a device: new handshakes with its key are refused at once, and so are\n"
	 "requests on its open connections. The name stays taken.",
	 {OPT_DATA_DIR, {"name", "NAME", true, "the device to revoke"}, OPT_ACTOR}},
	{"devices", cmd_devices,
	 "Lists the enrolled devices (name, role, public key, enrolled and revoked time in\n"
	 "UTC, scopes). Never shows a secret: the daemon holds none.",
	 {OPT_DATA_DIR, OPT_JSON}},
	{"purge", cmd_purge,
	 "Erases a record for good (GDPR art. 17): the record and its siblings become a purge\n"
	 "marker that every tablet obeys by deleting it, its reminders go, and its data key\n"
	 "is destroyed, so backups of the data taken before cannot be read for it. --case\n"
	 "erases a case and all its contacts. Later pushes to it are refused. Works while\n"
	 "the daemon runs.",
	 {OPT_DATA_DIR,
	  {"collection", "C", false, "the record's collection"},
	  {"id", "ID", false, "the record's id"},
	  {"case", "ID", false, "a case and all its contacts"},
	  {"master-key-file", "FILE", false, "the master key(s) [or FIELDSYNC_MASTER_KEY]"},
	  OPT_ACTOR}},
	{"rotate-master-key", cmd_rotate,
	 "Rewraps every data key with the first key of the master key file. To rotate: put\n"
	 "the new key first in the file, restart the daemon, run this, drop the old line.",
	 {OPT_DATA_DIR,
	  {"master-key-file", "FILE", false, "the master key(s) [or FIELDSYNC_MASTER_KEY]"},
	  OPT_ACTOR}},
	{"health", cmd_health,
	 "Asks the running daemon's ops endpoint: exit 0 when /healthz (or, with --ready,\n"
	 "/readyz) answers 200, else 1. For container HEALTHCHECKs: the image needs no curl.",
	 {{"ops-listen", "HOST:PORT", false, "the daemon's --ops-listen [FIELDSYNC_OPS_LISTEN]"},
	  {"ready", NULL, false, "ask /readyz (deep) instead of /healthz (shallow)"}}},
	{"audit", cmd_audit,
	 "Prints the audit log in order: who did what to which collection and id, and when.\n"
	 "It holds identifiers only, never payload content.",
	 {OPT_DATA_DIR, OPT_JSON}},
	/* backup.c; the order of opts follows BACKUP_O_* etc. in internal.h */
	{"backup", backup_cmd_backup,
	 "A hot, compacting copy of the store (DIR/data.mdb) into a new file, taken while\n"
	 "the daemon runs: the snapshot of the moment it began. Progress on a terminal.\n"
	 "The data keys (DIR/keys) are not in it, so a purge reaches data backups: copy\n"
	 "them with --with-keys into a separate file (key escrow, short retention).\n"
	 "Server keys are in no backup. Writes an audit entry.",
	 {OPT_DATA_DIR,
	  {"out", "FILE", true, "the backup file to create (mode 0600, never overwritten)"},
	  {"with-keys", "FILE2", false, "also copy the key store (DIR/keys) into FILE2"},
	  {"master-key-file", "FILE", false, "check that this master key opens the key store"},
	  OPT_ACTOR}},
	{"restore", backup_cmd_restore,
	 "Restores a backup into a new data directory (one holding a data.mdb is refused),\n"
	 "optionally with its key store backup, then verifies it. Server keys are not in\n"
	 "backups: copy server.key and server.pub from your secret store.",
	 {{"data-dir", "DIR", true, "the new data directory [FIELDSYNC_DATA_DIR]"},
	  {"from", "FILE", true, "the backup made by 'fieldsyncd backup --out'"},
	  {"keys-from", "FILE2", false, "the key store backup made by --with-keys"},
	  {"master-key-file", "FILE", false, "the master key(s), to verify sealed data [or FIELDSYNC_MASTER_KEY]"},
	  {"rules", "FILE", false, "the daemon's rule table, for the reminder check [FIELDSYNC_RULES]"},
	  {"time-zone", "ZONE", false, "the daemon's time zone (default Europe/Copenhagen) [FIELDSYNC_TIME_ZONE]"}}},
	{"verify", backup_cmd_verify,
	 "Checks a store: every record decodes (and its payloads open, with a master key),\n"
	 "the feed index matches the records, and stored reminders match their rules.\n"
	 "Problems name the record by collection/id. Exit 1 on any problem.",
	 {OPT_DATA_DIR,
	  {"master-key-file", "FILE", false, "the master key(s), to open sealed data [or FIELDSYNC_MASTER_KEY]"},
	  {"rules", "FILE", false, "the daemon's rule table, for the reminder check [FIELDSYNC_RULES]"},
	  {"time-zone", "ZONE", false, "the daemon's time zone (default Europe/Copenhagen) [FIELDSYNC_TIME_ZONE]"}}},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Parses argv (argv[0] is the subcommand) into a; returns -1 to go on, or an exit code. */
static int
parse_args(const admin_cmd *c, int argc, char **argv, admin_args *a)
{
	struct option longopts[ADMIN_OPTS_MAX + 2];
	size_t n = 0;

	memset(a, 0, sizeof(*a));
	for (; n < ADMIN_OPTS_MAX && c->opts[n].name != NULL; n++) {
		longopts[n].name = c->opts[n].name;
		longopts[n].has_arg = c->opts[n].arg ? required_argument : no_argument;
		longopts[n].flag = NULL;
		longopts[n].val = 256 + (int)n;
	}
	longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
	memset(&longopts[n + 1], 0, sizeof(longopts[n + 1]));

	optind = 1;
	opterr = 0;
	for (;;) {
		int id = getopt_long(argc, argv, "", longopts, NULL);
		if (id == -1)
			break;
		if (id == 'h') {
			print_usage(stdout, c);
			return 0;
		}
		if (id < 256 || id >= 256 + (int)n) {
			fprintf(stderr, "fieldsyncd %s: unknown or incomplete option '%s'\n"
			                "try 'fieldsyncd %s --help'\n", c->name, argv[optind - 1], c->name);
			return EXIT_USAGE;
		}
		a->val[id - 256] = c->opts[id - 256].arg ? optarg : "1";
	}
	if (optind < argc) {
		fprintf(stderr, "fieldsyncd %s: unexpected argument '%s'\ntry 'fieldsyncd %s --help'\n",
		        c->name, argv[optind], c->name);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++) {
		if (a->val[i] == NULL && strcmp(c->opts[i].name, "data-dir") == 0) {
			const char *env = getenv("FIELDSYNC_DATA_DIR");
			a->val[i] = env != NULL && env[0] != '\0' ? env : NULL;
		}
		if (c->opts[i].arg != NULL && a->val[i] != NULL && a->val[i][0] == '\0') {
			fprintf(stderr, "fieldsyncd %s: --%s is empty\n", c->name, c->opts[i].name);
			return EXIT_USAGE;
		}
		if (c->opts[i].required && a->val[i] == NULL) {
			fprintf(stderr, "fieldsyncd %s: --%s is required%s\ntry 'fieldsyncd %s --help'\n",
			        c->name, c->opts[i].name,
			        strcmp(c->opts[i].name, "data-dir") == 0 ? " (or FIELDSYNC_DATA_DIR)" : "",
			        c->name);
			return EXIT_USAGE;
		}
		if (strcmp(c->opts[i].name, "data-dir") == 0 && strlen(a->val[i]) > 400) {
			fprintf(stderr, "fieldsyncd %s: --data-dir is too long\n", c->name);
			return EXIT_USAGE;
		}
	}
	return -1;
}

bool
admin_dispatch(int argc, char **argv, int *code)
{
	admin_args a;
	int rc;

	if (argc < 2 || argv[1] == NULL)
		return false;
	for (size_t i = 0; i < N_COMMANDS; i++) {
		const admin_cmd *c = &commands[i];
		if (strcmp(argv[1], c->name) != 0)
			continue;
		/* the store's and the registry's log lines would only clutter a command's output */
		log_set_level(LOG_WARN);
		if ((rc = parse_args(c, argc - 1, argv + 1, &a)) >= 0) {
			*code = rc;
			return true;
		}
		*code = c->fn(c, &a);
		fflush(stdout);
		return true;
	}
	return false;
}
