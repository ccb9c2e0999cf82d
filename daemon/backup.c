/*
 * backup.c: `fieldsyncd backup`, `restore` and `verify` (issue 6).
 *
 * NOTES ON THE DESIGN OF BACKUPS
 *
 * backup   A hot, compacting copy of DATA_DIR/data.mdb: mdb_env_copyfd2 with
 *          MDB_CP_COMPACT runs in one LMDB read transaction, so the copy is
 *          the consistent snapshot of the moment it began, while the daemon
 *          goes on writing (readers never block the writer). Every change
 *          set acknowledged before the backup began is in it: an ack follows
 *          a durable commit. LMDB has no progress callback, so the copy goes
 *          through a pipe: a thread runs the copy into it, the command reads
 *          the pipe into the output file (new, 0600, O_EXCL: never
 *          overwritten), counts the bytes against the store's used size and,
 *          on a terminal, prints a percentage. The output is fsync'ed, then
 *          an audit entry "backup" goes into the live store.
 *          The key store (DATA_DIR/keys) is NOT in the data backup: a purge
 *          destroys a data key, and that must reach every backup of the data
 *          (docs/security.md). --with-keys FILE2 copies the key store the
 *          same way into a second file, for key escrow with its own short
 *          retention. Server keys (server.key/.pub) are in neither.
 * restore  Copies a backup into a new data dir (it refuses one that holds a
 *          data.mdb), optionally the key store backup, then runs verify.
 * verify   In one read transaction of the raw LMDB tables: every record
 *          decodes and its key names it, its payloads open (with a master key;
 *          without one sealed payloads are counted "not checked"), live case
 *          and contact payloads decode as Case and Contact; the feed holds
 *          each record exactly once, at the record's seq; meta seq covers the
 *          highest seq. Then, through the store API (the way reminders.c
 *          loads a case), every case's stored reminder rows are compared with
 *          what the rules say (reminders_verify_case). Problems name the
 *          record or reminder by id, never payload content. Exit 1 on any.
 *
 * The functions are the `fn` of their rows in admin.c's `commands` table;
 * their options are read by position (BACKUP_O_* etc. in internal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsyncd.h"

#define BK_MAP_SIZE (1ULL << 30)
#define BK_MAP_SIZE_MAX (64ULL << 30)
#define BK_OPTS_MAX 12 /* admin.c's ADMIN_OPTS_MAX */

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* admin.c's option values, by index in the row's opts (the same layout). */
struct admin_args {
	const char *val[BK_OPTS_MAX];
};

static const char *
arg(const struct admin_args *a, int i)
{
	return a->val[i];
}

static const char *
rc_text(fsd_err rc)
{
	switch (rc) {
	case FSD_OK: return "ok";
	case FSD_NOTFOUND: return "not found";
	case FSD_FULL: return "the store is full";
	case FSD_NOSPACE: return "the disk is full";
	case FSD_CORRUPT: return "a stored value does not decode";
	default: return "storage error";
	}
}

