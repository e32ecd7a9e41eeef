// SPDX-License-Identifier: MIT
/*
 * fsck.kvfs: each case of the table makes a store through the library
 * (setup: /a/b, /a/f of three blocks with a second link /a/b/f2 and an
 * xattr, /s inline, /l a symlink, /a/p a fifo), breaks exactly one invariant
 * with raw engine writes (built with fs/schema.h), then checks that -n
 * reports it (exit 4) and changes nothing, -y repairs it (exit 1), a second
 * -n is clean (exit 0), and the repaired tree reads back as expected through
 * the library. The tests after the table: the engine level, exit codes,
 * modes, cancellation (and a real SIGINT), atomicity of the repairs across
 * crashes.
 * argv[1] (optional) is the fsck.kvfs binary, argv[2] fsck_mkbig: run as
 * processes for the real exit codes and the signal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsck_test_util.h"

static const char *fsck_bin, *mkbig_bin;

/* ---- the table: one broken invariant each ------------------------------ */

struct fsck_case {
	const char *name;
	void (*brk)(struct kv_db *db);	/* break it */
	const char *says[8];		/* phrases both first reports hold */
	void (*check)(struct kvfs *fs); /* the repaired tree, mounted */
	void (*keys)(void);		/* keys gone (before the mount); or NULL */
	const char *yes_says[4];	/* phrases only the repair's report holds */
	int notes;			/* says holds notes, not problems: cycle_notes */
};

static void brk_orphan_linked(struct kv_db *db);
static void brk_unreachable(struct kv_db *db);

static void set_nlink(uint64_t i, uint32_t nlink, struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, i, &ri);
	ri.in.nlink = nlink;
	put_inode(db, i, &ri);
}

static void expect_gone(struct kvfs *fs, uint64_t dir, const char *name)
{
	struct kvfs_entry e;

	assert_int_equal(kvfs_lookup(fs, dir, name, &e), -ENOENT);
}

/* The tree setup made, untouched. */
static void check_tree(struct kvfs *fs)
{
	char buf[16];

	expect_dir(fs, 1, "a l lost+found s");
	expect_dir(fs, ino.a, "b f p");
	expect_dir(fs, ino.b, "f2");
	check_big(fs, ino.f);
	assert_int_equal(kvfs_read(fs, ino.s, 0, sizeof(buf), buf), 5);
	assert_memory_equal(buf, "small", 5);
	assert_int_equal(kvfs_readlink(fs, ino.l, buf, sizeof(buf)), 3);
}

static void brk_nlink(struct kv_db *db)
{
	set_nlink(ino.f, 1, db);
}

static void chk_nlink(struct kvfs *fs)
{
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, ino.f, &st), 0);
	assert_int_equal(st.st_nlink, 2);
	check_tree(fs);
}

static void brk_nblocks(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.f, &ri);
	assert_int_equal(ri.in.nblocks, 3);
	ri.in.nblocks = 7;
	put_inode(db, ino.f, &ri);
}

static void chk_blocks3(struct kvfs *fs)
{
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, ino.f, &st), 0);
	assert_int_equal(st.st_blocks, 3 * 4096 / 512);
	check_tree(fs);
}

static void brk_size(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.f, &ri);
	ri.in.size = 5000;
	put_inode(db, ino.f, &ri);
}

/* A fourth block, far past the end of the file (and counted). */
static void brk_past_eof(struct kv_db *db)
{
	struct raw_inode ri;

	put_data(db, ino.f, 9, 'z', 100);
	get_inode(db, ino.f, &ri);
	ri.in.nblocks = 4;
	put_inode(db, ino.f, &ri);
}

static void chk_past_eof(struct kvfs *fs)
{
	char buf[200];
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, ino.f, &st), 0);
	assert_int_equal(st.st_size, 9 * 4096 + 100);
	assert_int_equal(kvfs_read(fs, ino.f, 9 * 4096 - 100, sizeof(buf), buf), 200);
	for (int i = 0; i < 200; i++)
		assert_int_equal(buf[i], i < 100 ? 0 : 'z');
}

/* A block longer than a block: deleted with the count in one batch. */
static void brk_long_block(struct kv_db *db)
{
	put_data(db, ino.f, 1, 'q', 5000);
}

static void chk_long_block(struct kvfs *fs)
{
	char buf[4096];
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, ino.f, &st), 0);
	assert_int_equal(st.st_size, BIG);
	assert_int_equal(st.st_blocks, 2 * 4096 / 512);
	assert_int_equal(kvfs_read(fs, ino.f, 4096, sizeof(buf), buf), 4096);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0);
}

static void brk_dangling(struct kv_db *db)
{
	put_entry(db, ino.a, "ghost", 2000, DT_REG);
	adjust_dir(db, ino.a, 1, 0);
}

static void brk_dangling_dir(struct kv_db *db)
{
	put_entry(db, ino.a, "gdir", 2000, DT_DIR);
	adjust_dir(db, ino.a, 1, 1);
}

static void brk_unreachable(struct kv_db *db)
{
	del_entry(db, 1, "s");
	adjust_dir(db, 1, -1, 0);
}

static void chk_unreachable(struct kvfs *fs)
{
	uint64_t lf, i;
	char name[32], buf[16];

	lookup(fs, 1, "lost+found", &lf);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.s);
	lookup(fs, lf, name, &i);
	assert_int_equal(i, ino.s);
	assert_int_equal(kvfs_read(fs, i, 0, sizeof(buf), buf), 5);
	assert_memory_equal(buf, "small", 5);
	expect_dir(fs, 1, "a l lost+found");
}

static void brk_strays(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];

	put_data(db, 3000, 0, 'x', 1);
	put_data(db, 3000, 5, 'y', 1);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_xattr(k, 3000, "user.a", 6), "v", 1), 0);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_orphan(k, 3001), "", 0), 0);
}

static void keys_strays(void)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_false(key_exists(k, kvfs_key_data(k, 3000, 5)));
	assert_false(key_exists(k, kvfs_key_xattr(k, 3000, "user.a", 6)));
	assert_false(key_exists(k, kvfs_key_orphan(k, 3001)));
}

/* An unlinked file still open when the daemon died (with its three data
 * blocks and its xattr): as fs/ns.c leaves it, which the next mount
 * reclaims. */
