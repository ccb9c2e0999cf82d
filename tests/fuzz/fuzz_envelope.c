/*
 * libFuzzer target: the sync endpoint's request frame (docs/protocol.md §1-§6).
 *
 * What the sync endpoint does with one untrusted frame, minus the sockets
 * and the store:
 *   1. the daemon's budgeted decoder, wire_decode_envelope() (daemon/wire.c:
 *      the generated unpack under a heap budget; NULL when malformed or
 *      over budget), the very function the sync endpoint calls;
 *   2. for a Push, validate_push() (daemon/validate.c) with the defaults of
 *      config_load(), as a --dev peer (every scope) and as an enrolled
 *      device holding two scopes, and again as --dev with caps a fuzzer's
 *      input can reach (4 changes, 32-byte payloads); each call is held to
 *      its contract in daemon/validate.h: FSD_OK -> no reply; else either
 *      an Error code and a message, or a PushReply with one REJECTED result
 *      per change;
 *   3. for a change set that passes, the writer's merge path
 *      (proto/merge.c, proto/vv.c): each record merged into the sibling set
 *      built from the earlier changes of the same record, with the
 *      invariants of merge.c's design note checked, then join + increment
 *      as the SDK does for a resolving write;
 *   4. every decoded envelope (and every PushReply) is packed again:
 *      get_packed_size() must equal what pack() writes, and decoding the
 *      packed bytes must give the same bytes again.
 * Any violation calls abort(), so libFuzzer records it as a crash.
 * Known findings (fuzz_known.h) are stepped over only with FUZZ_SKIP_KNOWN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/merge.h"
#include "fuzz_known.h"
#include "fieldsyncd.h" /* the tests' umbrella: wire.h, validate.h, config.h, peer.h */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sibling sets larger than this are not grown further: merging is
 * quadratic in it and the point is the rule, not the size. */
#define SIBLINGS_MAX 32

static config g_cfg;
static config g_tight; /* the defaults with caps a small input can reach */
static peer_auth g_dev;  /* --dev: every scope */
static peer_auth g_team; /* an enrolled device with two scopes */

extern char **environ;

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_envelope: %s\n", what);
	abort();
}

/* config_load() with no options and no FIELDSYNC_* environment. */
static void
load_default_config(void)
{
	char name[128];
	char *argv[] = {(char *)"fieldsyncd", NULL};

	for (;;) {
		char **e = environ;
		while (*e != NULL && strncmp(*e, "FIELDSYNC_", 10) != 0)
			e++;
		if (*e == NULL)
			break;
		size_t n = strcspn(*e, "=");
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, *e, n);
		name[n] = '\0';
		if (unsetenv(name) != 0)
			fail("unsetenv");
	}
	if (config_load(&g_cfg, 1, argv) != CONFIG_RUN)
		fail("config_load refused its own defaults");
	g_tight = g_cfg;
	g_tight.max_changes_per_push = 4;
	g_tight.max_payload_bytes = 32;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	load_default_config();

	g_dev.all_scopes = true;
	g_dev.may_sync = true;
	strcpy(g_dev.name, "3f0e9a52-1c1d-4b7e-9a43-3a1c2b9f0d11");

	g_team.may_sync = true;
	strcpy(g_team.name, "tablet-7");
	g_team.n_scopes = 2;
	strcpy(g_team.scopes[0], "team-north");
	strcpy(g_team.scopes[1], "team.south_2");
	return 0;
}

/* pack(e) must write get_packed_size(e) bytes, and pack(unpack(pack(e)))
 * must give those bytes again. */
static void
repack_envelope(const fs_envelope *e)
{
	size_t n = fieldsync__v1__envelope__get_packed_size(e);
	uint8_t *buf = malloc(n ? n : 1);
	if (buf == NULL)
		fail("out of memory");
	if (fieldsync__v1__envelope__pack(e, buf) != n)
		fail("envelope: pack() length differs from get_packed_size()");

	fs_envelope *again = fieldsync__v1__envelope__unpack(NULL, n, buf);
	if (again == NULL)
		fail("envelope: packed bytes do not decode");
	if (again->body_case != e->body_case || again->request_id != e->request_id)
		fail("envelope: re-decoded envelope differs");
	size_t n2 = fieldsync__v1__envelope__get_packed_size(again);
	uint8_t *buf2 = malloc(n2 ? n2 : 1);
	if (buf2 == NULL)
		fail("out of memory");
	if (fieldsync__v1__envelope__pack(again, buf2) != n2)
		fail("envelope: pack() length differs from get_packed_size() (second pass)");
	if (n2 != n || memcmp(buf, buf2, n) != 0)
		fail("envelope: pack(unpack(pack(e))) != pack(e)");
	fieldsync__v1__envelope__free_unpacked(again, NULL);
	free(buf2);
	free(buf);
}

/* What the sync endpoint sends back for a rejected change set (wire.c). */
static void
repack_reply(uint64_t request_id, fs_push_reply *rep)
{
	fs_envelope e;
	fieldsync__v1__envelope__init(&e);
	e.request_id = request_id;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY;
	e.push_reply = rep;
	repack_envelope(&e);
}

/* Merge invariants I1 and I2 of proto/merge.c: pairwise concurrent. */
static void
check_siblings(fsp_record *const *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (fsp_vv_compare(s[i]->version, s[j]->version) != FSP_VV_CONCURRENT)
				fail("merge: two siblings are not concurrent");
}

/* The writer's path for a change set that passed validation: each record
 * is merged into the siblings left by the earlier changes of the same
 * (collection, id). Records point into the decoded request. */