static bool
file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* fsyncs the directory holding path, so a new file's name is durable too. */
static void
sync_parent(const char *path)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static bool
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Opens the LMDB env in dir read-only (shared with a running daemon). */
static int
env_open_ro(const char *dir, MDB_env **env)
{
	int rc;
	*env = NULL;
	if ((rc = mdb_env_create(env)) != 0)
		return rc;
	if ((rc = mdb_env_set_maxdbs(*env, 24)) != 0 ||
	    (rc = mdb_env_set_maxreaders(*env, 256)) != 0 ||
	    (rc = mdb_env_open(*env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0) {
		mdb_env_close(*env);
		*env = NULL;
	}
	return rc;
}

/* ---- backup -------------------------------------------------------------- */

struct copy_job {
	MDB_env *env;
	int fd; /* the pipe's write end; the thread closes it */
	int rc;
};

static void *
copy_thread(void *p)
{
	struct copy_job *j = p;
	/* The daemon may have grown the map since we opened it: adopt and retry
	 * (the read txn is begun before anything is written). */
	for (int tries = 0; tries < 4; tries++) {
		j->rc = mdb_env_copyfd2(j->env, j->fd, MDB_CP_COMPACT);
		if (j->rc != MDB_MAP_RESIZED || mdb_env_set_mapsize(j->env, 0) != 0)
			break;
	}
	close(j->fd);
	return NULL;
}

/*
 * Copies (compacting) the LMDB env in env_dir into a new file out. *bytes is
 * the size written. False with a sentence in err; a partial out is removed.
 */
static bool
copy_env(const char *env_dir, const char *out, const char *label, uint64_t *bytes, char *err,
         size_t errlen)
{
	char path[1100];
	MDB_env *env = NULL;
	MDB_envinfo info;
	MDB_stat st;
	struct copy_job job = {0};
	pthread_t th;
	bool tty = isatty(STDERR_FILENO), started = false, ok = false, made = false;
	int pfd[2] = {-1, -1}, fd = -1, rc;
	uint64_t total = 0, done = 0;

	*bytes = 0;
	snprintf(path, sizeof(path), "%s/data.mdb", env_dir);
	if (!file_exists(path)) {
		snprintf(err, errlen, "%s holds no store (no data.mdb)", env_dir);
		return false;
	}
	if ((rc = env_open_ro(env_dir, &env)) != 0) {
		snprintf(err, errlen, "cannot open %s: %s", env_dir, mdb_strerror(rc));
		return false;
	}
	if (mdb_env_info(env, &info) == 0 && mdb_env_stat(env, &st) == 0)
		total = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s%s", out, strerror(errno),
		         errno == EEXIST ? " (a backup is never overwritten)" : "");
		goto out;
	}
	made = true;
	if (fchmod(fd, 0600) != 0 || pipe(pfd) != 0) {
		snprintf(err, errlen, "cannot set up the copy: %s", strerror(errno));
		goto out;
	}
	fprintf(stderr, "fieldsyncd backup: copying %s (%llu KiB in use) to %s\n", label,
	        (unsigned long long)(total / 1024), out);
	job.env = env;
	job.fd = pfd[1];
	if ((rc = pthread_create(&th, NULL, copy_thread, &job)) != 0) {
		snprintf(err, errlen, "cannot start the copy: %s", strerror(rc));
		goto out;
	}
	pfd[1] = -1; /* the thread's now */
	started = true;

	uint8_t buf[1 << 16];
	double last = 0;
	for (;;) {
		ssize_t n = read(pfd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "reading the copy: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (!write_all(fd, buf, (size_t)n)) {
			snprintf(err, errlen, "cannot write %s: %s", out, strerror(errno));
			goto out;
		}
		done += (uint64_t)n;
		if (tty && total > 0 && now_s() - last >= 0.2) {
			unsigned pct = done >= total ? 99 : (unsigned)(done * 100 / total);
			fprintf(stderr, "\rfieldsyncd backup: %s %3u%% (%llu KiB)", label, pct,
			        (unsigned long long)(done / 1024));
			last = now_s();
		}
	}
	ok = true;
out:
	if (pfd[0] >= 0) /* a copy still writing gets EPIPE (SIGPIPE is ignored) */
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (started) {
		pthread_join(th, NULL);
		if (ok && job.rc != 0) {
			snprintf(err, errlen, "the copy of %s failed: %s", env_dir, mdb_strerror(job.rc));
			ok = false;
		}
	}
	if (tty && started)
		fprintf(stderr, "\r%60s\r", "");
	if (ok && fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", out, strerror(errno));
		ok = false;
	}
	if (fd >= 0 && close(fd) != 0 && ok) {
		snprintf(err, errlen, "cannot write %s: %s", out, strerror(errno));
		ok = false;
	}
	if (!ok && made)
		unlink(out);
	if (ok)
		sync_parent(out);
	if (env != NULL)
		mdb_env_close(env);
	*bytes = done;
	return ok;
}

static const char *
actor(const struct admin_args *a)
{
	const char *v = arg(a, BACKUP_O_ACTOR);
	if (v == NULL || v[0] == '\0')
		v = getenv("SUDO_USER");
	if (v == NULL || v[0] == '\0')
		v = getenv("USER");
	return v != NULL && v[0] != '\0' ? v : "unknown";
}

