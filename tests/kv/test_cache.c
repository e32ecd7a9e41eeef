/* SPDX-License-Identifier: MIT */
/*
 * test_cache.c - unit tests of kv/cache.c, the sharded LRU block cache.
 *
 * What is checked, and how it is observed:
 *   - hits and misses, and the stats counters that count them;
 *   - LRU order: keys of one shard are found by behaviour (with room for one
 *     entry per shard, inserting a key evicts another exactly when they share
 *     a shard), then a shard with room for three is driven by hand;
 *   - the capacity bound under a random workload: once every handle is
 *     released usage <= capacity, and every value is freed exactly once;
 *   - pinned entries outlive eviction (capacity 0) and erase_file;
 *   - a duplicate insert returns the first entry and frees the new value;
 *   - 4 threads look up, insert and release overlapping keys; each value
 *     carries its key and a magic word, checked at every access (run under
 *     TSan too: label "concurrent").
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache.h"
#include "kv_test_util.h"

#define TVAL_MAGIC 0x5ca1ab1e0ddba11ull

struct tval {
	uint64_t file, off, magic;
};

static _Atomic long live_values; /* allocated and not yet freed */

static void tval_free(void *p)
{
	struct tval *v = p;

	assert_int_equal(v->magic, TVAL_MAGIC); /* a double free trips here */
	v->magic = 0;
	free(v);
	atomic_fetch_sub(&live_values, 1);
}

static struct tval *tval_new(uint64_t file, uint64_t off)
{
	struct tval *v = malloc(sizeof(*v));

	assert_non_null(v);
	*v = (struct tval){ file, off, TVAL_MAGIC };
	atomic_fetch_add(&live_values, 1);
	return v;
}

static void check_value(struct kv_cache_handle *h, uint64_t file, uint64_t off)
{
	struct tval *v = kv_cache_value(h);

	assert_int_equal(v->magic, TVAL_MAGIC);
	assert_int_equal(v->file, file);
	assert_int_equal(v->off, off);
}

static struct kv_cache_handle *ins(struct kv_cache *c, uint64_t file, uint64_t off, size_t charge)
{
	struct kv_cache_handle *h =
		kv_cache_insert(c, file, off, tval_new(file, off), charge, tval_free);

	assert_non_null(h);
	check_value(h, file, off);
	return h;
}

static void put(struct kv_cache *c, uint64_t file, uint64_t off, size_t charge)
{
	kv_cache_release(c, ins(c, file, off, charge));
}

/* 1 if (file, off) is cached; a lookup counts as a hit or a miss. */
static int cached(struct kv_cache *c, uint64_t file, uint64_t off)
{
	struct kv_cache_handle *h = kv_cache_lookup(c, file, off);

	if (!h)
		return 0;
	check_value(h, file, off);
	kv_cache_release(c, h);
	return 1;
}

static uint64_t usage(struct kv_cache *c)
{
	struct kv_cache_stats st;

	kv_cache_stats(c, &st);
	return st.usage;
}

static void destroy(struct kv_cache *c)
{
	kv_cache_destroy(c);
	assert_int_equal(atomic_load(&live_values), 0);
}

static void test_hit_miss(void **state)
{
	struct kv_cache_handle *h;
	struct kv_cache_stats st;
	struct kv_cache *c;

	(void)state;
	assert_int_equal(kv_cache_create(1 << 20, &c), 0);
	assert_null(kv_cache_lookup(c, 1, 0));
	put(c, 1, 0, 100);
	h = kv_cache_lookup(c, 1, 0);
	assert_non_null(h);
	check_value(h, 1, 0);
	assert_null(kv_cache_lookup(c, 1, 4096));
	assert_null(kv_cache_lookup(c, 2, 0));
	kv_cache_release(c, h);
	kv_cache_stats(c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.inserts, 1);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.usage, 100);
	assert_int_equal(st.capacity, 1 << 20);
	destroy(c);
}

/* The smallest shard a 16-shard cache has (cache.c, KV_CACHE_SHARD_MIN). */
#define U (256u << 10)

/*
 * Keys (file i, off 0) that share a shard with (file 0, off 0): with U
 * bytes per shard and charge U, inserting a key evicts (0, 0) exactly when it
 * lands in the same shard. Each probe key is erased again afterwards.
 */
static void same_shard_keys(uint64_t *files, int n)
{
	struct kv_cache *c;
	uint64_t f;
	int found = 0;

	assert_int_equal(kv_cache_create(16 * U, &c), 0);
	put(c, 0, 0, U);
	for (f = 1; found < n; f++) {
		assert_true(f < 100000);
		put(c, f, 0, U);
		if (!cached(c, 0, 0)) {
			files[found++] = f;
			put(c, 0, 0, U);
		}
		kv_cache_erase_file(c, f);
	}
	destroy(c);
}

