/* Test support: the real fieldsyncd as a child process, and a DEALER client. */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/merge.h"

struct fs_test_daemon {
	pid_t pid;
	int port, reminder_port, ops_port;
	bool production; /* no --dev: CURVE, enrolled devices, a master key */
	bool own_dir;
	char dir[512];
	char logpath[600];
	char endpoint[64];
	char reminder_endpoint[64];
	char *extra[16];
};

char *
fs_test_tmpdir(void)
{
	char *p = strdup("/tmp/fieldsync-test-XXXXXX");
	if (p != NULL && mkdtemp(p) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
fs_test_rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A loopback TCP port that is free now. It is drawn from 20000-32767, below
 * Linux's ephemeral range (32768-60999), so no outgoing connection of another
 * test can be handed it between this check and the daemon's bind; two tests
 * drawing the same port is caught by start()'s retry. */
int
fs_test_free_port(void)
{
	static unsigned seed;
	if (seed == 0)
		seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
	for (int attempt = 0; attempt < 200; attempt++) {
		int port = 20000 + (int)(rand_r(&seed) % 12768);
		struct sockaddr_in a;
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons((uint16_t)port);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	return -1;
}

static void
pick_ports(fs_test_daemon *d)
{
	d->port = fs_test_free_port();
	snprintf(d->endpoint, sizeof(d->endpoint), "tcp://127.0.0.1:%d", d->port);
	d->reminder_port = fs_test_free_port();
	d->ops_port = fs_test_free_port();
	snprintf(d->reminder_endpoint, sizeof(d->reminder_endpoint), "tcp://127.0.0.1:%d",
	         d->reminder_port);
}

/* True if the daemon's log says a bind failed because the port was taken. */
static bool
lost_port_race(fs_test_daemon *d)
{
	char *log = fs_test_daemon_log(d);
	bool lost = log != NULL && strstr(log, "Address already in use") != NULL;
	free(log);
	return lost;
}

static bool
spawn(fs_test_daemon *d)
{
	char ep[64], rem[64], ops[64];
	const char *argv[40];
	int n = 0;
	snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", d->port);
	snprintf(rem, sizeof(rem), "tcp://127.0.0.1:%d", d->reminder_port);
	snprintf(ops, sizeof(ops), "127.0.0.1:%d", d->ops_port);
	/* FS_TEST_DAEMON_BIN runs another build (e.g. the old main, to show a
	 * test fails there); FS_TEST_DAEMON_WRAP a command line the daemon runs
	 * under (e.g. fiu-run -x -c '...'), through /bin/sh. */
	const char *bin = getenv("FS_TEST_DAEMON_BIN"), *wrap = getenv("FS_TEST_DAEMON_WRAP");
	if (wrap != NULL && wrap[0] != '\0') {
		argv[n++] = "/bin/sh";
		argv[n++] = "-c";
		argv[n++] = "eval exec \"$FS_TEST_DAEMON_WRAP\" '\"$@\"'";
		argv[n++] = "fieldsyncd";
	}
	argv[n++] = bin != NULL && bin[0] != '\0' ? bin : FS_DAEMON_BIN;
	argv[n++] = "--data-dir";
	argv[n++] = d->dir;
	argv[n++] = "--sync-endpoint";
	argv[n++] = ep;
	argv[n++] = "--reminder-endpoint";
	argv[n++] = rem;
	argv[n++] = "--ops-listen";
	argv[n++] = ops;
	if (!d->production)
		argv[n++] = "--dev";
	for (int i = 0; d->extra[i] != NULL; i++)
		argv[n++] = d->extra[i];
	argv[n] = NULL;

	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		const char *fsize = getenv("FS_TEST_FSIZE_LIMIT"); /* fault injection: a "full disk" */
		if (fsize != NULL) {
			struct rlimit rl = {strtoull(fsize, NULL, 10), RLIM_INFINITY};
			setrlimit(RLIMIT_FSIZE, &rl);
		}
		int fd = open(d->logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	d->pid = pid;
	return true;
}

/* Waits until /readyz answers 200 (bound, store open, disk fine), or the
 * daemon dies, or 20 s pass. Works with and without CURVE. */
static bool
wait_ready(fs_test_daemon *d)
{
	for (int i = 0; i < 400; i++) {
		int status;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return false;
		}
		char *body = NULL;
		int code = fs_test_http_get(d->ops_port, "/readyz", &body);
		free(body);
		if (code == 200)
			return true;
		usleep(50000);
	}
	return false;
}

static fs_test_daemon *start(const char *data_dir, const char *const *extra, bool production);

fs_test_daemon *
fs_test_daemon_start_args(const char *data_dir, const char *const *extra)
{
	return start(data_dir, extra, false);
}

fs_test_daemon *
fs_test_daemon_start_production(const char *data_dir, const char *const *extra)
{
	return start(data_dir, extra, true);
}

static fs_test_daemon *
start(const char *data_dir, const char *const *extra, bool production)
{
	fs_test_daemon *d = calloc(1, sizeof(*d));
	char *tmp = fs_test_tmpdir();
	if (d == NULL || tmp == NULL)
		goto fail;
	d->production = production;
	for (int i = 0; extra != NULL && extra[i] != NULL && i < 15; i++)
		d->extra[i] = strdup(extra[i]);
	if (data_dir == NULL) {
		snprintf(d->dir, sizeof(d->dir), "%s/data", tmp);
		d->own_dir = true;
	} else {
		snprintf(d->dir, sizeof(d->dir), "%s", data_dir);
	}
	snprintf(d->logpath, sizeof(d->logpath), "%s/daemon.log", tmp);
	free(tmp);
	tmp = NULL;
	for (int attempt = 0; attempt < 5; attempt++) {
		pick_ports(d);
		if (!spawn(d))
			goto fail;
		if (wait_ready(d))
			return d;
		if (d->pid != 0 || !lost_port_race(d))
			goto fail;
		if (truncate(d->logpath, 0) != 0) /* another test took a port first: new ports */
			goto fail;
	}
fail:
	free(tmp);
	if (d != NULL) {
		char *log = fs_test_daemon_log(d);
		fprintf(stderr, "fieldsyncd did not start; its log:\n%s\n", log ? log : "(none)");
		free(log);
	}
	fs_test_daemon_stop(&d);
	return NULL;
}

fs_test_daemon *
fs_test_daemon_start(const char *data_dir)
{
	return fs_test_daemon_start_args(data_dir, NULL);
}

const char *
fs_test_daemon_endpoint(const fs_test_daemon *d)
{
	return d->endpoint;
}

int
fs_test_daemon_ops_port(const fs_test_daemon *d)
{
	return d->ops_port;
}

/* A plain HTTP/1.0 GET on loopback: status code, body in *body (malloc'd). */
int
fs_test_http_get(int port, const char *path, char **body)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
	char req[512];
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	*body = NULL;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || buf == NULL || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto out;
	int l = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, (size_t)l) != l)
		goto out;
	for (;;) {
		if (n + 1 == cap) {
			char *b = realloc(buf, cap * 2);
			if (b == NULL)
				goto out;
			buf = b;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = -1;
	char *sep = strstr(buf, "\r\n\r\n");
	*body = strdup(sep ? sep + 4 : "");
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return status;
}

const char *
fs_test_daemon_reminder_endpoint(const fs_test_daemon *d)
{
	return d->reminder_endpoint;
}

const char *
fs_test_daemon_data_dir(const fs_test_daemon *d)
{
	return d->dir;
}

int
fs_test_daemon_pid(const fs_test_daemon *d)
{
	return (int)d->pid;
}

char *
fs_test_daemon_log(const fs_test_daemon *d)
{
	FILE *f = fopen(d->logpath, "rb");
	char *buf = NULL;
	long n;
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf != NULL) {
		size_t got = fread(buf, 1, (size_t)n, f);
		buf[got] = '\0';
	}
	fclose(f);
	return buf;
}

void
fs_test_daemon_kill9(fs_test_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
}

int
fs_test_daemon_wait(fs_test_daemon *d, int timeout_ms)
{
	for (int waited = 0; d->pid > 0 && waited <= timeout_ms; waited += 50) {
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(50000);
	}
	return -1;
}

bool
fs_test_daemon_restart(fs_test_daemon *d)
{
	fs_test_daemon_kill9(d);
	return spawn(d) && wait_ready(d);
}

int
fs_test_daemon_stop(fs_test_daemon **dp)
{
	int status = -1;
	if (dp == NULL || *dp == NULL)
		return -1;
	fs_test_daemon *d = *dp;
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		status = fs_test_daemon_wait(d, 30000);
		fs_test_daemon_kill9(d);
	}
	char base[600];
	snprintf(base, sizeof(base), "%s", d->logpath);
	char *slash = strrchr(base, '/');
	if (slash != NULL)
		*slash = '\0';
	if (getenv("FS_TEST_KEEP") == NULL)
		fs_test_rm_rf(base); /* the temp dir: log, and data when we made it */
	for (int i = 0; d->extra[i] != NULL; i++)
		free(d->extra[i]);
	free(d);
	*dp = NULL;
	return status;
}

