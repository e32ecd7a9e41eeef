// SPDX-License-Identifier: MIT
/*
 * Namespace operations (fs/ns.c) through the library, without FUSE: lookup,
 * getattr, readlink, mknod, mkdir, symlink, create, link, unlink, rmdir and
 * rename, with every error code they give, the link counts, entry counts,
 * parents and timestamps they maintain, and a remount after each kind of
 * change to check that it persisted.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include <cmocka.h>

#include "fs_test_util.h"

#define ROOT KVFS_ROOT_INO

/* The ino @name resolves to in @parent, or a negative errno. */
static int64_t look(struct fst *t, uint64_t parent, const char *name)
{
	struct kvfs_entry e;
	int err = kvfs_lookup(t->fs, parent, name, &e);

	if (err)
		return err;
	kvfs_forget(t->fs, e.ino, 1);
	return (int64_t)e.ino;
}

static bool exists(struct fst *t, uint64_t ino)
{
	struct stat st;

	return kvfs_getattr(t->fs, ino, &st) == 0;
}

static bool has_orphan(struct fst *t, uint64_t ino)
{
	uint8_t key[KVFS_KEY_MAX], v;

	return kv_get(t->fs->db, KV_READ_LATEST, key, kvfs_key_orphan(key, ino), &v, 0) == 0;
}

static struct kvfs_inode inode(struct fst *t, uint64_t ino)
{
	struct kvfs_inode in;

	assert_int_equal(kvfs_inode_read(t->fs, ino, &in, NULL, 0, NULL), 0);
	return in;
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	return a.tv_nsec < b.tv_nsec ? -1 : a.tv_nsec > b.tv_nsec;
}

/* A time strictly after @ts (the clock has moved past it). */
static struct timespec after(struct timespec ts)
{
	struct timespec now;

	do
		kvfs_now(&now);
	while (ts_cmp(now, ts) <= 0);
	return now;
}

/* Forge a mode (setattr is not this file's business). */
static void set_mode(struct fst *t, uint64_t ino, mode_t mode)
{
	struct kvfs_inode in = inode(t, ino);
	struct kv_batch *b = kvfs_batch();

	in.mode = mode;
	assert_int_equal(kvfs_batch_put_inode(b, ino, &in, NULL, 0), 0);
	assert_int_equal(kvfs_commit(t->fs, b, NULL), 0);
}

static int64_t used(struct fst *t)
{
	return atomic_load(&t->fs->inodes_used);
}

/* ---- creating ------------------------------------------------------------ */

static void test_mknod_types(void **state)
{
	struct fst *t = *state;
	static const mode_t types[] = { S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK };
	struct kvfs_entry e;
	int64_t before = used(t);

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char name[16];
		struct stat st;

		snprintf(name, sizeof(name), "n%zu", i);
		assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, name, types[i] | 0666,
					    makedev(8, 1), &e, NULL),
				 0);
		assert_true(kvfs_node_busy(t->fs, e.ino)); /* the entry's lookup ref */
		kvfs_forget(t->fs, e.ino, 1);
		assert_false(kvfs_node_busy(t->fs, e.ino));
		st = fst_stat(t, e.ino);
		assert_int_equal(st.st_mode, types[i] | 0644); /* umask 022 */
		assert_int_equal(st.st_nlink, 1);
		assert_int_equal(st.st_uid, 1000);
		assert_int_equal(st.st_gid, 1000);
		assert_int_equal(st.st_size, 0);
		assert_int_equal(st.st_rdev,
				 S_ISCHR(types[i]) || S_ISBLK(types[i]) ? makedev(8, 1) : 0);
		assert_int_equal(e.attr.st_mode, st.st_mode);
		assert_int_equal(e.generation, 1);
		assert_int_equal(look(t, ROOT, name), (int64_t)e.ino);
	}
	assert_int_equal(used(t), before + 5);
	/* Type 0 is a regular file, as mknod(2) has it. */
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, "zero", 0644, 0, &e, NULL), 0);
	assert_true(S_ISREG(e.attr.st_mode));
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, "d", S_IFDIR | 0755, 0, &e, NULL), -EPERM);
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, "l", S_IFLNK | 0777, 0, &e, NULL),
			 -EINVAL);
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, "x", 0170000 | 0644, 0, &e, NULL),
			 -EINVAL);
	assert_int_equal(look(t, ROOT, "d"), -ENOENT);
	assert_int_equal(inode(t, ROOT).nentries, 1 + 6); /* lost+found and ours */
}

