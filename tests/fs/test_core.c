// SPDX-License-Identifier: MIT
/*
 * The library's core (fs/core.c): the inode allocator (numbers never
 * reused, across remounts and reservation steps), lookup and open
 * references, the reclaim of unlinked inodes at their last reference (with
 * their data and xattr keys), orphans reclaimed by the next mount, the
 * inode count statfs starts from, kvfs_open's errors, and lookups racing an
 * unlink from several threads.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fs_test_util.h"

#define ROOT KVFS_ROOT_INO

static bool exists(struct fst *t, uint64_t ino)
{
	struct stat st;

	return kvfs_getattr(t->fs, ino, &st) == 0;
}

static bool has_key(struct fst *t, const uint8_t *k, size_t klen)
{
	uint8_t v;

	return kv_get(t->fs->db, KV_READ_LATEST, k, klen, &v, 0) >= 0;
}

static bool has_orphan(struct fst *t, uint64_t ino)
{
	uint8_t k[KVFS_KEY_MAX];

	return has_key(t, k, kvfs_key_orphan(k, ino));
}

/* Keys in [prefix(type, ino), prefix(type, ino + 1)) of the committed state. */
static int count_range(struct fst *t, enum kvfs_ktype type, uint64_t ino)
{
	uint8_t lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	size_t llen = kvfs_key_prefix(lo, type, ino), hlen = kvfs_key_prefix(hi, type, ino + 1);
	struct kv_iter *it;
	int n = 0;

	assert_int_equal(kvfs_sync(t->fs), 0);
	assert_int_equal(kv_iter_create(t->fs->db, NULL, &it), 0);
	for (kv_iter_seek(it, lo, llen); kv_iter_valid(it); kv_iter_next(it)) {
		size_t klen;
		const void *k = kv_iter_key(it, &klen);

		if (memcmp(k, hi, klen < hlen ? klen : hlen) >= 0)
			break;
		n++;
	}
	assert_int_equal(kv_iter_status(it), 0);
	kv_iter_destroy(it);
	return n;
}

static int64_t used(struct fst *t)
{
	return atomic_load(&t->fs->inodes_used);
}

static struct kvfs_super read_super(struct fst *t)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE];
	struct kvfs_super sb;
	ssize_t n = kv_get(t->fs->db, KV_READ_LATEST, k, kvfs_key_super(k), v, sizeof(v));

	assert_int_equal(n, KVFS_SUPER_SIZE);
	assert_int_equal(kvfs_super_decode(v, (size_t)n, &sb), 0);
	return sb;
}

/* ---- the allocator ------------------------------------------------------ */

static void test_alloc(void **state)
{
	struct fst *t = *state;
	uint64_t prev = 2, ino, last;

	/* Past several reservation steps: strictly increasing, and the
	 * superblock always ahead of every number handed out. */
	for (unsigned i = 0; i < 3 * KVFS_INO_BATCH + 10; i++) {
		assert_int_equal(kvfs_alloc_ino(t->fs, &ino), 0);
		assert_true(ino > prev);
		prev = ino;
		if (i % 500 == 0)
			assert_true(read_super(t).ino_next > ino);
	}
	assert_true(read_super(t).ino_next > prev);
	last = prev;
	/* Never reused after a remount: new numbers start past the reserve. */
	fst_remount(t);
	assert_int_equal(kvfs_alloc_ino(t->fs, &ino), 0);
	assert_true(ino > last);
	prev = ino;
	ino = fst_file(t, ROOT, "f");
	assert_true(ino > prev);
}

static void test_alloc_read_only(void **state)
{
	struct fst *t = *state;
	struct kvfs_options o;
	uint64_t ino;

	assert_int_equal(kvfs_close(t->fs), 0);
	kvfs_options_init(&o);
	o.read_only = 1;
	assert_int_equal(kvfs_open(t->dir, &o, &t->fs, NULL, 0), 0);
	assert_int_equal(kvfs_alloc_ino(t->fs, &ino), -EROFS);
}

/* ---- references and reclaim --------------------------------------------- */

static void test_refs(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file(t, ROOT, "f");

	assert_true(kvfs_node_busy(t->fs, f));
	kvfs_node_ref(t->fs, f, 2, 0);
	kvfs_forget(t->fs, f, 2);
	assert_true(kvfs_node_busy(t->fs, f));
	kvfs_node_ref(t->fs, f, 0, 1);
	kvfs_forget(t->fs, f, 1);
	assert_true(kvfs_node_busy(t->fs, f)); /* still open */
	kvfs_node_unref(t->fs, f, 0, 1);
	assert_false(kvfs_node_busy(t->fs, f));
	/* More than held is clamped; an unknown inode is ignored. */
	kvfs_node_ref(t->fs, f, 1, 0);
	kvfs_forget(t->fs, f, 5);
	assert_false(kvfs_node_busy(t->fs, f));
	kvfs_forget(t->fs, 999999, 1);
	assert_false(kvfs_node_busy(t->fs, 999999));
	/* Dropping references to a linked inode keeps it. */
	assert_true(exists(t, f));
}

