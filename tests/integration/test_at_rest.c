/*
 * Encryption at rest through the real daemon: a canary pushed in a contact's
 * notes is served back to devices but never reaches any file under the data
 * directory; the master key is required and guarded.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"

#define CANARY "CANARY-7f3a9-notes"
#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

typedef Fieldsync__V1__Envelope env_t;

static char *
write_key(const char *dir, const char *text, mode_t mode)
{
	char *path = malloc(600);
	snprintf(path, 600, "%s/master.key", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
	return path;
}

/* Counts the files under dir that contain needle, and the files read. */
static int
files_containing(const char *dir, const char *needle, int *n_files)
{
	int found = 0;
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "open %s", dir);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char path[1024];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			found += files_containing(path, needle, n_files);
			continue;
		}
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f);
		char *buf = malloc((size_t)st.st_size + 1);
		size_t n = fread(buf, 1, (size_t)st.st_size, f);
		fclose(f);
		(*n_files)++;
		if (memmem(buf, n, needle, strlen(needle)) != NULL)
			found++;
		free(buf);
	}
	closedir(d);
	return found;
}

static void
push_case_and_contact(void *s)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	Fieldsync__V1__Contact t = FIELDSYNC__V1__CONTACT__INIT;
	uint8_t cb[256], tb[512];
	c.first_contact_at_ms = 1774360800000LL;
	c.contact_person = "staff-7";
	t.case_id = "case-9";
	t.held_at_ms = 1774447200000LL;
	t.notes = CANARY;
	t.who5 = 60;
	size_t cl = fieldsync__v1__case__pack(&c, cb), tl = fieldsync__v1__contact__pack(&t, tb);
	fs_test_push *p = fs_test_push_new("cs-rest");
	fs_test_push_add(p, "case", "case-9", "team-a", "a:1", false, cb, cl);
	fs_test_push_add(p, "contact", "talk-9", "team-a", "a:1", false, tb, tl);
	fs_test_push_add(p, "note", "note-9", "team-a", "a:1", false, CANARY "-opaque",
	                 strlen(CANARY "-opaque"));
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, 1), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(r->push_reply->results[i]->status,
		             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

/* Pulls everything; true when the canary came back in the contact's notes. */
static bool
feed_has_canary(void *s)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 77;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	env_t *r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
	bool found = false;
	for (size_t i = 0; i < r->pull_reply->n_records; i++) {
		Fieldsync__V1__RecordState *rs = r->pull_reply->records[i];
		if (strcmp(rs->collection, "contact") != 0)
			continue;
		Fieldsync__V1__Contact *t =
			fieldsync__v1__contact__unpack(NULL, rs->siblings[0]->payload.len,
		                                       rs->siblings[0]->payload.data);
		cr_assert_not_null(t, "devices get the plaintext payload back");
		found = strcmp(t->notes, CANARY) == 0;
		fieldsync__v1__contact__free_unpacked(t, NULL);
	}
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	return found;
}

