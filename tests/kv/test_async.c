/* SPDX-License-Identifier: MIT */
/*
 * test_async.c - many asynchronous writes in flight per caller on one real
 * store (kv_write_async with completion queues, kv_write_cb with callbacks):
 * each completes exactly once, with status 0, in the order kv.h promises,
 * and its write is visible when it completes and after a reopen.
 *
 * Worker threads never call cmocka (its asserts longjmp): they record
 * failures (failf, conc_util.h) that the main thread asserts on after
 * joining them.
 *
 * Sizes: counts are modest so that each test takes a few seconds in the
 * Debug (ASan) build; under ThreadSanitizer (detected at compile time) they
 * are halved. KV_TEST_LONG=n multiplies them by n.
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
#include <sys/types.h>

#include <cmocka.h>
#include <errno.h>

#include "conc_util.h"

/* ======================================================================
 * 4. many async writes in flight per caller
 * ====================================================================== */

#define ASYNC_KEYS 97

struct async_ctx {
	struct kv_db *db;
	int id, n;
	uint64_t seed;
	uint32_t *last_tag; /* [ASYNC_KEYS] last tag written per key */
	uint64_t reaped, order_bad, status_bad, stale;
};

static void async_key(char *buf, int caller, int k)
{
	snprintf(buf, KEY_BUF, "async%d/%03d", caller, k);
}

/* Value: u32 caller, u32 tag, filler, to 40..400 bytes. */
static size_t async_value(uint8_t *buf, int caller, uint32_t tag)
{
	size_t len = 40 + (tag * 7919u) % 360;

	put_u32(buf, (uint32_t)caller);
	put_u32(buf + 4, tag);
	fill(buf + 8, len - 8, (uint64_t)caller << 32 | tag);
	return len;
}

static int async_value_ok(const uint8_t *buf, ssize_t n, int caller, uint32_t *tag)
{
	uint8_t want[400];

	if (n < 8 || n > (ssize_t)sizeof(want))
		return 0;
	*tag = get_u32(buf + 4);
	return get_u32(buf) == (uint32_t)caller && async_value(want, caller, *tag) == (size_t)n &&
	       !memcmp(want, buf, (size_t)n);
}

/* A completion: in tag order, status 0, and its write is visible (sync). */
static void async_reaped(struct async_ctx *c, const struct kv_completion *e)
{
	uint8_t buf[400];
	char key[KEY_BUF];
	uint32_t tag;
	ssize_t n;

	if (e->tag != c->reaped)
		c->order_bad++;
	if (e->status)
		c->status_bad++;
	c->reaped++;
	async_key(key, c->id, (int)(e->tag % ASYNC_KEYS));
	n = kv_get(c->db, 0, key, strlen(key), buf, sizeof(buf));
	if (!async_value_ok(buf, n, c->id, &tag) || tag < e->tag)
		c->stale++;
}

static void *async_submitter(void *arg)
{
	struct async_ctx *c = arg;
	struct kv_completion ev[64];
	struct kv_batch *b;
	struct kv_cq *cq;
	uint8_t buf[400];
	char key[KEY_BUF];

	if (kv_batch_create(&b) || kv_cq_create(&cq))
		abort();
	for (uint32_t tag = 0; tag < (uint32_t)c->n; tag++) {
		size_t len = async_value(buf, c->id, tag);
		int k = (int)(tag % ASYNC_KEYS), got, err;

		async_key(key, c->id, k);
		kv_batch_clear(b);
		must(kv_batch_put(b, key, strlen(key), buf, len), "kv_batch_put");
		err = kv_write_async(c->db, NULL, b, cq, tag);
		if (err) {
			failf("caller %d: kv_write_async of tag %u returned %d", c->id, tag, err);
			c->n = (int)tag; /* no completion will come for it */
			break;
		}
		c->last_tag[k] = tag;
		/* Reap as we go; keep at most 2048 in flight. */
		got = kv_cq_reap(cq, ev, 64, tag + 1 - c->reaped > 2048 ? 1 : 0);
		for (int i = 0; i < got; i++)
			async_reaped(c, &ev[i]);
	}
	while (c->reaped < (uint64_t)c->n) {
		int got = kv_cq_reap(cq, ev, 64, 1);

		for (int i = 0; i < got; i++)
			async_reaped(c, &ev[i]);
	}
	/* Exactly once: nothing more may come. */
	sleep_us(20000);
	if (kv_cq_reap(cq, ev, 64, 0))
		failf("caller %d: a completion came twice (or for no write)", c->id);
	kv_cq_destroy(cq);
	kv_batch_destroy(b);
	return NULL;
}

static void async_check_last(struct kv_db *db, struct async_ctx *c)
{
	for (int k = 0; k < ASYNC_KEYS && k < c->n; k++) {
		uint8_t buf[400];
		char key[KEY_BUF];
		uint32_t tag;
		ssize_t n;

		async_key(key, c->id, k);
		n = kv_get(db, 0, key, strlen(key), buf, sizeof(buf));
		assert_true(async_value_ok(buf, n, c->id, &tag));
		assert_int_equal(tag, c->last_tag[k]);
	}
}

