// SPDX-License-Identifier: MIT
/*
 * File data (fs/data.c): read, write and truncate against an in-memory
 * model, inline files and their move to blocks, sparse files and files past
 * 4 GiB, exact st_blocks, relatime, persistence, concurrent writers, in
 * batch and sync durability, with and without a kvfs_done.
 *
 * After each change check_file() verifies the layout's invariants from the
 * store itself: nblocks equals the number of data keys, no key at or past
 * the end, no block value longer than the block or past EOF, inline files
 * consistent.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data.h"
#include "fs_test_util.h"

#define GIB (1ull << 30)

/* ---- helpers ------------------------------------------------------------ */

struct waitdone {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	int status;
};

static void wd_init(struct waitdone *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->calls = 0;
	w->status = 0;
}

static void wd_fn(void *arg, int status)
{
	struct waitdone *w = arg;

	pthread_mutex_lock(&w->mu);
	w->calls++;
	if (status && !w->status)
		w->status = status;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Wait for @n callbacks; returns the first error they reported. */
static int wd_wait(struct waitdone *w, int n)
{
	int st;

	pthread_mutex_lock(&w->mu);
	while (w->calls < n)
		pthread_cond_wait(&w->cv, &w->mu);
	st = w->status;
	pthread_mutex_unlock(&w->mu);
	return st;
}

static int wd_calls(struct waitdone *w)
{
	int n;

	pthread_mutex_lock(&w->mu);
	n = w->calls;
	pthread_mutex_unlock(&w->mu);
	return n;
}

static void wd_destroy(struct waitdone *w)
{
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

/* The layout invariants, and no allocated (empty) block. */
static void check_file(struct fst *t, uint64_t ino)
{
	assert_int_equal(fst_check_file(t, ino), 0);
}

/* ---- random operations against a model ---------------------------------- */

static void random_ops(uint32_t bs, enum kvfs_durability dur, const char *name)
{
	uint64_t seed = kvt_seed(name), rs = seed;
	size_t cap = 64 * (size_t)(bs > 4096 ? 4096 : bs) + 3 * 40000;
	uint8_t *model = calloc(1, cap), *buf = malloc(cap), *got = malloc(cap);
	uint64_t size = 0;
	int iters = 300 * kvt_scale();
	struct fst t;
	uint64_t ino;

	assert_true(model && buf && got);
	fst_setup(&t, bs, dur);
	ino = fst_file(&t, KVFS_ROOT_INO, "f");
	for (int i = 0; i < iters; i++) {
		unsigned op = (unsigned)(kvt_rand(&rs) % 100);
		uint64_t off = kvt_rand(&rs) % (cap / 2);
		size_t len;

		if (op < 50) { /* write, mostly small, some spanning many blocks */
			len = (size_t)(kvt_rand(&rs) % (op < 40 ? 3 * bs : cap / 2)) + 1;
			if (kvt_rand(&rs) % 4 == 0)
				off = kvt_rand(&rs) % 3000; /* near the inline boundary */
			fst_fill(buf, len, &rs);
			fst_write(&t, ino, off, buf, len);
			memcpy(model + off, buf, len);
			if (off + len > size)
				size = off + len;
		} else if (op < 80) { /* read, possibly past EOF */
			len = (size_t)(kvt_rand(&rs) % (4 * bs)) + 1;
			size_t want = off >= size ? 0 : (size - off < len ? size - off : len);
			ssize_t n = kvfs_read(t.fs, ino, off, len, got);

			assert_int_equal(n, (ssize_t)want);
			if (want && memcmp(got, model + off, want))
				fail_msg("seed %llu op %d: read %llu+%zu differs",
					 (unsigned long long)seed, i, (unsigned long long)off, len);
		} else if (op < 95) { /* truncate down or up */
			uint64_t ns = kvt_rand(&rs) % 3 == 0 ? kvt_rand(&rs) % 3000 :
							       kvt_rand(&rs) % (cap / 2);

			fst_set_size(&t, ino, ns);
			if (ns < size)
				memset(model + ns, 0, size - ns);
			size = ns;
		} else if (op < 97) { /* O_TRUNC */
			assert_int_equal(kvfs_open_file(t.fs, ino, O_WRONLY | O_TRUNC, NULL), 0);
			kvfs_release(t.fs, ino);
			memset(model, 0, size);
			size = 0;
		} else {
			fst_remount(&t);
		}
		check_file(&t, ino);
	}
	fst_expect(&t, ino, 0, size, model);
	fst_remount(&t);
	check_file(&t, ino);
	fst_expect(&t, ino, 0, size, model);
	fst_teardown(&t);
	free(model);
	free(buf);
	free(got);
}

static void test_random_batch_4k(void **state)
{
	(void)state;
	random_ops(4096, KVFS_DUR_BATCH, "random_batch_4k");
}

static void test_random_sync_1k(void **state)
{
	(void)state;
	random_ops(1024, KVFS_DUR_SYNC, "random_sync_1k");
}

static void test_random_batch_64k(void **state)
{
	(void)state;
	random_ops(65536, KVFS_DUR_BATCH, "random_batch_64k");
}

/* ---- inline files ------------------------------------------------------- */

static void test_inline_to_blocks(void **state)
{
	struct fst t;
	uint8_t a[300], big[6000];
	uint64_t rs = 7, ino, ino2;
	size_t ilen;
	struct kvfs_inode in;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	ino = fst_file(&t, KVFS_ROOT_INO, "small");
	fst_fill(a, sizeof(a), &rs);
	fst_write(&t, ino, 0, a, sizeof(a));
	in = fst_inode(&t, ino, &ilen);
	assert_true(in.flags & KVFS_IF_INLINE);
	assert_int_equal(ilen, sizeof(a));
	assert_int_equal(in.nblocks, 0);
	assert_int_equal(fst_stat(&t, ino).st_blocks, 1); /* the inline bytes */
	check_file(&t, ino);

	/* Up to inline_max it stays inline; one byte more moves it. */
	fst_write(&t, ino, t.fs->inline_max - 1, "x", 1);
	in = fst_inode(&t, ino, &ilen);
	assert_true(in.flags & KVFS_IF_INLINE);
	assert_int_equal(in.size, t.fs->inline_max);
	fst_expect(&t, ino, sizeof(a), t.fs->inline_max - 1 - sizeof(a), NULL);
	fst_write(&t, ino, t.fs->inline_max, "y", 1);
	in = fst_inode(&t, ino, &ilen);
	assert_false(in.flags & KVFS_IF_INLINE);
	assert_int_equal(ilen, 0);
	assert_int_equal(in.nblocks, 1);
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 1));
	fst_expect(&t, ino, 0, sizeof(a), a);
	fst_expect(&t, ino, t.fs->inline_max - 1, 2, "xy");
	check_file(&t, ino);

	/* A write far away from an inline file: its bytes still go to block 0. */
	ino2 = fst_file(&t, KVFS_ROOT_INO, "far");
	fst_write(&t, ino2, 0, a, 100);
	fst_fill(big, sizeof(big), &rs);
	fst_write(&t, ino2, 10 * 4096 + 5, big, sizeof(big));
	in = fst_inode(&t, ino2, &ilen);
	assert_int_equal(in.nblocks, 3); /* block 0, blocks 10 and 11 */
	fst_expect(&t, ino2, 0, 100, a);
	fst_expect(&t, ino2, 100, 10 * 4096 + 5 - 100, NULL);
	fst_expect(&t, ino2, 10 * 4096 + 5, sizeof(big), big);
	check_file(&t, ino2);

	/* Truncate up past inline_max also moves the bytes to block 0. */
	ino2 = fst_file(&t, KVFS_ROOT_INO, "grow");
	fst_write(&t, ino2, 0, a, 10);
	fst_set_size(&t, ino2, 100000);
	in = fst_inode(&t, ino2, &ilen);
	assert_false(in.flags & KVFS_IF_INLINE);
	assert_int_equal(in.nblocks, 1);
	fst_expect(&t, ino2, 0, 10, a);
	fst_expect(&t, ino2, 10, 100000 - 10, NULL);
	check_file(&t, ino2);

	/* An empty file truncated up within inline_max reads as zeros. */
	ino2 = fst_file(&t, KVFS_ROOT_INO, "zeros");
	fst_set_size(&t, ino2, 500);
	fst_expect(&t, ino2, 0, 500, NULL);
	check_file(&t, ino2);
	fst_remount(&t);
	fst_expect(&t, ino, 0, sizeof(a), a);
	fst_expect(&t, ino2, 0, 500, NULL);
	fst_teardown(&t);
}

