/* SPDX-License-Identifier: MIT */
/*
 * test_table.c - unit tests of the sorted tables (kv/table_*.c): build and
 * read back against a model (point lookups at many snapshots, iterator
 * seek/next), values from 0 bytes to 100 KiB, the cut rule of blocks of
 * large values, the bloom filter's false
 * positive rate, range tombstones, the empty table, the block cache,
 * concurrent readers, and the table file cache (kv/tcache.c): a tiny one
 * shared by many tables and threads bounds the fds the process holds, a
 * table whose fd it closed reads on, a failed reopen is a read error naming
 * the file, and closing a table leaves no fd of its file. Damaged tables:
 * test_table_corrupt.c.
 *
 * The golden test freezes the bytes of a small table against the checked-in
 * tests/kv/golden/table-v2.sst, found next to this source file (through
 * __FILE__; $KV_GOLDEN_DIR overrides). A format change updates kv/FORMAT.md,
 * KV_FORMAT_VERSION, the code and the golden file in one commit. To rewrite
 * the file after such a change: KV_REGEN_GOLDEN=1 ./test_table.
 *
 * Offsets of the blocks are read from the footer the way kv/FORMAT.md
 * describes it, independently of the reader's code.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "cache.h"
#include "env.h"
#include "kv.h"
#include "kv_test_util.h"
#include "memtable.h"
#include "table.h"
#include "table_fmt.h"
#include "table_util.h"
#include "tcache.h"

/* ---- fixtures ----------------------------------------------------------------- */

static struct kv_table *topen(struct tt_fx *f, struct kv_cache *c)
{
	struct kv_table *t = NULL;

	assert_int_equal(kv_table_open(f->env, &f->opt, f->path, 5, 0, c, NULL, &t), 0);
	return t;
}

/* ---- lookups and iteration against the model -------------------------------- */

static void check_value(const struct tt_ent *e, const uint8_t *val, size_t vlen)
{
	uint8_t *x = malloc(e->vlen + 1);

	assert_int_equal(vlen, e->vlen);
	tt_fill_value(x, e->vlen, e->vseed);
	assert_memory_equal(val, x, vlen);
	free(x);
}

/* The model's answer: the first version of @key with lsn < snap, or NULL. */
static const struct tt_ent *model_get(const struct tt_model *m, const char *key, uint64_t snap)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i < m->n; i++) {
		const struct tt_ent *e = &m->e[i];

		if (!kv_ukey_cmp(e->ik, e->iklen - 8, key, kl) &&
		    kv_ikey_lsn(e->ik, e->iklen) < snap)
			return e;
	}
	return NULL;
}

static void check_get(struct kv_table *t, const struct tt_model *m, const char *key, uint64_t snap)
{
	const struct tt_ent *x = model_get(m, key, snap);
	struct tt_hit h = { 0 };
	int r = kv_table_get(t, key, strlen(key), snap, tt_on_hit, &h);

	assert_int_equal(r, x != NULL);
	assert_int_equal(h.n, r);
	if (x) {
		assert_int_equal(h.lsn, kv_ikey_lsn(x->ik, x->iklen));
		assert_int_equal(h.kind, kv_ikey_kind(x->ik, x->iklen));
		check_value(x, h.val, h.vlen);
	}
	free(h.val);
}

/* Point lookups of every key of a sample at snapshots around its versions. */
static void check_gets(struct kv_table *t, const struct tt_model *m, size_t step)
{
	char k[16];

	for (size_t i = 0; i < m->n; i += step) {
		const struct tt_ent *e = &m->e[i];
		uint64_t lsn = kv_ikey_lsn(e->ik, e->iklen);
		const uint64_t snaps[] = { 0, 1, lsn, lsn + 1, lsn + 2, UINT64_MAX, KV_LSN_MAX + 1 };

		memcpy(k, e->ik, e->iklen - 8);
		k[e->iklen - 8] = 0;
		for (size_t s = 0; s < sizeof(snaps) / sizeof(snaps[0]); s++)
			check_get(t, m, k, snaps[s]);
		k[0] = 'j'; /* absent: before every key */
		check_get(t, m, k, UINT64_MAX);
	}
}

static void expect_entry(struct kv_iiter *it, const struct tt_ent *e)
{
	assert_true(it->valid);
	assert_int_equal(it->klen, e->iklen);
	assert_memory_equal(it->key, e->ik, e->iklen);
	check_value(e, it->val, it->vlen);
}

static void check_scan(struct kv_table *t, const struct tt_model *m)
{
	struct kv_iiter *it;

	assert_int_equal(kv_table_iter(t, &it), 0);
	it->ops->seek_first(it);
	for (size_t i = 0; i < m->n; i++, it->ops->next(it))
		expect_entry(it, &m->e[i]);
	assert_false(it->valid);
	assert_int_equal(it->err, 0);
	it->ops->next(it); /* stays at the end */
	assert_false(it->valid);
	it->ops->destroy(it);
}

/* Seek to random targets, then step a few entries. */
static void check_seeks(struct kv_table *t, const struct tt_model *m, uint64_t *rs, int n)
{
	static const unsigned kinds[] = { KV_IK_DEL, KV_IK_PUT, KV_IK_SEEK };
	struct kv_iiter *it;
	uint8_t ik[32];
	char k[16];

	assert_int_equal(kv_table_iter(t, &it), 0);
	for (int r = 0; r < n; r++) {
		size_t lo = 0;

		tt_key_of(k, (unsigned)(kvt_rand(rs) % (m->n + 4)));
		kv_ikey_make(ik, k, strlen(k), kvt_rand(rs) % 110000, kinds[kvt_rand(rs) % 3]);
		while (lo < m->n && kv_ikey_cmp(m->e[lo].ik, m->e[lo].iklen, ik, strlen(k) + 8) < 0)
			lo++;
		it->ops->seek(it, ik, strlen(k) + 8);
		for (int s = 0; s < 3 && lo < m->n; s++, lo++, it->ops->next(it))
			expect_entry(it, &m->e[lo]);
		if (lo == m->n)
			assert_false(it->valid);
	}
	it->ops->destroy(it);
}

