/* SPDX-License-Identifier: MIT */
/* Tests of the public API (kv.h) on a real store: puts, deletes, batches,
 * durability modes, reopen, rotation, async completions, limits, errors. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_test_util.h"

struct fx {
	char *dir;
	struct kvt_log log;
	struct kv_options opt;
	struct kv_db *db;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = kvt_mkdtemp("db");
	kvt_options(&f->opt, NULL, &f->log);
	assert_int_equal(kv_open(f->dir, &f->opt, &f->db), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->db)
		kv_close(f->db);
	kvt_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fx *f)
{
	assert_int_equal(kv_close(f->db), 0);
	f->db = NULL;
	assert_int_equal(kv_open(f->dir, &f->opt, &f->db), 0);
}

static void expect(struct kv_db *db, const char *key, const char *val)
{
	char buf[256];
	ssize_t n = kv_get(db, 0, key, strlen(key), buf, sizeof(buf));

	if (!val) {
		assert_int_equal(n, -ENOENT);
		return;
	}
	assert_int_equal(n, (ssize_t)strlen(val));
	assert_memory_equal(buf, val, (size_t)n);
}

static void put(struct kv_db *db, const char *key, const char *val)
{
	assert_int_equal(kv_put(db, NULL, key, strlen(key), val, strlen(val)), 0);
}

static void test_put_get_delete(void **state)
{
	struct fx *f = *state;

	expect(f->db, "a", NULL);
	put(f->db, "a", "1");
	put(f->db, "b", "2");
	put(f->db, "a", "3");
	expect(f->db, "a", "3");
	expect(f->db, "b", "2");
	assert_int_equal(kv_delete(f->db, NULL, "b", 1), 0);
	expect(f->db, "b", NULL);
	put(f->db, "empty", "");
	expect(f->db, "empty", "");
	reopen(f);
	expect(f->db, "a", "3");
	expect(f->db, "b", NULL);
	expect(f->db, "empty", "");
}

static void test_batch(void **state)
{
	struct fx *f = *state;
	struct kv_batch *b;

	assert_int_equal(kv_batch_create(&b), 0);
	assert_int_equal(kv_write(f->db, NULL, b), 0); /* empty: nothing */
	put(f->db, "gone", "x");
	assert_int_equal(kv_batch_put(b, "x", 1, "1", 1), 0);
	assert_int_equal(kv_batch_put(b, "y", 1, "2", 1), 0);
	assert_int_equal(kv_batch_put(b, "x", 1, "3", 1), 0); /* later op wins */
	assert_int_equal(kv_batch_delete(b, "gone", 4), 0);
	assert_int_equal(kv_batch_count(b), 4);
	assert_int_equal(kv_write(f->db, NULL, b), 0);
	expect(f->db, "x", "3");
	expect(f->db, "y", "2");
	expect(f->db, "gone", NULL);
	kv_batch_clear(b);
	assert_int_equal(kv_batch_count(b), 0);
	kv_batch_destroy(b);
	reopen(f);
	expect(f->db, "x", "3");
	expect(f->db, "gone", NULL);
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	size_t big = KV_MAX_KEY + 1;
	char *key = calloc(1, big), buf[4];
	struct kv_batch *b;

	memset(key, 'k', big);
	assert_int_equal(kv_put(f->db, NULL, "", 0, "v", 1), -EINVAL);
	assert_int_equal(kv_put(f->db, NULL, key, big, "v", 1), -E2BIG);
	assert_int_equal(kv_put(f->db, NULL, key, KV_MAX_KEY, "v", 1), 0);
	assert_int_equal(kv_get(f->db, 0, key, KV_MAX_KEY, buf, sizeof(buf)), 1);
	assert_int_equal(kv_get(f->db, 0, key, big, buf, sizeof(buf)), -E2BIG);
	assert_int_equal(kv_put(f->db, NULL, "k", 1, key, (size_t)KV_MAX_VALUE + 1), -E2BIG);
	/* A batch over a quarter of the (256 KiB) log buffer is refused. */
	assert_int_equal(kv_batch_create(&b), 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(kv_batch_put(b, "k", 1, key, 2000), 0);
	assert_int_equal(kv_write(f->db, NULL, b), -E2BIG);
	assert_non_null(strstr(f->log.text, "exceeds"));
	kv_batch_destroy(b);
	free(key);
}