/* ---- truncate ----------------------------------------------------------- */

static void test_truncate_zeroes_tail(void **state)
{
	uint8_t buf[3 * 4096];
	struct fst t;
	uint64_t ino;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	ino = fst_file(&t, KVFS_ROOT_INO, "f");
	memset(buf, 0xaa, sizeof(buf));
	fst_write(&t, ino, 0, buf, sizeof(buf));
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 3));
	fst_set_size(&t, ino, 4096 + 100);
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 2));
	check_file(&t, ino);
	fst_set_size(&t, ino, sizeof(buf));
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 2)); /* sparse */
	fst_expect(&t, ino, 0, 4096 + 100, buf);
	fst_expect(&t, ino, 4096 + 100, sizeof(buf) - 4096 - 100, NULL);
	check_file(&t, ino);

	/* The same within one block, and a write past the shortened block. */
	fst_set_size(&t, ino, 10);
	fst_set_size(&t, ino, 4000);
	fst_write(&t, ino, 3000, "z", 1);
	fst_expect(&t, ino, 0, 10, buf);
	fst_expect(&t, ino, 10, 2990, NULL);
	fst_expect(&t, ino, 3000, 1, "z");
	fst_expect(&t, ino, 3001, 999, NULL);
	check_file(&t, ino);

	/* Truncate to 0 leaves no block, and the file can be inline again. */
	fst_set_size(&t, ino, 0);
	assert_int_equal(fst_stat(&t, ino).st_blocks, 0);
	check_file(&t, ino);
	fst_write(&t, ino, 0, "abc", 3);
	assert_true(fst_inode(&t, ino, NULL).flags & KVFS_IF_INLINE);
	check_file(&t, ino);
	fst_teardown(&t);
}