/* ---- round trips ------------------------------------------------------------------ */

static void check_table(struct tt_fx *f, const struct tt_model *m, struct kv_cache *c,
			uint64_t seed)
{
	struct kv_table *t = topen(f, c);
	uint64_t rs = seed;

	check_scan(t, m);
	check_gets(t, m, 3);
	check_seeks(t, m, &rs, 500);
	assert_int_equal(kv_table_file_no(t), 5);
	kv_table_close(t);
	assert_int_equal(kv_table_check(f->env, f->path, 5, NULL, NULL), 0);
}

static void roundtrip(void **state, int with_cache)
{
	struct tt_fx *f = *state;
	uint64_t rs = kvt_seed(with_cache ? "test_table.cache" : "test_table.roundtrip");
	struct kv_table_props pr;
	struct tt_model m = { 0 };
	struct kv_cache *c = NULL;
	struct kv_table *t;

	tt_model_random(&m, 1500, &rs);
	tt_model_add(&m, "zz-big", 7, KV_IK_PUT, 100 << 10, 1); /* 100 KiB: many blocks' worth */
	tt_model_add(&m, "zz-empty", 9, KV_IK_PUT, 0, 2);
	tt_build(f, &m, NULL, &pr);
	assert_int_equal(pr.entries, m.n);
	assert_int_equal(pr.rangedels, 0);
	assert_int_equal(pr.slen, m.e[0].iklen);
	assert_memory_equal(pr.smallest, m.e[0].ik, pr.slen);
	assert_memory_equal(pr.largest, m.e[m.n - 1].ik, pr.llen);
	assert_true(pr.data_bytes > 0 && pr.data_bytes < pr.file_size);
	if (with_cache)
		assert_int_equal(kv_cache_create(with_cache > 1 ? 0 : 1 << 20, &c), 0);
	check_table(f, &m, c, rs);
	t = topen(f, c);
	assert_int_equal(kv_table_props(t)->file_size, pr.file_size);
	assert_int_equal(kv_table_props(t)->min_lsn, pr.min_lsn);
	assert_int_equal(kv_table_props(t)->max_lsn, pr.max_lsn);
	assert_int_equal(kv_table_props(t)->llen, pr.llen);
	assert_memory_equal(kv_table_props(t)->largest, pr.largest, pr.llen);
	kv_table_close(t);
	if (c) {
		struct kv_cache_stats st;

		kv_cache_stats(c, &st);
		assert_true(st.hits > 0 || with_cache > 1);
		kv_cache_destroy(c);
	}
	kv_table_props_free(&pr);
	tt_model_free(&m);
}

static void test_roundtrip(void **state)
{
	roundtrip(state, 0);
}

static void test_roundtrip_cache(void **state)
{
	roundtrip(state, 1);
	roundtrip(state, 2); /* a cache that keeps nothing */
}

/* Small blocks and restart intervals of 1 and 2: many blocks, every path. */
static void test_small_blocks(void **state)
{
	struct tt_fx *f = *state;
	uint64_t rs = kvt_seed("test_table.small_blocks");
	struct tt_model m = { 0 };
	struct kv_table_props pr;

	tt_model_random(&m, 300, &rs);
	for (int ri = 1; ri <= 2; ri++) {
		struct kv_table_build_opts o = { .block_size = 100,
						 .restart_interval = ri,
						 .bloom_bits_per_key = 4 };

		tt_build(f, &m, &o, &pr);
		check_table(f, &m, NULL, rs);
		kv_table_props_free(&pr);
	}
	tt_model_free(&m);
}

/* The cut rule (kv/FORMAT.md, "Data block"): blocks of values of the block
 * size (file data) hold KV_TBL_BIG_MUL of them; blocks of small values stay
 * near the target; a run of small values after large ones starts afresh.
 * Walks the data blocks through the index (white box) and reads back. */
static void test_big_value_blocks(void **state)
{
	struct tt_fx *f = *state;
	uint64_t rs = kvt_seed("test_table.big_value_blocks");
	struct tt_model m = { 0 };
	struct kv_table_props pr;
	struct tt_handles hd;
	struct kv_tbl_err e;
	struct kv_cache *c;
	struct kv_bcur cur;
	struct kv_blk ib;
	size_t n, nbig = 0, nsmall = 0;
	uint64_t end = 0;
	uint8_t *file;
	char key[32];
	int r;

	for (unsigned i = 0; i < 16 * KV_TBL_BIG_MUL; i++) {
		snprintf(key, sizeof(key), "d%07u", i);
		tt_model_add(&m, key, 10 + i, KV_IK_PUT, 4096, i);
	}
	for (unsigned i = 0; i < 600; i++) {
		snprintf(key, sizeof(key), "m%07u", i);
		tt_model_add(&m, key, 10 + i, KV_IK_PUT, 1 + i % 40, i);
	}
	for (unsigned i = 0; i < 9; i++) {
		snprintf(key, sizeof(key), "x%07u", i);
		tt_model_add(&m, key, 10 + i, KV_IK_PUT, 3000 + i, i);
	}
	tt_build(f, &m, NULL, &pr);
	file = tt_slurp(f->path, &n);
	assert_non_null(file);
	tt_read_handles(file, n, &hd);
	assert_int_equal(kv_blk_init(&ib, file + hd.off[3], hd.size[3], hd.off[3], 8, &e), 0);
	for (r = kv_bcur_first(&cur, &ib, &e); r == 1; r = kv_bcur_next(&cur, &e)) {
		const uint8_t *v = cur.val;
		uint64_t off = 0, size = 0;
		size_t ents = 0, big = 0;
		bool last;
		struct kv_bcur dc;
		struct kv_blk db;
		int dr;

		assert_int_equal(kv_varint_get(&v, cur.val + cur.vlen, &off), 0);
		assert_int_equal(kv_varint_get(&v, cur.val + cur.vlen, &size), 0);
		assert_int_equal(off, end);
		end = off + size + KV_TBL_TRAILER;
		last = end == hd.off[0]; /* cut by kv_tb_finish */
		assert_int_equal(kv_blk_init(&db, file + off, size, off, 8, &e), 0);
		for (dr = kv_bcur_first(&dc, &db, &e); dr == 1; dr = kv_bcur_next(&dc, &e), ents++)
			big += dc.vlen >= 3000;
		assert_int_equal(dr, 0);
		if (big == ents) {
			/* cut at KV_TBL_BIG_MUL * 4096 by its last entry */
			assert_true(size >= KV_TBL_BIG_MUL * 4096 || last);
			assert_true(size < KV_TBL_BIG_MUL * 4096 + 4200);
			nbig++;
		} else if (!big) {
			assert_true((size >= 4096 || last) && size < 4096 + 64);
			nsmall++;
		} else {
			assert_true(size < 4096 + 4200); /* small ones then one large */
		}
	}
	assert_int_equal(r, 0);
	assert_int_equal(end, hd.off[0]); /* the blocks tile the data region */
	/* the 4 KiB values exactly fill 16 blocks; the 3 KiB ones 1 or 2 */
	assert_true(nbig >= 16 + 1 && nbig <= 16 + 2);
	assert_true(nsmall >= 3);
	free(file);
	check_table(f, &m, NULL, rs);
	assert_int_equal(kv_cache_create(64 << 10, &c), 0); /* about 3 big blocks */
	check_table(f, &m, c, rs);
	kv_cache_destroy(c);
	kv_table_props_free(&pr);
	tt_model_free(&m);
}

