/* SPDX-License-Identifier: MIT */
/*
 * Persistence tests (kv/flush.c, kv/compact.c, kv/version.c) through the
 * public API only: memtables flushed to tables and WAL segments deleted,
 * values of every size through every layer, deletes and range deletes
 * surviving flush, compaction and reopen, compaction leaving one level and
 * giving space back (and keeping it while a snapshot needs the data), the
 * stats of the persistence layer (counters, amplification, the block
 * cache, including a small one), and automatic background flush and
 * compaction keeping memory bounded, with stalls but no failed write.
 *
 * Most tests run with manual_background = 1 so that the shape of the store
 * (which data is in which memtable, level-0 table or deeper level) is
 * decided by the test's kv_flush / kv_compact calls alone. They raise
 * max_immutable so that writing several log buffers without a flush cannot
 * stall (nothing would ever flush them).
 *
 * Keys are "k%08u"; a key's value is a deterministic function of (key
 * number, version), so any read can be checked without keeping values.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "persist_util.h"

#define BIG_VALUE (200u << 10) /* largest value test_value_sizes writes */

/* ---- fixture ------------------------------------------------------------ */

struct fx {
	struct kvp_store kv;
	uint8_t *want, *got; /* BIG_VALUE + 1 bytes each */
	int *ver;	     /* a test's model: version of each key, -1 absent */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || kvp_store_init(&f->kv, "persist", 0)) {
		free(f);
		return -1;
	}
	f->kv.opt.manual_background = 1;
	f->kv.opt.max_immutable = 16;
	f->want = malloc(BIG_VALUE + 1);
	f->got = malloc(BIG_VALUE + 1);
	if (!f->want || !f->got)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	kvp_store_fini(&f->kv);
	free(f->want);
	free(f->got);
	free(f->ver);
	free(f);
	return 0;
}

/* Number of levels that hold tables; *deepest = the deepest of them. */
static int levels_used(const struct kv_stats *st, int *deepest)
{
	int n = 0;

	*deepest = -1;
	for (int l = 0; l < KV_MAX_LEVELS; l++) {
		if (st->level_tables[l]) {
			n++;
			*deepest = l;
		}
		if (!st->level_tables[l] != !st->level_bytes[l])
			fail_msg("level %d: %llu tables but %llu bytes", l,
				 (unsigned long long)st->level_tables[l],
				 (unsigned long long)st->level_bytes[l]);
	}
	return n;
}

static void print_shape(const char *what, const struct kv_stats *st)
{
	char buf[256];
	int n = 0;

	for (int l = 0; l < KV_MAX_LEVELS; l++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, " L%d:%llu/%lluK", l,
			      (unsigned long long)st->level_tables[l],
			      (unsigned long long)(st->level_bytes[l] >> 10));
	print_message("[ INFO     ] %s:%s mem %llu wal %llu flushes %llu compactions %llu "
		      "wamp %.2f samp %.2f stalls %llu\n",
		      what, buf, (unsigned long long)st->memtables,
		      (unsigned long long)st->wal_segments, (unsigned long long)st->flushes,
		      (unsigned long long)st->compactions, st->write_amp, st->space_amp,
		      (unsigned long long)st->stalls);
}

/* ---- keys and values ---------------------------------------------------- */

static size_t key_of(unsigned i, char *key)
{
	return (size_t)sprintf(key, "k%08u", i);
}

/* The value of key @i at version @ver: @len bytes, header then filler. */
static size_t val_fill(unsigned i, unsigned ver, size_t len, uint8_t *buf)
{
	return kvp_value(buf, len, ((uint64_t)i << 32) ^ ver, "%u.%u:", i, ver);
}

/* A value of 16..16+@spread-1 bytes for (i, ver). */
static size_t val_of(unsigned i, unsigned ver, size_t spread, uint8_t *buf)
{
	return val_fill(i, ver, 16 + kvp_mix(i * 31u + ver) % spread, buf);
}

static void put_val(struct fx *f, const void *key, size_t klen, const void *val, size_t vlen)
{
	int err = kv_put(f->kv.db, NULL, key, klen, val, vlen);

	if (err)
		fail_msg("kv_put(%.*s, %zu bytes) = %d (%s); log:\n%s",
			 (int)(klen < 40 ? klen : 40), (const char *)key, vlen, err, strerror(-err),
			 f->kv.log.text);
}

static void put_key(struct fx *f, unsigned i, unsigned ver, size_t spread)
{
	char key[16];
	size_t klen = key_of(i, key);

	put_val(f, key, klen, f->want, val_of(i, ver, spread, f->want));
}

