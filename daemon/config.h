/*
 * config: the daemon's configuration (infrastructure layer).
 *
 * config_load() fills a config from defaults, then the INI file, then
 * FIELDSYNC_* environment, then argv; every value is checked there and a
 * bad one is reported as a sentence for the operator. A config is written
 * once at start-up (or into a fresh copy on SIGHUP) and read-only after:
 * any thread may read it.
 */
#ifndef FIELDSYNCD_CONFIG_H
#define FIELDSYNCD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define FIELDSYNCD_VERSION "0.1.0"
#define FIELDSYNC_PROTOCOL 1 /* the wire protocol version (PROTOCOL.md) */

typedef struct config {
	char data_dir[512];
	char sync_endpoint[256];
	char reminder_endpoint[256];
	char ops_listen[256];
	bool dev;
	uint64_t map_size;          /* initial LMDB map size, bytes */
	uint64_t map_size_max;      /* the map never grows past this */
	uint64_t max_message_bytes; /* ZMQ_MAXMSGSIZE */
	uint32_t max_changes_per_push;
	uint64_t max_payload_bytes;
	uint32_t pull_limit_max;
	uint64_t replies_kept;     /* stored change-set replies */
	uint32_t batch_max_jobs;   /* change sets per group commit */
	char time_zone[128];       /* IANA zone of the deadline arithmetic */
	char rules_file[512];      /* JSON rule table; "" = METHOD.md's defaults */
	char master_key_file[512]; /* encryption at rest; "" = FIELDSYNC_MASTER_KEY or none */
	char config_file[512];     /* the INI file read, "" for none */
	uint64_t min_free_bytes;   /* readiness needs this much free disk */
	uint32_t max_siblings;     /* siblings per record (PROTOCOL.md §3 caps) */
	uint64_t max_record_bytes; /* bytes per record over its siblings */
	int argc;                  /* what config_load read, for a reload (SIGHUP) */
	char **argv;
	uint32_t at_risk_days;   /* a device silent, or holding an unpushed edit, this long */
	int64_t clock_offset_ms; /* testing aid: shifts the daemon's clock */
	int log_level;           /* LOG_DEBUG .. LOG_ERROR */

	/* the ops HTTP limits (ops_http.h) and the event retention (events.h) */
	uint32_t ops_max_connections;   /* ops HTTP: connections in all */
	uint32_t ops_per_ip;            /* ops HTTP: connections from one address */
	uint32_t ops_idle_timeout_s;    /* ops HTTP: an idle connection is closed after this */
	uint32_t event_retention_days;  /* reminder events older are trimmed; 0 = no age limit */
	uint64_t event_retention_count; /* at most this many events kept; 0 = no count limit */
	uint64_t push_quota_bytes;      /* per device and minute; 0: no quota */
	uint64_t push_quota_changesets; /* per device and minute; 0: no quota */
	uint64_t max_page_bytes;        /* no pull page is larger (<= FSP_PAGE_BYTES_MAX) */
	uint64_t peer_queue_max_bytes;  /* unread reply bytes per connection (issue 11) */
} config;

typedef enum {
	CONFIG_RUN = 0, /* start the daemon */
	CONFIG_EXIT_OK, /* --help or --version was printed */
	CONFIG_EXIT_ERR /* bad option; the message was printed */
} config_action;

/* Fills *c from defaults, then the INI file, then FIELDSYNC_* environment,
 * then argv. */
config_action config_load(config *c, int argc, char **argv);
/* Prints the effective configuration as INI, secrets redacted. */
void config_print(const config *c, FILE *f);

#endif