static void test_empty_table(void **state)
{
	struct tt_fx *f = *state;
	struct kv_table_props pr;
	struct tt_model m = { 0 };
	struct kv_iiter *it;
	struct kv_table *t;

	tt_build(f, &m, NULL, &pr);
	assert_int_equal(pr.entries, 0);
	assert_null(pr.smallest);
	assert_null(pr.largest);
	assert_int_equal(pr.data_bytes, 0);
	t = topen(f, NULL);
	assert_int_equal(kv_table_get(t, "a", 1, UINT64_MAX, tt_on_hit, NULL), 0);
	assert_int_equal(kv_table_iter(t, &it), 0);
	it->ops->seek_first(it);
	assert_false(it->valid);
	assert_int_equal(it->err, 0);
	it->ops->seek(it, (const uint8_t *)"a\0\0\0\0\0\0\0\0", 9);
	assert_false(it->valid);
	it->ops->destroy(it);
	assert_int_equal(kv_rdset_fragments(kv_table_rangedels(t)), 0);
	kv_table_close(t);
	assert_int_equal(kv_table_check(f->env, f->path, 5, NULL, NULL), 0);
	kv_table_props_free(&pr);
}

/* ---- the filter ----------------------------------------------------------------------- */

/* The filter probe exactly as kv/FORMAT.md describes it. */
static int doc_bloom_maybe(const uint8_t *bits, uint64_t nbits, unsigned k, const char *key)
{
	uint64_t h = XXH3_64bits_withSeed(key, strlen(key), 0), d = h >> 33 | h << 31;

	for (unsigned i = 0; i < k; i++) {
		uint64_t j = (h + i * d) % nbits;

		if (!(bits[j >> 3] >> (j & 7) & 1))
			return 0;
	}
	return 1;
}

static void test_bloom(void **state)
{
	struct tt_fx *f = *state;
	struct kv_table_props pr;
	struct tt_model m = { 0 };
	struct tt_handles h;
	uint8_t *file, *flt;
	unsigned fp = 0, k;
	uint64_t nbits;
	char key[16];
	size_t n;

	for (unsigned i = 0; i < 10000; i++) {
		tt_key_of(key, 2 * i);
		tt_model_add(&m, key, 1 + i, KV_IK_PUT, 1, i);
	}
	tt_build(f, &m, NULL, &pr);
	file = tt_slurp(f->path, &n);
	tt_read_handles(file, n, &h);
	flt = file + h.off[0];
	k = flt[h.size[0] - 1];
	nbits = (h.size[0] - 1) * 8;
	assert_int_equal(k, 7); /* round(10 * 0.69) */
	assert_int_equal(nbits, 100000);
	for (unsigned i = 0; i < 10000; i++) {
		tt_key_of(key, 2 * i);
		assert_true(doc_bloom_maybe(flt, nbits, k, key));
		tt_key_of(key, 2 * i + 1);
		fp += doc_bloom_maybe(flt, nbits, k, key);
	}
	fprintf(stderr, "bloom: %u false positives in 10000 absent keys\n", fp);
	assert_true(fp < 500); /* < 5%; about 1% expected */
	/* A point read hashes its key once for the memtables' index and every
	 * table's filter (iter.c): the two must be one function. */
	for (unsigned i = 0; i < 300; i++) {
		uint8_t kb[300];

		for (unsigned j = 0; j < i; j++)
			kb[j] = (uint8_t)(i * 31 + j * 7);
		assert_int_equal(kv_memtable_hash(kb, i), kv_bloom_hash(kb, i));
	}
	free(file);
	kv_table_props_free(&pr);
	tt_model_free(&m);
}

/* ---- range tombstones ------------------------------------------------------------- */

static void same_rdsets(const struct kv_rdset *a, const struct kv_rdset *b)
{
	assert_int_equal(kv_rdset_fragments(a), kv_rdset_fragments(b));
	for (size_t i = 0; i < kv_rdset_fragments(a); i++) {
		struct kv_rtomb x, y;
		const uint64_t *lx, *ly;
		size_t nx, ny;

		kv_rdset_fragment(a, i, &x, &lx, &nx);
		kv_rdset_fragment(b, i, &y, &ly, &ny);
		assert_int_equal(kv_ukey_cmp(x.start, x.slen, y.start, y.slen), 0);
		assert_int_equal(kv_ukey_cmp(x.end, x.elen, y.end, y.elen), 0);
		assert_int_equal(nx, ny);
		assert_memory_equal(lx, ly, nx * sizeof(*lx));
	}
}

static void expect_bound(const uint8_t *ik, size_t iklen, const char *key, uint64_t trailer)
{
	assert_int_equal(iklen, strlen(key) + 8);
	assert_memory_equal(ik, key, strlen(key));
	assert_int_equal(kv_ikey_trailer(ik, iklen), trailer);
}