static void test_truncate_sparse_count(void **state)
{
	enum kvfs_durability durs[] = { KVFS_DUR_BATCH, KVFS_DUR_SYNC };

	(void)state;
	for (int d = 0; d < 2; d++) {
		struct fst t;
		uint64_t ino;

		fst_setup(&t, 1024, durs[d]);
		ino = fst_file(&t, KVFS_ROOT_INO, "f");
		/* Blocks 0, 5, 10, 11: sparse, written just before the truncate
		 * (possibly not yet committed: the count must see them). */
		fst_write(&t, ino, 0, "a", 1);
		fst_write(&t, ino, 5 * 1024 + 3, "b", 1);
		fst_write(&t, ino, 10 * 1024 + 1020, "cdefgh", 6); /* blocks 10 and 11 */
		assert_int_equal(fst_inode(&t, ino, NULL).nblocks, 4);
		fst_set_size(&t, ino, 6 * 1024 + 1);
		assert_int_equal(fst_inode(&t, ino, NULL).nblocks, 2);
		assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 2));
		check_file(&t, ino);
		fst_set_size(&t, ino, 5 * 1024 + 3); /* drops "b", keeps block 5's head */
		check_file(&t, ino);
		fst_expect(&t, ino, 0, 1, "a");
		fst_expect(&t, ino, 1, 5 * 1024 + 2, NULL);
		fst_set_size(&t, ino, 5 * 1024);
		assert_int_equal(fst_inode(&t, ino, NULL).nblocks, 1);
		check_file(&t, ino);
		/* A sparse file whose blocks all lie past the new end. */
		fst_write(&t, ino, 50 * 1024, "q", 1);
		fst_set_size(&t, ino, 40 * 1024);
		assert_int_equal(fst_inode(&t, ino, NULL).nblocks, 1);
		fst_set_size(&t, ino, 0);
		assert_int_equal(fst_inode(&t, ino, NULL).nblocks, 0);
		check_file(&t, ino);
		fst_teardown(&t);
	}
}

/* ---- big and sparse files ----------------------------------------------- */