static void test_names(void **state)
{
	struct fst *t = *state;
	char longname[KVFS_NAME_MAX + 2];
	struct kvfs_entry e;
	uint64_t f = fst_file_unref(t, ROOT, "f");

	memset(longname, 'a', sizeof(longname));
	longname[KVFS_NAME_MAX + 1] = '\0';
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, ROOT, longname, 0755, &e, NULL), -ENAMETOOLONG);
	assert_int_equal(kvfs_lookup(t->fs, ROOT, longname, &e), -ENAMETOOLONG);
	assert_int_equal(kvfs_unlink(t->fs, ROOT, longname, NULL), -ENAMETOOLONG);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, longname, 0, NULL), -ENAMETOOLONG);
	longname[KVFS_NAME_MAX] = '\0'; /* 255 bytes: fine */
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, longname, S_IFREG | 0644, 0, &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(look(t, ROOT, longname), (int64_t)e.ino);

	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, ROOT, "", 0755, &e, NULL), -ENOENT);
	assert_int_equal(kvfs_lookup(t->fs, ROOT, "", &e), -ENOENT);
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, ROOT, "a/b", 0755, &e, NULL), -EINVAL);
	assert_int_equal(kvfs_create(t->fs, &t->cr, ROOT, "a/b", 0644, 0, &e, NULL), -EINVAL);
	for (int i = 0; i < 2; i++) {
		const char *dot = i ? ".." : ".";

		assert_int_equal(kvfs_mkdir(t->fs, &t->cr, ROOT, dot, 0755, &e, NULL), -EEXIST);
		assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, dot, S_IFREG, 0, &e, NULL),
				 -EEXIST);
		assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, dot, "x", &e, NULL), -EEXIST);
		assert_int_equal(kvfs_create(t->fs, &t->cr, ROOT, dot, 0644, 0, &e, NULL), -EEXIST);
		assert_int_equal(kvfs_link(t->fs, f, ROOT, dot, &e, NULL), -EEXIST);
	}
	/* Creating where the parent is not a directory, or does not exist. */
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, f, "x", 0755, &e, NULL), -ENOTDIR);
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, f, "x", S_IFREG, 0, &e, NULL), -ENOTDIR);
	assert_int_equal(kvfs_lookup(t->fs, f, "x", &e), -ENOTDIR);
	assert_int_equal(kvfs_lookup(t->fs, f, "..", &e), -ENOTDIR);
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, 999999, "x", 0755, &e, NULL), -ENOENT);
	assert_int_equal(kvfs_lookup(t->fs, 999999, "x", &e), -ENOENT);
	assert_int_equal(kvfs_getattr(t->fs, 999999, &e.attr), -ENOENT);
	assert_int_equal(kvfs_lookup(t->fs, ROOT, "nope", &e), -ENOENT);
	/* An existing name. */
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, ROOT, "f", 0755, &e, NULL), -EEXIST);
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, ROOT, "f", S_IFIFO, 0, &e, NULL), -EEXIST);
	assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, "f", "x", &e, NULL), -EEXIST);
	assert_int_equal(kvfs_create(t->fs, &t->cr, ROOT, "f", 0644, 0, &e, NULL), -EEXIST);
	assert_int_equal(kvfs_create(t->fs, &t->cr, ROOT, "lost+found", 0644, 0, &e, NULL),
			 -EEXIST);
}

static void test_lookup_dots(void **state)
{
	struct fst *t = *state;
	uint64_t a = fst_mkdir_unref(t, ROOT, "a"), b = fst_mkdir_unref(t, a, "b");

	assert_int_equal(look(t, ROOT, "."), ROOT);
	assert_int_equal(look(t, ROOT, ".."), ROOT);
	assert_int_equal(look(t, a, "."), a);
	assert_int_equal(look(t, a, ".."), ROOT);
	assert_int_equal(look(t, b, ".."), a);
	assert_int_equal(look(t, look(t, ROOT, "lost+found"), ".."), ROOT);
	assert_int_equal(look(t, a, "b"), b);
}

static void test_umask_and_setgid(void **state)
{
	struct fst *t = *state;
	struct kvfs_cred cr = t->cr;
	struct kvfs_entry e;
	uint64_t sg;

	/* umask 0: the kernel already applied it; the mode is kept as given. */
	cr.umask = 0;
	assert_int_equal(kvfs_mknod(t->fs, &cr, ROOT, "m0", S_IFREG | 0666, 0, &e, NULL), 0);
	assert_int_equal(e.attr.st_mode & 07777, 0666);
	cr.umask = 077;
	assert_int_equal(kvfs_mkdir(t->fs, &cr, ROOT, "m77", 0777, &e, NULL), 0);
	assert_int_equal(e.attr.st_mode, S_IFDIR | 0700);
	assert_int_equal(kvfs_create(t->fs, &cr, ROOT, "c77", 0666, 0, &e, NULL), 0);
	assert_int_equal(e.attr.st_mode, S_IFREG | 0600);
	/* Symlinks are 0777 whatever the umask. */
	assert_int_equal(kvfs_symlink(t->fs, &cr, ROOT, "s77", "t", &e, NULL), 0);
	assert_int_equal(e.attr.st_mode, S_IFLNK | 0777);
	/* Sticky and setuid bits of mkdir/mknod modes survive. */
	cr.umask = 0;
	assert_int_equal(kvfs_mkdir(t->fs, &cr, ROOT, "sticky", 01777, &e, NULL), 0);
	assert_int_equal(e.attr.st_mode, S_IFDIR | 01777);

	/* A setgid directory passes on its group, and the bit to subdirectories. */
	cr = (struct kvfs_cred){ .uid = 1000, .gid = 1000 };
	assert_int_equal(kvfs_mkdir(t->fs, &cr, ROOT, "sg", 02775, &e, NULL), 0);
	sg = e.ino;
	/* mkdir(2) drops S_ISGID from the mode it is given, as Linux does. */
	assert_int_equal(e.attr.st_mode, S_IFDIR | 0775);
	assert_int_equal(e.attr.st_gid, 1000);
	set_mode(t, sg, S_IFDIR | 02775); /* chmod g+s */
	cr = (struct kvfs_cred){ .uid = 2000, .gid = 3000 };
	assert_int_equal(kvfs_mkdir(t->fs, &cr, sg, "sub", 0755, &e, NULL), 0);
	assert_int_equal(e.attr.st_gid, 1000);
	assert_int_equal(e.attr.st_uid, 2000);
	assert_int_equal(e.attr.st_mode, S_IFDIR | 02755);
	assert_int_equal(kvfs_mknod(t->fs, &cr, sg, "f", S_IFREG | 0644, 0, &e, NULL), 0);
	assert_int_equal(e.attr.st_gid, 1000);
	assert_int_equal(e.attr.st_mode, S_IFREG | 0644);
	assert_int_equal(kvfs_symlink(t->fs, &cr, sg, "l", "f", &e, NULL), 0);
	assert_int_equal(e.attr.st_gid, 1000);
	/* Without setgid: the caller's group. */
	assert_int_equal(kvfs_mknod(t->fs, &cr, ROOT, "g", S_IFREG | 0644, 0, &e, NULL), 0);
	assert_int_equal(e.attr.st_gid, 3000);
}

