/* SPDX-License-Identifier: MIT */
/* Unit tests of kv/logbuf.c: reservation, epochs, sealing, the full buffer;
 * and the reuse of freed log buffers by a db (store.c). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "db.h"
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

static void test_init_on_detach(void **state)
{
	const uint64_t cap = 64 << 10;
	uint8_t *mem = kv_logbuf_map(cap);
	struct kv_logbuf lb;
	uint64_t ref;
	int crossing;

	assert_non_null(mem);
	kv_logbuf_init_on(&lb, mem, cap, START);
	assert_ptr_equal(lb.base, mem);
	assert_int_equal(kv_logbuf_appended(&lb), START);
	assert_int_equal(kv_logbuf_reserve(&lb, 16, &ref, &crossing), 0);
	assert_int_equal(kv_ref_off(ref), START);
	memset(lb.base + kv_ref_off(ref), 0x5a, 16);
	/* Detached: destroy leaves the memory to the caller. */
	assert_ptr_equal(kv_logbuf_detach(&lb), mem);
	kv_logbuf_destroy(&lb);
	assert_int_equal(mem[START + 15], 0x5a);
	kv_logbuf_unmap(mem, cap);
}

/* ---- reuse by a db ---- */

#define RKEYS 64

static void rput(struct kv_db *db, int round, int i)
{
	char key[32], val[200];

	snprintf(key, sizeof(key), "key%05d", i);
	memset(val, 'a' + round % 26, sizeof(val));
	snprintf(val, sizeof(val), "r%d-%d", round, i);
	assert_int_equal(kv_put(db, NULL, key, strlen(key), val, sizeof(val)), 0);
}

static void rexpect(struct kv_db *db, int round, int i)
{
	char key[32], want[200], buf[256];
	ssize_t n;

	snprintf(key, sizeof(key), "key%05d", i);
	memset(want, 'a' + round % 26, sizeof(want));
	snprintf(want, sizeof(want), "r%d-%d", round, i);
	n = kv_get(db, KV_READ_LATEST, key, strlen(key), buf, sizeof(buf));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

/* The keys as the last round left them: the first quarter from @round + 1,
 * the second from @round + 2, the rest from @round. */
static void rexpect_rounds(struct kv_db *db, int round)
{
	for (int i = 0; i < RKEYS / 4; i++)
		rexpect(db, round + 1, i);
	for (int i = RKEYS / 4; i < RKEYS / 2; i++)
		rexpect(db, round + 2, i);
	for (int i = RKEYS / 2; i < RKEYS; i++)
		rexpect(db, round, i);
}

/* A kept buffer that is ready (all zeroed), stepping the zeroing along. */
static uint8_t *wait_ready_lbuf(struct kv_db *db)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };

	for (int tries = 0; tries < 30000; tries++) {
		uint8_t *mem = NULL;

		kv_store_prepare_spare(db);
		pthread_mutex_lock(&db->lbuf_mu);
		for (int i = 0; i < KV_LBUF_SPARES && !mem; i++)
			if (db->lbuf[i].base && !db->lbuf[i].dirty && !db->lbuf[i].zeroing)
				mem = db->lbuf[i].base;
		pthread_mutex_unlock(&db->lbuf_mu);
		if (mem)
			return mem;
		nanosleep(&ts, NULL);
	}
	fail_msg("no freed log buffer became ready");
	return NULL;
}