/* @key holds @val (NULL: is absent). */
static void expect_val(struct fx *f, const void *key, size_t klen, const void *val, size_t vlen,
		       const char *when)
{
	ssize_t r = kv_get(f->kv.db, 0, key, klen, f->got, BIG_VALUE + 1);
	int kl = (int)(klen < 40 ? klen : 40);

	if (!val) {
		if (r != -ENOENT)
			fail_msg("%s: %.*s should be absent, kv_get = %zd", when, kl,
				 (const char *)key, r);
		return;
	}
	if (r < 0)
		fail_msg("%s: %.*s: kv_get = %zd (%s), want %zu bytes", when, kl, (const char *)key,
			 r, strerror((int)-r), vlen);
	if ((size_t)r != vlen || memcmp(f->got, val, vlen))
		fail_msg("%s: %.*s: kv_get = %zd bytes (\"%.12s\"), want %zu (\"%.12s\")", when, kl,
			 (const char *)key, r, (const char *)f->got, vlen, (const char *)val);
}

/* Key @i is at version @ver (ver < 0: absent). */
static void expect_key(struct fx *f, unsigned i, int ver, size_t spread, const char *when)
{
	char key[16];
	size_t klen = key_of(i, key);

	if (ver < 0) {
		expect_val(f, key, klen, NULL, 0, when);
		return;
	}
	expect_val(f, key, klen, f->want, val_of(i, (unsigned)ver, spread, f->want), when);
}

/* Every key of @ver[0..n) by kv_get, then by one full iteration (which must
 * return exactly the present keys, in order). */
static void expect_all(struct fx *f, const int *ver, unsigned n, size_t spread, const char *when)
{
	struct kv_iter *it;
	unsigned i = 0, seen = 0;
	int err;

	for (unsigned k = 0; k < n; k++)
		expect_key(f, k, ver[k], spread, when);

	err = kvp_iter_open(f->kv.db, NULL, &it);
	if (err)
		fail_msg("%s: kv_iter_create = %d", when, err);
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
		size_t klen, vlen;
		const char *key = kv_iter_key(it, &klen);
		const uint8_t *val = kv_iter_value(it, &vlen);
		char want[16];
		size_t wl;

		while (i < n && ver[i] < 0)
			i++;
		if (i == n)
			fail_msg("%s: iterator returns %.*s past the last key", when, (int)klen,
				 key);
		wl = key_of(i, want);
		if (klen != wl || memcmp(key, want, wl))
			fail_msg("%s: iterator returns %.*s, want %s", when, (int)klen, key, want);
		wl = val_of(i, (unsigned)ver[i], spread, f->want);
		if (vlen != wl || memcmp(val, f->want, wl))
			fail_msg("%s: iterator: %s has %zu bytes, want %zu of version %d", when,
				 want, vlen, wl, ver[i]);
		i++;
		seen++;
	}
	assert_int_equal(kv_iter_status(it), 0);
	kvp_iter_close(it);
	while (i < n && ver[i] < 0)
		i++;
	if (i != n)
		fail_msg("%s: iterator ended after %u keys, key %u is missing", when, seen, i);
}

/* ---- 1. flush and reopen ------------------------------------------------ */

