/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of tools/ycsb_gen.c: the request generators of kvbench ycsb
 * against theory, on counts drawn from fixed seeds (deterministic: nothing
 * here is timed).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ycsb_gen.h"

#define DRAWS 2000000u
#define SEED 42

static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

static void assert_near(double got, double want, double rel)
{
	if (fabs(got - want) > rel * want)
		fail_msg("got %g, want %g within %.1f%%", got, want, rel * 100);
}

/*
 * The exact distribution of Gray et al.'s generator (what YCSB draws): values
 * 0 and 1 by the exact zipf probabilities, and v >= 2 when
 * n * (eta * u - eta + 1)^alpha >= v, i.e. for u >= g(v) below.
 */
static double gray_below(const struct ycsb_zipf *z, uint64_t k)
{
	double u2 = (1 + z->half_pow) / z->zetan, g;

	if (k == 0)
		return 0;
	if (k == 1)
		return 1 / z->zetan;
	g = (pow((double)k / (double)z->items, 1 - z->theta) - 1 + z->eta) / z->eta;
	g = g > u2 ? g : u2;
	return g < 1 ? g : 1;
}

static double gray_prob(const struct ycsb_zipf *z, uint64_t k)
{
	return gray_below(z, k + 1) - gray_below(z, k);
}

/*
 * The true zipfian: (1) against the generator's own distribution, every
 * rank, by chi-square (999 d.f., 0.1% critical value 1143); (2) against
 * Zipf's law: ranks 0 and 1 are exact in Gray et al.'s method, the others
 * come from a continuous approximation of the CDF that overweights ranks
 * 2-9 (rank 2 by 17%, rank 9 by 1.5%) and underweights the tail by 3.5%;
 * the tolerances say so. 2M draws: rank 9's sampling error is about 0.5%.
 */
static void test_zipfian_matches_theory(void **state)
{
	enum { N = 1000 };
	struct ycsb_zipf z;
	uint64_t rng = ycsb_seed(SEED, 0), *cnt = calloc(N, sizeof(*cnt));
	double chi = 0, mass = 0;

	ycsb_zipf_init(&z, N, YCSB_ZIPF_THETA, -1);
	assert_near(z.zetan, ycsb_zeta(N, YCSB_ZIPF_THETA), 1e-12);
	for (unsigned i = 0; i < DRAWS; i++) {
		uint64_t v = ycsb_zipf_next(&z, N, &rng);

		assert_true(v < N);
		cnt[v]++;
	}
	for (int r = 0; r < N; r++) {
		double e = gray_prob(&z, (uint64_t)r) * DRAWS;

		chi += ((double)cnt[r] - e) * ((double)cnt[r] - e) / e;
		mass += gray_prob(&z, (uint64_t)r);
	}
	assert_near(mass, 1.0, 1e-9);
	assert_true(chi < 1143);
	assert_near((double)cnt[0] / DRAWS, ycsb_zipf_prob(&z, 0), 0.01);
	assert_near((double)cnt[1] / DRAWS, ycsb_zipf_prob(&z, 1), 0.01);
	for (int r = 2; r < 10; r++)
		assert_near((double)cnt[r] / DRAWS, ycsb_zipf_prob(&z, (uint64_t)r), 0.20);
	for (int r = 10; r < 20; r++)
		assert_near((double)cnt[r] / DRAWS, ycsb_zipf_prob(&z, (uint64_t)r), 0.05);
	/* Deciles of the rank space carry the mass Zipf's law gives them. */
	for (int d = 0; d < 10; d++) {
		double want = 0, got = 0;

		for (int r = d * N / 10; r < (d + 1) * N / 10; r++) {
			want += ycsb_zipf_prob(&z, (uint64_t)r);
			got += (double)cnt[r] / DRAWS;
		}
		assert_near(got, want, 0.05);
	}
	free(cnt);
}

/* A key space that grows extends zeta by the new terms only (YCSB). */
static void test_zipfian_grows(void **state)
{
	struct ycsb_zipf z;
	uint64_t rng = ycsb_seed(SEED, 1);

	ycsb_zipf_init(&z, 100, YCSB_ZIPF_THETA, -1);
	for (int i = 0; i < 1000; i++)
		assert_true(ycsb_zipf_next(&z, 5000, &rng) < 5000);
	assert_int_equal(z.items, 5000);
	assert_near(z.zetan, ycsb_zeta(5000, YCSB_ZIPF_THETA), 1e-9);
}