static void test_sparse_5g(void **state)
{
	uint64_t off = 5 * GIB;
	struct fst t;
	struct stat st;
	uint64_t ino;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	ino = fst_file(&t, KVFS_ROOT_INO, "sparse");
	fst_write(&t, ino, off, "hello", 5);
	st = fst_stat(&t, ino);
	assert_int_equal(st.st_size, (off_t)(off + 5));
	assert_int_equal(st.st_blocks, fst_sectors(&t, 1));
	fst_expect(&t, ino, 0, 8192, NULL);
	fst_expect(&t, ino, GIB + 12345, 100000, NULL);
	fst_expect(&t, ino, off - 4096, 4096, NULL);
	fst_expect(&t, ino, off, 5, "hello");
	check_file(&t, ino);
	fst_remount(&t);
	st = fst_stat(&t, ino);
	assert_int_equal(st.st_size, (off_t)(off + 5));
	assert_int_equal(st.st_blocks, fst_sectors(&t, 1));
	fst_expect(&t, ino, off - 10, 10, NULL);
	fst_expect(&t, ino, off, 5, "hello");

	/* Truncating it is one delete-range, and a 10 GiB size costs nothing. */
	fst_set_size(&t, ino, 10 * GIB);
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 1));
	fst_set_size(&t, ino, 1);
	assert_int_equal(fst_stat(&t, ino).st_blocks, 0); /* a 1-byte hole */
	check_file(&t, ino);

	/* truncate -s 10G of an empty file: all hole, nothing allocated. */
	ino = fst_file(&t, KVFS_ROOT_INO, "empty");
	fst_set_size(&t, ino, 10 * GIB);
	assert_int_equal(fst_stat(&t, ino).st_blocks, 0);
	fst_expect(&t, ino, 9 * GIB, 65536, NULL);
	check_file(&t, ino);
	fst_teardown(&t);
}

static void test_past_4g(void **state)
{
	const size_t len = 1 << 20;
	uint64_t off = 4 * GIB - 512 * 1024 + 7, rs = 99;
	uint8_t *buf = malloc(len);
	uint64_t first, last, ino;
	struct fst t;
	uint8_t c;

	(void)state;
	assert_non_null(buf);
	fst_fill(buf, len, &rs);
	fst_setup(&t, 4096, KVFS_DUR_SYNC);
	ino = fst_file(&t, KVFS_ROOT_INO, "big");
	fst_write(&t, ino, off, buf, len); /* several batches */
	first = off / 4096;
	last = (off + len - 1) / 4096;
	assert_int_equal(fst_stat(&t, ino).st_size, (off_t)(off + len));
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, last - first + 1));
	fst_expect(&t, ino, off, len, buf);
	assert_int_equal(kvfs_read(t.fs, ino, 4 * GIB, 1, &c), 1);
	assert_int_equal(c, buf[4 * GIB - off]);
	fst_expect(&t, ino, off - 7, 7, NULL);
	check_file(&t, ino);
	fst_remount(&t);
	fst_expect(&t, ino, off, len, buf);
	/* Data at the very end of a 4 GiB + file, read at EOF. */
	assert_int_equal(kvfs_read(t.fs, ino, off + len - 3, 100, buf), 3);
	assert_int_equal(kvfs_read(t.fs, ino, off + len, 100, buf), 0);
	fst_teardown(&t);
	free(buf);
}

static void test_st_blocks_exact(void **state)
{
	uint8_t buf[11 * 4096];
	struct fst t;
	uint64_t ino;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	ino = fst_file(&t, KVFS_ROOT_INO, "dense");
	memset(buf, 1, sizeof(buf));
	fst_write(&t, ino, 0, buf, 10 * 4096 + 1);
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 11));
	/* Overwrites inside the file, aligned or not, add nothing. */
	fst_write(&t, ino, 4096, buf, 4096);
	fst_write(&t, ino, 100, buf, 3 * 4096);
	fst_write(&t, ino, 10 * 4096, buf, 1);
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 11));
	check_file(&t, ino);

	/* Holes: only written blocks count, also when filled later. */
	ino = fst_file(&t, KVFS_ROOT_INO, "holes");
	fst_write(&t, ino, 3 * 4096, buf, 4096);
	fst_write(&t, ino, 8 * 4096 + 10, buf, 10);
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 2));
	fst_write(&t, ino, 0, buf, 4096);		  /* a hole inside the file, whole */
	fst_write(&t, ino, 5 * 4096 + 1, buf, 1);	  /* a hole, partly */
	fst_write(&t, ino, 3 * 4096 + 10, buf, 2 * 4096); /* 3 and 5 exist, 4 is a hole */
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 5)); /* 0, 3, 4, 5, 8 */
	check_file(&t, ino);
	fst_teardown(&t);
}