static void test_rangedels(void **state)
{
	struct tt_fx *f = *state;
	uint64_t rs = kvt_seed("test_table.rangedels");
	struct kv_table_props pr;
	struct tt_model m = { 0 };
	struct kv_rdset *want;
	struct kv_table *t;
	char a[16], b[16];

	tt_model_random(&m, 200, &rs);
	for (int i = 0; i < 100; i++) {
		unsigned x = (unsigned)(kvt_rand(&rs) % 500), y = (unsigned)(kvt_rand(&rs) % 500);

		tt_key_of(a, x < y ? x : y);
		tt_key_of(b, (x < y ? y : x) + 1);
		tt_add_tomb(&m, a, b, 1 + kvt_rand(&rs) % 200000);
	}
	tt_add_tomb(&m, "a", "b", 3);	      /* before every entry: widens smallest */
	tt_add_tomb(&m, "zz", "zzz", 300000); /* after: widens largest */
	tt_build(f, &m, NULL, &pr);
	assert_int_equal(pr.rangedels, m.nt);
	assert_int_equal(pr.max_lsn, 300000);
	assert_true(pr.min_lsn <= 3);
	expect_bound(pr.smallest, pr.slen, "a", kv_trailer(3, KV_IK_SEEK));
	expect_bound(pr.largest, pr.llen, "zzz", kv_trailer(KV_LSN_MAX, KV_IK_SEEK));
	assert_int_equal(kv_rdset_build(m.t, m.nt, &want), 0);
	t = topen(f, NULL);
	same_rdsets(kv_table_rangedels(t), want);
	assert_int_equal(kv_table_props(t)->rangedels, m.nt);
	kv_table_close(t);
	kv_rdset_free(want);
	check_table(f, &m, NULL, rs);
	kv_table_props_free(&pr);
	free(m.e);
	m.e = NULL;
	m.n = m.cap = 0;

	/* tombstones only; the largest end is not the last start */
	tt_add_tomb(&m, "m", "p", 5);
	tt_add_tomb(&m, "c", "x", 4);
	tt_build(f, &m, NULL, &pr);
	assert_int_equal(pr.entries, 0);
	assert_true(pr.min_lsn <= 3);
	expect_bound(pr.smallest, pr.slen, "a", kv_trailer(3, KV_IK_SEEK));
	expect_bound(pr.largest, pr.llen, "zzz", kv_trailer(KV_LSN_MAX, KV_IK_SEEK));
	t = topen(f, NULL);
	assert_int_equal(kv_rdset_cover(kv_table_rangedels(t), "n", 1, 100), 5);
	assert_int_equal(kv_rdset_cover(kv_table_rangedels(t), "n", 1, 5), 4);
	kv_table_close(t);
	assert_int_equal(kv_table_check(f->env, f->path, 5, NULL, NULL), 0);
	kv_table_props_free(&pr);
	tt_model_free(&m);
}

/* ---- builder misuse -------------------------------------------------------------------- */

static void test_builder_errors(void **state)
{
	struct tt_fx *f = *state;
	struct kv_table_builder *b, *b2;
	uint8_t k1[9], k2[9];

	kv_ikey_make(k1, "b", 1, 5, KV_IK_PUT);
	kv_ikey_make(k2, "a", 1, 5, KV_IK_PUT);
	assert_int_equal(kv_tb_create(f->env, &f->opt, f->path, 5, NULL, &b), 0);
	assert_int_equal(kv_tb_create(f->env, &f->opt, f->path, 5, NULL, &b2), -EEXIST);
	assert_int_equal(kv_tb_add(b, k1, 9, "v", 1), 0);
	assert_int_equal(kv_tb_add(b, k2, 9, "v", 1), -EINVAL); /* out of order */
	assert_int_equal(kv_tb_add(b, k1, 9, "v", 1), -EINVAL); /* duplicate */
	kv_ikey_make(k2, "c", 1, 5, KV_IK_SEEK);
	assert_int_equal(kv_tb_add(b, k2, 9, "v", 1), -EINVAL); /* not an entry kind */
	assert_int_equal(kv_tb_add(b, k2, 7, "v", 1), -EINVAL); /* shorter than a trailer */
	assert_int_equal(kv_tb_add_rangedel(b, "b", 1, "b", 1, 5), -EINVAL);
	assert_int_equal(kv_tb_add_rangedel(b, "b", 1, "c", 1, 0), -EINVAL);
	assert_int_equal(kv_tb_add_rangedel(b, "b", 1, "c", 1, 5), 0);
	assert_true(kv_tb_size(b) > 0);
	kv_tb_abandon(b);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(kv_table_open(f->env, &f->opt, f->path, 5, 0, NULL, NULL,
				       &(struct kv_table *){ 0 }),
			 -ENOENT);
}

static void test_parse_name(void **state)
{
	uint64_t n = 0;
	char name[64];

	snprintf(name, sizeof(name), KV_TABLE_NAME_FMT, 0x1234abcdull);
	assert_int_equal(kv_table_parse_name(name, &n), 0);
	assert_int_equal(n, 0x1234abcd);
	assert_int_equal(kv_table_parse_name("tbl-00000000000000a.sst", &n), -EINVAL);
	assert_int_equal(kv_table_parse_name("tbl-000000000000000A.sst", &n), -EINVAL);
	assert_int_equal(kv_table_parse_name("tbl-0000000000000001.ss", &n), -EINVAL);
	assert_int_equal(kv_table_parse_name("wal-0000000000000001.log", &n), -EINVAL);
}

