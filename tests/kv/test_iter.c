/* SPDX-License-Identifier: MIT */
/*
 * Iterator and snapshot tests (kv/iter.c) through the public API: order and
 * seek against a sorted model with data spread over the active and immutable
 * memtables, level 0 and deeper levels; versions shadowing each other across
 * those sources; range deletes hiding keys in every source, and one cut
 * into pieces across the tables of a level; snapshots that
 * do not move while the store is written, flushed and compacted; an
 * iterator keeping its files alive across a compaction; and a concurrent
 * test of writers against iterating and snapshot-reading threads.
 *
 * All but the concurrent test run with manual_background = 1, so the
 * sources are exactly what the test built with kv_flush / kv_compact.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "persist_util.h"

/* ---- fixture: the store and a sorted model of it (persist_util.h) ------- */

/* The value of NUL-terminated @k in @m as a string, or NULL. */
static const char *model_has(const struct kvp_model *m, const char *k)
{
	static char buf[256];
	const struct kvp_ment *e = kvp_model_get(m, k, strlen(k));

	if (!e || e->vl >= sizeof(buf))
		return NULL;
	memcpy(buf, e->v, e->vl);
	buf[e->vl] = '\0';
	return buf;
}

struct fx {
	struct kvp_store kv;
	struct kvp_model m; /* what the store holds now */
	uint64_t rs;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || kvp_store_init(&f->kv, "iter", 0)) {
		free(f);
		return -1;
	}
	f->kv.opt.log_buffer_size = 64 << 10;
	f->kv.opt.manual_background = 1;
	f->kv.opt.max_immutable = 16;
	f->kv.opt.table_target_size = 64 << 10; /* several tables per level */
	f->kv.opt.level1_max_bytes = 128 << 10;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	kvp_store_fini(&f->kv);
	kvp_model_free(&f->m);
	free(f);
	return 0;
}

static void put(struct fx *f, const char *k, const char *v)
{
	kvp_ok(&f->kv, kv_put(f->kv.db, NULL, k, strlen(k), v, strlen(v)), "kv_put");
	kvp_model_put(&f->m, k, strlen(k), v, strlen(v));
}

static void del(struct fx *f, const char *k)
{
	kvp_ok(&f->kv, kv_delete(f->kv.db, NULL, k, strlen(k)), "kv_delete");
	kvp_model_del(&f->m, k, strlen(k));
}

static void del_range(struct fx *f, const char *s, const char *e)
{
	kvp_ok(&f->kv, kv_delete_range(f->kv.db, NULL, s, strlen(s), e, strlen(e)),
	       "kv_delete_range");
	kvp_model_del_range(&f->m, s, strlen(s), e, strlen(e));
}

static void expect_get(struct fx *f, const struct kv_snapshot *snap, const char *k, const char *v)
{
	char buf[256];
	ssize_t r = kv_get_at(f->kv.db, snap, k, strlen(k), buf, sizeof(buf));

	if (!v) {
		if (r != -ENOENT)
			fail_msg("%s: want absent, kv_get_at = %zd (%.*s)", k, r,
				 r > 0 ? (int)r : 0, buf);
		return;
	}
	if (r != (ssize_t)strlen(v) || memcmp(buf, v, strlen(v)))
		fail_msg("%s: want \"%s\", kv_get_at = %zd (%.*s)", k, v, r, r > 0 ? (int)r : 0,
			 buf);
}

/*
 * Iterate @snap (NULL = now) from @start (NULL = first) for at most @limit
 * keys (0 = to the end) and compare with @m. Returns the keys seen.
 */
static size_t iter_check(struct fx *f, const struct kv_snapshot *snap, const struct kvp_model *m,
			 const void *start, size_t sl, size_t limit, const char *when)
{
	struct kv_iter *it;
	size_t seen;
	char why[512];

	kvp_ok(&f->kv, kvp_iter_open(f->kv.db, snap, &it), "kv_iter_create");
	if (start)
		kv_iter_seek(it, start, sl);
	else
		kv_iter_seek_first(it);
	if (kvp_iter_compare(it, m, start ? kvp_model_lower(m, start, sl) : 0, limit, &seen, why,
			     sizeof(why)))
		fail_msg("%s: %s; log:\n%s", when, why, f->kv.log.text);
	kvp_iter_close(it);
	return seen;
}

