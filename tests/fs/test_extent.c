// SPDX-License-Identifier: MIT
/*
 * Allocation, holes and copies (fs/extent.c): fallocate (mode 0,
 * KEEP_SIZE, PUNCH_HOLE) with exact st_blocks, inline files, sparse and
 * dense files, several batches, errors; SEEK_DATA/SEEK_HOLE against a block
 * map; copy_file_range aligned (key to key, holes kept) and not, inline,
 * within one file, limits; a random mix of all of them against an
 * in-memory model; persistence and kvfs_done callbacks.
 *
 * fst_check_file() verifies fs/data.c's layout invariants from the store, with
 * the empty (allocated, unwritten) block values fs/extent.c adds.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "data.h"
#include "fs_test_util.h"

#define KEEP KVFS_FALLOC_KEEP_SIZE
#define PUNCH (KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE)

/* ---- helpers ------------------------------------------------------------ */

static void falloc(struct fst *t, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	assert_int_equal(kvfs_fallocate(t->fs, ino, mode, off, len, NULL), 0);
}

static uint64_t nblocks(struct fst *t, uint64_t ino)
{
	size_t ilen;

	return fst_inode(t, ino, &ilen).nblocks;
}

static uint64_t seek(struct fst *t, uint64_t ino, uint64_t off, int whence)
{
	uint64_t pos = 0;

	assert_int_equal(kvfs_lseek(t->fs, ino, off, whence, &pos), 0);
	return pos;
}

static void seek_err(struct fst *t, uint64_t ino, uint64_t off, int whence, int err)
{
	uint64_t pos;

	assert_int_equal(kvfs_lseek(t->fs, ino, off, whence, &pos), err);
}

static ssize_t copy(struct fst *t, uint64_t in, uint64_t off_in, uint64_t out, uint64_t off_out,
		    size_t len)
{
	size_t copied = 12345;
	ssize_t n = kvfs_copy_file_range(t->fs, in, off_in, out, off_out, len, 0, 0, &copied, NULL);

	if (n >= 0)
		assert_int_equal(copied, (size_t)n);
	return n;
}

/* ---- fallocate ---------------------------------------------------------- */

static void test_alloc_new_file(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f");
	struct stat st;

	falloc(t, ino, 0, 0, 100000);
	st = fst_stat(t, ino);
	assert_int_equal(st.st_size, 100000);
	assert_int_equal(st.st_blocks, fst_sectors(t, 25)); /* ceil(100000 / 4096) */
	assert_int_equal(fst_check_file(t, ino), 25);
	fst_expect(t, ino, 0, 100000, NULL);
	/* Allocated blocks are data for SEEK_DATA. */
	assert_int_equal(seek(t, ino, 0, SEEK_DATA), 0);
	assert_int_equal(seek(t, ino, 5000, SEEK_HOLE), 100000);
	/* Again over the same range: nothing changes. */
	falloc(t, ino, 0, 0, 100000);
	assert_int_equal(nblocks(t, ino), 25);
	/* Writes into allocated blocks, partial and whole. */
	fst_write(t, ino, 10, "abc", 3);
	fst_write(t, ino, 99999, "z", 1);
	assert_int_equal(nblocks(t, ino), 25);
	fst_expect(t, ino, 10, 3, "abc");
	fst_expect(t, ino, 13, 99999 - 13, NULL);
	assert_int_equal(fst_check_file(t, ino), 23);
	fst_remount(t);
	fst_expect(t, ino, 99999, 1, "z");
	assert_int_equal(fst_check_file(t, ino), 23);
}

static void test_alloc_keeps_data(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f"), rs = 3;
	uint8_t a[4096 * 3], b[5000];
	struct timespec m0;

	/* Sparse: data in blocks 0-2 and at 10..11, holes between. */
	fst_fill(a, sizeof(a), &rs);
	fst_fill(b, sizeof(b), &rs);
	fst_write(t, ino, 0, a, sizeof(a));
	fst_write(t, ino, 10 * 4096 + 100, b, sizeof(b));
	assert_int_equal(nblocks(t, ino), 5);
	m0 = fst_stat(t, ino).st_mtim;
	usleep(2000);
	/* Inside the file: mode 0 does not change the size or mtime. */
	falloc(t, ino, 0, 4096 + 7, 9 * 4096);
	assert_int_equal(nblocks(t, ino), 12); /* blocks 3..9 added */
	assert_int_equal(fst_stat(t, ino).st_size, 10 * 4096 + 5100);
	assert_int_equal(fst_stat(t, ino).st_mtim.tv_nsec, m0.tv_nsec);
	fst_expect(t, ino, 0, sizeof(a), a);
	fst_expect(t, ino, sizeof(a), 10 * 4096 + 100 - sizeof(a), NULL);
	fst_expect(t, ino, 10 * 4096 + 100, sizeof(b), b);
	assert_int_equal(fst_check_file(t, ino), 7);
	/* Past EOF: grows the size (and mtime), dense file: appended blocks. */
	falloc(t, ino, 0, 20 * 4096, 4096);
	assert_int_equal(fst_stat(t, ino).st_size, 21 * 4096);
	assert_int_equal(nblocks(t, ino), 13); /* block 20; 12..19 stay holes */
	assert_true(fst_stat(t, ino).st_mtim.tv_nsec != m0.tv_nsec ||
		    fst_stat(t, ino).st_mtim.tv_sec != m0.tv_sec);
	fst_expect(t, ino, 10 * 4096 + 100, sizeof(b), b);
	fst_expect(t, ino, 10 * 4096 + 5100, 21 * 4096 - (10 * 4096 + 5100), NULL);
	fst_check_file(t, ino);
}

