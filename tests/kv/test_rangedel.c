/* SPDX-License-Identifier: MIT */
/*
 * test_rangedel.c - unit tests of kv/rangedel.c: fragmenting overlapping,
 * nested, adjacent and duplicate tombstones, ignoring void ones, and
 * kv_rdset_cover() against a brute-force model on random inputs (seed from
 * kvt_seed, KV_TEST_SEED to repeat).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ikey.h"
#include "kv_test_util.h"
#include "rangedel.h"

#define T(s, e, l)                                                                            \
	{                                                                                     \
		(const uint8_t *)(s), sizeof(s) - 1, (const uint8_t *)(e), sizeof(e) - 1, (l) \
	}

/* Expected fragment: bounds and lsns (descending, 0-terminated). */
struct xfrag {
	const char *start, *end;
	uint64_t lsns[8];
};

static void expect_frags(const struct kv_rdset *s, const struct xfrag *x, size_t n)
{
	assert_int_equal(kv_rdset_fragments(s), n);
	for (size_t i = 0; i < n; i++) {
		struct kv_rtomb b;
		const uint64_t *l;
		size_t nl, xn = 0;

		kv_rdset_fragment(s, i, &b, &l, &nl);
		assert_int_equal(b.slen, strlen(x[i].start));
		assert_memory_equal(b.start, x[i].start, b.slen);
		assert_int_equal(b.elen, strlen(x[i].end));
		assert_memory_equal(b.end, x[i].end, b.elen);
		while (x[i].lsns[xn])
			xn++;
		assert_int_equal(nl, xn);
		for (size_t j = 0; j < nl; j++)
			assert_int_equal(l[j], x[i].lsns[j]);
		assert_int_equal(b.lsn, l[0]);
	}
}

static uint64_t cover(const struct kv_rdset *s, const char *k, uint64_t snap)
{
	return kv_rdset_cover(s, k, strlen(k), snap);
}

static void test_empty(void **state)
{
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(NULL, 0, &s), 0);
	assert_int_equal(kv_rdset_fragments(s), 0);
	assert_int_equal(cover(s, "a", UINT64_MAX), 0);
	kv_rdset_free(s);
	kv_rdset_free(NULL);
}

static void test_single(void **state)
{
	const struct kv_rtomb t[] = { T("b", "d", 10) };
	const struct xfrag x[] = { { "b", "d", { 10 } } };
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(t, 1, &s), 0);
	expect_frags(s, x, 1);
	assert_int_equal(cover(s, "a", 100), 0);
	assert_int_equal(cover(s, "b", 11), 10);
	assert_int_equal(cover(s, "b", 10), 0); /* snapshot does not see it */
	assert_int_equal(cover(s, "c", UINT64_MAX), 10);
	assert_int_equal(cover(s, "czzz", 11), 10);
	assert_int_equal(cover(s, "d", 11), 0); /* end is exclusive */
	assert_int_equal(cover(s, "e", 11), 0);
	kv_rdset_free(s);
}

static void test_overlap(void **state)
{
	const struct kv_rtomb t[] = { T("b", "d", 7), T("a", "c", 5) };
	const struct xfrag x[] = {
		{ "a", "b", { 5 } },
		{ "b", "c", { 7, 5 } },
		{ "c", "d", { 7 } },
	};
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(t, 2, &s), 0);
	expect_frags(s, x, 3);
	assert_int_equal(cover(s, "b", 100), 7);
	assert_int_equal(cover(s, "b", 7), 5);
	assert_int_equal(cover(s, "b", 5), 0);
	kv_rdset_free(s);
}

static void test_nested(void **state)
{
	const struct kv_rtomb t[] = { T("a", "z", 3), T("c", "e", 9), T("d", "e", 1) };
	const struct xfrag x[] = {
		{ "a", "c", { 3 } },
		{ "c", "d", { 9, 3 } },
		{ "d", "e", { 9, 3, 1 } },
		{ "e", "z", { 3 } },
	};
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(t, 3, &s), 0);
	expect_frags(s, x, 4);
	assert_int_equal(cover(s, "dd", 3), 1);
	assert_int_equal(cover(s, "y", 100), 3);
	kv_rdset_free(s);
}

static void test_adjacent_and_gap(void **state)
{
	const struct kv_rtomb t[] = { T("b", "c", 2), T("a", "b", 1), T("x", "y", 4) };
	const struct xfrag x[] = {
		{ "a", "b", { 1 } },
		{ "b", "c", { 2 } },
		{ "x", "y", { 4 } },
	};
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(t, 3, &s), 0);
	expect_frags(s, x, 3);
	assert_int_equal(cover(s, "b", 100), 2);
	assert_int_equal(cover(s, "m", 100), 0); /* in the gap */
	kv_rdset_free(s);
}

static void test_duplicate(void **state)
{
	const struct kv_rtomb t[] = { T("a", "c", 4), T("a", "c", 6), T("a", "c", 4) };
	const struct xfrag x[] = { { "a", "c", { 6, 4 } } };
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(t, 3, &s), 0);
	expect_frags(s, x, 1);
	kv_rdset_free(s);
}