static void full_check(struct fx *f, const char *when)
{
	size_t n = iter_check(f, NULL, &f->m, NULL, 0, 0, when);

	assert_int_equal(n, f->m.n);
	for (size_t i = 0; i < f->m.n; i++) {
		char buf[300];
		ssize_t r = kv_get(f->kv.db, 0, f->m.e[i].k, f->m.e[i].kl, buf, sizeof(buf));

		if (r != (ssize_t)f->m.e[i].vl || memcmp(buf, f->m.e[i].v, f->m.e[i].vl))
			fail_msg("%s: kv_get of key %zu = %zd, want %zu bytes", when, i, r,
				 f->m.e[i].vl);
	}
}

/* ---- 1. order and seek across all sources ---------------------------------- */

/* Keys of 1..12 bytes over a byte alphabet that includes 0x00 and 0xff. */
static size_t rand_key(uint64_t *rs, uint8_t *k)
{
	static const uint8_t sym[] = { 0x00, 0x01, 'a', 'b', 'c', 'm', 'z', 0x7f, 0x80, 0xff };
	size_t kl = 1 + kvt_rand(rs) % 12;

	for (size_t i = 0; i < kl; i++)
		k[i] = sym[kvt_rand(rs) % sizeof(sym)];
	return kl;
}

/* @n random writes in batch mode, then kv_sync (plain reads and kv_flush see
 * committed writes only). */
static void rand_ops(struct fx *f, unsigned n, unsigned round)
{
	struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	uint8_t k[16], e[16], v[200] = { 0 };

	for (unsigned i = 0; i < n; i++) {
		size_t kl = rand_key(&f->rs, k), vl;
		unsigned r = (unsigned)(kvt_rand(&f->rs) % 100);

		/* Half the overwrites and deletes aim at keys that exist. */
		if (f->m.n && (r % 2) && (r >= 60 || r < 20)) {
			const struct kvp_ment *me = &f->m.e[kvt_rand(&f->rs) % f->m.n];

			memcpy(k, me->k, me->kl);
			kl = me->kl;
		}
		if (r < 80) {
			vl = (size_t)snprintf((char *)v, sizeof(v), "r%u.%u:", round, i);
			vl += kvt_rand(&f->rs) % 150;
			memset(v + 16, (int)(round + i), vl > 16 ? vl - 16 : 0);
			kvp_ok(&f->kv, kv_put(f->kv.db, &wo, k, kl, v, vl), "kv_put");
			kvp_model_put(&f->m, k, kl, v, vl);
		} else if (r < 99) {
			kvp_ok(&f->kv, kv_delete(f->kv.db, &wo, k, kl), "kv_delete");
			kvp_model_del(&f->m, k, kl);
		} else {
			/* A range over a 2..4 byte prefix of the key: [p, p+1). */
			size_t pl = 2 + kvt_rand(&f->rs) % 3;

			if (pl > kl || k[pl - 1] == 0xff)
				continue;
			memcpy(e, k, pl);
			e[pl - 1]++;
			kvp_ok(&f->kv, kv_delete_range(f->kv.db, &wo, k, pl, e, pl), "delrange");
			kvp_model_del_range(&f->m, k, pl, e, pl);
		}
	}
	kvp_ok(&f->kv, kv_sync(f->kv.db), "kv_sync");
}

static void seek_checks(struct fx *f, int n, const char *when)
{
	uint8_t k[16];

	for (int i = 0; i < n; i++) {
		size_t kl = rand_key(&f->rs, k);

		iter_check(f, NULL, &f->m, k, kl, 1 + kvt_rand(&f->rs) % 30, when);
	}
	/* Past the end, and before the first key. */
	iter_check(f, NULL, &f->m, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 13, 0,
		   when);
	iter_check(f, NULL, &f->m, "\x00", 1, 5, when);
}

static void test_order_and_seek(void **state)
{
	struct fx *f = *state;
	struct kv_stats st;
	char when[64];
	int rounds = 4 * kvt_scale();

	f->rs = kvt_seed("iter_order_and_seek");
	kvp_open(&f->kv);
	for (int r = 0; r < rounds; r++) {
		/* Deepest level, then two level-0 generations, then several
		 * memtables (immutable ones included), checked at each step. */
		rand_ops(f, 1500, (unsigned)r * 10);
		kvp_compact(&f->kv);
		rand_ops(f, 600, (unsigned)r * 10 + 1);
		kvp_flush(&f->kv);
		rand_ops(f, 600, (unsigned)r * 10 + 2);
		kvp_flush(&f->kv);
		rand_ops(f, 1200, (unsigned)r * 10 + 3);
		assert_int_equal(kv_stats(f->kv.db, &st), 0);
		if (r == 0)
			print_message(
				"[ INFO     ] memtables %llu, L0 %llu, L1 %llu, L2 %llu tables, "
				"%zu keys\n",
				(unsigned long long)st.memtables,
				(unsigned long long)st.level_tables[0],
				(unsigned long long)st.level_tables[1],
				(unsigned long long)st.level_tables[2], f->m.n);
		assert_true(st.memtables >= 2);
		assert_true(st.level_tables[0] >= 2);
		snprintf(when, sizeof(when), "round %d, all sources", r);
		full_check(f, when);
		seek_checks(f, 100, when);
	}
	kvp_close(&f->kv);
	kvp_open(&f->kv);
	full_check(f, "reopened");
	seek_checks(f, 50, "reopened");
}