static void test_alloc_keep_size(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f");
	struct stat st;

	fst_set_size(t, ino, 10 * 4096 + 1);
	assert_int_equal(nblocks(t, ino), 0);
	/* Past EOF: accepted, nothing allocated, size unchanged. */
	falloc(t, ino, KEEP, 20 * 4096, 1 << 20);
	st = fst_stat(t, ino);
	assert_int_equal(st.st_size, 10 * 4096 + 1);
	assert_int_equal(st.st_blocks, 0);
	/* Straddling EOF: only the part inside the file (blocks 8..10). */
	falloc(t, ino, KEEP, 8 * 4096, 1 << 20);
	st = fst_stat(t, ino);
	assert_int_equal(st.st_size, 10 * 4096 + 1);
	assert_int_equal(st.st_blocks, fst_sectors(t, 3));
	assert_int_equal(fst_check_file(t, ino), 3);
	fst_expect(t, ino, 0, 10 * 4096 + 1, NULL);
	assert_int_equal(seek(t, ino, 0, SEEK_DATA), 8 * 4096);
	assert_int_equal(seek(t, ino, 0, SEEK_HOLE), 0);
	assert_int_equal(seek(t, ino, 8 * 4096 + 5, SEEK_HOLE), 10 * 4096 + 1);
	/* Appending into the allocated last block keeps the count. */
	fst_write(t, ino, 10 * 4096 + 1, "q", 1);
	assert_int_equal(nblocks(t, ino), 3);
	fst_check_file(t, ino);
	/* Truncate down through allocated blocks counts them. */
	fst_set_size(t, ino, 9 * 4096);
	assert_int_equal(nblocks(t, ino), 1);
	fst_check_file(t, ino);
}

static void test_alloc_inline(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f"), ino2, ino3;
	size_t ilen;
	struct kvfs_inode in;

	fst_write(t, ino, 0, "hello", 5);
	assert_true(fst_inode(t, ino, &ilen).flags & KVFS_IF_INLINE);
	/* Within inline_max: moves to one block, bytes kept. */
	falloc(t, ino, 0, 0, 200);
	in = fst_inode(t, ino, &ilen);
	assert_false(in.flags & KVFS_IF_INLINE);
	assert_int_equal(in.size, 200);
	assert_int_equal(in.nblocks, 1);
	assert_int_equal(fst_stat(t, ino).st_blocks, fst_sectors(t, 1));
	fst_expect(t, ino, 0, 5, "hello");
	fst_expect(t, ino, 5, 195, NULL);
	fst_check_file(t, ino);
	fst_write(t, ino, 100, "xy", 2);
	fst_expect(t, ino, 0, 5, "hello");
	fst_expect(t, ino, 100, 2, "xy");
	fst_check_file(t, ino);

	/* Past inline_max: block 0 holds the bytes, the rest is allocated. */
	ino2 = fst_file(t, KVFS_ROOT_INO, "g");
	fst_write(t, ino2, 0, "abc", 3);
	falloc(t, ino2, 0, 4096, 3 * 4096);
	in = fst_inode(t, ino2, &ilen);
	assert_int_equal(in.size, 4 * 4096);
	assert_int_equal(in.nblocks, 4);
	assert_int_equal(fst_check_file(t, ino2), 3);
	fst_expect(t, ino2, 0, 3, "abc");
	fst_expect(t, ino2, 3, 4 * 4096 - 3, NULL);

	/* KEEP_SIZE on an empty inline file: nothing inside it. */
	ino3 = fst_file(t, KVFS_ROOT_INO, "h");
	falloc(t, ino3, KEEP, 0, 8192);
	in = fst_inode(t, ino3, &ilen);
	assert_int_equal(in.size, 0);
	assert_int_equal(in.nblocks, 0);
	fst_check_file(t, ino3);
}