int
backup_cmd_backup(const struct admin_cmd *c, const struct admin_args *a)
{
	const char *dir = arg(a, BACKUP_O_DATA_DIR), *out = arg(a, BACKUP_O_OUT);
	const char *keys_out = arg(a, BACKUP_O_WITH_KEYS), *key_file = arg(a, BACKUP_O_MASTER_KEY);
	char err[1200], keys_dir[600], detail[200];
	uint64_t bytes = 0, key_bytes = 0;
	(void)c;

	signal(SIGPIPE, SIG_IGN);
	if (keys_out != NULL && strcmp(keys_out, out) == 0) {
		fprintf(stderr, "fieldsyncd backup: --with-keys must name another file than --out\n");
		return EXIT_USAGE;
	}
	snprintf(keys_dir, sizeof(keys_dir), "%s/keys", dir);
	/* the key must open the key store, or the backup is unreadable; a plaintext
	 * store has none (and keyring_open would make an empty one) */
	if (key_file != NULL && file_exists(keys_dir)) {
		keyring *k = NULL;
		if (keyring_open(dir, key_file, NULL, &k, err, sizeof(err)) != FSD_OK) {
			fprintf(stderr, "fieldsyncd backup: %s\n", err);
			return EXIT_FAIL;
		}
		keyring_close(&k);
	}
	if (keys_out != NULL && !file_exists(keys_dir)) {
		fprintf(stderr, "fieldsyncd backup: %s holds no key store (the data is not "
		                "encrypted): nothing for --with-keys\n", dir);
		return EXIT_FAIL;
	}
	double t0 = now_s();
	if (!copy_env(dir, out, "the data", &bytes, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd backup: %s\n", err);
		return EXIT_FAIL;
	}
	fprintf(stderr, "fieldsyncd backup: wrote %s (%llu bytes, compacted) in %.1f s\n", out,
	        (unsigned long long)bytes, now_s() - t0);
	if (keys_out != NULL) {
		if (!copy_env(keys_dir, keys_out, "the key store", &key_bytes, err, sizeof(err))) {
			fprintf(stderr, "fieldsyncd backup: %s\n", err);
			return EXIT_FAIL;
		}
		fprintf(stderr, "fieldsyncd backup: wrote the key store to %s (%llu bytes): this is "
		                "key escrow; keep it apart from the data backups, with a short "
		                "retention, so a purge reaches them\n",
		        keys_out, (unsigned long long)key_bytes);
	} else if (file_exists(keys_dir)) {
		fprintf(stderr, "fieldsyncd backup: note: the data keys (%s) are not in this backup "
		                "(a purge must reach data backups, docs/security.md); back them up "
		                "apart (--with-keys FILE) or the backup cannot be read\n", keys_dir);
	}
	fprintf(stderr, "fieldsyncd backup: note: the server keys (server.key, server.pub) are "
	                "in no backup; keep them in your secret store\n");

	store *s = store_open(dir, BK_MAP_SIZE, BK_MAP_SIZE_MAX);
	store_txn *t = NULL;
	fsd_err rc = s == NULL ? FSD_ERROR : store_write_begin(s, &t);
	snprintf(detail, sizeof(detail), "bytes=%llu keys=%s", (unsigned long long)bytes,
	         keys_out != NULL ? "yes" : "no");
	if (rc == FSD_OK && (rc = audit_append(t, actor(a), "backup", NULL, NULL, detail)) ==
	                          FSD_OK)
		rc = store_commit(&t);
	else
		store_abort(&t);
	store_close(&s);
	if (rc != FSD_OK) {
		fprintf(stderr, "fieldsyncd backup: the backup is complete, but its audit entry was "
		                "not written: %s\n", rc_text(rc));
		return EXIT_FAIL;
	}
	printf("%s\n", out);
	return 0;
}

/* ---- verify -------------------------------------------------------------- */

struct vrec {
	uint8_t *key;
	size_t klen;
	uint64_t seq;
	bool decoded;
	unsigned in_feed;
};

struct verify {
	struct vrec *recs;
	size_t n_recs, cap_recs;
	char **cases; /* case ids to check reminders of */
	size_t n_cases, cap_cases;
	size_t problems, feed_entries, payloads, not_checked, reminders;
	bool oom;
};

/* "collection/id" of a record key, non-printing bytes as '?'. */
static void
key_name(const uint8_t *k, size_t kl, char *out, size_t cap)
{
	size_t o = 0;
	if (kl == 0 || (size_t)k[0] + 1 > kl) {
		snprintf(out, cap, "(malformed key of %zu bytes)", kl);
		return;
	}
	for (size_t i = 1; i < kl && o + 2 < cap; i++) {
		if (i == (size_t)k[0] + 1)
			out[o++] = '/';
		out[o++] = k[i] >= 0x20 && k[i] < 0x7f ? (char)k[i] : '?';
	}
	out[o] = '\0';
}

static void
problem(struct verify *v, const char *fmt, const char *who, const char *what)
{
	v->problems++;
	printf("problem: ");
	printf(fmt, who, what);
	printf("\n");
}

static int
key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c != 0 ? c : al < bl ? -1 : al > bl;
}