static void test_flush_reopen(void **state)
{
	struct fx *f = *state;
	unsigned n = 2000, spread = 400;
	int *ver = f->ver = calloc(n, sizeof(*ver));
	struct kv_stats st0, st1, st2;
	unsigned files0, files1;

	f->kv.opt.log_buffer_size = 64 << 10;
	kvp_open(&f->kv);
	for (unsigned i = 0; i < n / 2; i++)
		put_key(f, i, 0, spread);
	for (unsigned i = n / 2; i < n; i++)
		ver[i] = -1;
	kvp_stats(&f->kv, &st0);
	files0 = kvp_count_files(f->kv.dir, "wal-", ".log");
	print_shape("before flush", &st0);
	assert_true(st0.memtables >= 3); /* ~220 KiB in 64 KiB buffers */
	assert_true(files0 >= 3);
	assert_int_equal(kvp_table_count(&st0), 0);
	assert_int_equal(st0.flushes, 0);
	expect_all(f, ver, n, spread, "in memtables");

	kvp_flush(&f->kv);
	kvp_stats(&f->kv, &st1);
	files1 = kvp_count_files(f->kv.dir, "wal-", ".log");
	print_shape("after flush", &st1);
	print_message("[ INFO     ] wal files %u -> %u\n", files0, files1);
	assert_int_equal(st1.memtables, 1);
	assert_true(st1.wal_segments <= 2);
	assert_true(files1 <= 2); /* the active segment and perhaps a spare */
	assert_true(st1.level_tables[0] >= 1);
	assert_true(st1.flushes >= 1);
	assert_true(st1.flush_bytes > 0);
	assert_true(st1.write_amp >= 1.0);
	assert_true(st1.space_amp >= 1.0);
	assert_int_equal(st1.compactions, 0); /* manual: nothing compacts unasked */
	expect_all(f, ver, n, spread, "after the first flush");

	/* Second half plus overwrites of a quarter of the first, into a second
	 * set of memtables, then a second flush: two generations in level 0. */
	for (unsigned i = n / 2; i < n; i++) {
		ver[i] = 0;
		put_key(f, i, 0, spread);
	}
	for (unsigned i = 0; i < n / 2; i += 4) {
		ver[i] = 1;
		put_key(f, i, 1, spread);
	}
	expect_all(f, ver, n, spread, "memtables over level 0");
	kvp_flush(&f->kv);
	kvp_stats(&f->kv, &st2);
	print_shape("after the second flush", &st2);
	assert_true(st2.level_tables[0] > st1.level_tables[0]);
	assert_true(st2.flushes > st1.flushes);
	assert_int_equal(st2.memtables, 1);
	assert_true(kvp_count_files(f->kv.dir, "wal-", ".log") <= 2);
	expect_all(f, ver, n, spread, "after the second flush");

	/* A flush with nothing to flush adds no table. */
	kvp_flush(&f->kv);
	kvp_stats(&f->kv, &st1);
	assert_int_equal(st1.level_tables[0], st2.level_tables[0]);

	kvp_reopen(&f->kv);
	kvp_stats(&f->kv, &st1);
	print_shape("after reopen", &st1);
	assert_int_equal(st1.level_tables[0], st2.level_tables[0]);
	assert_int_equal(st1.level_bytes[0], st2.level_bytes[0]);
	expect_all(f, ver, n, spread, "after reopen");

	/* Unflushed writes on top of tables come back from the WAL. */
	for (unsigned i = 0; i < n; i += 3) {
		ver[i] = 2;
		put_key(f, i, 2, spread);
	}
	kvp_reopen(&f->kv);
	expect_all(f, ver, n, spread, "tables + WAL after reopen");
	kvp_flush(&f->kv);
	kvp_reopen(&f->kv);
	expect_all(f, ver, n, spread, "after a third flush and reopen");
}

/* ---- 2. values of every size -------------------------------------------- */

static const size_t value_sizes[] = {
	0,     1,     2,     7,	    8,	   9,	  15,	  16,	  17,	  100,	  255,
	256,   257,   1000,  4095,  4096,  4097,  8191,	  8192,	  8193,	  16383,  16384,
	16385, 32768, 65535, 65536, 65537, 99999, 131072, 150001, 204799, 204800,
};
#define NSIZES (sizeof(value_sizes) / sizeof(value_sizes[0]))

/* Key j of the size test: lengths 1..KV_MAX_KEY, ordered by j. */
static size_t size_key(unsigned j, uint8_t *key)
{
	static const size_t klens[] = { 1, 2, 9, 100, 1000, 4096 };
	size_t klen = klens[j % 6];

	memset(key, 'a' + (int)(j / 6 % 26), klen);
	if (klen > 1)
		key[1] = (uint8_t)('A' + j % 6);
	if (klen > 2)
		key[2] = (uint8_t)j;
	return klen;
}

static void check_sizes(struct fx *f, unsigned gen, const char *when)
{
	uint8_t key[KV_MAX_KEY];
	struct kv_iter *it;
	unsigned j = 0;

	for (unsigned s = 0; s < NSIZES; s++) {
		size_t klen = size_key(s, key);
		/* Generation 1 rewrote the sizes in reverse. */
		size_t len = value_sizes[gen ? NSIZES - 1 - s : s];
		uint8_t small[8];
		void *val;
		size_t vlen;

		val_fill(s, gen, len, f->want);
		expect_val(f, key, klen, f->want, len, when);
		/* A short buffer gets the full length and a prefix. */
		assert_int_equal(kv_get(f->kv.db, 0, key, klen, small, sizeof(small)),
				 (ssize_t)len);
		assert_memory_equal(small, f->want, len < 8 ? len : 8);
		assert_int_equal(kv_get_alloc(f->kv.db, 0, key, klen, &val, &vlen), 0);
		assert_int_equal(vlen, len);
		if (len)
			assert_memory_equal(val, f->want, len);
		free(val);
	}

	/* Iteration gives the same, in key order: size_key orders keys by
	 * their first byte, then the second, which sort like j. */
	assert_int_equal(kvp_iter_open(f->kv.db, NULL, &it), 0);
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it), j++) {
		size_t klen, vlen, wl;
		const void *k = kv_iter_key(it, &klen);
		const void *v = kv_iter_value(it, &vlen);

		assert_true(j < NSIZES);
		wl = size_key(j, key);
		assert_int_equal(klen, wl);
		assert_memory_equal(k, key, wl);
		wl = value_sizes[gen ? NSIZES - 1 - j : j];
		val_fill(j, gen, wl, f->want);
		if (vlen != wl || (wl && memcmp(v, f->want, wl)))
			fail_msg("%s: iterator value %u: %zu bytes, want %zu", when, j, vlen, wl);
	}
	assert_int_equal(kv_iter_status(it), 0);
	kvp_iter_close(it);
	assert_int_equal(j, NSIZES);
}

