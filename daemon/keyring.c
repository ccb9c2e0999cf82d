/*
 * keyring: encryption at rest: master keys, data keys (DEKs) and sealed
 * values (storage layer; keyring.h).
 *
 * NOTES ON THE DESIGN OF THE KEYRING
 *
 * Every record payload and every reminder row is sealed (AES-256-GCM, see
 * proto/include/fieldsync/crypto.h) with a data key named after what it
 * belongs to (fss_dek_for / fss_dek_case in fieldsync/seal.h): the case's
 * key for a case record, its contacts and its reminders, the record's own
 * key for any other record.
 * DEKs are stored wrapped by the current master key in an LMDB environment
 * of their own, DATA_DIR/keys, apart from the data (DATA_DIR/data.mdb). A
 * purge deletes the DEK there: the live store and every backup of the data
 * taken before lose the means to read that case. Backups of the key store
 * are key escrow and need their own, short retention (docs/security.md).
 *
 * The sealed-value framing, the data-key names and the record AAD are the
 * shared core's (proto/include/fieldsync/seal.h: fss_seal, fss_classify,
 * fss_parse, fss_open, fss_dek_*, fss_record_aad); this file only fetches
 * the DEK a sealed value names. The AAD is the owner's identity (collection
 * NUL id for records, the row's key for reminder rows), so a sealed value
 * copied elsewhere does not open. Values written without a keyring (--dev
 * without a master key) are plaintext and are read as they are; with a
 * keyring, a value that starts like a sealed one but whose framing does
 * not hold (FSS_MALFORMED) is damage (FSD_CORRUPT).
 *
 * Master keys come from a file (--master-key-file, one "id:hex" per line,
 * a regular file of mode 0600: a FIFO or device is refused before a byte is
 * read) or FIELDSYNC_MASTER_KEY ("id:hex,id:hex", wiped in place and unset
 * once read): the first is current and wraps new DEKs; the others only
 * unwrap. Duplicate ids and an all-zero key are refused. The keys live in
 * the keyring's own pages, out of core dumps (MADV_DONTDUMP) and of swap
 * (mlock, where permitted). Rotation: put the new key first, restart,
 * run `fieldsyncd rotate-master-key`, which rewraps every DEK with it, then
 * drop the old line.
 *
 * The master keys are checked against the key store before anything is
 * served (keyring_check_master at the daemon's start and in check-config,
 * read-only; keyring_open for every command): each master key id that a
 * wrapped DEK names must be given, and one DEK of each id must unwrap. An
 * empty key store has nothing to check (no value was ever sealed). At run
 * time a DEK that is there but does not unwrap is not a purge (FSD_NOKEY):
 * keyring_open_value says FSD_CORRUPT and tells the store
 * (store_note_keys_failing: /readyz 503, and the feed fails that page).
 *
 * DEKs are never cached: each seal or open unwraps its DEK in a short read
 * transaction, so a DEK destroyed by another process (the purge command) is
 * gone for the daemon at once.
 *
 * Erasure (the marker, the lock, the compaction, recovery at open) and a
 * re-key's retired keys are keyring_erase.c's (its note says how).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fieldsync/crypto.h"
#include "fieldsync/seal.h"
#include "keyring.h"
#include "keyring_impl.h"
#include "log.h"

/* The key store's one table: the environment's unnamed one. */