static void test_limits(void **state)
{
	uint64_t max = KVFS_MAX_FILE_SIZE;
	struct fst t;
	uint8_t buf[64];
	uint64_t ino, dir;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	ino = fst_file(&t, KVFS_ROOT_INO, "f");
	memset(buf, 'm', sizeof(buf));
	assert_int_equal(kvfs_write(t.fs, ino, max, buf, 1, 0, NULL), -EFBIG);
	assert_int_equal(kvfs_write(t.fs, ino, max + 1, buf, 1, 0, NULL), -EINVAL);
	assert_int_equal(kvfs_write(t.fs, ino, UINT64_MAX - 2, buf, 10, 0, NULL), -EINVAL);
	assert_int_equal(kvfs_read(t.fs, ino, max + 1, 10, buf), -EINVAL);
	assert_int_equal(kvfs_write(t.fs, ino, 0, buf, 0, 0, NULL), 0);
	assert_int_equal(fst_stat(&t, ino).st_size, 0);
	/* Crossing the largest size: a short write, as Linux does. */
	assert_int_equal(kvfs_write(t.fs, ino, max - 10, buf, 20, 0, NULL), 10);
	assert_int_equal(fst_stat(&t, ino).st_size, (off_t)max);
	assert_int_equal(fst_stat(&t, ino).st_blocks, fst_sectors(&t, 1));
	fst_expect(&t, ino, max - 10, 10, buf);
	check_file(&t, ino);
	fst_set_size(&t, ino, 0);
	check_file(&t, ino);

	/* Not a regular file. */
	dir = fst_mkdir(&t, KVFS_ROOT_INO, "d");
	assert_int_equal(kvfs_write(t.fs, dir, 0, buf, 1, 0, NULL), -EISDIR);
	assert_int_equal(kvfs_read(t.fs, dir, 0, 1, buf), -EISDIR);
	assert_int_equal(kvfs_read(t.fs, 12345678, 0, 1, buf), -ENOENT);
	assert_int_equal(kvfs_write(t.fs, 12345678, 0, buf, 1, 0, NULL), -ENOENT);
	/* Reads past EOF and of size 0. */
	fst_write(&t, ino, 0, "abc", 3);
	assert_int_equal(kvfs_read(t.fs, ino, 3, 10, buf), 0);
	assert_int_equal(kvfs_read(t.fs, ino, 1000000, 10, buf), 0);
	assert_int_equal(kvfs_read(t.fs, ino, 0, 0, buf), 0);
	assert_int_equal(kvfs_read(t.fs, ino, 1, 10, buf), 2);
	assert_memory_equal(buf, "bc", 2);
	fst_teardown(&t);
}

/* ---- write semantics ------------------------------------------------------ */

static void test_write_times_and_suid(void **state)
{
	struct stat a = { 0 }, out, st;
	struct timespec before;
	struct fst t;
	uint64_t ino;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	ino = fst_file(&t, KVFS_ROOT_INO, "f");
	a.st_mtim = (struct timespec){ 1000, 5 };
	a.st_mode = 06775;
	assert_int_equal(
		kvfs_setattr(t.fs, &t.cr, ino, &a, KVFS_SET_MTIME | KVFS_SET_MODE, &out, NULL), 0);
	kvfs_now(&before);
	fst_write(&t, ino, 0, "x", 1);
	st = fst_stat(&t, ino);
	assert_true(st.st_mtim.tv_sec >= before.tv_sec);
	assert_int_equal(st.st_mtim.tv_sec, st.st_ctim.tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, st.st_ctim.tv_nsec);
	assert_int_equal(st.st_mode & 07777, 06775); /* no kill requested */

	/* kill_suid: S_ISUID goes, S_ISGID too when group-executable. */
	assert_int_equal(kvfs_write(t.fs, ino, 1, "y", 1, 1, NULL), 1);
	assert_int_equal(fst_stat(&t, ino).st_mode & 07777, 0775);
	a.st_mode = 06765; /* not group-executable: S_ISGID is mandatory locking */
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, ino, &a, KVFS_SET_MODE, &out, NULL), 0);
	assert_int_equal(kvfs_write(t.fs, ino, 1, "y", 1, 1, NULL), 1);
	assert_int_equal(fst_stat(&t, ino).st_mode & 07777, 02765);
	fst_teardown(&t);
}

