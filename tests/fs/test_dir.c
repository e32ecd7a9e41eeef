// SPDX-License-Identifier: MIT
/*
 * Directory listings and statfs (fs/dir.c): ".", "..", every entry once
 * with its type and a stable offset; resuming at any offset; readdirplus's
 * attributes and lookup references; listings that stay exactly-once while
 * the directory changes between calls; listings right after an acknowledged
 * (not yet committed) create or unlink; a directory of 100k entries; four
 * threads creating (and removing) in one directory at once, and listings
 * racing creates and removes (both also run under TSan); statfs figures
 * against the host's.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs_test_util.h"

#define ROOT KVFS_ROOT_INO

/* ---- a listing collector ------------------------------------------------ */

struct item {
	char name[KVFS_NAME_MAX + 1];
	uint64_t ino, off;
	unsigned type;
	bool has_e;
	struct kvfs_entry e;
};

struct lst {
	struct item *items;
	size_t n, cap;
	size_t per_call; /* take at most this many per kvfs_readdir call (0: all) */
	size_t this_call;
	int keep_ref; /* plus: set *took_ref */
	uint64_t last_off;
};

static int collect(void *arg, const struct kvfs_dirent *d, int *took_ref)
{
	struct lst *l = arg;
	struct item *it;

	if (l->per_call && l->this_call == l->per_call)
		return 1; /* full: this one is not taken */
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->items = realloc(l->items, l->cap * sizeof(*l->items));
		assert_non_null(l->items);
	}
	it = &l->items[l->n++];
	assert_true(d->namelen >= 1 && d->namelen <= KVFS_NAME_MAX);
	memcpy(it->name, d->name, d->namelen);
	it->name[d->namelen] = '\0';
	it->ino = d->ino;
	it->off = d->off;
	it->type = d->type;
	it->has_e = d->e != NULL;
	if (d->e)
		it->e = *d->e;
	*took_ref = l->keep_ref;
	l->this_call++;
	l->last_off = d->off;
	return 0;
}

/* List @ino completely from offset 0, per_call entries at a time. */
static void list_all(struct fst *t, uint64_t ino, int plus, struct lst *l)
{
	uint64_t prev;
	size_t before;

	l->last_off = 0;
	do {
		before = l->n;
		prev = l->last_off;
		l->this_call = 0;
		assert_int_equal(kvfs_readdir(t->fs, ino, l->last_off, plus, collect, l), 0);
		/* Offsets only grow: a listing that goes back would never end. */
		for (size_t i = before; i < l->n; i++)
			assert_true(l->items[i].off > (i > before ? l->items[i - 1].off : prev));
	} while (l->n > before && l->per_call);
}

static struct item *find(struct lst *l, const char *name)
{
	struct item *found = NULL;

	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->items[i].name, name)) {
			assert_null(found); /* listed once */
			found = &l->items[i];
		}
	}
	return found;
}

/* ---- listings ----------------------------------------------------------- */

