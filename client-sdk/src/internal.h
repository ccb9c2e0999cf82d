/*
 * internal.h - libfieldsync's private umbrella header, for the tests only
 * (like nng's nng_impl.h): it includes every module header the tests
 * drive the SDK through. Product files include the module headers they
 * use, never this one. Nothing here is public; every symbol is sdk_… so it
 * cannot collide with the daemon's modules (tests link both).
 *
 * The module headers, low to high (base.h lists the layers):
 *   base.h        clocks, limits, protobuf type names
 *   credential.h  Z85 keys, credential parsing
 *   json.h        version text
 *   db.h          the store's private struct, LMDB primitives, name checks, meta
 *   seal.h        encryption of values: DEKs, sealing through the core
 *   credstore.h   the store's credential
 *   records.h     the table `records`
 *   outbox.h      the table `outbox`
 *   lists.h       lists and status
 *   push.h        change sets in flight
 *   pull.h        applying pulled pages, the checkpoint
 *   conn.h        one DEALER(+CURVE) client connection
 */
#ifndef FIELDSYNC_SDK_INTERNAL_H
#define FIELDSYNC_SDK_INTERNAL_H

#include "base.h"
#include "credential.h"
#include "credstore.h"
#include "json.h"
#include "lists.h"
#include "pull.h"
#include "push.h"

#endif