static void test_mkdir_counts_and_times(void **state)
{
	struct fst *t = *state;
	struct kvfs_inode r0 = inode(t, ROOT), r1, a;
	struct timespec t0 = after(r0.mtime);
	uint64_t d = fst_mkdir_unref(t, ROOT, "d");

	r1 = inode(t, ROOT);
	assert_int_equal(r1.nlink, r0.nlink + 1);
	assert_int_equal(r1.nentries, r0.nentries + 1);
	assert_true(ts_cmp(r1.mtime, t0) >= 0);
	assert_true(ts_cmp(r1.ctime, t0) >= 0);
	a = inode(t, d);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(a.nentries, 0);
	assert_int_equal(a.parent, ROOT);
	assert_true(ts_cmp(a.btime, t0) >= 0);
	assert_int_equal(ts_cmp(a.mtime, a.ctime), 0);
	/* A file adds an entry, not a link. */
	fst_file_unref(t, d, "f");
	a = inode(t, d);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(a.nentries, 1);
	fst_mkdir_unref(t, d, "s");
	a = inode(t, d);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(a.nentries, 2);
	assert_int_equal(fst_stat(t, d).st_nlink, 3);
}

static void test_symlink(void **state)
{
	struct fst *t = *state;
	char target[KVFS_SYMLINK_MAX + 2], buf[KVFS_SYMLINK_MAX + 1];
	struct kvfs_entry e;
	struct kvfs_inode in;
	uint64_t f = fst_file_unref(t, ROOT, "f");

	assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, "s", "some/where", &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_true(S_ISLNK(e.attr.st_mode));
	assert_int_equal(e.attr.st_size, 10);
	in = inode(t, e.ino);
	assert_true(in.flags & KVFS_IF_INLINE);
	assert_int_equal(kvfs_readlink(t->fs, e.ino, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "some/where");
	/* A short buffer gets the start, as readlink(2). */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(kvfs_readlink(t->fs, e.ino, buf, 4), 10);
	assert_memory_equal(buf, "some", 4);
	assert_int_equal(buf[4], 'x');
	assert_int_equal(kvfs_readlink(t->fs, f, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(kvfs_readlink(t->fs, ROOT, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(kvfs_readlink(t->fs, 999999, buf, sizeof(buf)), -ENOENT);

	memset(target, 'p', sizeof(target));
	target[KVFS_SYMLINK_MAX + 1] = '\0';
	assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, "long", target, &e, NULL),
			 -ENAMETOOLONG);
	target[KVFS_SYMLINK_MAX] = '\0';
	assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, "long", target, &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(e.attr.st_size, KVFS_SYMLINK_MAX);
	assert_int_equal(kvfs_symlink(t->fs, &t->cr, ROOT, "empty", "", &e, NULL), -ENOENT);

	fst_remount(t);
	assert_int_equal(kvfs_readlink(t->fs, e.ino, buf, sizeof(buf)), KVFS_SYMLINK_MAX);
	assert_memory_equal(buf, target, KVFS_SYMLINK_MAX);
	assert_int_equal(kvfs_readlink(t->fs, look(t, ROOT, "s"), buf, sizeof(buf)), 10);
	assert_string_equal(buf, "some/where");
}

static void test_create(void **state)
{
	struct fst *t = *state;
	struct kvfs_entry e;
	int64_t before = used(t);

	assert_int_equal(kvfs_create(t->fs, &t->cr, ROOT, "c", 0640, O_WRONLY, &e, NULL), 0);
	assert_int_equal(e.attr.st_mode, S_IFREG | 0640);
	assert_int_equal(e.attr.st_nlink, 1);
	assert_int_equal(used(t), before + 1);
	/* One lookup reference and one open: a forget leaves it open. */
	kvfs_forget(t->fs, e.ino, 1);
	assert_true(kvfs_node_busy(t->fs, e.ino));
	kvfs_node_unref(t->fs, e.ino, 0, 1); /* kvfs_release's reference */
	assert_false(kvfs_node_busy(t->fs, e.ino));
	assert_int_equal(kvfs_create(t->fs, &t->cr, ROOT, "c", 0640, O_WRONLY, &e, NULL), -EEXIST);
	assert_int_equal(used(t), before + 1);
}

/* A done callback: counts calls and keeps the status. */
struct donec {
	int calls, status;
};

static void done_fn(void *arg, int status)
{
	struct donec *d = arg;

	d->calls++;
	d->status = status;
}

static void test_async_done(void **state)
{
	struct fst *t = *state;
	struct donec dc = { 0 };
	struct kvfs_done done = { done_fn, &dc };
	struct kvfs_entry e;
	int err;

	err = kvfs_mkdir(t->fs, &t->cr, ROOT, "d", 0755, &e, &done);
	assert_int_equal(err, KVFS_PENDING);
	assert_int_equal(kvfs_sync(t->fs), 0);
	assert_int_equal(dc.calls, 1);
	assert_int_equal(dc.status, 0);
	assert_int_equal(look(t, ROOT, "d"), (int64_t)e.ino);
	/* A failure is returned, not called back. */
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, ROOT, "d", 0755, &e, &done), -EEXIST);
	assert_int_equal(kvfs_sync(t->fs), 0);
	assert_int_equal(dc.calls, 1);
	assert_int_equal(kvfs_rmdir(t->fs, ROOT, "d", &done), KVFS_PENDING);
	assert_int_equal(kvfs_sync(t->fs), 0);
	assert_int_equal(dc.calls, 2);
	assert_int_equal(look(t, ROOT, "d"), -ENOENT);
}

/* ---- links and removal -------------------------------------------------- */

static void test_link(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), f = fst_file_unref(t, ROOT, "f"),
		 sub = fst_mkdir_unref(t, d, "sub");
	struct kvfs_inode before = inode(t, f), in, pd;
	struct timespec t0 = after(before.ctime);
	struct kvfs_entry e;

	assert_int_equal(kvfs_link(t->fs, f, d, "g", &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(e.ino, f);
	assert_int_equal(e.attr.st_nlink, 2);
	in = inode(t, f);
	assert_int_equal(in.nlink, 2);
	assert_true(ts_cmp(in.ctime, t0) >= 0);
	assert_int_equal(ts_cmp(in.mtime, before.mtime), 0);
	pd = inode(t, d);
	assert_int_equal(pd.nentries, 2);
	assert_int_equal(pd.nlink, 3);
	assert_true(ts_cmp(pd.mtime, t0) >= 0);
	assert_int_equal(look(t, d, "g"), f);

	assert_int_equal(kvfs_link(t->fs, f, d, "g", &e, NULL), -EEXIST);
	assert_int_equal(kvfs_link(t->fs, f, d, "sub", &e, NULL), -EEXIST);
	assert_int_equal(kvfs_link(t->fs, d, ROOT, "d2", &e, NULL), -EPERM);
	assert_int_equal(kvfs_link(t->fs, sub, d, "x", &e, NULL), -EPERM);
	assert_int_equal(kvfs_link(t->fs, f, f, "x", &e, NULL), -ENOTDIR);
	assert_int_equal(kvfs_link(t->fs, f, 999999, "x", &e, NULL), -ENOENT);
	assert_int_equal(kvfs_link(t->fs, 999999, d, "x", &e, NULL), -ENOENT);
	assert_int_equal(kvfs_link(t->fs, f, d, "", &e, NULL), -ENOENT);

	/* Removing one name keeps the inode for the other. */
	assert_int_equal(kvfs_unlink(t->fs, ROOT, "f", NULL), 0);
	assert_int_equal(inode(t, f).nlink, 1);
	fst_remount(t);
	assert_int_equal(fst_stat(t, f).st_nlink, 1);
	assert_int_equal(look(t, d, "g"), f);
	assert_int_equal(look(t, ROOT, "f"), -ENOENT);
	/* A file whose last name is gone (still open) cannot get a new one. */
	kvfs_node_ref(t->fs, f, 0, 1);
	assert_int_equal(kvfs_unlink(t->fs, d, "g", NULL), 0);
	assert_int_equal(kvfs_link(t->fs, f, d, "again", &e, NULL), -ENOENT);
	kvfs_node_unref(t->fs, f, 0, 1);
	assert_false(exists(t, f));
}

static void test_link_max(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f");
	struct kvfs_inode in = inode(t, f);
	struct kv_batch *b = kvfs_batch();
	struct kvfs_entry e;

	/* Forge a count at the limit rather than make 65000 names. */
	in.nlink = 65000;
	assert_int_equal(kvfs_batch_put_inode(b, f, &in, NULL, 0), 0);
	assert_int_equal(kvfs_commit(t->fs, b, NULL), 0);
	assert_int_equal(kvfs_link(t->fs, f, ROOT, "g", &e, NULL), -EMLINK);
	in.nlink = 64999;
	b = kvfs_batch();
	assert_int_equal(kvfs_batch_put_inode(b, f, &in, NULL, 0), 0);
	assert_int_equal(kvfs_commit(t->fs, b, NULL), 0);
	assert_int_equal(kvfs_link(t->fs, f, ROOT, "g", &e, NULL), 0);
	kvfs_forget(t->fs, f, 1);
}

static void test_unlink(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), f = fst_file_unref(t, d, "f");
	struct kvfs_inode before = inode(t, d), after_in;
	struct timespec t0 = after(before.mtime);
	int64_t n = used(t);

	assert_int_equal(kvfs_unlink(t->fs, d, "nope", NULL), -ENOENT);
	assert_int_equal(kvfs_unlink(t->fs, ROOT, "d", NULL), -EISDIR);
	assert_int_equal(kvfs_unlink(t->fs, d, ".", NULL), -EISDIR);
	assert_int_equal(kvfs_unlink(t->fs, d, "..", NULL), -EISDIR);
	assert_int_equal(kvfs_unlink(t->fs, f, "x", NULL), -ENOTDIR);
	assert_int_equal(kvfs_unlink(t->fs, 999999, "x", NULL), -ENOENT);
	assert_int_equal(kvfs_unlink(t->fs, d, "", NULL), -ENOENT);

	assert_int_equal(kvfs_unlink(t->fs, d, "f", NULL), 0);
	assert_false(exists(t, f)); /* nothing referred to it: deleted at once */
	assert_false(has_orphan(t, f));
	assert_int_equal(used(t), n - 1);
	assert_int_equal(look(t, d, "f"), -ENOENT);
	after_in = inode(t, d);
	assert_int_equal(after_in.nentries, 0);
	assert_int_equal(after_in.nlink, 2);
	assert_true(ts_cmp(after_in.mtime, t0) >= 0);
	assert_true(ts_cmp(after_in.ctime, t0) >= 0);
	assert_int_equal(kvfs_unlink(t->fs, d, "f", NULL), -ENOENT);
	fst_remount(t);
	assert_int_equal(look(t, d, "f"), -ENOENT);
	assert_false(exists(t, f));
	assert_int_equal(inode(t, d).nentries, 0);
}

static void test_unlink_referenced(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file(t, ROOT, "f"); /* lookup reference kept */
	struct kvfs_inode before = inode(t, f), in;
	struct timespec t0 = after(before.ctime);
	struct kvfs_entry e;
	int64_t n = used(t);

	assert_int_equal(kvfs_unlink(t->fs, ROOT, "f", NULL), 0);
	assert_true(exists(t, f));
	assert_true(has_orphan(t, f));
	in = inode(t, f);
	assert_int_equal(in.nlink, 0);
	assert_true(ts_cmp(in.ctime, t0) >= 0);
	assert_int_equal(fst_stat(t, f).st_nlink, 0);
	assert_int_equal(used(t), n);
	assert_int_equal(kvfs_lookup(t->fs, ROOT, "f", &e), -ENOENT);
	/* The name is free again. */
	assert_int_equal(fst_file_unref(t, ROOT, "f") != f, 1);
	kvfs_forget(t->fs, f, 1);
	assert_false(exists(t, f));
	assert_false(has_orphan(t, f));
	assert_int_equal(used(t), n);
}

static void test_rmdir(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), e1 = fst_mkdir_unref(t, d, "e"),
		 f = fst_file_unref(t, d, "f");
	struct kvfs_inode r0 = inode(t, ROOT), r1;
	int64_t n = used(t);

	assert_int_equal(kvfs_rmdir(t->fs, ROOT, "d", NULL), -ENOTEMPTY);
	assert_int_equal(kvfs_rmdir(t->fs, d, "f", NULL), -ENOTDIR);
	assert_int_equal(kvfs_rmdir(t->fs, d, ".", NULL), -EINVAL);
	assert_int_equal(kvfs_rmdir(t->fs, d, "..", NULL), -ENOTEMPTY);
	assert_int_equal(kvfs_rmdir(t->fs, d, "nope", NULL), -ENOENT);
	assert_int_equal(kvfs_rmdir(t->fs, f, "x", NULL), -ENOTDIR);
	assert_int_equal(kvfs_rmdir(t->fs, d, "", NULL), -ENOENT);

	assert_int_equal(kvfs_rmdir(t->fs, d, "e", NULL), 0);
	assert_false(exists(t, e1));
	assert_int_equal(inode(t, d).nlink, 2);
	assert_int_equal(inode(t, d).nentries, 1);
	assert_int_equal(kvfs_rmdir(t->fs, ROOT, "d", NULL), -ENOTEMPTY);
	assert_int_equal(kvfs_unlink(t->fs, d, "f", NULL), 0);
	assert_int_equal(kvfs_rmdir(t->fs, ROOT, "d", NULL), 0);
	assert_false(exists(t, d));
	r1 = inode(t, ROOT);
	assert_int_equal(r1.nlink, r0.nlink - 1);
	assert_int_equal(r1.nentries, r0.nentries - 1);
	assert_int_equal(used(t), n - 3);
	fst_remount(t);
	assert_int_equal(look(t, ROOT, "d"), -ENOENT);
	assert_int_equal(inode(t, ROOT).nlink, r0.nlink - 1);
}