static void test_async_in_flight(void **state)
{
	struct fx *f = *state;
	struct async_ctx c[2];
	uint32_t last[2][ASYNC_KEYS];

	fx_open(f);
	for (int i = 0; i < 2; i++)
		c[i] = (struct async_ctx){ .db = f->db,
					   .id = i,
					   .n = scaled(10000),
					   .last_tag = last[i] };
	run_threads(2, async_submitter, c, sizeof(c[0]));
	assert_no_failures();
	for (int i = 0; i < 2; i++) {
		assert_int_equal(c[i].reaped, (uint64_t)c[i].n);
		assert_int_equal(c[i].order_bad, 0);
		assert_int_equal(c[i].status_bad, 0);
		assert_int_equal(c[i].stale, 0);
		async_check_last(f->db, &c[i]);
	}
	fx_reopen(f);
	for (int i = 0; i < 2; i++)
		async_check_last(f->db, &c[i]);
}

/* Callbacks: each exactly once, status 0, in the order of submission. */
static struct {
	_Atomic uint64_t calls, order_bad, status_bad;
} cbs;

static void counting_cb(void *arg, int status)
{
	uint64_t tag = (uint64_t)(uintptr_t)arg;

	if (atomic_fetch_add(&cbs.calls, 1) != tag)
		atomic_fetch_add(&cbs.order_bad, 1);
	if (status)
		atomic_fetch_add(&cbs.status_bad, 1);
}

static void test_async_callbacks(void **state)
{
	struct fx *f = *state;
	int n = scaled(10000);
	uint32_t last[ASYNC_KEYS];
	struct async_ctx c = { .id = 5, .n = n, .last_tag = last };
	struct kv_batch *b;
	uint8_t buf[400];
	char key[KEY_BUF];

	fx_open(f);
	c.db = f->db;
	memset(&cbs, 0, sizeof(cbs));
	assert_int_equal(kv_batch_create(&b), 0);
	for (uint32_t tag = 0; tag < (uint32_t)n; tag++) {
		size_t len = async_value(buf, c.id, tag);

		async_key(key, c.id, (int)(tag % ASYNC_KEYS));
		kv_batch_clear(b);
		assert_int_equal(kv_batch_put(b, key, strlen(key), buf, len), 0);
		assert_int_equal(kv_write_cb(f->db, NULL, b, counting_cb, (void *)(uintptr_t)tag),
				 0);
		last[tag % ASYNC_KEYS] = tag;
	}
	kv_batch_destroy(b);
	assert_int_equal(wait_count(&cbs.calls, (uint64_t)n, 60), 0);
	sleep_us(20000);
	assert_int_equal(atomic_load(&cbs.calls), (uint64_t)n);
	assert_int_equal(atomic_load(&cbs.order_bad), 0);
	assert_int_equal(atomic_load(&cbs.status_bad), 0);
	async_check_last(f->db, &c);
}

/*
 * One caller mixing durabilities on one queue: batch-mode writes are
 * acknowledged at append, sync-mode ones at their commit. kv.h promises LSN
 * order among one caller's writes of one durability mode, and exactly one
 * completion each; a batch write may overtake an earlier sync one.
 */
static void test_async_mixed_durability_order(void **state)
{
	struct kv_write_options batch = { KV_DUR_BATCH }, sync = { KV_DUR_SYNC };
	struct fx *f = *state;
	int n = scaled(2000), got = 0, order_bad = 0, dup = 0;
	int64_t last[2] = { -1, -1 };
	struct kv_completion ev[64];
	struct kv_batch *b;
	struct kv_cq *cq;
	uint8_t buf[400];
	char key[KEY_BUF];
	char *seen = calloc((size_t)n, 1);

	fx_open(f);
	assert_int_equal(kv_batch_create(&b), 0);
	assert_int_equal(kv_cq_create(&cq), 0);
	for (uint32_t tag = 0; tag < (uint32_t)n; tag++) {
		size_t len = async_value(buf, 9, tag);

		async_key(key, 9, (int)(tag % ASYNC_KEYS));
		kv_batch_clear(b);
		assert_int_equal(kv_batch_put(b, key, strlen(key), buf, len), 0);
		assert_int_equal(kv_write_async(f->db, tag % 2 ? &batch : &sync, b, cq, tag), 0);
	}
	while (got < n) {
		int m = kv_cq_reap(cq, ev, 64, 1);

		for (int i = 0; i < m; i++, got++) {
			int mode = (int)(ev[i].tag % 2);

			assert_true(ev[i].tag < (uint64_t)n);
			dup += seen[ev[i].tag]++;
			order_bad += (int64_t)ev[i].tag <= last[mode];
			last[mode] = (int64_t)ev[i].tag;
			assert_int_equal(ev[i].status, 0);
		}
	}
	kv_cq_destroy(cq);
	kv_batch_destroy(b);
	free(seen);
	assert_int_equal(dup, 0);
	if (order_bad)
		fail_msg("%d of %d completions out of LSN order within one durability mode",
			 order_bad, n);
}