/* Several batches (4096 blocks each) and a remount. */
static void test_alloc_many_batches(void **state)
{
	struct fst t;
	uint64_t ino, n = 3 * 4096 + 17;

	(void)state;
	fst_setup(&t, 1024, KVFS_DUR_SYNC);
	ino = fst_file(&t, KVFS_ROOT_INO, "big");
	fst_write(&t, ino, 5000 * 1024, "mid", 3); /* one data block in the middle */
	falloc(&t, ino, 0, 512, n * 1024);
	assert_int_equal(fst_stat(&t, ino).st_size, (off_t)(n * 1024 + 512));
	assert_int_equal(nblocks(&t, ino), n + 1);
	assert_int_equal(fst_check_file(&t, ino), n);
	fst_expect(&t, ino, 5000 * 1024, 3, "mid");
	fst_remount(&t);
	assert_int_equal(fst_stat(&t, ino).st_blocks, (blkcnt_t)((n + 1) * 2));
	assert_int_equal(fst_check_file(&t, ino), n);
	fst_expect(&t, ino, 0, 5000 * 1024, NULL);
	fst_teardown(&t);
}

static void test_alloc_errors(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f"), dir = fst_mkdir(t, KVFS_ROOT_INO, "d");
	struct kvfs_entry e;

	assert_int_equal(kvfs_fallocate(t->fs, ino, 0, 0, 0, NULL), -EINVAL);
	assert_int_equal(kvfs_fallocate(t->fs, ino, 0, (uint64_t)-1, 10, NULL), -EINVAL);
	assert_int_equal(kvfs_fallocate(t->fs, ino, 0, 0, (uint64_t)-5, NULL), -EINVAL);
	assert_int_equal(kvfs_fallocate(t->fs, ino, KVFS_FALLOC_PUNCH_HOLE, 0, 10, NULL),
			 -EOPNOTSUPP);
	assert_int_equal(kvfs_fallocate(t->fs, ino, 0x10 /* ZERO_RANGE */, 0, 10, NULL),
			 -EOPNOTSUPP);
	assert_int_equal(kvfs_fallocate(t->fs, ino, 0x08 /* COLLAPSE_RANGE */, 0, 4096, NULL),
			 -EOPNOTSUPP);
	assert_int_equal(kvfs_fallocate(t->fs, ino, 0x20 /* INSERT_RANGE */, 0, 4096, NULL),
			 -EOPNOTSUPP);
	assert_int_equal(kvfs_fallocate(t->fs, ino, 0, INT64_MAX - 10, 11, NULL), -EFBIG);
	assert_int_equal(kvfs_fallocate(t->fs, ino, PUNCH, INT64_MAX, 1, NULL), -EFBIG);
	assert_int_equal(kvfs_fallocate(t->fs, dir, 0, 0, 10, NULL), -EISDIR);
	assert_int_equal(
		kvfs_mknod(t->fs, &t->cr, KVFS_ROOT_INO, "fifo", S_IFIFO | 0644, 0, &e, NULL), 0);
	assert_int_equal(kvfs_fallocate(t->fs, e.ino, 0, 0, 10, NULL), -ENODEV);
	assert_int_equal(kvfs_fallocate(t->fs, 999999, 0, 0, 10, NULL), -ENOENT);
	/* Up to the largest size is fine (KEEP_SIZE: nothing inside). */
	assert_int_equal(kvfs_fallocate(t->fs, ino, KEEP, INT64_MAX - 10, 10, NULL), 0);
	assert_int_equal(fst_stat(t, ino).st_size, 0);
	fst_check_file(t, ino);
}

/* ---- punch -------------------------------------------------------------- */

static void test_punch_dense(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f"), rs = 5, size = 10 * 4096 - 300;
	uint8_t *a = malloc(size);
	struct stat st;

	assert_non_null(a);
	fst_fill(a, size, &rs);
	fst_write(t, ino, 0, a, size);
	assert_int_equal(fst_stat(t, ino).st_blocks, fst_sectors(t, 10));
	/* [4096 + 100, 5 * 4096 + 200): blocks 2..4 go, 1 and 5 are zeroed. */
	falloc(t, ino, PUNCH, 4096 + 100, 4 * 4096 + 100);
	memset(a + 4096 + 100, 0, 4 * 4096 + 100);
	st = fst_stat(t, ino);
	assert_int_equal(st.st_size, (off_t)size);
	assert_int_equal(st.st_blocks, fst_sectors(t, 7));
	fst_expect(t, ino, 0, size, a);
	assert_int_equal(fst_check_file(t, ino), 0);
	assert_int_equal(seek(t, ino, 4096, SEEK_HOLE), 2 * 4096);
	assert_int_equal(seek(t, ino, 2 * 4096, SEEK_DATA), 5 * 4096);
	/* A hole within one block: zeroed in place. */
	falloc(t, ino, PUNCH, 7 * 4096 + 10, 20);
	memset(a + 7 * 4096 + 10, 0, 20);
	fst_expect(t, ino, 0, size, a);
	assert_int_equal(nblocks(t, ino), 7);
	/* Through EOF: the partial last block is whole. Block 8 keeps 5
	 * bytes; block 9 goes. */
	falloc(t, ino, PUNCH, 8 * 4096 + 5, 1 << 20);
	memset(a + 8 * 4096 + 5, 0, size - (8 * 4096 + 5));
	assert_int_equal(fst_stat(t, ino).st_size, (off_t)size);
	assert_int_equal(nblocks(t, ino), 6);
	fst_expect(t, ino, 0, size, a);
	fst_check_file(t, ino);
	/* The head of a block to the end of its value: empty, still allocated. */
	falloc(t, ino, PUNCH, 8 * 4096, 5);
	memset(a + 8 * 4096, 0, 5);
	assert_int_equal(nblocks(t, ino), 6);
	assert_int_equal(fst_check_file(t, ino), 1);
	/* Past EOF: nothing. */
	falloc(t, ino, PUNCH, size, 4096);
	assert_int_equal(nblocks(t, ino), 6);
	fst_remount(t);
	fst_expect(t, ino, 0, size, a);
	fst_check_file(t, ino);
	free(a);
}