static bool
parse_masters(keyring *k, const char *text, char sep, char *err, size_t errlen)
{
	char line[256];
	const char *p = text;
	while (*p != '\0') {
		const char *end = strchr(p, sep);
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l >= sizeof(line)) {
			snprintf(err, errlen, "a master key entry is too long");
			return false;
		}
		memcpy(line, p, l);
		line[l] = '\0';
		while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' '))
			line[--l] = '\0';
		if (l > 0 && line[0] != '#') {
			char why[200];
			if (k->n_masters == MASTERS_MAX) {
				snprintf(err, errlen, "more than %d master keys", MASTERS_MAX);
				return false;
			}
			if (!fsc_master_parse(line, &k->masters[k->n_masters], why, sizeof(why))) {
				snprintf(err, errlen, "master key %zu: %s", k->n_masters + 1, why);
				fsc_cleanse(line, sizeof(line));
				return false;
			}
			for (size_t i = 0; i < k->n_masters; i++)
				if (strcmp(k->masters[i].id, k->masters[k->n_masters].id) == 0) {
					snprintf(err, errlen,
					         "master keys %zu and %zu have the same id \"%s\": "
					         "every key needs an id of its own",
					         i + 1, k->n_masters + 1, k->masters[i].id);
					fsc_cleanse(line, sizeof(line));
					return false;
				}
			k->n_masters++;
		}
		fsc_cleanse(line, sizeof(line));
		p = end ? end + 1 : p + l;
	}
	if (k->n_masters == 0) {
		snprintf(err, errlen, "no master key in it");
		return false;
	}
	return true;
}

static bool
read_key_file(keyring *k, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char buf[4096];
	size_t n = 0;
	bool ok = false;
	/* O_NONBLOCK: a FIFO (or a device) must not block the start; fstat
	 * before a byte is read says whether it is a regular file */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "--master-key-file %s: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen,
		         "--master-key-file %s: not a regular file (a FIFO, device or directory); "
		         "give the file that holds the key",
		         path);
		return false;
	}
	if ((st.st_mode & 077) != 0) {
		close(fd);
		snprintf(
			err, errlen,
			"--master-key-file %s: group or others may read it (mode %03o); chmod 600 it",
			path, (unsigned)(st.st_mode & 0777));
		return false;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (n += (size_t)r) == sizeof(buf) - 1)
			break;
	}
	char one;
	bool toolong = n == sizeof(buf) - 1 && read(fd, &one, 1) > 0;
	close(fd);
	buf[n] = '\0';
	char why[256] = "the file is over 4 KiB";
	if (!toolong)
		ok = parse_masters(k, buf, '\n', why, sizeof(why));
	fsc_cleanse(buf, sizeof(buf));
	if (!ok)
		snprintf(err, errlen, "--master-key-file %s: %s", path, why);
	return ok;
}

/*
 * The master-key check (before anything is served or written): every
 * master key id the key store's wrapped keys name must be given, and for
 * each such id at least one of its wrapped keys must unwrap with the key
 * given. A wrong key (or one left out after a rotation) would otherwise make
 * every sealed record look unreadable, and Pull skips unreadable records:
 * devices would move their checkpoints past data they never got. An empty
 * key store has nothing to check. The message names ids, never key bytes.
 */
#define CHECK_IDS_MAX 32

struct master_check {
	const keyring *k;
	size_t n_ids, n_keys;
	struct {
		char id[FSC_KEY_ID_MAX + 1];
		size_t keys;
		bool given, opened;
	} ids[CHECK_IDS_MAX];
};

static bool
check_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct master_check *c = arg;
	char id[FSC_KEY_ID_MAX + 1];
	uint8_t dek[FSC_KEY_LEN];
	size_t i;
	(void)key;
	(void)klen;
	if (!fsc_wrapped_key_id(val, vlen, id))
		return true; /* one damaged entry: that key's records, not the store */
	c->n_keys++;
	for (i = 0; i < c->n_ids && strcmp(c->ids[i].id, id) != 0; i++)
		;
	if (i == c->n_ids) {
		if (c->n_ids == CHECK_IDS_MAX)
			return true;
		snprintf(c->ids[i].id, sizeof(c->ids[i].id), "%s", id);
		c->ids[i].given = ks_master_by_id(c->k, id) != NULL;
		c->n_ids++;
	}
	c->ids[i].keys++;
	if (c->ids[i].given && !c->ids[i].opened) {
		c->ids[i].opened = fsc_unwrap(ks_master_by_id(c->k, id), val, vlen, dek);
		fsc_cleanse(dek, sizeof(dek));
	}
	return true;
}

/* FSD_OK when the walked key store opens with k's master keys; else
 * FSD_NOKEY with a sentence for the operator in err. */
