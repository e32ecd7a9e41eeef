/* SPDX-License-Identifier: MIT */
/*
 * Crashes and I/O errors during flush and compaction, through the fault env.
 *
 * Each case builds a store whose every write was acknowledged in sync mode
 * (puts, overwrites, deletes and a range delete, in batches), then runs
 * kv_flush (or, after several flushes, kv_compact) with a fault armed:
 *
 *   crash_after_ops = N   the process "dies" at the Nth I/O call: every
 *                         call after it fails with -EIO. The db is then
 *                         abandoned, the power cut (clean, torn, or not at
 *                         all: a process crash with the page cache intact),
 *                         and the store reopened through the same env.
 *   fail_sync_after = N   the Nth fsync fails with -EIO (and every later
 *                         one). The store must say so (kv_flush/kv_compact
 *                         < 0, or bg_error / failed in kv_stats), and must
 *                         not lose anything it acknowledged, even if the
 *                         power then goes.
 *   enospc_after_bytes    the disk fills part way through the flush (or
 *                         compaction); then space comes back: the store
 *                         recovers (a retried kv_flush / kv_compact
 *                         succeeds) or stays failed (-EIO) until reopened.
 *                         Nothing is lost after reopen.
 *
 * N runs 1, 2, 3, ... until the operation completes without meeting the
 * fault (it returns 0 and a write after it is acknowledged); past 64 the
 * step grows by 1/16 each time in CI runs (every N with KV_TEST_LONG).
 *
 * After every reopen: every acknowledged write is there with its value, no
 * deleted key is back, one write that was not acknowledged (the probe after
 * the operation) is there whole or not at all, an iteration agrees, a
 * kv_compact on the recovered store succeeds (no clash with files a crash
 * left behind), and after closing, kv_check finds no problem.
 *
 * test_crash_background kills the process while automatic flushes and
 * compactions run under a writer: the store must be a prefix of whole
 * batches holding every acknowledged one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "persist_util.h"

#define NKEYS 600u
#define VMAX 600u
#define PROBE "zz-probe"

struct fx {
	struct kvp_store kv; /* over a fault env; kv.ctx points at what */
	uint64_t seed;
	int ver[NKEYS]; /* acknowledged version of each key, -1 = absent */
	int probe_acked;
	uint8_t want[VMAX], got[VMAX];
	char what[160]; /* the case under way, for failure messages */
	unsigned cases, hits, warn_orphans;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || kvp_store_init(&f->kv, "pcrash", 1)) {
		free(f);
		return -1;
	}
	f->kv.ctx = f->what;
	f->kv.opt.log_buffer_size = 64 << 10;
	f->kv.opt.manual_background = 1;
	f->kv.opt.max_immutable = 16;
	f->kv.opt.table_target_size = 32 << 10; /* compactions write several tables */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	kvp_store_fini(&f->kv);
	free(f);
	return 0;
}

static void clear_rules(struct fx *f)
{
	struct kv_fault_rules r = { 0 };

	kv_fault_env_set_rules(f->kv.fe, &r);
}

static void fresh_store(struct fx *f)
{
	assert_null(f->kv.db);
	kv_fault_env_settle(f->kv.fe);
	clear_rules(f);
	kvt_rmrf(f->kv.dir);
	assert_int_equal(mkdir(f->kv.dir, 0700), 0);
	for (unsigned i = 0; i < NKEYS; i++)
		f->ver[i] = -1;
	f->probe_acked = 0;
}

/* ---- the acknowledged writes ------------------------------------------- */

static size_t key_of(unsigned i, char *key)
{
	return (size_t)sprintf(key, "k%06u", i);
}

static size_t val_of(const struct fx *f, unsigned i, int ver, uint8_t *buf)
{
	uint64_t h = kvp_mix(f->seed ^ ((uint64_t)i << 20) ^ (uint64_t)ver);

	return kvp_value(buf, 50 + h % (VMAX - 100), h, "%u.%d:", i, ver);
}

/* Keys [a, b) at version @ver (or deleted: ver -1), in sync batches of 20. */
static void write_keys(struct fx *f, unsigned a, unsigned b, unsigned step, int ver)
{
	struct kv_batch *bt;

	assert_int_equal(kv_batch_create(&bt), 0);
	for (unsigned i = a; i < b; i += step) {
		char key[16];
		size_t klen = key_of(i, key);

		if (ver < 0) {
			assert_int_equal(kv_batch_delete(bt, key, klen), 0);
		} else {
			uint8_t val[VMAX];

			assert_int_equal(kv_batch_put(bt, key, klen, val, val_of(f, i, ver, val)),
					 0);
		}
		if (kv_batch_count(bt) == 20 || i + step >= b) {
			int err = kv_write(f->kv.db, NULL, bt);

			if (err)
				fail_msg("%s: building the store: kv_write = %d; log:\n%s", f->what,
					 err, f->kv.log.text);
			kv_batch_clear(bt);
		}
	}
	kv_batch_destroy(bt);
	for (unsigned i = a; i < b; i += step)
		f->ver[i] = ver;
}

