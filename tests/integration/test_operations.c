/*
 * Issue 12: operations that lose nothing and hide nothing, through the real
 * daemon and its admin commands. One Test per found item:
 *   2  two daemons on one data directory: the second refuses, naming the
 *      first one's pid; read-only admin commands still work beside it
 *   4  refusals are visible: a NULL-mechanism peer is logged and counted
 *      (zap_denials_total{reason="mechanism"}); a push into a scope not
 *      granted is logged and counted (forbidden_total{reason="scope"})
 *   5  no echo: a tablet's first sync does not download its own pushes;
 *      last_seq still advances (PROTOCOL.md §7)
 *   6  a silent tablet and an old unpushed edit are reported: `devices`
 *      (last seen, client, report, AT-RISK) and the fleet metrics, and the
 *      Prometheus alert rules pass `promtool check rules`
 *   8  check-config refuses a production config without a master key and
 *      creates nothing; backup --out - streams to stdout; build_info; one
 *      DEVELOPMENT MODE line; the systemd unit is Type=notify with
 *      ExecReload and a Documentation= that exists
 * Run with FS_TEST_DAEMON_BIN=<old fieldsyncd> to see them fail on the
 * old main.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "metrics.h"

#define KEY_LINE "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
#define T_MS 20000

typedef Fieldsync__V1__Envelope env_t;

static char g_dir[512], g_data[600], g_key[600];
static fs_test_daemon *d;

static const char *
bin(void)
{
	const char *b = getenv("FS_TEST_DAEMON_BIN");
	return b != NULL && b[0] != '\0' ? b : FS_DAEMON_BIN;
}

/* Runs a shell command; its exit status, its output (stdout+stderr) in *out. */
static int
run_out(char **out, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t cap = 1 << 20, n = 0;
	char *buf = calloc(1, cap);
	size_t r;
	while ((r = fread(buf + n, 1, cap - 1 - n, p)) > 0)
		n += r;
	buf[n] = '\0';
	int st = pclose(p);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
setup(void)
{
	char *t = fs_test_tmpdir();
	snprintf(g_dir, sizeof(g_dir), "%s", t);
	free(t);
	snprintf(g_data, sizeof(g_data), "%s/data", g_dir);
	snprintf(g_key, sizeof(g_key), "%s/master.key", g_dir);
	int fd = open(g_key, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, KEY_LINE, strlen(KEY_LINE)), (ssize_t)strlen(KEY_LINE));
	close(fd);
}

static void
teardown(void)
{
	if (d != NULL)
		fs_test_daemon_stop(&d);
	fs_test_rm_rf(g_dir);
}

TestSuite(operations, .init = setup, .fini = teardown, .timeout = 120);

/* The value of a metric line starting with `prefix` in /metrics; -1 absent. */
static double
metric(const char *prefix)
{
	char *body = NULL;
	double v = -1;
	if (fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &body) != 200) {
		free(body);
		return -1;
	}
	for (char *l = body; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, prefix, strlen(prefix)) == 0) {
			v = strtod(l + strlen(prefix), NULL);
			break;
		}
	free(body);
	return v;
}

/* Waits up to ms for metric(prefix) >= want; returns the last value. */
static double
metric_wait(const char *prefix, double want, int ms)
{
	double v = -1;
	for (int i = 0; i < ms / 100; i++) {
		if ((v = metric(prefix)) >= want)
			return v;
		usleep(100 * 1000);
	}
	return v;
}

static void
start_production(void)
{
	cr_assert_eq(run_out(NULL, "%s init --data-dir %s", bin(), g_data), 0);
	const char *args[] = {"--master-key-file", g_key, NULL};
	d = fs_test_daemon_start_production(g_data, args);
	cr_assert_not_null(d, "the daemon starts in production mode");
}

/* ---- 2: one daemon per data directory ------------------------------------- */