static void test_readdir_basic(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), f = fst_file_unref(t, d, "file"),
		 s = fst_mkdir_unref(t, d, "sub");
	struct kvfs_entry e;
	struct lst l = { 0 };
	struct item *it;

	assert_int_equal(kvfs_symlink(t->fs, &t->cr, d, "link", "file", &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	assert_int_equal(kvfs_mknod(t->fs, &t->cr, d, "fifo", S_IFIFO | 0644, 0, &e, NULL), 0);
	kvfs_forget(t->fs, e.ino, 1);
	list_all(t, d, 0, &l);
	assert_int_equal(l.n, 6);
	assert_string_equal(l.items[0].name, ".");
	assert_int_equal(l.items[0].ino, d);
	assert_int_equal(l.items[0].off, 1);
	assert_int_equal(l.items[0].type, DT_DIR);
	assert_string_equal(l.items[1].name, "..");
	assert_int_equal(l.items[1].ino, ROOT);
	assert_int_equal(l.items[1].off, 2);
	assert_int_equal(l.items[1].type, DT_DIR);
	for (size_t i = 2; i < l.n; i++) {
		assert_int_equal(l.items[i].off,
				 kvfs_name_hash(l.items[i].name, strlen(l.items[i].name)));
		assert_true(l.items[i].off > l.items[i - 1].off); /* ascending */
		assert_false(l.items[i].has_e);
	}
	it = find(&l, "file");
	assert_non_null(it);
	assert_int_equal(it->ino, f);
	assert_int_equal(it->type, DT_REG);
	it = find(&l, "sub");
	assert_non_null(it);
	assert_int_equal(it->ino, s);
	assert_int_equal(it->type, DT_DIR);
	assert_int_equal(find(&l, "link")->type, DT_LNK);
	assert_int_equal(find(&l, "fifo")->type, DT_FIFO);

	/* The subdirectory's ".." is d; the root's is the root. */
	l.n = 0;
	list_all(t, s, 0, &l);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.items[1].ino, d);
	l.n = 0;
	list_all(t, ROOT, 0, &l);
	assert_int_equal(l.n, 4); /* ., .., lost+found, d */
	assert_int_equal(l.items[1].ino, ROOT);
	assert_non_null(find(&l, "lost+found"));
	assert_non_null(find(&l, "d"));
	free(l.items);
}

static void test_readdir_resume(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d");
	struct lst all = { 0 }, one = { .per_call = 1 }, from = { 0 };
	char name[32];

	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "e%d", i);
		fst_file_unref(t, d, name);
	}
	list_all(t, d, 0, &all);
	assert_int_equal(all.n, 52);
	/* One entry per call, resuming at the offset of the last one. */
	list_all(t, d, 0, &one);
	assert_int_equal(one.n, all.n);
	for (size_t i = 0; i < all.n; i++) {
		assert_string_equal(one.items[i].name, all.items[i].name);
		assert_int_equal(one.items[i].off, all.items[i].off);
	}
	/* Resuming at any entry's offset gives exactly the entries after it. */
	for (size_t i = 0; i < all.n; i++) {
		from.n = 0;
		assert_int_equal(kvfs_readdir(t->fs, d, all.items[i].off, 0, collect, &from), 0);
		assert_int_equal(from.n, all.n - i - 1);
		if (from.n)
			assert_string_equal(from.items[0].name, all.items[i + 1].name);
	}
	/* An offset past every hash: nothing. */
	from.n = 0;
	assert_int_equal(kvfs_readdir(t->fs, d, UINT64_MAX >> 1, 0, collect, &from), 0);
	assert_int_equal(from.n, 0);
	assert_int_equal(kvfs_readdir(t->fs, d, UINT64_MAX, 0, collect, &from), 0);
	assert_int_equal(from.n, 0);
	free(all.items);
	free(one.items);
	free(from.items);
}