static void delete_range(struct fx *f, unsigned a, unsigned b)
{
	char ka[16], kb[16];

	assert_int_equal(kv_delete_range(f->kv.db, NULL, ka, key_of(a, ka), kb, key_of(b, kb)), 0);
	for (unsigned i = a; i < b; i++)
		f->ver[i] = -1;
}

/*
 * The store before the faulty operation. @flushes: 0 leaves everything in
 * memtables (about three of them), 4 puts each phase in its own level-0
 * table, with the last writes still in the memtable.
 */
static void build_store(struct fx *f, int flushes)
{
	fresh_store(f);
	kvp_open(&f->kv);
	write_keys(f, 0, 400, 1, 0);
	if (flushes)
		kvp_flush(&f->kv);
	write_keys(f, 0, 400, 10, 1); /* overwrites */
	write_keys(f, 4, 400, 9, -1); /* deletes */
	if (flushes)
		kvp_flush(&f->kv);
	delete_range(f, 200, 260);
	write_keys(f, 230, 240, 1, 2); /* back inside the range */
	if (flushes)
		kvp_flush(&f->kv);
	write_keys(f, 400, NKEYS, 1, 0);
	if (flushes)
		kvp_flush(&f->kv);
	write_keys(f, 500, NKEYS, 7, 3);
	delete_range(f, 580, 590);
}

/* ---- checks ------------------------------------------------------------- */

static void check_store(struct fx *f)
{
	struct kv_iter *it;
	struct kv_stats st;
	unsigned want_n = 0, n = 0;
	ssize_t r;

	for (unsigned i = 0; i < NKEYS; i++) {
		char key[16];
		size_t klen = key_of(i, key), vlen;

		r = kv_get(f->kv.db, 0, key, klen, f->got, VMAX);
		if (f->ver[i] < 0) {
			if (r != -ENOENT)
				fail_msg(
					"%s: %s was deleted (acknowledged) but is back: kv_get = %zd "
					"(\"%.10s\"); log:\n%s",
					f->what, key, r, (char *)f->got, f->kv.log.text);
			continue;
		}
		want_n++;
		vlen = val_of(f, i, f->ver[i], f->want);
		if (r != (ssize_t)vlen || memcmp(f->got, f->want, vlen))
			fail_msg("%s: %s: kv_get = %zd (\"%.10s\"), want version %d (%zu bytes); "
				 "log:\n%s",
				 f->what, key, r, r > 0 ? (char *)f->got : "", f->ver[i], vlen,
				 f->kv.log.text);
	}
	r = kv_get(f->kv.db, 0, PROBE, strlen(PROBE), f->got, VMAX);
	if (r == -ENOENT && f->probe_acked)
		fail_msg("%s: the acknowledged probe write is lost", f->what);
	if (r != -ENOENT && (r != 5 || memcmp(f->got, "probe", 5)))
		fail_msg("%s: probe: kv_get = %zd", f->what, r);
	want_n += r == 5;

	assert_int_equal(kvp_iter_open(f->kv.db, NULL, &it), 0);
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it))
		n++;
	if (kv_iter_status(it))
		fail_msg("%s: iteration: status %d", f->what, kv_iter_status(it));
	kvp_iter_close(it);
	if (n != want_n)
		fail_msg("%s: iteration gives %u keys, gets give %u", f->what, n, want_n);
	kvp_stats(&f->kv, &st);
}

static void report(void *arg, const char *file, uint64_t off, const char *problem)
{
	struct fx *f = arg;

	print_message("[ ERROR    ] %s: kv_check: %s at %llu: %s\n", f->what, file,
		      (unsigned long long)off, problem);
}

/*
 * Reopen after the fault and check everything; then compact the recovered
 * store, check again, close, and run kv_check.
 */
