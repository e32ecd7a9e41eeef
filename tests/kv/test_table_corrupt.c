/* SPDX-License-Identifier: MIT */
/*
 * test_table_corrupt.c - damaged tables (kv/table_read.c, kv/table_check.c):
 * a flipped byte in each block and in the footer, truncation, a newer
 * version and another table's identity, keys out of order, a bad restart
 * entry found by a point read's binary search, and random damage
 * behind a valid checksum. Opening and reading everything must give an
 * error naming the file and an offset in the damaged region (the reader's
 * log, the checker's reports), never a crash or, under ASan, a read out of
 * bounds.
 *
 * Offsets of the blocks are read from the footer the way kv/FORMAT.md
 * describes it, independently of the reader's code (table_util.c); those
 * of the data blocks from the index, with the block decoders (white box).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_test_util.h"
#include "table.h"
#include "table_fmt.h"
#include "table_util.h"

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
static int read_all(struct tt_fx *f, const struct tt_model *m, uint64_t size)
{
	struct kv_iiter *it;
	struct kv_table *t;
	struct tt_hit h = { 0 };
	char k[16];
	int err = kv_table_open(f->env, &f->opt, f->path, 5, size, NULL, NULL, &t), r;

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
		r = kv_table_get(t, k, m->e[i].iklen - 8, UINT64_MAX, tt_on_hit, &h);
		if (r < 0 && !err)
			err = r;
	}
	free(h.val);
	kv_table_close(t);
	return err;
}

/* The data blocks [off, off + size + 16), from the index (white box). */
static size_t data_blocks(const uint8_t *file, const struct tt_handles *hd, uint64_t *lo,
			  uint64_t *hi)
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
static void flip_one(struct tt_fx *f, const struct tt_model *m, const uint8_t *orig, size_t n,
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

static void build_for_damage(struct tt_fx *f, struct tt_model *m, uint8_t **file, size_t *n,
			     struct tt_handles *hd)
{
	uint64_t rs = 42;
	struct kv_table_props pr;

	tt_model_random(m, 300, &rs);
	tt_add_tomb(m, "k0000010", "k0000020", 5000);
	tt_add_tomb(m, "k0000015", "k0000030", 6000);
	tt_build(f, m, NULL, &pr);
	kv_table_props_free(&pr);
	*file = tt_slurp(f->path, n);
	tt_read_handles(*file, *n, hd);
}

static void test_flip_each_block(void **state)
{
	struct tt_fx *f = *state;
	uint64_t lo[4096], hi[4096];
	struct tt_model m = { 0 };
	struct tt_handles hd;
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
	tt_model_free(&m);
}

static void test_truncate(void **state)
{
	struct tt_fx *f = *state;
	struct tt_model m = { 0 };
	struct tt_handles hd;
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
	tt_model_free(&m);
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
	struct tt_fx *f = *state;
	struct reports r = { .lo = 0, .hi = UINT64_MAX };
	struct tt_model m = { 0 };
	struct kv_table *t;
	struct tt_handles hd;
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
	assert_int_equal(kv_table_open(f->env, &f->opt, f->path, 6, 0, NULL, NULL, &t), -EUCLEAN);
	r = (struct reports){ .lo = hd.off[2], .hi = hd.off[2] + hd.size[2] };
	assert_int_equal(kv_table_check(f->env, f->path, 6, on_report, &r), 1);
	assert_int_equal(r.outside, 0);
	free(file);
	tt_model_free(&m);
}

/* Keys out of order behind a valid checksum: only the checker can tell. */
static void test_order_damage(void **state)
{
	struct tt_fx *f = *state;
	uint64_t lo[4096], hi[4096];
	struct tt_model m = { 0 };
	struct reports r;
	struct tt_handles hd;
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
	tt_model_free(&m);
}

/* A bad restart entry (behind a valid checksum) found by the binary search
 * of a point read: the error names the file and the entry's offset. */
static void test_restart_damage(void **state)
{
	struct tt_fx *f = *state;
	uint64_t lo[4096], hi[4096];
	struct tt_model m = { 0 };
	struct tt_handles hd;
	struct kv_table_props pr;
	uint8_t *file, *p;
	char key[16];
	size_t n;

	for (unsigned i = 0; i < 1000; i++) { /* small entries: many restarts */
		tt_key_of(key, i);
		tt_model_add(&m, key, 100 + i, KV_IK_PUT, 10, i);
	}
	tt_build(f, &m, NULL, &pr);
	kv_table_props_free(&pr);
	file = tt_slurp(f->path, &n);
	tt_read_handles(file, n, &hd);
	assert_true(data_blocks(file, &hd, lo, hi) > 2);
	p = malloc(n);
	for (int kind = 0; kind < 3; kind++) {
		uint64_t size = hi[1] - lo[1] - 16;
		uint32_t nr = kv_get_le32(file + lo[1] + size - 4);
		uint64_t lim = size - 4 - 4 * (uint64_t)nr, at;
		char want[64];

		assert_true(nr >= 3);
		/* the first restart point the search probes */
		at = lo[1] + kv_get_le32(file + lo[1] + lim + 4 * (nr / 2));
		memcpy(p, file, n);
		assert_int_equal(p[at], 0); /* shared */
		if (kind == 0)
			p[at] = 1; /* a shared prefix at a restart point */
		else if (kind == 1)
			p[at + 1] = 3; /* a key shorter than its trailer */
		else
			p[at + 2] = 0x7f; /* a longer value: may stay inside the entries */
		reseal(p, lo[1], size);
		put_file(f->path, p, n);
		f->log.len = 0;
		f->log.text[0] = 0;
		if (kind == 2) { /* wrong answers or an error, no crash (ASan) */
			(void)read_all(f, &m, 0);
			continue;
		}
		assert_int_equal(read_all(f, &m, 0), -EUCLEAN);
		snprintf(want, sizeof(want), "offset %llu: ", (unsigned long long)at);
		assert_non_null(strstr(f->log.text, f->path));
		assert_non_null(strstr(f->log.text, want));
	}
	free(p);
	free(file);
	tt_model_free(&m);
}

/* Random damage behind valid checksums: errors or wrong answers are fine,
 * crashes and out-of-bounds reads (ASan) are not. */
static void test_damage_behind_checksums(void **state)
{
	struct tt_fx *f = *state;
	uint64_t rs = kvt_seed("test_table.damage"), lo[4096], hi[4096];
	int rounds = 400 * kvt_scale();
	struct tt_model m = { 0 };
	struct tt_handles hd;
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
	tt_model_free(&m);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tt_setup, tt_teardown)
	const struct CMUnitTest tests[] = {
		T(test_flip_each_block),      /* caught by checksums */
		T(test_truncate),	      /* caught by sizes */
		T(test_version_and_identity), /* newer version, another file number */
		T(test_order_damage),	      /* behind a checksum: the checker */
		T(test_restart_damage),
		T(test_damage_behind_checksums), /* no crash, whatever the bytes */
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