static void test_rmdir_referenced(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir(t, ROOT, "d"); /* the kernel keeps its reference */
	struct kvfs_entry e;
	struct stat st;

	assert_int_equal(kvfs_rmdir(t->fs, ROOT, "d", NULL), 0);
	assert_true(has_orphan(t, d));
	st = fst_stat(t, d);
	assert_int_equal(st.st_nlink, 0);
	/* Nothing can be created in a removed directory. */
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, d, "x", S_IFREG, 0, &e, NULL), -ENOENT);
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, d, "x", 0755, &e, NULL), -ENOENT);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "lost+found", d, "x", 0, NULL), -ENOENT);
	kvfs_forget(t->fs, d, 1);
	assert_false(exists(t, d));
	assert_false(has_orphan(t, d));
}

/* ---- rename ------------------------------------------------------------- */

static void test_rename_file(void **state)
{
	struct fst *t = *state;
	uint64_t a = fst_mkdir_unref(t, ROOT, "a"), b = fst_mkdir_unref(t, ROOT, "b"),
		 f = fst_file_unref(t, a, "f");
	struct kvfs_inode fin = inode(t, f);
	struct timespec t0 = after(fin.ctime);

	/* Within one directory. */
	assert_int_equal(kvfs_rename(t->fs, a, "f", a, "g", 0, NULL), 0);
	assert_int_equal(look(t, a, "f"), -ENOENT);
	assert_int_equal(look(t, a, "g"), f);
	assert_int_equal(inode(t, a).nentries, 1);
	assert_true(ts_cmp(inode(t, f).ctime, t0) >= 0);
	assert_true(ts_cmp(inode(t, a).mtime, t0) >= 0);
	/* Across directories. */
	t0 = after(inode(t, b).mtime);
	assert_int_equal(kvfs_rename(t->fs, a, "g", b, "h", 0, NULL), 0);
	assert_int_equal(look(t, a, "g"), -ENOENT);
	assert_int_equal(look(t, b, "h"), f);
	assert_int_equal(inode(t, a).nentries, 0);
	assert_int_equal(inode(t, b).nentries, 1);
	assert_int_equal(inode(t, a).nlink, 2);
	assert_int_equal(inode(t, b).nlink, 2);
	assert_true(ts_cmp(inode(t, a).mtime, t0) >= 0);
	assert_true(ts_cmp(inode(t, b).mtime, t0) >= 0);
	assert_int_equal(inode(t, f).nlink, 1);
	fst_remount(t);
	assert_int_equal(look(t, b, "h"), f);
	assert_int_equal(look(t, a, "g"), -ENOENT);

	assert_int_equal(kvfs_rename(t->fs, a, "nope", b, "x", 0, NULL), -ENOENT);
	assert_int_equal(kvfs_rename(t->fs, 999999, "x", b, "x", 0, NULL), -ENOENT);
	assert_int_equal(kvfs_rename(t->fs, b, "h", 999999, "x", 0, NULL), -ENOENT);
	assert_int_equal(kvfs_rename(t->fs, b, "h", f, "x", 0, NULL), -ENOTDIR);
	assert_int_equal(kvfs_rename(t->fs, f, "x", b, "x", 0, NULL), -ENOTDIR);
	assert_int_equal(kvfs_rename(t->fs, b, "", b, "x", 0, NULL), -ENOENT);
	assert_int_equal(kvfs_rename(t->fs, b, "h", b, "", 0, NULL), -ENOENT);
	assert_int_equal(kvfs_rename(t->fs, b, "h", b, "a/b", 0, NULL), -EINVAL);
}