/* Write errors: the builder fails, says so, and leaves no file behind. */
static int build_faulty(struct tt_fx *f, const struct tt_model *m, const struct kv_fault_rules *r)
{
	struct kv_fault_env *fe;
	struct kv_env *env = f->env;
	struct kv_table_builder *b;
	struct kv_table_props pr = { 0 };
	uint8_t v[128];
	int err = 0;

	assert_int_equal(kv_fault_env_create(env, &fe), 0);
	f->env = kv_fault_env_env(fe);
	kv_fault_env_set_rules(fe, r);
	unlink(f->path);
	assert_int_equal(kv_tb_create(f->env, &f->opt, f->path, 5, NULL, &b), 0);
	for (size_t i = 0; i < m->n && !err; i++) {
		tt_fill_value(v, m->e[i].vlen < 100 ? m->e[i].vlen : 100, m->e[i].vseed);
		err = kv_tb_add(b, m->e[i].ik, m->e[i].iklen, v,
				m->e[i].vlen < 100 ? m->e[i].vlen : 100);
	}
	if (err)
		kv_tb_abandon(b);
	else
		err = kv_tb_finish(b, &pr);
	kv_table_props_free(&pr);
	kv_fault_env_destroy(fe);
	f->env = env;
	return err;
}

static void test_write_faults(void **state)
{
	struct tt_fx *f = *state;
	uint64_t rs = 7;
	struct tt_model m = { 0 };
	struct kv_fault_rules r = { .enospc_after_bytes = 100000 };

	tt_model_random(&m, 20000, &rs);
	assert_int_equal(build_faulty(f, &m, &r), -ENOSPC);
	assert_int_equal(access(f->path, F_OK), -1);
	r = (struct kv_fault_rules){ .fail_sync_after = 1 };
	assert_int_equal(build_faulty(f, &m, &r), -EIO);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_non_null(strstr(f->log.text, f->path));
	r = (struct kv_fault_rules){ .short_writes = 1 };
	assert_int_equal(build_faulty(f, &m, &r), 0);
	assert_int_equal(kv_table_check(f->env, f->path, 5, NULL, NULL), 0);
	tt_model_free(&m);
}

/* ---- concurrent readers sharing a small cache ------------------------------------------ */

struct reader {
	struct kv_table *t;
	const struct tt_model *m;
	uint64_t seed;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	char k[16];

	for (int i = 0; i < 2000; i++) {
		const struct tt_ent *e = &r->m->e[kvt_rand(&r->seed) % r->m->n];
		struct tt_hit h = { 0 };

		memcpy(k, e->ik, e->iklen - 8);
		k[e->iklen - 8] = 0;
		if (kv_table_get(r->t, k, e->iklen - 8, kv_ikey_lsn(e->ik, e->iklen) + 1, tt_on_hit,
				 &h) != 1 ||
		    h.lsn != kv_ikey_lsn(e->ik, e->iklen) || h.vlen != e->vlen)
			abort();
		free(h.val);
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct tt_fx *f = *state;
	uint64_t rs = kvt_seed("test_table.concurrent");
	struct kv_table_props pr;
	struct reader r[4];
	pthread_t th[4];
	struct tt_model m = { 0 };
	struct kv_cache *c;
	struct kv_table *t;

	tt_model_random(&m, 1000, &rs);
	tt_build(f, &m, NULL, &pr);
	assert_int_equal(kv_cache_create(64 << 10, &c), 0);
	t = topen(f, c);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct reader){ t, &m, kvt_rand(&rs) | 1 };
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	kv_table_close(t);
	kv_cache_destroy(c);
	kv_table_props_free(&pr);
	tt_model_free(&m);
}

/* ---- golden bytes ------------------------------------------------------------------------ */

/* tests/kv/golden/table-v2.sst, next to this source (or in $KV_GOLDEN_DIR). */
static void golden_path(char *out, size_t n)
{
	const char *d = getenv("KV_GOLDEN_DIR"), *slash = strrchr(__FILE__, '/');

	if (d && *d)
		snprintf(out, n, "%s/table-v2.sst", d);
	else if (slash)
		snprintf(out, n, "%.*s/golden/table-v2.sst", (int)(slash - __FILE__), __FILE__);
	else
		snprintf(out, n, "golden/table-v2.sst");
}

/*
 * Table 7: five entries over four user keys and one range tombstone, with
 * 64-byte blocks and a restart every 2 keys, so that it has several data
 * blocks, shared prefixes and more than one restart point per block.
 */
static void build_golden(struct tt_fx *f, const char *path)
{
	static const struct {
		const char *k;
		uint64_t lsn;
		unsigned kind;
		const char *v;
	} e[] = {
		{ "apple", 0x0102, KV_IK_PUT, "red" },
		{ "apple", 0x0101, KV_IK_DEL, "" },
		{ "apricot", 0x0110, KV_IK_PUT, "orange" },
		{ "banana", 0x0120, KV_IK_PUT, "yellow" },
		{ "cherry", 0x0130, KV_IK_PUT, "dark red" },
	};
	const struct kv_table_build_opts o = { .block_size = 64, .restart_interval = 2 };
	struct kv_table_builder *b;
	struct kv_table_props pr;
	uint8_t ik[16];

	assert_int_equal(kv_tb_create(f->env, &f->opt, path, 7, &o, &b), 0);
	for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
		kv_ikey_make(ik, e[i].k, strlen(e[i].k), e[i].lsn, e[i].kind);
		assert_int_equal(kv_tb_add(b, ik, strlen(e[i].k) + 8, e[i].v, strlen(e[i].v)), 0);
	}
	assert_int_equal(kv_tb_add_rangedel(b, "b", 1, "c", 1, 0x0125), 0);
	assert_int_equal(kv_tb_finish(b, &pr), 0);
	kv_table_props_free(&pr);
}