static void test_punch_sparse(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f");
	uint64_t want = 0;

	/* Every third block of 600 stored. */
	for (uint64_t i = 0; i < 600; i += 3, want++)
		fst_write(t, ino, i * 4096 + 1, "d", 1);
	fst_set_size(t, ino, 600 * 4096);
	assert_int_equal(nblocks(t, ino), want);
	/* A small range (deleted one by one): blocks 3, 6 go. */
	falloc(t, ino, PUNCH, 3 * 4096, 5 * 4096);
	want -= 2;
	assert_int_equal(nblocks(t, ino), want);
	fst_check_file(t, ino);
	/* A big one (a range tombstone and a count): blocks 99..498. */
	falloc(t, ino, PUNCH, 99 * 4096, 400 * 4096);
	want -= 400 / 3 + 1;
	assert_int_equal(nblocks(t, ino), want);
	fst_check_file(t, ino);
	fst_expect(t, ino, 99 * 4096, 400 * 4096, NULL);
	fst_expect(t, ino, 0 * 4096 + 1, 1, "d");
	fst_expect(t, ino, 99 * 4096 - 4096 * 3 + 1, 1, "d");
	fst_expect(t, ino, 501 * 4096 + 1, 1, "d");
	assert_int_equal(fst_stat(t, ino).st_size, 600 * 4096);
	/* A big one in a dense file. */
	{
		uint64_t d = fst_file(t, KVFS_ROOT_INO, "dense");

		falloc(t, d, 0, 0, 500 * 4096);
		fst_write(t, d, 0, "x", 1);
		falloc(t, d, PUNCH, 4096, 300 * 4096);
		assert_int_equal(nblocks(t, d), 200);
		fst_check_file(t, d);
	}
}

static void test_punch_inline(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f");
	size_t ilen;

	fst_write(t, ino, 0, "abcdefghij", 10);
	falloc(t, ino, PUNCH, 2, 3);
	fst_expect(t, ino, 0, 10, "ab\0\0\0fghij");
	falloc(t, ino, PUNCH, 8, 100);
	fst_expect(t, ino, 0, 10, "ab\0\0\0fgh\0\0");
	assert_int_equal(fst_stat(t, ino).st_size, 10);
	assert_true(fst_inode(t, ino, &ilen).flags & KVFS_IF_INLINE);
	fst_check_file(t, ino);
}

/* ---- SEEK_DATA / SEEK_HOLE ---------------------------------------------- */

/* The answer from a block map: @map[i] = block i stored; size @size. */
static int model_seek(const bool *map, uint64_t size, uint32_t bs, uint64_t off, int whence,
		      uint64_t *out)
{
	if (off >= size)
		return -ENXIO;
	for (uint64_t p = off; p < size; p = (p / bs + 1) * bs) {
		if (map[p / bs] == (whence == SEEK_DATA)) {
			*out = p;
			return 0;
		}
	}
	if (whence == SEEK_DATA)
		return -ENXIO;
	*out = size;
	return 0;
}

static void test_seek_map(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f"), rs = kvt_seed("seek_map");
	uint32_t bs = 4096;
	bool map[64] = { false };
	uint64_t size = 0;

	for (int round = 0; round < 6; round++) {
		/* Some random blocks written, some allocated, some punched. */
		for (int k = 0; k < 12; k++) {
			uint64_t blk = kvt_rand(&rs) % 60;

			switch (kvt_rand(&rs) % 3) {
			case 0:
				fst_write(t, ino, blk * bs + kvt_rand(&rs) % bs, "w", 1);
				map[blk] = true;
				break;
			case 1:
				falloc(t, ino, 0, blk * bs + 7, 1);
				map[blk] = true;
				break;
			default:
				/* A partial last block is whole here: the range
				 * reaches EOF. */
				falloc(t, ino, PUNCH, blk * bs, bs);
				if (size > blk * bs)
					map[blk] = false;
			}
			size = fst_stat(t, ino).st_size;
		}
		fst_check_file(t, ino);
		for (uint64_t off = 0; off <= size + 1; off += 777) {
			for (int w = SEEK_DATA; w <= SEEK_HOLE; w++) {
				uint64_t want = 0, got = 0;
				int e = model_seek(map, size, bs, off, w, &want);

				assert_int_equal(kvfs_lseek(t->fs, ino, off, w, &got), e);
				if (!e && got != want)
					fail_msg("round %d: %s from %llu: %llu, want %llu", round,
						 w == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE",
						 (unsigned long long)off, (unsigned long long)got,
						 (unsigned long long)want);
			}
		}
	}
}