Test(operations, a_second_daemon_on_the_same_directory_refuses_naming_the_first)
{
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	int p1 = fs_test_free_port(), p2 = fs_test_free_port(), p3 = fs_test_free_port();
	char *out = NULL;
	/* a second daemon: refused at once, naming the holder */
	int st = run_out(&out,
	                 "timeout 10 %s --dev --data-dir %s --sync-endpoint tcp://127.0.0.1:%d "
	                 "--reminder-endpoint tcp://127.0.0.1:%d --ops-listen 127.0.0.1:%d",
	                 bin(), fs_test_daemon_data_dir(d), p1, p2, p3);
	char pid[32];
	snprintf(pid, sizeof(pid), "pid %d", fs_test_daemon_pid(d));
	cr_expect(st != 0 && st != 124, "the second daemon must exit with an error (%d): %s", st,
	          out);
	cr_expect_not_null(strstr(out, pid), "the message names the holder (%s): %s", pid, out);
	free(out);
	/* check-config sees the same */
	st = run_out(&out, "%s check-config --dev --data-dir %s", bin(),
	             fs_test_daemon_data_dir(d));
	cr_expect_neq(st, 0, "check-config reports the held lock: %s", out);
	cr_expect_not_null(strstr(out, pid), "%s", out);
	free(out);
	/* read-only admin commands work beside the daemon */
	cr_expect_eq(run_out(&out, "%s devices --data-dir %s", bin(), fs_test_daemon_data_dir(d)), 0,
	             "%s", out);
	free(out);
	cr_expect_eq(run_out(&out, "%s verify --data-dir %s", bin(), fs_test_daemon_data_dir(d)), 0,
	             "%s", out);
	free(out);
	/* the first daemon is still serving */
	cr_expect_geq(metric("fieldsync_up "), 1);
}

/* ---- 4: refusals are visible ---------------------------------------------- */

static void
enroll(const char *name, const char *scopes, char *out_path, size_t cap)
{
	snprintf(out_path, cap, "%s/%s.json", g_dir, name);
	cr_assert_eq(run_out(NULL,
	                     "%s enroll --data-dir %s --name %s --scopes %s --role device "
	                     "--endpoint %s --out %s",
	                     bin(), g_data, name, scopes, fs_test_daemon_endpoint(d), out_path),
	             0, "enroll %s", name);
}

Test(operations, a_null_mechanism_peer_and_a_forbidden_push_are_logged_and_counted)
{
	start_production();
	/* a peer without CURVE: never reaches ZAP */
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = "plain";
	e.request_id = 1;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	fs_test_send(s, &e);
	cr_expect_null(fs_test_recv(s, 1500), "a NULL peer gets no answer");
	/* libzmq's NULL peer may see the mismatch first and hang up: then the
	 * daemon sees a failed handshake without the detail; counted either way */
	cr_expect_geq(metric_wait("fieldsync_zap_denials_total{reason=\"mechanism\"} ", 1, 3000) +
	                      metric("fieldsync_zap_denials_total{reason=\"handshake\"} "),
	              1, "the NULL-mechanism DEALER is counted");
	/* a NULL greeting that stays to hear the answer: always "mechanism" */
	double before = metric("fieldsync_zap_denials_total{reason=\"mechanism\"} ");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_port = htons((uint16_t)atoi(strrchr(fs_test_daemon_endpoint(d), ':') + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	uint8_t greeting[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
	cr_assert_eq(write(fd, greeting, sizeof(greeting)), (ssize_t)sizeof(greeting));
	cr_expect_geq(metric_wait("fieldsync_zap_denials_total{reason=\"mechanism\"} ", before + 1,
	                          5000),
	              before + 1, "the NULL-mechanism peer is counted as mechanism");
	close(fd);
	char *log = fs_test_daemon_log(d);
	cr_expect_not_null(strstr(log, "handshake refused"), "and logged: %s", log);
	cr_expect_not_null(strstr(log, "mechanism"), "with its reason: %s", log);
	free(log);
	zmq_close(s);

	/* a push into a scope not granted: logged and counted by reason */
	char cred_path[700], why[512];
	enroll("tab-n", "team-north", cred_path, sizeof(cred_path));
	fs_credential *c = NULL;
	cr_assert_eq(fs_credential_load(cred_path, &c, why, sizeof(why)), FS_OK, "%s", why);
	char sd[700];
	snprintf(sd, sizeof(sd), "%s/tab-n", g_dir);
	fs_store *st = NULL;
	/* an encrypted store (one with a credential must be), the value written
	 * before the credential came (the SDK refuses it locally after) */
	static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8};
	fs_store_opts so;
	memset(&so, 0, sizeof(so));
	so.default_scope = "team-north";
	so.key = key;
	so.key_len = sizeof(key);
	so.key_id = "k1";
	cr_assert_eq(fs_store_create_ex(sd, &so, &st), FS_OK);
	cr_assert_eq(fs_put(st, "note", "n1", "team-south", "x", 1), FS_OK);
	cr_assert_eq(fs_store_set_credential(st, c), FS_OK);
	fs_sync_opts o = {0};
	fs_sync_stats ss;
	o.timeout_ms = T_MS;
	fs_sync(st, &o, &ss);
	cr_expect_eq(ss.failed, 1, "the change was refused (parked)");
	cr_expect_geq(metric_wait("fieldsync_forbidden_total{reason=\"scope\"} ", 1, 3000), 1,
	              "the forbidden push is counted");
	log = fs_test_daemon_log(d);
	cr_expect_not_null(strstr(log, "FORBIDDEN"), "and logged");
	cr_expect_not_null(strstr(log, "tab-n"), "naming the device");
	cr_expect_null(strstr(log, "\"x\""), "never the payload");
	free(log);

	/* revoked: the tablet is told its key was refused, not a network blip */
	cr_assert_eq(run_out(NULL, "%s revoke --data-dir %s --name tab-n", bin(), g_data), 0);
	fs_err err = fs_sync(st, &o, &ss);
	cr_expect_eq(err, FS_ERR_KEY_REFUSED, "%s", fs_strerror(err));
	cr_expect_geq(metric_wait("fieldsync_zap_denials_total{reason=\"revoked\"} ", 1, 3000), 1);
	fs_store_close(&st);
	fs_credential_free(&c);
	zmq_ctx_term(ctx);
}

/* ---- 5: no echo ------------------------------------------------------------ */

Test(operations, a_tablet_does_not_download_its_own_pushes)
{
	enum { N = 500 };
	char da[700], db[700], id[32];
	fs_store *a = NULL, *b = NULL;
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	snprintf(da, sizeof(da), "%s/a", g_dir);
	snprintf(db, sizeof(db), "%s/b", g_dir);
	cr_assert_eq(fs_store_create(da, "team-a", &a), FS_OK);
	cr_assert_eq(fs_store_create(db, "team-a", &b), FS_OK);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "r%04d", i);
		cr_assert_eq(fs_put(a, "note", id, NULL, "payload", 7), FS_OK);
	}
	fs_sync_opts o = {0};
	fs_sync_stats st;
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = T_MS;
	cr_assert_eq(fs_sync(a, &o, &st), FS_OK);
	cr_expect_eq(st.pushed, N);
	cr_expect_eq(st.pulled, 0, "its own %d values are not sent back (got %llu)", N,
	             (unsigned long long)st.pulled);
	fs_status ss;
	cr_assert_eq(fs_status_get(a, &ss), FS_OK);
	cr_expect_eq(ss.last_seq, N, "last_seq still moves past them");
	/* another tablet gets them all */
	cr_assert_eq(fs_sync(b, &o, &st), FS_OK);
	cr_expect_eq(st.pulled, N);
	/* a value B changes comes back to A */
	cr_assert_eq(fs_put(b, "note", "r0001", NULL, "changed", 7), FS_OK);
	cr_assert_eq(fs_sync(b, &o, &st), FS_OK);
	cr_assert_eq(fs_sync(a, &o, &st), FS_OK);
	cr_expect_eq(st.pulled, 1);
	fs_store_close(&a);
	fs_store_close(&b);
}

