// SPDX-License-Identifier: MIT
/*
 * POSIX ACLs: the value format and its rules (fs/acl.c, pure functions) and
 * what the library does with ACLs (fs/xattr.c, fs/ns.c, fs/attr.c): an
 * access ACL sets the mode and is kept only when it says more than the mode;
 * default ACLs only on directories; new inodes inherit the directory's
 * default ACL instead of the umask; chmod rewrites the ACL's mask; all of it
 * survives a remount.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include <cmocka.h>

#include "acl.h"
#include "fs_test_util.h"

#define ROOT KVFS_ROOT_INO
#define UO KVFS_ACL_USER_OBJ
#define U KVFS_ACL_USER
#define GO KVFS_ACL_GROUP_OBJ
#define G KVFS_ACL_GROUP
#define M KVFS_ACL_MASK
#define O KVFS_ACL_OTHER
#define NOID KVFS_ACL_UNDEFINED_ID

struct ent {
	unsigned tag, perm;
	uint32_t id;
};

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v & 0xffff);
	put16(p + 2, v >> 16);
}

/* Encode @n entries into @buf as Linux does; returns the size. */
static size_t acl_build(uint8_t *buf, const struct ent *e, size_t n)
{
	put32(buf, KVFS_ACL_VERSION);
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = buf + KVFS_ACL_HEADER_SIZE + i * KVFS_ACL_ENTRY_SIZE;

		put16(p, e[i].tag);
		put16(p + 2, e[i].perm);
		put32(p + 4, e[i].id);
	}
	return KVFS_ACL_HEADER_SIZE + n * KVFS_ACL_ENTRY_SIZE;
}

#define BUILD(buf, ...)                                     \
	acl_build(buf, (const struct ent[]){ __VA_ARGS__ }, \
		  sizeof((const struct ent[]){ __VA_ARGS__ }) / sizeof(struct ent))

/* Entry @i's perm of an encoded ACL. */
static unsigned perm_at(const uint8_t *acl, size_t i)
{
	const uint8_t *p = acl + KVFS_ACL_HEADER_SIZE + i * KVFS_ACL_ENTRY_SIZE + 2;

	return (unsigned)(p[0] | p[1] << 8);
}

/* ---- the format ------------------------------------------------------- */