static int all_zero(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/*
 * A flushed memtable's buffer is kept and zeroed; the next rotation writes
 * its records into it; everything reads back, before and after a reopen.
 */
static void test_db_reuses_zeroed_buffer(void **state)
{
	char *dir = kvt_mkdtemp("logbuf");
	struct kv_options opt;
	struct kvt_log log;
	struct kv_db *db;
	struct kv_mem *m;
	struct kv_seg_header h;
	uint64_t reused;
	uint8_t *mem;
	int round;

	kvt_options(&opt, NULL, &log);
	opt.log_buffer_size = KV_LOGBUF_MIN;
	opt.durability = KV_DUR_BATCH;
	assert_int_equal(kv_open(dir, &opt, &db), 0);

	for (round = 0; round < 4; round++) {
		/* Dirty every buffer well past its first pages: several rotations. */
		for (int i = 0; i < RKEYS * 8; i++)
			rput(db, round, i % RKEYS);
		assert_int_equal(kv_flush(db), 0);
		mem = wait_ready_lbuf(db);
		assert_true(all_zero(mem, opt.log_buffer_size));

		/* A few records, then the rotation of kv_flush takes it. */
		reused = atomic_load(&db->lbuf_reused);
		for (int i = 0; i < RKEYS / 4; i++)
			rput(db, round + 1, i);
		assert_int_equal(kv_flush(db), 0);
		m = atomic_load(&db->active);
		/* It took a kept buffer (mem, or one that became ready since). */
		assert_true(atomic_load(&db->lbuf_reused) > reused);
		/* Its header, and nothing else, was written into it. */
		assert_int_equal(kv_seg_header_decode(m->lb.base, &h), 0);
		assert_int_equal(h.seg_id, m->seg_id);
		assert_int_equal(h.capacity, opt.log_buffer_size);
		assert_int_equal(kv_logbuf_appended(&m->lb), KV_SEG_HEADER_SIZE);
		assert_true(all_zero(m->lb.base + KV_SEG_HEADER_SIZE,
				     opt.log_buffer_size - KV_SEG_HEADER_SIZE));

		/* Records in the reused buffer, read from its memtable. */
		for (int i = RKEYS / 4; i < RKEYS / 2; i++)
			rput(db, round + 2, i);
		assert_ptr_equal(atomic_load(&db->active), m);
		rexpect_rounds(db, round);
	}
	/* Recovery replays the segment written from the reused buffer. */
	assert_int_equal(kv_sync(db), 0);
	kv_abandon(db);
	assert_int_equal(kv_open(dir, &opt, &db), 0);
	rexpect_rounds(db, round - 1);
	assert_int_equal(kv_close(db), 0);
	kvt_rmrf(dir);
	free(dir);
}

/* An iterator pins its memtables: their buffers are not reused under it. */
static void test_db_iter_pins_buffer(void **state)
{
	char *dir = kvt_mkdtemp("logbuf");
	struct kv_options opt;
	struct kvt_log log;
	struct kv_iter *it;
	struct kv_db *db;
	int n = 0;

	kvt_options(&opt, NULL, &log);
	opt.log_buffer_size = KV_LOGBUF_MIN;
	opt.durability = KV_DUR_BATCH;
	assert_int_equal(kv_open(dir, &opt, &db), 0);
	for (int i = 0; i < RKEYS; i++)
		rput(db, 0, i);
	assert_int_equal(kv_sync(db), 0); /* the iterator sees committed records */
	assert_int_equal(kv_iter_create(db, NULL, &it), 0);
	/* Flush and free memtables, and let the freed buffers be reused. */
	for (int round = 1; round < 4; round++) {
		for (int i = 0; i < RKEYS * 4; i++)
			rput(db, round, i % RKEYS);
		assert_int_equal(kv_flush(db), 0);
		wait_ready_lbuf(db); /* taken by the next round's first rotation */
	}
	assert_true(atomic_load(&db->lbuf_reused) >= 2);
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it), n++) {
		char key[32], want[200];
		size_t klen, vlen;
		const void *k = kv_iter_key(it, &klen);
		const void *v = kv_iter_value(it, &vlen);

		snprintf(key, sizeof(key), "key%05d", n);
		memset(want, 'a', sizeof(want));
		snprintf(want, sizeof(want), "r0-%d", n);
		assert_int_equal(klen, strlen(key));
		assert_memory_equal(k, key, klen);
		assert_int_equal(vlen, sizeof(want));
		assert_memory_equal(v, want, vlen);
	}
	assert_int_equal(kv_iter_status(it), 0);
	assert_int_equal(n, RKEYS);
	kv_iter_destroy(it);
	for (int i = 0; i < RKEYS; i++)
		rexpect(db, 3, i);
	assert_int_equal(kv_close(db), 0);
	kvt_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserve_contiguous),
		cmocka_unit_test(test_seal_publish),
		cmocka_unit_test(test_full_buffer),
		cmocka_unit_test(test_concurrent_epochs),
		cmocka_unit_test(test_init_on_detach),
		cmocka_unit_test(test_db_reuses_zeroed_buffer),
		cmocka_unit_test(test_db_iter_pins_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