static void test_get_sizes(void **state)
{
	struct fx *f = *state;
	char buf[4];
	void *val;
	size_t vlen;

	put(f->db, "k", "hello world");
	assert_int_equal(kv_get(f->db, 0, "k", 1, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "hell", 4);
	assert_int_equal(kv_get_alloc(f->db, 0, "k", 1, &val, &vlen), 0);
	assert_int_equal(vlen, 11);
	assert_memory_equal(val, "hello world", 11);
	free(val);
	assert_int_equal(kv_get_alloc(f->db, 0, "nope", 4, &val, &vlen), -ENOENT);
}

static void test_modes(void **state)
{
	struct fx *f = *state;
	enum kv_durability modes[] = { KV_DUR_SYNC, KV_DUR_BATCH, KV_DUR_FSYNC_PER_OP,
				       KV_DUR_LOCKED };
	char key[16];

	for (unsigned i = 0; i < 4; i++) {
		struct kv_write_options wo = { .durability = modes[i] };
		enum kv_durability parsed;

		assert_int_equal(kv_durability_parse(kv_durability_name(modes[i]), &parsed), 0);
		assert_int_equal(parsed, modes[i]);
		snprintf(key, sizeof(key), "mode%u", i);
		assert_int_equal(kv_put(f->db, &wo, key, strlen(key), key, strlen(key)), 0);
		if (modes[i] == KV_DUR_BATCH)
			assert_int_equal(kv_sync(f->db), 0);
		expect(f->db, key, key);
		assert_non_null(kv_get(f->db, KV_READ_LATEST, key, strlen(key), NULL, 0) >= 0 ?
					"ok" :
					NULL);
	}
	assert_int_equal(kv_durability_parse("fast", &(enum kv_durability){ 0 }), -EINVAL);
	reopen(f);
	for (unsigned i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "mode%u", i);
		expect(f->db, key, key);
	}
}

/* Batch mode: the latest read sees the write at once; the commit follows
 * with no further call (the durability bound), observed through stats. */
static void test_batch_mode_bound(void **state)
{
	struct fx *f = *state;
	struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	struct kv_stats st;
	char buf[8];
	int polls = 0;

	assert_int_equal(kv_put(f->db, &wo, "b", 1, "v", 1), 0);
	assert_int_equal(kv_get(f->db, KV_READ_LATEST, "b", 1, buf, sizeof(buf)), 1);
	do {
		usleep(1000);
		assert_int_equal(kv_stats(f->db, &st), 0);
	} while (st.durable_lsn < st.appended_lsn && ++polls < 10000);
	assert_true(st.durable_lsn >= st.appended_lsn);
	expect(f->db, "b", "v");
}

static void test_rotation(void **state)
{
	struct fx *f = *state;
	char key[32], val[600];
	struct kv_stats st;

	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "r%05d", i % 1000);
		memset(val, 'a' + i % 26, sizeof(val) - 1);
		val[sizeof(val) - 1] = '\0';
		snprintf(val, 16, "%05d", i);
		val[5] = '-';
		put(f->db, key, val);
	}
	assert_int_equal(kv_stats(f->db, &st), 0);
	assert_true(st.memtables + st.flushes >= 5);
	reopen(f);
	for (int i = 2000; i < 3000; i++) {
		char buf[600];

		snprintf(key, sizeof(key), "r%05d", i % 1000);
		assert_int_equal(kv_get(f->db, 0, key, strlen(key), buf, sizeof(buf)), 599);
		assert_int_equal(atoi(buf), i);
	}
}

static void test_async_cq(void **state)
{
	struct fx *f = *state;
	struct kv_completion c[64];
	struct kv_batch *b;
	struct kv_cq *cq;
	uint64_t next = 0;
	char key[16];

	assert_int_equal(kv_cq_create(&cq), 0);
	assert_int_equal(kv_batch_create(&b), 0);
	for (uint64_t i = 0; i < 1000; i++) {
		kv_batch_clear(b);
		snprintf(key, sizeof(key), "a%04u", (unsigned)(i % 100));
		assert_int_equal(kv_batch_put(b, key, strlen(key), &i, sizeof(i)), 0);
		assert_int_equal(kv_write_async(f->db, NULL, b, cq, i), 0);
		int n = kv_cq_reap(cq, c, 64, 0);

		for (int j = 0; j < n; j++) {
			assert_int_equal(c[j].status, 0);
			assert_int_equal(c[j].tag, next++);
		}
	}
	while (next < 1000) {
		int n = kv_cq_reap(cq, c, 64, 1);

		for (int j = 0; j < n; j++) {
			assert_int_equal(c[j].status, 0);
			assert_int_equal(c[j].tag, next++);
		}
	}
	uint64_t v;

	assert_int_equal(kv_get(f->db, 0, "a0099", 5, &v, sizeof(v)), 8);
	assert_int_equal(v, 999);
	kv_batch_destroy(b);
	kv_cq_destroy(cq);
}