/* ---- 2. shadowing -------------------------------------------------------- */

static void test_shadowing(void **state)
{
	struct fx *f = *state;

	kvp_open(&f->kv);
	/* Deepest level: a..e v1. */
	put(f, "a", "a1");
	put(f, "b", "b1");
	put(f, "c", "c1");
	put(f, "d", "d1");
	put(f, "e", "e1");
	kvp_compact(&f->kv);
	/* Level 0 (older): b v2, c deleted, f new. */
	put(f, "b", "b2");
	del(f, "c");
	put(f, "f", "f2");
	kvp_flush(&f->kv);
	/* Level 0 (newer): c v3 (back), d deleted, b v3. */
	put(f, "c", "c3");
	del(f, "d");
	put(f, "b", "b3");
	kvp_flush(&f->kv);
	/* Memtable: a deleted, e v4, d v4 (back), f deleted, g new. */
	del(f, "a");
	put(f, "e", "e4");
	put(f, "d", "d4");
	del(f, "f");
	put(f, "g", "g4");
	/* Same key rewritten in one memtable. */
	put(f, "h", "h1");
	put(f, "h", "h2");
	del(f, "h");
	put(f, "h", "h3");

	expect_get(f, NULL, "a", NULL);
	expect_get(f, NULL, "b", "b3");
	expect_get(f, NULL, "c", "c3");
	expect_get(f, NULL, "d", "d4");
	expect_get(f, NULL, "e", "e4");
	expect_get(f, NULL, "f", NULL);
	expect_get(f, NULL, "g", "g4");
	expect_get(f, NULL, "h", "h3");
	full_check(f, "four sources");
	iter_check(f, NULL, &f->m, "c", 1, 0, "seek c");
	iter_check(f, NULL, &f->m, "a", 1, 0, "seek a (deleted)");
	iter_check(f, NULL, &f->m, "f", 1, 0, "seek f (deleted)");
	iter_check(f, NULL, &f->m, "bb", 2, 0, "seek bb");
	kvp_flush(&f->kv);
	full_check(f, "three level-0 tables over the deepest level");
	kvp_compact(&f->kv);
	full_check(f, "compacted");
	kvp_close(&f->kv);
	kvp_open(&f->kv);
	full_check(f, "reopened");
}

/* ---- 3. range deletes over every source -------------------------------------- */

static void put_run(struct fx *f, const char *prefix, int from, int to, const char *tag)
{
	char k[32], v[128];

	for (int i = from; i < to; i++) {
		snprintf(k, sizeof(k), "%s%04d", prefix, i);
		snprintf(v, sizeof(v), "%s-%s%04d", tag, prefix, i);
		put(f, k, v);
	}
}

static void test_range_delete_sources(void **state)
{
	struct fx *f = *state;
	struct kv_snapshot *before;
	struct kvp_model at_before;

	kvp_open(&f->kv);
	put_run(f, "k", 0, 1000, "deep");
	kvp_compact(&f->kv);
	put_run(f, "k", 500, 1500, "l0");
	kvp_flush(&f->kv);
	put_run(f, "k", 900, 2000, "mem");
	kvp_ok(&f->kv, kvp_snap_take(f->kv.db, &before), "kv_snapshot_create");
	kvp_model_copy(&at_before, &f->m);
	/* One range delete across all three sources, one inside the deep
	 * level only, one with an end that is not a key, one empty. */
	del_range(f, "k0300", "k1800");
	del_range(f, "k0010", "k0020");
	del_range(f, "k1900x", "k1950x");
	del_range(f, "k5000", "k6000");
	full_check(f, "range deletes in the memtable");
	expect_get(f, NULL, "k0300", NULL);
	expect_get(f, NULL, "k1799", NULL);
	expect_get(f, NULL, "k1800", "mem-k1800");
	expect_get(f, NULL, "k0299", "deep-k0299");
	expect_get(f, NULL, "k1900", "mem-k1900");
	expect_get(f, NULL, "k1901", NULL);
	iter_check(f, NULL, &f->m, "k0299", 5, 3, "seek to the edge of a range delete");
	iter_check(f, NULL, &f->m, "k0500", 5, 3, "seek into a range delete");
	/* Later puts into the range are visible, in every source. */
	put_run(f, "k", 1000, 1010, "again");
	full_check(f, "puts after the range delete");
	kvp_flush(&f->kv);
	put_run(f, "k", 1010, 1020, "again2");
	full_check(f, "range delete in level 0");
	kvp_compact(&f->kv);
	full_check(f, "range delete compacted");
	/* The snapshot from before the range deletes still sees everything. */
	iter_check(f, before, &at_before, NULL, 0, 0, "snapshot before range deletes");
	expect_get(f, before, "k0300", "deep-k0300");
	expect_get(f, before, "k0600", "l0-k0600");
	expect_get(f, before, "k1000", "mem-k1000");
	kvp_snap_drop(f->kv.db, before);
	kvp_model_free(&at_before);
	kvp_compact(&f->kv);
	full_check(f, "compacted without the snapshot");
	kvp_close(&f->kv);
	kvp_open(&f->kv);
	full_check(f, "reopened");
}

