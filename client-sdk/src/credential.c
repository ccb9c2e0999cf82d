/*
 * Credentials written by `fieldsyncd enroll`: parse, validate, free.
 *
 * A credential file is untrusted input (it arrives by mail, USB stick or an
 * MDM profile): it is capped in size, every member is checked before
 * anything is kept, and no message ever quotes a value (the secret key
 * least of all). The secret key is wiped from every buffer it passed
 * through: the file text, cJSON's copy and the fs_credential.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "credential.h"
#include "fieldsync/crypto.h"
#include "fieldsync/merge.h"

#define CRED_FILE_MAX (64u << 10)
#define ENDPOINT_MAX 255
#define NAME_MAX_LEN 128
#define SCOPES_MAX 256

static const char z85_chars[] =
	"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static void
say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (why == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

bool
sdk_z85_key_decode(const char *text, uint8_t key[32])
{
	if (text == NULL || strlen(text) != SDK_Z85_KEY_LEN)
		return false;
	for (size_t g = 0; g < SDK_Z85_KEY_LEN / 5; g++) {
		uint64_t v = 0;
		for (size_t i = 0; i < 5; i++) {
			const char *p = strchr(z85_chars, text[5 * g + i]);
			if (text[5 * g + i] == '\0' || p == NULL)
				return false;
			v = v * 85 + (uint64_t)(p - z85_chars);
		}
		if (v > 0xffffffffu) /* five characters that do not fit four bytes */
			return false;
		for (size_t i = 0; i < 4; i++)
			key[4 * g + i] = (uint8_t)(v >> (24 - 8 * i));
	}
	return true;
}

void
fs_credential_free(fs_credential **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	fs_credential *c = *cp;
	if (c->client_secret_key != NULL) {
		fsc_cleanse((char *)c->client_secret_key, strlen(c->client_secret_key));
		free((char *)c->client_secret_key);
	}
	free((char *)c->endpoint);
	free((char *)c->server_public_key);
	free((char *)c->client_public_key);
	free((char *)c->name);
	free((char *)c->role);
	for (size_t i = 0; c->scopes != NULL && i < c->n_scopes; i++)
		free((char *)c->scopes[i]);
	free((void *)c->scopes);
	free(c);
	*cp = NULL;
}

/* The string member `name` of o, or NULL with why filled. */
static const char *
member(const cJSON *o, const char *name, char *why, size_t why_len)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
	if (m == NULL) {
		say(why, why_len, "the credential has no \"%s\"", name);
		return NULL;
	}
	if (!cJSON_IsString(m) || m->valuestring == NULL) {
		say(why, why_len, "\"%s\" in the credential must be a string", name);
		return NULL;
	}
	return m->valuestring;
}

static bool
text_ok(const char *s, size_t max, bool spaces)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || (!spaces && c == ' '))
			return false;
	}
	return true;
}

static bool
endpoint_ok(const char *ep)
{
	const char *sep = strstr(ep, "://");
	if (!text_ok(ep, ENDPOINT_MAX, false) || sep == NULL || sep == ep || sep[3] == '\0')
		return false;
	for (const char *p = ep; p < sep; p++)
		if (!(*p >= 'a' && *p <= 'z'))
			return false;
	return strchr(ep, '*') == NULL; /* a bind address cannot be connected to */
}

/* Checks a Z85 key member; false with why filled when bad. */
static bool
key_ok(const char *v, const char *name, uint8_t bin[32], char *why, size_t why_len)
{
	if (strlen(v) != SDK_Z85_KEY_LEN) {
		say(why, why_len, "\"%s\" must be %d characters of Z85, not %zu", name,
		    SDK_Z85_KEY_LEN, strlen(v));
		return false;
	}
	if (!sdk_z85_key_decode(v, bin)) {
		say(why, why_len, "\"%s\" is not a valid Z85 key", name);
		return false;
	}
	return true;
}

static char *
dup_str(const char *s, bool *ok)
{
	char *d = strdup(s);
	if (d == NULL)
		*ok = false;
	return d;
}