static void brk_orphan(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];

	del_entry(db, ino.b, "f2");
	del_entry(db, ino.a, "f");
	adjust_dir(db, ino.a, -1, 0);
	adjust_dir(db, ino.b, -1, 0);
	set_nlink(ino.f, 0, db);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_orphan(k, ino.f), "", 0), 0);
}

static void keys_orphan(void)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_false(key_exists(k, kvfs_key_inode(k, ino.f)));
	assert_false(key_exists(k, kvfs_key_data(k, ino.f, 0)));
	assert_false(key_exists(k, kvfs_key_xattr(k, ino.f, "user.k", 6)));
	assert_false(key_exists(k, kvfs_key_orphan(k, ino.f)));
}

static void chk_orphan(struct kvfs *fs)
{
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, ino.f, &st), -ENOENT);
	expect_dir(fs, ino.a, "b p");
}

/* rmdir of /a/b (empty by now, with an xattr) while it was still open:
 * no link, no entry, an orphan record. */
static void rmdir_open_b(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];
	struct raw_inode ri;

	get_inode(db, ino.b, &ri);
	assert_int_equal(ri.in.nentries, 0);
	ri.in.nlink = 0;
	ri.in.flags |= KVFS_IF_XATTR;
	put_inode(db, ino.b, &ri);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_xattr(k, ino.b, "user.d", 6), "dv", 2), 0);
	del_entry(db, ino.a, "b");
	adjust_dir(db, ino.a, -1, -1);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_orphan(k, ino.b), "", 0), 0);
}

/* /a/b/f2 unlinked, then /a/b removed while open. */
static void brk_orphan_dir(struct kv_db *db)
{
	del_entry(db, ino.b, "f2");
	adjust_dir(db, ino.b, -1, 0);
	set_nlink(ino.f, 1, db);
	rmdir_open_b(db);
}

static void keys_orphan_dir(void)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_false(key_exists(k, kvfs_key_inode(k, ino.b)));
	assert_false(key_exists(k, kvfs_key_xattr(k, ino.b, "user.d", 6)));
	assert_false(key_exists(k, kvfs_key_orphan(k, ino.b)));
}

static void chk_orphan_dir(struct kvfs *fs)
{
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, ino.b, &st), -ENOENT);
	expect_dir(fs, ino.a, "f p");
	assert_int_equal(kvfs_getattr(fs, ino.f, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	check_big(fs, ino.f);
}

/* A directory with an orphan record and no link that still holds an entry
 * and is in no directory: not a crash's orphan (rmdir needs it empty). */
static void brk_orphan_dir_full(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];

	set_nlink(ino.b, 0, db);
	del_entry(db, ino.a, "b");
	adjust_dir(db, ino.a, -1, -1);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_orphan(k, ino.b), "", 0), 0);
}

static void chk_orphan_dir_full(struct kvfs *fs)
{
	uint64_t lf, i;
	char name[32];

	lookup(fs, 1, "lost+found", &lf);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.b);
	lookup(fs, lf, name, &i);
	assert_int_equal(i, ino.b);
	expect_dir(fs, ino.b, "f2");
	expect_dir(fs, ino.a, "f p");
	check_big(fs, ino.f);
}

/* An orphan record on a file that is still linked, with link count 0. */
static void brk_orphan_nlink0(struct kv_db *db)
{
	brk_orphan_linked(db);
	set_nlink(ino.s, 0, db);
}

/* An orphan record on a file in no directory that still counts a link. */
static void brk_orphan_nlink1(struct kv_db *db)
{
	brk_unreachable(db);
	brk_orphan_linked(db);
}

static void brk_orphan_linked(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_int_equal(kv_put(db, NULL, k, kvfs_key_orphan(k, ino.s), "", 0), 0);
}

static void keys_orphan_linked(void)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_false(key_exists(k, kvfs_key_orphan(k, ino.s)));
}

/* No entry, no link, no orphan record: a leak. */
static void brk_leak(struct kv_db *db)
{
	brk_unreachable(db);
	set_nlink(ino.s, 0, db);
}

static void chk_leak(struct kvfs *fs)
{
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, ino.s, &st), -ENOENT);
	expect_dir(fs, 1, "a l lost+found");
}

/* /a leaves the root and goes inside its own child /a/b. */
static void brk_cycle(struct kv_db *db)
{
	struct raw_inode ri;

	del_entry(db, 1, "a");
	adjust_dir(db, 1, -1, -1);
	put_entry(db, ino.b, "loop", ino.a, DT_DIR);
	adjust_dir(db, ino.b, 1, 1);
	get_inode(db, ino.a, &ri);
	ri.in.parent = ino.b;
	put_inode(db, ino.a, &ri);
}

static void chk_cycle(struct kvfs *fs)
{
	uint64_t lf, i, j;
	char name[32];

	lookup(fs, 1, "lost+found", &lf);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.a);
	lookup(fs, lf, name, &i);
	assert_int_equal(i, ino.a);
	lookup(fs, ino.a, "b", &j);
	assert_int_equal(j, ino.b);
	expect_dir(fs, ino.b, "f2");
	expect_dir(fs, lf, name);
	lookup(fs, ino.a, "f", &j);
	check_big(fs, j);
}

static void brk_allocator(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE];
	struct kvfs_super sb;
	size_t kl = kvfs_key_super(k);

	assert_int_equal(kv_get(db, 0, k, kl, v, sizeof(v)), KVFS_SUPER_SIZE);
	assert_int_equal(kvfs_super_decode(v, sizeof(v), &sb), 0);
	sb.ino_next = 3;
	kvfs_super_encode(&sb, v);
	assert_int_equal(kv_put(db, NULL, k, kl, v, sizeof(v)), 0);
}

static void chk_allocator(struct kvfs *fs)
{
	struct kvfs_entry e;

	assert_int_equal(kvfs_mknod(fs, &cred, 1, "new", S_IFREG | 0644, 0, &e, NULL), 0);
	assert_true(e.ino > ino.p);
	kvfs_forget(fs, e.ino, 1);
}

static void brk_entry_type(struct kv_db *db)
{
	put_entry(db, ino.a, "p", ino.p, DT_REG);
}