static void test_relatime(void **state)
{
	struct timespec now;
	struct stat a = { 0 }, out;
	struct kvfs_options o;
	struct fst t;
	uint64_t ino;
	char buf[8];
	char err[256];
	const int set = KVFS_SET_ATIME | KVFS_SET_MTIME | KVFS_SET_CTIME;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_SYNC);
	ino = fst_file(&t, KVFS_ROOT_INO, "f");
	fst_write(&t, ino, 0, "data", 4);
	kvfs_now(&now);

	/* atime newer than mtime and ctime, and recent: left alone. */
	a.st_atim = (struct timespec){ now.tv_sec - 100, 1 };
	a.st_mtim = a.st_ctim = (struct timespec){ now.tv_sec - 200, 2 };
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, ino, &a, set, &out, NULL), 0);
	assert_int_equal(kvfs_read(t.fs, ino, 0, 4, buf), 4);
	assert_int_equal(fst_stat(&t, ino).st_atim.tv_sec, now.tv_sec - 100);
	assert_int_equal(fst_stat(&t, ino).st_atim.tv_nsec, 1);

	/* atime <= mtime: updated, also by a read at EOF. */
	a.st_mtim = (struct timespec){ now.tv_sec - 50, 0 };
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, ino, &a, set, &out, NULL), 0);
	assert_int_equal(kvfs_read(t.fs, ino, 100, 4, buf), 0);
	assert_true(fst_stat(&t, ino).st_atim.tv_sec >= now.tv_sec);

	/* atime <= ctime: updated. */
	a.st_mtim = (struct timespec){ now.tv_sec - 200, 0 };
	a.st_ctim = (struct timespec){ now.tv_sec - 100, 1 }; /* == atime */
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, ino, &a, set, &out, NULL), 0);
	assert_int_equal(kvfs_read(t.fs, ino, 0, 4, buf), 4);
	assert_true(fst_stat(&t, ino).st_atim.tv_sec >= now.tv_sec);

	/* Older than a day: updated even though newer than mtime and ctime. */
	a.st_atim = (struct timespec){ now.tv_sec - 2 * 86400, 0 };
	a.st_mtim = a.st_ctim = (struct timespec){ now.tv_sec - 3 * 86400, 0 };
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, ino, &a, set, &out, NULL), 0);
	assert_int_equal(kvfs_read(t.fs, ino, 0, 4, buf), 4);
	assert_true(fst_stat(&t, ino).st_atim.tv_sec >= now.tv_sec);
	/* The update keeps the inline data. */
	assert_int_equal(kvfs_read(t.fs, ino, 0, 4, buf), 4);
	assert_memory_equal(buf, "data", 4);

	/* A read-only mount never writes atime. */
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, ino, &a, set, &out, NULL), 0);
	assert_int_equal(kvfs_close(t.fs), 0);
	kvfs_options_init(&o);
	o.read_only = 1;
	o.log_buffer_size = 1 << 20;
	assert_int_equal(kvfs_open(t.dir, &o, &t.fs, err, sizeof(err)), 0);
	assert_int_equal(kvfs_read(t.fs, ino, 0, 4, buf), 4);
	assert_int_equal(fst_stat(&t, ino).st_atim.tv_sec, now.tv_sec - 2 * 86400);
	assert_int_equal(kvfs_write(t.fs, ino, 0, "x", 1, 0, NULL), -EROFS);
	fst_teardown(&t);
}

/* ---- kvfs_done ------------------------------------------------------------ */