static void reopen_and_check(struct fx *f, int power_cut, uint64_t torn)
{
	struct kv_stats st;
	unsigned files, tables;
	int err;

	if (power_cut)
		assert_int_equal(kv_fault_env_power_cut(f->kv.fe, torn), 0);
	clear_rules(f);
	kvp_open(&f->kv);
	check_store(f);
	kvp_compact(&f->kv);
	check_store(f);
	assert_int_equal(kv_stats(f->kv.db, &st), 0);
	tables = (unsigned)kvp_table_count(&st);
	kvp_close(&f->kv);
	files = kvp_count_files(f->kv.dir, "tbl-", ".sst");
	if (files != tables) {
		/* Not a loss of data; worth knowing (space leaked by a crash). */
		if (!f->warn_orphans++)
			print_message("[ WARN     ] %s: %u table files in the directory, %u in the "
				      "store (orphans after the fault)\n",
				      f->what, files, tables);
	}
	err = kv_check(f->kv.dir, NULL, report, f);
	if (err)
		fail_msg("%s: kv_check = %d", f->what, err);
	f->cases++;
}

/* After the operation: one more write, acknowledged or not. 0 if it was. */
static int probe(struct fx *f)
{
	int err = kv_put(f->kv.db, NULL, PROBE, strlen(PROBE), "probe", 5);

	f->probe_acked = err == 0;
	return err;
}

static int next_n(int n)
{
	if (kvt_scale() > 1 || n < 64)
		return n + 1;
	return n + n / 16;
}

static int run_op(struct fx *f, int compact)
{
	return compact ? kv_compact(f->kv.db) : kv_flush(f->kv.db);
}

/* ---- 1. the process dies during a flush or compaction ------------------- */

static void crash_loop(struct fx *f, int compact)
{
	const char *op = compact ? "kv_compact" : "kv_flush";
	int n, limit = 4000, done = 0;

	for (n = 1; n <= limit && !done; n = next_n(n)) {
		struct kv_fault_rules rule = { .crash_after_ops = n };
		int variant = n % 3; /* 0 clean power cut, 1 torn, 2 process crash only */
		uint64_t torn = variant == 1 ? kvp_mix(f->seed + (uint64_t)n) | 1 : 0;
		int err, perr = -1;

		snprintf(f->what, sizeof(f->what), "building for %s, crash after %d", op, n);
		build_store(f, compact ? 4 : 0);
		kv_fault_env_set_rules(f->kv.fe, &rule);
		err = run_op(f, compact);
		if (!err)
			perr = probe(f);
		done = !err && !perr;
		if (err)
			f->hits++;
		kv_abandon(f->kv.db);
		f->kv.db = NULL;
		snprintf(f->what, sizeof(f->what), "%s: crash after %d ops (%s = %d, %s)", op, n,
			 op, err,
			 variant == 0 ? "power cut" :
			 variant == 1 ? "torn power cut" :
					"no power cut");
		if (variant == 1)
			snprintf(f->what + strlen(f->what), sizeof(f->what) - strlen(f->what),
				 " torn seed %llu", (unsigned long long)torn);
		reopen_and_check(f, variant != 2, torn);
	}
	if (!done)
		fail_msg("%s still meets the crash after %d I/O calls", op, limit);
	print_message("[ INFO     ] %s: %u crash points (%u inside the operation), the last "
		      "N = %d completed\n",
		      op, f->cases, f->hits, n);
}

static void test_crash_in_flush(void **state)
{
	struct fx *f = *state;

	f->seed = kvt_seed("crash_in_flush");
	crash_loop(f, 0);
}

static void test_crash_in_compaction(void **state)
{
	struct fx *f = *state;

	f->seed = kvt_seed("crash_in_compaction");
	crash_loop(f, 1);
}

/* ---- 2. fsync fails during a flush or compaction ------------------------- */

static void sync_fail_loop(struct fx *f, int compact)
{
	const char *op = compact ? "kv_compact" : "kv_flush";
	int n, done = 0, reported = 0;

	for (n = 1; n <= 200 && !done; n++) {
		struct kv_fault_rules rule = { .fail_sync_after = n };
		struct kv_stats st;
		int err, perr = -1, cerr;

		snprintf(f->what, sizeof(f->what), "building for %s, sync %d fails", op, n);
		build_store(f, compact ? 4 : 0);
		kv_fault_env_set_rules(f->kv.fe, &rule);
		err = run_op(f, compact);
		assert_int_equal(kv_stats(f->kv.db, &st), 0);
		if (err || st.bg_error || st.failed)
			reported++;
		if (!err && !st.bg_error && !st.failed)
			perr = probe(f);
		done = !err && !st.bg_error && !st.failed && !perr;
		snprintf(f->what, sizeof(f->what),
			 "%s: sync %d fails (%s = %d, bg_error %d, failed %d, probe %d)", op, n, op,
			 err, st.bg_error, st.failed, perr);
		if (!done && err == 0 && !st.bg_error && !st.failed)
			print_message("[ INFO     ] %s: the failed sync came after the operation\n",
				      f->what);
		/* A failed store refuses writes rather than losing them. */
		if (st.failed) {
			int e2 = kv_put(f->kv.db, NULL, "zz-after", 8, "x", 1);

			if (e2 == 0)
				fail_msg("%s: a failed store acknowledged a write", f->what);
		}
		cerr = kv_close(f->kv.db);
		f->kv.db = NULL;
		if (cerr && cerr != -EIO)
			print_message("[ INFO     ] %s: kv_close = %d\n", f->what, cerr);
		/* The power goes too: what the failed syncs did not make durable
		 * is gone, and must not have been needed. */
		reopen_and_check(f, 1, n % 2 ? 0 : kvp_mix(f->seed + (uint64_t)n) | 1);
	}
	if (!done)
		fail_msg("%s still meets the failing sync at 200", op);
	print_message("[ INFO     ] %s: %d sync failure points, %d reported by the store\n", op,
		      n - 1, reported);
	assert_true(reported > 0);
}