/* ---- 6: a silent tablet is seen ------------------------------------------- */

static void
hello_report(void *s, const char *replica, uint64_t pending, int64_t oldest_ms)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	Fieldsync__V1__DeviceReport r = FIELDSYNC__V1__DEVICE_REPORT__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = (char *)replica;
	h.client = "test-tablet/9.9";
	r.pending = pending;
	r.oldest_pending_ms = oldest_ms;
	r.failed = 2;
	r.last_seq = 41;
	h.report = &r;
	e.request_id = 5;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	env_t *rep = fs_test_call(s, &e, 5000);
	cr_assert_not_null(rep);
	cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	cr_expect_gt(strlen(rep->welcome->generation), 0, "Welcome names the generation");
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
}

Test(operations, a_silent_tablet_and_an_old_unpushed_edit_are_reported)
{
	d = fs_test_daemon_start(g_data); /* ours: it outlives a restart */
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	int64_t now = (int64_t)time(NULL) * 1000;
	hello_report(s, "tab-old-edit", 4, now - 10LL * 86400000); /* an edit 10 days old */
	hello_report(s, "tab-fine", 0, 0);
	zmq_close(s);
	double age = metric_wait("fieldsync_oldest_unpushed_edit_age_seconds ", 9.0 * 86400, 10000);
	cr_expect_geq(age, 9.0 * 86400, "the fleet's oldest unpushed edit (%f s)", age);
	cr_expect_eq(metric("fieldsync_devices_at_risk "), 1);
	cr_expect_eq(metric("fieldsync_devices_silent "), 0);

	char *out = NULL;
	/* the reports reach DATA_DIR/seen within a few seconds */
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(run_out(&out, "%s devices --data-dir %s --json", bin(),
		                     fs_test_daemon_data_dir(d)),
		             0, "%s", out);
		if (strstr(out, "tab-fine") != NULL)
			break;
		free(out);
		out = NULL;
		usleep(100 * 1000);
	}
	cr_assert_not_null(out, "the second report never reached `devices`");
	char *json = strchr(out, '[');
	cJSON *arr = json ? cJSON_Parse(json) : NULL;
	cr_assert_not_null(arr, "%s", out);
	int seen = 0;
	cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		const char *name = cJSON_GetObjectItem(it, "name")->valuestring;
		cJSON *rep = cJSON_GetObjectItem(it, "report");
		if (strcmp(name, "replica:tab-old-edit") == 0) {
			seen++;
			cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(it, "at_risk")));
			cr_expect_str_eq(cJSON_GetObjectItem(it, "client")->valuestring, "test-tablet/9.9");
			cr_assert(cJSON_IsObject(rep));
			cr_expect_eq(cJSON_GetObjectItem(rep, "pending")->valueint, 4);
			cr_expect_eq(cJSON_GetObjectItem(rep, "last_seq")->valueint, 41);
		} else if (strcmp(name, "replica:tab-fine") == 0) {
			seen++;
			cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(it, "at_risk")));
		}
	}
	cr_expect_eq(seen, 2, "both devices listed: %s", out);
	cJSON_Delete(arr);
	free(out);
	cr_assert_eq(run_out(&out, "%s devices --data-dir %s", bin(), fs_test_daemon_data_dir(d)), 0);
	cr_expect_not_null(strstr(out, "AT-RISK"), "%s", out);
	cr_expect_not_null(strstr(out, "1 at risk"), "%s", out);
	free(out);

	/* five days later (the daemon's clock moved): both devices are silent */
	const char *later[] = {"--clock-offset-ms", "432000000", NULL};
	char *dir = strdup(fs_test_daemon_data_dir(d));
	fs_test_daemon_stop(&d);
	d = fs_test_daemon_start_args(dir, later);
	cr_assert_not_null(d);
	double silent = metric_wait("fieldsync_devices_silent ", 2, 5000);
	cr_expect_eq(silent, 2, "silent: %f", silent);
	cr_expect_eq(metric("fieldsync_devices_at_risk "), 2);
	fs_test_daemon_stop(&d);
	free(dir);
	zmq_ctx_term(ctx);
}

