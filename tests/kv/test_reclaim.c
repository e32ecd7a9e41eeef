/* SPDX-License-Identifier: MIT */
/*
 * Reclaiming what range tombstones hide (compact.c, "Reclaiming"): keys
 * compacted into a deep level are deleted with one range tombstone, and
 * their tables' bytes must go away without the store ever growing again:
 *   - with automatic background work: no kv_flush or kv_compact after the
 *     delete; the tombstone sits in the active memtable, so the compaction
 *     thread must flush it and push it down. Polled (bounded): the table
 *     bytes must fall below a threshold before a generous cap;
 *   - with manual_background: one kv_compact does it;
 *   - a snapshot taken before the delete keeps every deleted key readable
 *     through compactions; once released, the bytes go;
 *   - a delete of the middle of the range drops only that part;
 *   - many range tombstones in the memtables (the lookup's sets, rebuilt as
 *     they grow and freed after a grace period): two writers delete keys
 *     one range at a time while two readers get keys and check that every
 *     key deleted before the get began is gone and no other is, while the
 *     main thread flushes now and then (concurrent: run under TSan too).
 * Every case checks the reads (gets of deleted and kept keys, a full scan),
 * and that the compaction bytes read to reclaim are a fraction of the bytes
 * reclaimed: tables the tombstone hides entirely are dropped unread.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kv.h"
#include "persist_util.h"

#define NKEYS 6000u
#define VLEN 1000u
#define POLL_CAP_S 120 /* generous: the work takes well under a second */

static const struct kv_write_options batch_wo = { .durability = KV_DUR_BATCH };

static int setup(void **state)
{
	struct kvp_store *s = calloc(1, sizeof(*s));

	if (!s || kvp_store_init(s, "reclaim", 0)) {
		free(s);
		return -1;
	}
	s->opt.table_target_size = 64 << 10;
	s->opt.level1_max_bytes = 256 << 10;
	*state = s;
	return 0;
}

static size_t key_of(char *k, unsigned i)
{
	return (size_t)snprintf(k, 32, "key%08u", i);
}

static void put_keys(struct kvp_store *s)
{
	uint8_t val[VLEN];
	struct kv_batch *b;
	char k[32];

	assert_int_equal(kv_batch_create(&b), 0);
	for (unsigned i = 0; i < NKEYS; i++) {
		size_t kl = key_of(k, i);

		kvp_value(val, VLEN, i, "v%u", i);
		assert_int_equal(kv_batch_put(b, k, kl, val, VLEN), 0);
		if (i % 40 == 39 || i == NKEYS - 1) {
			kvp_ok(s, kv_write(s->db, &batch_wo, b), "kv_write");
			kv_batch_clear(b);
		}
	}
	kv_batch_destroy(b);
}

static void fill(struct kvp_store *s)
{
	put_keys(s);
	/* Everything into the deepest level in use. */
	kvp_compact(s);
}

static uint64_t table_bytes(struct kvp_store *s, uint64_t *read)
{
	struct kv_stats st;

	kvp_stats(s, &st);
	if (read)
		*read = st.compact_read_bytes;
	return kvp_table_bytes(&st);
}

static void delete_keys(struct kvp_store *s, unsigned from, unsigned to)
{
	char a[32], z[32];
	size_t al = key_of(a, from), zl = key_of(z, to);

	kvp_ok(s, kv_delete_range(s->db, &batch_wo, a, al, z, zl), "kv_delete_range");
	kvp_ok(s, kv_sync(s->db), "kv_sync");
}

