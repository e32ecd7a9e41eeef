/* SPDX-License-Identifier: MIT */
/* Unit tests of kv/logbuf.c: reservation, epochs, sealing, the full buffer. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv_test_util.h"
#include "logbuf.h"

#define START 64

static uint32_t nrec;

static void test_reserve_contiguous(void **state)
{
	struct kv_logbuf lb;
	uint64_t ref, expect = START;
	int crossing;

	assert_int_equal(kv_logbuf_init(&lb, 64 << 10, START), 0);
	for (int i = 1; i <= 10; i++) {
		assert_int_equal(kv_logbuf_reserve(&lb, 8 * (uint64_t)i, &ref, &crossing), 0);
		assert_int_equal(kv_ref_off(ref), expect);
		assert_int_equal(kv_ref_epoch(ref), 1);
		expect += 8 * (uint64_t)i;
	}
	assert_int_equal(kv_logbuf_appended(&lb), expect);
	kv_logbuf_destroy(&lb);
}

static void test_seal_publish(void **state)
{
	struct kv_logbuf lb;
	uint64_t r1, r2, r3, start, end;
	struct kv_req req = { 0 }, *got;
	uint32_t epoch;
	int crossing;

	assert_int_equal(kv_logbuf_init(&lb, 64 << 10, START), 0);
	/* Nothing appended: nothing to seal, and no empty epoch opened. */
	assert_int_equal(kv_logbuf_seal(&lb, &epoch, &start, &end, &nrec), 0);
	assert_int_equal(kv_logbuf_reserve(&lb, 32, &r1, &crossing), 0);
	assert_int_equal(kv_logbuf_reserve(&lb, 16, &r2, &crossing), 0);
	kv_logbuf_push_req(&lb, r2, &req);
	kv_logbuf_release(&lb, r1, 32);
	kv_logbuf_release(&lb, r2, 16);
	assert_int_equal(kv_logbuf_seal(&lb, &epoch, &start, &end, &nrec), 1);
	assert_int_equal(epoch, 1);
	assert_int_equal(nrec, 2);
	assert_int_equal(start, START);
	assert_int_equal(end, START + 48);
	/* Appends after the seal belong to the next epoch. */
	assert_int_equal(kv_logbuf_reserve(&lb, 8, &r3, &crossing), 0);
	assert_int_equal(kv_ref_epoch(r3), 2);
	assert_int_equal(kv_ref_off(r3), START + 48);
	assert_int_equal(atomic_load(&lb.durable), 0);
	got = kv_logbuf_publish(&lb, epoch, end);
	assert_ptr_equal(got, &req);
	assert_null(got->next);
	assert_int_equal(atomic_load(&lb.durable), START + 48);
	kv_logbuf_release(&lb, r3, 8);
	assert_int_equal(kv_logbuf_seal(&lb, &epoch, &start, &end, &nrec), 1);
	assert_int_equal(epoch, 2);
	assert_int_equal(start, START + 48);
	assert_int_equal(end, START + 56);
	kv_logbuf_destroy(&lb);
}

static void test_full_buffer(void **state)
{
	const uint64_t cap = 64 << 10;
	struct kv_logbuf lb;
	uint64_t ref, last_end = START, start, end;
	int crossing, crossings = 0, failures = 0;
	uint32_t epoch;

	assert_int_equal(kv_logbuf_init(&lb, cap, START), 0);
	for (int i = 0; i < 5000; i++) {
		int r = kv_logbuf_reserve(&lb, 1000, &ref, &crossing);

		if (!r) {
			kv_logbuf_release(&lb, ref, 1000);
			last_end = kv_ref_off(ref) + 1000;
			continue;
		}
		assert_int_equal(r, -ENOSPC);
		failures++;
		if (crossing) {
			crossings++;
			assert_int_equal(kv_ref_off(ref), last_end);
			kv_logbuf_close_at(&lb, kv_ref_off(ref));
		}
	}
	assert_int_equal(crossings, 1);
	assert_true(failures > 1);
	assert_false(kv_logbuf_done(&lb));
	assert_int_equal(kv_logbuf_appended(&lb), last_end);
	/* The seal clamps to the records' end; failed reservations never count. */
	assert_int_equal(kv_logbuf_seal(&lb, &epoch, &start, &end, &nrec), 1);
	assert_int_equal(end, last_end);
	kv_logbuf_publish(&lb, epoch, end);
	assert_true(kv_logbuf_done(&lb));
	assert_int_equal(kv_logbuf_seal(&lb, &epoch, &start, &end, &nrec), 0);
	kv_logbuf_destroy(&lb);
}

/* Concurrent writers and a sealer: every reservation lies in its epoch. */
#define W 4
#define PER 20000
struct rec {
	uint64_t off;
	uint32_t epoch;
};
static struct kv_logbuf clb;
static struct rec recs[W][PER];
static uint64_t ep_start[1 << 16], ep_end[1 << 16];
static _Atomic int writers_done;

static void *writer(void *arg)
{
	struct rec *r = arg;
	uint64_t ref;
	int crossing;

	for (int i = 0; i < PER; i++) {
		uint64_t len = 8 * (1 + (uint64_t)(i % 5));

		assert_int_equal(kv_logbuf_reserve(&clb, len, &ref, &crossing), 0);
		memset(clb.base + kv_ref_off(ref), 0xab, len);
		r[i].off = kv_ref_off(ref);
		r[i].epoch = kv_ref_epoch(ref);
		kv_logbuf_release(&clb, ref, len);
	}
	atomic_fetch_add(&writers_done, 1);
	return NULL;
}

static void test_concurrent_epochs(void **state)
{
	pthread_t t[W];
	uint64_t start, end;
	uint32_t epoch, last = 0;

	assert_int_equal(kv_logbuf_init(&clb, 64 << 20, START), 0);
	for (int i = 0; i < W; i++)
		pthread_create(&t[i], NULL, writer, recs[i]);
	for (;;) {
		int done = atomic_load(&writers_done) == W;

		while (kv_logbuf_seal(&clb, &epoch, &start, &end, &nrec)) {
			assert_int_equal(epoch, last + 1);
			assert_true(epoch < (1 << 16));
			ep_start[epoch] = start;
			ep_end[epoch] = end;
			/* Every byte of the epoch was released: all copied. */
			for (uint64_t o = start; o < end; o++)
				assert_int_equal(clb.base[o], 0xab);
			kv_logbuf_publish(&clb, epoch, end);
			last = epoch;
		}
		if (done)
			break;
	}
	for (int i = 0; i < W; i++)
		pthread_join(t[i], NULL);
	for (int w = 0; w < W; w++)
		for (int i = 0; i < PER; i++) {
			assert_true(recs[w][i].epoch <= last);
			assert_true(recs[w][i].off >= ep_start[recs[w][i].epoch]);
			assert_true(recs[w][i].off < ep_end[recs[w][i].epoch]);
		}
	kv_logbuf_destroy(&clb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserve_contiguous),
		cmocka_unit_test(test_seal_publish),
		cmocka_unit_test(test_full_buffer),
		cmocka_unit_test(test_concurrent_epochs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