static void test_rename_replace(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), f = fst_file_unref(t, ROOT, "f"),
		 g = fst_file_unref(t, d, "g");
	uint64_t held = fst_file(t, ROOT, "held"); /* referenced */
	uint64_t e1 = fst_mkdir_unref(t, ROOT, "e1"), e2 = fst_mkdir_unref(t, d, "e2"),
		 full = fst_mkdir_unref(t, ROOT, "full");
	struct kvfs_inode gin = inode(t, g), r0;
	struct timespec t0 = after(gin.ctime);
	int64_t n;

	fst_file_unref(t, full, "x");
	n = used(t);
	/* A file replaces a file: the old one is deleted (nothing refers to it). */
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", d, "g", 0, NULL), 0);
	assert_int_equal(look(t, d, "g"), f);
	assert_false(exists(t, g));
	assert_int_equal(used(t), n - 1);
	assert_int_equal(inode(t, d).nentries, 2);
	/* ... or kept as an orphan while referenced. */
	assert_int_equal(kvfs_rename(t->fs, d, "g", ROOT, "held", 0, NULL), 0);
	assert_true(exists(t, held));
	assert_true(has_orphan(t, held));
	assert_int_equal(inode(t, held).nlink, 0);
	assert_true(ts_cmp(inode(t, held).ctime, t0) >= 0);
	kvfs_forget(t->fs, held, 1);
	assert_false(exists(t, held));
	assert_int_equal(look(t, ROOT, "held"), f);

	/* Type mismatches and a non-empty target. */
	assert_int_equal(kvfs_rename(t->fs, ROOT, "held", ROOT, "e1", 0, NULL), -EISDIR);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "e1", ROOT, "held", 0, NULL), -ENOTDIR);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "e1", ROOT, "full", 0, NULL), -ENOTEMPTY);

	/* An empty directory replaces... is replaced by a directory. */
	r0 = inode(t, ROOT);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "e1", d, "e2", 0, NULL), 0);
	assert_false(exists(t, e2));
	assert_int_equal(look(t, d, "e2"), e1);
	assert_int_equal(inode(t, e1).parent, d);
	assert_int_equal(look(t, e1, ".."), d);
	assert_int_equal(inode(t, ROOT).nlink, r0.nlink - 1);
	assert_int_equal(inode(t, ROOT).nentries, r0.nentries - 1);
	assert_int_equal(inode(t, d).nlink, 3); /* e2 went, e1 came */
	assert_int_equal(inode(t, d).nentries, 1);
	/* Within one directory. */
	fst_mkdir_unref(t, d, "e3");
	assert_int_equal(inode(t, d).nlink, 4);
	assert_int_equal(kvfs_rename(t->fs, d, "e3", d, "e2", 0, NULL), 0);
	assert_false(exists(t, e1));
	assert_int_equal(inode(t, d).nlink, 3);
	assert_int_equal(inode(t, d).nentries, 1);
	fst_remount(t);
	assert_int_equal(inode(t, d).nlink, 3);
	assert_int_equal(look(t, ROOT, "held"), f);
	assert_false(exists(t, e1));
}

