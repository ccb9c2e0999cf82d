/*
 * fieldsyncd: the offline-first sync daemon (layer 8). main() dispatches
 * the admin subcommands, then wires the daemon: config -> log -> the
 * data directory's single-writer lock -> the start-up checks
 * (daemon_check_start: keys, before anything is created) -> rules ->
 * store (schema.c) -> keyring -> daemon_run() (daemon.c: sockets, writer
 * actor, main loop). check-config runs the same checks and creates nothing.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/admin_dispatch.h"
#include "config.h"
#include "daemon_run.h"
#include "err.h"
#include "keyring.h"
#include "log.h"
#include "reminders.h"
#include "schema.h"
#include "store.h"

int
main(int argc, char **argv)
{
	config c;
	store *s;
	int code;

	/* fieldsyncd init|enroll|...|backup|restore|verify: daemon/admin/ */
	if (admin_dispatch(argc, argv, &code))
		return code;
	if (argc > 1 && strcmp(argv[1], "check-config") == 0) {
		/* The same options as the daemon; prints what it would run with. */
		switch (config_load(&c, argc - 1, argv + 1)) {
		case CONFIG_EXIT_OK:
			return FSD_EXIT_OK;
		case CONFIG_EXIT_ERR:
			return FSD_EXIT_USAGE;
		case CONFIG_RUN:
			break;
		}
		char err[600];
		reminders *r = NULL;
		if (reminders_new(&c, &r, err, sizeof(err)) != FSD_OK) {
			fprintf(stderr, "fieldsyncd: %s\n", err);
			return FSD_EXIT_USAGE;
		}
		reminders_free(&r);
		config_print(&c, stdout);
		/* the daemon's start-up checks, creating nothing */
		return daemon_check_start(&c, false, stdout);
	}
	switch (config_load(&c, argc, argv)) {
	case CONFIG_EXIT_OK:
		return FSD_EXIT_OK;
	case CONFIG_EXIT_ERR:
		return FSD_EXIT_USAGE;
	case CONFIG_RUN:
		break;
	}
	log_set_level(c.log_level);
	log_event(LOG_INFO, "fieldsyncd starting", LS("version", FIELDSYNCD_VERSION),
	          LS("data_dir", c.data_dir), LS("sync_endpoint", c.sync_endpoint), NULL);
	const char *env_key = getenv("FIELDSYNC_MASTER_KEY");
	bool has_key = c.master_key_file[0] != '\0' || (env_key != NULL && env_key[0] != '\0');
	if (c.dev) /* one line, whatever else is missing */
		log_event(LOG_WARN,
		          has_key ? "DEVELOPMENT MODE: no CURVE encryption, no authentication, "
		                    "every peer is granted every scope. Never use --dev with real "
		                    "data."
		                  : "DEVELOPMENT MODE: no CURVE encryption, no authentication, "
		                    "every peer is granted every scope, data at rest is NOT "
		                    "encrypted. Never use --dev with real data.",
		          NULL);
	/* One daemon per data directory, before anything in it is created. */
	int lock_fd = -1;
	long holder = 0;
	fsd_err lrc = store_lock_dir(c.data_dir, true, &lock_fd, &holder);
	if (lrc != FSD_OK) {
		if (lrc == FSD_BUSY)
			fprintf(stderr,
			        "fieldsyncd: %s is in use by another fieldsyncd (pid %ld); one "
			        "daemon per data directory\n",
			        c.data_dir, holder);
		else
			fprintf(stderr, "fieldsyncd: cannot lock %s/fieldsyncd.lock: %s\n",
			        c.data_dir, fsd_strerror(lrc));
		log_event(LOG_ERROR, "the data directory is locked by another process",
		          LS("data_dir", c.data_dir), LI("holder_pid", holder), NULL);
		return FSD_EXIT_FAIL;
	}
	if ((code = daemon_check_start(&c, true, NULL)) != FSD_EXIT_OK) {
		log_event(LOG_ERROR, "start-up checks failed; nothing was created", NULL);
		store_unlock_dir(&lock_fd);
		return code;
	}
	char err[600];
	reminders *rem = NULL;
	if (reminders_new(&c, &rem, err, sizeof(err)) != FSD_OK) {
		log_event(LOG_ERROR, "bad reminder configuration", LS("error", err), NULL);
		fprintf(stderr, "fieldsyncd: %s\n", err);
		store_unlock_dir(&lock_fd);
		return FSD_EXIT_USAGE;
	}
	s = store_open(c.data_dir, c.map_size, c.map_size_max);
	if (s == NULL) {
		reminders_free(&rem);
		store_unlock_dir(&lock_fd);
		return FSD_EXIT_FAIL;
	}
	/* Encryption at rest: required in production, optional with --dev. */
	keyring *kr = NULL;
	if (has_key || !c.dev) {
		if (keyring_open(c.data_dir, c.master_key_file, env_key, &kr, err, sizeof(err)) !=
		    FSD_OK) {
			log_event(LOG_ERROR, "cannot load the master key", LS("error", err), NULL);
			fprintf(stderr, "fieldsyncd: %s\n", err);
			reminders_free(&rem);
			store_close(&s);
			store_unlock_dir(&lock_fd);
			return FSD_EXIT_USAGE;
		}
		log_event(LOG_INFO, "encryption at rest is on",
		          LS("master_key_id", keyring_current_id(kr)), NULL);
	} else {
		char keys_dir[600];
		struct stat st;
		snprintf(keys_dir, sizeof(keys_dir), "%s/keys", c.data_dir);
		if (stat(keys_dir, &st) == 0) { /* sealed data needs its keys */
			log_event(LOG_ERROR, "this store is encrypted: give --master-key-file",
			          NULL);
			fprintf(stderr,
			        "fieldsyncd: %s holds encrypted data: give --master-key-file or "
			        "FIELDSYNC_MASTER_KEY\n",
			        c.data_dir);
			reminders_free(&rem);
			store_close(&s);
			store_unlock_dir(&lock_fd);
			return FSD_EXIT_USAGE;
		}
	}
	store_set_keyring(s, kr);
	code = daemon_run(&c, s, rem);
	store_close(&s);
	keyring_close(&kr);
	store_unlock_dir(&lock_fd);
	log_event(code == 0 ? LOG_INFO : LOG_ERROR, "fieldsyncd stopped", LI("exit_code", code),
	          NULL);
	return code;
}
