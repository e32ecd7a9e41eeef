/* SPDX-License-Identifier: MIT */
/*
 * test_corrupt.c - damaged stores, end to end through kv_open, kv_get,
 * kv_iter, kv_compact and kv_check (the issue: "Corruption: flip bytes in a
 * table block, index, filter, footer and manifest: a clear error that names
 * the file and offset; no crash; the check finds each one"). test_table.c
 * covers one table file alone; this test covers what a store makes of it.
 *
 * The group setup builds one store (the template) and never opens it again,
 * so its manifest keeps every record of the session that built it:
 *
 *   phase A  keys 0 .. 2999 (version 1), point deletes, a range delete;
 *            kv_compact: all of it in level 1, several tables (64 KiB target);
 *   phase B  keys n % 7 == 0 rewritten (version 2), keys 3000 .. 4999 new, a
 *            range delete [3500, 3520) among them, point deletes of some
 *            level-1 keys; two kv_flush: several level-0 tables;
 *   tail     keys 5000 .. 5049, left in the WAL at close.
 *
 * Every key is written at most once per phase, so the newest version of a key
 * lives in exactly one place: level 0, level 1 or the WAL (home()). g.ver is
 * the expected state of every key.
 *
 * The test reads the template's files the way kv/FORMAT.md, kv/manifest.c and
 * kv/table_fmt.h describe them, with its own decoder and the little-endian
 * helpers of kv/wal.h: CURRENT, the manifest's records and the shape they
 * build, each table's footer and the blocks its handles locate (filter,
 * range-del, properties, index), and the data blocks the index lists.
 *
 * Each case copies the template, damages one region of one file of the copy
 * and asserts, in this order (a successful kv_open rewrites the manifest, so
 * the check goes first):
 *   1. kv_check returns > 0 and a problem names the file (basename) at an
 *      offset inside the damaged region (a block: [contents, trailer end));
 *   2. kv_open fails with -EUCLEAN or -EBADMSG (or the errno the format
 *      documents) and a log line names the file and "offset N", N inside the
 *      region; or, for a data block (read only on use), kv_open succeeds,
 *      every key whose newest version is in the block reads as -EBADMSG or
 *      -EUCLEAN (never a value, never -ENOENT) with such a log line, every
 *      key a lookup cannot route through the block reads as the model says, a
 *      full scan returns a gap-free correct prefix covering every key before
 *      the block and ends with kv_iter_status < 0, a scan from past the block
 *      returns the rest exactly, and kv_compact fails without laundering the
 *      damage or losing anything;
 *   3. nothing crashes (the Debug build runs under ASan and UBSan).
 * A damaged or cut-short last manifest record follows the manifest's rule
 * (kv/manifest.h): it is dropped with a warning naming the file and offset,
 * and kv_check reports it; the open then has every acknowledged write or fails
 * naming what is missing, never opens with less.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_test_util.h"
#include "manifest.h"
#include "table.h"
#include "wal.h"

/* The test's own reading of the formats. */
#define TBL_TRAILER 16u
#define TBL_FOOTER 88u
#define TBL_MAGIC "LVKVTBL1"
#define MAN_MAGIC "LVKVMAN1"
#define MAN_HDR 32u
#define MAN_REC_HDR 16u
#define IDENT_NAME "KVSTORE"
#define IDENT_SIZE 64u
#define CURRENT_LEN 26u

#define NA 3000u     /* phase A: keys [0, NA) */
#define NB_END 5000u /* phase B adds [NA, NB_END) */
#define NKEYS 5050u  /* the WAL tail: [NB_END, NKEYS) */
#define KEY_LEN 9u   /* "key%06u" */
#define VAL_MAX 128u
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- keys, values, the model ------------------------------------------------- */

static size_t key_of(unsigned n, char *k)
{
	snprintf(k, KEY_LEN + 1, "key%06u", n % 1000000u);
	return KEY_LEN;
}

/* The number of user key @k, or -1 if it is not one of ours. */
static int key_no(const void *k, size_t len)
{
	char buf[KEY_LEN + 1];

	if (len != KEY_LEN || memcmp(k, "key", 3))
		return -1;
	memcpy(buf, k, KEY_LEN);
	buf[KEY_LEN] = '\0';
	return atoi(buf + 3);
}

static size_t value_of(unsigned n, unsigned ver, char *v)
{
	size_t len = 24 + (n * 37u + ver * 11u) % 97u;
	int h = snprintf(v, VAL_MAX, "v%u/%06u/", ver % 10u, n % 1000000u);

	for (size_t i = (size_t)h; i < len; i++)
		v[i] = (char)('a' + (n * 7u + i * (ver + 3u)) % 26u);
	return len;
}

static int b_deletes(unsigned n)
{
	return n < NA && n % 50 == 9 && n % 7 != 0;
}

/* Where the newest version of key @n is: level 0 or 1, or -1 (the WAL).
 * Phase-A keys phase B did not touch stay in level 1 (or nowhere if deleted:
 * a compaction into the bottom level drops them). */
static int home(unsigned n)
{
	if (n >= NB_END)
		return -1;
	return n >= NA || n % 7 == 0 || b_deletes(n) ? 0 : 1;
}

/* ---- what the test knows about the template ------------------------------------- */

struct region {
	uint64_t off, size; /* contents; a block's 16-byte trailer follows */
};

static uint64_t blk_end(const struct region *r)
{
	return r->off + r->size + TBL_TRAILER;
}

struct dblock {
	struct region r;
	int last; /* the number of its last user key */
};

struct tbl {
	char name[64];
	uint64_t file_no, size;
	uint32_t level;
	struct region filter, rangedel, props, index;
	uint64_t footer; /* offset of the 88-byte footer */
	uint64_t rangedels;
	struct dblock *blk; /* from the index, in file order */
	size_t nblk;
};

struct mrec {
	uint64_t off, end; /* [16-byte header, then the edit) */
};

