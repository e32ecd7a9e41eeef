// SPDX-License-Identifier: MIT
/*
 * fsck.kvfs: each test makes a store through the library, breaks exactly one
 * invariant with raw engine writes (built with fs/schema.h), then checks that
 * -n reports it (exit 4) and changes nothing, -y repairs it (exit 1), a second
 * -n is clean (exit 0), and the repaired tree reads back as expected.
 * argv[1] (optional) is the fsck.kvfs binary, run once through system() for
 * the real process's exit codes.
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

static const char *fsck_bin;

/* ---- tests ------------------------------------------------------------- */

static void test_clean(void **state)
{
	assert_int_equal(run("-n"), 0);
	expect_out("clean");
	expect_out("8 inodes (4 directories, 2 regular files, 1 symlinks, 1 other)");
}

static void test_nlink(void **state)
{
	struct kv_db *db = raw_open();
	struct raw_inode ri;
	struct kvfs *fs;
	struct stat st;

	get_inode(db, ino.f, &ri);
	assert_int_equal(ri.in.nlink, 2);
	ri.in.nlink = 1;
	put_inode(db, ino.f, &ri);
	raw_close(db);
	cycle("link count 1, should be 2", NULL);
	fs = mount_fs();
	assert_int_equal(kvfs_getattr(fs, ino.f, &st), 0);
	assert_int_equal(st.st_nlink, 2);
	kvfs_close(fs);
}

static void test_size_blocks(void **state)
{
	struct kv_db *db = raw_open();
	struct raw_inode ri;
	struct kvfs *fs;
	struct stat st;

	get_inode(db, ino.f, &ri);
	assert_int_equal(ri.in.nblocks, 3);
	ri.in.size = 5000;
	ri.in.nblocks = 7;
	put_inode(db, ino.f, &ri);
	raw_close(db);
	cycle("has size 5000 but data up to byte 10000", "counts 7 data blocks but has 3", NULL);
	fs = mount_fs();
	check_big(fs, ino.f);
	assert_int_equal(kvfs_getattr(fs, ino.f, &st), 0);
	assert_int_equal(st.st_blocks, 3 * 4096 / 512);
	kvfs_close(fs);
}

static void test_dangling_entry(void **state)
{
	struct kv_db *db = raw_open();
	struct kvfs *fs;
	struct kvfs_entry e;

	put_entry(db, ino.a, "ghost", 2000, DT_REG);
	adjust_dir(db, ino.a, 1, 0);
	raw_close(db);
	cycle("Entry 'ghost' in directory", "points to missing inode 2000", NULL);
	fs = mount_fs();
	assert_int_equal(kvfs_lookup(fs, ino.a, "ghost", &e), -ENOENT);
	kvfs_close(fs);
}

static void test_unreachable_file(void **state)
{
	struct kv_db *db = raw_open();
	struct kvfs *fs;
	uint64_t lf, i;
	char name[32], buf[16];

	del_entry(db, 1, "s");
	adjust_dir(db, 1, -1, 0);
	raw_close(db);
	cycle("is not in any directory", NULL);
	fs = mount_fs();
	lookup(fs, 1, "lost+found", &lf);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.s);
	lookup(fs, lf, name, &i);
	assert_int_equal(i, ino.s);
	assert_int_equal(kvfs_read(fs, i, 0, sizeof(buf), buf), 5);
	assert_memory_equal(buf, "small", 5);
	kvfs_close(fs);
}

static void test_strays(void **state)
{
	struct kv_db *db = raw_open();
	uint8_t k[KVFS_KEY_MAX];

	assert_int_equal(kv_put(db, NULL, k, kvfs_key_data(k, 3000, 0), "x", 1), 0);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_data(k, 3000, 5), "y", 1), 0);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_xattr(k, 3000, "user.a", 6), "v", 1), 0);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_orphan(k, 3001), "", 0), 0);
	raw_close(db);
	cycle("Data blocks of missing inode 3000", "Extended attributes of missing inode 3000",
	      "Orphan record of missing inode 3001", NULL);
	assert_false(key_exists(k, kvfs_key_data(k, 3000, 5)));
	assert_false(key_exists(k, kvfs_key_xattr(k, 3000, "user.a", 6)));
	assert_false(key_exists(k, kvfs_key_orphan(k, 3001)));
}