static fsd_err
check_verdict(const struct master_check *c, const char *dir, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n_ids; i++) {
		if (!c->ids[i].given) {
			snprintf(
				err, errlen,
				"the key store %s holds %zu data key(s) wrapped by master key "
				"\"%s\", which was not given: give that key too (after a rotation, "
				"keep the old key's line until rotate-master-key has run); nothing "
				"was changed",
				dir, c->ids[i].keys, c->ids[i].id);
			return FSD_NOKEY;
		}
		if (!c->ids[i].opened) {
			snprintf(
				err, errlen,
				"the master key given as \"%s\" does not open the key store %s "
				"(none of its %zu data key(s) unwraps): it is not the key this store "
				"was made with; nothing was changed",
				c->ids[i].id, dir, c->ids[i].keys);
			return FSD_NOKEY;
		}
	}
	return FSD_OK;
}

/* Checks k's master keys against the live key store (keyring_open). */
static fsd_err
check_open_store(keyring *k, char *err, size_t errlen)
{
	struct master_check *c = calloc(1, sizeof(*c));
	store_txn *t = NULL;
	fsd_err rc;
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return FSD_NOMEM;
	}
	c->k = k;
	if ((rc = ks_enter(k)) != FSD_OK) {
		snprintf(err, errlen, "cannot open the key store %s", k->dir);
		free(c);
		return rc;
	}
	if ((rc = store_read_begin(k->keys, &t)) == FSD_OK) {
		rc = store_kv_scan(t, &ks_deks_table, NULL, 0, NULL, 0, check_one, c);
		store_read_end(&t);
	}
	ks_leave(k);
	if (rc != FSD_OK)
		snprintf(err, errlen, "cannot read the key store %s: %s", k->dir, fsd_strerror(rc));
	else
		rc = check_verdict(c, k->dir, err, errlen);
	free(c);
	return rc;
}

fsd_err
keyring_open(const char *data_dir, const char *key_file, const char *key_env, keyring **out,
             char *err, size_t errlen)
{
	keyring *k = NULL;
	fsd_err rc = FSD_INVALID;
	long pg = sysconf(_SC_PAGESIZE);

	*out = NULL;
	/* page-aligned, so the master keys' pages are the keyring's alone */
	if (posix_memalign((void **)&k, pg > 0 ? (size_t)pg : 4096, sizeof(*k)) != 0) {
		snprintf(err, errlen, "out of memory");
		return FSD_NOMEM;
	}
	memset(k, 0, sizeof(*k));
	k->lockfd = -1;
	pthread_mutex_init(&k->mu, NULL);
	fsc_protect(k->masters, sizeof(k->masters));
	if (key_file != NULL && key_file[0] != '\0') {
		if (!read_key_file(k, key_file, err, errlen))
			goto fail;
	} else if (key_env != NULL && key_env[0] != '\0') {
		char why[256];
		bool parsed = parse_masters(k, key_env, ',', why, sizeof(why));
		/* read once: wiped in place (so /proc/PID/environ no longer shows
		 * it) and taken out of the environment (no child inherits it) */
		char *live = getenv("FIELDSYNC_MASTER_KEY");
		if (live != NULL && live == key_env) {
			fsc_cleanse(live, strlen(live));
			unsetenv("FIELDSYNC_MASTER_KEY");
		}
		if (!parsed) {
			snprintf(err, errlen, "FIELDSYNC_MASTER_KEY: %s", why);
			goto fail;
		}
	} else {
		snprintf(err, errlen,
		         "no master key: give --master-key-file or FIELDSYNC_MASTER_KEY");
		goto fail;
	}
	if ((rc = ks_open_files(k, data_dir, err, errlen)) != FSD_OK ||
	    (rc = check_open_store(k, err, errlen)) != FSD_OK)
		goto fail;
	*out = k;
	return FSD_OK;
fail:
	keyring_close(&k);
	return rc;
}