static struct {
	char *dir;	    /* the template; never opened after the build */
	uint8_t ver[NKEYS]; /* the model: 0 absent, else the value's version */
	char manifest[32];  /* the live manifest's name */
	struct mrec *rec;
	size_t nrec;
	struct tbl *t;
	size_t nt;
	const struct tbl *t0, *t1; /* level 0 with range tombstones; mid level 1 */
	char *copy;		   /* the damaged copy of the running case */
	struct kv_db *db;	   /* open on it, if any */
} g;

/* ---- files ------------------------------------------------------------------------ */

static char *path_of(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

static uint8_t *slurp(const char *dir, const char *name, size_t *n)
{
	char *path = path_of(dir, name);
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long len;

	free(path);
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	assert_true(len >= 0);
	rewind(fp);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	*n = (size_t)len;
	return buf;
}

static void copy_file(const char *dir, const char *name)
{
	char *from = path_of(g.dir, name), *to = path_of(dir, name);
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
	uint8_t buf[65536];
	ssize_t r;

	free(from);
	free(to);
	assert_true(in >= 0 && out >= 0);
	while ((r = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)r), r);
	assert_int_equal(r, 0);
	close(in);
	assert_int_equal(close(out), 0);
}

/* A fresh copy of the template (every file), removed by drop_copy() or by
 * the teardown of a failed test. */
static const char *new_copy(void)
{
	DIR *d = opendir(g.dir);
	struct dirent *e;

	assert_null(g.copy);
	g.copy = kvt_mkdtemp("corrupt");
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_type == DT_REG)
			copy_file(g.copy, e->d_name);
	closedir(d);
	return g.copy;
}

static void drop_copy(void)
{
	kvt_rmrf(g.copy);
	free(g.copy);
	g.copy = NULL;
}

enum damage { FLIP, CUT, APPEND, REMOVE };

/* FLIP: XOR byte @arg with 0x20 (or the mask flip_with() puts in @arg's top
 * byte); CUT: truncate to @arg bytes; APPEND: one more byte @arg; REMOVE. */
static void damage(const char *dir, const char *name, enum damage how, uint64_t arg)
{
	char *path = path_of(dir, name);
	int fd = how == REMOVE ? -1 : open(path, how == APPEND ? O_WRONLY | O_APPEND : O_RDWR);
	uint64_t off = arg & ((1ull << 56) - 1);
	uint8_t b = (uint8_t)arg;

	assert_true(fd >= 0 || how == REMOVE);
	switch (how) {
	case FLIP:
		assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
		b ^= arg >> 56 ? (uint8_t)(arg >> 56) : 0x20;
		assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
		break;
	case CUT:
		assert_int_equal(ftruncate(fd, (off_t)arg), 0);
		break;
	case APPEND:
		assert_int_equal(write(fd, &b, 1), 1);
		break;
	case REMOVE:
		assert_int_equal(unlink(path), 0);
		break;
	}
	if (fd >= 0)
		assert_int_equal(close(fd), 0);
	free(path);
}

/* A FLIP argument that XORs byte @off with @mask instead of 0x20. */
static uint64_t flip_with(uint64_t off, uint8_t mask)
{
	return off | (uint64_t)mask << 56;
}

/* ---- what the engine said: kv_check reports and log lines ----------------------- */

static struct rep {
	int n;
	struct {
		char file[64]; /* basename */
		uint64_t off;
	} r[256];
	char text[8192]; /* for failure messages */
	size_t len;
} rep;

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

static void on_report(void *arg, const char *file, uint64_t off, const char *problem)
{
	struct rep *r = arg;
	int w;

	if (r->n < (int)ARRAY_SIZE(r->r)) {
		snprintf(r->r[r->n].file, sizeof(r->r[0].file), "%s", base_name(file));
		r->r[r->n].off = off;
	}
	r->n++;
	w = snprintf(r->text + r->len, sizeof(r->text) - r->len, "  %s: offset %llu: %s\n",
		     base_name(file), (unsigned long long)off, problem);
	if (w > 0 && (size_t)w < sizeof(r->text) - r->len)
		r->len += (size_t)w;
}

/* kv_check of @dir finds a problem in @name at an offset in [lo, hi). */
static void check_finds(const char *dir, const char *name, uint64_t lo, uint64_t hi,
			const char *what)
{
	int n;

	memset(&rep, 0, sizeof(rep));
	n = kv_check(dir, NULL, on_report, &rep);
	for (int i = 0; n > 0 && i < rep.n && i < (int)ARRAY_SIZE(rep.r); i++)
		if (!strcmp(rep.r[i].file, name) && rep.r[i].off >= lo && rep.r[i].off < hi)
			return;
	fail_msg("%s: kv_check = %d; expected a problem in %s at an offset in [%llu, %llu); "
		 "reports:\n%s",
		 what, n, name, (unsigned long long)lo, (unsigned long long)hi, rep.text);
}

/* 1 if a line of @text names @name and, after it, "offset N" with N in
 * [lo, hi) (the first "offset" after the name). */
static int log_names(const char *text, const char *name, uint64_t lo, uint64_t hi)
{
	const char *line = text;

	while (*line) {
		const char *eol = strchrnul(line, '\n');
		const char *at = memmem(line, (size_t)(eol - line), name, strlen(name));
		const char *o = at ? memmem(at, (size_t)(eol - at), "offset ", 7) : NULL;

		if (o) {
			uint64_t v = strtoull(o + 7, NULL, 10);

			if (v >= lo && v < hi)
				return 1;
		}
		line = *eol ? eol + 1 : eol;
	}
	return 0;
}

static void log_clear(struct kvt_log *log)
{
	log->len = 0;
	log->text[0] = '\0';
}

/* ---- the engine ------------------------------------------------------------------- */

static void store_options(struct kv_options *o, struct kvt_log *log)
{
	kvt_options(o, NULL, log);
	o->create_if_missing = 0; /* a damaged store is never to be recreated */
	o->log_buffer_size = 64u << 10;
	o->manual_background = 1;
	o->max_immutable = 16;
	o->table_target_size = 64u << 10;
}

