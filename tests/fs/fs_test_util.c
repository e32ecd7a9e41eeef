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
