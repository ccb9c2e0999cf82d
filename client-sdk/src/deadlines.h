/*
 * deadlines.h - deadlines on the tablet, offline (deadlines.c): the public
 * half (fs_deadlines, fs_deadlines_free) is in fieldsync.h; this is the
 * sync's way to keep what Welcome says about deadlines.
 *
 * What the tablet evaluates with lives in the meta table: "dl_rules" (the
 * daemon's effective rule table as JSON text), "dl_zone" (the IANA zone
 * name) and "dl_tzif" (that zone's TZif bytes), all three from the last
 * Welcome that carried them (fields 40-42, docs/protocol.md). Before
 * that, METHOD.md's defaults in Europe/Copenhagen.
 *
 * Layer: operations (over records and the shared core's rules and
 * calendar). Each function runs its own transaction.
 *
 * Threads: an fs_store may be used from several threads at once (db.h).
 */
#ifndef FIELDSYNC_SDK_DEADLINES_H
#define FIELDSYNC_SDK_DEADLINES_H

#include "base.h"

/*
 * Keeps the rule table and zone of a Welcome in the store's meta, in one
 * durable transaction, when it carries them and they load (a table
 * rules_config_load_json accepts, a zone tz_load_tzif accepts, or by name
 * from the tablet's tz database when no bytes came). A Welcome without
 * them (an older daemon) or with ones that do not load changes nothing:
 * FS_OK, since a sync must not fail over deadlines.
 */
fs_err sdk_deadlines_welcome(fs_store *s, const Fieldsync__V1__Welcome *w);

#endif
