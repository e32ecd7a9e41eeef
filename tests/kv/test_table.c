/* SPDX-License-Identifier: MIT */
/*
 * test_table.c - unit tests of the sorted tables (kv/table_*.c): build and
 * read back against a model (point lookups at many snapshots, iterator
 * seek/next), values from 0 bytes to 100 KiB, the bloom filter's false
 * positive rate, range tombstones, the empty table, the block cache, and
 * corruption: a flipped byte in each block and in the footer, truncation,
 * and random damage behind a valid checksum must give an error naming the
 * right offset region, never a crash.
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
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "cache.h"
#include "env.h"
#include "kv.h"
#include "kv_test_util.h"
#include "table.h"
#include "table_fmt.h"

/* ---- a model of a table --------------------------------------------------- */

struct ment {
	uint8_t ik[32]; /* user key + trailer */
	size_t iklen;
	size_t vlen;
	uint32_t vseed;
};

struct model {
	struct ment *e;
	size_t n, cap;
	struct kv_rtomb *t;
	size_t nt;
};

static void fill_value(uint8_t *v, size_t len, uint32_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i < len; i++)
		v[i] = (uint8_t)(kvt_rand(&s) >> 24);
}

static void model_add(struct model *m, const char *key, uint64_t lsn, unsigned kind, size_t vlen,
		      uint32_t vseed)
{
	size_t kl = strlen(key);
	struct ment *e;

	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->e = realloc(m->e, m->cap * sizeof(*m->e));
		assert_non_null(m->e);
	}
	e = &m->e[m->n++];
	assert_true(kl + 8 <= sizeof(e->ik));
	kv_ikey_make(e->ik, key, kl, lsn, kind);
	e->iklen = kl + 8;
	e->vlen = kind == KV_IK_PUT ? vlen : 0;
	e->vseed = vseed;
}

static void free_tombs(struct model *m)
{
	for (size_t i = 0; i < m->nt; i++) {
		free((void *)m->t[i].start);
		free((void *)m->t[i].end);
	}
	free(m->t);
	m->t = NULL;
	m->nt = 0;
}