/* A range delete over many tables of a level: kept by a compaction (a
 * snapshot needs what it hides), so it is cut into pieces, one per output
 * table; reads now and at the snapshot, seeks into it everywhere. */
static void test_range_delete_clipped(void **state)
{
	struct fx *f = *state;
	struct kv_snapshot *snap;
	struct kvp_model at_snap;
	struct kv_stats st;
	char k[32];

	kvp_open(&f->kv);
	put_run(f, "r", 0, 6000, "v-with-some-padding-to-make-tables-bigger-0123456789");
	kvp_compact(&f->kv);
	kvp_ok(&f->kv, kvp_snap_take(f->kv.db, &snap), "kv_snapshot_create");
	kvp_model_copy(&at_snap, &f->m);
	del_range(f, "r1000", "r5000");
	put_run(f, "r", 2500, 2510, "back");
	kvp_compact(&f->kv);
	assert_int_equal(kv_stats(f->kv.db, &st), 0);
	print_message("[ INFO     ] tables per level: %llu %llu %llu\n",
		      (unsigned long long)st.level_tables[0],
		      (unsigned long long)st.level_tables[1],
		      (unsigned long long)st.level_tables[2]);
	assert_true(st.level_tables[1] + st.level_tables[2] >= 4);
	full_check(f, "range delete kept for a snapshot");
	iter_check(f, snap, &at_snap, NULL, 0, 0, "the snapshot under a clipped range delete");
	for (int i = 0; i < 6000; i += 97) {
		snprintf(k, sizeof(k), "r%04d", i);
		iter_check(f, NULL, &f->m, k, strlen(k), 5, "seek now");
		iter_check(f, snap, &at_snap, k, strlen(k), 5, "seek at the snapshot");
		expect_get(f, NULL, k, model_has(&f->m, k));
	}
	kvp_snap_drop(f->kv.db, snap);
	kvp_close(&f->kv);
	kvp_open(&f->kv);
	full_check(f, "reopened");
	kvp_compact(&f->kv);
	full_check(f, "reopened, compacted without the snapshot");
	kvp_model_free(&at_snap);
}

/* ---- 4. snapshots -------------------------------------------------------- */