static void test_rename_dir_across(void **state)
{
	struct fst *t = *state;
	uint64_t a = fst_mkdir_unref(t, ROOT, "a"), b = fst_mkdir_unref(t, ROOT, "b"),
		 s = fst_mkdir_unref(t, a, "s");
	struct kvfs_inode sin = inode(t, s);
	struct timespec t0 = after(sin.ctime);

	fst_file_unref(t, s, "inside");
	assert_int_equal(kvfs_rename(t->fs, a, "s", b, "s2", 0, NULL), 0);
	assert_int_equal(inode(t, a).nlink, 2);
	assert_int_equal(inode(t, b).nlink, 3);
	assert_int_equal(inode(t, s).parent, b);
	assert_true(ts_cmp(inode(t, s).ctime, t0) >= 0);
	assert_int_equal(look(t, s, ".."), b);
	assert_int_equal(inode(t, s).nentries, 1);
	fst_remount(t);
	assert_int_equal(look(t, s, ".."), b);
	assert_int_equal(look(t, b, "s2"), s);
	assert_int_equal(fst_stat(t, a).st_nlink, 2);
	assert_int_equal(fst_stat(t, b).st_nlink, 3);
}

static void test_rename_subtree(void **state)
{
	struct fst *t = *state;
	uint64_t a = fst_mkdir_unref(t, ROOT, "a"), b = fst_mkdir_unref(t, a, "b"),
		 c = fst_mkdir_unref(t, b, "c");
	uint64_t other = fst_mkdir_unref(t, ROOT, "o");

	/* Into itself or below. */
	assert_int_equal(kvfs_rename(t->fs, ROOT, "a", a, "x", 0, NULL), -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "a", b, "x", 0, NULL), -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "a", c, "x", 0, NULL), -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, a, "b", c, "x", 0, NULL), -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "a", c, "x", KVFS_RENAME_EXCHANGE, NULL),
			 -ENOENT);
	/* Over one of its own ancestors. */
	assert_int_equal(kvfs_rename(t->fs, b, "c", ROOT, "a", 0, NULL), -ENOTEMPTY);
	assert_int_equal(kvfs_rename(t->fs, b, "c", ROOT, "a", KVFS_RENAME_EXCHANGE, NULL),
			 -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, c, "..", ROOT, "x", 0, NULL), -EBUSY);
	/* Sideways and up are fine; then the old paths are no trap. */
	assert_int_equal(kvfs_rename(t->fs, b, "c", other, "c", 0, NULL), 0);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "a", c, "a", 0, NULL), 0);
	assert_int_equal(look(t, c, "a"), a);
	assert_int_equal(look(t, a, ".."), c);
	assert_int_equal(kvfs_rename(t->fs, other, "c", c, "x", 0, NULL), -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, other, "c", b, "x", 0, NULL), -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, c, "a", ROOT, "a", 0, NULL), 0);
	assert_int_equal(look(t, a, ".."), ROOT);
	assert_int_equal(fst_stat(t, c).st_nlink, 2);
	assert_int_equal(fst_stat(t, other).st_nlink, 3);
}

