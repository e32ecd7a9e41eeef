// SPDX-License-Identifier: MIT
/*
 * Attributes and open files (fs/attr.c): every setattr field with the
 * flags the kernel sends (UTIME_NOW as *_NOW, UTIME_OMIT as an absent flag),
 * suid/sgid clearing, nanosecond and pre-1970 timestamps, truncate through
 * setattr and O_TRUNC, open/release references, read-only mounts,
 * persistence, and kvfs_done in both durabilities.
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

#include <cmocka.h>

#include "data.h"
#include "fs_test_util.h"

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	if (a->tv_nsec != b->tv_nsec)
		return a->tv_nsec < b->tv_nsec ? -1 : 1;
	return 0;
}

static void assert_ts(const struct timespec *got, time_t sec, long nsec)
{
	if (got->tv_sec != sec || got->tv_nsec != nsec)
		fail_msg("time %lld.%09ld, want %lld.%09ld", (long long)got->tv_sec, got->tv_nsec,
			 (long long)sec, nsec);
}

/* @t was taken in [lo, hi]. */
static void assert_between(const struct timespec *lo, const struct timespec *t,
			   const struct timespec *hi)
{
	if (ts_cmp(lo, t) > 0 || ts_cmp(t, hi) > 0)
		fail_msg("time %lld.%09ld not in [%lld.%09ld, %lld.%09ld]", (long long)t->tv_sec,
			 t->tv_nsec, (long long)lo->tv_sec, lo->tv_nsec, (long long)hi->tv_sec,
			 hi->tv_nsec);
}

static void assert_same_stat(const struct stat *a, const struct stat *b)
{
	assert_int_equal(a->st_ino, b->st_ino);
	assert_int_equal(a->st_mode, b->st_mode);
	assert_int_equal(a->st_uid, b->st_uid);
	assert_int_equal(a->st_gid, b->st_gid);
	assert_int_equal(a->st_size, b->st_size);
	assert_int_equal(a->st_blocks, b->st_blocks);
	assert_int_equal(a->st_nlink, b->st_nlink);
	assert_int_equal(ts_cmp(&a->st_atim, &b->st_atim), 0);
	assert_int_equal(ts_cmp(&a->st_mtim, &b->st_mtim), 0);
	assert_int_equal(ts_cmp(&a->st_ctim, &b->st_ctim), 0);
}

/* setattr that must succeed; returns the new attributes (checked against
 * getattr). */
static struct stat setattr_ok(struct fst *t, uint64_t ino, const struct stat *a, int to_set)
{
	struct stat out, st;

	memset(&out, 0xee, sizeof(out));
	assert_int_equal(kvfs_setattr(t->fs, &t->cr, ino, a, to_set, &out, NULL), 0);
	st = fst_stat(t, ino);
	assert_same_stat(&out, &st);
	return out;
}

static int setattr_err(struct fst *t, uint64_t ino, const struct stat *a, int to_set)
{
	struct stat out;

	return kvfs_setattr(t->fs, &t->cr, ino, a, to_set, &out, NULL);
}

static uint64_t mk(struct fst *t, const char *name, mode_t mode)
{
	struct kvfs_entry e;

	assert_int_equal(kvfs_mknod(t->fs, &t->cr, KVFS_ROOT_INO, name, mode, 0, &e, NULL), 0);
	return e.ino;
}

/* ---- mode, owner ------------------------------------------------------- */

static void test_chmod(void **state)
{
	struct timespec lo, hi;
	struct stat a = { 0 }, before, st;
	struct fst t;
	uint64_t f, d;

	(void)state;
	fst_setup(&t, 0, KVFS_DUR_BATCH);
	f = fst_file(&t, KVFS_ROOT_INO, "f");
	d = fst_mkdir(&t, KVFS_ROOT_INO, "d");
	before = fst_stat(&t, f);

	/* Type bits in the request are ignored; suid, sgid, sticky are set. */
	a.st_mode = S_IFDIR | 07751;
	kvfs_now(&lo);
	st = setattr_ok(&t, f, &a, KVFS_SET_MODE);
	kvfs_now(&hi);
	assert_int_equal(st.st_mode, S_IFREG | 07751);
	assert_between(&lo, &st.st_ctim, &hi);
	assert_int_equal(ts_cmp(&st.st_mtim, &before.st_mtim), 0);
	assert_int_equal(ts_cmp(&st.st_atim, &before.st_atim), 0);
	a.st_mode = 0;
	assert_int_equal(setattr_ok(&t, f, &a, KVFS_SET_MODE).st_mode, S_IFREG);

	a.st_mode = S_IFREG | 01777;
	assert_int_equal(setattr_ok(&t, d, &a, KVFS_SET_MODE).st_mode, S_IFDIR | 01777);
	assert_int_equal(fst_stat(&t, d).st_nlink, 2);
	fst_teardown(&t);
}