static void test_value_sizes(void **state)
{
	struct fx *f = *state;
	uint8_t key[KV_MAX_KEY];

	f->kv.opt.log_buffer_size = 1 << 20; /* values up to 256 KiB */
	kvp_open(&f->kv);
	for (unsigned s = 0; s < NSIZES; s++) {
		size_t klen = size_key(s, key);

		put_val(f, key, klen, f->want, val_fill(s, 0, value_sizes[s], f->want));
	}
	check_sizes(f, 0, "memtable");
	kvp_flush(&f->kv);
	check_sizes(f, 0, "level 0");
	kvp_compact(&f->kv);
	check_sizes(f, 0, "compacted");
	kvp_reopen(&f->kv);
	check_sizes(f, 0, "reopened");

	/* Generation 1 (sizes reversed) over generation 0 in a deeper level. */
	for (unsigned s = 0; s < NSIZES; s++) {
		size_t klen = size_key(s, key);

		put_val(f, key, klen, f->want,
			val_fill(s, 1, value_sizes[NSIZES - 1 - s], f->want));
	}
	check_sizes(f, 1, "generation 1 in memtables");
	kvp_reopen(&f->kv);
	check_sizes(f, 1, "generation 1 from the WAL");
	kvp_flush(&f->kv);
	check_sizes(f, 1, "generation 1 in level 0");
	kvp_compact(&f->kv);
	check_sizes(f, 1, "generation 1 compacted");
	kvp_reopen(&f->kv);
	check_sizes(f, 1, "generation 1 reopened");
}

/* ---- 3. deletes and range deletes --------------------------------------- */

static void del_key(struct fx *f, int *ver, unsigned i)
{
	char key[16];

	assert_int_equal(kv_delete(f->kv.db, NULL, key, key_of(i, key)), 0);
	ver[i] = -1;
}

static void del_range(struct fx *f, int *ver, unsigned a, unsigned b)
{
	char ka[16], kb[16];
	size_t la = key_of(a, ka), lb = key_of(b, kb);
	int err = kv_delete_range(f->kv.db, NULL, ka, la, kb, lb);

	if (err)
		fail_msg("kv_delete_range(%s, %s) = %d", ka, kb, err);
	for (unsigned i = a; i < b; i++)
		ver[i] = -1;
}

static void test_deletes_persist(void **state)
{
	struct fx *f = *state;
	unsigned n = 3000, spread = 100;
	int *ver = f->ver = calloc(n, sizeof(*ver));
	struct kv_batch *b;
	char k1[16], k2[16];

	f->kv.opt.log_buffer_size = 64 << 10;
	kvp_open(&f->kv);
	for (unsigned i = 0; i < n; i++)
		put_key(f, i, 0, spread);
	kvp_flush(&f->kv);

	/* Point and range deletes in the memtable over level 0. */
	for (unsigned i = 0; i < n; i += 7)
		del_key(f, ver, i);
	del_range(f, ver, 1000, 1500);
	expect_all(f, ver, n, spread, "deletes in the memtable");
	/* Keys put again inside the deleted range are visible. */
	for (unsigned i = 1100; i < 1110; i++) {
		ver[i] = 1;
		put_key(f, i, 1, spread);
	}
	expect_all(f, ver, n, spread, "puts after a range delete");
	kvp_reopen(&f->kv);
	expect_all(f, ver, n, spread, "deletes replayed from the WAL");
	kvp_flush(&f->kv);
	expect_all(f, ver, n, spread, "deletes in level 0");
	kvp_compact(&f->kv);
	expect_all(f, ver, n, spread, "deletes compacted");
	kvp_reopen(&f->kv);
	expect_all(f, ver, n, spread, "compacted, reopened");

	/* A range delete in level 0 over the deeper level, overlapping a
	 * later range delete, and a batch mixing all three kinds of op. */
	del_range(f, ver, 2000, 2600);
	kvp_flush(&f->kv);
	del_range(f, ver, 2500, 2800);
	assert_int_equal(kv_batch_create(&b), 0);
	assert_int_equal(kv_batch_delete_range(b, k1, key_of(200, k1), k2, key_of(300, k2)), 0);
	for (unsigned i = 250; i < 260; i++) {
		char key[16];

		ver[i] = 3;
		assert_int_equal(kv_batch_put(b, key, key_of(i, key), f->want,
					      val_of(i, 3, spread, f->want)),
				 0);
	}
	assert_int_equal(kv_batch_delete(b, k1, key_of(255, k1)), 0);
	for (unsigned i = 200; i < 300; i++)
		if (i < 250 || i >= 260 || i == 255)
			ver[i] = -1;
	assert_int_equal(kv_write(f->kv.db, NULL, b), 0);
	kv_batch_destroy(b);
	expect_all(f, ver, n, spread, "range deletes in levels 0 and memtable");
	kvp_flush(&f->kv);
	expect_all(f, ver, n, spread, "two range deletes in level 0");
	kvp_reopen(&f->kv);
	expect_all(f, ver, n, spread, "range deletes in level 0, reopened");
	kvp_compact(&f->kv);
	expect_all(f, ver, n, spread, "range deletes compacted");
	/* A key put into a compacted-away range is visible. */
	ver[2700] = 4;
	put_key(f, 2700, 4, spread);
	kvp_flush(&f->kv);
	kvp_compact(&f->kv);
	kvp_reopen(&f->kv);
	expect_all(f, ver, n, spread, "the end");
}