fsd_err
keyring_check_master(const char *data_dir, const char *key_file, const char *key_env, char *err,
                     size_t errlen)
{
	keyring *k = calloc(1, sizeof(*k));
	bool ok = false;
	if (k == NULL) {
		snprintf(err, errlen, "out of memory");
		return FSD_NOMEM;
	}
	k->lockfd = -1; /* none: keyring_close must not close fd 0 */
	pthread_mutex_init(&k->mu, NULL);
	if (key_file != NULL && key_file[0] != '\0') {
		ok = read_key_file(k, key_file, err, errlen);
	} else if (key_env != NULL && key_env[0] != '\0') {
		char why[256];
		ok = parse_masters(k, key_env, ',', why, sizeof(why));
		if (!ok)
			snprintf(err, errlen, "FIELDSYNC_MASTER_KEY: %s", why);
	} else {
		snprintf(err, errlen,
		         "no master key: give --master-key-file or FIELDSYNC_MASTER_KEY");
	}
	fsd_err rc = ok ? FSD_OK : FSD_INVALID;
	if (ok && data_dir != NULL) { /* the store's key store, looked at read-only */
		struct master_check *c = calloc(1, sizeof(*c));
		char dir[700];
		snprintf(dir, sizeof(dir), "%s/keys", data_dir);
		if (c == NULL) {
			snprintf(err, errlen, "out of memory");
			rc = FSD_NOMEM;
		} else {
			c->k = k;
			rc = store_env_scan(dir, check_one, c);
			if (rc == FSD_NOTFOUND)
				rc = FSD_OK; /* no key store yet: nothing to check */
			else if (rc != FSD_OK)
				snprintf(err, errlen, "cannot read the key store %s: %s", dir,
				         fsd_strerror(rc));
			else
				rc = check_verdict(c, dir, err, errlen);
			free(c);
		}
	}
	keyring_close(&k);
	return rc;
}

void
keyring_close(keyring **kp)
{
	if (kp == NULL || *kp == NULL)
		return;
	keyring *k = *kp;
	store_close(&k->keys);
	if (k->lockfd >= 0)
		close(k->lockfd);
	pthread_mutex_destroy(&k->mu);
	fsc_cleanse(k->masters, sizeof(k->masters));
	free(k);
	*kp = NULL;
}

const char *
keyring_current_id(const keyring *k)
{
	return k->masters[0].id;
}

/* Reads and unwraps DEK `name`; creates it when absent and create is set.
 * FSD_NOTFOUND when it is absent (destroyed by a purge, or never ours).
 * Inside ks_enter/ks_leave. */
static fsd_err
dek_get_in(keyring *k, const char *name, bool create, uint8_t dek[FSC_KEY_LEN])
{
	store_txn *t = NULL;
	const void *val;
	size_t vl, nl = strlen(name);
	char id[FSC_KEY_ID_MAX + 1];
	fsd_err rc = store_read_begin(k->keys, &t);
	if (rc != FSD_OK)
		return rc;
	rc = store_kv_get(t, &ks_deks_table, name, nl, &val, &vl);
	if (rc == FSD_OK) {
		const fsc_master *m =
			fsc_wrapped_key_id(val, vl, id) ? ks_master_by_id(k, id) : NULL;
		if (m == NULL)
			log_event(LOG_ERROR, "a data key is wrapped by a master key we do not have",
			          LS("master_key_id", id), NULL);
		if (m == NULL || !fsc_unwrap(m, val, vl, dek))
			rc = FSD_CORRUPT;
	}
	store_read_end(&t);
	if (rc != FSD_NOTFOUND || !create)
		return rc;

	/* A new DEK, durable before anything is sealed with it. */
	uint8_t *wrapped = NULL;
	size_t wl = 0;
	if (!fsc_new_key(dek) || !fsc_wrap(&k->masters[0], dek, &wrapped, &wl))
		return FSD_ERROR;
	rc = store_write_begin(k->keys, &t);
	if (rc == FSD_OK)
		rc = store_kv_add(t, &ks_deks_table, name, nl, wrapped, wl);
	free(wrapped);
	if (rc == FSD_EXISTS) { /* another process made it first: use theirs */
		store_abort(&t);
		return dek_get_in(k, name, false, dek);
	}
	if (rc == FSD_OK)
		return store_commit(&t);
	store_abort(&t);
	return rc;
}