static void test_rename_flags(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f"), g = fst_file_unref(t, ROOT, "g");
	struct kvfs_entry e;

	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, "g", KVFS_RENAME_NOREPLACE, NULL),
			 -EEXIST);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, "f", KVFS_RENAME_NOREPLACE, NULL),
			 -EEXIST);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, "n", KVFS_RENAME_EXCHANGE, NULL),
			 -ENOENT);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, "g",
				     KVFS_RENAME_NOREPLACE | KVFS_RENAME_EXCHANGE, NULL),
			 -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, "g", 4, NULL), -EINVAL);
	assert_int_equal(kvfs_rename(t->fs, ROOT, ".", ROOT, "x", 0, NULL), -EBUSY);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "..", ROOT, "x", 0, NULL), -EBUSY);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, ".", 0, NULL), -EBUSY);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, "..", KVFS_RENAME_NOREPLACE, NULL),
			 -EEXIST);
	assert_int_equal(look(t, ROOT, "f"), f);
	assert_int_equal(look(t, ROOT, "g"), g);
	/* NOREPLACE to a free name is a plain rename. */
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, "n", KVFS_RENAME_NOREPLACE, NULL), 0);
	assert_int_equal(look(t, ROOT, "n"), f);

	/* Two names of one inode: rename does nothing, both stay. */
	assert_int_equal(kvfs_link(t->fs, g, ROOT, "g2", &e, NULL), 0);
	kvfs_forget(t->fs, g, 1);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "g", ROOT, "g2", 0, NULL), 0);
	assert_int_equal(look(t, ROOT, "g"), g);
	assert_int_equal(look(t, ROOT, "g2"), g);
	assert_int_equal(inode(t, g).nlink, 2);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "g", ROOT, "g", 0, NULL), 0);
	assert_int_equal(look(t, ROOT, "g"), g);
}