/* ---- 4. compaction: one level, space given back ----------------------- */

static void test_compact_shrinks(void **state)
{
	struct fx *f = *state;
	unsigned n = 20000 / (unsigned)(kvt_scale() > 1 ? 1 : 2), spread = 200;
	int *ver = f->ver = calloc(n, sizeof(*ver));
	struct kv_stats st, full;
	uint64_t before, after;
	int deepest, deepest_full;

	f->kv.opt.table_target_size = 256 << 10; /* several output tables */
	kvp_open(&f->kv);
	for (unsigned i = 0; i < n; i++) {
		put_key(f, i, 0, spread);
		if (i % (n / 4) == n / 4 - 1)
			kvp_flush(&f->kv);
	}
	kvp_stats(&f->kv, &st);
	print_shape("four flushes", &st);
	assert_true(st.level_tables[0] >= 4);
	kvp_compact(&f->kv);
	kvp_stats(&f->kv, &full);
	print_shape("compacted", &full);
	assert_int_equal(levels_used(&full, &deepest_full), 1);
	assert_true(deepest_full >= 1); /* compaction output is not level 0 */
	assert_true(full.level_tables[deepest_full] >= 2);
	assert_true(full.compactions >= 1);
	assert_true(full.compact_read_bytes > 0 && full.compact_write_bytes > 0);
	assert_true(fabs(full.space_amp - 1.0) < 1e-6);
	assert_int_equal(full.memtables, 1);
	before = kvp_table_bytes(&full);
	expect_all(f, ver, n, spread, "compacted");

	/* Delete 90% of the keys: the first half by point deletes, the second
	 * by one range delete per run of nine keys. */
	for (unsigned i = 0; i < n / 2; i++)
		if (i % 10)
			del_key(f, ver, i);
	for (unsigned i = n / 2; i < n; i += 10)
		del_range(f, ver, i + 1, i + 10 < n ? i + 10 : n);
	kvp_flush(&f->kv);
	kvp_stats(&f->kv, &st);
	assert_true(kvp_table_bytes(&st) > before); /* the tombstones are data too */
	kvp_compact(&f->kv);
	kvp_stats(&f->kv, &st);
	print_shape("90% deleted, compacted", &st);
	after = kvp_table_bytes(&st);
	print_message("[ INFO     ] table bytes %llu -> %llu (%.1f%%)\n",
		      (unsigned long long)before, (unsigned long long)after,
		      100.0 * (double)after / (double)before);
	assert_int_equal(levels_used(&st, &deepest), 1);
	assert_true(fabs(st.space_amp - 1.0) < 1e-6);
	assert_true(st.compactions > full.compactions);
	/* 10% of the data is live; tombstones at the bottom level must be gone
	 * (kept, they would add about 8% of the original bytes). */
	assert_true(after < before * 15 / 100);
	expect_all(f, ver, n, spread, "90% deleted, compacted");
	kvp_reopen(&f->kv);
	kvp_stats(&f->kv, &st);
	assert_int_equal(levels_used(&st, &deepest), 1);
	assert_int_equal(kvp_table_bytes(&st), after);
	expect_all(f, ver, n, spread, "90% deleted, reopened");

	/* Deleting everything and compacting leaves no table at all. */
	del_range(f, ver, 0, n);
	kvp_compact(&f->kv);
	kvp_stats(&f->kv, &st);
	print_shape("all deleted, compacted", &st);
	assert_int_equal(kvp_table_count(&st), 0);
	expect_all(f, ver, n, spread, "all deleted");
}