Test(at_rest, a_canary_never_reaches_the_data_files, .timeout = 60)
{
	char *dir = fs_test_tmpdir();
	char *key = write_key(dir, "k1:" KEY_HEX "\n", 0600);
	char data[600];
	snprintf(data, sizeof(data), "%s/data", dir);
	const char *args[] = {"--master-key-file", key, NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(data, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	push_case_and_contact(s);
	cr_expect(feed_has_canary(s));
	zmq_close(s);
	char *log = fs_test_daemon_log(d);
	cr_assert_not_null(log);
	cr_expect_null(strstr(log, CANARY), "no payload content in the daemon's log");
	free(log);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);

	int n_files = 0;
	cr_expect_eq(files_containing(data, CANARY, &n_files), 0,
	             "no file under the data directory holds the canary");
	cr_expect_geq(n_files, 4, "data.mdb, lock.mdb and the key store were read");

	/* Control: without a key the same data is plaintext on disk, so the scan
	 * above would have seen it. */
	char plain[600];
	snprintf(plain, sizeof(plain), "%s/plain", dir);
	d = fs_test_daemon_start(plain);
	cr_assert_not_null(d);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	push_case_and_contact(s);
	zmq_close(s);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	n_files = 0;
	cr_expect_gt(files_containing(plain, CANARY, &n_files), 0, "the scan does find plaintext");

	/* The encrypted store reopens with its key and serves the data. */
	d = fs_test_daemon_start_args(data, args);
	cr_assert_not_null(d);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	cr_expect(feed_has_canary(s), "the data survives a restart");
	zmq_close(s);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	zmq_ctx_term(ctx);
	fs_test_rm_rf(dir);
	free(key);
	free(dir);
}

/* Runs the daemon to see it refuse to start; returns its stderr. */
static char *
refused(const char *cmdline, int *status)
{
	FILE *p = popen(cmdline, "r");
	cr_assert_not_null(p);
	char *out = calloc(1, 16384);
	size_t n = fread(out, 1, 16383, p);
	out[n] = '\0';
	*status = pclose(p);
	return out;
}

Test(at_rest, the_master_key_is_guarded, .timeout = 60)
{
	char *dir = fs_test_tmpdir();
	char cmd[2048];
	int st;
	char data[600];
	snprintf(data, sizeof(data), "%s/data", dir);

	/* A key file others can read is refused, with the fix in the message. */
	char *key = write_key(dir, "k1:" KEY_HEX "\n", 0644);
	snprintf(cmd, sizeof(cmd),
	         "%s --dev --data-dir %s --sync-endpoint tcp://127.0.0.1:0 --reminder-endpoint "
	         "tcp://127.0.0.1:0 --master-key-file %s 2>&1",
	         FS_DAEMON_BIN, data, key);
	char *out = refused(cmd, &st);
	cr_expect_neq(st, 0);
	cr_expect_not_null(strstr(out, "chmod 600"), "%s", out);
	free(out);
	free(key);

	/* A malformed key is refused. */
	key = write_key(dir, "k1:0011zz\n", 0600);
	out = refused(cmd, &st);
	cr_expect_neq(st, 0);
	cr_expect_not_null(strstr(out, "master key"), "%s", out);
	free(out);

	/* Once a store is encrypted, starting it without the key is refused. */
	free(key);
	key = write_key(dir, "k1:" KEY_HEX "\n", 0600);
	const char *args[] = {"--master-key-file", key, NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(data, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	push_case_and_contact(s);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	snprintf(cmd, sizeof(cmd),
	         "%s --dev --data-dir %s --sync-endpoint tcp://127.0.0.1:0 --reminder-endpoint "
	         "tcp://127.0.0.1:0 2>&1",
	         FS_DAEMON_BIN, data);
	out = refused(cmd, &st);
	cr_expect_neq(st, 0);
	cr_expect_not_null(strstr(out, "encrypted"), "%s", out);
	free(out);
	fs_test_rm_rf(dir);
	free(key);
	free(dir);
}

Test(at_rest, the_master_key_rotates, .timeout = 60)
{
	char *dir = fs_test_tmpdir();
	char data[600], cmd[2048];
	snprintf(data, sizeof(data), "%s/data", dir);
	char *key = write_key(dir, "k1:" KEY_HEX "\n", 0600);
	const char *args[] = {"--master-key-file", key, NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(data, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	push_case_and_contact(s);
	zmq_close(s);

	/* New key first, old one second; the daemon runs on; rotate while it runs. */
	free(key);
	key = write_key(dir,
	                "k2:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"
	                "k1:" KEY_HEX "\n",
	                0600);
	args[1] = key;
	snprintf(cmd, sizeof(cmd),
	         "%s rotate-master-key --data-dir %s --master-key-file %s >/dev/null",
	         FS_DAEMON_BIN, data, key);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);

	/* Only the new key now: everything still opens. */
	free(key);
	key = write_key(dir,
	                "k2:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n",
	                0600);
	args[1] = key;
	d = fs_test_daemon_start_args(data, args);
	cr_assert_not_null(d);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	cr_expect(feed_has_canary(s), "every data key was rewrapped with k2");
	zmq_close(s);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);

	/* And the old key alone no longer opens them: the daemon refuses to
	 * start (the master-key check), rather than serving every record as
	 * unreadable. */
	free(key);
	key = write_key(dir, "k1:" KEY_HEX "\n", 0600);
	args[1] = key;
	d = fs_test_daemon_start_args(data, args);
	cr_expect_null(d,
	               "the daemon does not start with a master key that does not open its store");
	zmq_ctx_term(ctx);
	if (d != NULL)
		fs_test_daemon_stop(&d);
	fs_test_rm_rf(dir);
	free(key);
	free(dir);
}