static void chk_entry_type(struct kvfs *fs)
{
	struct kvfs_entry e;

	assert_int_equal(kvfs_lookup(fs, ino.a, "p", &e), 0);
	assert_true(S_ISFIFO(e.attr.st_mode));
	kvfs_forget(fs, e.ino, 1);
	check_tree(fs);
}

static void brk_super(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE];
	struct kvfs_super sb;
	size_t kl = kvfs_key_super(k);

	assert_int_equal(kv_get(db, 0, k, kl, v, sizeof(v)), KVFS_SUPER_SIZE);
	assert_int_equal(kvfs_super_decode(v, sizeof(v), &sb), 0);
	sb.block_size = 3000;
	kvfs_super_encode(&sb, v);
	assert_int_equal(kv_put(db, NULL, k, kl, v, sizeof(v)), 0);
}

static void chk_super(struct kvfs *fs)
{
	struct kvfs_info info;

	kvfs_info(fs, &info);
	assert_int_equal(info.block_size, 4096);
	check_tree(fs);
	chk_allocator(fs); /* rebuilt past every inode */
}

static void brk_no_root(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_int_equal(kv_delete(db, NULL, k, kvfs_key_inode(k, 1)), 0);
}

static void chk_root(struct kvfs *fs)
{
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, 1, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	check_tree(fs);
}

static void brk_root_file(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, 1, &ri);
	ri.in.mode = S_IFREG | 0644;
	ri.in.parent = 0;
	put_inode(db, 1, &ri);
}

/* The same entry under a wrong hash: a key built by hand on purpose. */
static void put_wrong_hash(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_ENTRY_SIZE];
	size_t kl = kvfs_key_entry_from(k, 1, 12345);

	memcpy(k + kl, "s", 1);
	kvfs_entry_encode(ino.s, DT_REG, v);
	assert_int_equal(kv_put(db, NULL, k, kl + 1, v, sizeof(v)), 0);
}

static void brk_hash(struct kv_db *db)
{
	del_entry(db, 1, "s");
	put_wrong_hash(db);
}

static void brk_hash_twice(struct kv_db *db)
{
	put_wrong_hash(db);
	adjust_dir(db, 1, 1, 0);
}

/* Inline data and sizes: a small file and a symlink. */
static void brk_inline(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.s, &ri);
	assert_true(ri.in.flags & KVFS_IF_INLINE);
	assert_int_equal(ri.len, 5);
	ri.in.size = 3;
	ri.in.nblocks = 2;
	put_inode(db, ino.s, &ri);
	get_inode(db, ino.l, &ri);
	ri.in.size = 40;
	put_inode(db, ino.l, &ri);
}

/* Inline bytes past the superblock's inline limit (2048 for 4 KiB blocks). */
static void brk_inline_big(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.s, &ri);
	for (int i = 0; i < 3000; i++)
		ri.inl[i] = (uint8_t)('A' + i % 7);
	ri.len = 3000;
	ri.in.size = 3000;
	put_inode(db, ino.s, &ri);
}

static void chk_inline_big(struct kvfs *fs)
{
	char buf[3100];
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, ino.s, &st), 0);
	assert_int_equal(st.st_size, 3000);
	assert_int_equal(st.st_blocks, 4096 / 512);
	assert_int_equal(kvfs_read(fs, ino.s, 0, sizeof(buf), buf), 3000);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(buf[i], 'A' + i % 7);
}

static void brk_dir_counts(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.a, &ri);
	ri.in.nentries = 9;
	ri.in.nlink = 7;
	ri.in.parent = ino.b;
	put_inode(db, ino.a, &ri);
}

static void brk_dir_parent(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.b, &ri);
	ri.in.parent = 1;
	put_inode(db, ino.b, &ri);
}

static void brk_file_parent(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.f, &ri);
	ri.in.parent = ino.a;
	put_inode(db, ino.f, &ri);
}

static void brk_corrupt_inode(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_int_equal(kv_put(db, NULL, k, kvfs_key_inode(k, ino.p), "garbage", 7), 0);
}

static void keys_no_p(void)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_false(key_exists(k, kvfs_key_inode(k, ino.p)));
}

static void chk_no_p(struct kvfs *fs)
{
	expect_gone(fs, ino.a, "p");
	expect_dir(fs, ino.a, "b f");
	check_big(fs, ino.f);
}

static void brk_mode(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.p, &ri);
	ri.in.mode = 0170644; /* no such file type */
	put_inode(db, ino.p, &ri);
}

static void brk_link_empty(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.l, &ri);
	ri.len = 0;
	ri.in.size = 0;
	put_inode(db, ino.l, &ri);
}

static void brk_link_long(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.l, &ri);
	memset(ri.inl, 'x', KVFS_SYMLINK_MAX + 1);
	ri.len = KVFS_SYMLINK_MAX + 1;
	ri.in.size = ri.len;
	put_inode(db, ino.l, &ri);
}

static void chk_no_l(struct kvfs *fs)
{
	expect_gone(fs, 1, "l");
	expect_dir(fs, 1, "a lost+found s");
	check_big(fs, ino.f);
}

/* Names no entry may have, each counted in its directory. */
static void brk_names(struct kv_db *db)
{
	char longname[KVFS_NAME_MAX + 1];

	memset(longname, 'n', sizeof(longname));
	put_raw_entry(db, ino.b, "", 0, ino.s, DT_REG);
	put_raw_entry(db, ino.b, "x/y", 3, ino.s, DT_REG);
	put_raw_entry(db, ino.b, "nu\0l", 4, ino.s, DT_REG);
	put_raw_entry(db, ino.b, ".", 1, ino.b, DT_DIR);
	put_raw_entry(db, ino.b, "..", 2, ino.a, DT_DIR);
	put_raw_entry(db, ino.b, longname, sizeof(longname), ino.s, DT_REG);
	adjust_dir(db, ino.b, 6, 2);
}