Test(operations, the_alert_rules_pass_promtool)
{
	char *out = NULL;
	int st = run_out(&out, "promtool check rules %s/deploy/prometheus/fieldsync-rules.yml",
	                 FS_SOURCE_DIR);
	cr_expect_eq(st, 0, "%s", out);
	cr_expect_not_null(strstr(out, "SUCCESS"), "%s", out);
	free(out);
	st = run_out(&out, "promtool test rules %s/deploy/prometheus/fieldsync-rules.test.yml",
	             FS_SOURCE_DIR);
	cr_expect_eq(st, 0, "%s", out);
	free(out);
}

/* Every fieldsync_* name an alert rule uses is a metric the daemon exports
 * (a misspelt name would make its alert silently never fire). */
Test(operations, every_metric_the_alert_rules_use_is_exported)
{
	char path[700], *rules, *text;
	size_t len = 0, n = 0;
	snprintf(path, sizeof(path), "%s/deploy/prometheus/fieldsync-rules.yml", FS_SOURCE_DIR);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	rules = calloc(1, 1 << 17);
	cr_assert_not_null(rules);
	rules[fread(rules, 1, (1 << 17) - 1, f)] = '\0';
	fclose(f);
	metrics_reset();
	text = metrics_render_alloc(&len);
	cr_assert_not_null(text);
	for (const char *l = rules; (l = strstr(l, "expr:")) != NULL; l++) {
		const char *end = strchr(l, '\n') != NULL ? strchr(l, '\n') : l + strlen(l);
		for (const char *p = l; (p = strstr(p, "fieldsync_")) != NULL && p < end;) {
			char name[128], type[160];
			size_t k = 0;
			while (k < sizeof(name) - 1 &&
			       ((p[k] >= 'a' && p[k] <= 'z') || p[k] == '_' ||
			        (p[k] >= '0' && p[k] <= '9')))
				name[k] = p[k], k++;
			name[k] = '\0';
			p += k;
			snprintf(type, sizeof(type), "# TYPE %s ", name);
			cr_expect_not_null(strstr(text, type),
			                   "an alert uses %s, which is no metric", name);
			n++;
		}
	}
	cr_expect_geq(n, 14, "the names were found (%zu)", n);
	cr_expect_not_null(strstr(rules, "fieldsync_reminder_timers_skipped_total"));
	free(text);
	free(rules);
}