static void test_lru_order(void **state)
{
	struct kv_cache_handle *h;
	struct kv_cache_stats st;
	struct kv_cache *c;
	uint64_t k[6]; /* k[0] = file 0; all in one shard */

	(void)state;
	k[0] = 0;
	same_shard_keys(k + 1, 5);
	/* Room for three entries of charge U in each shard. */
	assert_int_equal(kv_cache_create(3 * 16 * U, &c), 0);
	put(c, k[0], 0, U);
	put(c, k[1], 0, U);
	put(c, k[2], 0, U);
	assert_true(cached(c, k[0], 0)); /* now k1 is the oldest */
	put(c, k[3], 0, U);
	assert_false(cached(c, k[1], 0));
	assert_true(cached(c, k[2], 0)); /* order now: k0 k3 k2 */
	put(c, k[4], 0, U);
	assert_false(cached(c, k[0], 0));
	/* A pinned entry is skipped: k3 is the oldest, but pinned. */
	h = kv_cache_lookup(c, k[3], 0);
	assert_non_null(h);
	put(c, k[5], 0, U); /* over by one; evicts k2, the oldest unpinned */
	assert_false(cached(c, k[2], 0));
	assert_true(cached(c, k[4], 0));
	assert_true(cached(c, k[5], 0));
	kv_cache_release(c, h);
	assert_true(cached(c, k[3], 0));
	kv_cache_stats(c, &st);
	assert_int_equal(st.evictions, 3);
	assert_int_equal(st.usage, 3 * U);
	destroy(c);
}

/* Random inserts of random charges, some pinned for a while: usage may
 * exceed the capacity only by pinned bytes, and not at all once released. */
static void test_capacity_bound(void **state)
{
	enum { NPIN = 8, CAP = 64 << 10 };
	struct kv_cache_handle *pinned[NPIN] = { 0 };
	uint64_t rng = kvt_seed("test_capacity_bound");
	struct kv_cache *c;
	int i, n = 20000 * kvt_scale();

	(void)state;
	assert_int_equal(kv_cache_create(CAP, &c), 0);
	for (i = 0; i < n; i++) {
		uint64_t r = kvt_rand(&rng);
		uint64_t file = r % 7, off = (r >> 8) % 512 * 4096;
		size_t charge = 1 + (size_t)(r >> 20) % 6000;
		struct kv_cache_handle *h = kv_cache_lookup(c, file, off);
		int slot = (int)((r >> 40) % (NPIN * 4));

		if (!h)
			h = ins(c, file, off, charge);
		check_value(h, file, off);
		if (slot < NPIN && !pinned[slot]) {
			pinned[slot] = h;
		} else {
			kv_cache_release(c, h);
		}
		if (slot >= NPIN && slot < 2 * NPIN && pinned[slot - NPIN]) {
			kv_cache_release(c, pinned[slot - NPIN]);
			pinned[slot - NPIN] = NULL;
		}
		if (r % 97 == 0)
			kv_cache_erase_file(c, file);
		/* Over the capacity by at most the pinned charges. */
		assert_true(usage(c) <= CAP + NPIN * 6000);
	}
	for (i = 0; i < NPIN; i++)
		if (pinned[i])
			kv_cache_release(c, pinned[i]);
	assert_true(usage(c) <= CAP);
	destroy(c);
}

static void test_pinned_survive(void **state)
{
	struct kv_cache_handle *a, *b;
	struct kv_cache *c;
	int i;

	(void)state;
	assert_int_equal(kv_cache_create(0, &c), 0); /* keeps nothing unpinned */
	a = ins(c, 1, 0, 4096);
	for (i = 1; i < 100; i++)
		put(c, 1, (uint64_t)i * 4096, 4096);
	assert_int_equal(atomic_load(&live_values), 1);
	b = kv_cache_lookup(c, 1, 0); /* still found while pinned */
	assert_ptr_equal(a, b);
	assert_int_equal(usage(c), 4096);
	kv_cache_release(c, a);
	check_value(b, 1, 0);
	kv_cache_release(c, b);
	assert_int_equal(usage(c), 0);
	assert_int_equal(atomic_load(&live_values), 0);
	assert_false(cached(c, 1, 0));
	destroy(c);
}