static void test_done_callbacks(void **state)
{
	enum kvfs_durability durs[] = { KVFS_DUR_BATCH, KVFS_DUR_SYNC };
	const size_t big = 1 << 20;
	uint8_t *buf = malloc(big);
	uint64_t rs = 5;

	(void)state;
	assert_non_null(buf);
	fst_fill(buf, big, &rs);
	for (int d = 0; d < 2; d++) {
		struct kvfs_entry e;
		struct kvfs_done done;
		struct waitdone w;
		struct fst t;
		uint64_t ino;

		fst_setup(&t, 4096, durs[d]);
		ino = fst_file(&t, KVFS_ROOT_INO, "f");
		wd_init(&w);
		done = (struct kvfs_done){ wd_fn, &w };
		/* One batch, then one spanning several: one callback each. */
		assert_int_equal(kvfs_write(t.fs, ino, 10, buf, 5000, 0, &done), KVFS_PENDING);
		assert_int_equal(wd_wait(&w, 1), 0);
		assert_int_equal(kvfs_write(t.fs, ino, 3, buf, big, 0, &done), KVFS_PENDING);
		assert_int_equal(wd_wait(&w, 2), 0);
		/* Inline, and a truncate through setattr and open. */
		ino = fst_file(&t, KVFS_ROOT_INO, "g");
		assert_int_equal(kvfs_write(t.fs, ino, 0, "abc", 3, 0, &done), KVFS_PENDING);
		assert_int_equal(wd_wait(&w, 3), 0);
		assert_int_equal(kvfs_open_file(t.fs, ino, O_RDWR | O_TRUNC, &done), KVFS_PENDING);
		assert_int_equal(wd_wait(&w, 4), 0);
		assert_int_equal(fst_stat(&t, ino).st_size, 0);
		kvfs_release(t.fs, ino);
		/* Nothing to do: no callback. */
		assert_int_equal(kvfs_write(t.fs, ino, 0, buf, 0, 0, &done), 0);
		assert_int_equal(kvfs_write(t.fs, 999999, 0, buf, 1, 0, &done), -ENOENT);
		assert_int_equal(kvfs_sync(t.fs), 0);
		assert_int_equal(wd_calls(&w), 4);
		fst_remount(&t);
		assert_int_equal(kvfs_lookup(t.fs, KVFS_ROOT_INO, "f", &e), 0);
		fst_expect(&t, e.ino, 3, big, buf);
		fst_expect(&t, e.ino, 0, 3, NULL);
		check_file(&t, e.ino);
		kvfs_forget(t.fs, e.ino, 1);
		wd_destroy(&w);
		fst_teardown(&t);
	}
	free(buf);
}

/* ---- concurrency ---------------------------------------------------------- */

#define NTHREADS 4

struct writer {
	struct fst *t;
	uint64_t ino;
	uint64_t base, len; /* the range this thread owns */
	uint64_t seed;
	bool async;
	uint8_t *expect; /* what the range must hold at the end */
	struct waitdone w;
	int calls;
};

static void *writer_main(void *arg)
{
	struct writer *wt = arg;
	uint32_t bs = wt->t->fs->block_size;
	uint64_t rs = wt->seed, pos = 0;
	uint8_t *buf = malloc(3 * bs);
	struct kvfs_done done = { wd_fn, &wt->w };

	assert_non_null(buf);
	/* Cover the range in random pieces, then overwrite random parts. */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; pass == 0 ? pos < wt->len : i < 50; i++) {
			uint64_t off = pass == 0 ? pos : kvt_rand(&rs) % wt->len;
			size_t n = (size_t)(kvt_rand(&rs) % (3 * bs)) + 1;
			ssize_t r;

			if (n > wt->len - off)
				n = (size_t)(wt->len - off);
			fst_fill(buf, n, &rs);
			memcpy(wt->expect + off, buf, n);
			r = kvfs_write(wt->t->fs, wt->ino, wt->base + off, buf, n, 0,
				       wt->async ? &done : NULL);
			if (wt->async) {
				assert_int_equal(r, KVFS_PENDING);
				wt->calls++;
			} else {
				assert_int_equal(r, (ssize_t)n);
			}
			pos = off + n;
		}
	}
	if (wt->async)
		assert_int_equal(wd_wait(&wt->w, wt->calls), 0);
	free(buf);
	return NULL;
}