/* The parser; with_secret false: client_secret_key must be absent (a stored copy). */
static fs_err
parse(const char *json, size_t len, bool with_secret, fs_credential **out, char *why,
      size_t why_len)
{
	cJSON *root = NULL;
	fs_credential *c = NULL;
	fs_err err = FS_ERR_INVALID;
	uint8_t pub[32], sec[32], srv[32];
	const char *ep, *spk, *cpk, *csk = NULL, *name, *role;

	if (why != NULL && why_len > 0)
		why[0] = '\0';
	if (json == NULL || out == NULL) {
		say(why, why_len, "no credential text");
		return FS_ERR_INVALID;
	}
	if (len > CRED_FILE_MAX) {
		say(why, why_len, "the credential is larger than %u bytes", CRED_FILE_MAX);
		return FS_ERR_INVALID;
	}
	root = cJSON_ParseWithLength(json, len);
	if (root == NULL) {
		say(why, why_len, "the credential is not valid JSON");
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		say(why, why_len, "the credential must be a JSON object");
		goto out;
	}
	if ((ep = member(root, "endpoint", why, why_len)) == NULL ||
	    (spk = member(root, "server_public_key", why, why_len)) == NULL ||
	    (cpk = member(root, "client_public_key", why, why_len)) == NULL ||
	    (with_secret && (csk = member(root, "client_secret_key", why, why_len)) == NULL) ||
	    (name = member(root, "name", why, why_len)) == NULL ||
	    (role = member(root, "role", why, why_len)) == NULL)
		goto out;
	if (!endpoint_ok(ep)) {
		say(why, why_len,
		    "\"endpoint\" must be a ZeroMQ address to connect to, "
		    "e.g. tcp://host:7400 (at most %d characters, no '*')",
		    ENDPOINT_MAX);
		goto out;
	}
	if (!key_ok(spk, "server_public_key", srv, why, why_len) ||
	    !key_ok(cpk, "client_public_key", pub, why, why_len) ||
	    (with_secret && !key_ok(csk, "client_secret_key", sec, why, why_len)))
		goto out;
	if (memcmp(srv, pub, 32) == 0) {
		say(why, why_len, "the server and client public keys are the same key");
		goto out;
	}
	if (with_secret && !sdk_curve_pair_ok(cpk, csk)) {
		say(why, why_len,
		    "\"client_public_key\" is not the public key of "
		    "\"client_secret_key\"");
		goto out;
	}
	if (!text_ok(name, NAME_MAX_LEN, true)) {
		say(why, why_len, "\"name\" must be 1 to %d characters, no control characters",
		    NAME_MAX_LEN);
		goto out;
	}
	if (strcmp(role, "device") != 0 && strcmp(role, "scheduler") != 0) {
		say(why, why_len, "\"role\" must be \"device\" or \"scheduler\"");
		goto out;
	}
	const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(root, "scopes");
	if (scopes == NULL) {
		say(why, why_len, "the credential has no \"scopes\"");
		goto out;
	}
	if (!cJSON_IsArray(scopes)) {
		say(why, why_len, "\"scopes\" must be an array of scope names");
		goto out;
	}
	int ns = cJSON_GetArraySize(scopes);
	if (ns < 1 || ns > SCOPES_MAX) {
		say(why, why_len, "\"scopes\" must hold 1 to %d scopes", SCOPES_MAX);
		goto out;
	}
	for (int i = 0; i < ns; i++) {
		const cJSON *it = cJSON_GetArrayItem(scopes, i);
		if (!cJSON_IsString(it) || it->valuestring == NULL ||
		    !fsp_scope_valid(it->valuestring)) {
			say(why, why_len,
			    "scope %d in \"scopes\" must be a string matching "
			    "[a-z0-9][a-z0-9._-]{0,63}",
			    i + 1);
			goto out;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(cJSON_GetArrayItem(scopes, j)->valuestring, it->valuestring) ==
			    0) {
				say(why, why_len, "scopes %d and %d in \"scopes\" are the same",
				    j + 1, i + 1);
				goto out;
			}
	}

	bool ok = true;
	err = FS_ERR_NOMEM;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->scopes = calloc((size_t)ns, sizeof(char *))) == NULL)
		goto out;
	c->endpoint = dup_str(ep, &ok);
	c->server_public_key = dup_str(spk, &ok);
	c->client_public_key = dup_str(cpk, &ok);
	if (with_secret)
		c->client_secret_key = dup_str(csk, &ok);
	c->name = dup_str(name, &ok);
	c->role = dup_str(role, &ok);
	for (int i = 0; i < ns; i++) {
		((char **)c->scopes)[i] = dup_str(cJSON_GetArrayItem(scopes, i)->valuestring, &ok);
		c->n_scopes++;
	}
	if (!ok)
		goto out;
	*out = c;
	c = NULL;
	err = FS_OK;
out:
	if (root != NULL) {
		cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "client_secret_key");
		if (cJSON_IsString(s) && s->valuestring != NULL)
			fsc_cleanse(s->valuestring, strlen(s->valuestring));
		cJSON_Delete(root);
	}
	fsc_cleanse(sec, sizeof(sec));
	fs_credential_free(&c);
	return err;
}