static void test_void_ignored(void **state)
{
	const struct kv_rtomb t[] = { T("c", "a", 5), T("b", "b", 5), T("m", "n", 0),
				      T("e", "f", 2) };
	const struct xfrag x[] = { { "e", "f", { 2 } } };
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(t, 4, &s), 0);
	expect_frags(s, x, 1);
	assert_int_equal(cover(s, "b", 100), 0);
	kv_rdset_free(s);
}

/* Keys that are prefixes of each other order by length; "a" .. "a\0". */
static void test_prefix_keys(void **state)
{
	const uint8_t a0[] = { 'a', 0 };
	const struct kv_rtomb t[] = {
		{ (const uint8_t *)"a", 1, a0, 2, 3 },
		{ (const uint8_t *)"", 0, (const uint8_t *)"a", 1, 8 },
	};
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(t, 2, &s), 0);
	assert_int_equal(kv_rdset_fragments(s), 2);
	assert_int_equal(kv_rdset_cover(s, "", 0, 100), 8);
	assert_int_equal(kv_rdset_cover(s, "\0", 1, 100), 8);
	assert_int_equal(kv_rdset_cover(s, "a", 1, 100), 3);
	assert_int_equal(kv_rdset_cover(s, a0, 2, 100), 0);
	assert_int_equal(kv_rdset_cover(s, "ab", 2, 100), 0);
	kv_rdset_free(s);
}

/* The set keeps its own copies of the keys. */
static void test_keys_copied(void **state)
{
	char s1[] = "bb", e1[] = "dd";
	struct kv_rtomb t = { (uint8_t *)s1, 2, (uint8_t *)e1, 2, 5 };
	struct kv_rdset *s;

	assert_int_equal(kv_rdset_build(&t, 1, &s), 0);
	memset(s1, 'z', 2);
	memset(e1, 'z', 2);
	assert_int_equal(cover(s, "c", 6), 5);
	assert_int_equal(cover(s, "zz", 6), 0);
	kv_rdset_free(s);
}

/* ---- random inputs against a brute-force model -------------------------- */

#define RKEYS 40 /* keys "" and 1..2 letters of "abc" + some longer */

static size_t rkey(uint64_t *rs, char *out)
{
	size_t n = kvt_rand(rs) % 4;

	for (size_t i = 0; i < n; i++)
		out[i] = (char)('a' + kvt_rand(rs) % 3);
	out[n] = 0;
	return n;
}

static uint64_t model_cover(const struct kv_rtomb *t, size_t n, const char *k, size_t klen,
			    uint64_t snap)
{
	uint64_t best = 0;

	for (size_t i = 0; i < n; i++)
		if (t[i].lsn < snap && t[i].lsn > best &&
		    kv_ukey_cmp(t[i].start, t[i].slen, k, klen) <= 0 &&
		    kv_ukey_cmp(k, klen, t[i].end, t[i].elen) < 0)
			best = t[i].lsn;
	return best;
}

static void check_invariants(const struct kv_rdset *s)
{
	struct kv_rtomb prev = { 0 }, b;
	const uint64_t *l;
	size_t nl;

	for (size_t i = 0; i < kv_rdset_fragments(s); i++) {
		kv_rdset_fragment(s, i, &b, &l, &nl);
		assert_true(kv_ukey_cmp(b.start, b.slen, b.end, b.elen) < 0);
		if (i)
			assert_true(kv_ukey_cmp(prev.end, prev.elen, b.start, b.slen) <= 0);
		assert_true(nl >= 1);
		for (size_t j = 0; j < nl; j++)
			assert_true(l[j] > 0 && (j == 0 || l[j] < l[j - 1]));
		prev = b;
	}
}

static void test_random(void **state)
{
	uint64_t rs = kvt_seed("test_rangedel.random");
	int rounds = 300 * kvt_scale();

	for (int r = 0; r < rounds; r++) {
		size_t n = kvt_rand(&rs) % 12;
		char keys[2 * 12][4], q[4];
		struct kv_rtomb t[12];
		struct kv_rdset *s;

		for (size_t i = 0; i < n; i++) {
			t[i].slen = rkey(&rs, keys[2 * i]);
			t[i].elen = rkey(&rs, keys[2 * i + 1]);
			t[i].start = (uint8_t *)keys[2 * i];
			t[i].end = (uint8_t *)keys[2 * i + 1];
			t[i].lsn = kvt_rand(&rs) % 20; /* 0 and empty ranges included */
		}
		assert_int_equal(kv_rdset_build(t, n, &s), 0);
		check_invariants(s);
		for (int k = 0; k < RKEYS; k++) {
			size_t ql = rkey(&rs, q);

			for (uint64_t snap = 0; snap <= 21; snap++)
				assert_int_equal(kv_rdset_cover(s, q, ql, snap),
						 model_cover(t, n, q, ql, snap));
			assert_int_equal(kv_rdset_cover(s, q, ql, UINT64_MAX),
					 model_cover(t, n, q, ql, UINT64_MAX));
		}
		kv_rdset_free(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_adjacent_and_gap),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_void_ignored),
		cmocka_unit_test(test_prefix_keys),
		cmocka_unit_test(test_keys_copied),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