static void test_chown_clears_suid(void **state)
{
	struct stat a = { 0 };
	struct fst t;
	uint64_t f, d;

	(void)state;
	fst_setup(&t, 0, KVFS_DUR_BATCH);
	f = fst_file(&t, KVFS_ROOT_INO, "f");
	d = fst_mkdir(&t, KVFS_ROOT_INO, "d");

	a.st_mode = 06755;
	setattr_ok(&t, f, &a, KVFS_SET_MODE);
	a.st_uid = 2000;
	a.st_gid = 3000;
	/* uid and gid change; suid and (group-executable) sgid go. */
	a = setattr_ok(&t, f, &a, KVFS_SET_UID | KVFS_SET_GID);
	assert_int_equal(a.st_uid, 2000);
	assert_int_equal(a.st_gid, 3000);
	assert_int_equal(a.st_mode, S_IFREG | 0755);

	/* Without group execute, S_ISGID (mandatory locking) stays. */
	a.st_mode = 06745;
	setattr_ok(&t, f, &a, KVFS_SET_MODE);
	a.st_gid = 4000;
	assert_int_equal(setattr_ok(&t, f, &a, KVFS_SET_GID).st_mode, S_IFREG | 02745);

	/* Root's chown clears suid too, as Linux does; so does the same owner. */
	a.st_mode = 04711;
	setattr_ok(&t, f, &a, KVFS_SET_MODE);
	t.cr.uid = 0;
	t.cr.gid = 0;
	a.st_uid = 2000;
	assert_int_equal(setattr_ok(&t, f, &a, KVFS_SET_UID).st_mode, S_IFREG | 0711);

	/* KVFS_SET_KILL_SUIDGID alone (FUSE's handle_killpriv_v2). */
	a.st_mode = 06775;
	setattr_ok(&t, f, &a, KVFS_SET_MODE);
	assert_int_equal(setattr_ok(&t, f, &a, KVFS_SET_KILL_SUIDGID).st_mode, S_IFREG | 0775);

	/* Directories keep theirs (sgid on a directory is inheritance). */
	a.st_mode = 07755;
	setattr_ok(&t, d, &a, KVFS_SET_MODE);
	a.st_uid = 5;
	a.st_gid = 6;
	a = setattr_ok(&t, d, &a, KVFS_SET_UID | KVFS_SET_GID | KVFS_SET_KILL_SUIDGID);
	assert_int_equal(a.st_mode, S_IFDIR | 07755);
	assert_int_equal(a.st_uid, 5);
	assert_int_equal(a.st_gid, 6);
	fst_teardown(&t);
}

/* ---- size ---------------------------------------------------------------- */