static void chk_names(struct kvfs *fs)
{
	struct stat st;

	expect_dir(fs, ino.b, "f2");
	assert_int_equal(kvfs_getattr(fs, ino.s, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	check_tree(fs);
}

/* A second entry naming lost+found, in /a/b. */
static void brk_dir_link(struct kv_db *db)
{
	put_entry(db, ino.b, "lf", get_entry(db, 1, "lost+found"), DT_DIR);
	adjust_dir(db, ino.b, 1, 1);
	put_entry(db, ino.a, "me", ino.a, DT_DIR);
	adjust_dir(db, ino.a, 1, 1);
}

static void brk_dir_data(struct kv_db *db)
{
	put_data(db, ino.a, 0, 'd', 10);
	put_data(db, ino.p, 2, 'p', 10);
	put_data(db, ino.s, 1, 's', 10);
}

static void keys_dir_data(void)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_false(key_exists(k, kvfs_key_data(k, ino.a, 0)));
	assert_false(key_exists(k, kvfs_key_data(k, ino.p, 2)));
	assert_false(key_exists(k, kvfs_key_data(k, ino.s, 1)));
}

static const uint8_t junk1[] = { 0x7f, 'j', 'u', 'n', 'k' };
static const uint8_t junk2[] = { KVFS_K_INODE, 1, 2, 3 };

static void brk_junk(struct kv_db *db)
{
	assert_int_equal(kv_put(db, NULL, junk1, sizeof(junk1), "v", 1), 0);
	assert_int_equal(kv_put(db, NULL, junk2, sizeof(junk2), "v", 1), 0);
}

static void keys_junk(void)
{
	assert_false(key_exists((uint8_t *)junk1, sizeof(junk1)));
	assert_false(key_exists((uint8_t *)junk2, sizeof(junk2)));
}

static void brk_file_entries(struct kv_db *db)
{
	put_entry(db, ino.s, "x", ino.p, DT_FIFO);
	put_entry(db, 2000, "y", ino.p, DT_FIFO);
}

static void brk_bad_entry(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_int_equal(kv_put(db, NULL, k, kvfs_key_entry(k, ino.a, "bad", 3), "xyz", 3), 0);
	adjust_dir(db, ino.a, 1, 0);
}

/* lost+found removed (rmdir), then a file loses its entry. */
static void brk_no_lf(struct kv_db *db)
{
	uint8_t k[KVFS_KEY_MAX];
	uint64_t lf = get_entry(db, 1, "lost+found");

	del_entry(db, 1, "lost+found");
	assert_int_equal(kv_delete(db, NULL, k, kvfs_key_inode(k, lf)), 0);
	adjust_dir(db, 1, -1, -1);
	brk_unreachable(db);
}

static void chk_no_lf(struct kvfs *fs)
{
	uint64_t lf;
	struct stat st;

	chk_unreachable(fs);
	lookup(fs, 1, "lost+found", &lf);
	assert_true(lf > ino.p);
	assert_int_equal(kvfs_getattr(fs, lf, &st), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 0700);
}

static void brk_xattr_flag(struct kv_db *db)
{
	struct raw_inode ri;

	get_inode(db, ino.f, &ri);
	assert_true(ri.in.flags & KVFS_IF_XATTR);
	ri.in.flags &= ~KVFS_IF_XATTR;
	put_inode(db, ino.f, &ri);
}

static void chk_xattr(struct kvfs *fs)
{
	char v[8];

	assert_int_equal(kvfs_getxattr(fs, ino.f, "user.k", v, sizeof(v)), 1);
	check_tree(fs);
}

static const struct fsck_case cases[] = {
	{ .name = "nlink",
	  .brk = brk_nlink,
	  .says = { "link count 1, should be 2" },
	  .check = chk_nlink },
	{ .name = "nblocks",
	  .brk = brk_nblocks,
	  .says = { "counts 7 data blocks but has 3" },
	  .check = chk_blocks3 },
	{ .name = "size_short",
	  .brk = brk_size,
	  .says = { "has size 5000 but data up to byte 10000" },
	  .check = check_tree },
	{ .name = "blocks_past_eof",
	  .brk = brk_past_eof,
	  .says = { "has size 10000 but data up to byte 36964" },
	  .check = chk_past_eof },
	{ .name = "block_too_long",
	  .brk = brk_long_block,
	  .says = { "Data block 1 of inode 5 holds 5000 bytes" },
	  .check = chk_long_block,
	  .yes_says = { "WAS MODIFIED (1 repairs)" } },
	{ .name = "dangling_entry",
	  .brk = brk_dangling,
	  .says = { "Entry 'ghost' in directory 3", "missing inode 2000" },
	  .check = check_tree,
	  .yes_says = { "WAS MODIFIED (1 repairs)" } },
	{ .name = "dangling_dir_entry",
	  .brk = brk_dangling_dir,
	  .says = { "Entry 'gdir' in directory 3" },
	  .check = check_tree,
	  .yes_says = { "WAS MODIFIED (1 repairs)" } },
	{ .name = "unreachable_file",
	  .brk = brk_unreachable,
	  .says = { "Inode 6 (a regular file) is not in any" },
	  .check = chk_unreachable },
	{ .name = "strays",
	  .brk = brk_strays,
	  .says = { "Data blocks of missing inode 3000",
		    "Extended attributes of missing inode 3000",
		    "Orphan record of missing inode 3001" },
	  .check = check_tree,
	  .keys = keys_strays },
	{ .name = "orphan_file",
	  .brk = brk_orphan,
	  .says = { "Inode 5 (unlinked while open) will be reclaimed at the next mount or by "
		    "fsck -y/-p" },
	  .check = chk_orphan,
	  .keys = keys_orphan,
	  .yes_says = { "Inode 5 (unlinked while open): reclaimed", "WAS MODIFIED (1 repairs)" },
	  .notes = 1 },
	{ .name = "orphan_dir",
	  .brk = brk_orphan_dir,
	  .says = { "Inode 4 (unlinked while open) will be reclaimed at the next mount or by "
		    "fsck -y/-p" },
	  .check = chk_orphan_dir,
	  .keys = keys_orphan_dir,
	  .yes_says = { "Inode 4 (unlinked while open): reclaimed", "WAS MODIFIED (1 repairs)" },
	  .notes = 1 },
	{ .name = "orphan_dir_with_entries",
	  .brk = brk_orphan_dir_full,
	  .says = { "Inode 4 has an orphan record but still holds entries",
		    "Directory 4 is not reachable from the root",
		    "Inode 4 has link count 0, should be 2" },
	  .check = chk_orphan_dir_full },
	{ .name = "orphan_linked_nlink0",
	  .brk = brk_orphan_nlink0,
	  .says = { "Inode 6 has an orphan record but is still linked",
		    "Inode 6 has link count 0, should be 1" },
	  .check = check_tree,
	  .keys = keys_orphan_linked },
	{ .name = "orphan_with_link_count",
	  .brk = brk_orphan_nlink1,
	  .says = { "Inode 6 has an orphan record and no entries, but link count 1" },
	  .check = chk_leak,
	  .keys = keys_orphan_linked },
	{ .name = "orphan_linked",
	  .brk = brk_orphan_linked,
	  .says = { "Inode 6 has an orphan record but is still" },
	  .check = check_tree,
	  .keys = keys_orphan_linked },
	{ .name = "unlinked_leak",
	  .brk = brk_leak,
	  .says = { "Inode 6 has no links and no orphan record" },
	  .check = chk_leak },
	{ .name = "dir_cycle",
	  .brk = brk_cycle,
	  .says = { "is in a cycle of directories" },
	  .check = chk_cycle },
	{ .name = "allocator",
	  .brk = brk_allocator,
	  .says = { "The inode allocator (next 3) is not past inode 8" },
	  .check = chk_allocator },
	{ .name = "entry_type",
	  .brk = brk_entry_type,
	  .says = { "Entry 'p' in directory 3 has type 8, but inode 8" },
	  .check = chk_entry_type },
	{ .name = "bad_super",
	  .brk = brk_super,
	  .says = { "The superblock is corrupt; the data suggest a block size of 4096" },
	  .check = chk_super,
	  .yes_says = { "WAS MODIFIED (1 repairs)" } },
	{ .name = "missing_root",
	  .brk = brk_no_root,
	  .says = { "The root directory (inode 1) is missing" },
	  .check = chk_root },
	{ .name = "root_not_dir",
	  .brk = brk_root_file,
	  .says = { "Inode 1 (the root) is not a directory" },
	  .check = chk_root,
	  .yes_says = { "The root directory (inode 1) is missing" } },
	{ .name = "wrong_hash",
	  .brk = brk_hash,
	  .says = { "is stored under a wrong hash" },
	  .check = check_tree },
	{ .name = "hash_twice",
	  .brk = brk_hash_twice,
	  .says = { "Entry 's' in directory 1 is stored twice" },
	  .check = check_tree,
	  .yes_says = { "WAS MODIFIED (1 repairs)" } },
	{ .name = "inline_sizes",
	  .brk = brk_inline,
	  .says = { "Inline inode 6 has size 3 but 5 bytes", "Inline inode 6 counts 2 data blocks",
		    "Symlink 7 has size 40 but a 3-byte target" },
	  .check = check_tree },
	{ .name = "inline_over_limit",
	  .brk = brk_inline_big,
	  .says = { "Inline inode 6 has size 3000, over the inline limit 2048" },
	  .check = chk_inline_big },
	{ .name = "dir_counts",
	  .brk = brk_dir_counts,
	  .says = { "counts 9 entries but holds 3", "link count 7, should be 3",
		    "but its entry is in 1" },
	  .check = check_tree },
	{ .name = "dir_parent",
	  .brk = brk_dir_parent,
	  .says = { "Directory 4 has parent 1, but its entry is in 3" },
	  .check = check_tree },
	{ .name = "file_parent",
	  .brk = brk_file_parent,
	  .says = { "Inode 5 is not a directory but has parent 3" },
	  .check = check_tree },
	{ .name = "corrupt_inode",
	  .brk = brk_corrupt_inode,
	  .says = { "Inode 8 is corrupt" },
	  .check = chk_no_p,
	  .keys = keys_no_p,
	  .yes_says = { "Entry 'p' in directory 3 points to missing inode 8" } },
	{ .name = "bad_mode",
	  .brk = brk_mode,
	  .says = { "Inode 8 has an invalid mode" },
	  .check = chk_no_p,
	  .keys = keys_no_p },
	{ .name = "symlink_empty",
	  .brk = brk_link_empty,
	  .says = { "Inode 7 is a symlink without a valid target" },
	  .check = chk_no_l },
	{ .name = "symlink_too_long",
	  .brk = brk_link_long,
	  .says = { "Inode 7 is a symlink without a valid target" },
	  .check = chk_no_l },
	{ .name = "invalid_names",
	  .brk = brk_names,
	  .says = { "Entry '' (0 bytes)", "Entry 'x/y' (3 bytes)", "Entry 'nu\\x00l' (4 bytes)",
		    "Entry '.' (1 bytes)", "Entry '..' (2 bytes)", "(256 bytes) in directory 4" },
	  .check = chk_names },
	{ .name = "extra_dir_links",
	  .brk = brk_dir_link,
	  .says = { "Entry 'lf' in directory 4 is an extra link to directory 2",
		    "Entry 'me' in directory 3 is an extra link to directory 3 (itself)" },
	  .check = check_tree,
	  .yes_says = { "WAS MODIFIED (2 repairs)" } },
	{ .name = "data_of_non_files",
	  .brk = brk_dir_data,
	  .says = { "Data blocks of inode 3, which is not a regular file",
		    "Data blocks of inode 8, which is not a regular file",
		    "Data blocks of inode 6, which is an inline file" },
	  .check = check_tree,
	  .keys = keys_dir_data },
	{ .name = "unknown_keys",
	  .brk = brk_junk,
	  .says = { "A key that is not kvfs's (type 127, 5 bytes)",
		    "A key that is not kvfs's (type 2, 4 bytes)" },
	  .check = check_tree,
	  .keys = keys_junk },
	{ .name = "entries_of_non_dirs",
	  .brk = brk_file_entries,
	  .says = { "Entries of non-directory inode 6 (the first is 'x')",
		    "Entries of missing inode 2000 (the first is 'y')" },
	  .check = check_tree },
	{ .name = "corrupt_entry",
	  .brk = brk_bad_entry,
	  .says = { "Entry 'bad' in directory 3 is corrupt" },
	  .check = check_tree,
	  .yes_says = { "WAS MODIFIED (1 repairs)" } },
	{ .name = "lost_found_missing",
	  .brk = brk_no_lf,
	  .says = { "Inode 6 (a regular file) is not in any directory" },
	  .check = chk_no_lf,
	  .yes_says = { "/lost+found is missing.  Create it? yes" } },
	{ .name = "xattr_flag",
	  .brk = brk_xattr_flag,
	  .says = { "Inode 5 has extended attributes but not the flag" },
	  .check = chk_xattr },
};

static void test_case(void **state)
{
	const struct fsck_case *tc = *state;
	struct kv_db *db = raw_open();
	const char *const *w = tc->says;

	tc->brk(db);
	raw_close(db);
	if (tc->notes)
		cycle_notes(w, tc->yes_says);
	else
		cycle(w, tc->yes_says);
	if (tc->keys)
		tc->keys();
	if (tc->check) {
		struct kvfs *fs = mount_fs();

		tc->check(fs);
		assert_int_equal(kvfs_close(fs), 0);
	}
}

/* ---- other tests ------------------------------------------------------- */

static void test_clean(void **state)
{
	struct kvfs *fs;

	assert_int_equal(run("-n"), 0);
	expect_out("clean");
	expect_out("8 inodes (4 directories, 2 regular files, 1 symlinks, 1 other)");
	assert_int_equal(run("-p"), 0);
	assert_int_equal(run("-y"), 0);
	fs = mount_fs();
	check_tree(fs);
	kvfs_close(fs);
}

/* A flipped byte in a table: found by the engine check, with file and offset. */
static void test_engine_corrupt(void **state)
{
	struct kv_db *db = raw_open();
	char path[600], table[300] = "";
	struct dirent *de;
	DIR *d;
	int fd;
	uint8_t byte;

	assert_int_equal(kv_flush(db), 0);
	raw_close(db);
	d = opendir(store);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "tbl-", 4))
			snprintf(table, sizeof(table), "%s", de->d_name);
	closedir(d);
	assert_true(table[0]);
	snprintf(path, sizeof(path), "%s/%s", store, table);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, 100), 1);
	byte ^= 0x5a;
	assert_int_equal(pwrite(fd, &byte, 1, 100), 1);
	close(fd);
	assert_int_equal(run("-n"), 4);
	expect_out("Engine: ");
	expect_out(table);
	expect_out("at offset ");
	expect_out("the filesystem level was not checked");
	assert_int_equal(run("-y"), 4);
	expect_out(table);
}

