// SPDX-License-Identifier: MIT
#include "fs_test_util.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static enum kvfs_durability last_dur;

static void fst_open(struct fst *t, enum kvfs_durability dur)
{
	struct kvfs_options o;
	char err[256] = "";
	int e;

	kvfs_options_init(&o);
	o.durability = dur;
	o.log_buffer_size = 1 << 20;
	e = kvfs_open(t->dir, &o, &t->fs, err, sizeof(err));
	if (e)
		fprintf(stderr, "kvfs_open: %s\n", err);
	assert_int_equal(e, 0);
	last_dur = dur;
}

void fst_setup(struct fst *t, uint32_t bs, enum kvfs_durability dur)
{
	struct kvfs_mkfs_options mo = { .block_size = bs, .root_uid = 0, .root_gid = 0 };
	char err[256] = "";
	int e;

	memset(t, 0, sizeof(*t));
	t->dir = kvt_mkdtemp("kvfs");
	e = kvfs_mkfs(t->dir, &mo, err, sizeof(err));
	if (e)
		fprintf(stderr, "kvfs_mkfs: %s\n", err);
	assert_int_equal(e, 0);
	t->cr = (struct kvfs_cred){ .uid = 1000, .gid = 1000, .umask = 022 };
	fst_open(t, dur);
}

void fst_remount(struct fst *t)
{
	assert_int_equal(kvfs_close(t->fs), 0);
	t->fs = NULL;
	fst_open(t, last_dur);
}

void fst_teardown(struct fst *t)
{
	if (t->fs)
		assert_int_equal(kvfs_close(t->fs), 0);
	kvt_rmrf(t->dir);
	free(t->dir);
	memset(t, 0, sizeof(*t));
}

uint64_t fst_mkdir(struct fst *t, uint64_t parent, const char *name)
{
	struct kvfs_entry e;

	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, parent, name, 0755, &e, NULL), 0);
	return e.ino;
}

uint64_t fst_file(struct fst *t, uint64_t parent, const char *name)
{
	struct kvfs_entry e;

	assert_int_equal(kvfs_mknod(t->fs, &t->cr, parent, name, S_IFREG | 0644, 0, &e, NULL), 0);
	return e.ino;
}

struct stat fst_stat(struct fst *t, uint64_t ino)
{
	struct stat st;

	assert_int_equal(kvfs_getattr(t->fs, ino, &st), 0);
	return st;
}

uint64_t fst_file_unref(struct fst *t, uint64_t parent, const char *name)
{
	uint64_t ino = fst_file(t, parent, name);

	kvfs_forget(t->fs, ino, 1);
	return ino;
}

uint64_t fst_mkdir_unref(struct fst *t, uint64_t parent, const char *name)
{
	uint64_t ino = fst_mkdir(t, parent, name);

	kvfs_forget(t->fs, ino, 1);
	return ino;
}

static int fixture_setup(void **state, uint32_t bs)
{
	struct fst *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	fst_setup(t, bs, KVFS_DUR_BATCH);
	*state = t;
	return 0;
}

int fst_fixture_setup(void **state)
{
	return fixture_setup(state, 0);
}

int fst_fixture_setup_8k(void **state)
{
	return fixture_setup(state, 8192);
}

int fst_fixture_teardown(void **state)
{
	fst_teardown(*state);
	free(*state);
	return 0;
}

/* ---- file data ---- */

void fst_write(struct fst *t, uint64_t ino, uint64_t off, const void *buf, size_t len)
{
	assert_int_equal(kvfs_write(t->fs, ino, off, buf, len, 0, NULL), (ssize_t)len);
}

void fst_set_size(struct fst *t, uint64_t ino, uint64_t size)
{
	struct stat a = { .st_size = (off_t)size }, out;

	assert_int_equal(kvfs_setattr(t->fs, &t->cr, ino, &a, KVFS_SET_SIZE, &out, NULL), 0);
	assert_int_equal(out.st_size, (off_t)size);
}

/* Read [off, off + len) and compare with @want (NULL: zeros). */
void fst_expect(struct fst *t, uint64_t ino, uint64_t off, size_t len, const void *want)
{
	uint8_t *got = malloc(len + 1);

	assert_non_null(got);
	assert_int_equal(kvfs_read(t->fs, ino, off, len, got), (ssize_t)len);
	if (want) {
		assert_memory_equal(got, want, len);
	} else {
		for (size_t i = 0; i < len; i++)
			if (got[i])
				fail_msg("byte %llu is %#x, want 0", (unsigned long long)(off + i),
					 got[i]);
	}
	free(got);
}

struct kvfs_inode fst_inode(struct fst *t, uint64_t ino, size_t *inline_len)
{
	static uint8_t inl[65536];
	struct kvfs_inode in;

	assert_int_equal(kvfs_inode_read(t->fs, ino, &in, inl, sizeof(inl), inline_len), 0);
	return in;
}

/* fs/data.c's invariants; returns the number of empty (allocated) blocks. */
uint64_t fst_check_file(struct fst *t, uint64_t ino)
{
	uint8_t lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	size_t llen = kvfs_key_prefix(lo, KVFS_K_DATA, ino);
	size_t hlen = kvfs_key_prefix(hi, KVFS_K_DATA, ino + 1);
	uint32_t bs = t->fs->block_size;
	size_t ilen;
	struct kvfs_inode in = fst_inode(t, ino, &ilen);
	uint64_t end = in.size / bs + (in.size % bs != 0), n = 0, empty = 0;
	struct kv_iter *it;

	assert_int_equal(kv_sync(t->fs->db), 0);
	assert_int_equal(kv_iter_create(t->fs->db, NULL, &it), 0);
	for (kv_iter_seek(it, lo, llen); kv_iter_valid(it); kv_iter_next(it)) {
		size_t klen, vlen;
		const void *k = kv_iter_key(it, &klen);
		struct kvfs_key key;

		if (memcmp(k, hi, hlen) >= 0)
			break;
		assert_int_equal(kvfs_key_parse(k, klen, &key), 0);
		kv_iter_value(it, &vlen);
		if (key.block >= end)
			fail_msg("ino %llu: block %llu at or past the end (size %llu)",
				 (unsigned long long)ino, (unsigned long long)key.block,
				 (unsigned long long)in.size);
		assert_true(vlen <= bs);
		assert_true(key.block * bs + vlen <= in.size);
		empty += !vlen;
		n++;
	}
	assert_int_equal(kv_iter_status(it), 0);
	kv_iter_destroy(it);
	if (n != in.nblocks)
		fail_msg("ino %llu: nblocks %llu, %llu data keys", (unsigned long long)ino,
			 (unsigned long long)in.nblocks, (unsigned long long)n);
	if (in.flags & KVFS_IF_INLINE) {
		assert_int_equal(in.nblocks, 0);
		assert_true(ilen <= in.size && in.size <= t->fs->inline_max);
	} else {
		assert_int_equal(ilen, 0);
	}
	assert_int_equal(fst_stat(t, ino).st_size, (off_t)in.size);
	return empty;
}

void fst_fill(uint8_t *p, size_t n, uint64_t *rs)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(kvt_rand(rs) | 1); /* never 0: holes are visible */
}

blkcnt_t fst_sectors(struct fst *t, uint64_t blocks)
{
	return (blkcnt_t)(blocks * (t->fs->block_size / 512));
}