static void test_orphan(void **state)
{
	struct kv_db *db = raw_open();
	uint8_t k[KVFS_KEY_MAX];
	struct raw_inode ri;
	struct kvfs *fs;
	struct stat st;

	/* An unlinked file still open when the daemon died. */
	del_entry(db, ino.b, "f2");
	del_entry(db, ino.a, "f");
	adjust_dir(db, ino.a, -1, 0);
	adjust_dir(db, ino.b, -1, 0);
	get_inode(db, ino.f, &ri);
	ri.in.nlink = 0;
	put_inode(db, ino.f, &ri);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_orphan(k, ino.f), "", 0), 0);
	raw_close(db);
	cycle("is an orphan", NULL);
	assert_false(key_exists(k, kvfs_key_inode(k, ino.f)));
	assert_false(key_exists(k, kvfs_key_data(k, ino.f, 0)));
	assert_false(key_exists(k, kvfs_key_xattr(k, ino.f, "user.k", 6)));
	fs = mount_fs();
	assert_int_equal(kvfs_getattr(fs, ino.f, &st), -ENOENT);
	kvfs_close(fs);
}

static void test_dir_cycle(void **state)
{
	struct kv_db *db = raw_open();
	struct raw_inode ri;
	struct kvfs *fs;
	struct kvfs_entry e;
	uint64_t lf, i, j;
	char name[32];

	/* /a leaves the root and goes inside its own child /a/b. */
	del_entry(db, 1, "a");
	adjust_dir(db, 1, -1, -1);
	put_entry(db, ino.b, "loop", ino.a, DT_DIR);
	adjust_dir(db, ino.b, 1, 1);
	get_inode(db, ino.a, &ri);
	ri.in.parent = ino.b;
	put_inode(db, ino.a, &ri);
	raw_close(db);
	cycle("is in a cycle of directories", NULL);
	fs = mount_fs();
	lookup(fs, 1, "lost+found", &lf);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.a);
	lookup(fs, lf, name, &i);
	assert_int_equal(i, ino.a);
	lookup(fs, ino.a, "b", &j);
	assert_int_equal(j, ino.b);
	assert_int_equal(kvfs_lookup(fs, ino.b, "loop", &e), -ENOENT);
	lookup(fs, ino.a, "f", &j);
	check_big(fs, j);
	kvfs_close(fs);
}

static void test_allocator(void **state)
{
	struct kv_db *db = raw_open();
	uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE];
	struct kvfs_super sb;
	size_t kl = kvfs_key_super(k);
	struct kvfs *fs;
	struct kvfs_entry e;

	assert_int_equal(kv_get(db, 0, k, kl, v, sizeof(v)), KVFS_SUPER_SIZE);
	assert_int_equal(kvfs_super_decode(v, sizeof(v), &sb), 0);
	sb.ino_next = 3;
	kvfs_super_encode(&sb, v);
	assert_int_equal(kv_put(db, NULL, k, kl, v, sizeof(v)), 0);
	raw_close(db);
	cycle("The inode allocator (next 3) is not past inode", NULL);
	fs = mount_fs();
	assert_int_equal(kvfs_mknod(fs, &cred, 1, "new", S_IFREG | 0644, 0, &e, NULL), 0);
	assert_true(e.ino > ino.p);
	kvfs_forget(fs, e.ino, 1);
	kvfs_close(fs);
}

static void test_entry_type(void **state)
{
	struct kv_db *db = raw_open();
	struct kvfs *fs;
	struct kvfs_entry e;

	put_entry(db, ino.a, "p", ino.p, DT_REG);
	raw_close(db);
	cycle("Entry 'p' in directory", "has type 8, but inode", NULL);
	fs = mount_fs();
	assert_int_equal(kvfs_lookup(fs, ino.a, "p", &e), 0);
	assert_true(S_ISFIFO(e.attr.st_mode));
	kvfs_forget(fs, e.ino, 1);
	kvfs_close(fs);
}