/* Keys [from, to) are gone, the others there with their values. */
static void check_reads(struct kvp_store *s, const struct kv_snapshot *snap, unsigned from,
			unsigned to)
{
	uint8_t want[VLEN], got[VLEN];
	struct kv_iter *it;
	unsigned next = 0;
	char k[32];

	for (unsigned i = 0; i < NKEYS; i += 7) {
		size_t kl = key_of(k, i);
		ssize_t n = snap ? kv_get_at(s->db, snap, k, kl, got, sizeof(got)) :
				   kv_get(s->db, 0, k, kl, got, sizeof(got));

		if (i >= from && i < to) {
			if (n != -ENOENT)
				fail_msg("%s: deleted, but get returned %zd", k, n);
			continue;
		}
		kvp_value(want, VLEN, i, "v%u", i);
		if (n != VLEN || memcmp(got, want, VLEN))
			fail_msg("%s: get returned %zd or a wrong value", k, n);
	}
	kvp_ok(s, kv_iter_create(s->db, snap, &it), "kv_iter_create");
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
		size_t kl;
		const void *key = kv_iter_key(it, &kl);

		if (next == from)
			next = to;
		key_of(k, next);
		if (kl != strlen(k) || memcmp(key, k, kl))
			fail_msg("scan: key %.*s where %s was expected", (int)kl, (const char *)key,
				 k);
		next++;
	}
	kvp_ok(s, kv_iter_status(it), "kv_iter_status");
	kv_iter_destroy(it);
	if (next == from)
		next = to;
	assert_int_equal(next, NKEYS);
}

/* Poll until the table bytes are at most @limit; fail after POLL_CAP_S. */
static uint64_t wait_bytes(struct kvp_store *s, uint64_t limit)
{
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	time_t stop = time(NULL) + POLL_CAP_S;
	uint64_t b;

	while ((b = table_bytes(s, NULL)) > limit) {
		if (time(NULL) > stop)
			fail_msg("table bytes still %" PRIu64 " > %" PRIu64 " after %d s", b, limit,
				 POLL_CAP_S);
		nanosleep(&nap, NULL);
	}
	return b;
}

/* Automatic background work: nothing but the delete is asked for. */
static void test_background_all(void **state)
{
	struct kvp_store *s = *state;
	uint64_t before, after, read0, read1;

	kvp_open(s);
	fill(s);
	before = table_bytes(s, &read0);
	assert_true(before > NKEYS * (uint64_t)VLEN / 2);
	delete_keys(s, 0, NKEYS);
	after = wait_bytes(s, before / 50);
	table_bytes(s, &read1);
	print_message("tables %" PRIu64 " -> %" PRIu64 " bytes, compactions read %" PRIu64 "\n",
		      before, after, read1 - read0);
	/* Whole tables were dropped unread. */
	assert_true(read1 - read0 < before / 2);
	check_reads(s, NULL, 0, NKEYS);
	kvp_reopen(s);
	check_reads(s, NULL, 0, NKEYS);
	assert_true(table_bytes(s, NULL) <= before / 50);
}

/* A middle part: only its bytes go, the keys around it stay. */
static void test_background_middle(void **state)
{
	struct kvp_store *s = *state;
	uint64_t before, after;

	kvp_open(s);
	fill(s);
	before = table_bytes(s, NULL);
	delete_keys(s, NKEYS / 4, NKEYS / 4 * 3);
	/* Half the data is deleted: at most 60% of the bytes may stay. */
	after = wait_bytes(s, before / 10 * 6);
	print_message("tables %" PRIu64 " -> %" PRIu64 " bytes\n", before, after);
	assert_true(after >= before / 4);
	check_reads(s, NULL, NKEYS / 4, NKEYS / 4 * 3);
	kvp_reopen(s);
	check_reads(s, NULL, NKEYS / 4, NKEYS / 4 * 3);
}

/* manual_background: no work until kv_compact, which does all of it. */
static void test_manual(void **state)
{
	struct kvp_store *s = *state;
	uint64_t before, after, read0, read1;

	s->opt.manual_background = 1;
	kvp_open(s);
	fill(s);
	before = table_bytes(s, &read0);
	delete_keys(s, 0, NKEYS);
	check_reads(s, NULL, 0, NKEYS);
	assert_int_equal(table_bytes(s, NULL), before);
	kvp_compact(s);
	after = table_bytes(s, &read1);
	print_message("tables %" PRIu64 " -> %" PRIu64 " bytes, compaction read %" PRIu64 "\n",
		      before, after, read1 - read0);
	assert_true(after <= before / 50);
	assert_true(read1 - read0 < before / 2);
	check_reads(s, NULL, 0, NKEYS);
}

