/* SPDX-License-Identifier: MIT */
/* Helpers for the filesystem library's tests: a fresh mkfs'd store. */
#ifndef FS_TEST_UTIL_H
#define FS_TEST_UTIL_H

#include "internal.h"
#include "kv_test_util.h"

struct fst {
	char *dir; /* the store directory */
	struct kvfs *fs;
	struct kvfs_cred cr; /* uid 1000, gid 1000, umask 022 */
};

/* mkfs (block size @bs, 0 = default) + open with @dur; asserts success. */
void fst_setup(struct fst *t, uint32_t bs, enum kvfs_durability dur);
/* Close and reopen the same store (everything acknowledged must survive). */
void fst_remount(struct fst *t);
/* Close and remove the store. */
void fst_teardown(struct fst *t);

/* Shortcuts that assert success and return the new inode number. */
uint64_t fst_mkdir(struct fst *t, uint64_t parent, const char *name);
uint64_t fst_file(struct fst *t, uint64_t parent, const char *name);
/* The inode's attributes (asserts getattr succeeds). */
struct stat fst_stat(struct fst *t, uint64_t ino);
/* fst_file / fst_mkdir, then drop the lookup reference the create took, as
 * the kernel's forget would: the inode is deleted at its last unlink. */
uint64_t fst_file_unref(struct fst *t, uint64_t parent, const char *name);
uint64_t fst_mkdir_unref(struct fst *t, uint64_t parent, const char *name);

/* cmocka fixtures: *state = a struct fst set up with the default block size
 * (fst_fixture_setup) or 8 KiB blocks (fst_fixture_setup_8k), batch
 * durability; fst_fixture_teardown tears it down and frees it. */
int fst_fixture_setup(void **state);
int fst_fixture_setup_8k(void **state);
int fst_fixture_teardown(void **state);

/* ---- file data (tests of fs/data.c and fs/extent.c) ---- */

/* kvfs_write / a size change that must succeed. */
void fst_write(struct fst *t, uint64_t ino, uint64_t off, const void *buf, size_t len);
void fst_set_size(struct fst *t, uint64_t ino, uint64_t size);
/* Read [off, off + len) and compare with @want (NULL: zeros). */
void fst_expect(struct fst *t, uint64_t ino, uint64_t off, size_t len, const void *want);
/* The inode as stored (newest appended version) and its inline length. */
struct kvfs_inode fst_inode(struct fst *t, uint64_t ino, size_t *inline_len);
/* Check fs/data.c's layout invariants against the store; returns the
 * number of empty (allocated, unwritten) blocks. */
uint64_t fst_check_file(struct fst *t, uint64_t ino);
/* @n random nonzero bytes (holes stay visible). */
void fst_fill(uint8_t *p, size_t n, uint64_t *rs);
/* st_blocks of @blocks filesystem blocks. */
blkcnt_t fst_sectors(struct fst *t, uint64_t blocks);

#endif