/* ---- 8: the small items ---------------------------------------------------- */

Test(operations, check_config_runs_the_start_up_checks_and_creates_nothing)
{
	char *out = NULL, nodir[700];
	struct stat sb;
	snprintf(nodir, sizeof(nodir), "%s/never", g_dir);
	/* production without a master key (and without server keys) */
	int st = run_out(&out, "%s check-config --data-dir %s", bin(), nodir);
	cr_expect_neq(st, 0, "a production config with nothing in place fails: %s", out);
	cr_expect_neq(stat(nodir, &sb), 0, "and nothing was created");
	free(out);
	/* with server keys but no master key */
	cr_assert_eq(run_out(NULL, "%s init --data-dir %s", bin(), g_data), 0);
	st = run_out(&out, "%s check-config --data-dir %s", bin(), g_data);
	cr_expect_neq(st, 0, "no master key: %s", out);
	cr_expect_not_null(strstr(out, "master key"), "%s", out);
	free(out);
	/* the daemon itself refuses the same before it creates a store */
	st = run_out(&out, "%s --data-dir %s --ops-listen 127.0.0.1:%d", bin(), nodir,
	             fs_test_free_port());
	cr_expect_neq(st, 0, "%s", out);
	char store[800];
	snprintf(store, sizeof(store), "%s/data.mdb", nodir);
	cr_expect_neq(stat(store, &sb), 0, "the refused daemon created no store");
	free(out);
	/* everything in place: exit 0 */
	st = run_out(&out, "%s check-config --data-dir %s --master-key-file %s", bin(), g_data, g_key);
	cr_expect_eq(st, 0, "%s", out);
	free(out);
}

Test(operations, backup_to_stdout_build_info_and_one_warning_line)
{
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	char file[700], *out = NULL;
	snprintf(file, sizeof(file), "%s/streamed.mdb", g_dir);
	int st = run_out(&out, "(cd %s && %s backup --data-dir %s --out - 2>backup.log) >%s", g_dir,
	                 bin(), fs_test_daemon_data_dir(d), file);
	cr_expect_eq(st, 0, "%s", out);
	free(out);
	struct stat sb;
	char dash[700];
	snprintf(dash, sizeof(dash), "%s/-", g_dir);
	cr_expect_neq(stat(dash, &sb), 0, "no file named '-'");
	cr_assert_eq(stat(file, &sb), 0);
	cr_expect_gt(sb.st_size, 4096, "the copy went to stdout");
	/* the streamed copy restores and verifies */
	char rdir[700];
	snprintf(rdir, sizeof(rdir), "%s/restored", g_dir);
	cr_expect_eq(run_out(&out, "%s restore --data-dir %s --from %s", bin(), rdir, file), 0, "%s",
	             out);
	free(out);

	cr_expect_eq(metric("fieldsync_build_info{version=\"0.1.0\",protocol=\"1\"} "), 1);
	char *log = fs_test_daemon_log(d);
	int n = 0;
	for (char *p = log; (p = strstr(p, "DEVELOPMENT MODE")) != NULL; p++)
		n++;
	cr_expect_eq(n, 1, "one DEVELOPMENT MODE line, not %d", n);
	free(log);
}

Test(operations, the_systemd_unit_is_type_notify_with_reload_and_true_docs)
{
	char path[700], *out = NULL;
	snprintf(path, sizeof(path), "%s/deploy/systemd/fieldsyncd.service", FS_SOURCE_DIR);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	char *unit = calloc(1, 1 << 16);
	size_t n = fread(unit, 1, (1 << 16) - 1, f);
	unit[n] = '\0';
	fclose(f);
	cr_expect_not_null(strstr(unit, "\nType=notify\n"), "Type=notify");
	cr_expect_not_null(strstr(unit, "\nExecReload=/bin/kill -HUP $MAINPID\n"), "ExecReload");
	char *doc = strstr(unit, "\nDocumentation=");
	cr_assert_not_null(doc);
	/* the man page it names exists (and is installed: CMakeLists.txt) */
	cr_expect_not_null(strstr(doc, "man:fieldsyncd(8)"), "Documentation=man:fieldsyncd(8)");
	cr_expect_null(strstr(unit, "man:systemd.exec(5)"), "not systemd's own page");
	cr_expect_eq(run_out(&out, "test -f %s/docs/man/fieldsyncd.8", FS_SOURCE_DIR), 0);
	free(out);
	free(unit);
}