static void test_readdir_plus(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), f = fst_file_unref(t, d, "f"),
		 s = fst_mkdir_unref(t, d, "s");
	struct lst l = { .keep_ref = 1 }, stop = { .per_call = 3 };
	struct item *it;
	struct stat st;

	list_all(t, d, 1, &l);
	assert_int_equal(l.n, 4);
	for (size_t i = 0; i < l.n; i++) {
		it = &l.items[i];
		assert_true(it->has_e);
		assert_int_equal(it->e.ino, it->ino);
		assert_int_equal(it->e.generation, 1);
		st = fst_stat(t, it->ino);
		assert_int_equal(it->e.attr.st_mode, st.st_mode);
		assert_int_equal(it->e.attr.st_nlink, st.st_nlink);
		assert_int_equal(it->e.attr.st_ino, it->ino);
		/* Kept: one lookup reference each. */
		assert_true(kvfs_node_busy(t->fs, it->ino));
		kvfs_forget(t->fs, it->ino, 1);
	}
	assert_int_equal(find(&l, "f")->e.attr.st_mode, S_IFREG | 0644);
	assert_int_equal(find(&l, "s")->e.attr.st_nlink, 2);
	assert_int_equal(find(&l, "..")->ino, ROOT);
	assert_false(kvfs_node_busy(t->fs, f));
	assert_false(kvfs_node_busy(t->fs, s));
	assert_false(kvfs_node_busy(t->fs, d));

	/* Not kept (took_ref 0), or refused (the callback stopped at it): the
	 * library drops the reference. */
	l.n = 0;
	l.keep_ref = 0;
	list_all(t, d, 1, &l);
	assert_int_equal(l.n, 4);
	assert_false(kvfs_node_busy(t->fs, f));
	assert_false(kvfs_node_busy(t->fs, s));
	stop.keep_ref = 1;
	stop.this_call = 0;
	assert_int_equal(kvfs_readdir(t->fs, d, 0, 1, collect, &stop), 0);
	assert_int_equal(stop.n, 3);
	assert_true(kvfs_node_busy(t->fs, stop.items[2].ino));
	kvfs_forget(t->fs, stop.items[2].ino, 1);
	assert_false(kvfs_node_busy(t->fs, f));
	assert_false(kvfs_node_busy(t->fs, s));
	kvfs_forget(t->fs, d, 1);
	kvfs_forget(t->fs, ROOT, 1);
	free(l.items);
	free(stop.items);
}

static void test_readdir_errors(void **state)
{
	struct fst *t = *state;
	uint64_t f = fst_file_unref(t, ROOT, "f"), d = fst_mkdir(t, ROOT, "d");
	struct lst l = { 0 };

	assert_int_equal(kvfs_readdir(t->fs, f, 0, 0, collect, &l), -ENOTDIR);
	assert_int_equal(kvfs_readdir(t->fs, 999999, 0, 0, collect, &l), -ENOENT);
	assert_int_equal(kvfs_rmdir(t->fs, ROOT, "d", NULL), 0);
	assert_int_equal(kvfs_readdir(t->fs, d, 0, 0, collect, &l), -ENOENT);
	assert_int_equal(l.n, 0);
	kvfs_forget(t->fs, d, 1);
	free(l.items);
}

/*
 * Entries come and go between the calls of one listing. Every entry there
 * from start to end must come exactly once; no name may come twice.
 */
static void test_readdir_changes(void **state)
{
	struct fst *t = *state;
	enum { STABLE = 1500, CHUNK = 37 };
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), rs = kvt_seed("readdir_changes");
	struct lst l = { .per_call = CHUNK };
	int nvol = 0, vol_lo = 0, calls = 0;
	char name[32];
	size_t before;

	for (int i = 0; i < STABLE; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		fst_file_unref(t, d, name);
	}
	for (; nvol < 300; nvol++) {
		snprintf(name, sizeof(name), "v%d", nvol);
		fst_file_unref(t, d, name);
	}
	l.last_off = 0;
	do {
		before = l.n;
		l.this_call = 0;
		assert_int_equal(kvfs_readdir(t->fs, d, l.last_off, 0, collect, &l), 0);
		calls++;
		/* Between calls: remove some volatile entries, add others. */
		for (int k = 0; k < 10; k++) {
			snprintf(name, sizeof(name), "v%d", nvol++);
			fst_file_unref(t, d, name);
			if (kvt_rand(&rs) % 2 && vol_lo < nvol - 1) {
				snprintf(name, sizeof(name), "v%d", vol_lo++);
				assert_int_equal(kvfs_unlink(t->fs, d, name, NULL), 0);
			}
		}
		if (calls % 5 == 0)
			fst_remount(t); /* offsets survive a remount too */
	} while (l.n > before);
	assert_true(calls > STABLE / CHUNK);
	for (int i = 0; i < STABLE; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		assert_non_null(find(&l, name));
	}
	/* Names listed: each once, and each one that existed at some time. */
	for (size_t i = 0; i < l.n; i++) {
		const char *nm = l.items[i].name;

		if (i < 2)
			continue;
		assert_true(nm[0] == 's' || nm[0] == 'v');
		assert_true(atoi(nm + 1) < (nm[0] == 's' ? STABLE : nvol));
		for (size_t j = i + 1; j < l.n; j++)
			assert_true(strcmp(nm, l.items[j].name));
	}
	free(l.items);
}