static bool
case_add(struct verify *v, const char *id, size_t len)
{
	if (v->n_cases == v->cap_cases) {
		size_t cap = v->cap_cases ? v->cap_cases * 2 : 64;
		char **c = realloc(v->cases, cap * sizeof(*c));
		if (c == NULL)
			return false;
		v->cases = c;
		v->cap_cases = cap;
	}
	char *s = malloc(len + 1);
	if (s == NULL)
		return false;
	memcpy(s, id, len);
	s[len] = '\0';
	v->cases[v->n_cases++] = s;
	return true;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks one record's payloads: they open, typed ones decode. */
static void
check_payloads(struct verify *v, keyring *k, const fs_record_state *rs, const char *name)
{
	char aad[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 2];
	int al = snprintf(aad, sizeof(aad), "%s%c%s", rs->collection, 0, rs->id);
	if (al < 0 || (size_t)al >= sizeof(aad))
		al = (int)sizeof(aad) - 1;
	for (size_t i = 0; i < rs->n_siblings; i++) {
		const fsp_record *sib = rs->siblings[i];
		const uint8_t *p = sib->payload.data;
		size_t pl = sib->payload.len;
		uint8_t *plain = NULL;
		v->payloads++;
		if (keyring_is_sealed(p, pl)) {
			if (k == NULL) {
				v->not_checked++;
				continue;
			}
			size_t ol = 0;
			fsd_err r = keyring_open_value(k, aad, (size_t)al, p, pl, &plain, &ol);
			if (r == FSD_NOKEY) {
				problem(v, "record %s: %s", name, "a payload's data key is gone");
				continue;
			}
			if (r != FSD_OK) {
				problem(v, "record %s: %s", name, "a sealed payload does not verify");
				continue;
			}
			if (plain != NULL) {
				p = plain;
				pl = ol;
			}
		}
		if (!sib->deleted && strcmp(rs->collection, "case") == 0) {
			Fieldsync__V1__Case *c = fieldsync__v1__case__unpack(NULL, pl, p);
			if (c == NULL)
				problem(v, "record %s: %s", name, "a live payload does not decode as a Case");
			else
				fieldsync__v1__case__free_unpacked(c, NULL);
		} else if (!sib->deleted && strcmp(rs->collection, "contact") == 0) {
			Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, pl, p);
			if (c == NULL)
				problem(v, "record %s: %s", name,
				        "a live payload does not decode as a Contact");
			else
				fieldsync__v1__contact__free_unpacked(c, NULL);
		}
		free(plain);
	}
}