static void test_seek_cases(void **state)
{
	struct fst *t = *state;
	uint64_t ino = fst_file(t, KVFS_ROOT_INO, "f"), dir = fst_mkdir(t, KVFS_ROOT_INO, "d");

	/* Empty file: ENXIO everywhere. */
	seek_err(t, ino, 0, SEEK_DATA, -ENXIO);
	seek_err(t, ino, 0, SEEK_HOLE, -ENXIO);
	/* Inline: all data, the virtual hole at EOF. */
	fst_write(t, ino, 0, "hello", 5);
	assert_int_equal(seek(t, ino, 2, SEEK_DATA), 2);
	assert_int_equal(seek(t, ino, 2, SEEK_HOLE), 5);
	seek_err(t, ino, 5, SEEK_DATA, -ENXIO);
	seek_err(t, ino, (uint64_t)-1, SEEK_HOLE, -ENXIO); /* a negative offset */
	/* A file of holes. */
	fst_set_size(t, ino, 0);
	fst_set_size(t, ino, 1 << 20);
	seek_err(t, ino, 0, SEEK_DATA, -ENXIO);
	assert_int_equal(seek(t, ino, 100, SEEK_HOLE), 100);
	/* Data only at the end: a hole, then data up to EOF. */
	fst_write(t, ino, (1 << 20) - 1, "e", 1);
	assert_int_equal(seek(t, ino, 0, SEEK_DATA), (1 << 20) - 4096);
	assert_int_equal(seek(t, ino, (1 << 20) - 10, SEEK_HOLE), 1 << 20);
	/* Dense. */
	fst_set_size(t, ino, 0);
	falloc(t, ino, 0, 0, 3 * 4096 + 1);
	assert_int_equal(seek(t, ino, 4097, SEEK_DATA), 4097);
	assert_int_equal(seek(t, ino, 1, SEEK_HOLE), 3 * 4096 + 1);
	/* Bad whence, not a regular file. */
	seek_err(t, ino, 0, SEEK_SET, -EINVAL);
	seek_err(t, ino, 0, SEEK_END, -EINVAL);
	seek_err(t, dir, 0, SEEK_DATA, -EINVAL);
	seek_err(t, 999999, 0, SEEK_DATA, -ENOENT);
}

/* ---- copy_file_range ---------------------------------------------------- */

static void test_copy_aligned(void **state)
{
	struct fst *t = *state;
	uint64_t src = fst_file(t, KVFS_ROOT_INO, "s"), dst = fst_file(t, KVFS_ROOT_INO, "d");
	uint64_t rs = 11, size = 40 * 4096 + 123;
	uint8_t *a = calloc(1, size), *d = calloc(1, size + 8192);

	assert_true(a && d);
	/* Source: blocks 0..9 data, 10..19 hole, 20..29 allocated, 30.. data. */
	fst_fill(a, 10 * 4096, &rs);
	fst_write(t, src, 0, a, 10 * 4096);
	fst_fill(a + 30 * 4096, size - 30 * 4096, &rs);
	fst_write(t, src, 30 * 4096, a + 30 * 4096, size - 30 * 4096);
	falloc(t, src, 0, 20 * 4096, 10 * 4096);
	/* Destination: dense data that the hole must clear. */
	fst_fill(d, 12 * 4096, &rs);
	fst_write(t, dst, 0, d, 12 * 4096);
	/* Same alignment (100 + 4096 vs 100): whole blocks key to key. */
	assert_int_equal(copy(t, src, 100, dst, 4096 + 100, size), (ssize_t)(size - 100));
	memcpy(d + 4096 + 100, a + 100, size - 100);
	assert_int_equal(fst_stat(t, dst).st_size, (off_t)(size + 4096));
	fst_expect(t, dst, 0, size + 4096, d);
	/* dst block b = src block b - 1 for b >= 1: holes are 11..20, the
	 * allocated ones 21..30 (empty values). */
	assert_int_equal(nblocks(t, dst), 42 - 10);
	assert_int_equal(fst_check_file(t, dst), 10);
	assert_int_equal(seek(t, dst, 0, SEEK_HOLE), 11 * 4096);
	assert_int_equal(seek(t, dst, 11 * 4096, SEEK_DATA), 21 * 4096);
	fst_remount(t);
	fst_expect(t, dst, 0, size + 4096, d);
	fst_check_file(t, dst);
	free(a);
	free(d);
}