/*
 * Scrambling moves the popular keys around but keeps the profile: the
 * sorted frequencies of the scrambled generator over N keys are those of
 * the 10^10-item zipfian (ZETAN) folded into N by fnv64 mod N, computed here
 * exactly (the generator's own distribution) for the first 10^6 ranks, the
 * rest spread evenly.
 */
static void test_scrambled_keeps_profile(void **state)
{
	enum { N = 1000, EXACT = 1000000 };
	struct ycsb_counter ctr;
	struct ycsb_zipf proto;
	struct ycsb_keygen g;
	double *want = calloc(N, sizeof(*want)), *got = calloc(N, sizeof(*got)), head = 0;
	uint64_t hot = ycsb_fnv64(0) % N;
	double l1 = 0;

	assert_int_equal(ycsb_counter_init(&ctr, N), 0);
	ycsb_keygen_proto(YCSB_ZIPFIAN, N, &proto);
	assert_int_equal(proto.items, YCSB_SCRAMBLE_ITEMS);
	ycsb_keygen_init(&g, YCSB_ZIPFIAN, &ctr, N, &proto, ycsb_seed(SEED, 2));
	for (unsigned i = 0; i < DRAWS; i++)
		got[ycsb_keygen_next(&g)] += 1.0 / DRAWS;
	for (uint64_t r = 0; r < EXACT; r++) {
		double p = gray_prob(&proto, r);

		want[ycsb_fnv64(r) % N] += p;
		head += p;
	}
	for (int k = 0; k < N; k++)
		want[k] += (1 - head) / N;
	/* The most popular key is rank 0's hash, not key 0. */
	for (int k = 0; k < N; k++)
		assert_true(got[k] <= got[hot]);
	assert_near(got[hot], want[hot], 0.02);
	qsort(want, N, sizeof(*want), cmp_desc);
	qsort(got, N, sizeof(*got), cmp_desc);
	for (int k = 0; k < 10; k++)
		assert_near(got[k], want[k], 0.05);
	for (int k = 0; k < N; k++)
		l1 += fabs(got[k] - want[k]);
	assert_true(l1 < 0.03); /* total variation under 1.5% */
	ycsb_counter_destroy(&ctr);
	free(want);
	free(got);
}

/* latest: the newest acknowledged record is the most popular, then the one
 * before it, by Zipf's law; nothing not yet acknowledged is ever drawn. */
static void test_latest_follows_inserts(void **state)
{
	enum { START = 1000, MORE = 500 };
	struct ycsb_counter ctr;
	struct ycsb_zipf proto;
	struct ycsb_keygen g;
	uint64_t *cnt = calloc(START + MORE, sizeof(*cnt)), pending;

	assert_int_equal(ycsb_counter_init(&ctr, START), 0);
	ycsb_keygen_proto(YCSB_LATEST, START, &proto);
	ycsb_keygen_init(&g, YCSB_LATEST, &ctr, 0, &proto, ycsb_seed(SEED, 3));
	for (unsigned i = 0; i < DRAWS / 4; i++) {
		uint64_t k = ycsb_keygen_next(&g);

		assert_true(k < START);
		cnt[k]++;
	}
	assert_near((double)cnt[START - 1] / (DRAWS / 4), ycsb_zipf_prob(&proto, 0), 0.02);
	assert_near((double)cnt[START - 2] / (DRAWS / 4), ycsb_zipf_prob(&proto, 1), 0.03);
	assert_true(cnt[START - 2] > cnt[START - 3]);

	/* Out-of-order acknowledgements: the count waits for the gap. */
	pending = ycsb_counter_next(&ctr);
	assert_int_equal(pending, START);
	assert_int_equal(ycsb_counter_next(&ctr), START + 1);
	ycsb_counter_ack(&ctr, START + 1);
	assert_int_equal(ycsb_counter_count(&ctr), START);
	for (int i = 0; i < 1000; i++)
		assert_true(ycsb_keygen_next(&g) < START);
	ycsb_counter_ack(&ctr, pending);
	assert_int_equal(ycsb_counter_count(&ctr), START + 2);
	for (int i = 2; i < MORE; i++)
		ycsb_counter_ack(&ctr, ycsb_counter_next(&ctr));
	assert_int_equal(ycsb_counter_count(&ctr), START + MORE);

	memset(cnt, 0, (START + MORE) * sizeof(*cnt));
	for (unsigned i = 0; i < DRAWS / 4; i++) {
		uint64_t k = ycsb_keygen_next(&g);

		assert_true(k < START + MORE);
		cnt[k]++;
	}
	for (int k = 0; k < START + MORE - 1; k++)
		assert_true(cnt[k] < cnt[START + MORE - 1]);
	assert_near((double)cnt[START + MORE - 1] / (DRAWS / 4),
		    1.0 / ycsb_zeta(START + MORE, YCSB_ZIPF_THETA), 0.02);
	ycsb_counter_destroy(&ctr);
	free(cnt);
}

