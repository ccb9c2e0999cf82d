/*
 * Test support: enrolled CURVE devices and shell helpers (see enroll.h).
 * Layer: tests/support. Contract: no Criterion here; failures are return
 * values the calling test asserts on.
 */
#define _XOPEN_SOURCE 700
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "enroll.h"

const char *
fs_test_daemon_bin(void)
{
	const char *b = getenv("FS_TEST_DAEMON_BIN");
	return b != NULL && b[0] != '\0' ? b : FS_DAEMON_BIN;
}

int
fs_test_sh(const char *out_file, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (out_file != NULL) {
		size_t l = strlen(cmd);
		snprintf(cmd + l, sizeof(cmd) - l, " >%s 2>&1", out_file);
	}
	int st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *
fs_test_slurp(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = max > 0 ? max : 4096, n = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		n += fread(buf + n, 1, cap - 1 - n, f);
		if (n < cap - 1 || max > 0)
			break;
		char *bigger = realloc(buf, cap * 2);
		if (bigger == NULL) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = bigger;
		cap *= 2;
	}
	fclose(f);
	if (buf == NULL)
		return NULL;
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

/* Copies the string member `name` of j into out (41 bytes); false when absent. */
static int
key_of(const cJSON *j, const char *name, char out[41])
{
	const cJSON *v = cJSON_GetObjectItem(j, name);
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return -1;
	snprintf(out, 41, "%s", v->valuestring);
	return 0;
}

int
fs_test_enroll(const char *bin, const char *data_dir, const char *out_dir, const char *name,
               const char *scopes, const char *role, fs_test_cred *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->file, sizeof(c->file), "%s/%s.json", out_dir, name);
	if (fs_test_sh(NULL,
	               "%s enroll --data-dir %s --name %s --scopes %s --role %s "
	               "--endpoint tcp://127.0.0.1:7400 --out %s >/dev/null",
	               bin != NULL ? bin : FS_DAEMON_BIN, data_dir, name, scopes, role,
	               c->file) != 0)
		return -1;
	char *buf = fs_test_slurp(c->file, 0, NULL);
	if (buf == NULL)
		return -2;
	cJSON *j = cJSON_Parse(buf);
	free(buf);
	int rc = j != NULL && key_of(j, "server_public_key", c->server) == 0 &&
	                         key_of(j, "client_public_key", c->pub) == 0 &&
	                         key_of(j, "client_secret_key", c->sec) == 0
	                 ? 0
	                 : -2;
	cJSON_Delete(j);
	return rc;
}

int
fs_test_curve_keys(void *s, const fs_test_cred *c)
{
	int zero = 0;
	if (s == NULL || zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, c->server, 41) != 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, c->pub, 41) != 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->sec, 41) != 0)
		return -1;
	return 0;
}

void *
fs_test_curve_dealer(void *zctx, const char *endpoint, const fs_test_cred *c)
{
	void *s = zmq_socket(zctx, ZMQ_DEALER);
	if (s == NULL)
		return NULL;
	if (fs_test_curve_keys(s, c) != 0 || zmq_connect(s, endpoint) != 0) {
		zmq_close(s);
		return NULL;
	}
	return s;
}

int
fs_test_backup_purge(const char *bin, const char *data_dir, const char *dir,
                     const char *master_key_file, const char *purge_what)
{
	const char *b = bin != NULL ? bin : FS_DAEMON_BIN;
	if (fs_test_sh(NULL,
	               "%s backup --data-dir %s --out %s/before-purge.mdb --master-key-file %s "
	               ">/dev/null",
	               b, data_dir, dir, master_key_file) != 0)
		return 1;
	if (fs_test_sh(NULL,
	               "%s purge --data-dir %s --master-key-file %s %s --actor dpo >/dev/null", b,
	               data_dir, master_key_file, purge_what) != 0)
		return 2;
	if (fs_test_sh(NULL,
	               "%s backup --data-dir %s --out %s/after-purge.mdb --with-keys "
	               "%s/keys-now.mdb --master-key-file %s >/dev/null",
	               b, data_dir, dir, dir, master_key_file) != 0)
		return 3;
	return 0;
}

int
fs_test_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	close(fd);
	return w == (ssize_t)len ? 0 : -1;
}

double
fs_test_metric_value(const char *body, const char *name)
{
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "%s ", name);
	for (const char *l = body; l != NULL && *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, prefix, strlen(prefix)) == 0)
			return strtod(l + strlen(prefix), NULL);
	return -1;
}

void *
fs_test_socks_add(fs_test_socks *t, void *s)
{
	for (size_t i = 0; i < sizeof(t->s) / sizeof(t->s[0]); i++)
		if (t->s[i] == NULL)
			return t->s[i] = s;
	return NULL;
}

void
fs_test_socks_close(fs_test_socks *t, void *s)
{
	for (size_t i = 0; i < sizeof(t->s) / sizeof(t->s[0]); i++)
		if (t->s[i] == s)
			t->s[i] = NULL;
	zmq_close(s);
}

void
fs_test_socks_close_all(fs_test_socks *t)
{
	for (size_t i = 0; i < sizeof(t->s) / sizeof(t->s[0]); i++)
		if (t->s[i] != NULL)
			fs_test_socks_close(t, t->s[i]);
}

int
fs_test_dirs(char *dir, size_t dir_len, char *data, size_t data_len, char *key, size_t key_len,
             const char *key_line, const char *init_bin)
{
	char *t = fs_test_tmpdir();
	if (t == NULL)
		return -1;
	snprintf(dir, dir_len, "%s", t);
	free(t);
	snprintf(data, data_len, "%s/data", dir);
	snprintf(key, key_len, "%s/master.key", dir);
	if (key_line != NULL && fs_test_write_file(key, key_line) != 0)
		return -2;
	if (init_bin != NULL &&
	    fs_test_sh(NULL, "%s init --data-dir %s >/dev/null", init_bin, data) != 0)
		return -3;
	return 0;
}