static void test_snapshot_stable(void **state)
{
	struct fx *f = *state;
	struct kv_snapshot *s[3];
	struct kvp_model at[3];
	struct kv_stats st;

	f->rs = kvt_seed("iter_snapshot_stable");
	kvp_open(&f->kv);
	rand_ops(f, 1500, 0);
	kvp_flush(&f->kv);
	rand_ops(f, 500, 1);
	for (int i = 0; i < 3; i++) {
		kvp_ok(&f->kv, kvp_snap_take(f->kv.db, &s[i]), "kv_snapshot_create");
		kvp_model_copy(&at[i], &f->m);
		rand_ops(f, 800, 2 + (unsigned)i);
		if (i == 1)
			kvp_flush(&f->kv);
	}
	for (int i = 0; i < 3; i++)
		iter_check(f, s[i], &at[i], NULL, 0, 0, "snapshot, written after");
	kvp_flush(&f->kv);
	for (int i = 0; i < 3; i++)
		iter_check(f, s[i], &at[i], NULL, 0, 0, "snapshot, flushed after");
	kvp_compact(&f->kv);
	assert_int_equal(kv_stats(f->kv.db, &st), 0);
	assert_int_equal(st.snapshots, 3);
	for (int i = 0; i < 3; i++) {
		char when[64];

		snprintf(when, sizeof(when), "snapshot %d, compacted after", i);
		iter_check(f, s[i], &at[i], NULL, 0, 0, when);
		for (size_t j = 0; j < at[i].n; j += 7) {
			char buf[256];
			ssize_t r = kv_get_at(f->kv.db, s[i], at[i].e[j].k, at[i].e[j].kl, buf,
					      sizeof(buf));

			if (r != (ssize_t)at[i].e[j].vl || memcmp(buf, at[i].e[j].v, at[i].e[j].vl))
				fail_msg("%s: kv_get_at of model key %zu = %zd, want %zu", when, j,
					 r, at[i].e[j].vl);
		}
	}
	/* Release the middle one, compact, the others still hold. */
	kvp_snap_drop(f->kv.db, s[1]);
	rand_ops(f, 500, 9);
	kvp_compact(&f->kv);
	iter_check(f, s[0], &at[0], NULL, 0, 0, "snapshot 0 after another compaction");
	iter_check(f, s[2], &at[2], NULL, 0, 0, "snapshot 2 after another compaction");
	full_check(f, "now");
	kvp_snap_drop(f->kv.db, s[0]);
	kvp_snap_drop(f->kv.db, s[2]);
	for (int i = 0; i < 3; i++)
		kvp_model_free(&at[i]);
	assert_int_equal(kv_stats(f->kv.db, &st), 0);
	assert_int_equal(st.snapshots, 0);
}

/* ---- 5. an iterator keeps its files alive ------------------------------------ */

static void test_iter_holds_files(void **state)
{
	struct fx *f = *state;
	struct kv_iter *it1, *it2;
	struct kvp_model frozen;
	size_t i = 0, half;

	f->rs = kvt_seed("iter_holds_files");
	kvp_open(&f->kv);
	rand_ops(f, 2000, 0);
	kvp_flush(&f->kv);
	rand_ops(f, 1000, 1);
	kvp_flush(&f->kv);
	rand_ops(f, 300, 2);
	kvp_model_copy(&frozen, &f->m);

	/* it1 is created and not positioned before the compaction; it2 is
	 * half way through. */
	kvp_ok(&f->kv, kvp_iter_open(f->kv.db, NULL, &it1), "kv_iter_create");
	kvp_ok(&f->kv, kvp_iter_open(f->kv.db, NULL, &it2), "kv_iter_create");
	kv_iter_seek_first(it2);
	half = frozen.n / 2;
	for (i = 0; i < half && kv_iter_valid(it2); i++)
		kv_iter_next(it2);
	assert_int_equal(i, half);

	rand_ops(f, 1000, 3); /* overwrites and deletes after the iterators */
	kvp_compact(&f->kv);
	rand_ops(f, 500, 4);
	kvp_compact(&f->kv);

	for (int pass = 0; pass < 2; pass++) {
		struct kv_iter *it = pass ? it2 : it1;

		i = pass ? half : 0;
		if (!pass)
			kv_iter_seek_first(it);
		for (; kv_iter_valid(it); kv_iter_next(it), i++) {
			size_t kl, vl;
			const void *k = kv_iter_key(it, &kl);
			const void *v = kv_iter_value(it, &vl);

			assert_true(i < frozen.n);
			if (kvp_key_cmp(k, kl, frozen.e[i].k, frozen.e[i].kl) ||
			    vl != frozen.e[i].vl || memcmp(v, frozen.e[i].v, vl))
				fail_msg(
					"iterator %d, key %zu differs from its view after compactions",
					pass + 1, i);
		}
		if (kv_iter_status(it))
			fail_msg("iterator %d: status %d; log:\n%s", pass + 1, kv_iter_status(it),
				 f->kv.log.text);
		assert_int_equal(i, frozen.n);
		/* Seeking again over the old view works too. */
		if (frozen.n) {
			kv_iter_seek(it, frozen.e[frozen.n / 3].k, frozen.e[frozen.n / 3].kl);
			assert_true(kv_iter_valid(it));
			kv_iter_key(it, &i);
			assert_int_equal(i, frozen.e[frozen.n / 3].kl);
		}
	}
	kvp_iter_close(it1);
	kvp_iter_close(it2);
	kvp_model_free(&frozen);
	full_check(f, "after the iterators are gone");
	kvp_close(&f->kv);
	kvp_open(&f->kv);
	full_check(f, "reopened");
}

/* ---- 6. concurrent writers, iterators and snapshot readers ------------------ */