/* A flipped byte in a WAL record: also the engine check's. */
static void test_wal_corrupt(void **state)
{
	struct kv_db *db = raw_open();
	char path[600], wal[300] = "";
	uint8_t k[KVFS_KEY_MAX], byte;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	for (int i = 0; i < 50; i++)
		assert_int_equal(kv_put(db, NULL, k, kvfs_key_xattr(k, ino.f, "user.z", 6),
					"0123456789", 10),
				 0);
	raw_close(db);
	d = opendir(store);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "wal-", 4))
			snprintf(wal, sizeof(wal), "%s", de->d_name);
	closedir(d);
	assert_true(wal[0]);
	snprintf(path, sizeof(path), "%s/%s", store, wal);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size > 400);
	assert_int_equal(pread(fd, &byte, 1, 300), 1);
	byte ^= 0x5a;
	assert_int_equal(pwrite(fd, &byte, 1, 300), 1);
	close(fd);
	assert_int_equal(run("-n"), 4);
	expect_out("Engine: ");
	expect_out(wal);
	expect_out("at offset ");
}

static void test_mounted(void **state)
{
	struct kvfs *fs = mount_fs();

	assert_int_equal(run("-n"), 8);
	assert_non_null(strstr(err_text, "in use (mounted?)"));
	assert_int_equal(run("-y"), 8);
	kvfs_close(fs);
	assert_int_equal(run("-n"), 0);
}

