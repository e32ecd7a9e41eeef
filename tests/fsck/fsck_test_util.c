// SPDX-License-Identifier: MIT
/*
 * test_fsck.c's helpers: the store every test starts from, raw corruption
 * through the engine and the schema, and fsck_main() with captured output.
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

char store[256];
char *out_text, *err_text;
const struct kvfs_cred cred = { 0, 0, 0 };
struct fsck_test_inos ino;

/* ---- running fsck ------------------------------------------------------ */

static struct kv_env *run_with;

int run_env(struct kv_env *env, const char *opt)
{
	int code;

	run_with = env;
	code = run_io(NULL, 0, opt, NULL);
	run_with = NULL;
	return code;
}

int run_io(const char *input, int tty, const char *opt, const char *opt2)
{
	char *argv[5];
	size_t olen, elen;
	int argc = 0, code;
	struct fsck_io io;

	free(out_text);
	free(err_text);
	argv[argc++] = "fsck.kvfs";
	if (opt)
		argv[argc++] = (char *)opt;
	if (opt2)
		argv[argc++] = (char *)opt2;
	argv[argc++] = store;
	argv[argc] = NULL;
	io.in = fmemopen((void *)(input ? input : ""), input ? strlen(input) + 1 : 1, "r");
	io.out = open_memstream(&out_text, &olen);
	io.err = open_memstream(&err_text, &elen);
	io.tty = tty;
	io.env = run_with;
	code = fsck_main(argc, argv, &io);
	fclose(io.in);
	fclose(io.out);
	fclose(io.err);
	if (getenv("FSCK_TEST_SHOW"))
		printf("---- fsck %s %s: exit %d\n%s%s", opt ? opt : "", opt2 ? opt2 : "", code,
		       out_text, err_text);
	return code;
}

int run(const char *opt)
{
	return run_io(NULL, 0, opt, NULL);
}

void expect_out(const char *what)
{
	if (!strstr(out_text, what))
		fail_msg("'%s' not in the output:\n%s\nstderr:\n%s", what, out_text, err_text);
}

/* A digest of every key and value: "nothing changed" is the same digest. */
uint64_t digest(void)
{
	struct kv_options ko;
	struct kv_db *db;
	struct kv_iter *it;
	uint64_t h = 1469598103934665603ull;

	kv_options_init(&ko);
	ko.log_buffer_size = TEST_LOG_BUFFER;
	assert_int_equal(kv_open(store, &ko, &db), 0);
	assert_int_equal(kv_iter_create(db, NULL, &it), 0);
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = kv_iter_key(it, &kl), *v = kv_iter_value(it, &vl);

		for (size_t i = 0; i < kl; i++)
			h = (h ^ k[i]) * 1099511628211ull;
		h = (h ^ 0x100) * 1099511628211ull;
		for (size_t i = 0; i < vl; i++)
			h = (h ^ v[i]) * 1099511628211ull;
		h = (h ^ 0x200) * 1099511628211ull;
	}
	assert_int_equal(kv_iter_status(it), 0);
	kv_iter_destroy(it);
	assert_int_equal(kv_close(db), 0);
	return h;
}

/* -n finds it (and writes nothing), -y repairs it, -n is then clean. */
void cycle(const char *const *says, const char *const *yes_says)
{
	uint64_t before = digest();
	const char *const *w;

	assert_int_equal(run("-n"), 4);
	for (w = says; *w; w++)
		expect_out(*w);
	assert_true(digest() == before);
	assert_int_equal(run("-y"), 1);
	for (w = says; *w; w++)
		expect_out(*w);
	for (w = yes_says; w && *w; w++)
		expect_out(*w);
	expect_out("FILE SYSTEM WAS MODIFIED");
	if (run("-n") != 0)
		fail_msg("not clean after -y:\n%s", out_text);
	expect_out("clean");
}

/* Not problems (inodes unlinked while open, a crash's orphans): -n notes
 * them, asks nothing and exits 0 (writing nothing), -y reclaims them (exit
 * 1), and the next -n has nothing left to note. */
void cycle_notes(const char *const *notes, const char *const *yes_says)
{
	uint64_t before = digest();
	const char *const *w;

	if (run("-n") != 0)
		fail_msg("-n does not exit 0:\n%s", out_text);
	for (w = notes; *w; w++)
		expect_out(*w);
	expect_out("clean");
	assert_null(strstr(out_text, "? no"));
	assert_true(digest() == before);
	assert_int_equal(run("-y"), 1);
	for (w = yes_says; w && *w; w++)
		expect_out(*w);
	expect_out("FILE SYSTEM WAS MODIFIED");
	assert_null(strstr(out_text, "? yes"));
	if (run("-n") != 0)
		fail_msg("not clean after -y:\n%s", out_text);
	expect_out("clean");
	for (w = notes; *w; w++)
		assert_null(strstr(out_text, *w));
}