static void test_golden(void **state)
{
	struct tt_fx *f = *state;
	char gpath[1024], path[600];
	size_t n, gn;
	uint8_t *built, *gold;
	struct kv_table *t;
	struct tt_hit h = { 0 };

	golden_path(gpath, sizeof(gpath));
	snprintf(path, sizeof(path), "%s/" KV_TABLE_NAME_FMT, f->dir, 7ull);
	build_golden(f, path);
	built = tt_slurp(path, &n);
	if (getenv("KV_REGEN_GOLDEN") && atoi(getenv("KV_REGEN_GOLDEN"))) {
		FILE *fp = fopen(gpath, "wb");

		assert_non_null(fp);
		assert_int_equal(fwrite(built, 1, n, fp), n);
		fclose(fp);
		fprintf(stderr, "golden: rewrote %s (%zu bytes)\n", gpath, n);
	}
	gold = tt_slurp(gpath, &gn);
	if (!gold)
		fail_msg("cannot read %s (set KV_GOLDEN_DIR)", gpath);
	for (size_t i = 0; i < n && i < gn; i++)
		if (built[i] != gold[i])
			fail_msg("golden: byte %zu differs: built %02x, %s has %02x", i, built[i],
				 gpath, gold[i]);
	assert_int_equal(n, gn);

	/* The first data entry, decoded by hand as kv/FORMAT.md describes it. */
	assert_int_equal(gold[0], 0);  /* shared */
	assert_int_equal(gold[1], 13); /* unshared: "apple" + trailer */
	assert_int_equal(gold[2], 3);  /* vlen */
	assert_memory_equal(gold + 3, "apple", 5);
	assert_int_equal(kv_get_le64(gold + 8), 0x0102ull << 8 | KV_IK_PUT);
	assert_memory_equal(gold + 16, "red", 3);

	/* The checked-in file reads back. */
	assert_int_equal(kv_table_open(f->env, &f->opt, gpath, 7, gn, NULL, NULL, &t), 0);
	assert_int_equal(kv_table_get(t, "banana", 6, UINT64_MAX, tt_on_hit, &h), 1);
	assert_int_equal(h.lsn, 0x0120);
	assert_memory_equal(h.val, "yellow", 6);
	assert_int_equal(kv_table_get(t, "apple", 5, 0x0102, tt_on_hit, &h), 1);
	assert_int_equal(h.kind, KV_IK_DEL);
	assert_int_equal(kv_rdset_cover(kv_table_rangedels(t), "banana", 6, UINT64_MAX), 0x0125);
	assert_int_equal(kv_table_props(t)->entries, 5);
	kv_table_close(t);
	assert_int_equal(kv_table_check(f->env, gpath, 7, NULL, NULL), 0);
	free(h.val);
	free(built);
	free(gold);
}

/* ---- the table file cache ---------------------------------------------------------------- */

/* Entries of /proc/self/fd, the directory's own fd included (so counts
 * compare with each other, not with the truth); -1 without /proc. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* How many fds of the process link to a target that @match(target, @arg)
 * accepts. */
static int fds_where(int (*match)(const char *target, const char *arg), const char *arg)
{
	DIR *d = opendir("/proc/self/fd");
	char link[1024], target[1024];
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		ssize_t r;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		r = readlink(link, target, sizeof(target) - 1);
		if (r < 0)
			continue;
		target[r] = 0;
		n += match(target, arg);
	}
	closedir(d);
	return n;
}

/* @target is @path, or was (" (deleted)" after an unlink). */
static int is_path(const char *target, const char *path)
{
	size_t len = strlen(path);

	return !strncmp(target, path, len) && (!target[len] || target[len] == ' ');
}

/* @target is a table of directory @dir. */
static int in_dir_table(const char *target, const char *dir)
{
	size_t len = strlen(dir);

	return !strncmp(target, dir, len) && !strncmp(target + len, "/tbl-", 5);
}

/* Whether an fd of the process is open on @path (a canonical path). */
static int fd_open_on(const char *path)
{
	return fds_where(is_path, path) > 0;
}

/* Table @no in f->dir: its canonical path in @out (for fd_open_on). */
static void table_at(struct tt_fx *f, uint64_t no, char *out, size_t n)
{
	char *dir = realpath(f->dir, NULL);

	assert_non_null(dir);
	snprintf(out, n, "%s/" KV_TABLE_NAME_FMT, dir, (unsigned long long)no);
	free(dir);
}

static struct kv_table *fc_open(struct tt_fx *f, const char *path, uint64_t no,
				struct kv_tcache *fc)
{
	struct kv_table *t = NULL;

	assert_int_equal(kv_table_open(f->env, &f->opt, path, no, 0, NULL, fc, &t), 0);
	return t;
}

#define FC_TABLES 10
#define FC_CAP 2
#define FC_THREADS 4

struct fc_shared {
	struct kv_table *t[FC_TABLES]; /* the same model under ten file numbers */
	const struct tt_model *m;
	int gets;		  /* per thread */
	pthread_mutex_t count_mu; /* one counter at a time: its opendir is counted */
	int max_fds;		  /* [count_mu] the most /proc/self/fd entries seen */
	_Atomic int bad;	  /* wrong answers, errors */
};

struct fc_reader {
	struct fc_shared *s;
	uint64_t seed;
};

static int value_ok(const struct tt_ent *e, const uint8_t *val, size_t vlen)
{
	uint8_t *x;
	int ok;

	if (vlen != e->vlen)
		return 0;
	x = malloc(vlen + 1);
	tt_fill_value(x, vlen, e->vseed);
	ok = !memcmp(x, val, vlen);
	free(x);
	return ok;
}

/* The entry @e of table @t, through get: 1 if right. */
static int fc_get_ok(struct kv_table *t, const struct tt_ent *e)
{
	uint64_t lsn = kv_ikey_lsn(e->ik, e->iklen);
	struct tt_hit h = { 0 };
	int ok = kv_table_get(t, e->ik, e->iklen - 8, lsn + 1, tt_on_hit, &h) == 1 &&
		 h.lsn == lsn && h.kind == kv_ikey_kind(e->ik, e->iklen) &&
		 value_ok(e, h.val, h.vlen);

	free(h.val);
	return ok;
}

/* The same through an iterator seek, then the entry after it. */
static int fc_seek_ok(struct kv_table *t, const struct tt_model *m, size_t i)
{
	struct kv_iiter *it;
	int ok = 1;

	if (kv_table_iter(t, &it))
		return 0;
	it->ops->seek(it, m->e[i].ik, m->e[i].iklen);
	for (size_t j = i; j < i + 2 && j < m->n && ok; j++, it->ops->next(it))
		ok = it->valid && it->klen == m->e[j].iklen &&
		     !memcmp(it->key, m->e[j].ik, it->klen) &&
		     value_ok(&m->e[j], it->val, it->vlen);
	ok = ok && !it->err;
	it->ops->destroy(it);
	return ok;
}