static void model_free(struct model *m)
{
	free_tombs(m);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* Keys "k%07u" for even numbers; the odd ones are absent. */
static void key_of(char *out, unsigned i)
{
	snprintf(out, 16, "k%07u", i);
}

/* @nkeys user keys, 1..4 versions each, lsns descending within a key. */
static void model_random(struct model *m, unsigned nkeys, uint64_t *rs)
{
	char k[16];

	for (unsigned i = 0; i < nkeys; i++) {
		unsigned nv = 1 + (unsigned)(kvt_rand(rs) % 4);
		uint64_t lsn = 1000 + kvt_rand(rs) % 100000;

		key_of(k, 2 * i);
		for (unsigned v = 0; v < nv; v++) {
			uint64_t r = kvt_rand(rs) % 1000;
			size_t vlen = r < 700 ? r % 101 :
				      r < 995 ? 100 + r * 4 :
						kvt_rand(rs) % 102401;

			model_add(m, k, lsn, kvt_rand(rs) % 5 ? KV_IK_PUT : KV_IK_DEL, vlen,
				  (uint32_t)kvt_rand(rs));
			lsn -= 1 + kvt_rand(rs) % 50;
		}
	}
}

/* ---- fixtures ----------------------------------------------------------------- */

struct fx {
	char *dir;
	char path[512];
	struct kvt_log log;
	struct kv_options opt;
	struct kv_env *env;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = kvt_mkdtemp("table");
	snprintf(f->path, sizeof(f->path), "%s/" KV_TABLE_NAME_FMT, f->dir, 5ull);
	f->env = kv_env_posix();
	kvt_options(&f->opt, f->env, &f->log);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	kvt_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void build(struct fx *f, const struct model *m, const struct kv_table_build_opts *o,
		  struct kv_table_props *pr)
{
	struct kv_table_builder *b;
	uint8_t *v = malloc(102400 + 1);

	unlink(f->path);
	assert_int_equal(kv_tb_create(f->env, &f->opt, f->path, 5, o, &b), 0);
	for (size_t i = 0; i < m->n; i++) {
		fill_value(v, m->e[i].vlen, m->e[i].vseed);
		assert_int_equal(kv_tb_add(b, m->e[i].ik, m->e[i].iklen, v, m->e[i].vlen), 0);
	}
	for (size_t i = 0; i < m->nt; i++)
		assert_int_equal(kv_tb_add_rangedel(b, m->t[i].start, m->t[i].slen, m->t[i].end,
						    m->t[i].elen, m->t[i].lsn),
				 0);
	assert_int_equal(kv_tb_entries(b), m->n);
	assert_int_equal(kv_tb_finish(b, pr), 0);
	free(v);
}

static struct kv_table *topen(struct fx *f, struct kv_cache *c)
{
	struct kv_table *t = NULL;

	assert_int_equal(kv_table_open(f->env, &f->opt, f->path, 5, 0, c, &t), 0);
	return t;
}

/* ---- lookups and iteration against the model -------------------------------- */

struct hit {
	int n;
	unsigned kind;
	uint64_t lsn;
	uint8_t *val;
	size_t vlen;
};

static void on_hit(void *arg, unsigned kind, uint64_t lsn, const void *val, size_t vlen)
{
	struct hit *h = arg;

	h->n++;
	h->kind = kind;
	h->lsn = lsn;
	h->vlen = vlen;
	free(h->val);
	h->val = malloc(vlen + 1);
	memcpy(h->val, val, vlen);
}

static void check_value(const struct ment *e, const uint8_t *val, size_t vlen)
{
	uint8_t *x = malloc(e->vlen + 1);

	assert_int_equal(vlen, e->vlen);
	fill_value(x, e->vlen, e->vseed);
	assert_memory_equal(val, x, vlen);
	free(x);
}

/* The model's answer: the first version of @key with lsn < snap, or NULL. */
static const struct ment *model_get(const struct model *m, const char *key, uint64_t snap)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i < m->n; i++) {
		const struct ment *e = &m->e[i];

		if (!kv_ukey_cmp(e->ik, e->iklen - 8, key, kl) &&
		    kv_ikey_lsn(e->ik, e->iklen) < snap)
			return e;
	}
	return NULL;
}