static void concurrent_writers(enum kvfs_durability dur, bool async, const char *name)
{
	uint64_t seed = kvt_seed(name);
	struct writer w[2 * NTHREADS];
	pthread_t th[2 * NTHREADS];
	uint64_t shared, region = 10 * 4096 + 123;
	struct fst t;

	fst_setup(&t, 4096, dur);
	shared = fst_file(&t, KVFS_ROOT_INO, "shared");
	for (int i = 0; i < 2 * NTHREADS; i++) {
		char fname[16];

		memset(&w[i], 0, sizeof(w[i]));
		w[i].t = &t;
		w[i].seed = seed + 1000u * (unsigned)i;
		w[i].async = async;
		w[i].len = region;
		w[i].expect = calloc(1, region);
		assert_non_null(w[i].expect);
		wd_init(&w[i].w);
		if (i < NTHREADS) { /* disjoint ranges of one file, sharing blocks */
			w[i].ino = shared;
			w[i].base = (uint64_t)i * region;
		} else { /* a file each */
			snprintf(fname, sizeof(fname), "own%d", i);
			w[i].ino = fst_file(&t, KVFS_ROOT_INO, fname);
		}
	}
	for (int i = 0; i < 2 * NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	for (int i = 0; i < 2 * NTHREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 2 * NTHREADS; i++)
			fst_expect(&t, w[i].ino, w[i].base, region, w[i].expect);
		assert_int_equal(fst_stat(&t, shared).st_size, (off_t)(NTHREADS * region));
		assert_int_equal(fst_stat(&t, shared).st_blocks,
				 fst_sectors(&t, (NTHREADS * region + 4095) / 4096));
		check_file(&t, shared);
		for (int i = NTHREADS; i < 2 * NTHREADS; i++) {
			assert_int_equal(fst_stat(&t, w[i].ino).st_blocks,
					 fst_sectors(&t, (region + 4095) / 4096));
			check_file(&t, w[i].ino);
		}
		fst_remount(&t);
	}
	for (int i = 0; i < 2 * NTHREADS; i++) {
		free(w[i].expect);
		wd_destroy(&w[i].w);
	}
	fst_teardown(&t);
}

static void test_concurrent_batch(void **state)
{
	(void)state;
	concurrent_writers(KVFS_DUR_BATCH, false, "concurrent_batch");
}

static void test_concurrent_sync(void **state)
{
	(void)state;
	concurrent_writers(KVFS_DUR_SYNC, false, "concurrent_sync");
}

static void test_concurrent_sync_done(void **state)
{
	(void)state;
	concurrent_writers(KVFS_DUR_SYNC, true, "concurrent_sync_done");
}

/* Readers racing a writer see only whole old or new bytes of each block. */
struct reader {
	struct fst *t;
	uint64_t ino;
	atomic_int *stop;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t buf[8192];

	while (!atomic_load(r->stop)) {
		ssize_t n = kvfs_read(r->t->fs, r->ino, 0, sizeof(buf), buf);

		if (n < 0) {
			r->bad = 1;
			break;
		}
		/* Every byte is 0 (hole, beyond a short write) or a round tag. */
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] > 200)
				r->bad = 1;
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	atomic_int stop = 0;
	struct reader r[2];
	pthread_t th[2];
	uint8_t buf[8192];
	struct fst t;
	uint64_t ino;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	ino = fst_file(&t, KVFS_ROOT_INO, "f");
	for (int i = 0; i < 2; i++) {
		r[i] = (struct reader){ .t = &t, .ino = ino, .stop = &stop };
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
	}
	for (int round = 1; round <= 200; round++) {
		memset(buf, round, sizeof(buf));
		fst_write(&t, ino, 0, buf, (size_t)(round * 37) % sizeof(buf) + 1);
		if (round % 10 == 0)
			fst_set_size(&t, ino, (uint64_t)round * 13);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(r[i].bad, 0);
	}
	check_file(&t, ino);
	fst_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inline_to_blocks),
		cmocka_unit_test(test_truncate_zeroes_tail),
		cmocka_unit_test(test_truncate_sparse_count),
		cmocka_unit_test(test_sparse_5g),
		cmocka_unit_test(test_past_4g),
		cmocka_unit_test(test_st_blocks_exact),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_write_times_and_suid),
		cmocka_unit_test(test_relatime),
		cmocka_unit_test(test_done_callbacks),
		cmocka_unit_test(test_random_batch_4k),
		cmocka_unit_test(test_random_sync_1k),
		cmocka_unit_test(test_random_batch_64k),
		cmocka_unit_test(test_concurrent_batch),
		cmocka_unit_test(test_concurrent_sync),
		cmocka_unit_test(test_concurrent_sync_done),
		cmocka_unit_test(test_concurrent_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