static void test_valid(void **state)
{
	uint8_t a[KVFS_ACL_SIZE_MAX + 16];
	size_t n;

	(void)state;
	/* The minimal ACL, a full one, a MASK without named entries. */
	n = BUILD(a, { UO, 6, NOID }, { GO, 4, NOID }, { O, 4, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), 3);
	n = BUILD(a, { UO, 7, NOID }, { U, 4, 5 }, { U, 6, 1000 }, { GO, 5, NOID }, { G, 1, 7 },
		  { G, 7, 8 }, { M, 7, NOID }, { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), 8);
	n = BUILD(a, { UO, 7, NOID }, { GO, 5, NOID }, { M, 5, NOID }, { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), 4);
	/* Empty value and bare header: "no ACL". */
	assert_int_equal(kvfs_acl_valid(a, 0), 0);
	assert_int_equal(kvfs_acl_valid(a, KVFS_ACL_HEADER_SIZE), 0);

	/* Named entry without MASK. */
	n = BUILD(a, { UO, 7, NOID }, { U, 4, 5 }, { GO, 5, NOID }, { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	/* Unsorted and duplicate named entries. */
	n = BUILD(a, { UO, 7, NOID }, { U, 4, 9 }, { U, 4, 5 }, { GO, 5, NOID }, { M, 7, NOID },
		  { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	n = BUILD(a, { UO, 7, NOID }, { GO, 5, NOID }, { G, 4, 5 }, { G, 4, 5 }, { M, 7, NOID },
		  { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	/* Tags out of order, missing, repeated, unknown. */
	n = BUILD(a, { GO, 5, NOID }, { UO, 7, NOID }, { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	n = BUILD(a, { UO, 7, NOID }, { GO, 5, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	n = BUILD(a, { UO, 7, NOID }, { O, 5, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	n = BUILD(a, { UO, 7, NOID }, { UO, 7, NOID }, { GO, 5, NOID }, { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	n = BUILD(a, { UO, 7, NOID }, { GO, 5, NOID }, { O, 0, NOID }, { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	n = BUILD(a, { UO, 7, NOID }, { GO, 5, NOID }, { 0x40, 0, NOID }, { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	n = BUILD(a, { UO, 7, NOID }, { U, 4, 5 }, { GO, 5, NOID }, { O, 0, NOID }, { M, 7, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	/* A permission bit beyond rwx. */
	n = BUILD(a, { UO, 8, NOID }, { GO, 5, NOID }, { O, 0, NOID });
	assert_int_equal(kvfs_acl_valid(a, n), -EINVAL);
	/* Sizes and version. */
	n = BUILD(a, { UO, 6, NOID }, { GO, 4, NOID }, { O, 4, NOID });
	assert_int_equal(kvfs_acl_valid(a, n - 1), -EINVAL);
	assert_int_equal(kvfs_acl_valid(a, 3), -EINVAL);
	a[0] = 1;
	assert_int_equal(kvfs_acl_valid(a, n), -EOPNOTSUPP);
	memset(a, 0, sizeof(a));
	put32(a, KVFS_ACL_VERSION);
	assert_int_equal(kvfs_acl_valid(a, KVFS_ACL_SIZE_MAX + 4), -E2BIG);
}

static void test_equiv_mode(void **state)
{
	uint8_t a[256];
	mode_t mode;
	size_t n;

	(void)state;
	n = BUILD(a, { UO, 7, NOID }, { GO, 5, NOID }, { O, 4, NOID });
	mode = S_IFREG | S_ISGID | 0;
	assert_int_equal(kvfs_acl_equiv_mode(a, n, &mode), 0);
	assert_int_equal(mode, S_IFREG | S_ISGID | 0754);
	/* With a mask, the group class is the mask. */
	n = BUILD(a, { UO, 6, NOID }, { U, 7, 42 }, { GO, 4, NOID }, { M, 6, NOID },
		  { O, 0, NOID });
	mode = S_IFREG | 0777;
	assert_int_equal(kvfs_acl_equiv_mode(a, n, &mode), 1);
	assert_int_equal(mode, S_IFREG | 0660);
	n = BUILD(a, { UO, 6, NOID }, { GO, 4, NOID }, { M, 0, NOID }, { O, 1, NOID });
	mode = S_IFDIR;
	assert_int_equal(kvfs_acl_equiv_mode(a, n, &mode), 1);
	assert_int_equal(mode, S_IFDIR | 0601);
}

static void test_chmod(void **state)
{
	uint8_t a[256];
	size_t n;

	(void)state;
	/* The mask, not GROUP_OBJ, takes the group bits; named entries stay. */
	n = BUILD(a, { UO, 6, NOID }, { U, 7, 42 }, { GO, 4, NOID }, { M, 6, NOID },
		  { O, 0, NOID });
	kvfs_acl_chmod(a, n, S_IFREG | 0715);
	assert_int_equal(kvfs_acl_valid(a, n), 5);
	assert_int_equal(perm_at(a, 0), 7);
	assert_int_equal(perm_at(a, 1), 7);
	assert_int_equal(perm_at(a, 2), 4);
	assert_int_equal(perm_at(a, 3), 1);
	assert_int_equal(perm_at(a, 4), 5);
	/* Without a mask, GROUP_OBJ does. */
	n = BUILD(a, { UO, 6, NOID }, { GO, 4, NOID }, { O, 0, NOID });
	kvfs_acl_chmod(a, n, 0640 | S_ISUID);
	assert_int_equal(perm_at(a, 0), 6);
	assert_int_equal(perm_at(a, 1), 4);
	assert_int_equal(perm_at(a, 2), 0);
}

static void test_create_masq(void **state)
{
	uint8_t a[256];
	mode_t mode;
	size_t n;

	(void)state;
	/* A file (0666) under a default ACL with a named user and mask rwx. */
	n = BUILD(a, { UO, 7, NOID }, { U, 5, 42 }, { GO, 5, NOID }, { M, 7, NOID },
		  { O, 5, NOID });
	mode = S_IFREG | 0666;
	assert_int_equal(kvfs_acl_create_masq(a, n, &mode), 1);
	assert_int_equal(mode, S_IFREG | 0664);
	assert_int_equal(perm_at(a, 0), 6); /* user:: rw- */
	assert_int_equal(perm_at(a, 1), 5); /* named user kept: r-x (masked) */
	assert_int_equal(perm_at(a, 2), 5); /* group:: kept */
	assert_int_equal(perm_at(a, 3), 6); /* mask rw- */
	assert_int_equal(perm_at(a, 4), 4); /* other r-- */
	/* A minimal default ACL: only the mode, cut down by the ACL. */
	n = BUILD(a, { UO, 7, NOID }, { GO, 5, NOID }, { O, 0, NOID });
	mode = S_IFREG | S_ISGID | 0666;
	assert_int_equal(kvfs_acl_create_masq(a, n, &mode), 0);
	assert_int_equal(mode, S_IFREG | S_ISGID | 0640);
	assert_int_equal(perm_at(a, 1), 4); /* group:: r-x & rw- */
}

/* ---- the library -------------------------------------------------------- */

static void set_acl(struct fst *t, uint64_t ino, const char *name, const uint8_t *a, size_t n,
		    int flags, int expect)
{
	assert_int_equal(kvfs_setxattr(t->fs, ino, name, a, n, flags, NULL), expect);
}

/* The stored ACL @name of @ino equals @a (@n bytes), or is absent (n 0). */
static void expect_acl(struct fst *t, uint64_t ino, const char *name, const uint8_t *a, size_t n)
{
	uint8_t back[KVFS_ACL_SIZE_MAX];
	ssize_t got = kvfs_getxattr(t->fs, ino, name, back, sizeof(back));

	if (!n) {
		assert_int_equal(got, -ENODATA);
		return;
	}
	assert_int_equal(got, (ssize_t)n);
	assert_memory_equal(back, a, n);
}

static mode_t perms(struct fst *t, uint64_t ino)
{
	return fst_stat(t, ino).st_mode & 07777;
}

static void test_set_access(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f"), d = fst_mkdir_unref(t, ROOT, "d");
	uint8_t a[256], b[256];
	size_t n, m;
	struct kvfs_entry e;

	/* Named user: stored, and the mode's group bits are the mask. */
	assert_int_equal(perms(t, f), 0644);
	n = BUILD(a, { UO, 6, NOID }, { U, 7, 1234 }, { GO, 4, NOID }, { M, 7, NOID },
		  { O, 0, NOID });
	set_acl(t, f, KVFS_ACL_ACCESS, a, n, 0, 0);
	assert_int_equal(perms(t, f), 0670);
	expect_acl(t, f, KVFS_ACL_ACCESS, a, n);
	/* XATTR_CREATE / XATTR_REPLACE do not apply to ACLs (as Linux). */
	set_acl(t, f, KVFS_ACL_ACCESS, a, n, XATTR_CREATE, 0);
	/* An ACL equal to a mode is the mode alone: the attribute goes. */
	m = BUILD(b, { UO, 7, NOID }, { GO, 5, NOID }, { O, 4, NOID });
	set_acl(t, f, KVFS_ACL_ACCESS, b, m, 0, 0);
	assert_int_equal(perms(t, f), 0754);
	expect_acl(t, f, KVFS_ACL_ACCESS, NULL, 0);
	assert_int_equal(kvfs_listxattr(t->fs, f, NULL, 0), 0);
	/* Removing: the mode stays; removing what is not there is no error. */
	set_acl(t, f, KVFS_ACL_ACCESS, a, n, 0, 0);
	assert_int_equal(kvfs_removexattr(t->fs, f, KVFS_ACL_ACCESS, NULL), 0);
	expect_acl(t, f, KVFS_ACL_ACCESS, NULL, 0);
	assert_int_equal(perms(t, f), 0670);
	assert_int_equal(kvfs_removexattr(t->fs, f, KVFS_ACL_ACCESS, NULL), 0);
	/* A bare header removes too. */
	set_acl(t, f, KVFS_ACL_ACCESS, a, n, 0, 0);
	set_acl(t, f, KVFS_ACL_ACCESS, a, KVFS_ACL_HEADER_SIZE, 0, 0);
	expect_acl(t, f, KVFS_ACL_ACCESS, NULL, 0);
	/* Malformed values change nothing. */
	set_acl(t, f, KVFS_ACL_ACCESS, (const uint8_t *)"\0\1\2", 3, 0, -EINVAL);
	m = BUILD(b, { UO, 7, NOID }, { U, 5, 9 }, { GO, 5, NOID }, { O, 4, NOID });
	set_acl(t, f, KVFS_ACL_ACCESS, b, m, 0, -EINVAL);
	b[0] = 1;
	set_acl(t, f, KVFS_ACL_ACCESS, b, m, 0, -EOPNOTSUPP);
	assert_int_equal(perms(t, f), 0670);
	expect_acl(t, f, KVFS_ACL_ACCESS, NULL, 0);

	/* S_ISGID goes with KVFS_XATTR_ACL_KILL_SGID only. */
	assert_int_equal(kvfs_setattr(t->fs, &t->cr, f, &(struct stat){ .st_mode = 02770 },
				      KVFS_SET_MODE, &(struct stat){ 0 }, NULL),
			 0);
	set_acl(t, f, KVFS_ACL_ACCESS, a, n, 0, 0);
	assert_int_equal(perms(t, f), 02670);
	set_acl(t, f, KVFS_ACL_ACCESS, a, n, KVFS_XATTR_ACL_KILL_SGID, 0);
	assert_int_equal(perms(t, f), 0670);

	/* Default ACLs: directories only (-EACCES); removal elsewhere is 0. */
	set_acl(t, f, KVFS_ACL_DEFAULT, a, n, 0, -EACCES);
	assert_int_equal(kvfs_removexattr(t->fs, f, KVFS_ACL_DEFAULT, NULL), 0);
	set_acl(t, d, KVFS_ACL_DEFAULT, a, n, 0, 0);
	expect_acl(t, d, KVFS_ACL_DEFAULT, a, n);
	assert_int_equal(perms(t, d), 0755); /* a default ACL leaves the mode */
	/* Symlinks have no ACLs. */
	assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, "l", "f", &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	set_acl(t, e.ino, KVFS_ACL_ACCESS, a, n, 0, -EOPNOTSUPP);
	set_acl(t, ROOT, "system.posix_acl_other", a, n, 0, 0); /* plain system.* */

	fst_remount(t);
	expect_acl(t, f, KVFS_ACL_ACCESS, a, n);
	expect_acl(t, d, KVFS_ACL_DEFAULT, a, n);
	assert_int_equal(perms(t, f), 0670);
}

static uint64_t mk(struct fst *t, uint64_t dir, const char *name, mode_t mode)
{
	struct kvfs_entry e;

	if (S_ISDIR(mode))
		assert_int_equal(kvfs_mkdir(t->fs, &t->cr, dir, name, mode & 07777, &e, NULL), 0);
	else
		assert_int_equal(kvfs_mknod(t->fs, &t->cr, dir, name, mode, 0, &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	return e.ino;
}

static void test_inherit(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), plain, f, sub, subf, fifo, cf, min, mf;
	uint8_t def[256], want[256], fwant[256], minacl[64];
	size_t n, w, fw, mn;
	struct kvfs_entry e;

	/* Without a default ACL the umask (022) applies. */
	plain = mk(t, ROOT, "plain", S_IFREG | 0666);
	assert_int_equal(perms(t, plain), 0644);
	expect_acl(t, plain, KVFS_ACL_ACCESS, NULL, 0);

	n = BUILD(def, { UO, 7, NOID }, { U, 5, 42 }, { GO, 5, NOID }, { M, 7, NOID },
		  { O, 5, NOID });
	set_acl(t, d, KVFS_ACL_DEFAULT, def, n, 0, 0);
	/* A file: the default ACL cut down by 0666, the umask ignored. */
	f = mk(t, d, "f", S_IFREG | 0666);
	assert_int_equal(perms(t, f), 0664);
	fw = BUILD(fwant, { UO, 6, NOID }, { U, 5, 42 }, { GO, 5, NOID }, { M, 6, NOID },
		   { O, 4, NOID });
	expect_acl(t, f, KVFS_ACL_ACCESS, fwant, fw);
	expect_acl(t, f, KVFS_ACL_DEFAULT, NULL, 0);
	/* create (open) and mknod of a fifo inherit the same way. */
	assert_int_equal(kvfs_create(t->fs, &t->cr, d, "c", 0600, O_RDWR, &e, NULL), 0);
	cf = e.ino;
	kvfs_release(t->fs, cf);
	kvfs_forget(t->fs, cf, 1);
	assert_int_equal(perms(t, cf), 0600);
	w = BUILD(want, { UO, 6, NOID }, { U, 5, 42 }, { GO, 5, NOID }, { M, 0, NOID },
		  { O, 0, NOID });
	expect_acl(t, cf, KVFS_ACL_ACCESS, want, w);
	fifo = mk(t, d, "p", S_IFIFO | 0644);
	assert_int_equal(perms(t, fifo), 0644);
	/* A directory gets the default ACL as both. */
	sub = mk(t, d, "sub", S_IFDIR | 0777);
	assert_int_equal(perms(t, sub), 0775);
	expect_acl(t, sub, KVFS_ACL_ACCESS, def, n);
	expect_acl(t, sub, KVFS_ACL_DEFAULT, def, n);
	/* ... and passes it on. */
	subf = mk(t, sub, "g", S_IFREG | 0640);
	assert_int_equal(perms(t, subf), 0640);
	w = BUILD(want, { UO, 6, NOID }, { U, 5, 42 }, { GO, 5, NOID }, { M, 4, NOID },
		  { O, 0, NOID });
	expect_acl(t, subf, KVFS_ACL_ACCESS, want, w);
	/* Symlinks: nothing inherited. */
	assert_int_equal(kvfs_symlink(t->fs, &t->cr, d, "l", "f", &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(kvfs_listxattr(t->fs, e.ino, NULL, 0), 0);
	/* A minimal default ACL is a mode: no access ACL, other bits 0 where
	 * the umask would have left r--. */
	min = mk(t, ROOT, "min", S_IFDIR | 0755);
	mn = BUILD(minacl, { UO, 7, NOID }, { GO, 5, NOID }, { O, 0, NOID });
	set_acl(t, min, KVFS_ACL_DEFAULT, minacl, mn, 0, 0);
	mf = mk(t, min, "f", S_IFREG | 0666);
	assert_int_equal(perms(t, mf), 0640);
	expect_acl(t, mf, KVFS_ACL_ACCESS, NULL, 0);

	/* Removing the default ACL: the umask again. */
	assert_int_equal(kvfs_removexattr(t->fs, d, KVFS_ACL_DEFAULT, NULL), 0);
	assert_int_equal(perms(t, mk(t, d, "after", S_IFREG | 0666)), 0644);

	fst_remount(t);
	expect_acl(t, sub, KVFS_ACL_DEFAULT, def, n);
	assert_int_equal(perms(t, mk(t, sub, "late", S_IFREG | 0666)), 0664);
	expect_acl(t, f, KVFS_ACL_ACCESS, fwant, fw);
	assert_int_equal(perms(t, f), 0664);
}

static void test_chmod_updates_acl(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f"), g = fst_file_unref(t, ROOT, "g");
	uint8_t a[256], want[256];
	struct stat out;
	size_t n, w;

	n = BUILD(a, { UO, 6, NOID }, { U, 7, 1234 }, { GO, 4, NOID }, { M, 7, NOID },
		  { O, 0, NOID });
	set_acl(t, f, KVFS_ACL_ACCESS, a, n, 0, 0);
	assert_int_equal(kvfs_setattr(t->fs, &t->cr, f, &(struct stat){ .st_mode = 0741 },
				      KVFS_SET_MODE, &out, NULL),
			 0);
	assert_int_equal(out.st_mode & 07777, 0741);
	w = BUILD(want, { UO, 7, NOID }, { U, 7, 1234 }, { GO, 4, NOID }, { M, 4, NOID },
		  { O, 1, NOID });
	expect_acl(t, f, KVFS_ACL_ACCESS, want, w);
	/* Other changes leave it alone. */
	assert_int_equal(kvfs_setattr(t->fs, &t->cr, f, &(struct stat){ .st_uid = 7 }, KVFS_SET_UID,
				      &out, NULL),
			 0);
	expect_acl(t, f, KVFS_ACL_ACCESS, want, w);
	/* A file without an ACL gets none from chmod. */
	assert_int_equal(kvfs_setxattr(t->fs, g, "user.x", "1", 1, 0, NULL), 0);
	assert_int_equal(kvfs_setattr(t->fs, &t->cr, g, &(struct stat){ .st_mode = 0600 },
				      KVFS_SET_MODE, &out, NULL),
			 0);
	expect_acl(t, g, KVFS_ACL_ACCESS, NULL, 0);
	fst_remount(t);
	expect_acl(t, f, KVFS_ACL_ACCESS, want, w);
	assert_int_equal(perms(t, f), 0741);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fst_fixture_setup, fst_fixture_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid), cmocka_unit_test(test_equiv_mode),
		cmocka_unit_test(test_chmod), cmocka_unit_test(test_create_masq),
		T(test_set_access),	      T(test_inherit),
		T(test_chmod_updates_acl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