static void check_ok(int err, const char *what, const struct kvt_log *log)
{
	if (err)
		fail_msg("%s = %d (%s); log:\n%s", what, err, strerror(-err), log->text);
}

/* Open the case's copy; it is closed by db_close() or the teardown. */
static void db_open(const char *dir, struct kvt_log *log, const char *what)
{
	struct kv_options o;

	store_options(&o, log);
	log_clear(log);
	assert_null(g.db);
	check_ok(kv_open(dir, &o, &g.db), what, log);
}

static void db_close(const struct kvt_log *log)
{
	int err = kv_close(g.db);

	g.db = NULL;
	check_ok(err, "kv_close", log);
}

/* kv_open of @dir fails with -EUCLEAN, -EBADMSG or @alt, and a log line
 * names @name at an offset in [lo, hi). */
static void open_fails(const char *dir, const char *name, uint64_t lo, uint64_t hi, int alt,
		       const char *what)
{
	struct kvt_log log = { 0 };
	struct kv_options o;
	int err;

	store_options(&o, &log);
	err = kv_open(dir, &o, &g.db);
	if (!err)
		fail_msg("%s: kv_open succeeded; log:\n%s", what, log.text);
	if (err != -EUCLEAN && err != -EBADMSG && (!alt || err != alt))
		fail_msg("%s: kv_open = %d (%s), expected -EUCLEAN or -EBADMSG%s; log:\n%s", what,
			 err, strerror(-err), alt ? " (or the documented alternative)" : "",
			 log.text);
	if (!log_names(log.text, name, lo, hi))
		fail_msg("%s: kv_open = %d, but no log line names %s at an offset in [%llu, %llu); "
			 "log:\n%s",
			 what, err, name, (unsigned long long)lo, (unsigned long long)hi, log.text);
}

/* Damage @name in a fresh copy; the region is [lo, hi). */
static void file_case(const char *name, enum damage how, uint64_t arg, uint64_t lo, uint64_t hi,
		      int alt, const char *kind)
{
	const unsigned long long a = arg & ((1ull << 56) - 1);
	const char *dir = new_copy();
	char what[192];
	size_t n = (size_t)snprintf(what, sizeof(what), "%s%s%s: ", kind, *kind ? " " : "", name);

	if (how == FLIP)
		snprintf(what + n, sizeof(what) - n, "byte %llu flipped", a);
	else if (how == CUT)
		snprintf(what + n, sizeof(what) - n, "cut to %llu bytes", a);
	else
		snprintf(what + n, sizeof(what) - n, how == APPEND ? "a byte appended" : "deleted");
	damage(dir, name, how, arg);
	check_finds(dir, name, lo, hi, what);
	open_fails(dir, name, lo, hi, alt, what);
	drop_copy();
}

/* ---- the build -------------------------------------------------------------------- */

struct writer {
	struct kv_db *db;
	struct kv_batch *b;
	struct kvt_log *log;
	uint8_t *ver;
};

static void wr_commit(struct writer *w)
{
	if (!kv_batch_count(w->b))
		return;
	check_ok(kv_write(w->db, NULL, w->b), "kv_write", w->log);
	kv_batch_clear(w->b);
}

static void wr_put(struct writer *w, unsigned n, uint8_t ver)
{
	char k[KEY_LEN + 1], v[VAL_MAX];
	size_t vl = value_of(n, ver, v);

	assert_int_equal(kv_batch_put(w->b, k, key_of(n, k), v, vl), 0);
	w->ver[n] = ver;
	if (kv_batch_count(w->b) >= 64)
		wr_commit(w);
}

static void wr_del(struct writer *w, unsigned n)
{
	char k[KEY_LEN + 1];

	assert_int_equal(kv_batch_delete(w->b, k, key_of(n, k)), 0);
	w->ver[n] = 0;
}

static void wr_del_range(struct writer *w, unsigned from, unsigned to)
{
	char s[KEY_LEN + 1], e[KEY_LEN + 1];

	assert_int_equal(kv_batch_delete_range(w->b, s, key_of(from, s), e, key_of(to, e)), 0);
	memset(w->ver + from, 0, to - from);
	wr_commit(w);
}

static void writer_open(struct writer *w, const char *dir)
{
	struct kv_options o;

	store_options(&o, w->log);
	o.create_if_missing = 1;
	check_ok(kv_open(dir, &o, &w->db), "kv_open (build)", w->log);
	assert_int_equal(kv_batch_create(&w->b), 0);
}

static void writer_close(struct writer *w)
{
	wr_commit(w);
	kv_batch_destroy(w->b);
	check_ok(kv_close(w->db), "kv_close (build)", w->log);
}

static void build_store(void)
{
	struct kvt_log log = { 0 };
	struct writer w = { .log = &log, .ver = g.ver };
	struct kv_stats st;
	unsigned n;

	g.dir = kvt_mkdtemp("corrupt-tmpl");
	writer_open(&w, g.dir);
	for (n = 0; n < NA; n++)
		wr_put(&w, n, 1);
	for (n = 3; n < NA; n += 50)
		wr_del(&w, n);
	wr_del_range(&w, 100, 150);
	check_ok(kv_compact(w.db), "kv_compact", &log);

	for (n = 0; n < NA; n += 7)
		wr_put(&w, n, 2);
	wr_commit(&w);
	check_ok(kv_flush(w.db), "kv_flush", &log);
	for (n = NA; n < 4000; n++)
		wr_put(&w, n, 1);
	wr_del_range(&w, 3500, 3520);
	for (n = 4000; n < NB_END; n++)
		wr_put(&w, n, 1);
	for (n = 0; n < NA; n++)
		if (b_deletes(n))
			wr_del(&w, n);
	wr_commit(&w);
	check_ok(kv_flush(w.db), "kv_flush", &log);

	for (n = NB_END; n < NKEYS; n++)
		wr_put(&w, n, 1);
	wr_commit(&w);
	check_ok(kv_stats(w.db, &st), "kv_stats", &log);
	if (st.level_tables[0] < 2 || st.level_tables[1] < 2)
		fail_msg("build: %llu tables in level 0, %llu in level 1; expected >= 2 each",
			 (unsigned long long)st.level_tables[0],
			 (unsigned long long)st.level_tables[1]);
	writer_close(&w);
}