static void test_reclaim_at_last_reference(void **state)
{
	struct fst *t = *state;
	struct kvfs_entry e;
	int64_t n;

	assert_int_equal(kvfs_create(t->fs, &t->cr, ROOT, "f", 0644, 0, &e, NULL), 0);
	n = used(t);
	/* Give it a data block and an xattr so the reclaim has keys to drop. */
	assert_int_equal(kvfs_write(t->fs, e.ino, 7 * 4096ull, "data", 4, 0, NULL), 4);
	assert_int_equal(kvfs_setxattr(t->fs, e.ino, "user.a", "v", 1, 0, NULL), 0);
	assert_int_equal(count_range(t, KVFS_K_DATA, e.ino), 1);
	assert_int_equal(count_range(t, KVFS_K_XATTR, e.ino), 1);

	assert_int_equal(kvfs_unlink(t->fs, ROOT, "f", NULL), 0);
	assert_true(has_orphan(t, e.ino));
	assert_int_equal(used(t), n);
	kvfs_forget(t->fs, e.ino, 1);
	assert_true(exists(t, e.ino)); /* still open */
	assert_true(has_orphan(t, e.ino));
	kvfs_node_unref(t->fs, e.ino, 0, 1); /* release */
	assert_false(exists(t, e.ino));
	assert_false(has_orphan(t, e.ino));
	assert_int_equal(used(t), n - 1);
	assert_int_equal(count_range(t, KVFS_K_DATA, e.ino), 0);
	assert_int_equal(count_range(t, KVFS_K_XATTR, e.ino), 0);
	assert_int_equal(count_range(t, KVFS_K_ORPHAN, e.ino), 0);
	fst_remount(t);
	assert_false(exists(t, e.ino));
	assert_int_equal(used(t), n - 1);
}

static void test_orphans_at_mount(void **state)
{
	struct fst *t = *state;
	uint64_t open_file = fst_file(t, ROOT, "f"), open_dir = fst_mkdir(t, ROOT, "d");
	uint64_t kept = fst_file(t, ROOT, "kept");
	int64_t n = used(t);

	assert_int_equal(kvfs_setxattr(t->fs, open_file, "user.a", "v", 1, 0, NULL), 0);
	assert_int_equal(kvfs_unlink(t->fs, ROOT, "f", NULL), 0);
	assert_int_equal(kvfs_rmdir(t->fs, ROOT, "d", NULL), 0);
	assert_true(has_orphan(t, open_file));
	assert_true(has_orphan(t, open_dir));
	assert_int_equal(used(t), n);
	/* Unmounting with references held (a crash would do the same): the
	 * next mount finds the orphans and reclaims them. */
	fst_remount(t);
	assert_false(exists(t, open_file));
	assert_false(exists(t, open_dir));
	assert_false(has_orphan(t, open_file));
	assert_false(has_orphan(t, open_dir));
	assert_int_equal(count_range(t, KVFS_K_XATTR, open_file), 0);
	assert_true(exists(t, kept));
	assert_int_equal(used(t), n - 2);
	fst_remount(t);
	assert_int_equal(used(t), n - 2);
}

static void test_inode_count(void **state)
{
	struct fst *t = *state;
	char name[16];

	assert_int_equal(used(t), 2); /* the root and lost+found */
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		kvfs_forget(t->fs, fst_file(t, ROOT, name), 1);
	}
	assert_int_equal(used(t), 12);
	assert_int_equal(kvfs_unlink(t->fs, ROOT, "f3", NULL), 0);
	assert_int_equal(used(t), 11);
	fst_remount(t);
	assert_int_equal(used(t), 11);
}

/* ---- kvfs_open's errors ----------------------------------------------- */

/* Replace the superblock value of the (closed) store at @dir. */
static void put_super_raw(const char *dir, const void *v, size_t len)
{
	struct kv_options ko;
	struct kv_db *db;
	uint8_t k[KVFS_KEY_MAX];

	kv_options_init(&ko);
	assert_int_equal(kv_open(dir, &ko, &db), 0);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_super(k), v, len), 0);
	assert_int_equal(kv_close(db), 0);
}

static int try_open(const char *dir, char *err, size_t errlen)
{
	struct kvfs *fs;
	int e;

	err[0] = '\0';
	e = kvfs_open(dir, NULL, &fs, err, errlen);
	if (!e)
		kvfs_close(fs);
	return e;
}