static void test_truncate(void **state)
{
	struct timespec lo, hi, old_mtime;
	struct stat a = { 0 }, st;
	uint8_t buf[10000];
	struct kvfs_entry e;
	struct fst t;
	uint64_t f, d, fifo;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	f = fst_file(&t, KVFS_ROOT_INO, "f");
	d = fst_mkdir(&t, KVFS_ROOT_INO, "d");
	fifo = mk(&t, "p", S_IFIFO | 0644);
	assert_int_equal(kvfs_symlink(t.fs, &t.cr, KVFS_ROOT_INO, "l", "target", &e, NULL), 0);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(kvfs_write(t.fs, f, 0, buf, sizeof(buf), 0, NULL), (ssize_t)sizeof(buf));

	a.st_size = 5000;
	kvfs_now(&lo);
	st = setattr_ok(&t, f, &a, KVFS_SET_SIZE);
	kvfs_now(&hi);
	assert_int_equal(st.st_size, 5000);
	assert_int_equal(st.st_blocks, 2 * 8);
	assert_between(&lo, &st.st_mtim, &hi);
	assert_between(&lo, &st.st_ctim, &hi);
	assert_int_equal(kvfs_read(t.fs, f, 0, sizeof(buf), buf), 5000);

	/* The same size: mtime stays (truncate(2)), ctime moves. */
	old_mtime = st.st_mtim;
	kvfs_now(&lo);
	st = setattr_ok(&t, f, &a, KVFS_SET_SIZE);
	assert_int_equal(ts_cmp(&st.st_mtim, &old_mtime), 0);
	assert_true(ts_cmp(&st.st_ctim, &lo) >= 0);

	/* Not a regular file; and nothing else applies on failure. */
	assert_int_equal(setattr_err(&t, d, &a, KVFS_SET_SIZE), -EISDIR);
	assert_int_equal(setattr_err(&t, fifo, &a, KVFS_SET_SIZE), -EINVAL);
	assert_int_equal(setattr_err(&t, e.ino, &a, KVFS_SET_SIZE), -EINVAL);
	a.st_mode = 0700;
	assert_int_equal(setattr_err(&t, d, &a, KVFS_SET_SIZE | KVFS_SET_MODE), -EISDIR);
	assert_int_equal(fst_stat(&t, d).st_mode & 07777, 0755);
	a.st_size = -1;
	assert_int_equal(setattr_err(&t, f, &a, KVFS_SET_SIZE), -EINVAL);
	assert_int_equal(setattr_err(&t, 987654, &a, KVFS_SET_MODE), -ENOENT);
	fst_teardown(&t);
}

/* ---- times --------------------------------------------------------------- */

static void test_times(void **state)
{
	struct timespec lo, hi;
	struct stat a = { 0 }, st, prev;
	struct fst t;
	uint64_t f;

	(void)state;
	fst_setup(&t, 0, KVFS_DUR_BATCH);
	f = fst_file(&t, KVFS_ROOT_INO, "f");

	/* Explicit, to the nanosecond, and before 1970. */
	a.st_atim = (struct timespec){ 1234567890, 123456789 };
	a.st_mtim = (struct timespec){ -86400 * 365, 999999999 };
	kvfs_now(&lo);
	st = setattr_ok(&t, f, &a, KVFS_SET_ATIME | KVFS_SET_MTIME);
	kvfs_now(&hi);
	assert_ts(&st.st_atim, 1234567890, 123456789);
	assert_ts(&st.st_mtim, -86400 * 365, 999999999);
	assert_between(&lo, &st.st_ctim, &hi);

	/* UTIME_NOW as the kernel sends it: the field's flag and *_NOW. */
	kvfs_now(&lo);
	st = setattr_ok(&t, f, &a, KVFS_SET_ATIME | KVFS_SET_ATIME_NOW);
	kvfs_now(&hi);
	assert_between(&lo, &st.st_atim, &hi);
	assert_ts(&st.st_mtim, -86400 * 365, 999999999); /* omitted: untouched */
	st = setattr_ok(&t, f, &a, KVFS_SET_MTIME_NOW);
	assert_true(ts_cmp(&st.st_mtim, &lo) >= 0);
	prev = st;

	/* UTIME_OMIT: the field is not set at all. */
	a.st_atim = (struct timespec){ 5, 5 };
	st = setattr_ok(&t, f, &a, KVFS_SET_ATIME);
	assert_ts(&st.st_atim, 5, 5);
	assert_int_equal(ts_cmp(&st.st_mtim, &prev.st_mtim), 0);
	/* ... or arrives as tv_nsec values from a library caller. */
	a.st_atim.tv_nsec = UTIME_OMIT;
	a.st_mtim.tv_nsec = UTIME_NOW;
	kvfs_now(&lo);
	st = setattr_ok(&t, f, &a, KVFS_SET_ATIME | KVFS_SET_MTIME);
	assert_ts(&st.st_atim, 5, 5);
	assert_true(ts_cmp(&st.st_mtim, &lo) >= 0);
	a.st_atim.tv_nsec = 1000000000;
	assert_int_equal(setattr_err(&t, f, &a, KVFS_SET_ATIME), -EINVAL);
	a.st_atim.tv_nsec = -3;
	assert_int_equal(setattr_err(&t, f, &a, KVFS_SET_ATIME), -EINVAL);

	/* Explicit ctime (the writeback cache), alone or with others. */
	a.st_ctim = (struct timespec){ 42, 7 };
	st = setattr_ok(&t, f, &a, KVFS_SET_CTIME);
	assert_ts(&st.st_ctim, 42, 7);
	a.st_mode = 0600;
	a.st_ctim = (struct timespec){ 43, 8 };
	st = setattr_ok(&t, f, &a, KVFS_SET_CTIME | KVFS_SET_MODE);
	assert_ts(&st.st_ctim, 43, 8);
	assert_int_equal(st.st_mode, S_IFREG | 0600);

	/* Nothing to set: nothing changes. */
	prev = fst_stat(&t, f);
	st = setattr_ok(&t, f, &a, 0);
	assert_same_stat(&st, &prev);

	/* Nanoseconds survive a remount. */
	a.st_atim = (struct timespec){ 1700000000, 1 };
	a.st_mtim = (struct timespec){ 1700000001, 999999998 };
	a.st_ctim = (struct timespec){ 1700000002, 500000000 };
	setattr_ok(&t, f, &a, KVFS_SET_ATIME | KVFS_SET_MTIME | KVFS_SET_CTIME);
	fst_remount(&t);
	st = fst_stat(&t, f);
	assert_ts(&st.st_atim, 1700000000, 1);
	assert_ts(&st.st_mtim, 1700000001, 999999998);
	assert_ts(&st.st_ctim, 1700000002, 500000000);
	fst_teardown(&t);
}