static void test_duplicate_insert(void **state)
{
	struct kv_cache_handle *a, *b;
	struct kv_cache_stats st;
	struct tval *v2;
	struct kv_cache *c;

	(void)state;
	assert_int_equal(kv_cache_create(1 << 20, &c), 0);
	a = ins(c, 3, 8192, 10);
	v2 = tval_new(3, 8192);
	b = kv_cache_insert(c, 3, 8192, v2, 10, tval_free);
	assert_ptr_equal(a, b); /* the existing entry, and v2 was freed */
	assert_ptr_not_equal(kv_cache_value(b), v2);
	assert_int_equal(atomic_load(&live_values), 1);
	kv_cache_release(c, a);
	kv_cache_release(c, b);
	/* Also when the existing entry is unpinned (on the LRU list). */
	b = kv_cache_insert(c, 3, 8192, tval_new(3, 8192), 10, tval_free);
	assert_ptr_equal(a, b);
	kv_cache_release(c, b);
	kv_cache_stats(c, &st);
	assert_int_equal(st.inserts, 1);
	assert_int_equal(st.usage, 10);
	assert_int_equal(atomic_load(&live_values), 1);
	destroy(c);
}

static void test_erase_file(void **state)
{
	struct kv_cache_handle *h;
	struct kv_cache *c;
	uint64_t i;

	(void)state;
	assert_int_equal(kv_cache_create(1 << 20, &c), 0);
	for (i = 0; i < 50; i++) {
		put(c, 1, i * 4096, 100);
		put(c, 2, i * 4096, 100);
	}
	h = kv_cache_lookup(c, 1, 7 * 4096);
	assert_non_null(h);
	kv_cache_erase_file(c, 1);
	assert_int_equal(usage(c), 51 * 100); /* file 2 and the pinned block */
	assert_int_equal(atomic_load(&live_values), 51);
	for (i = 0; i < 50; i++) {
		assert_false(cached(c, 1, i * 4096));
		assert_true(cached(c, 2, i * 4096));
	}
	check_value(h, 1, 7 * 4096); /* pinned: still readable */
	/* A fresh insert of the erased key is a new entry. */
	put(c, 1, 7 * 4096, 100);
	assert_true(cached(c, 1, 7 * 4096));
	kv_cache_release(c, h); /* frees the orphan */
	assert_int_equal(usage(c), 51 * 100);
	assert_int_equal(atomic_load(&live_values), 51);
	kv_cache_erase_file(c, 3); /* nothing to do */
	destroy(c);
}

/* ---- concurrency ---------------------------------------------------- */

#define CONC_THREADS 4

struct conc_arg {
	struct kv_cache *c;
	uint64_t seed;
	int ops;
};

static void *conc_worker(void *p)
{
	struct conc_arg *a = p;
	struct kv_cache_handle *held[4] = { 0 };
	uint64_t rng = a->seed;
	int i;

	for (i = 0; i < a->ops; i++) {
		uint64_t r = kvt_rand(&rng);
		uint64_t file = r % 5, off = (r >> 8) % 300 * 4096;
		struct kv_cache_handle *h = kv_cache_lookup(a->c, file, off);
		unsigned slot = (unsigned)(r >> 32) % 8;

		if (!h)
			h = ins(a->c, file, off, 512 + (size_t)(r >> 40) % 1024);
		check_value(h, file, off);
		if (r % 211 == 0)
			kv_cache_erase_file(a->c, file);
		if (slot < 4) { /* hold a few handles across other ops */
			if (held[slot]) {
				check_value(held[slot],
					    ((struct tval *)kv_cache_value(held[slot]))->file,
					    ((struct tval *)kv_cache_value(held[slot]))->off);
				kv_cache_release(a->c, held[slot]);
			}
			held[slot] = h;
		} else {
			kv_cache_release(a->c, h);
		}
	}
	for (i = 0; i < 4; i++)
		if (held[i])
			kv_cache_release(a->c, held[i]);
	return NULL;
}

static void test_concurrent(void **state)
{
	struct conc_arg args[CONC_THREADS];
	pthread_t th[CONC_THREADS];
	uint64_t seed = kvt_seed("test_concurrent");
	struct kv_cache_stats st;
	struct kv_cache *c;
	int i;

	(void)state;
	assert_int_equal(kv_cache_create(256 << 10, &c), 0);
	for (i = 0; i < CONC_THREADS; i++) {
		args[i] = (struct conc_arg){ c, seed + (uint64_t)i * 0x9e3779b97f4a7c15ull,
					     50000 * kvt_scale() };
		assert_int_equal(pthread_create(&th[i], NULL, conc_worker, &args[i]), 0);
	}
	for (i = 0; i < CONC_THREADS; i++)
		pthread_join(th[i], NULL);
	kv_cache_stats(c, &st);
	assert_true(st.usage <= 256 << 10);
	assert_true(st.evictions > 0);
	assert_true(st.hits > 0);
	destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss),	 cmocka_unit_test(test_lru_order),
		cmocka_unit_test(test_capacity_bound),	 cmocka_unit_test(test_pinned_survive),
		cmocka_unit_test(test_duplicate_insert), cmocka_unit_test(test_erase_file),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