/* ---- reading the template's files --------------------------------------------------- */

static uint64_t varint(const uint8_t **pp, const uint8_t *end)
{
	uint64_t v = 0;

	for (unsigned shift = 0;; shift += 7) {
		uint8_t b;

		assert_true(*pp < end && shift < 64);
		b = *(*pp)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
}

/* A keyed block (data, index): entries of varint shared, varint unshared,
 * varint vlen, key suffix, value; then u32 restart[n], u32 n. */
struct kcur {
	const uint8_t *p, *end; /* the entries */
	uint8_t key[KV_MAX_KEY + 8];
	size_t klen;
	const uint8_t *val;
	size_t vlen;
};

static void kcur_init(struct kcur *c, const uint8_t *blk, uint64_t size)
{
	uint64_t nr;

	assert_true(size >= 4);
	nr = kv_get_le32(blk + size - 4);
	assert_true(4 + 4 * nr <= size);
	c->p = blk;
	c->end = blk + size - 4 - 4 * nr;
	c->klen = 0;
}

/* 1 and the next entry, or 0 at the end. */
static int kcur_next(struct kcur *c)
{
	uint64_t shared, unshared;

	if (c->p >= c->end)
		return 0;
	shared = varint(&c->p, c->end);
	unshared = varint(&c->p, c->end);
	c->vlen = varint(&c->p, c->end);
	assert_true(shared <= c->klen && shared + unshared <= sizeof(c->key));
	assert_true(unshared + c->vlen <= (uint64_t)(c->end - c->p));
	memcpy(c->key + shared, c->p, unshared);
	c->klen = shared + unshared;
	c->val = c->p + unshared;
	c->p += unshared + c->vlen;
	return 1;
}

/* The number of the user key of the internal key under @c. */
static int kcur_key_no(const struct kcur *c)
{
	int n = c->klen >= 8 ? key_no(c->key, c->klen - 8) : -1;

	assert_true(n >= 0 && n < (int)NKEYS);
	return n;
}

static struct region handle_at(const uint8_t *p)
{
	return (struct region){ kv_get_le64(p), kv_get_le64(p + 8) };
}

/* Footer: u64 checksum, then (offset, size) of filter, range-del, properties,
 * index, u32 footer size, u32 version, magic; blocks tile the file's tail. */
static void read_table(struct tbl *t)
{
	size_t n, cap = 0;
	uint8_t *f = slurp(g.dir, t->name, &n);
	const uint8_t *ft;
	struct kcur c;

	assert_true(n == t->size && n >= TBL_FOOTER);
	t->footer = n - TBL_FOOTER;
	ft = f + t->footer;
	assert_memory_equal(ft + 80, TBL_MAGIC, 8);
	assert_int_equal(kv_get_le32(ft + 72), TBL_FOOTER);
	t->filter = handle_at(ft + 8);
	t->rangedel = handle_at(ft + 24);
	t->props = handle_at(ft + 40);
	t->index = handle_at(ft + 56);
	assert_int_equal(blk_end(&t->filter), t->rangedel.off);
	assert_int_equal(blk_end(&t->rangedel), t->props.off);
	assert_int_equal(blk_end(&t->props), t->index.off);
	assert_int_equal(blk_end(&t->index), t->footer);
	t->rangedels = kv_get_le64(f + t->props.off + 16);

	/* Index entries: the block's last key -> varint offset, varint size. */
	kcur_init(&c, f + t->index.off, t->index.size);
	while (kcur_next(&c)) {
		const uint8_t *v = c.val;
		struct dblock *b;

		if (t->nblk == cap) {
			cap = cap ? 2 * cap : 64;
			t->blk = realloc(t->blk, cap * sizeof(*t->blk));
			assert_non_null(t->blk);
		}
		b = &t->blk[t->nblk];
		b->r.off = varint(&v, c.val + c.vlen);
		b->r.size = varint(&v, c.val + c.vlen);
		b->last = kcur_key_no(&c);
		assert_true(v == c.val + c.vlen);
		assert_int_equal(b->r.off, t->nblk ? blk_end(&t->blk[t->nblk - 1].r) : 0);
		t->nblk++;
	}
	assert_true(t->nblk > 0);
	assert_int_equal(blk_end(&t->blk[t->nblk - 1].r), t->filter.off);
	free(f);
}

/* Mark in @in every user key with an entry in data block @bi of @t. */
static void block_keys(const struct tbl *t, size_t bi, uint8_t *in)
{
	size_t n;
	uint8_t *f = slurp(g.dir, t->name, &n);
	struct kcur c;

	kcur_init(&c, f + t->blk[bi].r.off, t->blk[bi].r.size);
	while (kcur_next(&c))
		in[kcur_key_no(&c)] = 1;
	free(f);
}

/* Apply an edit's del_table (tag 3) and add_table (tag 4) fields to g.t. */
static void apply_edit(const uint8_t *e, uint64_t len)
{
	uint32_t nf = kv_get_le32(e);
	uint64_t pos = 8;

	for (uint32_t i = 0; i < nf; i++) {
		uint16_t tag = kv_get_le16(e + pos);
		uint32_t flen = kv_get_le32(e + pos + 4);
		const uint8_t *v = e + pos + 8;
		struct tbl *t;

		assert_true(pos + 8 + flen <= len);
		pos += 8 + flen;
		for (size_t k = 0; tag == 3 && k < g.nt;)
			if (g.t[k].file_no == kv_get_le64(v + 8) && g.t[k].level == kv_get_le32(v))
				g.t[k] = g.t[--g.nt];
			else
				k++;
		if (tag != 4)
			continue;
		g.t = realloc(g.t, (g.nt + 1) * sizeof(*g.t));
		assert_non_null(g.t);
		t = memset(&g.t[g.nt++], 0, sizeof(*t));
		t->level = kv_get_le32(v);
		t->file_no = kv_get_le64(v + 16);
		t->size = kv_get_le64(v + 24);
		snprintf(t->name, sizeof(t->name), KV_TABLE_NAME_FMT,
			 (unsigned long long)t->file_no);
	}
	assert_int_equal(pos, len);
}

/* The records of the manifest CURRENT names in @dir; if @apply, the shape. */
static struct mrec *read_manifest(const char *dir, char *name, size_t *nrec, int apply)
{
	size_t n, cap = 0;
	uint8_t *m = slurp(dir, KV_CURRENT_NAME, &n);
	struct mrec *rec = NULL;
	uint64_t off;

	assert_int_equal(n, CURRENT_LEN);
	memcpy(name, m, CURRENT_LEN - 1);
	name[CURRENT_LEN - 1] = '\0';
	free(m);
	m = slurp(dir, name, &n);
	assert_true(n >= MAN_HDR && !memcmp(m, MAN_MAGIC, 8));
	*nrec = 0;
	for (off = MAN_HDR; off + MAN_REC_HDR <= n;) {
		uint64_t len = kv_get_le32(m + off + 8);

		assert_true(off + MAN_REC_HDR + len <= n);
		if (*nrec == cap) {
			cap = cap ? 2 * cap : 16;
			rec = realloc(rec, cap * sizeof(*rec));
			assert_non_null(rec);
		}
		rec[(*nrec)++] = (struct mrec){ off, off + MAN_REC_HDR + len };
		if (apply)
			apply_edit(m + off + MAN_REC_HDR, len);
		off += MAN_REC_HDR + len;
	}
	assert_int_equal(off, n);
	free(m);
	return rec;
}

static int group_setup(void **state)
{
	size_t nl1 = 0, seen = 0;

	(void)state;
	build_store();
	g.rec = read_manifest(g.dir, g.manifest, &g.nrec, 1);
	assert_true(g.nrec >= 4);
	for (size_t i = 0; i < g.nt; i++) {
		read_table(&g.t[i]);
		if (g.t[i].level == 0 && g.t[i].rangedels && !g.t0)
			g.t0 = &g.t[i];
		nl1 += g.t[i].level == 1;
	}
	/* The level-1 table in the middle of the key space. */
	for (size_t i = 0; i < g.nt; i++) {
		size_t below = 0;

		for (size_t j = 0; j < g.nt; j++)
			below += g.t[j].level == 1 && g.t[j].blk[0].last < g.t[i].blk[0].last;
		if (g.t[i].level == 1 && below == nl1 / 2 && !seen++)
			g.t1 = &g.t[i];
	}
	if (!g.t0 || !g.t1 || g.t0->nblk < 3 || g.t1->nblk < 3)
		fail_msg("the template lacks a level-0 table with range tombstones or a level-1 "
			 "table, each of 3 or more data blocks");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < g.nt; i++)
		free(g.t[i].blk);
	free(g.t);
	free(g.rec);
	if (g.dir)
		kvt_rmrf(g.dir);
	free(g.dir);
	return 0;
}