static void *fc_reader_main(void *arg)
{
	struct fc_reader *r = arg;
	struct fc_shared *s = r->s;

	for (int i = 0; i < s->gets; i++) {
		struct kv_table *t = s->t[kvt_rand(&r->seed) % FC_TABLES];
		size_t e = kvt_rand(&r->seed) % s->m->n;
		int n;

		if (!(i % 8 ? fc_get_ok(t, &s->m->e[e]) : fc_seek_ok(t, s->m, e)))
			atomic_fetch_add(&s->bad, 1);
		if (i % 4 == 0) {
			pthread_mutex_lock(&s->count_mu);
			n = count_fds();
			if (n > s->max_fds)
				s->max_fds = n;
			pthread_mutex_unlock(&s->count_mu);
		}
	}
	return NULL;
}

/*
 * Ten tables, a file cache of two and four threads reading at random, with
 * no block cache (every read goes to a file): the process never holds more
 * than baseline + 2 + 4 fds (without the cache it would hold ten more), every
 * answer is right, and closing the tables closes every fd.
 */
static void test_file_cache_bound(void **state)
{
	struct tt_fx *f = *state;
	uint64_t rs = kvt_seed("test_table.file_cache");
	struct fc_shared s = { .gets = 1500 };
	struct fc_reader r[FC_THREADS];
	pthread_t th[FC_THREADS];
	struct kv_tcache_stats st;
	struct kv_table_props pr;
	char path[FC_TABLES][1100];
	struct tt_model m = { 0 };
	struct kv_tcache *fc;
	int base;

	if (count_fds() < 0)
		skip();
	tt_model_random(&m, 300, &rs);
	s.m = &m;
	for (int i = 0; i < FC_TABLES; i++) {
		table_at(f, 100 + (uint64_t)i, path[i], sizeof(path[i]));
		tt_build_at(f, path[i], 100 + (uint64_t)i, &m, NULL, &pr);
		kv_table_props_free(&pr);
	}
	base = count_fds();
	assert_int_equal(kv_tcache_create(FC_CAP, &fc), 0);
	for (int i = 0; i < FC_TABLES; i++)
		s.t[i] = fc_open(f, path[i], 100 + (uint64_t)i, fc);
	assert_true(count_fds() <= base + FC_CAP);
	s.max_fds = count_fds();
	pthread_mutex_init(&s.count_mu, NULL);
	for (int i = 0; i < FC_THREADS; i++) {
		r[i] = (struct fc_reader){ &s, kvt_rand(&rs) | 1 };
		assert_int_equal(pthread_create(&th[i], NULL, fc_reader_main, &r[i]), 0);
	}
	for (int i = 0; i < FC_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&s.count_mu);
	kv_tcache_stats(fc, &st);
	fprintf(stderr,
		"file cache: at most %d fds over the baseline (bound %d); %llu opens, %llu "
		"evictions\n",
		s.max_fds - base, FC_CAP + FC_THREADS, (unsigned long long)st.opens,
		(unsigned long long)st.evictions);
	assert_int_equal(atomic_load(&s.bad), 0);
	assert_true(s.max_fds <= base + FC_CAP + FC_THREADS);
	assert_true(st.opens > FC_TABLES); /* files were closed and reopened */
	assert_true(st.evictions > 0);
	assert_true(st.open <= FC_CAP);
	for (int i = 0; i < FC_TABLES; i++)
		kv_table_close(s.t[i]);
	kv_tcache_stats(fc, &st);
	assert_int_equal(st.open, 0);
	assert_int_equal(count_fds(), base);
	kv_tcache_destroy(fc);
	tt_model_free(&m);
}

/* Read @b and @c (the others of a file cache of two) until the cache has
 * closed @path, the file of a third table. */
static void fc_push_out(const char *path, struct kv_table *b, struct kv_table *c,
			const struct tt_model *m)
{
	for (int i = 0; i < 8 && fd_open_on(path); i++) {
		assert_true(fc_get_ok(b, &m->e[0]));
		assert_true(fc_get_ok(c, &m->e[0]));
	}
	assert_false(fd_open_on(path));
}

/*
 * A table whose fd the file cache closed reads on (reopened); a reopen that
 * fails (the file renamed away, then no fd left: -EMFILE) is an error from
 * get and the iterator, logged with the path, and the table reads again once
 * the cause is gone; a missing table fails to open and leaves no slot; and
 * kv_table_close closes the table's cached fd, so the file can go.
 */