static void test_sync_fail_in_flush(void **state)
{
	struct fx *f = *state;

	f->seed = kvt_seed("sync_fail_in_flush");
	sync_fail_loop(f, 0);
}

static void test_sync_fail_in_compaction(void **state)
{
	struct fx *f = *state;

	f->seed = kvt_seed("sync_fail_in_compaction");
	sync_fail_loop(f, 1);
}

/* ---- 3. the disk fills during a flush ------------------------------------ */

static void enospc_loop(struct fx *f, int compact)
{
	const char *op = compact ? "kv_compact" : "kv_flush";
	int64_t budget;
	int done = 0, refused = 0;
	char stuck[sizeof(((struct fx *)0)->kv.log.text) + 256] = "";

	for (budget = 1; !done && budget < (64 << 20); budget = budget * 3 + 1) {
		struct kv_fault_rules rule = { .enospc_after_bytes = budget };
		struct kv_stats st, st2;
		int err, retry = 1;

		snprintf(f->what, sizeof(f->what), "building for %s, ENOSPC after %lld bytes", op,
			 (long long)budget);
		build_store(f, compact ? 4 : 0);
		kv_fault_env_set_rules(f->kv.fe, &rule);
		err = run_op(f, compact);
		assert_int_equal(kv_stats(f->kv.db, &st), 0);
		done = !err && !st.bg_error && !st.failed;
		if (!done) {
			refused++;
			/* Space comes back: the store either recovers (the
			 * background retries) or stays failed until reopened
			 * (then -EIO). Nothing is lost either way. */
			clear_rules(f);
			for (int t = 0; t < 3 && retry; t++)
				retry = run_op(f, compact);
			assert_int_equal(kv_stats(f->kv.db, &st2), 0);
			/* Reported at the end, so that every budget is still tried. */
			if (retry && !st2.failed && !stuck[0])
				snprintf(stuck, sizeof(stuck),
					 "ENOSPC after %lld bytes: %s = %d; with space back, %s "
					 "still fails after 3 tries: %d (bg_error %d, failed %d); "
					 "log:\n%s",
					 (long long)budget, op, err, op, retry, st2.bg_error,
					 st2.failed, f->kv.log.text);
		}
		snprintf(f->what, sizeof(f->what),
			 "ENOSPC after %lld bytes: %s = %d, bg_error %d, failed %d, retry %d",
			 (long long)budget, op, err, st.bg_error, st.failed, retry);
		if (refused == 1 && !done)
			print_message("[ INFO     ] %s\n", f->what);
		if (err == 0 && (st.bg_error || st.failed))
			print_message("[ INFO     ] %s: error reported through stats only\n",
				      f->what);
		if (!done && err != -ENOSPC && st.bg_error != -ENOSPC && st.failed != -ENOSPC &&
		    err != -EIO && st.failed != -EIO)
			fail_msg("%s: want -ENOSPC (or -EIO) reported", f->what);
		kv_close(f->kv.db);
		f->kv.db = NULL;
		reopen_and_check(f, budget % 2, 0);
	}
	assert_true(done);
	assert_true(refused > 0);
	print_message("[ INFO     ] %s, ENOSPC: %d budgets refused, then %lld bytes were enough\n",
		      op, refused, (long long)((budget - 1) / 3));
	if (stuck[0])
		fail_msg("%s", stuck);
}

static void test_enospc_in_flush(void **state)
{
	struct fx *f = *state;

	f->seed = kvt_seed("enospc_in_flush");
	enospc_loop(f, 0);
}