/* A snapshot keeps what it sees through compactions (so the space stays
 * used); once released, a compaction gives the space back. */
static void test_snapshot_pins_space(void **state)
{
	struct fx *f = *state;
	unsigned n = 5000, spread = 200;
	int *ver = f->ver = calloc(n, sizeof(*ver)); /* all version 0 */
	struct kv_snapshot *snap;
	struct kv_stats st;
	uint64_t b0, b1;
	struct kv_iter *it;
	unsigned seen = 0;

	kvp_open(&f->kv);
	for (unsigned i = 0; i < n; i++)
		put_key(f, i, 0, spread);
	kvp_compact(&f->kv);
	kvp_stats(&f->kv, &st);
	b0 = kvp_table_bytes(&st);
	assert_int_equal(kvp_snap_take(f->kv.db, &snap), 0);
	del_range(f, ver, 0, n); /* now all absent */
	kvp_compact(&f->kv);
	kvp_stats(&f->kv, &st);
	b1 = kvp_table_bytes(&st);
	print_shape("all deleted under a snapshot, compacted", &st);
	expect_all(f, ver, n, spread, "all deleted under a snapshot");
	assert_int_equal(kvp_iter_open(f->kv.db, snap, &it), 0);
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it))
		seen++;
	assert_int_equal(kv_iter_status(it), 0);
	kvp_iter_close(it);
	assert_int_equal(seen, n);
	for (unsigned i = 0; i < n; i += 50) {
		char key[16];
		size_t klen = key_of(i, key), vlen = val_of(i, 0, spread, f->want);
		ssize_t r = kv_get_at(f->kv.db, snap, key, klen, f->got, BIG_VALUE);

		if (r != (ssize_t)vlen || memcmp(f->got, f->want, vlen))
			fail_msg("%s at the snapshot: kv_get_at = %zd, want %zu bytes", key, r,
				 vlen);
	}
	print_message("[ INFO     ] table bytes %llu, then %llu with everything deleted under a "
		      "snapshot\n",
		      (unsigned long long)b0, (unsigned long long)b1);
	assert_true(b1 >= b0 / 2); /* the snapshot's data is still stored */

	kvp_snap_drop(f->kv.db, snap);
	kvp_compact(&f->kv);
	kvp_stats(&f->kv, &st);
	print_shape("snapshot released, compacted", &st);
	assert_true(kvp_table_bytes(&st) < b0 / 10);
	expect_all(f, ver, n, spread, "snapshot released");
	kvp_reopen(&f->kv);
	expect_all(f, ver, n, spread, "reopened");
}

/* ---- 5. stats -------------------------------------------------------------- */