static void test_file_cache_reopen(void **state)
{
	struct tt_fx *f = *state;
	uint64_t rs = kvt_seed("test_table.file_cache_reopen");
	char pa[1100], pb[1100], pc[1100], away[1200];
	struct kv_table *a, *b, *c, *x = NULL;
	struct kv_tcache_stats st;
	struct kv_table_props pr;
	struct tt_model m = { 0 };
	struct kv_tcache *fc;
	struct kv_iiter *it;
	struct tt_hit h = { 0 };
	struct rlimit lim, low;
	int base, spare, err;
	uint64_t opens;

	if (count_fds() < 0)
		skip();
	tt_model_random(&m, 200, &rs);
	table_at(f, 20, pa, sizeof(pa));
	table_at(f, 21, pb, sizeof(pb));
	table_at(f, 22, pc, sizeof(pc));
	tt_build_at(f, pa, 20, &m, NULL, &pr);
	kv_table_props_free(&pr);
	tt_build_at(f, pb, 21, &m, NULL, &pr);
	kv_table_props_free(&pr);
	tt_build_at(f, pc, 22, &m, NULL, &pr);
	kv_table_props_free(&pr);
	base = count_fds();
	assert_int_equal(kv_tcache_create(2, &fc), 0);
	assert_int_equal(kv_table_open(f->env, &f->opt, f->path, 5, 0, NULL, fc, &x), -ENOENT);
	a = fc_open(f, pa, 20, fc);
	b = fc_open(f, pb, 21, fc);
	c = fc_open(f, pc, 22, fc); /* closes one of the three files */
	kv_tcache_stats(fc, &st);
	assert_int_equal(st.open, 2);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(fd_open_on(pa) + fd_open_on(pb) + fd_open_on(pc), 2);

	/* evicted, then read: reopened, right answers */
	fc_push_out(pa, b, c, &m);
	kv_tcache_stats(fc, &st);
	opens = st.opens;
	check_scan(a, &m);
	check_gets(a, &m, 7);
	assert_true(fd_open_on(pa));
	kv_tcache_stats(fc, &st);
	assert_int_equal(st.opens, opens + 1);
	assert_int_equal(st.open, 2);

	/* evicted, and the file gone: -ENOENT naming the file */
	fc_push_out(pa, b, c, &m);
	snprintf(away, sizeof(away), "%s.away", pa);
	assert_int_equal(rename(pa, away), 0);
	f->log.len = 0;
	f->log.text[0] = 0;
	assert_int_equal(kv_table_get(a, m.e[0].ik, m.e[0].iklen - 8, UINT64_MAX, tt_on_hit, &h),
			 -ENOENT);
	assert_non_null(strstr(f->log.text, pa));
	assert_non_null(strstr(f->log.text, "cannot reopen"));
	assert_int_equal(kv_table_iter(a, &it), 0);
	it->ops->seek_first(it);
	assert_false(it->valid);
	assert_int_equal(it->err, -ENOENT);
	it->ops->destroy(it);
	assert_int_equal(rename(away, pa), 0);
	assert_true(fc_get_ok(a, &m.e[m.n - 1]));

	/* evicted, and no fd to be had: -EMFILE (with c closed, the cache is
	 * under capacity: the reopen closes nothing that would free an fd) */
	fc_push_out(pa, b, c, &m);
	kv_table_close(c);
	assert_false(fd_open_on(pc));
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &lim), 0);
	spare = open("/dev/null", O_RDONLY); /* the lowest free fd: as the limit, open fails */
	assert_true(spare >= 0);
	close(spare);
	low = lim;
	low.rlim_cur = (rlim_t)spare;
	f->log.len = 0;
	f->log.text[0] = 0;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	err = kv_table_get(a, m.e[0].ik, m.e[0].iklen - 8, UINT64_MAX, tt_on_hit, &h);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	assert_int_equal(err, -EMFILE);
	assert_int_equal(h.n, 0);
	assert_non_null(strstr(f->log.text, pa));
	check_scan(a, &m);

	/* closing a table closes its cached fd */
	assert_true(fd_open_on(pa));
	kv_table_close(a);
	assert_false(fd_open_on(pa));
	assert_int_equal(unlink(pa), 0);
	kv_table_close(b);
	kv_tcache_stats(fc, &st);
	assert_int_equal(st.open, 0);
	assert_int_equal(count_fds(), base);
	kv_tcache_destroy(fc);
	free(h.val);
	tt_model_free(&m);
}

/* Fds of the process open on a table of @dir. */
static int table_fds(const char *dir)
{
	char *real = realpath(dir, NULL);
	int n;

	assert_non_null(real);
	n = fds_where(in_dir_table, real);
	free(real);
	return n;
}

/*
 * Through the db: max_open_tables below 16 is refused, and a store of 40
 * tables opened with 16 (and a block cache too small to keep anything)
 * reads every key back while holding at most 16 table fds, before and after
 * a reopen.
 */
static void test_file_cache_db(void **state)
{
	struct tt_fx *f = *state;
	const int rounds = 40, keys = 5;
	struct kv_options o = f->opt;
	struct kv_db *db = NULL;
	char dir[600], k[32], v[64], got[64];
	int tables = 0;

	if (count_fds() < 0)
		skip();
	snprintf(dir, sizeof(dir), "%s/db", f->dir);
	o.max_open_tables = 15;
	assert_int_equal(kv_open(dir, &o, &db), -EINVAL);
	assert_non_null(strstr(f->log.text, "max_open_tables 15"));
	o.max_open_tables = -1;
	assert_int_equal(kv_open(dir, &o, &db), -EINVAL);

	o.max_open_tables = 16;
	o.manual_background = 1; /* every flush stays a level-0 table */
	o.block_cache_size = 1;	 /* every read goes to a file */
	o.durability = KV_DUR_BATCH;
	assert_int_equal(kv_open(dir, &o, &db), 0);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < keys; i++) {
			snprintf(k, sizeof(k), "r%02d-k%d", r, i);
			snprintf(v, sizeof(v), "value of %s", k);
			assert_int_equal(kv_put(db, NULL, k, strlen(k), v, strlen(v)), 0);
		}
		assert_int_equal(kv_flush(db), 0);
	}
	for (int pass = 0; pass < 2; pass++) {
		struct kv_stats st;

		assert_int_equal(kv_stats(db, &st), 0);
		tables = 0;
		for (int l = 0; l < KV_MAX_LEVELS; l++)
			tables += (int)st.level_tables[l];
		assert_int_equal(tables, rounds);
		for (int r = 0; r < rounds; r++)
			for (int i = 0; i < keys; i++) {
				snprintf(k, sizeof(k), "r%02d-k%d", r, i);
				snprintf(v, sizeof(v), "value of %s", k);
				assert_int_equal(kv_get(db, 0, k, strlen(k), got, sizeof(got)),
						 strlen(v));
				assert_memory_equal(got, v, strlen(v));
			}
		fprintf(stderr, "db: %d tables, %d table fds open (max_open_tables 16)\n", tables,
			table_fds(dir));
		assert_true(table_fds(dir) <= 16);
		assert_true(table_fds(dir) > 0);
		assert_int_equal(kv_close(db), 0);
		db = NULL;
		assert_int_equal(table_fds(dir), 0);
		if (!pass)
			assert_int_equal(kv_open(dir, &o, &db), 0);
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tt_setup, tt_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_name),
		T(test_golden),
		T(test_empty_table),
		T(test_roundtrip),
		T(test_roundtrip_cache),
		T(test_small_blocks),
		T(test_big_value_blocks),
		T(test_bloom),
		T(test_rangedels),
		T(test_builder_errors),
		T(test_write_faults),
		T(test_concurrent_readers),
		T(test_file_cache_bound),
		T(test_file_cache_reopen),
		T(test_file_cache_db),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