/* After each test, also a failed one: no handle open, no copy left. */
static int case_teardown(void **state)
{
	(void)state;
	if (g.db)
		kv_close(g.db);
	g.db = NULL;
	if (g.copy)
		drop_copy();
	return 0;
}

/* ---- reads against the model ------------------------------------------------------------ */

/*
 * The damage a read may meet: the bytes [lo, hi) of data block @t (NULL:
 * none), and the keys (lo_n, hi_n] a lookup can route through it. Reads are
 * checked against the model mver[0, mkeys).
 */
static struct dcase {
	const struct tbl *t;
	uint64_t lo, hi;
	int lo_n, hi_n;
	uint8_t in[NKEYS]; /* keys with an entry in the block */
	char what[160];
	const uint8_t *mver;
	unsigned mkeys;
} dc;

static void dcase_init(const char *what, const uint8_t *mver, unsigned mkeys)
{
	memset(&dc, 0, sizeof(dc));
	dc.lo_n = dc.hi_n = -1;
	snprintf(dc.what, sizeof(dc.what), "%s", what);
	dc.mver = mver;
	dc.mkeys = mkeys;
}

/* Does a read of key @n have to go through the damaged block? */
static int affected(unsigned n)
{
	return dc.in[n] && home(n) == (int)dc.t->level;
}

static int read_error(ssize_t r)
{
	return r == -EBADMSG || r == -EUCLEAN;
}

/* kv_get of every key: an error for the keys the block decides, the model's
 * answer for every key whose lookup cannot pass through the block. */
static void check_gets(struct kvt_log *log)
{
	char k[KEY_LEN + 1], want[VAL_MAX], got[VAL_MAX];

	for (unsigned n = 0; n < dc.mkeys; n++) {
		uint8_t v = dc.mver[n];
		size_t wl = v ? value_of(n, v, want) : 0;
		ssize_t r;
		int exact;

		log_clear(log);
		r = kv_get(g.db, 0, k, key_of(n, k), got, sizeof(got));
		exact = v ? r == (ssize_t)wl && !memcmp(got, want, wl) : r == -ENOENT;
		if (affected(n)) {
			if (!read_error(r) || !log_names(log->text, dc.t->name, dc.lo, dc.hi))
				fail_msg("%s: key %u (in the block): kv_get = %zd; expected "
					 "-EBADMSG or -EUCLEAN and a log line naming %s at an "
					 "offset in [%llu, %llu); log:\n%s",
					 dc.what, n, r, dc.t->name, (unsigned long long)dc.lo,
					 (unsigned long long)dc.hi, log->text);
		} else if (!exact && ((int)n <= dc.lo_n || (int)n > dc.hi_n || !read_error(r))) {
			/* Near the block, an error is right too: a bloom false
			 * positive routes the lookup through it. */
			fail_msg("%s: key %u: kv_get = %zd, expected %s; log:\n%s", dc.what, n, r,
				 v ? "its value" : "-ENOENT", log->text);
		}
	}
}