static void test_usage(void **state)
{
	assert_int_equal(run_io(NULL, 0, "-n", "-y"), 16);
	assert_non_null(strstr(err_text, "only one of"));
	assert_int_equal(run_io(NULL, 0, "-q", NULL), 16);
	assert_non_null(strstr(err_text, "Usage:"));
	{
		char *argv[] = { "fsck.kvfs", "-n", NULL };
		FILE *null = fopen("/dev/null", "r+");
		struct fsck_io io = { null, null, null, 0, NULL };

		assert_non_null(null);
		assert_int_equal(fsck_main(2, argv, &io), 16);
		fclose(null);
	}
	/* No mode and no terminal: refused, as e2fsck does (exit 8). */
	assert_int_equal(run(NULL), 8);
	assert_non_null(strstr(err_text, "need a terminal"));
	/* No such store. */
	snprintf(store + strlen(store), sizeof(store) - strlen(store), "/nope");
	assert_int_equal(run("-n"), 8);
	assert_non_null(strstr(err_text, "no such store"));
	store[strlen(store) - 5] = 0;
}

/* Operational errors (exit 8): a directory that is no store, and a libkv
 * store that holds no kvfs filesystem. Nothing is written to either. */
static void test_foreign(void **state)
{
	char path[300];
	struct kv_options ko;
	struct kv_db *db;
	FILE *f;

	snprintf(path, sizeof(path), "%s/other", store);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/other/notes.txt", store);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("not a store\n", f);
	fclose(f);
	snprintf(store + strlen(store), sizeof(store) - strlen(store), "/other");
	assert_int_equal(run("-y"), 8);
	assert_non_null(strstr(err_text, "not a kvfs store"));
	store[strlen(store) - 6] = 0;

	snprintf(store + strlen(store), sizeof(store) - strlen(store), "/kvonly");
	kv_options_init(&ko);
	ko.create_if_missing = 1;
	ko.log_buffer_size = TEST_LOG_BUFFER;
	assert_int_equal(kv_open(store, &ko, &db), 0);
	assert_int_equal(kv_put(db, NULL, "\x7fuser", 5, "v", 1), 0);
	assert_int_equal(kv_close(db), 0);
	assert_int_equal(run("-y"), 8);
	assert_non_null(strstr(err_text, "not a kvfs filesystem"));
	assert_true(key_exists((uint8_t *)"\x7fuser", 5));
	store[strlen(store) - 7] = 0;
}