static void test_rename_exchange(void **state)
{
	struct fst *t = *state;
	uint64_t a = fst_mkdir_unref(t, ROOT, "a"), b = fst_mkdir_unref(t, ROOT, "b");
	uint64_t da = fst_mkdir_unref(t, a, "x"), fb = fst_file_unref(t, b, "y"),
		 db = fst_mkdir_unref(t, b, "z");
	struct kvfs_inode fin = inode(t, fb);
	struct timespec t0 = after(fin.ctime);

	/* A directory for a file, across parents: links move with the dir. */
	assert_int_equal(kvfs_rename(t->fs, a, "x", b, "y", KVFS_RENAME_EXCHANGE, NULL), 0);
	assert_int_equal(look(t, a, "x"), fb);
	assert_int_equal(look(t, b, "y"), da);
	assert_int_equal(inode(t, da).parent, b);
	assert_int_equal(inode(t, a).nlink, 2);
	assert_int_equal(inode(t, b).nlink, 4);
	assert_int_equal(inode(t, a).nentries, 1);
	assert_int_equal(inode(t, b).nentries, 2);
	assert_true(ts_cmp(inode(t, fb).ctime, t0) >= 0);
	assert_true(ts_cmp(inode(t, da).ctime, t0) >= 0);
	/* Two directories across parents. */
	fst_mkdir_unref(t, a, "w");
	assert_int_equal(kvfs_rename(t->fs, a, "w", b, "z", KVFS_RENAME_EXCHANGE, NULL), 0);
	assert_int_equal(look(t, a, "w"), db);
	assert_int_equal(look(t, db, ".."), a);
	assert_int_equal(look(t, look(t, b, "z"), ".."), b);
	assert_int_equal(inode(t, a).nlink, 3);
	assert_int_equal(inode(t, b).nlink, 4);
	/* Within one directory. */
	assert_int_equal(kvfs_rename(t->fs, b, "y", b, "z", KVFS_RENAME_EXCHANGE, NULL), 0);
	assert_int_equal(look(t, b, "z"), da);
	assert_int_equal(inode(t, b).nlink, 4);
	assert_int_equal(inode(t, b).nentries, 2);
	/* Exchange does not care about types or emptiness. */
	fst_file_unref(t, da, "content");
	assert_int_equal(kvfs_rename(t->fs, a, "x", b, "z", KVFS_RENAME_EXCHANGE, NULL), 0);
	assert_int_equal(look(t, a, "x"), da);
	assert_int_equal(look(t, b, "z"), fb);
	fst_remount(t);
	assert_int_equal(look(t, a, "x"), da);
	assert_int_equal(look(t, da, ".."), a);
	assert_int_equal(fst_stat(t, a).st_nlink, 4);
	assert_int_equal(fst_stat(t, b).st_nlink, 3);
}

/* Everything at once, then a remount, then every count checked. */
static void test_persist_tree(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), s = fst_mkdir_unref(t, d, "s"),
		 f = fst_file_unref(t, s, "f");
	char buf[64];
	struct kvfs_entry e;
	int64_t n;

	assert_int_equal(kvfs_symlink(t->fs, &t->cr, d, "l", "s/f", &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(kvfs_link(t->fs, f, d, "hard", &e, NULL), 0);
	kvfs_forget(t->fs, f, 1);
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, d, "p", S_IFIFO | 0600, 0, &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(kvfs_rename(t->fs, s, "f", d, "f", 0, NULL), 0);
	n = used(t);
	fst_remount(t);
	assert_int_equal(used(t), n);
	assert_int_equal(look(t, d, "f"), f);
	assert_int_equal(look(t, d, "hard"), f);
	assert_int_equal(fst_stat(t, f).st_nlink, 2);
	assert_int_equal(look(t, d, "s"), s);
	assert_int_equal(inode(t, s).nentries, 0);
	assert_int_equal(inode(t, d).nentries, 5);
	assert_int_equal(inode(t, d).nlink, 3);
	assert_true(S_ISFIFO(fst_stat(t, look(t, d, "p")).st_mode));
	assert_int_equal(kvfs_readlink(t->fs, look(t, d, "l"), buf, sizeof(buf)), 3);
	assert_string_equal(buf, "s/f");
	assert_int_equal(kvfs_rmdir(t->fs, d, "s", NULL), 0);
	fst_remount(t);
	assert_int_equal(look(t, d, "s"), -ENOENT);
	assert_int_equal(fst_stat(t, d).st_nlink, 2);
	assert_int_equal(used(t), n - 1);
}

static void test_read_only(void **state)
{
	struct fst *t = *state;
	struct kvfs_options o;
	struct kvfs_entry e;
	uint64_t f = fst_file_unref(t, ROOT, "f");

	assert_int_equal(kvfs_close(t->fs), 0);
	kvfs_options_init(&o);
	o.read_only = 1;
	assert_int_equal(kvfs_open(t->dir, &o, &t->fs, NULL, 0), 0);
	assert_int_equal(look(t, ROOT, "f"), f);
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, ROOT, "d", 0755, &e, NULL), -EROFS);
	assert_int_equal(kvfs_unlink(t->fs, ROOT, "f", NULL), -EROFS);
	assert_int_equal(kvfs_rename(t->fs, ROOT, "f", ROOT, "g", 0, NULL), -EROFS);
	assert_int_equal(kvfs_link(t->fs, f, ROOT, "g", &e, NULL), -EROFS);
	assert_int_equal(kvfs_mkdir(t->fs, &t->cr, ROOT, "f", 0755, &e, NULL), -EEXIST);
	assert_int_equal(look(t, ROOT, "f"), f);
	assert_int_equal(look(t, ROOT, "g"), -ENOENT);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fst_fixture_setup, fst_fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(test_mknod_types),
		T(test_names),
		T(test_lookup_dots),
		T(test_umask_and_setgid),
		T(test_mkdir_counts_and_times),
		T(test_symlink),
		T(test_create),
		T(test_async_done),
		T(test_link),
		T(test_link_max),
		T(test_unlink),
		T(test_unlink_referenced),
		T(test_rmdir),
		T(test_rmdir_referenced),
		T(test_rename_file),
		T(test_rename_replace),
		T(test_rename_dir_across),
		T(test_rename_subtree),
		T(test_rename_flags),
		T(test_rename_exchange),
		T(test_persist_tree),
		T(test_read_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