void *
fs_test_dealer(void *zctx, const char *endpoint)
{
	void *s = zmq_socket(zctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_connect(s, endpoint);
	return s;
}

bool
fs_test_send(void *sock, const Fieldsync__V1__Envelope *e)
{
	size_t len = fieldsync__v1__envelope__get_packed_size(e);
	uint8_t *buf = malloc(len ? len : 1);
	bool ok;
	if (buf == NULL)
		return false;
	fieldsync__v1__envelope__pack(e, buf);
	ok = zmq_send(sock, buf, len, 0) == (int)len;
	free(buf);
	return ok;
}

Fieldsync__V1__Envelope *
fs_test_recv(void *sock, int timeout_ms)
{
	zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
	zmq_msg_t m;
	Fieldsync__V1__Envelope *e = NULL;
	if (zmq_poll(&it, 1, timeout_ms) <= 0)
		return NULL;
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, sock, 0) >= 0)
		e = fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
	zmq_msg_close(&m);
	return e;
}

Fieldsync__V1__Envelope *
fs_test_call(void *sock, Fieldsync__V1__Envelope *e, int timeout_ms)
{
	if (!fs_test_send(sock, e))
		return NULL;
	Fieldsync__V1__Envelope *r = fs_test_recv(sock, timeout_ms);
	if (r != NULL && r->request_id != e->request_id) {
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		return NULL;
	}
	return r;
}