/*
 * PAIRS pairs of keys "p%04u/a" and "p%04u/b". Pair i belongs to writer
 * i % WRITERS, which writes both keys in one batch with the same value
 * "w<writer>:<pair>:<seq>:<check>", seq increasing per writer, or deletes
 * both in one batch (a delete or a range delete ["p%04u/", "p%04u0")).
 * Readers check that each view is sorted, has no duplicate, that every value
 * parses and names its own pair, that both keys of a pair are equal (both
 * present with one value, or both absent), that a later view never shows an
 * older seq of a pair than an earlier view did, and that kv_get_at at a
 * snapshot agrees with an iterator at the same snapshot. One thread flushes
 * and compacts now and then while automatic background work also runs.
 */
#define PAIRS 64u
#define WRITERS 2
#define READERS 2

struct conc {
	struct fx *f;
	atomic_int writers_left;
	atomic_int stop;
	unsigned ops; /* batches per writer */
	/* per reader: the highest seq seen per pair (0: none yet) */
	char err[512];
	pthread_mutex_t mu;
};

struct conc_thread {
	struct conc *c;
	int id;
	uint64_t rs;
	uint64_t iters, keys, snaps;
	uint64_t seen[PAIRS];
};

static void conc_fail(struct conc *c, const char *msg, const char *detail)
{
	pthread_mutex_lock(&c->mu);
	if (!c->err[0])
		snprintf(c->err, sizeof(c->err), "%s: %s", msg, detail);
	pthread_mutex_unlock(&c->mu);
	atomic_store(&c->stop, 1);
}

static size_t pair_key(char *k, unsigned p, char ab)
{
	return (size_t)sprintf(k, "p%04u/%c", p, ab);
}

static size_t pair_val(char *v, int w, unsigned p, uint64_t seq)
{
	unsigned check = (unsigned)((p * 2654435761u) ^ (unsigned)seq ^ (unsigned)w) % 9973;

	return (size_t)sprintf(v, "w%d:%u:%llu:%u", w, p, (unsigned long long)seq, check);
}

/* 0 and the seq if @v is a well-formed value of pair @p. */
static int pair_parse(const void *v, size_t vl, unsigned p, uint64_t *seq)
{
	char buf[64], want[64];
	int w;
	unsigned pp;
	unsigned long long s;

	if (vl == 0 || vl >= sizeof(buf))
		return -1;
	memcpy(buf, v, vl);
	buf[vl] = '\0';
	if (sscanf(buf, "w%d:%u:%llu:", &w, &pp, &s) != 3 || pp != p)
		return -1;
	if (pair_val(want, w, p, s) != vl || memcmp(want, buf, vl))
		return -1;
	*seq = s;
	return 0;
}

static void *conc_writer(void *arg)
{
	struct conc_thread *t = arg;
	struct conc *c = t->c;
	struct kv_batch *b;
	uint64_t seq = 1; /* the initial values have seq 1; 0 means absent */
	char k1[32], k2[32], v[64], got[64];

	if (kv_batch_create(&b)) {
		conc_fail(c, "writer", "kv_batch_create");
		goto out;
	}
	for (unsigned i = 0; i < c->ops && !atomic_load(&c->stop); i++) {
		unsigned p = (unsigned)(kvt_rand(&t->rs) % (PAIRS / WRITERS)) * WRITERS +
			     (unsigned)t->id;
		unsigned r = (unsigned)(kvt_rand(&t->rs) % 10);
		size_t vl = 0;
		int err;

		seq++;
		kv_batch_clear(b);
		if (r < 8) {
			vl = pair_val(v, t->id, p, seq);
			kv_batch_put(b, k1, pair_key(k1, p, 'a'), v, vl);
			kv_batch_put(b, k2, pair_key(k2, p, 'b'), v, vl);
		} else if (r == 8) {
			kv_batch_delete(b, k1, pair_key(k1, p, 'a'));
			kv_batch_delete(b, k2, pair_key(k2, p, 'b'));
		} else {
			size_t l1 = (size_t)sprintf(k1, "p%04u/", p);
			size_t l2 = (size_t)sprintf(k2, "p%04u0", p);

			kv_batch_delete_range(b, k1, l1, k2, l2);
			pair_key(k1, p, 'a');
		}
		err = kv_write(c->f->kv.db, NULL, b);
		if (err) {
			snprintf(got, sizeof(got), "kv_write = %d", err);
			conc_fail(c, "writer", got);
			break;
		}
		/* Read your own (sync) write: nobody else writes pair p. */
		{
			ssize_t n = kv_get(c->f->kv.db, 0, k1, strlen(k1), got, sizeof(got));

			if (vl ? (n != (ssize_t)vl || memcmp(got, v, vl)) : n != -ENOENT) {
				char d[160];

				snprintf(d, sizeof(d), "%s after its write: kv_get = %zd, want %s",
					 k1, n, vl ? v : "absent");
				conc_fail(c, "writer", d);
				break;
			}
		}
	}
	kv_batch_destroy(b);
out:
	atomic_fetch_sub(&c->writers_left, 1);
	return NULL;
}