fs_err
fs_credential_parse(const char *json, size_t len, fs_credential **out, char *why, size_t why_len)
{
	return parse(json, len, true, out, why, why_len);
}

fs_err
sdk_credential_parse_public(const char *json, size_t len, fs_credential **out)
{
	return parse(json, len, false, out, NULL, 0);
}

bool
sdk_curve_pair_ok(const char *public_z85, const char *secret_z85)
{
	char derived[SDK_Z85_KEY_LEN + 1];
	bool ok;
	if (!zmq_has("curve"))
		return true; /* cannot check here; the handshake will tell */
	ok = zmq_curve_public(derived, secret_z85) == 0 && strcmp(derived, public_z85) == 0;
	fsc_cleanse(derived, sizeof(derived));
	return ok;
}

fs_err
fs_credential_load(const char *path, fs_credential **out, char *why, size_t why_len)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	fs_err err = FS_ERR_IO;
	int fd;

	if (why != NULL && why_len > 0)
		why[0] = '\0';
	if (path == NULL || out == NULL) {
		say(why, why_len, "no credential file given");
		return FS_ERR_INVALID;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		say(why, why_len, "cannot open the credential file %s: %s", path, strerror(errno));
		return errno == ENOENT ? FS_ERR_NOT_FOUND : FS_ERR_IO;
	}
	if (fstat(fd, &st) != 0) {
		say(why, why_len, "cannot stat the credential file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		say(why, why_len, "the credential file %s is not a regular file", path);
		err = FS_ERR_INVALID;
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		say(why, why_len,
		    "the credential file %s is accessible by group or others (mode %04o) and holds "
		    "a secret key; refusing to use it: chmod 600 it, and have the device re-enrolled "
		    "if others may have read it",
		    path, (unsigned)(st.st_mode & 07777));
		err = FS_ERR_INVALID;
		goto out;
	}
	if ((buf = malloc(CRED_FILE_MAX + 1)) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, CRED_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			say(why, why_len, "cannot read the credential file %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CRED_FILE_MAX) {
			say(why, why_len, "the credential file %s is larger than %u bytes", path,
			    CRED_FILE_MAX);
			err = FS_ERR_INVALID;
			goto out;
		}
	}
	char inner[200];
	err = fs_credential_parse(buf, n, out, inner, sizeof(inner));
	if (err != FS_OK)
		say(why, why_len, "the credential file %s: %s", path, inner);
out:
	if (buf != NULL) {
		fsc_cleanse(buf, n);
		free(buf);
	}
	close(fd);
	return err;
}

/* A deep copy of c; with_secret false leaves client_secret_key NULL. */
fs_credential *
sdk_credential_dup(const fs_credential *c, bool with_secret)
{
	bool ok = true;
	fs_credential *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	if ((d->scopes = calloc(c->n_scopes ? c->n_scopes : 1, sizeof(char *))) == NULL) {
		free(d);
		return NULL;
	}
	d->endpoint = dup_str(c->endpoint, &ok);
	d->server_public_key = dup_str(c->server_public_key, &ok);
	d->client_public_key = dup_str(c->client_public_key, &ok);
	if (with_secret && c->client_secret_key != NULL)
		d->client_secret_key = dup_str(c->client_secret_key, &ok);
	d->name = dup_str(c->name, &ok);
	d->role = dup_str(c->role, &ok);
	for (size_t i = 0; i < c->n_scopes; i++) {
		((char **)d->scopes)[i] = dup_str(c->scopes[i], &ok);
		d->n_scopes++;
	}
	if (!ok)
		fs_credential_free(&d);
	return d;
}

/* The credential without its secret as JSON text (malloc'd), NULL on no memory. */
char *
sdk_credential_public_json(const fs_credential *c)
{
	cJSON *o = cJSON_CreateObject(), *a = NULL;
	char *text = NULL;
	if (o == NULL)
		return NULL;
	if (cJSON_AddStringToObject(o, "endpoint", c->endpoint) == NULL ||
	    cJSON_AddStringToObject(o, "server_public_key", c->server_public_key) == NULL ||
	    cJSON_AddStringToObject(o, "client_public_key", c->client_public_key) == NULL ||
	    cJSON_AddStringToObject(o, "name", c->name) == NULL ||
	    cJSON_AddStringToObject(o, "role", c->role) == NULL ||
	    (a = cJSON_AddArrayToObject(o, "scopes")) == NULL)
		goto out;
	for (size_t i = 0; i < c->n_scopes; i++) {
		cJSON *sc = cJSON_CreateString(c->scopes[i]);
		if (sc == NULL)
			goto out;
		cJSON_AddItemToArray(a, sc);
	}
	text = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	return text;
}
