/* SPDX-License-Identifier: MIT */
/* Helpers of test_fsck.c: a populated store, raw corruption, running fsck. */
#ifndef FSCK_TEST_UTIL_H
#define FSCK_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fsck.h"
#include "kv.h"
#include "kvfs.h"
#include "schema.h"

extern char store[256];
extern char *out_text, *err_text;
extern const struct kvfs_cred cred;
struct fsck_test_inos {
	uint64_t a, b, f, s, l, p;
};
extern struct fsck_test_inos ino;

#define BIG 10000 /* /a/f: three blocks of 4096 */

struct raw_inode {
	struct kvfs_inode in;
	uint8_t inl[8192]; /* room for an oversized symlink */
	size_t len;
};

/* The engine's log buffer (and WAL segment) of every open in the tests: each
 * open zero-fills a new segment of this size. */
#define TEST_LOG_BUFFER (1u << 20)

int run_io(const char *input, int tty, const char *opt, const char *opt2);
/* run_io with the engine's I/O through @env. */
int run_env(struct kv_env *env, const char *opt);
int run(const char *opt);
void expect_out(const char *what);
uint64_t digest(void);
/* -n finds it, -y repairs it, -n is clean; NULL-ended phrase lists: @says
 * in both first reports, @yes_says (may be NULL) in the repair's. */
void cycle(const char *const *says, const char *const *yes_says);
/* Notes, not problems: -n exit 0 with every @notes phrase, -y exit 1 with
 * every @yes_says phrase, then -n exit 0 without the notes. */
void cycle_notes(const char *const *notes, const char *const *yes_says);
struct kvfs *mount_fs(void);
int setup(void **state);
int teardown(void **state);
struct kv_db *raw_open(void);
void raw_close(struct kv_db *db);
void get_inode(struct kv_db *db, uint64_t i, struct raw_inode *ri);
void put_inode(struct kv_db *db, uint64_t i, const struct raw_inode *ri);
void del_entry(struct kv_db *db, uint64_t dir, const char *name);
void put_entry(struct kv_db *db, uint64_t dir, const char *name, uint64_t child, unsigned type);
/* An entry with any bytes as its name (empty, too long, with '/' or NUL). */
void put_raw_entry(struct kv_db *db, uint64_t dir, const char *name, size_t len, uint64_t child,
		   unsigned type);
uint64_t get_entry(struct kv_db *db, uint64_t dir, const char *name);
void put_data(struct kv_db *db, uint64_t i, uint64_t block, char fill, size_t len);
void adjust_dir(struct kv_db *db, uint64_t dir, int d_entries, int d_nlink);
int key_exists(uint8_t *k, size_t kl);
void lookup(struct kvfs *fs, uint64_t dir, const char *name, uint64_t *out);
void check_big(struct kvfs *fs, uint64_t i);
/* The names in directory @dir, sorted, space-separated, must be @names; its
 * link count must be 2 + its subdirectories. */
void expect_dir(struct kvfs *fs, uint64_t dir, const char *names);

#endif
