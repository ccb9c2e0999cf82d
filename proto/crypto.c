/*
 * libfieldsync-crypto (see fieldsync/crypto.h): AES-256-GCM through OpenSSL
 * EVP, random keys and UUIDs from RAND_bytes, master key files.
 *
 * OpenSSL stays inside this file: every function answers true/false, and
 * the OpenSSL error queue is cleared on every failure so no stale error
 * reaches a later, unrelated OpenSSL call in the same thread. Nothing here
 * logs; error texts for key files name the file and the problem, never a
 * byte of a key. Every buffer that held a key (or the text of one) is wiped
 * with OPENSSL_cleanse before it is freed or goes out of scope.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "fieldsync/crypto.h"

#define SEAL_VERSION 1
#define WRAP_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16
#define CHUNK_MAX ((size_t)1 << 30) /* EVP takes int lengths */
#define KEY_FILE_MAX 4096           /* a key file is one short line */

static const char dek_aad[] = "fieldsync-dek";

void
fsc_protect(void *p, size_t len)
{
	if (p == NULL || len == 0)
		return;
	long pg = sysconf(_SC_PAGESIZE);
	if (pg <= 0)
		return;
	uintptr_t a = (uintptr_t)p & ~((uintptr_t)pg - 1);
	size_t l = (size_t)((uintptr_t)p + len - a);
	/* best effort: MADV_DONTDUMP keeps the pages out of core dumps; mlock
	 * keeps them out of swap where RLIMIT_MEMLOCK allows (EPERM/ENOMEM ignored) */
#ifdef MADV_DONTDUMP
	(void)madvise((void *)a, l, MADV_DONTDUMP);
#endif
	(void)mlock((void *)a, l);
}

void
fsc_cleanse(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

bool
fsc_random(void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		size_t n = len > CHUNK_MAX ? CHUNK_MAX : len;
		if (RAND_bytes(p, (int)n) != 1) {
			ERR_clear_error();
			return false;
		}
		p += n;
		len -= n;
	}
	return true;
}

bool
fsc_new_key(uint8_t key[FSC_KEY_LEN])
{
	return fsc_random(key, FSC_KEY_LEN);
}

bool
fsc_uuid(char out[FSC_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	size_t o = 0;

	out[0] = '\0';
	if (!fsc_random(b, sizeof(b)))
		return false;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
	for (size_t i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
	return true;
}

/* Feeds [p, p+len) through EVP_*Update in int-sized chunks; out may be NULL (AAD). */
static bool
update(EVP_CIPHER_CTX *ctx, bool enc, uint8_t *out, const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t n = len > CHUNK_MAX ? CHUNK_MAX : len;
		int got = 0;
		int ok = enc ? EVP_EncryptUpdate(ctx, out, &got, p, (int)n)
		             : EVP_DecryptUpdate(ctx, out, &got, p, (int)n);
		if (ok != 1 || (out != NULL && (size_t)got != n))
			return false;
		if (out != NULL)
			out += n;
		p += n;
		len -= n;
	}
	return true;
}

bool
fsc_seal(const uint8_t key[FSC_KEY_LEN], const void *aad, size_t aad_len, const uint8_t *plaintext,
         size_t len, uint8_t **out, size_t *out_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *buf = NULL;
	bool ok = false;
	int fin = 0;

	*out = NULL;
	if (key == NULL || (aad_len > 0 && aad == NULL) || (len > 0 && plaintext == NULL) ||
	    len > SIZE_MAX - FSC_SEAL_OVERHEAD)
		return false;
	if ((buf = malloc(len + FSC_SEAL_OVERHEAD)) == NULL)
		goto out;
	buf[0] = SEAL_VERSION;
	if (!fsc_random(buf + 1, NONCE_LEN))
		goto out;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, buf + 1) != 1)
		goto out;
	if (!update(ctx, true, NULL, aad, aad_len) ||
	    !update(ctx, true, buf + 1 + NONCE_LEN, plaintext, len))
		goto out;
	if (EVP_EncryptFinal_ex(ctx, buf + 1 + NONCE_LEN + len, &fin) != 1 || fin != 0)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + 1 + NONCE_LEN + len) != 1)
		goto out;
	*out = buf;
	*out_len = len + FSC_SEAL_OVERHEAD;
	buf = NULL;
	ok = true;
out:
	if (!ok)
		ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx); /* wipes the key schedule */
	free(buf);
	return ok;
}

