/*
 * replicas.c with real LMDB in a fresh temporary directory: a row is only
 * raised and bound once; replicas_derive fills the table from stored
 * records (sealed payloads untouched) exactly once, binding a replica to
 * the modified_by of a single-dot sibling (or of a dot named like it) and
 * leaving replicas seen only in multi-dot versions unbound.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fieldsyncd.h"
#include "replicas.h"

#define K1 "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static char *g_dir;
static store *g_s;
static keyring *g_kr;

static void
setup(void)
{
	char err[300];
	log_set_level(LOG_ERROR);
	g_dir = fs_test_tmpdir();
	cr_assert_not_null(g_dir);
	g_s = store_open(g_dir, 1ULL << 24, 1ULL << 26);
	cr_assert_not_null(g_s);
	cr_assert_eq(keyring_open(g_dir, NULL, K1, &g_kr, err, sizeof(err)), FSD_OK, "%s", err);
	store_set_keyring(g_s, g_kr);
}

static void
teardown(void)
{
	store_close(&g_s);
	keyring_close(&g_kr);
	if (g_dir != NULL) {
		fs_test_rm_rf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

TestSuite(replicas, .init = setup, .fini = teardown);

static replica_row
row_of(const char *replica, fsd_err want)
{
	store_txn *t = NULL;
	replica_row r;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(replicas_get(t, replica, &r), want, "%s", replica);
	store_read_end(&t);
	return r;
}

Test(replicas, a_row_is_raised_and_bound_once)
{
	store_txn *t = NULL;
	replica_row r = row_of("ra", FSD_NOTFOUND);
	cr_expect_eq(r.max, 0);
	cr_expect(!r.bound);
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(replicas_note(t, "ra", 3, NULL), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	r = row_of("ra", FSD_OK);
	cr_expect_eq(r.max, 3);
	cr_expect(!r.bound, "no owner given: not bound");

	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(replicas_note(t, "ra", 2, "tab-a"), FSD_OK);
	cr_assert_eq(replicas_note(t, "ra", 1, "tab-b"), FSD_OK);
	cr_assert_eq(replicas_note(t, "ra", 9, ""), FSD_OK);
	cr_assert_eq(replicas_note(t, "", 9, "tab-a"), FSD_INVALID);
	cr_assert_eq(store_commit(&t), FSD_OK);
	r = row_of("ra", FSD_OK);
	cr_expect_eq(r.max, 9, "raised, never lowered");
	cr_expect(r.bound);
	cr_expect_str_eq(r.owner, "tab-a", "the first binding stays");
}

/* A record whose siblings have the given versions and authors. */
static void
put_record(const char *id, size_t n, const char *const *versions, const char *const *by)
{
	store_txn *t = NULL;
	fsp_record rec[4], *sib[4];
	fsp_vv *vv[4];
	fs_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	for (size_t i = 0; i < n; i++) {
		fieldsync__v1__record__init(&rec[i]);
		rec[i].collection = "note";
		rec[i].id = (char *)id;
		rec[i].scope = "team-a";
		rec[i].payload.data = (uint8_t *)"secret";
		rec[i].payload.len = 6;
		rec[i].version = vv[i] = fs_test_vv(versions[i]);
		rec[i].modified_by = (char *)by[i];
		sib[i] = &rec[i];
	}
	rs.collection = "note";
	rs.id = (char *)id;
	rs.scope = "team-a";
	rs.n_siblings = n;
	rs.siblings = sib;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	rs.seq = store_next_seq(t);
	cr_assert_eq(records_put(t, &rs, 0), FSD_OK);
	cr_assert_eq(store_meta_set_u64(t, "replicas_derived", 0), FSD_OK); /* an old store */
	cr_assert_eq(store_commit(&t), FSD_OK);
	for (size_t i = 0; i < n; i++)
		fsp_vv_free(vv[i]);
}

Test(replicas, derive_fills_the_table_once_from_the_stored_records)
{
	const char *v1[] = {"ra:2", "rb:1"}, *b1[] = {"tab-a", "tab-b"};
	const char *v2[] = {"ra:1,rc:4"}, *b2[] = {"tab-c"};
	const char *v3[] = {"dev-x:3,rd:1"}, *b3[] = {"dev-x"}; /* --dev: named by its replica */
	put_record("n1", 2, v1, b1);
	put_record("n2", 1, v2, b2);
	put_record("n3", 1, v3, b3);
	row_of("ra", FSD_NOTFOUND);

	store_txn *t = NULL;
	uint64_t n = 0;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(replicas_derive(t, &n), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	cr_expect_eq(n, 3, "three records read");

	replica_row r = row_of("ra", FSD_OK);
	cr_expect_eq(r.max, 2);
	cr_expect_str_eq(r.owner, "tab-a", "bound by its single-dot sibling");
	r = row_of("rb", FSD_OK);
	cr_expect_str_eq(r.owner, "tab-b");
	r = row_of("rc", FSD_OK);
	cr_expect_eq(r.max, 4);
	cr_expect(!r.bound, "only in a multi-dot version: left unbound");
	r = row_of("dev-x", FSD_OK);
	cr_expect_str_eq(r.owner, "dev-x");
	cr_expect(!row_of("rd", FSD_OK).bound);

	/* once: a second run reads nothing and changes nothing */
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(replicas_note(t, "rc", 7, "tab-z"), FSD_OK);
	cr_assert_eq(replicas_derive(t, &n), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	cr_expect_eq(n, 0);
	cr_expect_str_eq(row_of("rc", FSD_OK).owner, "tab-z");
}