Fieldsync__V1__VersionVector *
fs_test_vv(const char *text)
{
	/* Build by repeated increments: simple, and keeps the dots sorted. */
	Fieldsync__V1__VersionVector empty = FIELDSYNC__V1__VERSION_VECTOR__INIT;
	fsp_vv *v = fsp_vv_dup(&empty);
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		unsigned long long n = strtoull(colon + 1, NULL, 10);
		for (unsigned long long i = 0; i < n; i++) {
			fsp_vv *next = NULL;
			fsp_vv_increment(v, tok, &next);
			fsp_vv_free(v);
			v = next;
		}
	}
	return v;
}

struct fs_test_push {
	Fieldsync__V1__PushRequest req;
	Fieldsync__V1__Envelope env;
	Fieldsync__V1__Change **changes;
	size_t n, cap;
	char *changeset_id;
};

fs_test_push *
fs_test_push_new(const char *changeset_id)
{
	fs_test_push *p = calloc(1, sizeof(*p));
	fieldsync__v1__push_request__init(&p->req);
	fieldsync__v1__envelope__init(&p->env);
	p->changeset_id = strdup(changeset_id);
	return p;
}

void
fs_test_push_add(fs_test_push *p, const char *collection, const char *id, const char *scope,
                 const char *version, bool deleted, const void *payload, size_t payload_len)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->changes = realloc(p->changes, p->cap * sizeof(*p->changes));
	}
	Fieldsync__V1__Change *c = calloc(1, sizeof(*c));
	Fieldsync__V1__Record *r = calloc(1, sizeof(*r));
	fieldsync__v1__change__init(c);
	fieldsync__v1__record__init(r);
	r->collection = strdup(collection);
	r->id = strdup(id);
	r->scope = strdup(scope);
	r->version = fs_test_vv(version);
	r->deleted = deleted;
	if (payload_len > 0) {
		r->payload.data = malloc(payload_len);
		memcpy(r->payload.data, payload, payload_len);
		r->payload.len = payload_len;
	}
	c->record = r;
	p->changes[p->n++] = c;
}

Fieldsync__V1__Envelope *
fs_test_push_envelope(fs_test_push *p, uint64_t request_id)
{
	p->req.changeset_id = p->changeset_id;
	p->req.changes = p->changes;
	p->req.n_changes = p->n;
	p->env.request_id = request_id;
	p->env.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
	p->env.push = &p->req;
	return &p->env;
}

void
fs_test_push_free(fs_test_push *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++) {
		Fieldsync__V1__Record *r = p->changes[i]->record;
		free(r->collection);
		free(r->id);
		free(r->scope);
		fsp_vv_free(r->version);
		free(r->payload.data);
		free(r);
		free(p->changes[i]);
	}
	free(p->changes);
	free(p->changeset_id);
	free(p);
}