static void test_copy_unaligned(void **state)
{
	struct fst *t = *state;
	uint64_t src = fst_file(t, KVFS_ROOT_INO, "s"), dst = fst_file(t, KVFS_ROOT_INO, "d");
	uint64_t rs = 12, size = 300 * 1024 + 77; /* several chunks */
	uint8_t *a = malloc(size), *d = calloc(1, size + 5000);

	assert_true(a && d);
	fst_fill(a, size, &rs);
	fst_write(t, src, 0, a, size);
	falloc(t, src, PUNCH, 50000, 70000); /* a hole in the middle */
	memset(a + 50000, 0, 70000);
	fst_write(t, dst, 0, "head", 4);
	memcpy(d, "head", 4);
	assert_int_equal(copy(t, src, 3, dst, 4999, size), (ssize_t)(size - 3));
	memcpy(d + 4999, a + 3, size - 3);
	assert_int_equal(fst_stat(t, dst).st_size, (off_t)(4999 + size - 3));
	fst_expect(t, dst, 0, 4999 + size - 3, d);
	fst_check_file(t, dst);
	/* Past the source's EOF: 0; a length clipped to it. */
	assert_int_equal(copy(t, src, size, dst, 0, 100), 0);
	assert_int_equal(copy(t, src, size + 100, dst, 0, 100), 0);
	assert_int_equal(copy(t, src, size - 10, dst, 0, 100), 10);
	memcpy(d, a + size - 10, 10);
	fst_expect(t, dst, 0, 4999 + size - 3, d);
	assert_int_equal(copy(t, src, 0, dst, 0, 0), 0);
	free(a);
	free(d);
}

static void test_copy_inline(void **state)
{
	struct fst *t = *state;
	uint64_t s = fst_file(t, KVFS_ROOT_INO, "s"), d = fst_file(t, KVFS_ROOT_INO, "d");
	uint64_t d2 = fst_file(t, KVFS_ROOT_INO, "d2"), big = fst_file(t, KVFS_ROOT_INO, "big");
	uint8_t blk[8192];
	size_t ilen;
	uint64_t rs = 13;

	fst_write(t, s, 0, "0123456789", 10);
	/* Inline to inline. */
	assert_int_equal(copy(t, s, 2, d, 1, 5), 5);
	fst_expect(t, d, 0, 6,
		   "\0"
		   "23456");
	assert_true(fst_inode(t, d, &ilen).flags & KVFS_IF_INLINE);
	fst_check_file(t, d);
	/* Inline to far away: the destination moves to blocks. */
	fst_write(t, d2, 0, "xy", 2);
	assert_int_equal(copy(t, s, 0, d2, 3 * 4096 - 4, 10), 10);
	fst_expect(t, d2, 0, 2, "xy");
	fst_expect(t, d2, 3 * 4096 - 4, 10, "0123456789");
	fst_check_file(t, d2);
	/* Blocks into an inline file, aligned. */
	fst_fill(blk, sizeof(blk), &rs);
	fst_write(t, big, 0, blk, sizeof(blk));
	assert_int_equal(copy(t, big, 0, d, 0, sizeof(blk)), (ssize_t)sizeof(blk));
	fst_expect(t, d, 0, sizeof(blk), blk);
	assert_int_equal(nblocks(t, d), 2);
	fst_check_file(t, d);
}

static void test_copy_same_file(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file(t, KVFS_ROOT_INO, "f"), g = fst_file(t, KVFS_ROOT_INO, "g");
	uint64_t rs = 14, size = 20 * 4096;
	uint8_t *a = malloc(4 * size + 8192);

	assert_non_null(a);
	fst_fill(a, size, &rs);
	fst_write(t, f, 0, a, size);
	/* Overlapping ranges of one file. */
	assert_int_equal(copy(t, f, 0, f, 100, 200), -EINVAL);
	assert_int_equal(copy(t, f, 100, f, 0, 200), -EINVAL);
	assert_int_equal(copy(t, f, 4096, f, 4096, 1), -EINVAL);
	/* Disjoint, sharing blocks at both ends, and past EOF. */
	assert_int_equal(copy(t, f, 100, f, 300, 200), 200);
	memmove(a + 300, a + 100, 200);
	assert_int_equal(copy(t, f, 0, f, size, size), (ssize_t)size);
	memcpy(a + size, a, size);
	assert_int_equal(copy(t, f, 5, f, 3 * size + 1, 4096), 4096);
	memset(a + 2 * size, 0, size + 1);
	memcpy(a + 3 * size + 1, a + 5, 4096);
	fst_expect(t, f, 0, 3 * size + 1 + 4096, a);
	fst_check_file(t, f);
	/* An inline file onto itself. */
	fst_write(t, g, 0, "abcdef", 6);
	assert_int_equal(copy(t, g, 0, g, 3, 3), 3);
	fst_expect(t, g, 0, 6, "abcabc");
	assert_int_equal(copy(t, g, 0, g, 5000, 6), 6);
	fst_expect(t, g, 0, 6, "abcabc");
	fst_expect(t, g, 5000, 6, "abcabc");
	fst_check_file(t, g);
	free(a);
}