/* Scan from key @from (-1: the first): what comes back must be the model's
 * keys in order, without a gap, with their values, and none whose newest
 * version is in the block. Returns the status; *next = the first present key
 * not returned. */
static int check_scan(struct kvt_log *log, int from, unsigned *next)
{
	char k[KEY_LEN + 1], want[VAL_MAX];
	unsigned n = from < 0 ? 0 : (unsigned)from;
	struct kv_iter *it;
	int status;

	log_clear(log);
	check_ok(kv_iter_create(g.db, NULL, &it), "kv_iter_create", log);
	if (from < 0)
		kv_iter_seek_first(it);
	else
		kv_iter_seek(it, k, key_of((unsigned)from, k));
	for (; kv_iter_valid(it); kv_iter_next(it), n++) {
		size_t kl, vl, wl;
		const void *kp = kv_iter_key(it, &kl), *vp = kv_iter_value(it, &vl);

		while (n < dc.mkeys && !dc.mver[n])
			n++;
		wl = n < dc.mkeys ? value_of(n, dc.mver[n], want) : 0;
		if (key_no(kp, kl) != (int)n || affected(n) || vl != wl || memcmp(vp, want, wl))
			fail_msg("%s: scan from %d returned key %d, expected key %u%s", dc.what,
				 from, key_no(kp, kl), n,
				 affected(n) ? ", whose newest version is in the damaged block" :
					       "");
	}
	while (n < dc.mkeys && !dc.mver[n])
		n++;
	status = kv_iter_status(it);
	kv_iter_destroy(it);
	*next = n;
	return status;
}

/* Every read the damage decides, then the rest of the store. Without damage:
 * every key reads as the model says, and a full scan returns exactly them. */
static void check_reads(struct kvt_log *log)
{
	unsigned next;
	int st;

	check_gets(log);
	st = check_scan(log, -1, &next);
	if (dc.t && (!read_error(st) || (int)next <= dc.lo_n ||
		     !log_names(log->text, dc.t->name, dc.lo, dc.hi)))
		fail_msg("%s: full scan: status %d at key %u (the block holds keys > %d); expected "
			 "-EBADMSG or -EUCLEAN after every key before the block, and a log line "
			 "naming %s at an offset in [%llu, %llu); log:\n%s",
			 dc.what, st, next, dc.lo_n, dc.t->name, (unsigned long long)dc.lo,
			 (unsigned long long)dc.hi, log->text);
	if (dc.t)
		st = check_scan(log, dc.hi_n + 1, &next);
	if (st || next != dc.mkeys)
		fail_msg("%s: scan from key %d: status %d at key %u of %u; log:\n%s", dc.what,
			 dc.t ? dc.hi_n + 1 : 0, st, next, dc.mkeys, log->text);
}

/* ---- the undamaged copy -------------------------------------------------------------- */

static void test_pristine(void **state)
{
	struct kvt_log log = { 0 };
	const char *dir = new_copy();
	int n;

	(void)state;
	memset(&rep, 0, sizeof(rep));
	n = kv_check(dir, NULL, on_report, &rep);
	if (n)
		fail_msg("the undamaged store: kv_check = %d; reports:\n%s", n, rep.text);
	db_open(dir, &log, "kv_open (undamaged)");
	dcase_init("undamaged", g.ver, NKEYS);
	check_reads(&log);
	db_close(&log);
	drop_copy();
}

/* ---- data blocks: open succeeds, reads through the block fail ---------------------------- */

/*
 * Flip byte @off in data block @bi of @t. With @compact, kv_compact must then
 * fail (it reads every block) naming the block, leave the damage where it
 * was (not laundered into a new table, the input not deleted) and lose
 * nothing: after a reopen everything reads as before.
 */
static void data_block_case(const struct tbl *t, size_t bi, uint64_t off, int compact)
{
	struct kvt_log log = { 0 };
	const char *dir;
	char what[160];
	int err, hits = 0;

	snprintf(what, sizeof(what), "data block %zu of %zu of %s (level %u): byte %llu", bi,
		 t->nblk, t->name, t->level, (unsigned long long)off);
	dcase_init(what, g.ver, NKEYS);
	dc.t = t;
	dc.lo = t->blk[bi].r.off;
	dc.hi = blk_end(&t->blk[bi].r);
	dc.lo_n = bi ? t->blk[bi - 1].last : -1;
	dc.hi_n = t->blk[bi].last;
	block_keys(t, bi, dc.in);
	for (unsigned n = 0; n < NKEYS; n++)
		hits += affected(n);
	assert_true(hits > 0);

	dir = new_copy();
	damage(dir, t->name, FLIP, off);
	check_finds(dir, t->name, dc.lo, dc.hi, dc.what);
	db_open(dir, &log, dc.what);
	check_reads(&log);
	if (compact) {
		log_clear(&log);
		err = kv_compact(g.db);
		if (!read_error(err) || !log_names(log.text, t->name, dc.lo, dc.hi))
			fail_msg("%s: kv_compact = %d; expected -EBADMSG or -EUCLEAN and a log "
				 "line naming the block; log:\n%s",
				 dc.what, err, log.text);
		db_close(&log);
		check_finds(dir, t->name, dc.lo, dc.hi, dc.what);
		db_open(dir, &log, dc.what);
		check_reads(&log);
	}
	db_close(&log);
	drop_copy();
}

