/*
 * fieldsyncd.h: the umbrella header for tests and tools (like nng's
 * nng_impl.h). Product files include the module headers they use.
 *
 * (actor.h and writer.h are left out: only the endpoints use them.)
 *
 * Layers, low to high (a file includes its own layer or lower):
 *   1 infra      err, clock, log, config, metrics, actor, sys
 *   2 storage    store, keyring
 *   3 data       records, replies, caseindex, registry, audit, events,
 *                reminder_rows, schema
 *   4 logic      peer, validate, changeset, reminders, purge, feed
 *   5 wire       wire
 *   6 endpoints  writer, sync_endpoint, reminder_endpoint, ops_http, zap
 *   7 daemon     daemon (daemon_run.h); admin/ (the subcommands, own target)
 *   8 main       main.c
 */
#ifndef FIELDSYNCD_H
#define FIELDSYNCD_H

#include "audit.h"
#include "caseindex.h"
#include "changeset.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "events.h"
#include "feed.h"
#include "keyring.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "purge.h"
#include "records.h"
#include "registry.h"
#include "reminder_rows.h"
#include "reminders.h"
#include "replies.h"
#include "schema.h"
#include "store.h"
#include "sys.h"
#include "validate.h"
#include "wire.h"
#include "zap.h"

#endif
