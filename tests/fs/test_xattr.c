// SPDX-License-Identifier: MIT
/*
 * Extended attributes (fs/xattr.c): set, get, list and remove with
 * XATTR_CREATE / XATTR_REPLACE, the size protocol (cap 0 asks the size, a
 * short buffer gets -ERANGE), the limits and namespaces with Linux's codes,
 * ctime, persistence across a remount, and deletion with the inode.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include <cmocka.h>

#include "fs_test_util.h"

#define ROOT KVFS_ROOT_INO

static int set(struct fst *t, uint64_t ino, const char *name, const char *val, int flags)
{
	return kvfs_setxattr(t->fs, ino, name, val, strlen(val), flags, NULL);
}

static ssize_t get(struct fst *t, uint64_t ino, const char *name, char *buf, size_t cap)
{
	ssize_t n = kvfs_getxattr(t->fs, ino, name, buf, cap);

	if (n >= 0 && (size_t)n < cap)
		buf[n] = '\0';
	return n;
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	return a.tv_nsec < b.tv_nsec ? -1 : a.tv_nsec > b.tv_nsec;
}

static void test_set_get(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f");
	char buf[64];

	assert_int_equal(get(t, f, "user.a", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(set(t, f, "user.a", "hello", 0), 0);
	assert_int_equal(get(t, f, "user.a", buf, sizeof(buf)), 5);
	assert_string_equal(buf, "hello");
	/* Size protocol: cap 0 asks the size; a short buffer is -ERANGE. */
	assert_int_equal(kvfs_getxattr(t->fs, f, "user.a", NULL, 0), 5);
	assert_int_equal(kvfs_getxattr(t->fs, f, "user.a", buf, 4), -ERANGE);
	assert_int_equal(kvfs_getxattr(t->fs, f, "user.a", buf, 5), 5);
	/* Replace the value; an empty value is a value. */
	assert_int_equal(set(t, f, "user.a", "hi", 0), 0);
	assert_int_equal(get(t, f, "user.a", buf, sizeof(buf)), 2);
	assert_string_equal(buf, "hi");
	assert_int_equal(set(t, f, "user.empty", "", 0), 0);
	assert_int_equal(get(t, f, "user.empty", buf, sizeof(buf)), 0);
	assert_int_equal(kvfs_setxattr(t->fs, f, "user.null", NULL, 0, 0, NULL), 0);
	assert_int_equal(kvfs_getxattr(t->fs, f, "user.null", NULL, 0), 0);
	/* Every namespace; binary values. */
	assert_int_equal(set(t, f, "trusted.t", "T", 0), 0);
	assert_int_equal(set(t, f, "security.s", "S", 0), 0);
	assert_int_equal(set(t, f, "system.other", "Y", 0), 0);
	/* ACLs are checked (tests/fs/test_acl.c covers them). */
	assert_int_equal(kvfs_setxattr(t->fs, f, "system.posix_acl_access", "\0\1\2", 3, 0, NULL),
			 -EINVAL);
	assert_int_equal(kvfs_getxattr(t->fs, f, "system.posix_acl_access", buf, sizeof(buf)),
			 -ENODATA);
	/* Directories carry them too, as does the root. */
	assert_int_equal(set(t, ROOT, "user.root", "r", 0), 0);
	assert_int_equal(get(t, ROOT, "user.root", buf, sizeof(buf)), 1);
	/* Names are per inode. */
	assert_int_equal(get(t, ROOT, "user.a", buf, sizeof(buf)), -ENODATA);
}