static void test_bad_super(void **state)
{
	struct kv_db *db = raw_open();
	uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE];
	struct kvfs_super sb;
	size_t kl = kvfs_key_super(k);
	struct kvfs_info info;
	struct kvfs *fs;

	assert_int_equal(kv_get(db, 0, k, kl, v, sizeof(v)), KVFS_SUPER_SIZE);
	assert_int_equal(kvfs_super_decode(v, sizeof(v), &sb), 0);
	sb.block_size = 3000;
	kvfs_super_encode(&sb, v);
	assert_int_equal(kv_put(db, NULL, k, kl, v, sizeof(v)), 0);
	raw_close(db);
	cycle("The superblock is corrupt; the data suggest a block size of 4096", NULL);
	fs = mount_fs();
	kvfs_info(fs, &info);
	assert_int_equal(info.block_size, 4096);
	check_big(fs, ino.f);
	kvfs_close(fs);
}

static void test_missing_root(void **state)
{
	struct kv_db *db = raw_open();
	uint8_t k[KVFS_KEY_MAX];
	struct kvfs *fs;
	struct stat st;
	uint64_t i;

	assert_int_equal(kv_delete(db, NULL, k, kvfs_key_inode(k, 1)), 0);
	raw_close(db);
	cycle("The root directory (inode 1) is missing", NULL);
	fs = mount_fs();
	assert_int_equal(kvfs_getattr(fs, 1, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_nlink, 4); /* ., lost+found, a */
	lookup(fs, 1, "a", &i);
	lookup(fs, i, "f", &i);
	check_big(fs, i);
	kvfs_close(fs);
}

static void test_bad_hash(void **state)
{
	struct kv_db *db = raw_open();
	uint8_t k[KVFS_KEY_MAX], v[KVFS_ENTRY_SIZE];
	size_t kl;
	struct kvfs *fs;
	uint64_t i;

	del_entry(db, 1, "s");
	/* The same entry under a wrong hash: a key built by hand on purpose. */
	kl = kvfs_key_entry_from(k, 1, 12345);
	memcpy(k + kl, "s", 1);
	kvfs_entry_encode(ino.s, DT_REG, v);
	assert_int_equal(kv_put(db, NULL, k, kl + 1, v, sizeof(v)), 0);
	raw_close(db);
	cycle("is stored under a wrong hash", NULL);
	fs = mount_fs();
	lookup(fs, 1, "s", &i);
	assert_int_equal(i, ino.s);
	kvfs_close(fs);
}

/* Inline data and sizes: a small file and a symlink. */
static void test_inline(void **state)
{
	struct kv_db *db = raw_open();
	struct raw_inode ri;
	struct kvfs *fs;
	char buf[16];

	get_inode(db, ino.s, &ri);
	assert_true(ri.in.flags & KVFS_IF_INLINE);
	assert_int_equal(ri.len, 5);
	ri.in.size = 3;
	ri.in.nblocks = 2;
	put_inode(db, ino.s, &ri);
	get_inode(db, ino.l, &ri);
	ri.in.size = 40;
	put_inode(db, ino.l, &ri);
	raw_close(db);
	cycle("Inline inode 6 has size 3 but 5 bytes", "Inline inode 6 counts 2 data blocks",
	      "Symlink 7 has size 40 but a 3-byte target", NULL);
	fs = mount_fs();
	assert_int_equal(kvfs_read(fs, ino.s, 0, sizeof(buf), buf), 5);
	assert_memory_equal(buf, "small", 5);
	assert_int_equal(kvfs_readlink(fs, ino.l, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "a/f", 3);
	kvfs_close(fs);
}

static void test_dir_counts(void **state)
{
	struct kv_db *db = raw_open();
	struct raw_inode ri;

	get_inode(db, ino.a, &ri);
	ri.in.nentries = 9;
	ri.in.nlink = 7;
	ri.in.parent = ino.b;
	put_inode(db, ino.a, &ri);
	raw_close(db);
	cycle("counts 9 entries but holds 3", "link count 7, should be 3", "but its entry is in 1",
	      NULL);
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
		struct fsck_io io = { null, null, null, 0 };

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
	store[strlen(store) - 5] = 0;
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
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dangling_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocator, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_super, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mounted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interactive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
	};

	if (argc > 1)
		fsck_bin = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