bool
fsc_open(const uint8_t key[FSC_KEY_LEN], const void *aad, size_t aad_len, const uint8_t *sealed,
         size_t len, uint8_t **out, size_t *out_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *buf = NULL, tag[TAG_LEN];
	bool ok = false;
	int fin = 0;
	size_t n;

	*out = NULL;
	*out_len = 0;
	if (key == NULL || (aad_len > 0 && aad == NULL) || sealed == NULL ||
	    len < FSC_SEAL_OVERHEAD || sealed[0] != SEAL_VERSION)
		return false;
	n = len - FSC_SEAL_OVERHEAD;
	if ((buf = malloc(n > 0 ? n : 1)) == NULL)
		goto out;
	memcpy(tag, sealed + len - TAG_LEN, TAG_LEN); /* the ctrl takes a non-const pointer */
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, sealed + 1) != 1)
		goto out;
	if (!update(ctx, false, NULL, aad, aad_len) ||
	    !update(ctx, false, buf, sealed + 1 + NONCE_LEN, n))
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, buf + n, &fin) != 1 || fin != 0)
		goto out; /* the tag does not verify */
	ok = true;
	if (n > 0) {
		*out = buf;
		*out_len = n;
		buf = NULL;
	}
out:
	if (!ok)
		ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx);
	if (buf != NULL) {
		fsc_cleanse(buf, n); /* never hand back, or leave behind, unverified plaintext */
		free(buf);
	}
	return ok;
}

/* A key id: 1..FSC_KEY_ID_MAX of [A-Za-z0-9._-]. */
static bool
key_id_valid(const char *id, size_t len)
{
	if (len == 0 || len > FSC_KEY_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool
fsc_wrap(const fsc_master *m, const uint8_t dek[FSC_KEY_LEN], uint8_t **out, size_t *out_len)
{
	uint8_t *sealed = NULL, *buf = NULL;
	size_t sl = 0, il;
	bool ok = false;

	*out = NULL;
	if (m == NULL || dek == NULL)
		return false;
	il = strnlen(m->id, sizeof(m->id));
	if (!key_id_valid(m->id, il))
		return false;
	if (!fsc_seal(m->key, dek_aad, sizeof(dek_aad) - 1, dek, FSC_KEY_LEN, &sealed, &sl))
		goto out;
	if ((buf = malloc(2 + il + sl)) == NULL)
		goto out;
	buf[0] = WRAP_VERSION;
	buf[1] = (uint8_t)il;
	memcpy(buf + 2, m->id, il);
	memcpy(buf + 2 + il, sealed, sl);
	*out = buf;
	*out_len = 2 + il + sl;
	ok = true;
out:
	free(sealed); /* ciphertext: nothing secret in it */
	return ok;
}

/* Splits a wrapped DEK into id and sealed part; false when it is not one. */
static bool
wrapped_split(const uint8_t *w, size_t len, size_t *id_len, const uint8_t **sealed,
              size_t *sealed_len)
{
	if (w == NULL || len < 2 || w[0] != WRAP_VERSION)
		return false;
	size_t il = w[1];
	if (!key_id_valid((const char *)w + 2, il > len - 2 ? 0 : il) ||
	    len - 2 - il != FSC_KEY_LEN + FSC_SEAL_OVERHEAD)
		return false;
	*id_len = il;
	*sealed = w + 2 + il;
	*sealed_len = len - 2 - il;
	return true;
}

bool
fsc_wrapped_key_id(const uint8_t *wrapped, size_t len, char id[FSC_KEY_ID_MAX + 1])
{
	size_t il, sl;
	const uint8_t *sealed;
	if (id == NULL || !wrapped_split(wrapped, len, &il, &sealed, &sl))
		return false;
	memcpy(id, wrapped + 2, il);
	id[il] = '\0';
	return true;
}

bool
fsc_unwrap(const fsc_master *m, const uint8_t *wrapped, size_t len, uint8_t dek[FSC_KEY_LEN])
{
	size_t il, sl, pl = 0;
	const uint8_t *sealed;
	uint8_t *plain = NULL;
	bool ok = false;

	if (m == NULL || dek == NULL || !wrapped_split(wrapped, len, &il, &sealed, &sl))
		return false;
	if (strnlen(m->id, sizeof(m->id)) != il || memcmp(m->id, wrapped + 2, il) != 0)
		return false; /* wrapped by another master key */
	if (!fsc_open(m->key, dek_aad, sizeof(dek_aad) - 1, sealed, sl, &plain, &pl))
		return false;
	if (pl == FSC_KEY_LEN) {
		memcpy(dek, plain, FSC_KEY_LEN);
		ok = true;
	}
	fsc_cleanse(plain, pl);
	free(plain);
	return ok;
}

/* ---- master key files --------------------------------------------------- */

static void
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
fsc_master_parse(const char *text, fsc_master *m, char *err, size_t errlen)
{
	fsc_master tmp;
	bool ok = false;

	if (text == NULL || m == NULL) {
		say(err, errlen, "no key text");
		return false;
	}
	memset(&tmp, 0, sizeof(tmp));
	size_t len = strlen(text);
	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len > 0 && text[len - 1] == '\r')
		len--;
	const char *colon = memchr(text, ':', len);
	if (colon == NULL) {
		say(err, errlen, "a master key must be \"<id>:<64 hex digits>\" (no ':' found)");
		goto out;
	}
	size_t il = (size_t)(colon - text);
	if (il == 0) {
		say(err, errlen, "the master key has no id before ':'");
		goto out;
	}
	if (!key_id_valid(text, il)) {
		say(err, errlen, "the master key id must be 1 to %d characters of [A-Za-z0-9._-]",
		    FSC_KEY_ID_MAX);
		goto out;
	}
	const char *hex = colon + 1;
	size_t hl = len - il - 1;
	if (hl != 2 * FSC_KEY_LEN) {
		say(err, errlen,
		    "the master key must be exactly %d hex digits after the id, not %zu",
		    2 * FSC_KEY_LEN, hl);
		goto out;
	}
	for (size_t i = 0; i < FSC_KEY_LEN; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			say(err, errlen, "the master key has a character that is not a hex digit");
			goto out;
		}
		tmp.key[i] = (uint8_t)(hi << 4 | lo);
	}
	uint8_t any = 0;
	for (size_t i = 0; i < FSC_KEY_LEN; i++)
		any |= tmp.key[i];
	if (any == 0) {
		say(err, errlen,
		    "the master key is all zeros: make a random one (fieldsyncd init)");
		goto out;
	}
	memcpy(tmp.id, text, il);
	tmp.id[il] = '\0';
	*m = tmp;
	ok = true;
out:
	fsc_cleanse(&tmp, sizeof(tmp));
	return ok;
}