static fsd_err
dek_get(keyring *k, const char *name, bool create, uint8_t dek[FSC_KEY_LEN])
{
	fsd_err rc = ks_enter(k);
	if (rc != FSD_OK)
		return rc;
	rc = dek_get_in(k, name, create, dek);
	ks_leave(k);
	return rc;
}

const store_table keyring_table = {"keys"};

fsd_err
keyring_seal(keyring *k, const char *name, const void *aad, size_t aad_len, const uint8_t *in,
             size_t len, uint8_t **out, size_t *out_len)
{
	uint8_t dek[FSC_KEY_LEN];
	size_t nl = strlen(name);
	fsd_err rc = FSD_INVALID;
	*out = NULL;
	if (nl == 0 || nl > FSS_NAME_MAX || (rc = dek_get(k, name, true, dek)) != FSD_OK)
		goto out;
	rc = fss_seal(dek, name, aad, aad_len, in, len, out, out_len) ? FSD_OK : FSD_ERROR;
out:
	fsc_cleanse(dek, sizeof(dek));
	return rc;
}

fsd_err
keyring_open_value(keyring *k, const void *aad, size_t aad_len, const uint8_t *in, size_t len,
                   uint8_t **out, size_t *out_len)
{
	uint8_t dek[FSC_KEY_LEN];
	fss_parts parts;
	*out = NULL;
	*out_len = 0;
	switch (fss_classify(in, len)) {
	case FSS_PLAIN:
		return FSD_OK; /* plain: *out stays NULL */
	case FSS_MALFORMED:
		/* with a keyring a value that starts like a sealed one and is not
		 * one is damage; without one nothing was ever sealed: plaintext */
		return k != NULL ? FSD_CORRUPT : FSD_OK;
	case FSS_SEALED:
		break;
	}
	if (k == NULL)
		return FSD_NOKEY;
	if (!fss_parse(in, len, &parts))
		return FSD_CORRUPT;
	fsd_err drc = dek_get(k, parts.name, false, dek);
	bool have = drc == FSD_OK;
	bool ok = have && fss_open(dek, aad, aad_len, in, len, out, out_len);
	fsc_cleanse(dek, sizeof(dek));
	if (!ok) /* sealed before a re-key that did not finish: its retired key */
		ok = ks_open_with_retired(k, parts.name, aad, aad_len, in, len, out, out_len);
	if (!ok && drc == FSD_NOTFOUND)
		return FSD_NOKEY; /* destroyed by a purge, or never ours */
	if (!ok && drc == FSD_CORRUPT) {
		/* the key is there and does not unwrap with the master keys held:
		 * not this record's damage (docs/security.md, "Failure stays local") */
		store_note_keys_failing();
		return FSD_CORRUPT;
	}
	if (!ok && !have)
		return drc;     /* the key store could not be read: not the record's fault */
	if (ok && *out == NULL) /* an empty value opened: still say "opened" */
		*out = malloc(1);
	if (ok && *out == NULL)
		return FSD_NOMEM;
	return ok ? FSD_OK : FSD_CORRUPT;
}

/* The DEKs, copied out of the table (store_kv_scan may not write while it walks). */
struct dek_list {
	char **names;
	uint8_t **vals;
	size_t *vlens;
	size_t n, cap;
	bool oom;
};

static bool
collect_dek(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct dek_list *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **a = realloc(l->names, cap * sizeof(*a));
		if (a != NULL)
			l->names = a;
		uint8_t **b = realloc(l->vals, cap * sizeof(*b));
		if (b != NULL)
			l->vals = b;
		size_t *c = realloc(l->vlens, cap * sizeof(*c));
		if (c != NULL)
			l->vlens = c;
		if (a == NULL || b == NULL || c == NULL) {
			l->oom = true;
			return false;
		}
		l->cap = cap;
	}
	l->names[l->n] = malloc(klen + 1);
	l->vals[l->n] = malloc(vlen ? vlen : 1);
	if (l->names[l->n] == NULL || l->vals[l->n] == NULL) {
		free(l->names[l->n]);
		free(l->vals[l->n]);
		l->oom = true;
		return false;
	}
	memcpy(l->names[l->n], key, klen);
	l->names[l->n][klen] = '\0';
	memcpy(l->vals[l->n], val, vlen);
	l->vlens[l->n] = vlen;
	l->n++;
	return true;
}