static void test_copy_errors_suid(void **state)
{
	struct fst *t = *state;
	uint64_t s = fst_file(t, KVFS_ROOT_INO, "s"), d = fst_file(t, KVFS_ROOT_INO, "d");
	uint64_t dir = fst_mkdir(t, KVFS_ROOT_INO, "dir");
	struct stat a = { .st_mode = 06755 }, out;
	size_t copied;

	fst_write(t, s, 0, "data", 4);
	assert_int_equal(kvfs_copy_file_range(t->fs, s, 0, d, 0, 4, 1, 0, &copied, NULL), -EINVAL);
	assert_int_equal(copy(t, s, (uint64_t)-1, d, 0, 4), -EINVAL);
	assert_int_equal(copy(t, s, 0, d, (uint64_t)-1, 4), -EINVAL);
	assert_int_equal(copy(t, s, 0, d, INT64_MAX, 4), -EFBIG);
	assert_int_equal(copy(t, s, 0, d, INT64_MAX - 2, 4), 2); /* short, as a write */
	assert_int_equal(copy(t, dir, 0, d, 0, 4), -EISDIR);
	assert_int_equal(copy(t, s, 0, dir, 0, 4), -EISDIR);
	assert_int_equal(copy(t, s, 0, 999999, 0, 4), -ENOENT);
	/* kill_suid clears S_ISUID and (group-executable) S_ISGID. */
	assert_int_equal(kvfs_setattr(t->fs, &t->cr, d, &a, KVFS_SET_MODE, &out, NULL), 0);
	assert_int_equal(kvfs_copy_file_range(t->fs, s, 0, d, 0, 4, 0, 1, &copied, NULL), 4);
	assert_int_equal(fst_stat(t, d).st_mode & 07777, 0755);
	fst_check_file(t, d);
}

/* ---- done callbacks ----------------------------------------------------- */

struct waitdone {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls, status;
};

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

static void wd_wait(struct waitdone *w, int n)
{
	pthread_mutex_lock(&w->mu);
	while (w->calls < n)
		pthread_cond_wait(&w->cv, &w->mu);
	assert_int_equal(w->status, 0);
	pthread_mutex_unlock(&w->mu);
}

static void done_ops(enum kvfs_durability dur)
{
	struct waitdone w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct kvfs_done d = { wd_fn, &w };
	struct fst t;
	uint64_t s, f;
	size_t copied = 0;

	fst_setup(&t, 1024, dur);
	s = fst_file(&t, KVFS_ROOT_INO, "s");
	f = fst_file(&t, KVFS_ROOT_INO, "f");
	/* One batch, then several (5000 blocks > 4096). */
	assert_int_equal(kvfs_fallocate(t.fs, s, 0, 0, 10 * 1024, &d), KVFS_PENDING);
	wd_wait(&w, 1);
	assert_int_equal(kvfs_fallocate(t.fs, f, 0, 0, 5000 * 1024, &d), KVFS_PENDING);
	wd_wait(&w, 2);
	assert_int_equal(kvfs_fallocate(t.fs, f, PUNCH, 0, 1024, &d), KVFS_PENDING);
	wd_wait(&w, 3);
	/* Nothing to do: no callback. */
	assert_int_equal(kvfs_fallocate(t.fs, f, PUNCH, 1 << 30, 1024, &d), 0);
	assert_int_equal(kvfs_copy_file_range(t.fs, s, 1 << 20, f, 0, 10, 0, 0, &copied, &d), 0);
	assert_int_equal(copied, 0);
	fst_write(&t, s, 0, "abc", 3);
	assert_int_equal(kvfs_copy_file_range(t.fs, s, 0, f, 7, 3, 0, 0, &copied, &d),
			 KVFS_PENDING);
	assert_int_equal(copied, 3);
	wd_wait(&w, 4);
	assert_int_equal(kvfs_copy_file_range(t.fs, f, 0, s, 0, 1 << 20, 0, 0, &copied, &d),
			 KVFS_PENDING);
	assert_int_equal(copied, 1 << 20);
	wd_wait(&w, 5);
	fst_expect(&t, s, 7, 3, "abc");
	assert_int_equal(w.calls, 5);
	fst_check_file(&t, s);
	fst_check_file(&t, f);
	fst_teardown(&t);
}