/* ---- the store --------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

struct kvfs *mount_fs(void)
{
	struct kvfs_options o;
	struct kvfs *fs;
	char err[256];

	kvfs_options_init(&o);
	o.log_buffer_size = TEST_LOG_BUFFER;
	if (kvfs_open(store, &o, &fs, err, sizeof(err)))
		fail_msg("kvfs_open: %s", err);
	return fs;
}

int setup(void **state)
{
	struct kvfs_mkfs_options mo = { 0 };
	struct kvfs_entry e;
	struct kvfs *fs;
	char err[256], buf[BIG];

	snprintf(store, sizeof(store), "/tmp/test_fsck.XXXXXX");
	assert_non_null(mkdtemp(store));
	assert_int_equal(kvfs_mkfs(store, &mo, err, sizeof(err)), 0);
	fs = mount_fs();
	assert_int_equal(kvfs_mkdir(fs, &cred, 1, "a", 0755, &e, NULL), 0);
	ino.a = e.ino;
	assert_int_equal(kvfs_mkdir(fs, &cred, ino.a, "b", 0755, &e, NULL), 0);
	ino.b = e.ino;
	assert_int_equal(kvfs_mknod(fs, &cred, ino.a, "f", S_IFREG | 0644, 0, &e, NULL), 0);
	ino.f = e.ino;
	for (int i = 0; i < BIG; i++)
		buf[i] = (char)('a' + i % 26);
	assert_int_equal(kvfs_write(fs, ino.f, 0, buf, BIG, 0, NULL), BIG);
	assert_int_equal(kvfs_link(fs, ino.f, ino.b, "f2", &e, NULL), 0);
	assert_int_equal(kvfs_mknod(fs, &cred, 1, "s", S_IFREG | 0644, 0, &e, NULL), 0);
	ino.s = e.ino;
	assert_int_equal(kvfs_write(fs, ino.s, 0, "small", 5, 0, NULL), 5);
	assert_int_equal(kvfs_symlink(fs, &cred, 1, "l", "a/f", &e, NULL), 0);
	ino.l = e.ino;
	assert_int_equal(kvfs_mknod(fs, &cred, ino.a, "p", S_IFIFO | 0644, 0, &e, NULL), 0);
	ino.p = e.ino;
	assert_int_equal(kvfs_setxattr(fs, ino.f, "user.k", "v", 1, 0, NULL), 0);
	assert_int_equal(kvfs_close(fs), 0);
	/* Some of the state in a table, some in the WAL: both are read. (Also
	 * keeps kv_check off its no-table path, whose qsort(NULL, 0) UBSan
	 * reports: kv/check.c's business, see the report.) */
	{
		struct kv_options ko;
		struct kv_db *db;

		kv_options_init(&ko);
		ko.log_buffer_size = TEST_LOG_BUFFER;
		assert_int_equal(kv_open(store, &ko, &db), 0);
		assert_int_equal(kv_flush(db), 0);
		assert_int_equal(kv_close(db), 0);
	}
	return 0;
}

int teardown(void **state)
{
	nftw(store, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- raw corruption ---------------------------------------------------- */

struct kv_db *raw_open(void)
{
	struct kv_options ko;
	struct kv_db *db;

	kv_options_init(&ko);
	ko.log_buffer_size = TEST_LOG_BUFFER;
	assert_int_equal(kv_open(store, &ko, &db), 0);
	return db;
}

void raw_close(struct kv_db *db)
{
	assert_int_equal(kv_close(db), 0);
}

void get_inode(struct kv_db *db, uint64_t i, struct raw_inode *ri)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_INODE_SIZE + sizeof(ri->inl)];
	ssize_t n = kv_get(db, 0, k, kvfs_key_inode(k, i), v, sizeof(v));
	const void *inl;

	assert_true(n >= KVFS_INODE_SIZE && n <= (ssize_t)sizeof(v));
	assert_int_equal(kvfs_inode_decode(v, (size_t)n, &ri->in, &inl, &ri->len), 0);
	if (ri->len)
		memcpy(ri->inl, inl, ri->len);
}

void put_inode(struct kv_db *db, uint64_t i, const struct raw_inode *ri)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_INODE_SIZE + sizeof(ri->inl)];
	size_t n = kvfs_inode_encode(&ri->in, ri->inl, ri->len, v);

	assert_int_equal(kv_put(db, NULL, k, kvfs_key_inode(k, i), v, n), 0);
}