/*
 * Batch durability acknowledges at append: a listing right after a create or
 * an unlink (long before its group commit) must show it, as a lookup would.
 * Each round creates one name and removes the one before, then lists (plain
 * and plus): exactly ".", "..", the new name.
 */
static void test_readdir_after_ack(void **state)
{
	struct fst *t = *state;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d"), ino = 0;
	char name[32];

	for (int i = 0; i < 300; i++) {
		struct lst l = { 0 };
		uint64_t prev = ino;

		snprintf(name, sizeof(name), "a%d", i);
		ino = fst_file_unref(t, d, name);
		if (i) {
			char old[32];

			snprintf(old, sizeof(old), "a%d", i - 1);
			assert_int_equal(kvfs_unlink(t->fs, d, old, NULL), 0);
		}
		list_all(t, d, i % 2, &l);
		assert_int_equal(l.n, 3);
		assert_non_null(find(&l, name));
		assert_int_equal(find(&l, name)->ino, ino);
		assert_true(ino != prev);
		if (i % 2) {
			assert_true(find(&l, name)->has_e);
			assert_int_equal(find(&l, name)->e.attr.st_nlink, 1);
		}
		free(l.items);
	}
}

/* ---- a big directory ---------------------------------------------------- */

struct counter {
	uint32_t *seen;
	size_t n, others, per_call, this_call;
	uint64_t last_off;
};

static int count_fn(void *arg, const struct kvfs_dirent *d, int *took_ref)
{
	struct counter *c = arg;
	char buf[16];

	if (c->this_call == c->per_call)
		return 1;
	c->this_call++;
	c->last_off = d->off;
	if (d->namelen == 7 && d->name[0] == 'f') {
		memcpy(buf, d->name + 1, 6);
		buf[6] = '\0';
		c->seen[atoi(buf)]++;
	} else {
		c->others++;
	}
	c->n++;
	*took_ref = 0;
	return 0;
}

static void test_readdir_100k(void **state)
{
	struct fst *t = *state;
	enum { N = 100000 };
	struct counter c = { .per_call = 1000 };
	uint64_t d = fst_mkdir_unref(t, ROOT, "big");
	struct kvfs_entry e;
	char name[16];
	size_t before;

	c.seen = calloc(N, sizeof(*c.seen));
	assert_non_null(c.seen);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%06d", i);
		assert_int_equal(kvfs_mknod(t->fs, &t->cr, d, name, S_IFREG | 0644, 0, &e, NULL),
				 0);
		kvfs_forget(t->fs, e.ino, 1);
	}
	assert_int_equal(fst_stat(t, d).st_nlink, 2);
	do {
		before = c.n;
		c.this_call = 0;
		assert_int_equal(kvfs_readdir(t->fs, d, c.last_off, 0, count_fn, &c), 0);
		assert_true(c.n <= N + 2); /* no entry twice, and no endless listing */
	} while (c.n > before);
	assert_int_equal(c.others, 2);
	assert_int_equal(c.n, N + 2);
	for (int i = 0; i < N; i++)
		assert_int_equal(c.seen[i], 1);
	free(c.seen);
}

/* ---- concurrency -------------------------------------------------------- */

enum { THREADS = 4 };

struct worker {
	struct fst *t;
	uint64_t dir;
	int id, n;
	uint64_t *inos; /* [n] */
	int err;
};