static void count_cb(void *arg, int status)
{
	if (!status)
		__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

static void test_async_cb(void **state)
{
	struct fx *f = *state;
	struct kv_write_options batch = { .durability = KV_DUR_BATCH };
	struct kv_batch *b;
	int done = 0;

	assert_int_equal(kv_batch_create(&b), 0);
	assert_int_equal(kv_batch_put(b, "cb", 2, "1", 1), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(kv_write_cb(f->db, i % 2 ? &batch : NULL, b, count_cb, &done), 0);
	assert_int_equal(kv_sync(f->db), 0);
	for (int i = 0; i < 10000 && __atomic_load_n(&done, __ATOMIC_SEQ_CST) < 200; i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&done, __ATOMIC_SEQ_CST), 200);
	kv_batch_destroy(b);
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct kv_db *db2;
	struct kv_options o = f->opt;

	assert_int_equal(kv_open(f->dir, &f->opt, &db2), -EBUSY);
	assert_non_null(strstr(f->log.text, "in use"));
	o.error_if_exists = 1;
	kv_close(f->db);
	f->db = NULL;
	assert_int_equal(kv_open(f->dir, &o, &db2), -EEXIST);
	o = f->opt;
	o.log_buffer_size = 1000;
	assert_int_equal(kv_open(f->dir, &o, &db2), -EINVAL);
	assert_non_null(strstr(f->log.text, "log_buffer_size"));
	o = f->opt;
	o.create_if_missing = 0;
	assert_int_equal(kv_open("/nonexistent/kvtest/store", &o, &db2), -ENOENT);
	assert_int_equal(kv_open(f->dir, &o, &f->db), 0);
}

static void test_stats(void **state)
{
	struct fx *f = *state;
	struct kv_stats st;

	put(f->db, "s", "1");
	put(f->db, "s", "2");
	assert_int_equal(kv_stats(f->db, &st), 0);
	assert_int_equal(st.records, 2);
	assert_true(st.commits >= 1);
	assert_true(st.durable_lsn >= st.appended_lsn);
	assert_true(st.log_buffer_live_bytes > 0);
	assert_true(st.log_buffer_live_bytes < st.log_buffer_bytes);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.versions_replaced_total, st.versions_replaced);
	assert_int_equal(st.versions_superseded_total, st.versions_superseded);
}

/* Two puts of a key in one batch share an epoch: the second replaces the
 * first in place. The *_total counters keep it after the memtable is
 * flushed, when the per-memtable ones start over. */
static void test_stats_replaced_total(void **state)
{
	struct fx *f = *state;
	struct kv_batch *b;
	struct kv_stats st, st2;

	assert_int_equal(kv_batch_create(&b), 0);
	assert_int_equal(kv_batch_put(b, "r", 1, "1", 1), 0);
	assert_int_equal(kv_batch_put(b, "r", 1, "2", 1), 0);
	assert_int_equal(kv_write(f->db, NULL, b), 0);
	kv_batch_destroy(b);
	assert_int_equal(kv_stats(f->db, &st), 0);
	assert_int_equal(st.versions_replaced, 1);
	assert_int_equal(st.versions_replaced_total, 1);
	/* The dead bytes: the replaced version is still in the buffer. */
	assert_true(st.log_buffer_bytes - st.log_buffer_live_bytes > 0);
	assert_int_equal(kv_flush(f->db), 0);
	put(f->db, "q", "3");
	assert_int_equal(kv_stats(f->db, &st2), 0);
	assert_int_equal(st2.versions_replaced, 0);
	assert_int_equal(st2.versions_replaced_total, 1);
	assert_int_equal(st2.versions_superseded_total, st.versions_superseded_total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_mode_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_cq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_cb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_replaced_total, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