static void check_get(struct kv_table *t, const struct model *m, const char *key, uint64_t snap)
{
	const struct ment *x = model_get(m, key, snap);
	struct hit h = { 0 };
	int r = kv_table_get(t, key, strlen(key), snap, on_hit, &h);

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
static void check_gets(struct kv_table *t, const struct model *m, size_t step)
{
	char k[16];

	for (size_t i = 0; i < m->n; i += step) {
		const struct ment *e = &m->e[i];
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

static void expect_entry(struct kv_iiter *it, const struct ment *e)
{
	assert_true(it->valid);
	assert_int_equal(it->klen, e->iklen);
	assert_memory_equal(it->key, e->ik, e->iklen);
	check_value(e, it->val, it->vlen);
}

static void check_scan(struct kv_table *t, const struct model *m)
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
static void check_seeks(struct kv_table *t, const struct model *m, uint64_t *rs, int n)
{
	static const unsigned kinds[] = { KV_IK_DEL, KV_IK_PUT, KV_IK_SEEK };
	struct kv_iiter *it;
	uint8_t ik[32];
	char k[16];

	assert_int_equal(kv_table_iter(t, &it), 0);
	for (int r = 0; r < n; r++) {
		size_t lo = 0;

		key_of(k, (unsigned)(kvt_rand(rs) % (m->n + 4)));
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

static void check_table(struct fx *f, const struct model *m, struct kv_cache *c, uint64_t seed)
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
	struct fx *f = *state;
	uint64_t rs = kvt_seed(with_cache ? "test_table.cache" : "test_table.roundtrip");
	struct kv_table_props pr;
	struct model m = { 0 };
	struct kv_cache *c = NULL;
	struct kv_table *t;

	model_random(&m, 1500, &rs);
	model_add(&m, "zz-big", 7, KV_IK_PUT, 100 << 10, 1); /* 100 KiB: many blocks' worth */
	model_add(&m, "zz-empty", 9, KV_IK_PUT, 0, 2);
	build(f, &m, NULL, &pr);
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
	model_free(&m);
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
	struct fx *f = *state;
	uint64_t rs = kvt_seed("test_table.small_blocks");
	struct model m = { 0 };
	struct kv_table_props pr;

	model_random(&m, 300, &rs);
	for (int ri = 1; ri <= 2; ri++) {
		struct kv_table_build_opts o = { .block_size = 100,
						 .restart_interval = ri,
						 .bloom_bits_per_key = 4 };

		build(f, &m, &o, &pr);
		check_table(f, &m, NULL, rs);
		kv_table_props_free(&pr);
	}
	model_free(&m);
}

static void test_empty_table(void **state)
{
	struct fx *f = *state;
	struct kv_table_props pr;
	struct model m = { 0 };
	struct kv_iiter *it;
	struct kv_table *t;

	build(f, &m, NULL, &pr);
	assert_int_equal(pr.entries, 0);
	assert_null(pr.smallest);
	assert_null(pr.largest);
	assert_int_equal(pr.data_bytes, 0);
	t = topen(f, NULL);
	assert_int_equal(kv_table_get(t, "a", 1, UINT64_MAX, on_hit, NULL), 0);
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

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *p;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	*n = (size_t)ftell(fp);
	rewind(fp);
	p = malloc(*n + 1);
	assert_int_equal(fread(p, 1, *n, fp), *n);
	fclose(fp);
	return p;
}

/* The footer's handles, read as kv/FORMAT.md says. */
struct handles {
	uint64_t off[4], size[4]; /* filter, rangedel, props, index */
	uint64_t footer;
};

static void read_handles(const uint8_t *file, size_t n, struct handles *h)
{
	const uint8_t *fp = file + n - 88;

	h->footer = n - 88;
	for (int i = 0; i < 4; i++) {
		h->off[i] = kv_get_le64(fp + 8 + 16 * i);
		h->size[i] = kv_get_le64(fp + 16 + 16 * i);
	}
	assert_int_equal(kv_get_le64(fp + 80), 0x314c4254564b564cull);
	assert_int_equal(kv_get_le32(fp + 76), KV_FORMAT_VERSION);
	assert_int_equal(kv_get_le32(fp + 72), 88);
}

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
	struct fx *f = *state;
	struct kv_table_props pr;
	struct model m = { 0 };
	struct handles h;
	uint8_t *file, *flt;
	unsigned fp = 0, k;
	uint64_t nbits;
	char key[16];
	size_t n;

	for (unsigned i = 0; i < 10000; i++) {
		key_of(key, 2 * i);
		model_add(&m, key, 1 + i, KV_IK_PUT, 1, i);
	}
	build(f, &m, NULL, &pr);
	file = slurp(f->path, &n);
	read_handles(file, n, &h);
	flt = file + h.off[0];
	k = flt[h.size[0] - 1];
	nbits = (h.size[0] - 1) * 8;
	assert_int_equal(k, 7); /* round(10 * 0.69) */
	assert_int_equal(nbits, 100000);
	for (unsigned i = 0; i < 10000; i++) {
		key_of(key, 2 * i);
		assert_true(doc_bloom_maybe(flt, nbits, k, key));
		key_of(key, 2 * i + 1);
		fp += doc_bloom_maybe(flt, nbits, k, key);
	}
	fprintf(stderr, "bloom: %u false positives in 10000 absent keys\n", fp);
	assert_true(fp < 500); /* < 5%; about 1% expected */
	free(file);
	kv_table_props_free(&pr);
	model_free(&m);
}

/* ---- range tombstones ------------------------------------------------------------- */

static void add_tomb(struct model *m, const char *s, const char *e, uint64_t lsn)
{
	m->t = realloc(m->t, (m->nt + 1) * sizeof(*m->t));
	m->t[m->nt++] = (struct kv_rtomb){ (const uint8_t *)strdup(s), strlen(s),
					   (const uint8_t *)strdup(e), strlen(e), lsn };
}

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
	struct fx *f = *state;
	uint64_t rs = kvt_seed("test_table.rangedels");
	struct kv_table_props pr;
	struct model m = { 0 };
	struct kv_rdset *want;
	struct kv_table *t;
	char a[16], b[16];

	model_random(&m, 200, &rs);
	for (int i = 0; i < 100; i++) {
		unsigned x = (unsigned)(kvt_rand(&rs) % 500), y = (unsigned)(kvt_rand(&rs) % 500);

		key_of(a, x < y ? x : y);
		key_of(b, (x < y ? y : x) + 1);
		add_tomb(&m, a, b, 1 + kvt_rand(&rs) % 200000);
	}
	add_tomb(&m, "a", "b", 3);	   /* before every entry: widens smallest */
	add_tomb(&m, "zz", "zzz", 300000); /* after: widens largest */
	build(f, &m, NULL, &pr);
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
	add_tomb(&m, "m", "p", 5);
	add_tomb(&m, "c", "x", 4);
	build(f, &m, NULL, &pr);
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
	model_free(&m);
}

/* ---- builder misuse -------------------------------------------------------------------- */

static void test_builder_errors(void **state)
{
	struct fx *f = *state;
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
	assert_int_equal(kv_table_open(f->env, &f->opt, f->path, 5, 0, NULL,
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
static int build_faulty(struct fx *f, const struct model *m, const struct kv_fault_rules *r)
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
		fill_value(v, m->e[i].vlen < 100 ? m->e[i].vlen : 100, m->e[i].vseed);
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
	struct fx *f = *state;
	uint64_t rs = 7;
	struct model m = { 0 };
	struct kv_fault_rules r = { .enospc_after_bytes = 100000 };

	model_random(&m, 20000, &rs);
	assert_int_equal(build_faulty(f, &m, &r), -ENOSPC);
	assert_int_equal(access(f->path, F_OK), -1);
	r = (struct kv_fault_rules){ .fail_sync_after = 1 };
	assert_int_equal(build_faulty(f, &m, &r), -EIO);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_non_null(strstr(f->log.text, f->path));
	r = (struct kv_fault_rules){ .short_writes = 1 };
	assert_int_equal(build_faulty(f, &m, &r), 0);
	assert_int_equal(kv_table_check(f->env, f->path, 5, NULL, NULL), 0);
	model_free(&m);
}

/* ---- concurrent readers sharing a small cache ------------------------------------------ */

struct reader {
	struct kv_table *t;
	const struct model *m;
	uint64_t seed;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	char k[16];

	for (int i = 0; i < 2000; i++) {
		const struct ment *e = &r->m->e[kvt_rand(&r->seed) % r->m->n];
		struct hit h = { 0 };

		memcpy(k, e->ik, e->iklen - 8);
		k[e->iklen - 8] = 0;
		if (kv_table_get(r->t, k, e->iklen - 8, kv_ikey_lsn(e->ik, e->iklen) + 1, on_hit,
				 &h) != 1 ||
		    h.lsn != kv_ikey_lsn(e->ik, e->iklen) || h.vlen != e->vlen)
			abort();
		free(h.val);
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("test_table.concurrent");
	struct kv_table_props pr;
	struct reader r[4];
	pthread_t th[4];
	struct model m = { 0 };
	struct kv_cache *c;
	struct kv_table *t;

	model_random(&m, 1000, &rs);
	build(f, &m, NULL, &pr);
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
	model_free(&m);
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
static void build_golden(struct fx *f, const char *path)
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
	struct fx *f = *state;
	char gpath[1024], path[600];
	size_t n, gn;
	uint8_t *built, *gold;
	struct kv_table *t;
	struct hit h = { 0 };

	golden_path(gpath, sizeof(gpath));
	snprintf(path, sizeof(path), "%s/" KV_TABLE_NAME_FMT, f->dir, 7ull);
	build_golden(f, path);
	built = slurp(path, &n);
	if (getenv("KV_REGEN_GOLDEN") && atoi(getenv("KV_REGEN_GOLDEN"))) {
		FILE *fp = fopen(gpath, "wb");

		assert_non_null(fp);
		assert_int_equal(fwrite(built, 1, n, fp), n);
		fclose(fp);
		fprintf(stderr, "golden: rewrote %s (%zu bytes)\n", gpath, n);
	}
	gold = slurp(gpath, &gn);
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
	assert_int_equal(kv_table_open(f->env, &f->opt, gpath, 7, gn, NULL, &t), 0);
	assert_int_equal(kv_table_get(t, "banana", 6, UINT64_MAX, on_hit, &h), 1);
	assert_int_equal(h.lsn, 0x0120);
	assert_memory_equal(h.val, "yellow", 6);
	assert_int_equal(kv_table_get(t, "apple", 5, 0x0102, on_hit, &h), 1);
	assert_int_equal(h.kind, KV_IK_DEL);
	assert_int_equal(kv_rdset_cover(kv_table_rangedels(t), "banana", 6, UINT64_MAX), 0x0125);
	assert_int_equal(kv_table_props(t)->entries, 5);
	kv_table_close(t);
	assert_int_equal(kv_table_check(f->env, gpath, 7, NULL, NULL), 0);
	free(h.val);
	free(built);
	free(gold);
}

/* ---- corruption -------------------------------------------------------------------------- */

struct reports {
	int n;
	uint64_t lo, hi; /* every offset must lie in [lo, hi) */
	int outside;
};

static void on_report(void *arg, const char *file, uint64_t off, const char *problem)
{
	struct reports *r = arg;

	r->n++;
	if (off < r->lo || off >= r->hi) {
		r->outside++;
		fprintf(stderr, "report outside [%llu, %llu): %s: offset %llu: %s\n",
			(unsigned long long)r->lo, (unsigned long long)r->hi, file,
			(unsigned long long)off, problem);
	}
}

static void put_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, n, fp), n);
	fclose(fp);
}

/* Open, then read everything: 0 if the damage went unseen, else the error. */
static int read_all(struct fx *f, const struct model *m, uint64_t size)
{
	struct kv_iiter *it;
	struct kv_table *t;
	struct hit h = { 0 };
	char k[16];
	int err = kv_table_open(f->env, &f->opt, f->path, 5, size, NULL, &t), r;

	if (err)
		return err;
	assert_int_equal(kv_table_iter(t, &it), 0);
	for (it->ops->seek_first(it); it->valid; it->ops->next(it))
		;
	err = it->err;
	it->ops->destroy(it);
	for (size_t i = 0; i < m->n; i++) {
		memcpy(k, m->e[i].ik, m->e[i].iklen - 8);
		k[m->e[i].iklen - 8] = 0;
		r = kv_table_get(t, k, m->e[i].iklen - 8, UINT64_MAX, on_hit, &h);
		if (r < 0 && !err)
			err = r;
	}
	free(h.val);
	kv_table_close(t);
	return err;
}

/* The data blocks [off, off + size + 16), from the index (white box). */
static size_t data_blocks(const uint8_t *file, const struct handles *hd, uint64_t *lo, uint64_t *hi)
{
	struct kv_tbl_err e;
	struct kv_bcur c;
	struct kv_blk b;
	size_t n = 0;

	assert_int_equal(kv_blk_init(&b, file + hd->off[3], hd->size[3], hd->off[3], 8, &e), 0);
	for (int r = kv_bcur_first(&c, &b, &e); r == 1; r = kv_bcur_next(&c, &e), n++) {
		const uint8_t *v = c.val;
		uint64_t sz = 0;

		assert_int_equal(kv_varint_get(&v, c.val + c.vlen, &lo[n]), 0);
		assert_int_equal(kv_varint_get(&v, c.val + c.vlen, &sz), 0);
		hi[n] = lo[n] + sz + 16;
	}
	return n;
}

/* Flip byte @pos; expect an error from open/read and a report in [lo, hi). */
static void flip_one(struct fx *f, const struct model *m, const uint8_t *orig, size_t n,
		     uint64_t pos, uint64_t lo, uint64_t hi)
{
	uint8_t *p = malloc(n);
	struct reports r = { .lo = lo, .hi = hi };
	int err;

	memcpy(p, orig, n);
	p[pos] ^= 0x20;
	put_file(f->path, p, n);
	f->log.len = 0;
	f->log.text[0] = 0;
	err = read_all(f, m, 0);
	if (err != -EBADMSG && err != -EUCLEAN && err != -EPROTONOSUPPORT)
		fail_msg("flip at %llu: error %d", (unsigned long long)pos, err);
	assert_non_null(strstr(f->log.text, f->path));
	assert_non_null(strstr(f->log.text, "offset"));
	assert_true(kv_table_check(f->env, f->path, 5, on_report, &r) > 0);
	assert_true(r.n > 0);
	assert_int_equal(r.outside, 0);
	free(p);
}

static void build_for_damage(struct fx *f, struct model *m, uint8_t **file, size_t *n,
			     struct handles *hd)
{
	uint64_t rs = 42;
	struct kv_table_props pr;

	model_random(m, 300, &rs);
	add_tomb(m, "k0000010", "k0000020", 5000);
	add_tomb(m, "k0000015", "k0000030", 6000);
	build(f, m, NULL, &pr);
	kv_table_props_free(&pr);
	*file = slurp(f->path, n);
	read_handles(*file, *n, hd);
}

static void test_flip_each_block(void **state)
{
	struct fx *f = *state;
	uint64_t lo[4096], hi[4096];
	struct model m = { 0 };
	struct handles hd;
	uint8_t *file;
	size_t n, nb;

	build_for_damage(f, &m, &file, &n, &hd);
	nb = data_blocks(file, &hd, lo, hi);
	assert_true(nb > 3);
	for (size_t i = 0; i < nb; i += nb / 3) { /* data blocks: first, middle, last byte */
		flip_one(f, &m, file, n, lo[i], lo[i], hi[i]);
		flip_one(f, &m, file, n, (lo[i] + hi[i]) / 2, lo[i], hi[i]);
		flip_one(f, &m, file, n, hi[i] - 1, lo[i], hi[i]);
	}
	for (int b = 0; b < 4; b++) { /* filter, range-del, props, index */
		uint64_t s = hd.off[b], e = hd.off[b] + hd.size[b] + 16;

		for (uint64_t pos = s; pos < e; pos += (e - s) / 7 + 1)
			flip_one(f, &m, file, n, pos, s, e);
		flip_one(f, &m, file, n, e - 1, s, e);
	}
	for (uint64_t pos = hd.footer; pos < n; pos++) /* every footer byte */
		flip_one(f, &m, file, n, pos, hd.footer, n);
	free(file);
	model_free(&m);
}

static void test_truncate(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	struct handles hd;
	uint8_t *file;
	size_t n;

	build_for_damage(f, &m, &file, &n, &hd);
	const size_t lens[] = { n - 1, n - 88, n / 2, 87, 10, 0 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct reports r = { .lo = 0, .hi = UINT64_MAX };

		put_file(f->path, file, lens[i]);
		assert_int_equal(read_all(f, &m, 0), -EUCLEAN);
		assert_int_equal(read_all(f, &m, n), -EUCLEAN); /* told the size */
		assert_true(kv_table_check(f->env, f->path, 5, on_report, &r) > 0);
	}
	free(file);
	model_free(&m);
}

/* Re-seal a block (or the footer) after damage, so the decoders see it. */
static void reseal(uint8_t *p, uint64_t off, uint64_t size)
{
	kv_tbl_seal(p + off, size, p[off + size]);
}

static void reseal_footer(uint8_t *p, size_t n)
{
	kv_put_le64(p + n - 88, XXH3_64bits_withSeed(p + n - 80, 80, 0));
}

static void test_version_and_identity(void **state)
{
	struct fx *f = *state;
	struct reports r = { .lo = 0, .hi = UINT64_MAX };
	struct model m = { 0 };
	struct kv_table *t;
	struct handles hd;
	uint8_t *file;
	size_t n;

	build_for_damage(f, &m, &file, &n, &hd);
	kv_put_le32(file + n - 12, KV_FORMAT_VERSION + 1);
	reseal_footer(file, n);
	put_file(f->path, file, n);
	assert_int_equal(read_all(f, &m, 0), -EPROTONOSUPPORT);
	assert_int_equal(kv_table_check(f->env, f->path, 5, on_report, &r), 1);
	kv_put_le32(file + n - 12, KV_FORMAT_VERSION);
	reseal_footer(file, n);
	put_file(f->path, file, n);
	assert_int_equal(kv_table_open(f->env, &f->opt, f->path, 6, 0, NULL, &t), -EUCLEAN);
	r = (struct reports){ .lo = hd.off[2], .hi = hd.off[2] + hd.size[2] };
	assert_int_equal(kv_table_check(f->env, f->path, 6, on_report, &r), 1);
	assert_int_equal(r.outside, 0);
	free(file);
	model_free(&m);
}

/* Keys out of order behind a valid checksum: only the checker can tell. */
static void test_order_damage(void **state)
{
	struct fx *f = *state;
	uint64_t lo[4096], hi[4096];
	struct model m = { 0 };
	struct reports r;
	struct handles hd;
	uint8_t *file;
	size_t n;

	build_for_damage(f, &m, &file, &n, &hd);
	assert_true(data_blocks(file, &hd, lo, hi) > 2);
	assert_int_equal(file[lo[1]], 0); /* shared 0 at the first restart */
	file[lo[1] + 3] = 'a';		  /* "k..." -> "a...": below block 0's keys */
	reseal(file, lo[1], hi[1] - lo[1] - 16);
	put_file(f->path, file, n);
	r = (struct reports){ .lo = lo[1], .hi = hi[1] };
	assert_true(kv_table_check(f->env, f->path, 5, on_report, &r) > 0);
	assert_true(r.n > r.outside);
	(void)read_all(f, &m, 0);
	free(file);
	model_free(&m);
}

/* Random damage behind valid checksums: errors or wrong answers are fine,
 * crashes and out-of-bounds reads (ASan) are not. */
static void test_damage_behind_checksums(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("test_table.damage"), lo[4096], hi[4096];
	int rounds = 400 * kvt_scale();
	struct model m = { 0 };
	struct handles hd;
	uint8_t *file, *p;
	size_t n, nb;

	build_for_damage(f, &m, &file, &n, &hd);
	nb = data_blocks(file, &hd, lo, hi);
	p = malloc(n);
	for (int i = 0; i < rounds; i++) {
		size_t w = kvt_rand(&rs) % (nb + 5), hits = 1 + kvt_rand(&rs) % 3;
		uint64_t off = w < nb ? lo[w] : w < nb + 4 ? hd.off[w - nb] : hd.footer;
		uint64_t size = w < nb ? hi[w] - lo[w] - 16 : w < nb + 4 ? hd.size[w - nb] : 80;

		memcpy(p, file, n);
		for (size_t j = 0; j < hits; j++)
			p[off + (w == nb + 4 ? 8 : 0) + kvt_rand(&rs) % size] =
				(uint8_t)kvt_rand(&rs);
		if (w == nb + 4)
			reseal_footer(p, n);
		else
			reseal(p, off, size);
		put_file(f->path, p, n);
		(void)read_all(f, &m, 0);
		(void)kv_table_check(f->env, f->path, 5, NULL, NULL);
	}
	free(p);
	free(file);
	model_free(&m);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_name),
		T(test_golden),
		T(test_empty_table),
		T(test_roundtrip),
		T(test_roundtrip_cache),
		T(test_small_blocks),
		T(test_bloom),
		T(test_rangedels),
		T(test_builder_errors),
		T(test_write_faults),
		T(test_concurrent_readers),
		T(test_flip_each_block),
		T(test_truncate),
		T(test_version_and_identity),
		T(test_order_damage),
		T(test_damage_behind_checksums),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