static void *creator(void *arg)
{
	struct worker *w = arg;
	struct kvfs_entry e;
	char name[32];

	for (int i = 0; i < w->n && !w->err; i++) {
		snprintf(name, sizeof(name), "t%d-%d", w->id, i);
		if (i % 10 == 9)
			w->err = kvfs_mkdir(w->t->fs, &w->t->cr, w->dir, name, 0755, &e, NULL);
		else
			w->err = kvfs_create(w->t->fs, &w->t->cr, w->dir, name, 0644, 0, &e, NULL);
		if (w->err)
			break;
		w->inos[i] = e.ino;
		kvfs_node_unref(w->t->fs, e.ino, 1, i % 10 == 9 ? 0 : 1);
		/* Every third file goes again, so removes race with creates. */
		if (i % 3 == 2 && i % 10 != 9) {
			w->err = kvfs_unlink(w->t->fs, w->dir, name, NULL);
			w->inos[i] = 0;
		}
	}
	return NULL;
}

static void test_concurrent_create(void **state)
{
	struct fst *t = *state;
	int per = KVT_UNDER_TSAN ? 300 : 1000;
	uint64_t d = fst_mkdir_unref(t, ROOT, "shared");
	struct worker w[THREADS];
	pthread_t th[THREADS];
	struct lst l = { .per_call = 100 };
	int files = 0, dirs = 0;
	int64_t used0 = atomic_load(&t->fs->inodes_used);

	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .t = t, .dir = d, .id = i, .n = per };
		w[i].inos = calloc((size_t)per, sizeof(uint64_t));
		assert_int_equal(pthread_create(&th[i], NULL, creator, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].err, 0);
	}
	for (int i = 0; i < THREADS; i++) {
		for (int j = 0; j < per; j++) {
			if (j % 10 == 9)
				dirs++;
			else if (j % 3 != 2)
				files++;
		}
	}
	assert_int_equal(fst_stat(t, d).st_nlink, 2 + dirs);
	assert_int_equal(atomic_load(&t->fs->inodes_used), used0 + files + dirs);
	fst_remount(t);
	list_all(t, d, 0, &l);
	assert_int_equal(l.n, 2 + files + dirs);
	assert_int_equal(fst_stat(t, d).st_nlink, 2 + dirs);
	/* Every surviving name maps to its own inode, listed once. */
	for (int i = 0; i < THREADS; i++) {
		for (int j = 0; j < per; j++) {
			char name[32];
			struct item *it;

			snprintf(name, sizeof(name), "t%d-%d", i, j);
			it = find(&l, name);
			if (!w[i].inos[j]) {
				assert_null(it);
				continue;
			}
			assert_non_null(it);
			assert_int_equal(it->ino, w[i].inos[j]);
			for (int k = 0; k < i; k++)
				for (int m = 0; m < per; m++)
					assert_true(!w[i].inos[j] || w[k].inos[m] != w[i].inos[j]);
		}
	}
	for (int i = 0; i < THREADS; i++)
		free(w[i].inos);
	free(l.items);
}

struct churner {
	struct fst *t;
	uint64_t dir;
	int id;
	atomic_int *stop;
	int err;
};

/* Create and remove volatile entries until told to stop. */
static void *churn(void *arg)
{
	struct churner *c = arg;
	struct kvfs_entry e;
	char name[32];

	for (int i = 0; !atomic_load(c->stop) && !c->err; i++) {
		snprintf(name, sizeof(name), "v%d-%d", c->id, i);
		c->err = kvfs_mknod(c->t->fs, &c->t->cr, c->dir, name, S_IFREG | 0644, 0, &e, NULL);
		if (c->err)
			break;
		kvfs_forget(c->t->fs, e.ino, 1);
		if (i >= 20) {
			snprintf(name, sizeof(name), "v%d-%d", c->id, i - 20);
			c->err = kvfs_unlink(c->t->fs, c->dir, name, NULL);
		}
	}
	return NULL;
}

