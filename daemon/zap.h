/*
 * zap: the CURVE server keys and the ZAP handler, RFC 27 (endpoint layer).
 *
 * Server keys: DATA_DIR/server.key (secret key, Z85, mode 0600) and
 * DATA_DIR/server.pub (public key, Z85). zap_keys_create never overwrites a
 * key; zap_keys_load refuses missing files, a secret key file that group or
 * others may read, a key that is not Z85 and a public key that does not
 * belong to the secret key, and says why in err (operator input).
 *
 * The handler: a thread with a REP socket bound to inproc://zeromq.zap.01
 * in zctx. It admits a CURVE client only when its public key is enrolled
 * and not revoked (looked up in the registry for every handshake) and
 * answers 200 with User-Id = the device name; everything else gets 400, a
 * store error 500 (fail closed). Start it before binding the sockets, stop
 * it after they are closed. zap_start/zap_stop from one thread.
 */
#ifndef FIELDSYNCD_ZAP_H
#define FIELDSYNCD_ZAP_H

#include <stdbool.h>
#include <stddef.h>

#include "registry.h"
#include "store.h"

/* FSD_OK, or an error with a sentence for the operator in err (FSD_EXISTS:
 * the keys are there already). */
fsd_err zap_keys_create(const char *data_dir, char *err, size_t errlen);
fsd_err zap_keys_load(const char *data_dir, char pub[AUTH_Z85_KEY_LEN + 1],
                      char sec[AUTH_Z85_KEY_LEN + 1], char *err, size_t errlen);

typedef struct zap_handler zap_handler;
zap_handler *zap_start(void *zctx, store *s);
void zap_stop(zap_handler **z);

/* CURVE server side and ZAP (domain "fieldsync", enforced) on a server
 * socket with the server's secret key. Every option must take: a socket
 * that would run without them is refused (fail closed): FSD_IO, logged. */
fsd_err zap_secure_socket(void *sock, const char *server_secret);

#endif
