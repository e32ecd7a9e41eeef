/* SPDX-License-Identifier: MIT */
/*
 * Deleting a big file's data: unlink and truncate append a constant number
 * of bytes to the WAL whatever the file's size (one range tombstone), and
 * the store gets the space back in the background (kv/compact.c,
 * "Reclaiming"); an open file keeps its data after its last unlink until
 * its release.
 *
 * The file is FILE_MB MiB (256; 10 GiB with KV_TEST_LONG=1), written in
 * big kvfs_write calls. Space is the store's table bytes (kv_stats: what
 * the engine keeps in table files), polled until it is back near the level
 * before the file, failing after a generous cap (not a timed assertion).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fs_test_util.h"

#define MiB ((uint64_t)1 << 20)
#define CHUNK (8 * MiB)
#define WAL_MAX 4096   /* bytes an unlink or truncate may append */
#define POLL_CAP_S 600 /* generous: the work takes seconds */

static uint64_t file_bytes(void)
{
	return getenv("KV_TEST_LONG") && atoi(getenv("KV_TEST_LONG")) ? 10240 * MiB : 256 * MiB;
}

static void stats(struct fst *t, struct kv_stats *st)
{
	assert_int_equal(kv_stats(t->fs->db, st), 0);
	assert_int_equal(st->failed, 0);
}

static uint64_t table_bytes(struct fst *t)
{
	struct kv_stats st;
	uint64_t b = 0;

	stats(t, &st);
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		b += st.level_bytes[l];
	return b;
}

static uint64_t appended(struct fst *t)
{
	struct kv_stats st;

	stats(t, &st);
	return st.appended_lsn;
}

/* Block @i of the file's content: its index in every 8-byte word. */
static void pattern(uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w = (off + i) / 8;

		memcpy(buf + i, &w, 8);
	}
}

static void write_file(struct fst *t, uint64_t ino, uint64_t size)
{
	uint8_t *buf = malloc(CHUNK);

	assert_non_null(buf);
	for (uint64_t off = 0; off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;

		pattern(buf, n, off);
		assert_int_equal(kvfs_write(t->fs, ino, off, buf, n, 0, NULL), (ssize_t)n);
	}
	free(buf);
}

static void check_at(struct fst *t, uint64_t ino, uint64_t off)
{
	uint8_t got[4096], want[4096];

	assert_int_equal(kvfs_read(t->fs, ino, off, sizeof(got), got), (ssize_t)sizeof(got));
	pattern(want, sizeof(want), off);
	assert_memory_equal(got, want, sizeof(got));
}

/* Poll until the table bytes are at most @limit. */
static uint64_t wait_tables(struct fst *t, uint64_t limit, const char *what)
{
	struct timespec nap = { 0, 50 * 1000 * 1000 };
	time_t t0 = time(NULL), stop = t0 + POLL_CAP_S;
	uint64_t b;

	while ((b = table_bytes(t)) > limit) {
		if (time(NULL) > stop)
			fail_msg("%s: table bytes still %" PRIu64 " > %" PRIu64 " after %d s", what,
				 b, limit, POLL_CAP_S);
		nanosleep(&nap, NULL);
	}
	print_message("%s: tables at %" PRIu64 " MiB after about %lld s\n", what, b / MiB,
		      (long long)(time(NULL) - t0));
	return b;
}

/* The file written, flushed to tables; *@base: table bytes before it. */
static uint64_t big_file(struct fst *t, const char *name, int unref, uint64_t *base)
{
	uint64_t ino;

	assert_int_equal(kv_flush(t->fs->db), 0);
	*base = table_bytes(t);
	ino = unref ? fst_file_unref(t, KVFS_ROOT_INO, name) : fst_file(t, KVFS_ROOT_INO, name);
	write_file(t, ino, file_bytes());
	assert_int_equal(kv_flush(t->fs->db), 0);
	assert_true(table_bytes(t) >= *base + file_bytes() / 2);
	return ino;
}

static void truncate_to(struct fst *t, uint64_t ino, uint64_t size)
{
	struct stat a = { .st_size = (off_t)size }, out;
	uint64_t lsn = appended(t);

	assert_int_equal(kvfs_setattr(t->fs, &t->cr, ino, &a, KVFS_SET_SIZE, &out, NULL), 0);
	print_message("truncate to %" PRIu64 " MiB appended %" PRIu64 " bytes\n", size / MiB,
		      appended(t) - lsn);
	assert_true(appended(t) - lsn < WAL_MAX);
}