static void test_data_block(void **state)
{
	const struct tbl *ts[2] = { g.t0, g.t1 };

	(void)state;
	for (int i = 0; i < 2; i++) {
		const struct tbl *t = ts[i];
		const size_t bis[3] = { 0, t->nblk / 2, t->nblk - 1 };

		for (int j = 0; j < 3; j++) {
			const struct region *r = &t->blk[bis[j]].r;

			data_block_case(t, bis[j], r->off, 0);			  /* first byte */
			data_block_case(t, bis[j], r->off + r->size / 2, j == 1); /* middle */
			data_block_case(t, bis[j], blk_end(r) - 1, 0);		  /* checksum */
		}
	}
}

/* ---- blocks read at open: filter, range-del, properties, index, footer ------------------- */

static const struct meta {
	const char *kind;
	size_t field; /* of struct tbl */
} metas[] = {
	{ "index block of", offsetof(struct tbl, index) },
	{ "filter block of", offsetof(struct tbl, filter) },
	{ "range-del block of", offsetof(struct tbl, rangedel) },
	{ "properties block of", offsetof(struct tbl, props) },
};

static void test_meta_block(void **state)
{
	const struct meta *m = *state;
	const struct tbl *ts[2] = { g.t0, g.t1 };

	assert_true(g.t0->rangedels > 0);
	for (int i = 0; i < 2; i++) {
		const struct region *r = (const void *)((const char *)ts[i] + m->field);
		const uint64_t lo = r->off, hi = blk_end(r);
		const uint64_t at[] = {
			lo,		  /* first content byte */
			lo + r->size / 2, /* the middle */
			lo + r->size - 1, /* last content byte (the filter's probe count) */
			lo + r->size,	  /* trailer: block type */
			lo + r->size + 1, /* trailer: reserved */
			hi - 1,		  /* trailer: checksum */
		};

		for (size_t j = 0; j < ARRAY_SIZE(at); j++)
			file_case(ts[i]->name, FLIP, at[j], lo, hi, 0, m->kind);
	}
}

static void test_footer(void **state)
{
	const struct tbl *ts[2] = { g.t0, g.t1 };

	(void)state;
	for (int i = 0; i < 2; i++) {
		const uint64_t f = ts[i]->footer, end = ts[i]->size;
		/* checksum, filter offset and size, range-del size, properties
		 * offset, index offset and size, footer size, version, magic */
		const uint64_t at[] = { f,	f + 8,	f + 16, f + 32, f + 44, f + 56,
					f + 64, f + 72, f + 76, f + 80, end - 1 };

		for (size_t j = 0; j < ARRAY_SIZE(at); j++)
			file_case(ts[i]->name, FLIP, at[j], f, end, 0, "footer of");
	}
}

/* ---- whole tables: cut short, missing ------------------------------------------------------ */

static void test_table_truncated(void **state)
{
	const struct tbl *ts[2] = { g.t0, g.t1 };

	(void)state;
	for (int i = 0; i < 2; i++) {
		const struct tbl *t = ts[i];
		const uint64_t lens[] = { t->size - 1, t->footer, t->index.off, t->size / 2, 0 };

		for (size_t j = 0; j < ARRAY_SIZE(lens); j++)
			file_case(t->name, CUT, lens[j], 0, t->size + 1, 0, "table");
	}
}

/* A store missing a table is damaged, not absent: kv.h keeps -ENOENT for
 * "no store here". */
static void test_table_missing(void **state)
{
	(void)state;
	file_case(g.t0->name, REMOVE, 0, 0, 1, 0, "table");
	file_case(g.t1->name, REMOVE, 0, 0, 1, 0, "table");
}

/* ---- the manifest -------------------------------------------------------------------------- */

/* Every byte: magic, version, header_size, number, checksum. */
static void test_manifest_header(void **state)
{
	(void)state;
	for (uint64_t off = 0; off < MAN_HDR; off++)
		file_case(g.manifest, FLIP, off, 0, MAN_HDR, 0, "header of");
}

/* Records before the last one: never taken for a torn append. */
static void test_manifest_record(void **state)
{
	const struct mrec *recs[3] = { &g.rec[0], &g.rec[g.nrec / 2], &g.rec[g.nrec - 2] };

	(void)state;
	for (int i = 0; i < 3; i++) {
		const struct mrec *m = recs[i];
		const uint64_t at[] = {
			m->off,			      /* checksum */
			m->off + 8,		      /* len */
			flip_with(m->off + 10, 0x80), /* len: impossibly long */
			m->off + 12,		      /* type */
			m->off + 14,		      /* reserved */
			m->off + MAN_REC_HDR,	      /* the edit's field count */
			m->off + MAN_REC_HDR + (m->end - m->off - MAN_REC_HDR) / 2,
			m->end - 1,
		};

		for (size_t j = 0; j < ARRAY_SIZE(at); j++)
			file_case(g.manifest, FLIP, at[j], m->off, m->end, 0,
				  i ? "record of" : "snapshot record of");
	}
}

/*
 * The last record damaged or cut short (kv/manifest.h): dropped with a
 * warning naming the manifest and the record's offset, and reported by
 * kv_check. Without that edit the shape is an older one whose WAL segments
 * or tables may be gone: open then has every acknowledged write, or fails
 * naming what is missing. It must never open with less.
 */
static void torn_case(const char *dir, const char *man, const struct mrec *last, const uint8_t *ver,
		      unsigned nkeys, const char *what)
{
	struct kvt_log log = { 0 };
	struct kv_options o;
	int err;

	check_finds(dir, man, last->off, last->end, what);
	store_options(&o, &log);
	err = kv_open(dir, &o, &g.db);
	if (!log_names(log.text, man, last->off, last->end))
		fail_msg("%s: kv_open = %d; no log line names %s at offset %llu; log:\n%s", what,
			 err, man, (unsigned long long)last->off, log.text);
	if (!err) {
		print_message("%s: kv_open = 0; log:\n%s", what, log.text);
		dcase_init(what, ver, nkeys);
		check_reads(&log);
		db_close(&log);
		return;
	}
	if ((err != -EUCLEAN && err != -EBADMSG) || !strstr(log.text, "missing") ||
	    (!strstr(log.text, "wal-") && !strstr(log.text, "tbl-")))
		fail_msg("%s: kv_open = %d (%s); expected -EUCLEAN or -EBADMSG and a log line "
			 "naming a missing segment or table; log:\n%s",
			 what, err, strerror(-err), log.text);
}