/* A snapshot older than the tombstone keeps the data it sees. */
static void test_snapshot(void **state)
{
	struct kvp_store *s = *state;
	struct kv_snapshot *snap;
	uint64_t before;

	s->opt.manual_background = 1;
	kvp_open(s);
	fill(s);
	before = table_bytes(s, NULL);
	kvp_ok(s, kvp_snap_take(s->db, &snap), "kv_snapshot_create");
	delete_keys(s, 0, NKEYS);
	kvp_compact(s);
	assert_true(table_bytes(s, NULL) > before / 2);
	check_reads(s, snap, 0, 0);
	check_reads(s, NULL, 0, NKEYS);
	kvp_compact(s);
	check_reads(s, snap, 0, 0);
	kvp_snap_drop(s->db, snap);
	kvp_compact(s);
	assert_true(table_bytes(s, NULL) <= before / 50);
	check_reads(s, NULL, 0, NKEYS);
}

#define CONC_KEYS 6000u
#define CONC_DELETED 4000u /* keys below are deleted, one range each */

struct conc {
	struct kv_db *db;
	_Atomic unsigned done[2]; /* writer w deleted keys 2k + w, k < done[w] */
	_Atomic int writers, errors;
	_Atomic long gets;
};

struct conc_arg {
	struct conc *c;
	unsigned id;
};

static void *conc_writer(void *arg)
{
	struct conc_arg *a = arg;
	struct conc *c = a->c;

	for (unsigned k = 0; 2 * k + a->id < CONC_DELETED; k++) {
		char s[32], e[32];
		size_t sl = key_of(s, 2 * k + a->id), el = key_of(e, 2 * k + a->id + 1);

		if (kv_delete_range(c->db, &batch_wo, s, sl, e, el)) {
			atomic_fetch_add(&c->errors, 1);
			break;
		}
		atomic_store_explicit(&c->done[a->id], k + 1, memory_order_release);
	}
	atomic_fetch_sub(&c->writers, 1);
	return NULL;
}

static void *conc_reader(void *arg)
{
	struct conc_arg *a = arg;
	struct conc *c = a->c;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (a->id + 1);
	uint8_t buf[VLEN];

	while (atomic_load(&c->writers) > 0) {
		unsigned i = (unsigned)(kvt_rand(&rng) % CONC_KEYS);
		unsigned done = atomic_load_explicit(&c->done[i & 1], memory_order_acquire);
		char k[32];
		size_t kl = key_of(k, i);
		ssize_t n = kv_get(c->db, KV_READ_LATEST, k, kl, buf, sizeof(buf));

		atomic_fetch_add_explicit(&c->gets, 1, memory_order_relaxed);
		if (i < CONC_DELETED && i / 2 < done ? n != -ENOENT :
						       i >= CONC_DELETED && n != VLEN) {
			fprintf(stderr, "%s: get returned %zd (writer %u done %u)\n", k, n, i & 1,
				done);
			atomic_fetch_add(&c->errors, 1);
		}
	}
	return NULL;
}

static void test_concurrent_tombstones(void **state)
{
	struct kvp_store *s = *state;
	struct timespec nap = { 0, 30 * 1000 * 1000 };
	struct conc c = { 0 };
	struct conc_arg args[4];
	pthread_t thr[4];

	s->opt.log_buffer_size = 4 << 20;
	s->opt.durability = KV_DUR_BATCH;
	kvp_open(s);
	put_keys(s);
	kvp_flush(s);
	c.db = s->db;
	atomic_store(&c.writers, 2);
	for (unsigned t = 0; t < 4; t++) {
		args[t] = (struct conc_arg){ &c, t & 1 };
		assert_int_equal(pthread_create(&thr[t], NULL, t < 2 ? conc_writer : conc_reader,
						&args[t]),
				 0);
	}
	while (atomic_load(&c.writers) > 0) {
		nanosleep(&nap, NULL);
		kvp_flush(s);
	}
	for (unsigned t = 0; t < 4; t++)
		pthread_join(thr[t], NULL);
	print_message("%ld gets\n", atomic_load(&c.gets));
	assert_int_equal(atomic_load(&c.errors), 0);
	kvp_ok(s, kv_sync(s->db), "kv_sync");
	check_reads(s, NULL, 0, CONC_DELETED); /* CONC_KEYS == NKEYS */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_background_all, setup, kvp_store_teardown),
		cmocka_unit_test_setup_teardown(test_background_middle, setup, kvp_store_teardown),
		cmocka_unit_test_setup_teardown(test_manual, setup, kvp_store_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup, kvp_store_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_tombstones, setup,
						kvp_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