/* -p repairs the safe problem (a link count), not the unsafe one (an
 * unreachable file), and says so; -y then does the rest. */
static void test_preen(void **state)
{
	struct kv_db *db = raw_open();
	struct raw_inode ri;

	get_inode(db, ino.f, &ri);
	ri.in.nlink = 5;
	put_inode(db, ino.f, &ri);
	del_entry(db, 1, "s");
	adjust_dir(db, 1, -1, 0);
	raw_close(db);
	assert_int_equal(run("-p"), 5);
	expect_out("link count 5, should be 2.  Fix: FIXED.");
	expect_out("UNEXPECTED INCONSISTENCY");
	assert_int_equal(run("-p"), 4);
	assert_null(strstr(out_text, "link count"));
	assert_int_equal(run("-y"), 1);
	assert_int_equal(run("-n"), 0);
	assert_int_equal(run("-p"), 0);

	/* Only safe problems: -p repairs them all (exit 1). */
	db = raw_open();
	get_inode(db, ino.f, &ri);
	ri.in.nlink = 7;
	put_inode(db, ino.f, &ri);
	brk_dangling(db);
	raw_close(db);
	assert_int_equal(run("-p"), 1);
	expect_out("Entry 'ghost' in directory 3 points to missing inode 2000.  Clear: FIXED.");
	assert_null(strstr(out_text, "UNEXPECTED"));
	assert_int_equal(run("-n"), 0);
}

/* A crash's orphans (a file with blocks and an xattr, a directory with an
 * xattr) and one real problem: -n notes the orphans and reports only the
 * problem; -p reclaims the orphans without asking and fixes the problem. */
static void test_orphans_preen(void **state)
{
	struct kv_db *db = raw_open();
	char line[512];

	brk_orphan(db);
	rmdir_open_b(db);
	set_nlink(ino.s, 3, db);
	raw_close(db);
	assert_int_equal(run("-n"), 4);
	expect_out("Inode 4 (unlinked while open) will be reclaimed");
	expect_out("Inode 5 (unlinked while open) will be reclaimed");
	expect_out("Inode 6 has link count 3, should be 1.  Fix? no");
	assert_null(strstr(out_text, "Inode 4 has"));
	assert_null(strstr(out_text, "Inode 5 has"));
	assert_null(strstr(out_text, "Directory 4"));
	assert_int_equal(run("-p"), 1);
	snprintf(line, sizeof(line), "%s: Inode 4 (unlinked while open): reclaimed\n", store);
	expect_out(line);
	snprintf(line, sizeof(line), "%s: Inode 5 (unlinked while open): reclaimed\n", store);
	expect_out(line);
	expect_out("WAS MODIFIED (3 repairs)");
	assert_null(strstr(out_text, "UNEXPECTED"));
	assert_int_equal(run("-n"), 0);
	assert_null(strstr(out_text, "unlinked while open"));
	keys_orphan();
	keys_orphan_dir();
}

/* What -n promises: the next mount reclaims the orphans it noted. */
static void test_orphans_mount(void **state)
{
	struct kv_db *db = raw_open();
	struct kvfs *fs;
	struct stat st;

	brk_orphan(db);
	rmdir_open_b(db);
	raw_close(db);
	assert_int_equal(run("-n"), 0);
	expect_out("Inode 4 (unlinked while open)");
	expect_out("Inode 5 (unlinked while open)");
	fs = mount_fs();
	assert_int_equal(kvfs_getattr(fs, ino.b, &st), -ENOENT);
	assert_int_equal(kvfs_getattr(fs, ino.f, &st), -ENOENT);
	expect_dir(fs, ino.a, "p");
	assert_int_equal(kvfs_close(fs), 0);
	assert_int_equal(run("-n"), 0);
	assert_null(strstr(out_text, "unlinked while open"));
	keys_orphan();
	keys_orphan_dir();
}

/* Interactive: "n" changes nothing, "y" repairs. */
static void test_interactive(void **state)
{
	struct kv_db *db = raw_open();
	struct raw_inode ri;
	uint64_t before;

	get_inode(db, ino.f, &ri);
	ri.in.nlink = 9;
	put_inode(db, ino.f, &ri);
	raw_close(db);
	before = digest();
	assert_int_equal(run_io("n\n", 1, NULL, NULL), 4);
	expect_out("Fix<y>? ");
	expect_out("Pass 6:");
	assert_true(digest() == before);
	assert_int_equal(run_io("y\n", 1, NULL, NULL), 1);
	assert_int_equal(run("-n"), 0);
}

static void test_cancel(void **state)
{
	struct kv_db *db = raw_open();
	struct raw_inode ri;
	uint64_t before;

	get_inode(db, ino.f, &ri);
	ri.in.nlink = 9;
	put_inode(db, ino.f, &ri);
	raw_close(db);
	before = digest();
	fsck_cancel = 1;
	assert_int_equal(run("-y") & 32, 32);
	fsck_cancel = 0;
	assert_true(digest() == before);
	assert_int_equal(run("-y"), 1);
}

/* The real program: exit codes through a process. */
static void test_binary(void **state)
{
	char cmd[1024];
	int st;

	if (!fsck_bin)
		skip();
	snprintf(cmd, sizeof(cmd), "%s -n %s >/dev/null", fsck_bin, store);
	st = system(cmd);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	snprintf(cmd, sizeof(cmd), "%s -n -y %s 2>/dev/null", fsck_bin, store);
	st = system(cmd);
	assert_int_equal(WEXITSTATUS(st), 16);
	snprintf(cmd, sizeof(cmd), "%s %s </dev/null 2>/dev/null >/dev/null", fsck_bin, store);
	st = system(cmd);
	assert_int_equal(WEXITSTATUS(st), 8);
	/* Open by this process (as a mount holds it): -EBUSY, exit 8. */
	{
		struct kvfs *fs = mount_fs();

		snprintf(cmd, sizeof(cmd), "%s -y %s >/dev/null 2>&1", fsck_bin, store);
		st = system(cmd);
		assert_int_equal(WEXITSTATUS(st), 8);
		assert_int_equal(kvfs_close(fs), 0);
	}
}