static void test_manifest_last_record(void **state)
{
	const struct mrec *m = &g.rec[g.nrec - 1];
	const uint64_t mid = m->off + MAN_REC_HDR + (m->end - m->off - MAN_REC_HDR) / 2;
	const struct {
		enum damage how;
		uint64_t arg;
	} cases[] = {
		{ FLIP, m->off },     { FLIP, m->off + 8 }, { FLIP, mid },
		{ FLIP, m->end - 1 }, { CUT, m->end - 1 },  { CUT, mid },
		{ CUT, m->off + 8 },  { CUT, m->off + 1 },
	};

	(void)state;
	for (size_t j = 0; j < ARRAY_SIZE(cases); j++) {
		const char *dir = new_copy();
		char what[160];

		snprintf(what, sizeof(what), "last record [%llu, %llu) of %s: %s %llu",
			 (unsigned long long)m->off, (unsigned long long)m->end, g.manifest,
			 cases[j].how == FLIP ? "byte" : "cut to",
			 (unsigned long long)cases[j].arg);
		damage(dir, g.manifest, cases[j].how, cases[j].arg);
		torn_case(dir, g.manifest, m, g.ver, NKEYS, what);
		drop_copy();
	}
}

/*
 * The same rule in a store with no WAL tail: every write was flushed and the
 * empty active segment removed at close, so nothing but the manifest's last
 * record says that the last flush happened.
 */
static void test_manifest_torn_no_wal(void **state)
{
	static uint8_t ver[2000];
	struct kvt_log log = { 0 };
	struct writer w = { .log = &log, .ver = ver };
	char man[32], what[160];
	struct mrec *rec, last;
	size_t nrec;

	(void)state;
	memset(ver, 0, sizeof(ver));
	g.copy = kvt_mkdtemp("corrupt-nowal");
	writer_open(&w, g.copy);
	for (unsigned n = 0; n < ARRAY_SIZE(ver); n++)
		wr_put(&w, n, 1);
	wr_commit(&w);
	check_ok(kv_flush(w.db), "kv_flush", &log);
	writer_close(&w);

	rec = read_manifest(g.copy, man, &nrec, 0);
	assert_true(nrec >= 2); /* the snapshot, then the flushes' edits */
	last = rec[nrec - 1];
	free(rec);
	damage(g.copy, man, CUT, last.end - 1);
	snprintf(what, sizeof(what), "no WAL tail: last record [%llu, %llu) of %s cut by a byte",
		 (unsigned long long)last.off, (unsigned long long)last.end, man);
	torn_case(g.copy, man, &last, ver, ARRAY_SIZE(ver), what);
	drop_copy();
}

/* ---- CURRENT and KVSTORE ------------------------------------------------------------------- */

static void test_current(void **state)
{
	char other[sizeof(g.manifest)];
	const char *dir;

	(void)state;
	/* Every byte ^ 0x20: 'M' -> 'm', '-' -> '\r', a digit -> a control
	 * byte, a hex letter -> upper case, '\n' -> '*': wrong at that byte. */
	for (uint64_t off = 0; off < CURRENT_LEN; off++)
		file_case(KV_CURRENT_NAME, FLIP, off, off, off + 1, 0, "");
	file_case(KV_CURRENT_NAME, CUT, CURRENT_LEN - 1, CURRENT_LEN - 1, CURRENT_LEN, 0, "");
	file_case(KV_CURRENT_NAME, APPEND, '\n', CURRENT_LEN, CURRENT_LEN + 1, 0, "");

	/* Well formed, but naming a manifest that does not exist (its last
	 * digit changed to another digit): that manifest is reported. */
	memcpy(other, g.manifest, sizeof(other));
	assert_true(other[24] >= '0' && other[24] <= '9');
	other[24] ^= 1;
	dir = new_copy();
	damage(dir, KV_CURRENT_NAME, FLIP, flip_with(24, 1));
	check_finds(dir, other, 0, 1, "CURRENT naming a missing manifest");
	open_fails(dir, other, 0, 1, 0, "CURRENT naming a missing manifest");
	drop_copy();
}

static void test_kvstore(void **state)
{
	(void)state;
	/* Every byte. A wrong magic says the directory holds something else:
	 * -EMEDIUMTYPE (kv/FORMAT.md, "KVSTORE identity file"). The magic goes
	 * last, so that a failure there does not hide the other fields'. */
	for (uint64_t i = 0; i < IDENT_SIZE; i++) {
		uint64_t off = (i + 8) % IDENT_SIZE;

		file_case(IDENT_NAME, FLIP, off, 0, IDENT_SIZE, off < 8 ? -EMEDIUMTYPE : 0, "");
	}
	/* "64 bytes in all; a file of any other size is corrupt." */
	file_case(IDENT_NAME, CUT, IDENT_SIZE - 1, 0, IDENT_SIZE + 1, 0, "");
}

#define CASE(f) cmocka_unit_test_teardown(f, case_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_pristine),
		CASE(test_data_block),
		/* the blocks read at open: one function, four names */
		{ "test_index_block", test_meta_block, NULL, case_teardown, (void *)&metas[0] },
		{ "test_filter_block", test_meta_block, NULL, case_teardown, (void *)&metas[1] },
		{ "test_rangedel_block", test_meta_block, NULL, case_teardown, (void *)&metas[2] },
		{ "test_props_block", test_meta_block, NULL, case_teardown, (void *)&metas[3] },
		CASE(test_footer),
		CASE(test_table_truncated),
		CASE(test_table_missing),
		CASE(test_manifest_header),
		CASE(test_manifest_record),
		CASE(test_manifest_last_record),
		CASE(test_manifest_torn_no_wal),
		CASE(test_current),
		CASE(test_kvstore),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