/* Every field at once, then a remount; inline data and symlink targets kept. */
static void test_persist_and_inline(void **state)
{
	struct stat a = { 0 }, st, after;
	struct kvfs_entry e;
	char target[64];
	struct fst t;
	char buf[16];
	uint64_t f;

	(void)state;
	fst_setup(&t, 0, KVFS_DUR_SYNC);
	f = fst_file(&t, KVFS_ROOT_INO, "f");
	assert_int_equal(kvfs_write(t.fs, f, 0, "inline!", 7, 0, NULL), 7);
	assert_int_equal(kvfs_symlink(t.fs, &t.cr, KVFS_ROOT_INO, "l", "some/where", &e, NULL), 0);
	a.st_mode = 0640;
	a.st_uid = 77;
	a.st_gid = 88;
	a.st_size = 5;
	a.st_atim = (struct timespec){ 100, 1 };
	a.st_mtim = (struct timespec){ 200, 2 };
	st = setattr_ok(&t, f, &a,
			KVFS_SET_MODE | KVFS_SET_UID | KVFS_SET_GID | KVFS_SET_SIZE |
				KVFS_SET_ATIME | KVFS_SET_MTIME);
	assert_int_equal(st.st_size, 5);
	assert_ts(&st.st_mtim, 200, 2); /* explicit mtime wins over the truncate's */
	setattr_ok(&t, e.ino, &a, KVFS_SET_UID | KVFS_SET_GID | KVFS_SET_ATIME);
	fst_remount(&t);
	after = fst_stat(&t, f);
	assert_same_stat(&after, &st);
	assert_int_equal(after.st_mode, S_IFREG | 0640);
	assert_int_equal(kvfs_read(t.fs, f, 0, sizeof(buf), buf), 5);
	assert_memory_equal(buf, "inlin", 5);
	assert_int_equal(kvfs_readlink(t.fs, e.ino, target, sizeof(target)), 10);
	assert_memory_equal(target, "some/where", 10);
	assert_int_equal(fst_stat(&t, e.ino).st_uid, 77);
	fst_teardown(&t);
}

/* ---- open, release ------------------------------------------------------- */