bool
fsc_master_load_file(const char *path, fsc_master *m, char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX + 1];
	struct stat st;
	size_t n = 0;
	bool ok = false;
	int fd;

	if (path == NULL || m == NULL) {
		say(err, errlen, "no key file given");
		return false;
	}
	/* O_NONBLOCK: a FIFO must not block the open; fstat says what it is */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
		say(err, errlen, "cannot open the key file %s: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) != 0) {
		say(err, errlen, "cannot stat the key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		say(err, errlen,
		    "the key file %s is not a regular file (a FIFO, device or directory)", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		say(err, errlen,
		    "the key file %s is accessible by group or others (mode %04o); "
		    "refusing to use it: chmod 600 it (and make a new key if others may have read it)",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			say(err, errlen, "cannot read the key file %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == sizeof(buf) - 1) {
			say(err, errlen, "the key file %s is too long for one key line", path);
			goto out;
		}
	}
	buf[n] = '\0';
	if (strlen(buf) != n) {
		say(err, errlen, "the key file %s holds a NUL byte", path);
		goto out;
	}
	char why[160];
	if (!fsc_master_parse(buf, m, why, sizeof(why))) {
		say(err, errlen, "the key file %s: %s", path, why);
		goto out;
	}
	ok = true;
out:
	fsc_cleanse(buf, sizeof(buf));
	close(fd);
	return ok;
}

bool
fsc_master_create_file(const char *path, const char *id, char *err, size_t errlen)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t key[FSC_KEY_LEN];
	char line[FSC_KEY_ID_MAX + 2 + 2 * FSC_KEY_LEN + 1];
	size_t il, n = 0;
	bool ok = false, made = false;
	int fd = -1;

	if (path == NULL || id == NULL || !key_id_valid(id, il = strlen(id))) {
		say(err, errlen, "the key id must be 1 to %d characters of [A-Za-z0-9._-]",
		    FSC_KEY_ID_MAX);
		return false;
	}
	if (!fsc_new_key(key)) {
		say(err, errlen, "no random bytes for a new key");
		goto out;
	}
	memcpy(line, id, il);
	n = il;
	line[n++] = ':';
	for (size_t i = 0; i < FSC_KEY_LEN; i++) {
		line[n++] = digits[key[i] >> 4];
		line[n++] = digits[key[i] & 15];
	}
	line[n++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			say(err, errlen, "%s already exists; refusing to overwrite a key file",
			    path);
		else
			say(err, errlen, "cannot create the key file %s: %s", path,
			    strerror(errno));
		goto out;
	}
	made = true;
	if (fchmod(fd, 0600) != 0) {
		say(err, errlen, "cannot set mode 0600 on %s: %s", path, strerror(errno));
		goto out;
	}
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			say(err, errlen, "cannot write the key file %s: %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		say(err, errlen, "cannot sync the key file %s: %s", path, strerror(errno));
		goto out;
	}
	ok = true;
out:
	if (fd >= 0 && close(fd) != 0 && ok) {
		say(err, errlen, "cannot close the key file %s: %s", path, strerror(errno));
		ok = false;
	}
	if (!ok && made)
		unlink(path); /* never leave a half-written key behind */
	fsc_cleanse(key, sizeof(key));
	fsc_cleanse(line, sizeof(line));
	return ok;
}