static void test_unlink(void **state)
{
	struct fst *t = *state;
	uint64_t base, lsn;
	struct kvfs_entry e;

	big_file(t, "big", 1, &base);
	lsn = appended(t);
	assert_int_equal(kvfs_unlink(t->fs, KVFS_ROOT_INO, "big", NULL), 0);
	print_message("unlink appended %" PRIu64 " bytes\n", appended(t) - lsn);
	assert_true(appended(t) - lsn < WAL_MAX);
	assert_int_equal(kvfs_lookup(t->fs, KVFS_ROOT_INO, "big", &e), -ENOENT);
	wait_tables(t, base + file_bytes() / 64 + 4 * MiB, "unlink");
	fst_remount(t);
	assert_int_equal(kvfs_lookup(t->fs, KVFS_ROOT_INO, "big", &e), -ENOENT);
	assert_true(table_bytes(t) <= base + file_bytes() / 64 + 4 * MiB);
}

static void test_truncate_zero(void **state)
{
	struct fst *t = *state;
	uint64_t base, ino = big_file(t, "big", 0, &base);

	truncate_to(t, ino, 0);
	assert_int_equal(fst_stat(t, ino).st_size, 0);
	wait_tables(t, base + file_bytes() / 64 + 4 * MiB, "truncate to 0");
	kvfs_forget(t->fs, ino, 1);
}

static void test_truncate_half(void **state)
{
	struct fst *t = *state;
	uint64_t base, half = file_bytes() / 2, ino = big_file(t, "big", 0, &base);

	truncate_to(t, ino, half);
	assert_int_equal(fst_stat(t, ino).st_size, (off_t)half);
	/* Half the space returns: at most 60% of the file may stay. */
	wait_tables(t, base + file_bytes() / 10 * 6, "truncate to half");
	check_at(t, ino, 0);
	check_at(t, ino, half - 4096);
	fst_remount(t);
	assert_int_equal(fst_stat(t, ino).st_size, (off_t)half);
	check_at(t, ino, half / 2);
	check_at(t, ino, half - 4096);
	assert_true(table_bytes(t) >= base + half / 2);
	kvfs_forget(t->fs, ino, 1);
}

/* Open, unlinked: the data stays readable (and writable) until release. */
static void test_open_unlinked(void **state)
{
	struct fst *t = *state;
	uint64_t base, size = file_bytes(), lsn, ino = big_file(t, "big", 0, &base);
	uint8_t buf[4096];

	assert_int_equal(kvfs_open_file(t->fs, ino, O_RDWR, NULL), 0);
	kvfs_forget(t->fs, ino, 1); /* the kernel forgets the name; the open stays */
	lsn = appended(t);
	assert_int_equal(kvfs_unlink(t->fs, KVFS_ROOT_INO, "big", NULL), 0);
	assert_true(appended(t) - lsn < WAL_MAX);
	assert_int_equal(fst_stat(t, ino).st_nlink, 0);
	check_at(t, ino, 0);
	check_at(t, ino, size / 2);
	check_at(t, ino, size - 4096);
	pattern(buf, sizeof(buf), 4096);
	assert_int_equal(kvfs_write(t->fs, ino, 0, buf, sizeof(buf), 0, NULL), sizeof(buf));
	assert_int_equal(kvfs_read(t->fs, ino, 0, sizeof(buf), buf), sizeof(buf));
	check_at(t, ino, 4096);
	/* The space is held while open (give the background a moment to
	 * prove it wrong: nothing may be reclaimed). */
	assert_int_equal(kv_flush(t->fs->db), 0);
	assert_true(table_bytes(t) >= base + size / 2);
	check_at(t, ino, size - 4096);
	lsn = appended(t);
	kvfs_release(t->fs, ino);
	assert_true(appended(t) - lsn < WAL_MAX);
	wait_tables(t, base + size / 64 + 4 * MiB, "release");
	assert_int_equal(kvfs_getattr(t->fs, ino, &(struct stat){ 0 }), -ENOENT);
}

/* Open and unlinked at a "crash" (the store closed without the release):
 * the next mount reclaims the orphan. */
static void test_orphan_after_crash(void **state)
{
	struct fst *t = *state;
	uint64_t base, ino = big_file(t, "big", 0, &base);

	assert_int_equal(kvfs_open_file(t->fs, ino, O_RDONLY, NULL), 0);
	assert_int_equal(kvfs_unlink(t->fs, KVFS_ROOT_INO, "big", NULL), 0);
	fst_remount(t); /* closes with the file still open: no release ran */
	assert_int_equal(kvfs_getattr(t->fs, ino, &(struct stat){ 0 }), -ENOENT);
	wait_tables(t, base + file_bytes() / 64 + 4 * MiB, "orphan at mount");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unlink, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_truncate_zero, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_truncate_half, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_open_unlinked, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_orphan_after_crash, fst_fixture_setup,
						fst_fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