/* uniform: chi-square over 100 keys below the 0.1% critical value (99 d.f.:
 * 148.2), and it too follows the count. */
static void test_uniform_is_uniform(void **state)
{
	enum { N = 100 };
	struct ycsb_counter ctr;
	struct ycsb_keygen g;
	uint64_t cnt[N] = { 0 };
	double chi = 0, e = (double)DRAWS / N;

	assert_int_equal(ycsb_counter_init(&ctr, N), 0);
	ycsb_keygen_init(&g, YCSB_UNIFORM, &ctr, 0, NULL, ycsb_seed(SEED, 4));
	for (unsigned i = 0; i < DRAWS; i++)
		cnt[ycsb_keygen_next(&g)]++;
	for (int k = 0; k < N; k++)
		chi += ((double)cnt[k] - e) * ((double)cnt[k] - e) / e;
	assert_true(chi < 148.2);
	ycsb_counter_destroy(&ctr);
}

/* The workloads' operation mixes are YCSB's. */
static void test_workload_mix(void **state)
{
	static const struct {
		char name;
		enum ycsb_op op;
		double p;
	} mix[] = {
		{ 'A', YCSB_READ, 0.5 }, { 'A', YCSB_UPDATE, 0.5 },  { 'B', YCSB_READ, 0.95 },
		{ 'C', YCSB_READ, 1.0 }, { 'D', YCSB_INSERT, 0.05 }, { 'E', YCSB_SCAN, 0.95 },
		{ 'F', YCSB_RMW, 0.5 },
	};
	uint64_t rng = ycsb_seed(SEED, 5);

	assert_null(ycsb_workload_get('G'));
	assert_int_equal(ycsb_workload_get('d')->dist, YCSB_LATEST);
	assert_int_equal(ycsb_workload_get('E')->dist, YCSB_ZIPFIAN);
	for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
		const struct ycsb_workload *w = ycsb_workload_get(mix[i].name);
		unsigned n = 0;

		for (unsigned d = 0; d < 200000; d++)
			n += ycsb_op_next(w, &rng) == mix[i].op;
		assert_near(n / 200000.0, mix[i].p, 0.03);
	}
}

/* Keys are YCSB's hashed ones; values carry their record and check. */
static void test_records(void **state)
{
	char key[YCSB_KEY_MAX];
	uint8_t a[100], b[100];

	assert_true(ycsb_key(key, 0) > 4);
	assert_memory_equal(key, "user", 4);
	for (uint64_t i = 0; i < 1000; i++)
		assert_true((int64_t)ycsb_fnv64(i) >= 0);
	assert_true(ycsb_fnv64(1) != ycsb_fnv64(2));
	ycsb_value(a, sizeof(a), 7, 3);
	ycsb_value(b, sizeof(b), 7, 3);
	assert_memory_equal(a, b, sizeof(a));
	ycsb_value(b, sizeof(b), 7, 4);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(ycsb_value_check(a, sizeof(a), sizeof(a), 7), 0);
	assert_int_not_equal(ycsb_value_check(a, sizeof(a), sizeof(a), 8), 0);
	assert_int_not_equal(ycsb_value_check(a, sizeof(a) - 1, sizeof(a), 7), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zipfian_matches_theory),
		cmocka_unit_test(test_zipfian_grows),
		cmocka_unit_test(test_scrambled_keeps_profile),
		cmocka_unit_test(test_latest_follows_inserts),
		cmocka_unit_test(test_uniform_is_uniform),
		cmocka_unit_test(test_workload_mix),
		cmocka_unit_test(test_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