/* (1) records and (2) the feed, in one read txn of the raw tables. */
static bool
verify_tables(const char *dir, keyring *k, struct verify *v, char *err, size_t errlen)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi recs, feed, meta, rems;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	uint64_t max_seq = 0, meta_seq = 0;
	int rc;
	bool ok = false;

	if ((rc = env_open_ro(dir, &env)) == 0 &&
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == MDB_MAP_RESIZED &&
	    (rc = mdb_env_set_mapsize(env, 0)) == 0)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc != 0 ||
	    (rc = mdb_dbi_open(txn, "records", 0, &recs)) != 0 ||
	    (rc = mdb_dbi_open(txn, "feed", 0, &feed)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "reminders", 0, &rems)) != 0) {
		snprintf(err, errlen, "cannot read the store in %s: %s", dir, mdb_strerror(rc));
		goto out;
	}

	/* (1) every record decodes, its key names it, its payloads open */
	if ((rc = mdb_cursor_open(txn, recs, &cur)) != 0)
		goto lmdb_fail;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		char name[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 80];
		key_name(key.mv_data, key.mv_size, name, sizeof(name));
		if (v->n_recs == v->cap_recs) {
			size_t cap = v->cap_recs ? v->cap_recs * 2 : 1024;
			struct vrec *r = realloc(v->recs, cap * sizeof(*r));
			if (r == NULL)
				goto oom;
			v->recs = r;
			v->cap_recs = cap;
		}
		struct vrec *r = &v->recs[v->n_recs];
		memset(r, 0, sizeof(*r));
		if ((r->key = malloc(key.mv_size ? key.mv_size : 1)) == NULL)
			goto oom;
		memcpy(r->key, key.mv_data, key.mv_size);
		r->klen = key.mv_size;
		v->n_recs++;
		fs_record_state *rs =
		    fieldsync__v1__record_state__unpack(NULL, val.mv_size, val.mv_data);
		if (rs == NULL) {
			problem(v, "record %s: %s", name, "the stored record does not decode");
			continue;
		}
		r->decoded = true;
		r->seq = rs->seq;
		if (rs->seq > max_seq)
			max_seq = rs->seq;
		const uint8_t *kb = key.mv_data;
		size_t cl = strlen(rs->collection), il = strlen(rs->id);
		if (key.mv_size != 1 + cl + il || kb[0] != cl || memcmp(kb + 1, rs->collection, cl) != 0 ||
		    memcmp(kb + 1 + cl, rs->id, il) != 0)
			problem(v, "record %s: %s", name, "the record stored under this key names another");
		else if (strcmp(rs->collection, "case") == 0 && !case_add(v, rs->id, il))
			goto oom_rs;
		check_payloads(v, k, rs, name);
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
		continue;
	oom_rs:
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
		goto oom;
	}
	if (rc != MDB_NOTFOUND)
		goto lmdb_fail;
	mdb_cursor_close(cur);
	cur = NULL;

	/* (2) the feed holds each record once, at its seq */
	if ((rc = mdb_cursor_open(txn, feed, &cur)) != 0)
		goto lmdb_fail;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		char name[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 80], seqs[32];
		uint64_t seq = key.mv_size == 8 ? store_get_be64(key.mv_data) : 0;
		v->feed_entries++;
		key_name(val.mv_data, val.mv_size, name, sizeof(name));
		snprintf(seqs, sizeof(seqs), "%llu", (unsigned long long)seq);
		if (seq > max_seq)
			max_seq = seq;
		size_t lo = 0, hi = v->n_recs;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (key_cmp(v->recs[mid].key, v->recs[mid].klen, val.mv_data, val.mv_size) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == v->n_recs ||
		    key_cmp(v->recs[lo].key, v->recs[lo].klen, val.mv_data, val.mv_size) != 0) {
			problem(v, "feed entry at seq %s: it points at %s, which is not stored", seqs, name);
			continue;
		}
		struct vrec *r = &v->recs[lo];
		if (++r->in_feed > 1)
			problem(v, "record %s: %s", name, "it is in the feed more than once");
		if (r->decoded && r->seq != seq) {
			char why[96];
			snprintf(why, sizeof(why), "the feed has it at seq %s but it says seq %llu", seqs,
			         (unsigned long long)r->seq);
			problem(v, "record %s: %s", name, why);
		}
	}
	if (rc != MDB_NOTFOUND)
		goto lmdb_fail;
	mdb_cursor_close(cur);
	cur = NULL;
	for (size_t i = 0; i < v->n_recs; i++)
		if (v->recs[i].in_feed == 0) {
			char name[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 80];
			key_name(v->recs[i].key, v->recs[i].klen, name, sizeof(name));
			problem(v, "record %s: %s", name, "it is not in the feed");
		}
	key.mv_data = "seq";
	key.mv_size = 3;
	if (mdb_get(txn, meta, &key, &val) == 0 && val.mv_size == 8)
		memcpy(&meta_seq, val.mv_data, 8); /* LE, as store.c */
	if (meta_seq < max_seq) {
		char a[32], b[64];
		snprintf(a, sizeof(a), "%llu", (unsigned long long)meta_seq);
		snprintf(b, sizeof(b), "below the highest seq in use, %llu", (unsigned long long)max_seq);
		problem(v, "meta seq %s is %s", a, b);
	}

	/* the cases that have reminder rows: [u8 len][case_id][reminder_id] */
	if ((rc = mdb_cursor_open(txn, rems, &cur)) != 0)
		goto lmdb_fail;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		const uint8_t *kb = key.mv_data;
		if (key.mv_size < 1 || (size_t)kb[0] + 1 > key.mv_size) {
			problem(v, "reminder row %s: %s", "(malformed key)", "its key does not parse");
			continue;
		}
		if (!case_add(v, (const char *)kb + 1, kb[0]))
			goto oom;
	}
	if (rc != MDB_NOTFOUND)
		goto lmdb_fail;
	ok = true;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
	goto out;