fsd_err
keyring_rewrap_all(keyring *k, size_t *n_rewrapped, char *err, size_t errlen)
{
	struct dek_list l = {0};
	store_txn *t = NULL;
	size_t n = 0;
	fsd_err rc = ks_enter(k);
	if (rc != FSD_OK) {
		snprintf(err, errlen, "cannot open the key store %s", k->dir);
		return rc;
	}
	rc = store_write_begin(k->keys, &t);
	if (rc == FSD_OK)
		rc = store_kv_scan(t, &ks_deks_table, NULL, 0, NULL, 0, collect_dek, &l);
	if (rc == FSD_OK && l.oom)
		rc = FSD_NOMEM;
	if (rc != FSD_OK) {
		snprintf(err, errlen, "key store: %s", fsd_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		char id[FSC_KEY_ID_MAX + 1];
		uint8_t dek[FSC_KEY_LEN], *wrapped = NULL;
		size_t wl = 0;
		if (!fsc_wrapped_key_id(l.vals[i], l.vlens[i], id)) {
			snprintf(err, errlen, "a wrapped key does not parse");
			rc = FSD_CORRUPT;
			goto out;
		}
		if (strcmp(id, k->masters[0].id) == 0)
			continue;
		const fsc_master *m = ks_master_by_id(k, id);
		if (m == NULL || !fsc_unwrap(m, l.vals[i], l.vlens[i], dek)) {
			snprintf(err, errlen,
			         "a data key is wrapped by master key \"%s\", which was not given",
			         id);
			rc = FSD_NOKEY;
			goto out;
		}
		bool w = fsc_wrap(&k->masters[0], dek, &wrapped, &wl);
		fsc_cleanse(dek, sizeof(dek));
		rc = w ? store_kv_put(t, &ks_deks_table, l.names[i], strlen(l.names[i]), wrapped,
		                      wl, false)
		       : FSD_ERROR;
		free(wrapped);
		if (rc != FSD_OK) {
			snprintf(err, errlen, "cannot rewrap a data key");
			goto out;
		}
		n++;
	}
	if ((rc = store_commit(&t)) != FSD_OK) {
		snprintf(err, errlen, "key store commit: %s", fsd_strerror(rc));
		goto out;
	}
	*n_rewrapped = n;
out:
	store_abort(&t);
	ks_leave(k);
	for (size_t i = 0; i < l.n; i++) {
		free(l.names[i]);
		fsc_cleanse(l.vals[i], l.vlens[i]);
		free(l.vals[i]);
	}
	free(l.names);
	free(l.vals);
	free(l.vlens);
	return rc;
}

fsd_err
keyring_txn_seal(store_txn *t, const char *name, const void *aad, size_t aad_len, const uint8_t *in,
                 size_t len, uint8_t **out, size_t *out_len)
{
	keyring *kr = store_keyring(store_txn_store(t));
	if (kr == NULL) {
		*out = malloc(len ? len : 1);
		if (*out == NULL)
			return FSD_ERROR;
		memcpy(*out, in, len);
		*out_len = len;
		return FSD_OK;
	}
	return keyring_seal(kr, name, aad, aad_len, in, len, out, out_len);
}

fsd_err
keyring_txn_unseal(store_txn *t, const void *aad, size_t aad_len, const uint8_t *in, size_t len,
                   uint8_t **out, size_t *out_len)
{
	fsd_err rc = keyring_open_value(store_keyring(store_txn_store(t)), aad, aad_len, in, len,
	                                out, out_len);
	if (rc != FSD_OK)
		return FSD_CORRUPT;
	if (*out != NULL)
		return FSD_OK; /* opened */
	*out = malloc(len ? len : 1);
	if (*out == NULL)
		return FSD_ERROR;
	memcpy(*out, in, len);
	*out_len = len;
	return FSD_OK;
}
