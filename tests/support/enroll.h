/*
 * Test support: enrolled CURVE devices and shell helpers for the
 * integration tests. Layer: tests/support (no Criterion; bench/ links it
 * too). Contract: every function reports failure by its return value
 * (-1 / NULL) and never aborts; the test asserts on it.
 */
#ifndef FS_TEST_ENROLL_H
#define FS_TEST_ENROLL_H

#include <stddef.h>

/* A device credential as `fieldsyncd enroll --out FILE` writes it: the
 * Z85 keys (40 characters and a NUL) and the path of FILE. */
typedef struct fs_test_cred {
	char server[41], pub[41], sec[41];
	char file[700];
} fs_test_cred;

/* The daemon binary the tests run: $FS_TEST_DAEMON_BIN when set and not
 * empty (e.g. the old release), else this build's fieldsyncd. */
const char *fs_test_daemon_bin(void);

/* Runs the shell command printf(fmt, ...); with out_file its stdout and
 * stderr go there (" >out_file 2>&1" is appended). Its exit status, -1 when
 * it did not exit normally. */
int fs_test_sh(const char *out_file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The file at path as a NUL-terminated string (malloc'd, caller frees); its
 * length in *len when len is not NULL. At most max-1 bytes are read; max 0:
 * the whole file. NULL when it cannot be opened. */
char *fs_test_slurp(const char *path, size_t max, size_t *len);

/* `bin enroll --data-dir data_dir --name name --scopes scopes --role role
 * --endpoint tcp://127.0.0.1:7400 --out out_dir/name.json`, then reads the
 * keys of that file into *c (bin NULL: FS_DAEMON_BIN). 0 on success; -1
 * when enroll fails, -2 when the file cannot be read or lacks a key. */
int fs_test_enroll(const char *bin, const char *data_dir, const char *out_dir, const char *name,
                   const char *scopes, const char *role, fs_test_cred *c);

/* Sets linger 0 and c's CURVE client keys on socket s. 0, or -1. */
int fs_test_curve_keys(void *s, const fs_test_cred *c);

/* A DEALER with c's CURVE keys (linger 0) connected to endpoint; NULL when
 * it cannot be made or connected. */
void *fs_test_curve_dealer(void *zctx, const char *endpoint, const fs_test_cred *c);

/* A test's directories: a fresh temporary directory (fs_test_tmpdir, the
 * test removes it) in dir, dir/data in data and dir/master.key in key. With
 * key_line that key file is written (mode 0600); with init_bin, `init_bin
 * init --data-dir data` is run. 0; -1 no directory, -2 the key file could
 * not be written, -3 init failed. */
int fs_test_dirs(char *dir, size_t dir_len, char *data, size_t data_len, char *key, size_t key_len,
                 const char *key_line, const char *init_bin);

/* Writes text to path (created or truncated, mode 0600), e.g. a master
 * key file. 0, or -1. */
int fs_test_write_file(const char *path, const char *text);

/* The value of the sample `name` (a line "name value") in a Prometheus
 * text body; -1 when there is none. */
double fs_test_metric_value(const char *body, const char *name);

/* The sockets a test opened, so its teardown can close those an early
 * assertion left open (zmq_ctx_term would wait for them forever). */
typedef struct fs_test_socks {
	void *s[256];
} fs_test_socks;
/* Tracks s; s, or NULL when the set is full (s is not tracked then). */
void *fs_test_socks_add(fs_test_socks *t, void *s);
/* Closes s and forgets it. */
void fs_test_socks_close(fs_test_socks *t, void *s);
/* Closes every tracked socket. */
void fs_test_socks_close_all(fs_test_socks *t);

/* The set-up of an unreadable record (issue 11): with the daemon stopped
 * or running, `bin backup` of data_dir to dir/before-purge.mdb, `bin purge
 * ... purge_what --actor dpo`, then `bin backup` to dir/after-purge.mdb
 * with the key store as it is now in dir/keys-now.mdb (bin NULL:
 * FS_DAEMON_BIN). 0, or the step (1-3) that failed. */
int fs_test_backup_purge(const char *bin, const char *data_dir, const char *dir,
                         const char *master_key_file, const char *purge_what);

#endif