/* One view: an iterator at @snap (or now). Checks order, pairs, monotony. */
static void conc_view(struct conc_thread *t, const struct kv_snapshot *snap)
{
	struct conc *c = t->c;
	struct kv_iter *it;
	char prev[64] = "", d[256];
	size_t prevl = 0;
	int have_prev = 0;
	/* per pair: seq seen for a and b (0 = absent) */
	uint64_t sa[PAIRS] = { 0 }, sb[PAIRS] = { 0 };

	if (kv_iter_create(c->f->kv.db, snap, &it)) {
		conc_fail(c, "reader", "kv_iter_create");
		return;
	}
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
		size_t kl, vl;
		const char *k = kv_iter_key(it, &kl);
		const void *v = kv_iter_value(it, &vl);
		unsigned p;
		char ab, kbuf[16];
		uint64_t seq;

		if (have_prev && kvp_key_cmp(prev, prevl, k, kl) >= 0) {
			snprintf(d, sizeof(d), "%.*s after %.*s", (int)kl, k, (int)prevl, prev);
			conc_fail(c, "iterator order", d);
			break;
		}
		if (kl == 7) {
			memcpy(kbuf, k, kl);
			kbuf[kl] = '\0';
		}
		if (kl != 7 || sscanf(kbuf, "p%4u/%c", &p, &ab) != 2 || p >= PAIRS ||
		    (ab != 'a' && ab != 'b') || pair_parse(v, vl, p, &seq)) {
			snprintf(d, sizeof(d), "key %.*s value %.*s", (int)kl, k,
				 (int)(vl < 60 ? vl : 60), (const char *)v);
			conc_fail(c, "iterator: malformed", d);
			break;
		}
		memcpy(prev, k, kl);
		prevl = kl;
		have_prev = 1;
		(ab == 'a' ? sa : sb)[p] = seq;
		t->keys++;

		if (snap && (t->keys & 15) == 0) {
			/* kv_get_at at the same snapshot agrees. */
			char got[64];
			ssize_t n = kv_get_at(c->f->kv.db, snap, k, kl, got, sizeof(got));

			if (n != (ssize_t)vl || memcmp(got, v, vl)) {
				snprintf(d, sizeof(d), "%.*s: iterator %.*s, kv_get_at %zd",
					 (int)kl, k, (int)vl, (const char *)v, n);
				conc_fail(c, "snapshot get vs iterator", d);
				break;
			}
		}
	}
	if (kv_iter_status(it)) {
		snprintf(d, sizeof(d), "%d", kv_iter_status(it));
		conc_fail(c, "kv_iter_status", d);
	}
	kv_iter_destroy(it);
	for (unsigned p = 0; p < PAIRS && !atomic_load(&c->stop); p++) {
		if (sa[p] != sb[p]) {
			snprintf(d, sizeof(d), "pair %u: a at seq %llu, b at seq %llu (0 = absent)",
				 p, (unsigned long long)sa[p], (unsigned long long)sb[p]);
			conc_fail(c, "torn batch", d);
		}
		if (sa[p] && sa[p] < t->seen[p]) {
			snprintf(d, sizeof(d), "pair %u: seq %llu after seq %llu was seen", p,
				 (unsigned long long)sa[p], (unsigned long long)t->seen[p]);
			conc_fail(c, "view went back in time", d);
		}
		if (sa[p] > t->seen[p])
			t->seen[p] = sa[p];
	}
	t->iters++;
}