void del_entry(struct kv_db *db, uint64_t dir, const char *name)
{
	uint8_t k[KVFS_KEY_MAX];

	assert_int_equal(kv_delete(db, NULL, k, kvfs_key_entry(k, dir, name, strlen(name))), 0);
}

void put_entry(struct kv_db *db, uint64_t dir, const char *name, uint64_t child, unsigned type)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_ENTRY_SIZE];

	kvfs_entry_encode(child, type, v);
	assert_int_equal(
		kv_put(db, NULL, k, kvfs_key_entry(k, dir, name, strlen(name)), v, sizeof(v)), 0);
}

void put_raw_entry(struct kv_db *db, uint64_t dir, const char *name, size_t len, uint64_t child,
		   unsigned type)
{
	uint8_t k[KVFS_KEY_MAX + 64], v[KVFS_ENTRY_SIZE];
	size_t kl = kvfs_key_entry_from(k, dir, kvfs_name_hash(name, len));

	assert_true(kl + len <= sizeof(k));
	memcpy(k + kl, name, len);
	kvfs_entry_encode(child, type, v);
	assert_int_equal(kv_put(db, NULL, k, kl + len, v, sizeof(v)), 0);
}

uint64_t get_entry(struct kv_db *db, uint64_t dir, const char *name)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_ENTRY_SIZE];
	uint64_t child;
	unsigned type;

	assert_int_equal(kv_get(db, 0, k, kvfs_key_entry(k, dir, name, strlen(name)), v, sizeof(v)),
			 KVFS_ENTRY_SIZE);
	assert_int_equal(kvfs_entry_decode(v, sizeof(v), &child, &type), 0);
	return child;
}

void put_data(struct kv_db *db, uint64_t i, uint64_t block, char fill, size_t len)
{
	uint8_t k[KVFS_KEY_MAX];
	char *v = malloc(len + 1);

	assert_non_null(v);
	memset(v, fill, len);
	assert_int_equal(kv_put(db, NULL, k, kvfs_key_data(k, i, block), v, len), 0);
	free(v);
}

/* Add @d to a directory's nentries (and nlink). */
void adjust_dir(struct kv_db *db, uint64_t dir, int d_entries, int d_nlink)
{
	struct raw_inode ri;

	get_inode(db, dir, &ri);
	ri.in.nentries += (uint64_t)(int64_t)d_entries;
	ri.in.nlink += (uint32_t)d_nlink;
	put_inode(db, dir, &ri);
}

int key_exists(uint8_t *k, size_t kl)
{
	struct kv_db *db = raw_open();
	ssize_t n = kv_get(db, 0, k, kl, NULL, 0);

	raw_close(db);
	return n >= 0;
}

void lookup(struct kvfs *fs, uint64_t dir, const char *name, uint64_t *out)
{
	struct kvfs_entry e;
	int err = kvfs_lookup(fs, dir, name, &e);

	if (err)
		fail_msg("lookup '%s' in %llu: %d", name, (unsigned long long)dir, err);
	*out = e.ino;
	kvfs_forget(fs, e.ino, 1);
}

void check_big(struct kvfs *fs, uint64_t i)
{
	char buf[BIG + 100];
	struct stat st;

	assert_int_equal(kvfs_getattr(fs, i, &st), 0);
	assert_int_equal(st.st_size, BIG);
	assert_int_equal(kvfs_read(fs, i, 0, sizeof(buf), buf), BIG);
	for (int j = 0; j < BIG; j++)
		assert_int_equal(buf[j], 'a' + j % 26);
}

struct names {
	char *v[64];
	int n, dirs;
};

static int collect(void *arg, const struct kvfs_dirent *d, int *took_ref)
{
	struct names *l = arg;

	if ((d->namelen == 1 && d->name[0] == '.') ||
	    (d->namelen == 2 && d->name[0] == '.' && d->name[1] == '.'))
		return 0;
	assert_true(l->n < 64);
	l->v[l->n++] = strndup(d->name, d->namelen);
	l->dirs += d->type == DT_DIR;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void expect_dir(struct kvfs *fs, uint64_t dir, const char *names)
{
	struct names l = { .n = 0 };
	char got[1024] = "";
	struct stat st;

	assert_int_equal(kvfs_readdir(fs, dir, 0, 0, collect, &l), 0);
	qsort(l.v, (size_t)l.n, sizeof(l.v[0]), by_name);
	for (int i = 0; i < l.n; i++) {
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "",
			 l.v[i]);
		free(l.v[i]);
	}
	if (strcmp(got, names))
		fail_msg("directory %llu holds '%s', not '%s'", (unsigned long long)dir, got,
			 names);
	assert_int_equal(kvfs_getattr(fs, dir, &st), 0);
	assert_int_equal(st.st_nlink, 2 + l.dirs);
}