/* Listings (plain and plus) while two threads change the directory. */
static void test_readdir_concurrent(void **state)
{
	struct fst *t = *state;
	enum { STABLE = 500, CHURNERS = 2 };
	int listings = KVT_UNDER_TSAN ? 4 : 12;
	uint64_t d = fst_mkdir_unref(t, ROOT, "d");
	struct churner c[CHURNERS];
	pthread_t th[CHURNERS];
	atomic_int stop = 0;
	char name[32];
	int bad = 0;

	for (int i = 0; i < STABLE; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		fst_file_unref(t, d, name);
	}
	for (int i = 0; i < CHURNERS; i++) {
		c[i] = (struct churner){ .t = t, .dir = d, .id = i, .stop = &stop };
		assert_int_equal(pthread_create(&th[i], NULL, churn, &c[i]), 0);
	}
	/* Failures are counted, not asserted, until the threads are joined. */
	for (int round = 0; round < listings && !bad; round++) {
		struct lst l = { .per_call = 16 + (size_t)round };
		int stable = 0, err = 0;
		size_t before;

		do {
			before = l.n;
			l.this_call = 0;
			err = kvfs_readdir(t->fs, d, l.last_off, round % 2, collect, &l);
		} while (!err && l.n > before && l.n < 4 * (STABLE + 1000));
		bad += err != 0;
		for (size_t i = 0; i < l.n; i++) {
			const char *nm = l.items[i].name;

			stable += nm[0] == 's';
			for (size_t j = i + 1; j < l.n; j++)
				bad += !strcmp(nm, l.items[j].name);
			bad += l.items[i].has_e && l.items[i].e.ino != l.items[i].ino;
		}
		bad += stable != STABLE;
		free(l.items);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < CHURNERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(c[i].err, 0);
	}
	assert_int_equal(bad, 0);
	assert_int_equal(fst_stat(t, d).st_nlink, 2);
}

/* ---- statfs ------------------------------------------------------------- */

static void test_statfs(void **state)
{
	struct fst *t = *state;
	struct statvfs st, host;
	uint64_t f;

	assert_int_equal(kvfs_statfs(t->fs, &st), 0);
	assert_int_equal(statvfs(t->dir, &host), 0);
	assert_int_equal(st.f_bsize, 8192);
	assert_int_equal(st.f_frsize, 8192);
	assert_int_equal(st.f_namemax, 255);
	/* The host's space in our block size (figures may move a little
	 * between the two calls: compare within a few blocks). */
	assert_true(llabs((long long)st.f_blocks -
			  (long long)(host.f_blocks * host.f_frsize / 8192)) <= 1);
	assert_true(llabs((long long)st.f_bavail -
			  (long long)(host.f_bavail * host.f_frsize / 8192)) < 1024);
	assert_true(st.f_bfree >= st.f_bavail);
	assert_true(st.f_blocks >= st.f_bfree);
	/* Inodes in use: the root and lost+found. */
	assert_int_equal(st.f_files - st.f_ffree, 2);
	assert_true(st.f_ffree > 0);
	f = fst_file_unref(t, ROOT, "f");
	fst_mkdir_unref(t, ROOT, "d");
	assert_int_equal(kvfs_statfs(t->fs, &st), 0);
	assert_int_equal(st.f_files - st.f_ffree, 4);
	fst_remount(t);
	assert_int_equal(kvfs_statfs(t->fs, &st), 0);
	assert_int_equal(st.f_files - st.f_ffree, 4);
	assert_int_equal(kvfs_unlink(t->fs, ROOT, "f", NULL), 0);
	assert_int_equal(kvfs_statfs(t->fs, &st), 0);
	assert_int_equal(st.f_files - st.f_ffree, 3);
	(void)f;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fst_fixture_setup, fst_fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(test_readdir_basic),
		T(test_readdir_resume),
		T(test_readdir_plus),
		T(test_readdir_errors),
		T(test_readdir_changes),
		T(test_readdir_after_ack),
		T(test_readdir_100k),
		T(test_concurrent_create),
		T(test_readdir_concurrent),
		cmocka_unit_test_setup_teardown(test_statfs, fst_fixture_setup_8k,
						fst_fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