lmdb_fail:
	snprintf(err, errlen, "reading the store: %s", mdb_strerror(rc));
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	return ok;
}

static void
reminder_problem(void *arg, const char *case_id, const char *reminder_id, const char *what)
{
	struct verify *v = arg;
	char who[FSP_ID_MAX + 400];
	snprintf(who, sizeof(who), "%s of case %s", reminder_id, case_id);
	problem(v, "reminder %s: %s", who, what);
}

/* (3) reminders match their rules, through the store API. */
static bool
verify_reminders(const char *dir, keyring *k, const char *rules, const char *tz,
                 struct verify *v, char *err, size_t errlen)
{
	config conf;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.time_zone, sizeof(conf.time_zone), "%s", tz);
	snprintf(conf.rules_file, sizeof(conf.rules_file), "%s", rules ? rules : "");
	reminders *r = NULL;
	if (reminders_new(&conf, &r, err, errlen) != FSD_OK)
		return false;
	store *s = store_open(dir, BK_MAP_SIZE, BK_MAP_SIZE_MAX);
	store_txn *t = NULL;
	if (s == NULL || store_read_begin(s, &t) != FSD_OK) {
		snprintf(err, errlen, "cannot open the store in %s", dir);
		store_close(&s);
		reminders_free(&r);
		return false;
	}
	store_set_keyring(s, k);
	if (v->n_cases > 0)
		qsort(v->cases, v->n_cases, sizeof(*v->cases), str_cmp);
	for (size_t i = 0; i < v->n_cases; i++) {
		if (i > 0 && strcmp(v->cases[i], v->cases[i - 1]) == 0)
			continue;
		fsd_err rc = reminders_verify_case(r, t, v->cases[i], reminder_problem, v,
		                                    &v->reminders);
		if (rc != FSD_OK) {
			char who[FSP_ID_MAX + 8];
			snprintf(who, sizeof(who), "case/%s", v->cases[i]);
			problem(v, "record %s: its reminders cannot be checked: %s", who, rc_text(rc));
		}
	}
	store_read_end(&t);
	store_close(&s);
	reminders_free(&r);
	return true;
}

static void
verify_free(struct verify *v)
{
	for (size_t i = 0; i < v->n_recs; i++)
		free(v->recs[i].key);
	free(v->recs);
	for (size_t i = 0; i < v->n_cases; i++)
		free(v->cases[i]);
	free(v->cases);
}