static void test_open_trunc(void **state)
{
	struct timespec lo, hi;
	struct stat a = { 0 }, st;
	uint8_t buf[20000];
	struct fst t;
	uint64_t f, d, fifo;

	(void)state;
	fst_setup(&t, 4096, KVFS_DUR_BATCH);
	f = fst_file(&t, KVFS_ROOT_INO, "f");
	d = fst_mkdir(&t, KVFS_ROOT_INO, "d");
	fifo = mk(&t, "p", S_IFIFO | 0644);
	memset(buf, 'q', sizeof(buf));
	assert_int_equal(kvfs_write(t.fs, f, 0, buf, sizeof(buf), 0, NULL), (ssize_t)sizeof(buf));

	/* O_RDONLY, O_WRONLY, O_RDWR without O_TRUNC change nothing. */
	st = fst_stat(&t, f);
	assert_int_equal(kvfs_open_file(t.fs, f, O_RDONLY, NULL), 0);
	assert_int_equal(kvfs_open_file(t.fs, f, O_RDWR | O_APPEND, NULL), 0);
	kvfs_release(t.fs, f);
	kvfs_release(t.fs, f);
	a = fst_stat(&t, f);
	assert_same_stat(&a, &st);

	kvfs_now(&lo);
	assert_int_equal(kvfs_open_file(t.fs, f, O_WRONLY | O_TRUNC, NULL), 0);
	kvfs_now(&hi);
	st = fst_stat(&t, f);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_blocks, 0);
	assert_between(&lo, &st.st_mtim, &hi);
	assert_between(&lo, &st.st_ctim, &hi);
	assert_int_equal(kvfs_read(t.fs, f, 0, sizeof(buf), buf), 0);
	/* The old blocks are gone: a sparse write does not bring them back. */
	assert_int_equal(kvfs_write(t.fs, f, 8192, "z", 1, 0, NULL), 1);
	assert_int_equal(kvfs_read(t.fs, f, 0, sizeof(buf), buf), 8193);
	for (int i = 0; i < 8192; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(fst_stat(&t, f).st_blocks, 8);
	kvfs_release(t.fs, f);

	/* O_TRUNC of an empty file still sets mtime and ctime (Linux does). */
	a.st_mtim = a.st_ctim = (struct timespec){ 10, 0 };
	assert_int_equal(kvfs_open_file(t.fs, f, O_RDWR | O_TRUNC, NULL), 0);
	setattr_ok(&t, f, &a, KVFS_SET_MTIME | KVFS_SET_CTIME);
	kvfs_release(t.fs, f);
	assert_int_equal(kvfs_open_file(t.fs, f, O_RDWR | O_TRUNC, NULL), 0);
	assert_true(fst_stat(&t, f).st_mtim.tv_sec > 10);
	kvfs_release(t.fs, f);

	/* Directories: never for writing. A fifo ignores O_TRUNC. */
	assert_int_equal(kvfs_open_file(t.fs, d, O_WRONLY, NULL), -EISDIR);
	assert_int_equal(kvfs_open_file(t.fs, d, O_RDWR, NULL), -EISDIR);
	assert_int_equal(kvfs_open_file(t.fs, d, O_RDONLY | O_TRUNC, NULL), -EISDIR);
	assert_int_equal(kvfs_open_file(t.fs, d, O_RDONLY | O_DIRECTORY, NULL), 0);
	kvfs_release(t.fs, d);
	st = fst_stat(&t, fifo);
	assert_int_equal(kvfs_open_file(t.fs, fifo, O_WRONLY | O_TRUNC, NULL), 0);
	kvfs_release(t.fs, fifo);
	a = fst_stat(&t, fifo);
	assert_same_stat(&a, &st);
	assert_int_equal(kvfs_open_file(t.fs, 987654, O_RDONLY, NULL), -ENOENT);
	fst_teardown(&t);
}

/* An open file outlives its last name; release reclaims it. */
static void test_open_unlinked(void **state)
{
	struct kvfs_inode in;
	struct fst t;
	char buf[8];
	uint64_t f;

	(void)state;
	fst_setup(&t, 0, KVFS_DUR_BATCH);
	f = fst_file(&t, KVFS_ROOT_INO, "f");
	assert_int_equal(kvfs_write(t.fs, f, 100000, "tail", 4, 0, NULL), 4);
	assert_int_equal(kvfs_open_file(t.fs, f, O_RDWR, NULL), 0);
	kvfs_forget(t.fs, f, 1); /* the kernel drops its lookup reference */
	assert_int_equal(kvfs_unlink(t.fs, KVFS_ROOT_INO, "f", NULL), 0);
	assert_int_equal(kvfs_read(t.fs, f, 100000, 8, buf), 4);
	assert_memory_equal(buf, "tail", 4);
	assert_int_equal(kvfs_write(t.fs, f, 0, "head", 4, 0, NULL), 4);
	assert_int_equal(fst_stat(&t, f).st_nlink, 0);
	kvfs_release(t.fs, f);
	assert_int_equal(kvfs_inode_read(t.fs, f, &in, NULL, 0, NULL), -ENOENT);
	assert_int_equal(kvfs_open_file(t.fs, f, O_RDONLY, NULL), -ENOENT);
	fst_teardown(&t);
}

