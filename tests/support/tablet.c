/*
 * Test support: an encrypted tablet store from a credential file (see
 * tablet.h). Layer: tests/support; compiled to nothing without the SDK.
 * Contract: no Criterion; errors are returned.
 */
#ifdef FS_TEST_HAVE_SDK
#include <stdio.h>
#include <string.h>

#include "tablet.h"

fs_err
fs_test_tablet(const char *dir, const char *cred_file, uint8_t key_byte, const char *key_id,
               fs_store **out, char *why, size_t why_len)
{
	fs_credential *c = NULL;
	fs_store_opts o;
	uint8_t key[FS_STORE_KEY_LEN];
	*out = NULL;
	fs_err e = fs_credential_load(cred_file, &c, why, why_len);
	if (e != FS_OK)
		return e;
	memset(key, key_byte, sizeof(key));
	memset(&o, 0, sizeof(o));
	o.key = key;
	o.key_len = sizeof(key);
	o.key_id = key_id;
	o.credential = c;
	e = fs_store_create_ex(dir, &o, out);
	if (e != FS_OK)
		snprintf(why, why_len, "create the store %s: %s", dir, fs_strerror(e));
	fs_credential_free(&c);
	return e;
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int fs_test_tablet_unused;
#endif