static int
verify_run(const char *dir, const char *key_file, const char *rules, const char *tz)
{
	char path[600], err[1200];
	struct verify v = {0};
	keyring *k = NULL;
	const char *env_key = getenv("FIELDSYNC_MASTER_KEY");
	bool encrypted, have_key = (key_file != NULL && key_file[0] != '\0') ||
	                           (env_key != NULL && env_key[0] != '\0');
	int code = EXIT_FAIL;

	if (tz == NULL || tz[0] == '\0')
		tz = getenv("FIELDSYNC_TIME_ZONE");
	if (tz == NULL || tz[0] == '\0')
		tz = "Europe/Copenhagen";
	if (rules == NULL || rules[0] == '\0')
		rules = getenv("FIELDSYNC_RULES");
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (!file_exists(path)) {
		fprintf(stderr, "fieldsyncd verify: %s holds no store (no data.mdb)\n", dir);
		return EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "%s/keys", dir);
	encrypted = file_exists(path);
	if (have_key) {
		if (keyring_open(dir, key_file, env_key, &k, err, sizeof(err)) != FSD_OK) {
			fprintf(stderr, "fieldsyncd verify: %s\n", err);
			return EXIT_FAIL;
		}
	}
	if (!verify_tables(dir, k, &v, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd verify: %s\n", err);
		goto out;
	}
	bool rem_checked = k != NULL || (!encrypted && v.not_checked == 0);
	if (rem_checked && !verify_reminders(dir, k, rules, tz, &v, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd verify: %s\n", err);
		goto out;
	}
	printf("records: %zu\nfeed entries: %zu\npayloads: %zu\n", v.n_recs, v.feed_entries,
	       v.payloads);
	if (v.not_checked > 0)
		printf("payloads not checked: %zu (sealed: give --master-key-file)\n", v.not_checked);
	if (rem_checked)
		printf("reminders checked: %zu\n", v.reminders);
	else
		printf("reminders checked: none (they are sealed: give --master-key-file)\n");
	printf("problems: %zu\n", v.problems);
	fflush(stdout);
	code = v.problems == 0 ? 0 : EXIT_FAIL;
	if (code != 0)
		fprintf(stderr, "fieldsyncd verify: %zu problem(s) in %s\n", v.problems, dir);
out:
	verify_free(&v);
	keyring_close(&k);
	return code;
}

int
backup_cmd_verify(const struct admin_cmd *c, const struct admin_args *a)
{
	(void)c;
	return verify_run(arg(a, VERIFY_O_DATA_DIR), arg(a, VERIFY_O_MASTER_KEY),
	                  arg(a, VERIFY_O_RULES), arg(a, VERIFY_O_TIME_ZONE));
}

/* ---- restore ------------------------------------------------------------- */

/* Copies from into a new file to (0600, O_EXCL), synced. */
static bool
copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1;
	bool ok = false;
	uint8_t buf[1 << 16];
	if (in < 0) {
		fprintf(stderr, "fieldsyncd restore: cannot open %s: %s\n", from, strerror(errno));
		return false;
	}
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) {
		fprintf(stderr, "fieldsyncd restore: cannot create %s: %s\n", to, strerror(errno));
		close(in);
		return false;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		if (!write_all(out, buf, (size_t)n))
			goto fail;
	}
	if (fchmod(out, 0600) != 0 || fsync(out) != 0)
		goto fail;
	ok = true;
fail:
	if (!ok)
		fprintf(stderr, "fieldsyncd restore: copying %s to %s: %s\n", from, to, strerror(errno));
	close(in);
	if (close(out) != 0)
		ok = false;
	if (!ok)
		unlink(to);
	else
		sync_parent(to);
	return ok;
}

int
backup_cmd_restore(const struct admin_cmd *c, const struct admin_args *a)
{
	const char *dir = arg(a, RESTORE_O_DATA_DIR), *from = arg(a, RESTORE_O_FROM);
	const char *keys_from = arg(a, RESTORE_O_KEYS_FROM);
	char path[700];
	(void)c;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (file_exists(path)) {
		fprintf(stderr, "fieldsyncd restore: %s already holds a store (%s); restore only "
		                "into a new directory\n", dir, path);
		return EXIT_FAIL;
	}
	if (!file_exists(from)) {
		fprintf(stderr, "fieldsyncd restore: %s: %s\n", from, strerror(errno));
		return EXIT_FAIL;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "fieldsyncd restore: cannot create %s: %s\n", dir, strerror(errno));
		return EXIT_FAIL;
	}
	if (!copy_file(from, path))
		return EXIT_FAIL;
	if (keys_from != NULL) {
		snprintf(path, sizeof(path), "%s/keys", dir);
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			fprintf(stderr, "fieldsyncd restore: cannot create %s: %s\n", path,
			        strerror(errno));
			return EXIT_FAIL;
		}
		snprintf(path, sizeof(path), "%s/keys/data.mdb", dir);
		if (!copy_file(keys_from, path))
			return EXIT_FAIL;
	}
	fprintf(stderr, "fieldsyncd restore: restored %s into %s%s\n", from, dir,
	        keys_from != NULL ? " with its key store" : "");
	fprintf(stderr, "fieldsyncd restore: note: server keys are in no backup: copy server.key "
	                "and server.pub (mode 0600) from your secret store into %s before the "
	                "daemon runs in production mode\n", dir);
	if (keys_from == NULL)
		fprintf(stderr, "fieldsyncd restore: note: no key store was restored (--keys-from): "
		                "if the data is encrypted, it cannot be read until DIR/keys is "
		                "restored\n");
	fprintf(stderr, "fieldsyncd restore: verifying...\n");
	return verify_run(dir, arg(a, RESTORE_O_MASTER_KEY), arg(a, RESTORE_O_RULES),
	                  arg(a, RESTORE_O_TIME_ZONE));
}