static void test_enospc_in_compaction(void **state)
{
	struct fx *f = *state;

	f->seed = kvt_seed("enospc_in_compaction");
	enospc_loop(f, 1);
}

/* ---- 4. the process dies while background work runs ------------------------ */

/*
 * Automatic flush and compaction (small buffers, small levels) while one
 * thread writes batches of ten new keys "c%07u", in order, synchronously.
 * The process dies after a seeded number of I/O calls; then the power goes
 * (clean or torn). The store must hold exactly a prefix of the batches: all
 * acknowledged ones, whole batches only, nothing after a missing key.
 */
#define BG_BATCH 10u
#define BG_MAX 20000u

static size_t bkey_of(unsigned i, char *key)
{
	return (size_t)sprintf(key, "c%07u", i);
}

/* 1 if background key @i is there with its value, 0 if absent. */
static int bg_has(struct fx *f, unsigned i)
{
	char key[16];
	size_t klen = bkey_of(i, key), vlen = val_of(f, i, 7, f->want);
	ssize_t r = kv_get(f->kv.db, 0, key, klen, f->got, VMAX);

	if (r == -ENOENT)
		return 0;
	if (r != (ssize_t)vlen || memcmp(f->got, f->want, vlen))
		fail_msg("%s: %s: kv_get = %zd, want %zu bytes", f->what, key, r, vlen);
	return 1;
}

static void test_crash_background(void **state)
{
	struct fx *f = *state;
	uint64_t rs = kvt_seed("crash_background");
	int rounds = 8 * kvt_scale();
	struct kv_batch *b;

	f->kv.opt.manual_background = 0;
	f->kv.opt.max_immutable = 2;
	f->kv.opt.l0_compact_trigger = 2;
	f->kv.opt.level1_max_bytes = 128 << 10;
	assert_int_equal(kv_batch_create(&b), 0);
	for (int r = 0; r < rounds; r++) {
		struct kv_fault_rules rule = { .crash_after_ops =
						       100 + (int64_t)(kvt_rand(&rs) % 3000) };
		uint64_t torn = r % 2 ? kvt_rand(&rs) | 1 : 0;
		unsigned acked = 0, written = 0, p, i;
		struct kv_stats st;
		int err = 0;

		f->seed = kvt_rand(&rs);
		snprintf(f->what, sizeof(f->what), "round %d: building", r);
		fresh_store(f);
		kvp_open(&f->kv);
		for (written = 0; written < BG_MAX; written += BG_BATCH) {
			if (written == 200)
				kv_fault_env_set_rules(f->kv.fe, &rule);
			kv_batch_clear(b);
			for (i = written; i < written + BG_BATCH; i++) {
				char key[16];
				uint8_t val[VMAX];

				assert_int_equal(kv_batch_put(b, key, bkey_of(i, key), val,
							      val_of(f, i, 7, val)),
						 0);
			}
			err = kv_write(f->kv.db, NULL, b);
			if (err)
				break;
			acked = written + BG_BATCH;
		}
		assert_int_equal(kv_stats(f->kv.db, &st), 0);
		kv_abandon(f->kv.db);
		f->kv.db = NULL;
		snprintf(f->what, sizeof(f->what),
			 "round %d: crash after %lld ops, %u keys acknowledged (%llu flushes, %llu "
			 "compactions), %s power cut",
			 r, (long long)rule.crash_after_ops, acked, (unsigned long long)st.flushes,
			 (unsigned long long)st.compactions, torn ? "torn" : "clean");
		assert_int_equal(kv_fault_env_power_cut(f->kv.fe, torn), 0);
		clear_rules(f);
		kvp_open(&f->kv);
		for (p = 0; p < written + BG_BATCH && bg_has(f, p);)
			p++;
		for (i = p; i < written + BG_BATCH; i++)
			if (bg_has(f, i))
				fail_msg("%s: not a prefix: key %u missing, key %u present",
					 f->what, p, i);
		if (p < acked)
			fail_msg("%s: only %u keys survived", f->what, p);
		if (p % BG_BATCH)
			fail_msg("%s: %u keys survived: a batch of %u was torn", f->what, p,
				 BG_BATCH);
		kvp_compact(&f->kv);
		for (i = 0; i < p; i += 37)
			assert_int_equal(bg_has(f, i), 1);
		kvp_close(&f->kv);
		err = kv_check(f->kv.dir, NULL, report, f);
		if (err)
			fail_msg("%s: kv_check = %d", f->what, err);
		if (r == 0)
			print_message("[ INFO     ] %s: %u survived\n", f->what, p);
	}
	kv_batch_destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_in_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_in_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_fail_in_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_fail_in_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_in_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_in_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_background, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