static void test_stats(void **state)
{
	struct fx *f = *state;
	struct kv_snapshot *s1, *s2;
	struct kv_stats st, st2;
	uint64_t user = 0, misses, hits;
	unsigned n = 4000, spread = 500;
	char key[16];

	f->kv.opt.block_cache_size = 256 << 10;
	kvp_open(&f->kv);
	kvp_stats(&f->kv, &st);
	assert_int_equal(st.flushes, 0);
	assert_int_equal(st.compactions, 0);
	assert_int_equal(kvp_table_count(&st), 0);
	assert_int_equal(st.snapshots, 0);
	assert_int_equal(st.user_bytes, 0);
	assert_int_equal(st.stalls, 0);

	for (unsigned i = 0; i < n; i++) {
		size_t vlen = val_of(i, 0, spread, f->want);

		user += key_of(i, key) + vlen;
		put_val(f, key, strlen(key), f->want, vlen);
	}
	kvp_stats(&f->kv, &st);
	if (st.user_bytes != user)
		fail_msg("user_bytes = %llu, but the %u puts had %llu key + value bytes (%+lld, "
			 "%.2f per put)",
			 (unsigned long long)st.user_bytes, n, (unsigned long long)user,
			 (long long)(st.user_bytes - user), (double)(st.user_bytes - user) / n);
	kvp_flush(&f->kv);
	kvp_stats(&f->kv, &st);
	print_shape("flushed", &st);
	assert_true(st.flushes >= 1);
	assert_true(st.flush_bytes >= st.level_bytes[0]);
	assert_true(st.write_amp >= 1.0);
	assert_true(st.user_bytes == user);

	kvp_compact(&f->kv);
	kvp_stats(&f->kv, &st);
	print_shape("compacted", &st);
	assert_true(st.compactions >= 1);
	assert_true(st.write_amp >= 1.0);
	/* Space amplification is 1 with one level. */
	assert_true(fabs(st.space_amp - 1.0) < 1e-6);

	/* Cold reads miss the cache; reading one key again hits it. The cache
	 * never holds more than its size (no iterator pins anything here). */
	misses = st.cache_misses;
	for (unsigned i = 0; i < n; i += 97)
		expect_key(f, i, 0, spread, "cold");
	kvp_stats(&f->kv, &st);
	assert_true(st.cache_misses > misses);
	hits = st.cache_hits;
	for (int r = 0; r < 10; r++)
		expect_key(f, 5, 0, spread, "hot");
	kvp_stats(&f->kv, &st);
	if (st.cache_hits < hits + 9)
		fail_msg("10 gets of one key: cache hits %llu -> %llu (cache %zu bytes)",
			 (unsigned long long)hits, (unsigned long long)st.cache_hits,
			 f->kv.opt.block_cache_size);
	assert_true(st.cache_bytes > 0);
	assert_true(st.cache_bytes <= f->kv.opt.block_cache_size);
	for (unsigned i = 0; i < n; i++)
		expect_key(f, i, 0, spread, "all");
	kvp_stats(&f->kv, &st);
	print_message("[ INFO     ] cache: %llu hits, %llu misses, %llu bytes (of %zu)\n",
		      (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses,
		      (unsigned long long)st.cache_bytes, f->kv.opt.block_cache_size);
	assert_true(st.cache_bytes <= f->kv.opt.block_cache_size);

	/* Snapshots are counted while live. */
	assert_int_equal(kvp_snap_take(f->kv.db, &s1), 0);
	assert_int_equal(kvp_snap_take(f->kv.db, &s2), 0);
	kvp_stats(&f->kv, &st);
	assert_int_equal(st.snapshots, 2);
	assert_true(kv_snapshot_lsn(s2) >= kv_snapshot_lsn(s1));
	assert_true(kv_snapshot_lsn(s1) <= st.durable_lsn);
	kvp_snap_drop(f->kv.db, s1);
	kvp_stats(&f->kv, &st);
	assert_int_equal(st.snapshots, 1);
	kvp_snap_drop(f->kv.db, s2);
	kvp_stats(&f->kv, &st2);
	assert_int_equal(st2.snapshots, 0);
	assert_int_equal(st2.stalls, 0); /* manual mode never stalls */
}

/* A small cache (64 KiB, a legal size) still caches: a key read again and
 * again is served from it. */
static void test_small_cache_hits(void **state)
{
	struct fx *f = *state;
	struct kv_stats st;
	uint64_t hits;

	f->kv.opt.block_cache_size = 64 << 10;
	kvp_open(&f->kv);
	for (unsigned i = 0; i < 1000; i++)
		put_key(f, i, 0, 500);
	kvp_compact(&f->kv);
	for (unsigned k = 0; k < 1000; k += 111) {
		expect_key(f, k, 0, 500, "first read");
		kvp_stats(&f->kv, &st);
		hits = st.cache_hits;
		for (int r = 0; r < 10; r++)
			expect_key(f, k, 0, 500, "hot");
		kvp_stats(&f->kv, &st);
		if (st.cache_hits < hits + 10)
			fail_msg("key %u read 10 times: cache hits %llu -> %llu, cache_bytes %llu, "
				 "cache %zu bytes",
				 k, (unsigned long long)hits, (unsigned long long)st.cache_hits,
				 (unsigned long long)st.cache_bytes, f->kv.opt.block_cache_size);
	}
}

/* ---- 6. automatic flush and compaction ------------------------------------- */

static void test_auto_background(void **state)
{
	struct fx *f = *state;
	struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	size_t total = 0, goal;
	unsigned n = 0, spread = 600;
	uint64_t max_mem = 0, max_l0 = 0;
	struct kv_stats st;
	int *ver;

	f->kv.opt.log_buffer_size = 64 << 10;
	f->kv.opt.manual_background = 0;
	f->kv.opt.max_immutable = 2;
	f->kv.opt.l0_compact_trigger = 4;
	f->kv.opt.l0_stall = 12;
	goal = 20 * f->kv.opt.log_buffer_size;
	kvp_open(&f->kv);
	/* Batch-mode writes, so the memtables fill fast; then one kv_sync. */
	while (total < goal) {
		char key[16];
		size_t klen = key_of(n, key), vlen = val_of(n, 0, spread, f->want);
		int err = kv_put(f->kv.db, &wo, key, klen, f->want, vlen);

		if (err)
			fail_msg("write %u: kv_put = %d (%s); log:\n%s", n, err, strerror(-err),
				 f->kv.log.text);
		total += klen + vlen;
		n++;
		kvp_stats(&f->kv, &st);
		if (st.memtables > max_mem)
			max_mem = st.memtables;
		if (st.level_tables[0] > max_l0)
			max_l0 = st.level_tables[0];
		if (st.memtables > (uint64_t)f->kv.opt.max_immutable + 1)
			fail_msg("after %u writes: %llu memtables, max_immutable %d", n,
				 (unsigned long long)st.memtables, f->kv.opt.max_immutable);
	}
	assert_int_equal(kv_sync(f->kv.db), 0);
	kvp_stats(&f->kv, &st);
	print_shape("after 20 log buffers", &st);
	print_message("[ INFO     ] %u writes, %zu bytes; at most %llu memtables, %llu L0 tables\n",
		      n, total, (unsigned long long)max_mem, (unsigned long long)max_l0);
	/* 20 buffers' worth, at most 3 in memory: the rest was flushed without
	 * anyone asking. */
	assert_true(st.flushes >= 20 - (uint64_t)f->kv.opt.max_immutable - 2);
	/* Writers stall at l0_stall; flushes already running may add a few. */
	assert_true(max_l0 <= (uint64_t)f->kv.opt.l0_stall + (uint64_t)f->kv.opt.max_immutable + 1);
	assert_true(st.stalls == 0 || st.stall_ns > 0);

	ver = f->ver = calloc(n, sizeof(*ver));
	expect_all(f, ver, n, spread, "background flushed");
	kvp_reopen(&f->kv);
	expect_all(f, ver, n, spread, "background flushed, reopened");
	kvp_stats(&f->kv, &st);
	print_shape("reopened", &st);
}

/* Two writer threads against a tiny level 0 budget: writers stall, no write
 * fails, and nothing is lost. */
struct stall_writer {
	struct fx *f;
	unsigned first, count;
	int err;
	unsigned at;
};

static void *stall_write(void *arg)
{
	struct stall_writer *w = arg;
	struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	uint8_t *val = malloc(4096);

	for (unsigned i = w->first; i < w->first + w->count && !w->err; i++) {
		char key[16];
		size_t klen = key_of(i, key), vlen = val_of(i, 0, 1000, val);

		w->err = kv_put(w->f->kv.db, &wo, key, klen, val, vlen);
		w->at = i;
	}
	free(val);
	return NULL;
}

static void test_stalls(void **state)
{
	struct fx *f = *state;
	struct stall_writer w[2];
	pthread_t tid[2];
	unsigned per = 2000 * (unsigned)kvt_scale();
	struct kv_stats st;
	int *ver;

	f->kv.opt.log_buffer_size = 64 << 10;
	f->kv.opt.manual_background = 0;
	f->kv.opt.max_immutable = 1;
	f->kv.opt.l0_compact_trigger = 2;
	f->kv.opt.l0_stall = 3;
	f->kv.opt.level1_max_bytes = 256 << 10;
	f->kv.opt.table_target_size = 64 << 10;
	kvp_open(&f->kv);
	for (int t = 0; t < 2; t++) {
		w[t] = (struct stall_writer){ .f = f, .first = (unsigned)t * per, .count = per };
		assert_int_equal(pthread_create(&tid[t], NULL, stall_write, &w[t]), 0);
	}
	for (int t = 0; t < 2; t++)
		pthread_join(tid[t], NULL);
	for (int t = 0; t < 2; t++)
		if (w[t].err)
			fail_msg("writer %d: key %u: kv_put = %d (%s); log:\n%s", t, w[t].at,
				 w[t].err, strerror(-w[t].err), f->kv.log.text);
	assert_int_equal(kv_sync(f->kv.db), 0);
	kvp_stats(&f->kv, &st);
	print_shape("two writers, tiny level 0", &st);
	print_message("[ INFO     ] %llu stalls, %.3f ms stalled\n", (unsigned long long)st.stalls,
		      (double)st.stall_ns / 1e6);
	assert_true(st.stalls == 0 || st.stall_ns > 0);
	assert_true(st.flushes > 0);
	assert_true(st.compactions > 0);

	ver = f->ver = calloc(2 * per, sizeof(*ver));
	expect_all(f, ver, 2 * per, 1000, "after stalls");
	kvp_compact(&f->kv);
	kvp_reopen(&f->kv);
	expect_all(f, ver, 2 * per, 1000, "after stalls, reopened");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deletes_persist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compact_shrinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_pins_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_cache_hits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_background, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stalls, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
