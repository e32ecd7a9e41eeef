/* SPDX-License-Identifier: MIT */
/*
 * Fault tests: the engine over the fault-injecting env (kv_fault_env_*):
 * power cuts (clean and torn), crash points, fsync failures, ENOSPC, short
 * writes, asynchronous writes caught by a failure, and a power cut with the
 * db still open (kv_fault_env_freeze).
 *
 * The workload is always one thread writing keys k000000, k000001, ... in
 * order, so the LSN order is the key order and "the store is a prefix of
 * the writes" means: some p, every key below p present with its value, none
 * at or above it (check_prefix). What each test adds is a lower bound on p:
 * the writes that were acknowledged as durable.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_test_util.h"
#include "wal.h"

#define VMAX 20000u /* longest value any test writes */

/* ---- fixture ------------------------------------------------------------ */

struct fx {
	char *dir;
	struct kv_fault_env *fe;
	struct kvt_log log;
	struct kv_options opt;
	struct kv_db *db;
	uint64_t seed;	     /* values derive from it */
	unsigned vmax;	     /* longest value written */
	uint8_t *want, *got; /* VMAX bytes each */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = kvt_mkdtemp("faults");
	if (kv_fault_env_create(kv_env_default(), &f->fe))
		return -1;
	kvt_options(&f->opt, kv_fault_env_env(f->fe), &f->log);
	f->vmax = 300;
	f->want = malloc(VMAX);
	f->got = malloc(VMAX);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->db)
		kv_abandon(f->db);
	kv_fault_env_destroy(f->fe);
	kvt_rmrf(f->dir);
	free(f->dir);
	free(f->want);
	free(f->got);
	free(f);
	return 0;
}

static void db_open(struct fx *f)
{
	int err;

	assert_null(f->db);
	err = kv_open(f->dir, &f->opt, &f->db);
	if (err)
		fail_msg("kv_open(%s) = %d (%s); log:\n%s", f->dir, err, strerror(-err),
			 f->log.text);
}

static int db_close(struct fx *f)
{
	int err = kv_close(f->db);

	f->db = NULL;
	return err;
}

static void db_abandon(struct fx *f)
{
	kv_abandon(f->db);
	f->db = NULL;
}

static void power_cut(struct fx *f, uint64_t torn_seed)
{
	assert_null(f->db);
	assert_int_equal(kv_fault_env_power_cut(f->fe, torn_seed), 0);
}

static void clear_rules(struct fx *f)
{
	struct kv_fault_rules r = { 0 };

	kv_fault_env_set_rules(f->fe, &r);
}

/* A fresh, empty store directory (the env's memory of the old one is cleared). */
static void fresh_store(struct fx *f)
{
	assert_null(f->db);
	kv_fault_env_settle(f->fe);
	clear_rules(f);
	f->log.len = 0;
	f->log.text[0] = '\0';
	kvt_rmrf(f->dir);
	assert_int_equal(mkdir(f->dir, 0700), 0);
}

/* ---- the workload ------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static size_t key_of(unsigned i, char *key)
{
	return (size_t)sprintf(key, "k%06u", i);
}

static size_t val_of(const struct fx *f, unsigned i, uint8_t *buf)
{
	uint64_t h = mix(f->seed ^ i);
	size_t len = 1 + h % f->vmax;

	for (size_t k = 0; k < len; k++)
		buf[k] = (uint8_t)(h >> (8 * (k % 8))) ^ (uint8_t)k;
	return len;
}

static int put_key(struct fx *f, unsigned i, const struct kv_write_options *wo)
{
	char key[16];
	size_t klen = key_of(i, key), vlen = val_of(f, i, f->want);

	return kv_put(f->db, wo, key, klen, f->want, vlen);
}

/* 1 if key @i is there with its value, 0 if absent; fails on anything else. */
static int has_key(struct fx *f, unsigned i)
{
	char key[16];
	size_t klen = key_of(i, key), vlen = val_of(f, i, f->want);
	ssize_t r = kv_get(f->db, 0, key, klen, f->got, VMAX);

	if (r == -ENOENT)
		return 0;
	if (r != (ssize_t)vlen || memcmp(f->got, f->want, vlen))
		fail_msg("%s: kv_get = %zd, want %zu bytes of its own value", key, r, vlen);
	return 1;
}