static void
merge_changes(const fs_push_request *p)
{
	fsp_record *set[SIBLINGS_MAX + 1], *out[SIBLINGS_MAX + 1];
	size_t n_set = 0;
	const fsp_record *first = NULL;

	for (size_t i = 0; i < p->n_changes; i++) {
		fsp_record *in = p->changes[i]->record;
		size_t n_out = 0;

		if (first == NULL)
			first = in;
		else if (strcmp(first->collection, in->collection) != 0 ||
		         strcmp(first->id, in->id) != 0)
			continue; /* one record is enough; the rule is per record */
		if (n_set == SIBLINGS_MAX)
			break;
		fsp_merge_status st = fsp_merge(set, n_set, in, out, &n_out);
		if (fsp_merge_status_name(st)[0] == '?')
			fail("merge: unknown status");
		switch (st) {
		case FSP_MERGE_APPLIED:
			if (n_out != 1 || out[0] != in)
				fail("merge: APPLIED must leave the incoming value alone");
			break;
		case FSP_MERGE_CONFLICT:
			if (n_out < 2 || out[n_out - 1] != in)
				fail("merge: CONFLICT must keep the incoming value last");
			break;
		default: /* DUPLICATE, OBSOLETE, INVALID: nothing changes */
			if (n_out != n_set)
				fail("merge: an unchanged set changed size");
			for (size_t k = 0; k < n_out; k++)
				if (out[k] != set[k])
					fail("merge: an unchanged set changed");
			break;
		}
		check_siblings(out, n_out);
		memcpy(set, out, n_out * sizeof(*out));
		n_set = n_out;
	}
	if (n_set == 0)
		return;

	/* A resolving write: join(all siblings) + 1 must dominate each of them. */
	const fsp_vv *vs[SIBLINGS_MAX];
	fsp_vv *join = NULL, *next = NULL;
	for (size_t k = 0; k < n_set; k++)
		vs[k] = set[k]->version;
	if (!fsp_vv_join(vs, n_set, &join))
		fail("fsp_vv_join failed");
	/* Sorted, no zero counter; it may hold more than FSP_DOTS_MAX dots (the
	 * siblings' replicas together), which fsp_vv_check() would refuse. */
	for (size_t k = 0; k < join->n_dots; k++)
		if (join->dots[k]->counter == 0 ||
		    (k > 0 && strcmp(join->dots[k - 1]->replica, join->dots[k]->replica) >= 0))
			fail("fsp_vv_join made an unsorted version or a zero counter");
	for (size_t k = 0; k < n_set; k++) {
		fsp_vv_order o = fsp_vv_compare(join, vs[k]);
		if (o != FSP_VV_DOMINATES && o != FSP_VV_EQUAL)
			fail("join does not cover a sibling");
	}
	if (fsp_vv_increment(join, "fuzz-replica", &next)) {
		for (size_t k = 0; k < n_set; k++)
			if (fsp_vv_compare(next, vs[k]) != FSP_VV_DOMINATES)
				fail("join + 1 does not dominate a sibling");
		fsp_vv_free(next);
	}
	fsp_vv_free(join);
}

/* validate_push() as one peer, checking the contract in its header. */
static bool
validate_as(const fs_envelope *e, const config *cfg, const peer_auth *peer)
{
	const fs_push_request *p = e->push;
	fs_error_code code = FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED;
	fs_push_reply *rep = NULL;
	char msg[256] = "";

	bool ok = validate_push(cfg, peer, p, &code, msg, sizeof(msg), &rep) == FSD_OK;
	if (ok) {
		if (rep != NULL)
			fail("validate_push: true with a reply");
		return true;
	}
	if (rep == NULL) {
		if (code == FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED || msg[0] == '\0')
			fail("validate_push: refused without a code and a message");
		return false;
	}
	if (rep->n_results != p->n_changes || strcmp(rep->changeset_id, p->changeset_id) != 0)
		fail("validate_push: the reply does not answer the request");
	size_t with_code = 0;
	for (size_t i = 0; i < rep->n_results; i++) {
		const fs_change_result *r = rep->results[i];
		if (r->status != FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED || r->reason[0] == '\0')
			fail("validate_push: a result is not REJECTED with a reason");
		with_code += strncmp(r->reason, "not applied", 11) != 0;
	}
	if (with_code != 1)
		fail("validate_push: not exactly one change says why");
	repack_reply(e->request_id, rep);
	validate_reply_free(rep);
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Its memory comes from malloc: freed with the default allocator. */
	fs_envelope *e = wire_decode_envelope(data, size);
	if (e == NULL)
		return 0; /* the daemon answers MALFORMED */
	if (fuzz_known_skip(&e->base)) {
		/* Field 0 somewhere: a push holding it in a record must be refused. */
		if (e->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH && e->push != NULL) {
			bool in_record = false;
			for (size_t i = 0; i < e->push->n_changes; i++)
				if (e->push->changes[i]->record != NULL &&
				    fuzz_has_field0(&e->push->changes[i]->record->base))
					in_record = true;
			if (in_record && validate_as(e, &g_cfg, &g_dev))
				fail("validate_push accepted a record holding field 0");
		}
		fieldsync__v1__envelope__free_unpacked(e, NULL);
		return 0;
	}

	repack_envelope(e);
	if (e->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH) {
		if (e->push == NULL)
			fail("envelope: push case without a push");
		bool dev_ok = validate_as(e, &g_cfg, &g_dev);
		bool team_ok = validate_as(e, &g_cfg, &g_team);
		bool tight_ok = validate_as(e, &g_tight, &g_dev);
		if (team_ok && !dev_ok)
			fail("validate_push: a restricted peer passes where --dev does not");
		if (tight_ok && !dev_ok)
			fail("validate_push: tighter caps pass where the defaults do not");
		if (dev_ok)
			merge_changes(e->push);
	}
	fieldsync__v1__envelope__free_unpacked(e, NULL);
	return 0;
}