static void test_flags(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f");
	char buf[16];

	assert_int_equal(set(t, f, "user.x", "1", XATTR_REPLACE), -ENODATA);
	assert_int_equal(get(t, f, "user.x", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(set(t, f, "user.x", "1", XATTR_CREATE), 0);
	assert_int_equal(set(t, f, "user.x", "2", XATTR_CREATE), -EEXIST);
	assert_int_equal(get(t, f, "user.x", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "1");
	assert_int_equal(set(t, f, "user.x", "3", XATTR_REPLACE), 0);
	assert_int_equal(get(t, f, "user.x", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "3");
	assert_int_equal(set(t, f, "user.x", "4", 0x10), -EINVAL);
	assert_int_equal(get(t, f, "user.x", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "3");
}

static void test_names_and_limits(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f");
	char name[KVFS_XATTR_NAME_MAX + 2], buf[16];
	char *big = calloc(1, KVFS_XATTR_SIZE_MAX + 1), *back = malloc(KVFS_XATTR_SIZE_MAX);
	struct kvfs_entry e;

	assert_non_null(big);
	assert_non_null(back);
	/* Names: a namespace prefix, something after it, at most 255 bytes. */
	assert_int_equal(set(t, f, "plain", "v", 0), -EOPNOTSUPP);
	assert_int_equal(set(t, f, "usr.x", "v", 0), -EOPNOTSUPP);
	assert_int_equal(get(t, f, "plain", buf, sizeof(buf)), -EOPNOTSUPP);
	assert_int_equal(kvfs_removexattr(t->fs, f, "plain", NULL), -EOPNOTSUPP);
	assert_int_equal(set(t, f, "user.", "v", 0), -EINVAL);
	assert_int_equal(set(t, f, "", "v", 0), -ERANGE);
	assert_int_equal(get(t, f, "", buf, sizeof(buf)), -ERANGE);
	memcpy(name, "user.", 5);
	memset(name + 5, 'n', sizeof(name) - 5);
	name[KVFS_XATTR_NAME_MAX + 1] = '\0';
	assert_int_equal(set(t, f, name, "v", 0), -ERANGE);
	assert_int_equal(get(t, f, name, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(kvfs_removexattr(t->fs, f, name, NULL), -ERANGE);
	name[KVFS_XATTR_NAME_MAX] = '\0';
	assert_int_equal(set(t, f, name, "v", 0), 0);
	assert_int_equal(get(t, f, name, buf, sizeof(buf)), 1);
	/* Values: up to 64 KiB. */
	memset(big, 'b', KVFS_XATTR_SIZE_MAX);
	big[7] = 'x';
	assert_int_equal(kvfs_setxattr(t->fs, f, "user.big", big, KVFS_XATTR_SIZE_MAX + 1, 0, NULL),
			 -E2BIG);
	assert_int_equal(kvfs_setxattr(t->fs, f, "user.big", big, KVFS_XATTR_SIZE_MAX, 0, NULL), 0);
	assert_int_equal(kvfs_getxattr(t->fs, f, "user.big", NULL, 0), KVFS_XATTR_SIZE_MAX);
	assert_int_equal(kvfs_getxattr(t->fs, f, "user.big", back, KVFS_XATTR_SIZE_MAX),
			 KVFS_XATTR_SIZE_MAX);
	assert_memory_equal(back, big, KVFS_XATTR_SIZE_MAX);
	/* A missing inode. */
	assert_int_equal(set(t, 999999, "user.a", "v", 0), -ENOENT);
	assert_int_equal(get(t, 999999, "user.a", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(kvfs_listxattr(t->fs, 999999, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(kvfs_removexattr(t->fs, 999999, "user.a", NULL), -ENOENT);
	/* user.* only on regular files and directories, as Linux. */
	assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, "l", "f", &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(set(t, e.ino, "user.a", "v", 0), -EPERM);
	assert_int_equal(get(t, e.ino, "user.a", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(set(t, e.ino, "trusted.a", "v", 0), 0);
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, "p", S_IFIFO | 0644, 0, &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(set(t, e.ino, "user.a", "v", 0), -EPERM);
	free(big);
	free(back);
}

/* Every namespace behaves the same: flags, absence, sizes, name lengths. */
static void test_namespaces(void **state)
{
	static const char *const ns[] = { "user.", "trusted.", "security." };
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f");
	char *big = malloc(KVFS_XATTR_SIZE_MAX + 1), name[KVFS_XATTR_NAME_MAX + 2], buf[16];

	assert_non_null(big);
	memset(big, 'v', KVFS_XATTR_SIZE_MAX + 1);
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		size_t p = strlen(ns[i]);

		snprintf(name, sizeof(name), "%sx", ns[i]);
		assert_int_equal(get(t, f, name, buf, sizeof(buf)), -ENODATA);
		assert_int_equal(kvfs_removexattr(t->fs, f, name, NULL), -ENODATA);
		assert_int_equal(set(t, f, name, "1", XATTR_REPLACE), -ENODATA);
		assert_int_equal(set(t, f, name, "1", XATTR_CREATE), 0);
		assert_int_equal(set(t, f, name, "2", XATTR_CREATE), -EEXIST);
		assert_int_equal(set(t, f, name, "33", XATTR_REPLACE), 0);
		assert_int_equal(get(t, f, name, buf, 1), -ERANGE);
		assert_int_equal(get(t, f, name, buf, sizeof(buf)), 2);
		assert_string_equal(buf, "33");
		/* The size limit, exactly and one over. */
		assert_int_equal(kvfs_setxattr(t->fs, f, name, big, KVFS_XATTR_SIZE_MAX + 1, 0,
					       NULL),
				 -E2BIG);
		assert_int_equal(get(t, f, name, buf, sizeof(buf)), 2);
		assert_int_equal(kvfs_setxattr(t->fs, f, name, big, KVFS_XATTR_SIZE_MAX, 0, NULL),
				 0);
		assert_int_equal(kvfs_getxattr(t->fs, f, name, NULL, 0), KVFS_XATTR_SIZE_MAX);
		assert_int_equal(kvfs_removexattr(t->fs, f, name, NULL), 0);
		assert_int_equal(get(t, f, name, buf, sizeof(buf)), -ENODATA);
		/* Names: 255 bytes with the prefix, not 256. */
		memcpy(name, ns[i], p);
		memset(name + p, 'n', sizeof(name) - p);
		name[KVFS_XATTR_NAME_MAX + 1] = '\0';
		assert_int_equal(set(t, f, name, "v", 0), -ERANGE);
		name[KVFS_XATTR_NAME_MAX] = '\0';
		assert_int_equal(set(t, f, name, "v", 0), 0);
		assert_int_equal(get(t, f, name, buf, sizeof(buf)), 1);
	}
	assert_int_equal(kvfs_listxattr(t->fs, f, NULL, 0), 3 * (KVFS_XATTR_NAME_MAX + 1));
	free(big);
}

/* Split a listxattr buffer into a sorted, comparable string. */
static void names_of(const char *buf, ssize_t n, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		len += (size_t)snprintf(out + len, cap - len, "%s,", buf + i);
}

static void test_list_remove(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f"), g = fst_file_unref(t, ROOT, "g");
	char buf[256], s[256];
	ssize_t n;

	assert_int_equal(kvfs_listxattr(t->fs, f, NULL, 0), 0);
	assert_int_equal(kvfs_listxattr(t->fs, f, buf, sizeof(buf)), 0);
	assert_int_equal(set(t, f, "user.b", "2", 0), 0);
	assert_int_equal(set(t, f, "user.a", "1", 0), 0);
	assert_int_equal(set(t, f, "security.c", "3", 0), 0);
	assert_int_equal(set(t, g, "user.other", "x", 0), 0);
	/* Listed at once (appended, not yet committed: listxattr syncs). */
	n = kvfs_listxattr(t->fs, f, NULL, 0);
	assert_int_equal(n, 7 + 7 + 11);
	assert_int_equal(kvfs_listxattr(t->fs, f, buf, (size_t)n - 1), -ERANGE);
	assert_int_equal(kvfs_listxattr(t->fs, f, buf, sizeof(buf)), n);
	names_of(buf, n, s, sizeof(s));
	assert_string_equal(s, "security.c,user.a,user.b,");

	assert_int_equal(kvfs_removexattr(t->fs, f, "user.a", NULL), 0);
	assert_int_equal(kvfs_removexattr(t->fs, f, "user.a", NULL), -ENODATA);
	assert_int_equal(kvfs_removexattr(t->fs, f, "user.zzz", NULL), -ENODATA);
	assert_int_equal(get(t, f, "user.a", buf, sizeof(buf)), -ENODATA);
	n = kvfs_listxattr(t->fs, f, buf, sizeof(buf));
	names_of(buf, n, s, sizeof(s));
	assert_string_equal(s, "security.c,user.b,");
	n = kvfs_listxattr(t->fs, g, buf, sizeof(buf));
	names_of(buf, n, s, sizeof(s));
	assert_string_equal(s, "user.other,");
	/* Setting after removing works (and a create flag sees it gone). */
	assert_int_equal(set(t, f, "user.a", "again", XATTR_CREATE), 0);
	assert_int_equal(get(t, f, "user.a", buf, sizeof(buf)), 5);
}

static void test_ctime(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f");
	struct stat st0 = fst_stat(t, f), st1;
	struct timespec now;

	do
		kvfs_now(&now);
	while (ts_cmp(now, st0.st_ctim) <= 0);
	assert_int_equal(set(t, f, "user.a", "1", 0), 0);
	st1 = fst_stat(t, f);
	assert_true(ts_cmp(st1.st_ctim, now) >= 0);
	assert_int_equal(ts_cmp(st1.st_mtim, st0.st_mtim), 0);
	st0 = st1;
	do
		kvfs_now(&now);
	while (ts_cmp(now, st0.st_ctim) <= 0);
	assert_int_equal(kvfs_removexattr(t->fs, f, "user.a", NULL), 0);
	assert_true(ts_cmp(fst_stat(t, f).st_ctim, now) >= 0);
	/* A failed change leaves ctime alone. */
	st0 = fst_stat(t, f);
	assert_int_equal(kvfs_removexattr(t->fs, f, "user.a", NULL), -ENODATA);
	assert_int_equal(ts_cmp(fst_stat(t, f).st_ctim, st0.st_ctim), 0);
}

static void test_inline_kept(void **state)
{
	struct fst *t = *state;
	struct kvfs_entry e;
	char buf[32];

	/* Rewriting the inode for ctime keeps a symlink's inline target. */
	assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, "l", "the/target", &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(set(t, e.ino, "trusted.a", "v", 0), 0);
	assert_int_equal(kvfs_readlink(t->fs, e.ino, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "the/target");
}

static void test_persist_and_drop(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f"), held = fst_file(t, ROOT, "held");
	uint8_t lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	struct kv_iter *it;
	char buf[64];
	ssize_t n;

	assert_int_equal(set(t, f, "user.keep", "kept", 0), 0);
	assert_int_equal(set(t, held, "user.h", "held", 0), 0);
	fst_remount(t);
	assert_int_equal(get(t, f, "user.keep", buf, sizeof(buf)), 4);
	assert_string_equal(buf, "kept");
	n = kvfs_listxattr(t->fs, f, buf, sizeof(buf));
	assert_int_equal(n, 10);

	/* Unlinked and unreferenced: its attributes go with it. */
	assert_int_equal(kvfs_unlink(t->fs, ROOT, "f", NULL), 0);
	assert_int_equal(get(t, f, "user.keep", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(kvfs_sync(t->fs), 0);
	assert_int_equal(kv_iter_create(t->fs->db, NULL, &it), 0);
	kv_iter_seek(it, lo, kvfs_key_prefix(lo, KVFS_K_XATTR, f));
	kvfs_key_prefix(hi, KVFS_K_XATTR, f + 1);
	assert_true(!kv_iter_valid(it) || memcmp(kv_iter_key(it, &(size_t){ 0 }), hi, 9) >= 0);
	kv_iter_destroy(it);
	/* (The remount dropped "held"'s kernel reference: a new mount starts
	 * with none, so it is an ordinary file again.) */
	assert_int_equal(get(t, held, "user.h", buf, sizeof(buf)), 4);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fst_fixture_setup, fst_fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(test_set_get), T(test_flags),	      T(test_names_and_limits), T(test_list_remove),
		T(test_ctime),	 T(test_inline_kept), T(test_persist_and_drop), T(test_namespaces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