/* ---- kvfs_done, read-only ------------------------------------------------ */

struct donecount {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls, status;
	struct stat *out; /* filled before the callback */
	mode_t seen_mode;
};

static void done_fn(void *arg, int status)
{
	struct donecount *d = arg;

	pthread_mutex_lock(&d->mu);
	d->calls++;
	d->status = status;
	if (d->out)
		d->seen_mode = d->out->st_mode;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static void test_done(void **state)
{
	enum kvfs_durability durs[] = { KVFS_DUR_BATCH, KVFS_DUR_SYNC };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct donecount dc = { .mu = PTHREAD_MUTEX_INITIALIZER,
					.cv = PTHREAD_COND_INITIALIZER };
		struct kvfs_done done = { done_fn, &dc };
		struct stat a = { .st_mode = 0611 }, out;
		struct fst t;
		uint64_t f;

		fst_setup(&t, 0, durs[i]);
		f = fst_file(&t, KVFS_ROOT_INO, "f");
		memset(&out, 0, sizeof(out));
		dc.out = &out;
		assert_int_equal(kvfs_setattr(t.fs, &t.cr, f, &a, KVFS_SET_MODE, &out, &done),
				 KVFS_PENDING);
		pthread_mutex_lock(&dc.mu);
		while (dc.calls < 1)
			pthread_cond_wait(&dc.cv, &dc.mu);
		pthread_mutex_unlock(&dc.mu);
		assert_int_equal(dc.status, 0);
		assert_int_equal(dc.seen_mode, S_IFREG | 0611);
		/* Errors and no-ops return directly, without a callback. */
		assert_int_equal(kvfs_setattr(t.fs, &t.cr, f, &a, 0, &out, &done), 0);
		assert_int_equal(kvfs_setattr(t.fs, &t.cr, 424242, &a, KVFS_SET_MODE, &out, &done),
				 -ENOENT);
		assert_int_equal(kvfs_open_file(t.fs, f, O_RDONLY, &done), 0);
		kvfs_release(t.fs, f);
		assert_int_equal(kvfs_sync(t.fs), 0);
		assert_int_equal(dc.calls, 1);
		fst_remount(&t);
		assert_int_equal(fst_stat(&t, f).st_mode, S_IFREG | 0611);
		fst_teardown(&t);
	}
}

static void test_read_only(void **state)
{
	struct stat a = { .st_mode = 0600, .st_size = 0 }, out;
	struct kvfs_options o;
	char err[256];
	struct fst t;
	uint64_t f, fifo;

	(void)state;
	fst_setup(&t, 0, KVFS_DUR_BATCH);
	f = fst_file(&t, KVFS_ROOT_INO, "f");
	fifo = mk(&t, "p", S_IFIFO | 0666);
	assert_int_equal(kvfs_close(t.fs), 0);
	kvfs_options_init(&o);
	o.read_only = 1;
	assert_int_equal(kvfs_open(t.dir, &o, &t.fs, err, sizeof(err)), 0);
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, f, &a, KVFS_SET_MODE, &out, NULL), -EROFS);
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, f, &a, KVFS_SET_SIZE, &out, NULL), -EROFS);
	assert_int_equal(kvfs_setattr(t.fs, &t.cr, f, &a, 0, &out, NULL), 0);
	assert_int_equal(out.st_mode, S_IFREG | 0644);
	assert_int_equal(kvfs_open_file(t.fs, f, O_WRONLY, NULL), -EROFS);
	assert_int_equal(kvfs_open_file(t.fs, f, O_RDONLY | O_TRUNC, NULL), -EROFS);
	assert_int_equal(kvfs_open_file(t.fs, f, O_RDONLY, NULL), 0);
	kvfs_release(t.fs, f);
	assert_int_equal(kvfs_open_file(t.fs, fifo, O_WRONLY, NULL), 0); /* not stored here */
	kvfs_release(t.fs, fifo);
	fst_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chmod),
		cmocka_unit_test(test_chown_clears_suid),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_persist_and_inline),
		cmocka_unit_test(test_open_trunc),
		cmocka_unit_test(test_open_unlinked),
		cmocka_unit_test(test_done),
		cmocka_unit_test(test_read_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
