/*
 * Test support: an encrypted libfieldsync store ("a tablet") holding an
 * enrolled device's credential. Layer: tests/support, built only when the
 * SDK (target fieldsync) is (FS_TEST_HAVE_SDK). Contract: no Criterion;
 * failures come back as fs_err with a reason for the test to assert on.
 */
#ifndef FS_TEST_TABLET_H
#define FS_TEST_TABLET_H

#include <stddef.h>
#include <stdint.h>

#include "fieldsync/fieldsync.h"

/* Creates the store at dir, keyed by FS_STORE_KEY_LEN bytes of key_byte
 * under key_id, with the credential read from cred_file, into *out. FS_OK;
 * otherwise the error, with what failed in why. */
fs_err fs_test_tablet(const char *dir, const char *cred_file, uint8_t key_byte, const char *key_id,
                      fs_store **out, char *why, size_t why_len);

#endif