static void test_open_errors(void **state)
{
	struct fst *t = *state;
	struct kvfs_super sb = read_super(t);
	uint8_t v[KVFS_SUPER_SIZE], k[KVFS_KEY_MAX];
	char err[256], *empty = kvt_mkdtemp("kvfs-empty"), *plain = kvt_mkdtemp("kvfs-plain");
	struct kv_options ko;
	struct kv_db *db;
	struct kvfs *fs2;
	struct kvfs_super bad;

	/* Already open (mounted). */
	assert_int_equal(kvfs_open(t->dir, NULL, &fs2, err, sizeof(err)), -EBUSY);
	assert_true(strlen(err) > 0);
	assert_int_equal(kvfs_close(t->fs), 0);
	t->fs = NULL;

	assert_int_equal(try_open("/nonexistent/kvfs/store", err, sizeof(err)), -ENOENT);
	assert_true(strlen(err) > 0);
	assert_int_equal(try_open(empty, err, sizeof(err)), -ENOENT);
	assert_true(strlen(err) > 0);
	/* A libkv store that is not a kvfs. */
	kv_options_init(&ko);
	ko.create_if_missing = 1;
	assert_int_equal(kv_open(plain, &ko, &db), 0);
	assert_int_equal(kv_put(db, NULL, "x", 1, "y", 1), 0);
	assert_int_equal(kv_close(db), 0);
	assert_int_equal(try_open(plain, err, sizeof(err)), -EMEDIUMTYPE);
	assert_true(strlen(err) > 0);

	/* Bad superblocks. */
	kvfs_super_encode(&sb, v);
	v[0] ^= 0xff;
	put_super_raw(t->dir, v, sizeof(v));
	assert_int_equal(try_open(t->dir, err, sizeof(err)), -EMEDIUMTYPE);
	bad = sb;
	bad.version = KVFS_FORMAT_VERSION + 1;
	kvfs_super_encode(&bad, v);
	put_super_raw(t->dir, v, sizeof(v));
	assert_int_equal(try_open(t->dir, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "newer"));
	bad = sb;
	bad.features = 1ull << 40;
	kvfs_super_encode(&bad, v);
	put_super_raw(t->dir, v, sizeof(v));
	assert_int_equal(try_open(t->dir, err, sizeof(err)), -EPROTONOSUPPORT);
	bad = sb;
	bad.block_size = 3000;
	kvfs_super_encode(&bad, v);
	put_super_raw(t->dir, v, sizeof(v));
	assert_int_equal(try_open(t->dir, err, sizeof(err)), -EUCLEAN);
	kvfs_super_encode(&sb, v);
	put_super_raw(t->dir, v, sizeof(v) - 1);
	assert_int_equal(try_open(t->dir, err, sizeof(err)), -EUCLEAN);
	/* Restored, it opens again. */
	put_super_raw(t->dir, v, sizeof(v));
	assert_int_equal(try_open(t->dir, err, sizeof(err)), 0);

	/* The root directory missing. */
	kv_options_init(&ko);
	assert_int_equal(kv_open(t->dir, &ko, &db), 0);
	assert_int_equal(kv_delete(db, NULL, k, kvfs_key_inode(k, ROOT)), 0);
	assert_int_equal(kv_close(db), 0);
	assert_int_equal(try_open(t->dir, err, sizeof(err)), -EUCLEAN);
	assert_non_null(strstr(err, "root"));

	kvt_rmrf(empty);
	kvt_rmrf(plain);
	free(empty);
	free(plain);
}

/* ---- lookups racing an unlink ------------------------------------------- */

struct racer {
	struct fst *t;
	uint64_t ino;
	atomic_int *stop;
	int found, wrong;
};

static void *look_forget(void *arg)
{
	struct racer *r = arg;
	struct kvfs_entry e;

	while (!atomic_load(r->stop)) {
		if (kvfs_lookup(r->t->fs, ROOT, "victim", &e) == 0) {
			r->wrong += e.ino != r->ino; /* no cmocka asserts off the main thread */
			r->found++;
			kvfs_forget(r->t->fs, e.ino, 1);
		}
	}
	return NULL;
}

static void test_lookup_vs_unlink(void **state)
{
	struct fst *t = *state;
	int rounds = KVT_UNDER_TSAN ? 50 : 200;
	enum { R = 3 };

	for (int round = 0; round < rounds; round++) {
		atomic_int stop = 0;
		struct racer r[R];
		pthread_t th[R];
		uint64_t ino = fst_file(t, ROOT, "victim");

		kvfs_forget(t->fs, ino, 1);
		for (int i = 0; i < R; i++) {
			r[i] = (struct racer){ .t = t, .ino = ino, .stop = &stop };
			assert_int_equal(pthread_create(&th[i], NULL, look_forget, &r[i]), 0);
		}
		assert_int_equal(kvfs_unlink(t->fs, ROOT, "victim", NULL), 0);
		atomic_store(&stop, 1);
		for (int i = 0; i < R; i++) {
			assert_int_equal(pthread_join(th[i], NULL), 0);
			assert_int_equal(r[i].wrong, 0);
		}
		/* Whoever held it last reclaimed it: nothing is left behind. */
		assert_false(kvfs_node_busy(t->fs, ino));
		assert_false(exists(t, ino));
		assert_false(has_orphan(t, ino));
	}
	assert_int_equal(used(t), 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fst_fixture_setup, fst_fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(test_alloc),
		T(test_alloc_read_only),
		T(test_refs),
		T(test_reclaim_at_last_reference),
		T(test_orphans_at_mount),
		T(test_inode_count),
		T(test_open_errors),
		T(test_lookup_vs_unlink),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