/*
 * The store holds keys [0, p) and none of [p, n); p >= @acked. Returns p.
 */
static unsigned check_prefix(struct fx *f, unsigned n, unsigned acked, const char *what)
{
	unsigned p = 0;

	while (p < n && has_key(f, p))
		p++;
	for (unsigned i = p; i < n; i++)
		if (has_key(f, i))
			fail_msg("%s: not a prefix: key %u missing but key %u present", what, p, i);
	if (p < acked)
		fail_msg("%s: %u writes acknowledged, only %u survived", what, acked, p);
	return p;
}

static int wal_files(const char *dir, uint64_t want_size)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		uint64_t id;
		struct stat st;
		char path[4096];

		if (kv_wal_parse_name(e->d_name, &id))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0 && (!want_size || (uint64_t)st.st_size == want_size))
			n++;
	}
	closedir(d);
	return n;
}

/* Wait (up to 5 s) for the backstop's spare segment to be fully made, so
 * that byte budgets set afterwards go to the WAL. */
static void wait_spare(struct fx *f)
{
	for (int i = 0; i < 5000; i++) {
		if (wal_files(f->dir, f->opt.log_buffer_size) >= 2)
			return;
		usleep(1000);
	}
	print_message("[ INFO     ] no spare segment after 5 s\n");
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- 1. power cut, sync mode --------------------------------------------- */

static void test_power_cut_sync(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("power_cut_sync");
	unsigned n = 200, acked = 0, p;
	int rounds = 8 * kvt_scale();

	f->seed = rs;
	db_open(f);
	for (unsigned i = 0; i < n; i++) {
		if (put_key(f, i, NULL) == 0 && acked == i)
			acked++;
	}
	assert_int_equal(acked, n);
	db_abandon(f);
	power_cut(f, 0);
	db_open(f);
	check_prefix(f, n, n, "clean power cut");
	assert_int_equal(db_close(f), 0);

	/* The process dies at a seeded point (every later I/O call fails), then
	 * the power goes: what was acknowledged before the death survives. */
	for (int r = 0; r < rounds; r++) {
		struct kv_fault_rules rule = { .crash_after_ops =
						       1 + (int64_t)(kvt_rand(&rs) % 60) };
		unsigned written = 0;
		char what[64];
		int err = 0;

		fresh_store(f);
		f->seed = kvt_rand(&rs);
		db_open(f);
		for (acked = 0; acked < 10; acked++)
			assert_int_equal(put_key(f, acked, NULL), 0);
		kv_fault_env_set_rules(f->fe, &rule);
		for (written = acked; written < n; written++) {
			err = put_key(f, written, NULL);
			if (err)
				break;
			acked++;
		}
		assert_int_not_equal(err, 0); /* the crash was reached */
		db_abandon(f);
		power_cut(f, 0);
		db_open(f);
		snprintf(what, sizeof(what), "crash after %lld ops",
			 (long long)rule.crash_after_ops);
		p = check_prefix(f, written + 1, acked, what);
		assert_true(p <= written + 1);
		assert_int_equal(db_close(f), 0);
	}
}

/* ---- 2. power cut, batch mode -------------------------------------------- */

static void test_power_cut_batch(void **state)
{
	struct fx *f = *state;
	unsigned k1 = 300, k2 = 300, k3 = 500, p, next;
	double t0, waited;
	struct kv_stats st;

	f->seed = kvt_seed("power_cut_batch");
	f->opt.durability = KV_DUR_BATCH;
	db_open(f);

	/* Everything before a successful kv_sync survives; the rest is a prefix. */
	for (unsigned i = 0; i < k1; i++)
		assert_int_equal(put_key(f, i, NULL), 0);
	assert_int_equal(kv_sync(f->db), 0);
	for (unsigned i = k1; i < k1 + k2; i++)
		assert_int_equal(put_key(f, i, NULL), 0);
	db_abandon(f);
	power_cut(f, 0);
	db_open(f);
	p = check_prefix(f, k1 + k2, k1, "batch writes then kv_sync");
	print_message("[ INFO     ] %u of %u unsynced batch writes survived the power cut\n",
		      p - k1, k2);

	/* The durability bound: with no further call, appended writes become
	 * durable on their own. Writes resume from the surviving prefix. */
	next = p + k3;
	for (unsigned i = p; i < next; i++)
		assert_int_equal(put_key(f, i, NULL), 0);
	t0 = now();
	for (;;) {
		assert_int_equal(kv_stats(f->db, &st), 0);
		assert_int_equal(st.failed, 0);
		if (st.durable_lsn >= st.appended_lsn)
			break;
		if (now() - t0 > 10)
			fail_msg("batch writes not durable after 10 s: appended %llu, durable %llu",
				 (unsigned long long)st.appended_lsn,
				 (unsigned long long)st.durable_lsn);
		usleep(500);
	}
	waited = now() - t0;
	print_message(
		"[ INFO     ] durable_lsn reached appended_lsn %.3f ms after the last write\n",
		waited * 1e3);
	db_abandon(f);
	power_cut(f, 0);
	db_open(f);
	check_prefix(f, next + 1, next, "after durable_lsn caught up");
	assert_int_equal(db_close(f), 0);
}

/* ---- 3. torn power cut ------------------------------------------------------ */

static void test_power_cut_torn(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("power_cut_torn");
	struct kv_write_options batch = { .durability = KV_DUR_BATCH };
	int seeds = 16 * kvt_scale();
	unsigned survived = 0, total = 0;

	for (int s = 1; s <= seeds; s++) {
		struct kv_fault_rules rule = { 0 };
		const struct kv_write_options *wo = s % 2 ? &batch : NULL;
		uint64_t torn = kvt_rand(&rs) | 1;
		unsigned acked = 0, written, p;
		char what[128];
		int err;

		fresh_store(f);
		f->seed = kvt_rand(&rs);
		f->vmax = s % 4 < 2 ? 300 : 3000;
		db_open(f);
		for (; acked < 20; acked++)
			assert_int_equal(put_key(f, acked, NULL), 0);
		/* Then writes (sync or batch) until a fault stops them, leaving
		 * the last commit written but not synced. */
		if (s % 3)
			rule.fail_sync_after = 1 + (int64_t)(kvt_rand(&rs) % 8);
		else
			rule.crash_after_ops = 1 + (int64_t)(kvt_rand(&rs) % 40);
		kv_fault_env_set_rules(f->fe, &rule);
		for (written = acked; written < 2000; written++) {
			err = put_key(f, written, wo);
			if (err)
				break;
			if (!wo)
				acked++;
		}
		db_abandon(f);
		power_cut(f, torn);
		f->log.len = 0;
		f->log.text[0] = '\0';
		err = kv_open(f->dir, &f->opt, &f->db);
		snprintf(what, sizeof(what), "seed %d (torn %llu, %s, %s %lld)", s,
			 (unsigned long long)torn, wo ? "batch" : "sync",
			 rule.fail_sync_after ? "fail_sync_after" : "crash_after_ops",
			 (long long)(rule.fail_sync_after ? rule.fail_sync_after :
							    rule.crash_after_ops));
		if (err)
			fail_msg("%s: reopen after a torn power cut = %d (%s); log:\n%s", what, err,
				 strerror(-err), f->log.text);
		p = check_prefix(f, written + 1, acked, what);
		survived += p;
		total += written;
		assert_int_equal(db_close(f), 0);
	}
	print_message("[ INFO     ] %d torn power cuts: %u of %u writes survived\n", seeds,
		      survived, total);
}

/* ---- 3b. process crash, reopen, then a power cut ------------------------ */

/*
 * The process dies between a commit's write and its fdatasync: the record
 * is in the page cache, not on disk. A reopen (no power cut) replays it and
 * new writes are acknowledged after it. If the power then goes, the store
 * must still open and be a prefix that holds every acknowledged write: so
 * recovery must not build on replayed bytes it has not made durable.
 */
static void test_crash_reopen_power_cut(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("crash_reopen_power_cut");
	struct kv_write_options batch = { .durability = KV_DUR_BATCH };
	int rounds = 6 * kvt_scale();

	for (int r = 0; r < rounds; r++) {
		/* 1: the commit's pwrite is done, its fdatasync never happens. */
		struct kv_fault_rules rule = { .crash_after_ops = 1 + r / 2 };
		const struct kv_write_options *wo = r % 2 ? &batch : NULL;
		unsigned acked = 10, written, p0, p;
		char what[96];
		int err;

		fresh_store(f);
		f->seed = kvt_rand(&rs);
		db_open(f);
		for (unsigned i = 0; i < acked; i++)
			assert_int_equal(put_key(f, i, NULL), 0);
		kv_fault_env_set_rules(f->fe, &rule);
		for (written = acked; written < acked + 50; written++) {
			err = put_key(f, written, wo);
			if (err)
				break;
		}
		if (wo)
			kv_sync(f->db); /* batch: let the backstop's commit meet the crash */
		db_abandon(f);
		clear_rules(f); /* a new process, same page cache */
		db_open(f);
		p0 = check_prefix(f, written + 1, acked, "after the process crash");
		/* Acknowledged writes after whatever was replayed. */
		for (unsigned i = p0; i < p0 + 5; i++)
			assert_int_equal(put_key(f, i, NULL), 0);
		assert_int_equal(db_close(f), 0);
		power_cut(f, 0);
		snprintf(what, sizeof(what),
			 "round %d: crash after %lld ops, %u replayed, then a power cut", r,
			 (long long)rule.crash_after_ops, p0);
		f->log.len = 0;
		f->log.text[0] = '\0';
		err = kv_open(f->dir, &f->opt, &f->db);
		if (err)
			fail_msg("%s: kv_open = %d (%s); log:\n%s", what, err, strerror(-err),
				 f->log.text);
		p = check_prefix(f, p0 + 6 > written + 1 ? p0 + 6 : written + 1, p0 + 5, what);
		assert_int_equal(p, p0 + 5);
		assert_int_equal(db_close(f), 0);
	}
}

/* ---- 4. fsync failure ------------------------------------------------------- */

static void expect_val(struct fx *f, const char *key, const char *val)
{
	ssize_t r = kv_get(f->db, 0, key, strlen(key), f->got, VMAX);

	if (!val) {
		if (r != -ENOENT)
			fail_msg("%s should be absent, kv_get = %zd", key, r);
		return;
	}
	if (r != (ssize_t)strlen(val) || memcmp(f->got, val, strlen(val)))
		fail_msg("%s: kv_get = %zd (\"%.*s\"), want \"%s\"", key, r, r > 0 ? (int)r : 0,
			 (char *)f->got, val);
}

static void test_fsync_failure(void **state)
{
	struct fx *f = *state;
	struct kv_fault_rules rule = { .fail_sync_after = 1 };
	struct kv_stats st;
	struct kv_batch *b;
	unsigned n = 20;
	int err;
	ssize_t r;

	f->seed = kvt_seed("fsync_failure");
	db_open(f);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(put_key(f, i, NULL), 0);
	assert_int_equal(kv_put(f->db, NULL, "x", 1, "old", 3), 0);

	kv_fault_env_set_rules(f->fe, &rule);
	err = kv_put(f->db, NULL, "x", 1, "new", 3);
	print_message("[ INFO     ] the put whose fsync failed returned %d (%s)\n", err,
		      strerror(-err));
	assert_true(err < 0);
	assert_int_equal(kv_stats(f->db, &st), 0);
	assert_int_not_equal(st.failed, 0);

	/* Failed until reopened: every write is refused, nothing is retried. */
	clear_rules(f); /* even with the disk healthy again */
	assert_int_equal(kv_put(f->db, NULL, "y", 1, "1", 1), -EIO);
	assert_int_equal(kv_delete(f->db, NULL, "k000000", 7), -EIO);
	assert_int_equal(kv_batch_create(&b), 0);
	assert_int_equal(kv_batch_put(b, "z1", 2, "1", 1), 0);
	assert_int_equal(kv_batch_put(b, "z2", 2, "2", 1), 0);
	assert_int_equal(kv_write(f->db, NULL, b), -EIO);
	{
		struct kv_write_options batch = { .durability = KV_DUR_BATCH };

		assert_int_equal(kv_write(f->db, &batch, b), -EIO);
	}
	kv_batch_destroy(b);
	assert_int_equal(kv_sync(f->db), -EIO);

	/* Readers see committed versions only: never the failed write. */
	for (int i = 0; i < 100; i++)
		expect_val(f, "x", "old");
	expect_val(f, "y", NULL);
	expect_val(f, "z1", NULL);
	check_prefix(f, n, n, "failed store, before close");
	r = kv_get(f->db, KV_READ_LATEST, "x", 1, f->got, VMAX);
	print_message("[ INFO     ] KV_READ_LATEST of x on the failed store: %zd \"%.*s\"\n", r,
		      r > 0 ? (int)r : 0, (char *)f->got);
	err = db_close(f);
	print_message("[ INFO     ] kv_close of the failed store returned %d\n", err);

	/* Reopen (no power cut: the failed commit's bytes may be in the file). */
	db_open(f);
	check_prefix(f, n, n, "reopened after fsync failure");
	r = kv_get(f->db, 0, "x", 1, f->got, VMAX);
	assert_int_equal(r, 3);
	assert_true(!memcmp(f->got, "old", 3) || !memcmp(f->got, "new", 3));
	print_message("[ INFO     ] after reopen x = \"%.3s\"\n", (char *)f->got);
	expect_val(f, "y", NULL);
	expect_val(f, "z1", NULL);
	expect_val(f, "z2", NULL);

	/* The store takes writes again. */
	assert_int_equal(kv_put(f->db, NULL, "y", 1, "2", 1), 0);
	assert_int_equal(db_close(f), 0);
	db_open(f);
	expect_val(f, "y", "2");
	assert_int_equal(db_close(f), 0);
}

/*
 * An fsync failure, a reopen (the failed commit's bytes are still in the page
 * cache, so recovery may replay them), an acknowledged write, a second
 * failure, then a power cut: the acknowledged write must survive and the
 * store must open. Also a power cut straight after a failure.
 */
static void test_fsync_failure_power_cut(void **state)
{
	struct fx *f = *state;
	struct kv_fault_rules rule = { .fail_sync_after = 1 };
	unsigned n = 20;
	ssize_t r;

	f->seed = kvt_seed("fsync_failure_power_cut");
	db_open(f);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(put_key(f, i, NULL), 0);
	assert_int_equal(kv_put(f->db, NULL, "x", 1, "v1", 2), 0);

	/* A failure, then at once a power cut: the unsynced commit is gone. */
	kv_fault_env_set_rules(f->fe, &rule);
	assert_true(kv_put(f->db, NULL, "x", 1, "v2", 2) < 0);
	db_abandon(f);
	power_cut(f, 0);
	db_open(f);
	check_prefix(f, n, n, "power cut right after an fsync failure");
	expect_val(f, "x", "v1");

	/* A failure, a reopen without power cut, an acknowledged write. */
	kv_fault_env_set_rules(f->fe, &rule);
	assert_true(kv_put(f->db, NULL, "x", 1, "v3", 2) < 0);
	db_close(f);
	clear_rules(f);
	db_open(f);
	r = kv_get(f->db, 0, "x", 1, f->got, VMAX);
	print_message("[ INFO     ] reopened after the failure without a power cut: x = \"%.*s\"\n",
		      r > 0 ? (int)r : 0, (char *)f->got);
	assert_int_equal(kv_put(f->db, NULL, "x", 1, "v4", 2), 0);

	/* A second failure, then the power cut. */
	kv_fault_env_set_rules(f->fe, &rule);
	assert_true(kv_put(f->db, NULL, "x", 1, "v5", 2) < 0);
	assert_int_equal(kv_put(f->db, NULL, "y", 1, "1", 1), -EIO);
	expect_val(f, "x", "v4");
	db_abandon(f);
	power_cut(f, 0);
	db_open(f);
	check_prefix(f, n, n, "power cut after two fsync failures");
	expect_val(f, "x", "v4"); /* acknowledged; v5's sync never succeeded */
	expect_val(f, "y", NULL);
	assert_int_equal(db_close(f), 0);
}

/* ---- 5. ENOSPC ---------------------------------------------------------------- */

static void enospc_round(struct fx *f, uint64_t budget, unsigned vmax, const char *what)
{
	struct kv_fault_rules rule = { .enospc_after_bytes = (int64_t)budget };
	unsigned acked = 0, written;
	int err = 0;

	fresh_store(f);
	f->vmax = vmax;
	db_open(f);
	wait_spare(f);
	kv_fault_env_set_rules(f->fe, &rule);
	for (written = 0; written < 100000; written++) {
		err = put_key(f, written, NULL);
		if (err)
			break;
		acked++;
	}
	print_message("[ INFO     ] %s: budget %llu: %u writes acknowledged, then %d (%s): %s",
		      what, (unsigned long long)budget, acked, err, strerror(-err), f->log.text);
	if (err != -ENOSPC && err != -EIO)
		fail_msg("%s: the write that ran out of space returned %d", what, err);
	assert_true(acked > 0);
	/* The store has failed: later writes are refused. */
	assert_int_equal(put_key(f, written + 1, NULL), -EIO);
	check_prefix(f, written + 2, acked, what);
	db_close(f);
	clear_rules(f);
	db_open(f);
	check_prefix(f, written + 2, acked, what);
	/* Space again: the store takes writes again. */
	assert_int_equal(kv_put(f->db, NULL, "after", 5, "1", 1), 0);
	assert_int_equal(db_close(f), 0);
}

static void test_enospc(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("enospc");

	f->seed = rs;
	/* Out of space inside a segment (the WAL write fails). */
	enospc_round(f, 2000 + kvt_rand(&rs) % 4000, 300, "WAL write");
	/* Out of space while the next segment is being made: 64 KiB segments,
	 * a budget of the first segment's records and part of the spare that
	 * the rotation into the second one asks for. */
	f->opt.log_buffer_size = 64 << 10;
	enospc_round(f, (80 << 10) + kvt_rand(&rs) % 8192, 2000, "spare segment");
	/* And when the WAL write into a later segment runs out. */
	enospc_round(f, (160 << 10) + kvt_rand(&rs) % 8192, 2000, "later segment");
}

/* ---- 6. short writes ------------------------------------------------------- */

static void test_short_writes(void **state)
{
	struct fx *f = *state;
	struct kv_fault_rules rule = { .short_writes = 1 };
	struct kv_write_options batch = { .durability = KV_DUR_BATCH };
	struct kv_stats st;
	unsigned n = 120;

	f->seed = kvt_seed("short_writes");
	f->vmax = 8000;
	kv_fault_env_set_rules(f->fe, &rule);
	db_open(f);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(put_key(f, i, i % 3 ? NULL : &batch), 0);
	assert_int_equal(kv_sync(f->db), 0);
	assert_int_equal(kv_stats(f->db, &st), 0);
	assert_int_equal(st.failed, 0);
	assert_true(st.wal_segments + st.flushes >= 2); /* it rotated too */
	check_prefix(f, n, n, "short writes, before close");
	assert_int_equal(db_close(f), 0);
	db_open(f);
	check_prefix(f, n, n, "short writes, reopened");
	assert_int_equal(db_close(f), 0);
	/* And what short writes wrote is durable: a power cut loses nothing. */
	power_cut(f, 0);
	db_open(f);
	check_prefix(f, n, n, "short writes, after a power cut");
	assert_int_equal(db_close(f), 0);
}

/* ---- 7. asynchronous writes and a failure ----------------------------------- */

struct async_run {
	unsigned first;	    /* key of tag 0 */
	unsigned submitted; /* accepted by kv_write_async */
	int status[256];    /* per tag; 1 = no completion yet */
};

/* Reap until every submitted write has its completion (10 s at most); each
 * exactly once, in tag (= LSN) order, and never a success after a failure. */
static void reap_all(struct kv_cq *cq, struct async_run *a, unsigned *ok)
{
	struct kv_completion c[64];
	unsigned got = 0;
	int last_tag = -1, failed = 0;
	double t0 = now();

	while (got < a->submitted) {
		int n = kv_cq_reap(cq, c, 64, 0);

		if (n == 0) {
			if (now() - t0 > 10)
				fail_msg("%u of %u completions after 10 s", got, a->submitted);
			usleep(200);
			continue;
		}
		for (int i = 0; i < n; i++) {
			uint64_t t = c[i].tag;

			assert_true(t < a->submitted);
			if (a->status[t] != 1)
				fail_msg("tag %llu completed twice", (unsigned long long)t);
			if ((int)t <= last_tag)
				fail_msg("tag %llu completed after tag %d", (unsigned long long)t,
					 last_tag);
			assert_true(c[i].status <= 0);
			if (c[i].status == 0 && failed)
				fail_msg("tag %llu succeeded after an earlier one failed",
					 (unsigned long long)t);
			failed |= c[i].status < 0;
			a->status[t] = c[i].status;
			last_tag = (int)t;
			got++;
		}
	}
	/* No extra completion turns up later. */
	usleep(20000);
	assert_int_equal(kv_cq_reap(cq, c, 64, 0), 0);
	*ok = 0;
	while (*ok < a->submitted && a->status[*ok] == 0)
		(*ok)++;
}

static void submit(struct fx *f, struct kv_cq *cq, struct async_run *a, unsigned n, int pace)
{
	struct kv_batch *b;
	char key[16];

	assert_int_equal(kv_batch_create(&b), 0);
	a->submitted = 0;
	for (unsigned i = 0; i < n && i < 256; i++) {
		unsigned k = a->first + i;
		size_t vlen = val_of(f, k, f->want);
		int err;

		kv_batch_clear(b);
		assert_int_equal(kv_batch_put(b, key, key_of(k, key), f->want, vlen), 0);
		a->status[i] = 1;
		err = kv_write_async(f->db, NULL, b, cq, i);
		if (err) {
			assert_int_equal(err, -EIO); /* refused: the store has failed */
			break;
		}
		a->submitted++;
		if (pace && i % 8 == 7)
			usleep(300);
	}
	kv_batch_destroy(b);
}

static void test_async_failure(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("async_failure");
	struct async_run *a = calloc(1, sizeof(*a));
	struct kv_cq *cq;
	unsigned ok, bad, base;
	int rounds = 6 * kvt_scale();

	assert_non_null(a);
	f->seed = rs;
	assert_int_equal(kv_cq_create(&cq), 0);
	db_open(f);

	/* No fault: every completion is a success. */
	a->first = 0;
	submit(f, cq, a, 32, 0);
	assert_int_equal(a->submitted, 32);
	reap_all(cq, a, &ok);
	assert_int_equal(ok, 32);
	base = 32;

	/* Every sync fails from now on: whatever is in flight fails. */
	{
		struct kv_fault_rules rule = { .fail_sync_after = 1 };

		kv_fault_env_set_rules(f->fe, &rule);
	}
	a->first = base;
	submit(f, cq, a, 64, 0);
	assert_true(a->submitted >= 1);
	reap_all(cq, a, &ok);
	assert_int_equal(ok, 0);
	for (unsigned i = 0; i < a->submitted; i++)
		assert_true(a->status[i] < 0);
	print_message(
		"[ INFO     ] %u async writes in flight at the fsync failure, all failed (%d)\n",
		a->submitted, a->status[0]);
	db_abandon(f);
	power_cut(f, 0);
	db_open(f);
	check_prefix(f, base + a->submitted, base, "async, all failed");
	assert_int_equal(db_close(f), 0);

	/* Failures in the middle of a stream: some commits succeed first. */
	for (int r = 0; r < rounds; r++) {
		struct kv_fault_rules rule = {
			.fail_sync_after = 1 + (int64_t)(kvt_rand(&rs) % 6),
		};
		char what[64];

		fresh_store(f);
		f->seed = kvt_rand(&rs);
		db_open(f);
		kv_fault_env_set_rules(f->fe, &rule);
		a->first = 0;
		submit(f, cq, a, 200, 1);
		reap_all(cq, a, &ok);
		bad = a->submitted - ok;
		snprintf(what, sizeof(what), "async round %d (fail_sync_after %lld)", r,
			 (long long)rule.fail_sync_after);
		print_message("[ INFO     ] %s: %u submitted, %u succeeded, %u failed\n", what,
			      a->submitted, ok, bad);
		db_abandon(f);
		power_cut(f, kvt_rand(&rs) | 1);
		db_open(f);
		check_prefix(f, a->submitted + 1, ok, what);
		assert_int_equal(db_close(f), 0);
	}
	kv_cq_destroy(cq);
	free(a);
}

/* ---- 10. freeze: a power cut with the db open -------------------------- */

struct freeze_writer {
	struct fx *f;
	unsigned acked, written; /* keys acknowledged; keys tried */
	int err;		 /* the first failure */
	atomic_int started;	 /* some writes were acknowledged */
};

/* Sync-mode puts in key order until one fails (the freeze). */
static void *freeze_write(void *arg)
{
	struct freeze_writer *w = arg;

	for (;; w->written++) {
		w->err = put_key(w->f, w->written, NULL);
		if (w->err)
			return NULL;
		if (++w->acked == 20)
			atomic_store(&w->started, 1);
	}
}

/*
 * kv_fault_env_freeze with the files open (the kvfs daemon's power-cut
 * hook): every later I/O fails, what was acknowledged as durable before it
 * survives, and nothing later does. Sync mode with a writer running during
 * the cut, clean and torn; then batch mode, where the appended but unsynced
 * writes may survive only as a prefix.
 */
static void test_freeze_open(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("freeze_open");
	int rounds = 4 * kvt_scale();
	unsigned k1 = 200, k2 = 200, p;
	char what[64];
	pthread_t thr;

	for (int r = 0; r < rounds; r++) {
		struct freeze_writer w = { .f = f };
		uint64_t torn = r % 2 ? kvt_rand(&rs) | 1 : 0;

		fresh_store(f);
		f->seed = kvt_rand(&rs);
		f->opt.durability = KV_DUR_SYNC;
		db_open(f);
		assert_int_equal(pthread_create(&thr, NULL, freeze_write, &w), 0);
		while (!atomic_load(&w.started))
			usleep(100);
		usleep((useconds_t)(kvt_rand(&rs) % 3000));
		assert_int_equal(kv_fault_env_freeze(f->fe, torn), 0);
		pthread_join(thr, NULL);
		assert_int_not_equal(w.err, 0);
		/* Frozen: the db cannot make anything durable any more. */
		assert_int_not_equal(put_key(f, w.written + 1, NULL), 0);
		/* Files are open: a plain power cut still refuses. */
		assert_int_equal(kv_fault_env_power_cut(f->fe, 0), -EBUSY);
		db_abandon(f);
		power_cut(f, 0); /* nothing left to undo; lifts the freeze */
		db_open(f);
		snprintf(what, sizeof(what), "freeze round %d (torn %d)", r, torn != 0);
		p = check_prefix(f, w.written + 2, w.acked, what);
		print_message("[ INFO     ] %s: %u acknowledged, %u survived\n", what, w.acked, p);
		assert_true(p <= w.written + 1);
		assert_int_equal(db_close(f), 0);
	}

	fresh_store(f);
	f->seed = kvt_rand(&rs);
	f->opt.durability = KV_DUR_BATCH;
	db_open(f);
	for (unsigned i = 0; i < k1; i++)
		assert_int_equal(put_key(f, i, NULL), 0);
	assert_int_equal(kv_sync(f->db), 0);
	for (unsigned i = k1; i < k1 + k2; i++)
		assert_int_equal(put_key(f, i, NULL), 0);
	assert_int_equal(kv_fault_env_freeze(f->fe, 0), 0);
	put_key(f, k1 + k2, NULL); /* may be appended; never durable */
	assert_int_not_equal(kv_sync(f->db), 0);
	db_abandon(f);
	power_cut(f, 0);
	db_open(f);
	p = check_prefix(f, k1 + k2 + 1, k1, "freeze, batch mode");
	print_message("[ INFO     ] batch: %u of %u unsynced writes survived the freeze\n", p - k1,
		      k2);
	assert_int_equal(db_close(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_power_cut_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_torn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_reopen_power_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_failure_power_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_freeze_open, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