static void *conc_reader(void *arg)
{
	struct conc_thread *t = arg;
	struct conc *c = t->c;

	while (atomic_load(&c->writers_left) > 0 && !atomic_load(&c->stop)) {
		struct kv_snapshot *snap = NULL;

		if (kvt_rand(&t->rs) % 2) {
			if (kv_snapshot_create(c->f->kv.db, &snap)) {
				conc_fail(c, "reader", "kv_snapshot_create");
				break;
			}
			t->snaps++;
		}
		conc_view(t, snap);
		if (snap) {
			/* The same snapshot, read again after more writes, is
			 * checked for pairs through gets. */
			for (unsigned p = 0; p < PAIRS && !atomic_load(&c->stop); p += 5) {
				char ka[16], kb[16], va[64], vb[64];
				ssize_t na = kv_get_at(c->f->kv.db, snap, ka, pair_key(ka, p, 'a'),
						       va, sizeof(va));
				ssize_t nb = kv_get_at(c->f->kv.db, snap, kb, pair_key(kb, p, 'b'),
						       vb, sizeof(vb));

				if (na != nb || (na > 0 && memcmp(va, vb, (size_t)na))) {
					char d[200];

					snprintf(d, sizeof(d), "pair %u: a %zd %.*s, b %zd %.*s", p,
						 na, na > 0 ? (int)na : 0, va, nb,
						 nb > 0 ? (int)nb : 0, vb);
					conc_fail(c, "torn batch at a snapshot (kv_get_at)", d);
				}
			}
			kv_snapshot_release(c->f->kv.db, snap);
		}
	}
	return NULL;
}

static void *conc_maint(void *arg)
{
	struct conc_thread *t = arg;
	struct conc *c = t->c;
	unsigned n = 0;

	while (atomic_load(&c->writers_left) > 0 && !atomic_load(&c->stop)) {
		int err = n++ % 4 == 3 ? kv_compact(c->f->kv.db) : kv_flush(c->f->kv.db);

		if (err) {
			char d[32];

			snprintf(d, sizeof(d), "%d", err);
			conc_fail(c, "kv_flush/kv_compact", d);
		}
		t->iters++;
		usleep(2000); /* pacing only: leave the CPUs to the others */
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct fx *f = *state;
	struct conc c = { .f = f, .ops = 1500 * (unsigned)kvt_scale() };
	struct conc_thread th[WRITERS + READERS + 1];
	pthread_t tid[WRITERS + READERS + 1];
	uint64_t seed = kvt_seed("iter_concurrent");
	struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	struct kv_stats st;
	int nt = WRITERS + READERS + 1;

	f->kv.opt.manual_background = 0;
	f->kv.opt.max_immutable = 2;
	kvp_open(&f->kv);
	/* Start with every pair present, in a table. */
	for (unsigned p = 0; p < PAIRS; p++) {
		char k[16], v[64];
		size_t vl = pair_val(v, (int)(p % WRITERS), p, 1);

		assert_int_equal(kv_put(f->kv.db, &wo, k, pair_key(k, p, 'a'), v, vl), 0);
		assert_int_equal(kv_put(f->kv.db, &wo, k, pair_key(k, p, 'b'), v, vl), 0);
	}
	assert_int_equal(kv_sync(f->kv.db), 0);
	assert_int_equal(kv_flush(f->kv.db), 0);
	pthread_mutex_init(&c.mu, NULL);
	atomic_init(&c.writers_left, WRITERS);
	atomic_init(&c.stop, 0);
	for (int i = 0; i < nt; i++) {
		void *(*fn)(void *) = i < WRITERS	    ? conc_writer :
				      i < WRITERS + READERS ? conc_reader :
							      conc_maint;

		th[i] = (struct conc_thread){ .c = &c, .id = i, .rs = seed + (uint64_t)i * 7919 };
		assert_int_equal(pthread_create(&tid[i], NULL, fn, &th[i]), 0);
	}
	for (int i = 0; i < nt; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&c.mu);
	assert_int_equal(kv_stats(f->kv.db, &st), 0);
	print_message("[ INFO     ] readers: %llu + %llu views (%llu at snapshots), %llu keys; "
		      "%llu maintenance calls; %llu flushes, %llu compactions\n",
		      (unsigned long long)th[WRITERS].iters,
		      (unsigned long long)th[WRITERS + 1].iters,
		      (unsigned long long)(th[WRITERS].snaps + th[WRITERS + 1].snaps),
		      (unsigned long long)(th[WRITERS].keys + th[WRITERS + 1].keys),
		      (unsigned long long)th[nt - 1].iters, (unsigned long long)st.flushes,
		      (unsigned long long)st.compactions);
	if (c.err[0])
		fail_msg("seed %llu: %s; log:\n%s", (unsigned long long)seed, c.err,
			 f->kv.log.text);
	assert_int_equal(st.bg_error, 0);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.snapshots, 0);
	/* A final single-threaded view. */
	th[WRITERS].c = &c;
	conc_view(&th[WRITERS], NULL);
	if (c.err[0])
		fail_msg("seed %llu: final view: %s", (unsigned long long)seed, c.err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_and_seek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shadowing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_delete_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_delete_clipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iter_holds_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