/*
 * A real SIGINT to the program during the scan of a big store that has one
 * problem (an orphan record of a missing inode: the very last key): exit 32,
 * and the store untouched: same digest, and -n reports the same as before.
 */
static void test_sigint(void **state)
{
	char cmd[1024], line[512], *before_out;
	uint64_t before;
	int fds[2], st, seen = 0;
	struct kv_db *db;
	uint8_t k[KVFS_KEY_MAX];
	pid_t pid;
	FILE *f;

	if (!fsck_bin || !mkbig_bin)
		skip();
	teardown(state);
	snprintf(cmd, sizeof(cmd), "%s %s 150000 1000 >/dev/null", mkbig_bin, store);
	assert_int_equal(system(cmd), 0);
	db = raw_open();
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_orphan(k, 1ull << 40), "", 0), 0);
	raw_close(db);
	before = digest();
	assert_int_equal(run("-n"), 4);
	expect_out("Orphan record of missing inode");
	before_out = strdup(strstr(out_text, "Orphan record"));
	assert_non_null(before_out);

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(fsck_bin, fsck_bin, "-y", "-v", store, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	assert_non_null(f);
	/* The first progress line: the scan has started. Then the signal. */
	while (fgets(line, sizeof(line), f))
		if (!seen && strstr(line, "% checked")) {
			seen = 1;
			assert_int_equal(kill(pid, SIGINT), 0);
		}
	fclose(f);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(seen);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 32);
	assert_true(digest() == before);
	assert_int_equal(run("-n"), 4);
	assert_non_null(strstr(out_text, before_out));
	free(before_out);
}

/* The problem lines ("...? no") of a -n report, one per line. */
static char *problems(void)
{
	size_t cap = strlen(out_text) + 1, n = 0;
	char *p = malloc(cap), *line = out_text, *nl;

	assert_non_null(p);
	for (; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		if (nl - line >= 4 && !memcmp(nl - 4, "? no", 4)) {
			memcpy(p + n, line, (size_t)(nl - line) + 1);
			n += (size_t)(nl - line) + 1;
		}
	}
	p[n] = 0;
	return p;
}

/*
 * Every repair is one batch: fsck -y runs through the fault env and "dies"
 * after N I/O calls, for the last calls of a full run (the repairs' writes,
 * the commit and the close), then the power is cut (clean or torn). The
 * next -n must report a subset of the problems found at first, each line
 * the same: a repair cut in two (an entry removed, its directory's count
 * not yet fixed) would show a problem of its own.
 */
static void test_atomic(void **state)
{
	char cmd[1024], orig[300], *first, *after, *line, *nl;
	struct kv_fault_env *fe;
	struct kv_db *db = raw_open();
	int total = 0, lo = 1, hi = 1 << 16, cuts = 0;

	brk_dangling_dir(db);
	brk_unreachable(db);
	brk_long_block(db);
	put_entry(db, ino.b, "lf", get_entry(db, 1, "lost+found"), DT_DIR);
	adjust_dir(db, ino.b, 1, 1);
	raw_close(db);
	assert_int_equal(run("-n"), 4);
	first = problems();
	snprintf(orig, sizeof(orig), "%s.orig", store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", orig, store, orig);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", store, orig, store);
	assert_int_equal(kv_fault_env_create(kv_env_default(), &fe), 0);

	/* The number of I/O calls of a whole run: the least N that completes. */
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		struct kv_fault_rules r = { .crash_after_ops = mid };

		assert_int_equal(system(cmd), 0);
		kv_fault_env_settle(fe);
		kv_fault_env_set_rules(fe, &r);
		if (run_env(kv_fault_env_env(fe), "-y") == 1)
			hi = mid;
		else
			lo = mid + 1;
	}
	total = lo;
	for (int n = total - 1; n > 0 && n >= total - 48; n--) {
		struct kv_fault_rules r = { .crash_after_ops = n }, none = { 0 };
		int code;

		assert_int_equal(system(cmd), 0);
		kv_fault_env_settle(fe);
		kv_fault_env_set_rules(fe, &r);
		code = run_env(kv_fault_env_env(fe), "-y");
		assert_true(code == 1 || (code & 8));
		kv_fault_env_set_rules(fe, &none);
		assert_int_equal(kv_fault_env_power_cut(fe, n % 2 ? (uint64_t)n * 7919 : 0), 0);
		code = run("-n");
		if (code != 0 && code != 4)
			fail_msg("crash after %d of %d calls: -n exits %d:\n%s%s", n, total, code,
				 out_text, err_text);
		after = problems();
		for (line = after; *line; line = nl + 1) {
			nl = strchr(line, '\n');
			*nl = 0;
			if (!strstr(first, line))
				fail_msg("crash after %d of %d calls: a new problem '%s'", n, total,
					 line);
		}
		cuts += strcmp(after, first) != 0;
		free(after);
		assert_int_equal(run("-y"), code ? 1 : 0);
		assert_int_equal(run("-n"), 0);
	}
	/* Some crash points left part of the repairs done. */
	assert_true(cuts > 0);
	kv_fault_env_destroy(fe);
	free(first);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", orig);
	assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
	const size_t ncases = sizeof(cases) / sizeof(cases[0]);
	const struct CMUnitTest others[] = {
		cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mounted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphans_preen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphans_mount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interactive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic, setup, teardown),
	};
	const size_t nothers = sizeof(others) / sizeof(others[0]);
	struct CMUnitTest *tests = calloc(ncases + nothers, sizeof(*tests));
	int failed;

	if (argc > 1)
		fsck_bin = argv[1];
	if (argc > 2)
		mkbig_bin = argv[2];
	assert_non_null(tests);
	/* One cmocka test per case, named after it, the case as its state. */
	for (size_t i = 0; i < ncases; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = test_case;
		tests[i].setup_func = setup;
		tests[i].teardown_func = teardown;
		tests[i].initial_state = (void *)&cases[i];
	}
	memcpy(tests + ncases, others, sizeof(others));
	if (getenv("FSCK_TEST_FILTER")) /* e.g. "test_atomic", "dir_*" */
		cmocka_set_test_filter(getenv("FSCK_TEST_FILTER"));
	failed = _cmocka_run_group_tests("test_fsck", tests, ncases + nothers, NULL, NULL);
	free(tests);
	return failed;
}