/*
 * Closed-loop callers in sync mode, the way the kvfs daemon writes: each
 * submits one write with kv_write_cb and waits for its callback before the
 * next. Nobody calls kv_write, so the backstop leads every commit and
 * gathers the callers a commit released before it seals the next one. A
 * power cut (freeze) in the middle: every write acknowledged with status 0
 * survives the reopen, and every caller got -EIO (never a hang) after it.
 */
#define CL_CALLERS 4

struct cl_caller {
	struct kv_db *db;
	int id;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int done, status;   /* [mu] the callback came, with status */
	uint32_t acked;	    /* writes 0..acked-1 acknowledged with status 0 */
	int last_err;	    /* the error that ended the loop */
	_Atomic int count;  /* acknowledged so far, read by the main thread */
	_Atomic int failed; /* the loop ended */
};

static void cl_key(char *buf, int caller, uint32_t tag)
{
	snprintf(buf, KEY_BUF, "cl%d/%08u", caller, tag);
}

static void cl_cb(void *arg, int status)
{
	struct cl_caller *c = arg;

	pthread_mutex_lock(&c->mu);
	c->done = 1;
	c->status = status;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

static void *cl_run(void *arg)
{
	struct cl_caller *c = arg;
	struct kv_batch *b;
	uint8_t buf[400];
	char key[KEY_BUF];

	if (kv_batch_create(&b))
		abort();
	/* Until a write fails: the freeze makes every later one fail. */
	for (uint32_t tag = 0;; tag++) {
		size_t len = async_value(buf, c->id, tag);
		int err;

		cl_key(key, c->id, tag);
		kv_batch_clear(b);
		must(kv_batch_put(b, key, strlen(key), buf, len), "kv_batch_put");
		pthread_mutex_lock(&c->mu);
		c->done = 0;
		pthread_mutex_unlock(&c->mu);
		err = kv_write_cb(c->db, NULL, b, cl_cb, c);
		if (!err) {
			pthread_mutex_lock(&c->mu);
			while (!c->done)
				pthread_cond_wait(&c->cond, &c->mu);
			err = c->status;
			pthread_mutex_unlock(&c->mu);
		}
		if (err) {
			c->last_err = err;
			atomic_store(&c->failed, 1);
			break;
		}
		c->acked = tag + 1;
		atomic_store(&c->count, (int)c->acked);
	}
	kv_batch_destroy(b);
	return NULL;
}

static void test_async_closed_loop_power_cut(void **state)
{
	struct fx *f = *state;
	struct cl_caller c[CL_CALLERS];
	pthread_t t[CL_CALLERS];
	int want = scaled(500);

	assert_int_equal(kv_fault_env_create(kv_env_default(), &f->fault), 0);
	f->opt.env = kv_fault_env_env(f->fault);
	f->opt.durability = KV_DUR_SYNC;
	fx_open(f);
	for (int i = 0; i < CL_CALLERS; i++) {
		c[i] = (struct cl_caller){ .db = f->db, .id = i };
		pthread_mutex_init(&c[i].mu, NULL);
		pthread_cond_init(&c[i].cond, NULL);
		assert_int_equal(pthread_create(&t[i], NULL, cl_run, &c[i]), 0);
	}
	/* Until each caller has had @want writes acknowledged (bounded: a
	 * stalled caller fails the test below instead of hanging it). */
	for (double t0 = now_s(); now_s() - t0 < 300;) {
		int k = 0;

		for (int i = 0; i < CL_CALLERS; i++)
			k += atomic_load(&c[i].count) >= want || atomic_load(&c[i].failed);
		if (k == CL_CALLERS)
			break;
		sleep_us(1000);
	}
	assert_int_equal(kv_fault_env_freeze(f->fault, 0), 0);
	for (int i = 0; i < CL_CALLERS; i++) {
		pthread_join(t[i], NULL);
		pthread_mutex_destroy(&c[i].mu);
		pthread_cond_destroy(&c[i].cond);
	}
	assert_no_failures();
	kv_abandon(f->db);
	f->db = NULL;
	assert_int_equal(kv_fault_env_power_cut(f->fault, 0), 0);
	fx_open(f);
	for (int i = 0; i < CL_CALLERS; i++) {
		assert_true(c[i].acked >= (uint32_t)want);
		assert_int_equal(c[i].last_err, -EIO);
		for (uint32_t tag = 0; tag < c[i].acked; tag++) {
			uint8_t got[400];
			char key[KEY_BUF];
			uint32_t vtag;
			ssize_t n;

			cl_key(key, c[i].id, tag);
			n = kv_get(f->db, 0, key, strlen(key), got, sizeof(got));
			if (!async_value_ok(got, n, c[i].id, &vtag) || vtag != tag)
				fail_msg(
					"caller %d: write %u was acknowledged (of %u) but is %s after "
					"the power cut",
					i, tag, c[i].acked, n < 0 ? "missing" : "wrong");
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_async_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_mixed_durability_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_closed_loop_power_cut, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