static void test_done_batch(void **state)
{
	(void)state;
	done_ops(KVFS_DUR_BATCH);
}

static void test_done_sync(void **state)
{
	(void)state;
	done_ops(KVFS_DUR_SYNC);
}

/* ---- everything against a model ----------------------------------------- */

static void random_mix(uint32_t bs, enum kvfs_durability dur, const char *name)
{
	uint64_t seed = kvt_seed(name), rs = seed;
	size_t cap = 48 * (size_t)bs + 20000;
	uint8_t *model[2], *buf = malloc(cap), *got = malloc(2 * cap);
	uint64_t size[2] = { 0, 0 }, ino[2];
	int iters = 250 * kvt_scale();
	struct fst t;

	model[0] = calloc(1, 2 * cap);
	model[1] = calloc(1, 2 * cap);
	assert_true(model[0] && model[1] && buf && got);
	fst_setup(&t, bs, dur);
	ino[0] = fst_file(&t, KVFS_ROOT_INO, "a");
	ino[1] = fst_file(&t, KVFS_ROOT_INO, "b");
	for (int i = 0; i < iters; i++) {
		unsigned op = (unsigned)(kvt_rand(&rs) % 100), k = (unsigned)(kvt_rand(&rs) % 2);
		uint64_t off = kvt_rand(&rs) % (cap / 2), len = kvt_rand(&rs) % (cap / 3) + 1;
		uint8_t *m = model[k];

		if (kvt_rand(&rs) % 4 == 0)
			off = kvt_rand(&rs) % 3000; /* near the inline boundary */
		if (kvt_rand(&rs) % 3 == 0)
			len = kvt_rand(&rs) % 300 + 1;
		if (op < 25) {
			fst_fill(buf, len, &rs);
			fst_write(&t, ino[k], off, buf, len);
			memcpy(m + off, buf, len);
			size[k] = off + len > size[k] ? off + len : size[k];
		} else if (op < 40) {
			int keep = kvt_rand(&rs) % 2 ? KEEP : 0;

			falloc(&t, ino[k], keep, off, len);
			if (!keep && off + len > size[k])
				size[k] = off + len;
		} else if (op < 60) {
			falloc(&t, ino[k], PUNCH, off, len);
			if (off < size[k])
				memset(m + off, 0,
				       (off + len < size[k] ? off + len : size[k]) - off);
		} else if (op < 85) {
			unsigned from = kvt_rand(&rs) % 2 ? k : !k;
			uint64_t off_out = kvt_rand(&rs) % (cap / 2);
			uint64_t n = off >= size[from] ?
					     0 :
					     (size[from] - off < len ? size[from] - off : len);
			ssize_t r;

			if (kvt_rand(&rs) % 2) /* same alignment */
				off_out = off_out / bs * bs + off % bs;
			r = copy(&t, ino[from], off, ino[k], off_out, len);
			if (from == k && n && off < off_out + n && off_out < off + n) {
				assert_int_equal(r, -EINVAL);
			} else {
				assert_int_equal(r, (ssize_t)n);
				memmove(m + off_out, model[from] + off, n);
				if (n && off_out + n > size[k])
					size[k] = off_out + n;
			}
		} else if (op < 95) {
			uint64_t ns = kvt_rand(&rs) % (cap / 2);

			fst_set_size(&t, ino[k], ns);
			if (ns < size[k])
				memset(m + ns, 0, size[k] - ns);
			size[k] = ns;
		} else {
			fst_remount(&t);
		}
		fst_check_file(&t, ino[k]);
		assert_int_equal(kvfs_read(t.fs, ino[k], 0, cap * 2, got), (ssize_t)size[k]);
		if (memcmp(got, m, size[k]))
			fail_msg("seed %llu op %d (%u): file %u differs", (unsigned long long)seed,
				 i, op, k);
	}
	fst_teardown(&t);
	free(model[0]);
	free(model[1]);
	free(buf);
	free(got);
}

static void test_random_batch_4k(void **state)
{
	(void)state;
	random_mix(4096, KVFS_DUR_BATCH, "extent_random_batch_4k");
}

static void test_random_sync_1k(void **state)
{
	(void)state;
	random_mix(1024, KVFS_DUR_SYNC, "extent_random_sync_1k");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_alloc_new_file, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_keeps_data, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_keep_size, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_inline, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test(test_alloc_many_batches),
		cmocka_unit_test_setup_teardown(test_alloc_errors, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_punch_dense, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_punch_sparse, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_punch_inline, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_seek_map, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_seek_cases, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_copy_aligned, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_copy_unaligned, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_copy_inline, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_copy_same_file, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_copy_errors_suid, fst_fixture_setup,
						fst_fixture_teardown),
		cmocka_unit_test(test_done_batch),
		cmocka_unit_test(test_done_sync),
		cmocka_unit_test(test_random_batch_4k),
		cmocka_unit_test(test_random_sync_1k),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
