/* SPDX-License-Identifier: MIT */
/*
 * Recovery tests (kv/recovery.c, kv/FORMAT.md "Recovery") on a real store:
 * the bytes of WAL segments are damaged between a close and a reopen, and
 * the reopen must either give exactly a prefix of the batches written (a torn
 * tail: the last record cut short, zeroed or garbled) or refuse with a clear
 * error naming the file (damage to durable records, a missing segment, a
 * foreign or newer store).
 *
 * Every damaged store is a copy of a pristine one (fx->dir -> fx->work), so
 * each case starts from the same bytes. Records are located with the layout
 * of wal.h through kv_wal_scan().
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
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_test_util.h"
#include "wal.h"

/* ---- fixture ------------------------------------------------------------ */

struct fx {
	char *dir;  /* the pristine store */
	char *work; /* a damaged copy of it */
	struct kvt_log log;
	struct kv_options opt;
	uint64_t seed;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = kvt_mkdtemp("rec");
	f->work = kvt_mkdtemp("rec-work");
	kvt_options(&f->opt, NULL, &f->log);
	/* These tests are about the WAL: segments stay until a flush is asked
	 * for (test_persist covers flushes). */
	f->opt.manual_background = 1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	kvt_rmrf(f->dir);
	kvt_rmrf(f->work);
	free(f->dir);
	free(f->work);
	free(f);
	return 0;
}

static void log_clear(struct kvt_log *log)
{
	log->len = 0;
	log->text[0] = '\0';
}

/* ---- files -------------------------------------------------------------- */

static uint8_t *file_read(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Replace @path by exactly @len bytes of @buf (a shorter file truncates). */
static void file_write(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	/* Not asprintf: GCC 12 at -O2 then takes the result for a pointer to
	 * the local (a false -Wdangling-pointer). */
	assert_non_null(p);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* Make @dst an exact copy of the flat directory @src. */
static void copy_dir(const char *src, const char *dst)
{
	DIR *d;
	struct dirent *e;

	kvt_rmrf(dst);
	assert_int_equal(mkdir(dst, 0755), 0);
	d = opendir(src);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char *from, *to;
		uint8_t *buf;
		size_t len;

		if (e->d_name[0] == '.')
			continue;
		from = path_join(src, e->d_name);
		to = path_join(dst, e->d_name);
		buf = file_read(from, &len);
		file_write(to, buf, len);
		free(buf);
		free(from);
		free(to);
	}
	closedir(d);
}

/* The ids of the WAL segments in @dir, ascending; returns how many. */
static int seg_ids(const char *dir, uint64_t *ids, int max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		uint64_t id;

		if (kv_wal_parse_name(e->d_name, &id))
			continue;
		assert_true(n < max);
		ids[n++] = id;
	}
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			uint64_t t = ids[j];

			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
	return n;
}

static char *seg_path(const char *dir, uint64_t id)
{
	char name[64];

	snprintf(name, sizeof(name), KV_WAL_NAME_FMT, (unsigned long long)id);
	return path_join(dir, name);
}

/* ---- records of a segment ----------------------------------------------- */

struct rec {
	uint64_t off;
	uint32_t len;
	uint32_t epoch;
};

struct rec_list {
	struct rec v[4096];
	int n;
};

static int rec_collect(void *arg, uint64_t off, const struct kv_rec_header *h, const uint8_t *rec)
{
	struct rec_list *l = arg;

	(void)rec;
	assert_true(l->n < (int)(sizeof(l->v) / sizeof(l->v[0])));
	l->v[l->n].off = off;
	l->v[l->n].len = h->len;
	l->v[l->n].epoch = h->epoch;
	l->n++;
	return 0;
}

/* Scan a whole segment image that must be clean; its records into @l. */
static void scan_segment(const uint8_t *img, size_t len, uint64_t id, struct rec_list *l)
{
	uint64_t end = 0, bad = 0;

	l->n = 0;
	assert_int_equal(kv_wal_scan(img, len, id, 0, rec_collect, l, &end, &bad), 0);
	assert_true(l->n > 0);
	assert_int_equal(end, kv_align8(l->v[l->n - 1].off + l->v[l->n - 1].len));
}

/* ---- the batches written: a model that can be regenerated from a seed --- */

/*
 * Batch i holds 1..3 puts: nops(i) - 1 puts of keys "b<i>.<j>" with values
 * derived from (seed, i, j), then a put of "last" = "batch-<i>". So after a
 * reopen, "last" tells which batch came last, and a batch applied in part
 * would show as some of its keys missing. The final batch of a model has
 * three small puts, to keep the last record short (tests walk it byte by
 * byte).
 */
struct model {
	uint64_t seed;
	unsigned n;    /* batches written */
	unsigned vmax; /* longest value */
};

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static unsigned nops(const struct model *m, unsigned i)
{
	if (i == m->n - 1)
		return 3;
	return 1 + (unsigned)(mix(m->seed ^ ((uint64_t)i << 20)) % 3);
}

static void op_key(unsigned i, unsigned j, char *key, size_t cap)
{
	snprintf(key, cap, "b%05u.%u", i, j);
}

static size_t op_val(const struct model *m, unsigned i, unsigned j, uint8_t *buf)
{
	uint64_t h = mix(m->seed ^ ((uint64_t)i << 20) ^ ((uint64_t)j << 50) ^ 0x5a5a);
	size_t len = i == m->n - 1 ? 4 + h % 12 : 1 + h % m->vmax;

	for (size_t k = 0; k < len; k++)
		buf[k] = (uint8_t)('a' + mix(h + k) % 26);
	return len;
}

/* Make @b batch @i of @m. */
static void fill_batch(struct kv_batch *b, const struct model *m, unsigned i)
{
	uint8_t *val = malloc(m->vmax + 16);
	unsigned n = nops(m, i);
	char key[32], last[32];

	assert_non_null(val);
	kv_batch_clear(b);
	for (unsigned j = 0; j + 1 < n; j++) {
		size_t vlen = op_val(m, i, j, val);

		op_key(i, j, key, sizeof(key));
		assert_int_equal(kv_batch_put(b, key, strlen(key), val, vlen), 0);
	}
	snprintf(last, sizeof(last), "batch-%05u", i);
	assert_int_equal(kv_batch_put(b, "last", 4, last, strlen(last)), 0);
	free(val);
}

static void write_batches(struct kv_db *db, const struct model *m, unsigned from, unsigned to,
			  const struct kv_write_options *wo)
{
	struct kv_batch *b;

	assert_int_equal(kv_batch_create(&b), 0);
	for (unsigned i = from; i < to; i++) {
		fill_batch(b, m, i);
		assert_int_equal(kv_write(db, wo, b), 0);
	}
	kv_batch_destroy(b);
}

/* The store holds exactly batches [0, have) of @m: all of each, none of the rest. */
static void check_batches(struct kv_db *db, const struct model *m, unsigned have)
{
	uint8_t *want = malloc(m->vmax + 16), *got = malloc(m->vmax + 16);
	char key[32], last[32];
	ssize_t r;

	assert_non_null(want);
	assert_non_null(got);
	for (unsigned i = 0; i < m->n; i++) {
		for (unsigned j = 0; j + 1 < nops(m, i); j++) {
			size_t vlen = op_val(m, i, j, want);

			op_key(i, j, key, sizeof(key));
			r = kv_get(db, 0, key, strlen(key), got, m->vmax + 16);
			if (i < have) {
				if (r != (ssize_t)vlen)
					fail_msg(
						"batch %u of %u (have %u): %s: got %zd, want %zu bytes",
						i, m->n, have, key, r, vlen);
				assert_memory_equal(got, want, vlen);
			} else if (r != -ENOENT) {
				fail_msg("batch %u of %u should be absent (have %u), but %s -> %zd",
					 i, m->n, have, key, r);
			}
		}
	}
	r = kv_get(db, 0, "last", 4, got, m->vmax + 16);
	if (!have) {
		assert_int_equal(r, -ENOENT);
	} else {
		snprintf(last, sizeof(last), "batch-%05u", have - 1);
		if (r != (ssize_t)strlen(last) || memcmp(got, last, strlen(last)))
			fail_msg("\"last\" is %.*s (%zd), want %s", r > 0 ? (int)r : 0, (char *)got,
				 r, last);
	}
	free(want);
	free(got);
}

/* Open @dir (must succeed), check it holds batches [0, have), close. */
static void expect_prefix(struct fx *f, const char *dir, const struct model *m, unsigned have,
			  const char *what)
{
	struct kv_db *db = NULL;
	int err;

	log_clear(&f->log);
	err = kv_open(dir, &f->opt, &db);
	if (err)
		fail_msg("%s: kv_open = %d (%s); log:\n%s", what, err, strerror(-err), f->log.text);
	check_batches(db, m, have);
	assert_int_equal(kv_close(db), 0);
}

/* Open @dir: it must fail with @want (0: any error) and log @path and "offset". */
static void expect_refused(struct fx *f, const char *dir, int want, const char *path,
			   const char *what)
{
	struct kv_db *db = NULL;
	int err;

	log_clear(&f->log);
	err = kv_open(dir, &f->opt, &db);
	if (!err) {
		kv_close(db);
		fail_msg("%s: kv_open succeeded on a damaged store", what);
	}
	if (want && err != want)
		fail_msg("%s: kv_open = %d (%s), want %d (%s); log:\n%s", what, err, strerror(-err),
			 want, strerror(-want), f->log.text);
	if (!strstr(f->log.text, path))
		fail_msg("%s: the log does not name %s:\n%s", what, path, f->log.text);
	if (!strstr(f->log.text, "offset"))
		fail_msg("%s: the log gives no offset:\n%s", what, f->log.text);
}

/*
 * Build the pristine store of @m in fx->dir with sync batches (one epoch
 * each), and load its only segment: image, id and records.
 */
struct seg_img {
	uint64_t id;
	uint8_t *img;
	size_t len;
	char *name; /* file name */
	struct rec_list recs;
};

static void build_store(struct fx *f, const struct model *m, struct seg_img *s)
{
	struct kv_db *db;
	uint64_t ids[8];
	char *path;

	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	write_batches(db, m, 0, m->n, NULL);
	check_batches(db, m, m->n);
	assert_int_equal(kv_close(db), 0);
	assert_int_equal(seg_ids(f->dir, ids, 8), 1);
	s->id = ids[0];
	path = seg_path(f->dir, s->id);
	s->name = strdup(strrchr(path, '/') + 1);
	s->img = file_read(path, &s->len);
	assert_int_equal(s->len, f->opt.log_buffer_size);
	scan_segment(s->img, s->len, s->id, &s->recs);
	assert_int_equal(s->recs.n, (int)m->n);
	/* Each sync batch was its own group commit: epochs 1, 2, ... */
	for (int i = 0; i < s->recs.n; i++)
		assert_int_equal(s->recs.v[i].epoch, i + 1);
	free(path);
}

static void seg_img_free(struct seg_img *s)
{
	free(s->img);
	free(s->name);
}

/* Copy the store to fx->work with the segment replaced by @len bytes of @img. */
static char *damaged_copy(struct fx *f, const struct seg_img *s, const uint8_t *img, size_t len)
{
	char *path;

	copy_dir(f->dir, f->work);
	path = path_join(f->work, s->name);
	file_write(path, img, len);
	return path;
}

/* ---- 1. torn tail: the last record cut short -------------------------- */

static void test_torn_tail_truncated(void **state)
{
	struct fx *f = *state;
	struct model m = { .seed = kvt_seed("torn_tail_truncated"),
			   .n = 24 * kvt_scale(),
			   .vmax = 300 };
	struct seg_img s;
	uint8_t *img;
	const struct rec *last;
	int refused = 0, accepted = 0;
	char what[128], *path;

	build_store(f, &m, &s);
	last = &s.recs.v[s.recs.n - 1];
	img = malloc(s.len);
	assert_non_null(img);

	/* Zero from t to the end of the (preallocated) file: a commit cut at t. */
	for (uint64_t t = last->off; t <= kv_align8(last->off + last->len); t++) {
		int whole = t >= last->off + last->len;

		memcpy(img, s.img, s.len);
		memset(img + t, 0, s.len - t);
		free(damaged_copy(f, &s, img, s.len));
		snprintf(what, sizeof(what), "zeroed from %llu (last record [%llu, +%u))",
			 (unsigned long long)t, (unsigned long long)last->off, last->len);
		expect_prefix(f, f->work, &m, whole ? m.n : m.n - 1, what);
	}

	/* The file itself cut at t: not a crash artifact of preallocated segments,
	 * so either the prefix or a clear error naming the file will do. */
	for (int k = 0; k < 4; k++) {
		uint64_t t = last->off + (uint64_t)k * (last->len - 1) / 3;
		struct kv_db *db = NULL;
		int err;

		path = damaged_copy(f, &s, s.img, t);
		log_clear(&f->log);
		err = kv_open(f->work, &f->opt, &db);
		if (!err) {
			check_batches(db, &m, m.n - 1);
			assert_int_equal(kv_close(db), 0);
			accepted++;
		} else {
			if (!strstr(f->log.text, path))
				fail_msg(
					"file cut at %llu: kv_open = %d but the log does not name %s:\n%s",
					(unsigned long long)t, err, path, f->log.text);
			if (refused++ == 0)
				print_message(
					"[ INFO     ] segment file cut to %llu bytes: kv_open = %d (%s): %s",
					(unsigned long long)t, err, strerror(-err), f->log.text);
		}
		free(path);
	}
	print_message(
		"[ INFO     ] truncated segment files: %d opened with the prefix, %d refused\n",
		accepted, refused);
	free(img);
	seg_img_free(&s);
}

/* ---- 2. torn tail: a byte of the last record garbled ------------------ */

static void test_torn_tail_flipped(void **state)
{
	struct fx *f = *state;
	struct model m = { .seed = kvt_seed("torn_tail_flipped"),
			   .n = 24 * kvt_scale(),
			   .vmax = 300 };
	struct seg_img s;
	const struct rec *last;
	char what[128];

	build_store(f, &m, &s);
	last = &s.recs.v[s.recs.n - 1];
	for (uint64_t p = last->off; p < last->off + last->len; p++) {
		s.img[p] ^= 0xff;
		free(damaged_copy(f, &s, s.img, s.len));
		s.img[p] ^= 0xff;
		snprintf(what, sizeof(what), "byte %llu flipped (last record [%llu, +%u))",
			 (unsigned long long)p, (unsigned long long)last->off, last->len);
		expect_prefix(f, f->work, &m, m.n - 1, what);
	}
	seg_img_free(&s);
}

/* ---- 3. corruption of a durable record -------------------------------- */

static void test_corrupt_middle(void **state)
{
	struct fx *f = *state;
	struct model m = { .seed = kvt_seed("corrupt_middle"), .n = 24 * kvt_scale(), .vmax = 300 };
	uint64_t rs = m.seed;
	struct seg_img s;
	/* Records N-2, N-3, one in the middle, the first. */
	unsigned victims[] = { m.n - 2, m.n - 3, m.n / 2, 0 };
	char what[160], *path;

	build_store(f, &m, &s);
	for (unsigned v = 0; v < sizeof(victims) / sizeof(victims[0]); v++) {
		const struct rec *r = &s.recs.v[victims[v]];
		/* Checksum, len, count, epoch, type, reserved, op header, key, the
		 * last byte, a random payload byte. */
		uint64_t bytes[12] = { 0, 3, 8, 12, 16, 20, 22, 24, 26, 33 };

		bytes[10] = r->len - 1;
		bytes[11] = KV_REC_HEADER_SIZE + kvt_rand(&rs) % (r->len - KV_REC_HEADER_SIZE);
		for (unsigned b = 0; b < sizeof(bytes) / sizeof(bytes[0]); b++) {
			uint64_t p = r->off + bytes[b];

			s.img[p] ^= 0xff;
			path = damaged_copy(f, &s, s.img, s.len);
			s.img[p] ^= 0xff;
			snprintf(what, sizeof(what),
				 "record %u of %u [%llu, +%u), byte +%llu flipped", victims[v], m.n,
				 (unsigned long long)r->off, r->len, (unsigned long long)bytes[b]);
			expect_refused(f, f->work, -EUCLEAN, path, what);
			free(path);
		}
	}
	print_message("[ INFO     ] message: %s", f->log.text);
	seg_img_free(&s);
}

/* ---- 3b. the torn-tail rule over group-committed epochs ------------------ */

/*
 * Batches written in bursts of asynchronous writes, so that some epochs hold
 * several records. Then every record in turn is damaged, and the outcome is
 * the one kv/FORMAT.md ("The scan") prescribes: with `last` the epoch of the
 * record before the damaged one (0 for the first), a valid record of epoch
 * >= last + 2 after it means corruption (-EUCLEAN naming the file);
 * otherwise a torn tail, and exactly the batches before the damaged one.
 */
static void test_epoch_rule(void **state)
{
	struct fx *f = *state;
	struct model m = { .seed = kvt_seed("epoch_rule"), .n = 60 * kvt_scale(), .vmax = 300 };
	uint64_t rs = m.seed, ids[4];
	struct seg_img s;
	struct kv_batch *b;
	struct kv_cq *cq;
	struct kv_db *db;
	struct kv_completion c[8];
	char what[160], *path;
	int multi = 0, refused = 0;

	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	assert_int_equal(kv_batch_create(&b), 0);
	assert_int_equal(kv_cq_create(&cq), 0);
	for (unsigned i = 0; i < m.n;) {
		unsigned burst = 1 + (unsigned)(kvt_rand(&rs) % 5), k = 0;

		for (; k < burst && i < m.n; k++, i++) {
			fill_batch(b, &m, i);
			assert_int_equal(kv_write_async(db, NULL, b, cq, i), 0);
		}
		for (int got = 0; got < (int)k;) {
			int n = kv_cq_reap(cq, c, 8, 1);

			for (int j = 0; j < n; j++)
				assert_int_equal(c[j].status, 0);
			got += n;
		}
	}
	kv_cq_destroy(cq);
	kv_batch_destroy(b);
	check_batches(db, &m, m.n);
	assert_int_equal(kv_close(db), 0);

	assert_int_equal(seg_ids(f->dir, ids, 4), 1);
	s.id = ids[0];
	path = seg_path(f->dir, s.id);
	s.name = strdup(strrchr(path, '/') + 1);
	s.img = file_read(path, &s.len);
	free(path);
	scan_segment(s.img, s.len, s.id, &s.recs);
	assert_int_equal(s.recs.n, (int)m.n);
	for (int i = 1; i < s.recs.n; i++) {
		assert_true(s.recs.v[i].epoch == s.recs.v[i - 1].epoch ||
			    s.recs.v[i].epoch == s.recs.v[i - 1].epoch + 1);
		multi += s.recs.v[i].epoch == s.recs.v[i - 1].epoch;
	}
	print_message("[ INFO     ] %d records in %u epochs (%d records shared an epoch)\n",
		      s.recs.n, s.recs.v[s.recs.n - 1].epoch, multi);

	for (int k = 0; k < s.recs.n; k++) {
		const struct rec *r = &s.recs.v[k];
		uint32_t last = k ? s.recs.v[k - 1].epoch : 0;
		uint64_t p =
			r->off + KV_REC_HEADER_SIZE + kvt_rand(&rs) % (r->len - KV_REC_HEADER_SIZE);
		int corrupt = 0;

		for (int j = k + 1; j < s.recs.n; j++)
			corrupt |= s.recs.v[j].epoch >= last + 2;
		s.img[p] ^= 0x01;
		path = damaged_copy(f, &s, s.img, s.len);
		s.img[p] ^= 0x01;
		snprintf(what, sizeof(what), "record %d (epoch %u, previous %u) of %d, byte %llu",
			 k, r->epoch, last, s.recs.n, (unsigned long long)p);
		if (corrupt) {
			expect_refused(f, f->work, -EUCLEAN, path, what);
			refused++;
		} else {
			expect_prefix(f, f->work, &m, (unsigned)k, what);
		}
		free(path);
	}
	print_message("[ INFO     ] %d damaged records refused, %d treated as a torn tail\n",
		      refused, s.recs.n - refused);
	seg_img_free(&s);
}

/* ---- 3c. leftovers of a segment whose creation was interrupted ----------- */

/*
 * A segment file is made by open(O_CREAT | O_EXCL), writing zeros, fsync
 * (kv_env_create_zeroed; the backstop makes the spare this way). A process
 * killed in between leaves a file named like a segment that is shorter than
 * a segment and all zero. Its first commit never happened, so the store must
 * open with everything (FORMAT.md: trailing segments whose header was never
 * written are removed).
 */
/*
 * A never-used segment that is not the last one: a spare discarded after a
 * rotation made its own segment, whose unlink did not survive a crash. It is
 * all zero and lies before live segments (here: id 0, before the first).
 */
static void test_never_used_in_middle(void **state)
{
	struct fx *f = *state;
	struct model m = { .seed = kvt_seed("never_used_in_middle"), .n = 10, .vmax = 300 };
	size_t cap = f->opt.log_buffer_size;
	uint8_t *zeros = calloc(1, cap);
	struct kv_db *db;
	char *path;

	assert_non_null(zeros);
	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	write_batches(db, &m, 0, m.n, NULL);
	assert_int_equal(kv_close(db), 0);
	path = seg_path(f->dir, 0);
	file_write(path, zeros, cap);
	log_clear(&f->log);
	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	check_batches(db, &m, m.n);
	assert_int_equal(kv_close(db), 0);
	assert_int_equal(access(path, F_OK), -1); /* removed */
	free(path);
	free(zeros);
}

static void test_unborn_leftover(void **state)
{
	struct fx *f = *state;
	struct model m = { .seed = kvt_seed("unborn_leftover"), .n = 10, .vmax = 300 };
	size_t cap = f->opt.log_buffer_size;
	size_t sizes[] = { 0, 4096, 64 << 10, cap / 2 + 512, cap };
	uint8_t *zeros = calloc(1, cap);
	struct kv_db *db;
	uint64_t ids[4];
	int failed = 0;

	assert_non_null(zeros);
	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	write_batches(db, &m, 0, m.n, NULL);
	assert_int_equal(kv_close(db), 0);
	assert_int_equal(seg_ids(f->dir, ids, 4), 1);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *path;
		int err;

		copy_dir(f->dir, f->work);
		path = seg_path(f->work, ids[0] + 1);
		file_write(path, zeros, sizes[i]);
		log_clear(&f->log);
		err = kv_open(f->work, &f->opt, &db);
		if (err) {
			print_message(
				"[ ERROR    ] a zero-filled %zu-byte %s left by an interrupted creation: kv_open = %d (%s): %s",
				sizes[i], strrchr(path, '/') + 1, err, strerror(-err), f->log.text);
			failed++;
		} else {
			check_batches(db, &m, m.n);
			assert_int_equal(kv_close(db), 0);
			expect_prefix(f, f->work, &m, m.n, "second reopen");
		}
		free(path);
	}
	free(zeros);
	if (failed)
		fail_msg("%d of %zu interrupted segment creations made the store unopenable",
			 failed, sizeof(sizes) / sizeof(sizes[0]));
}

/* ---- 4. several segments ------------------------------------------------ */

static void test_multi_segment(void **state)
{
	struct fx *f = *state;
	struct model m = { .seed = kvt_seed("multi_segment"),
			   .n = 400 * kvt_scale(),
			   .vmax = 1500 };
	struct rec_list *recs = malloc(sizeof(*recs));
	uint64_t ids[64];
	struct kv_db *db;
	struct kv_stats st;
	int nseg;
	char what[160];

	assert_non_null(recs);
	f->opt.log_buffer_size = 64 << 10;
	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	/* Sync commits, a group commit at a time (fast rotations in batch mode
	 * are test_segment_order's business). */
	write_batches(db, &m, 0, m.n, NULL);
	assert_int_equal(kv_stats(db, &st), 0);
	assert_true(st.wal_segments >= 4);
	assert_int_equal(kv_close(db), 0);
	nseg = seg_ids(f->dir, ids, 64);
	print_message("[ INFO     ] %u batches in %d segments\n", m.n, nseg);
	assert_true(nseg >= 4);
	expect_prefix(f, f->dir, &m, m.n, "clean reopen");

	/* After that reopen (no writes) the segments are the same. */
	assert_int_equal(seg_ids(f->dir, ids, 64), nseg);

	/* A damaged record in a segment that is not the last: never a torn tail. */
	for (int i = 0; i + 1 < nseg; i++) {
		char *path = seg_path(f->dir, ids[i]), *wpath;
		uint8_t *img;
		size_t len;
		int picks[3];

		img = file_read(path, &len);
		scan_segment(img, len, ids[i], recs);
		picks[0] = 0;
		picks[1] = recs->n / 2;
		picks[2] = recs->n - 1; /* the record the successor's prev_end follows */
		for (int k = 0; k < 3; k++) {
			const struct rec *r = &recs->v[picks[k]];
			uint64_t p = r->off + KV_REC_HEADER_SIZE + r->len / 3;

			img[p] ^= 0x40;
			copy_dir(f->dir, f->work);
			wpath = seg_path(f->work, ids[i]);
			file_write(wpath, img, len);
			img[p] ^= 0x40;
			snprintf(what, sizeof(what), "segment %d of %d, record %d of %d, byte %llu",
				 i, nseg, picks[k], recs->n, (unsigned long long)p);
			expect_refused(f, f->work, -EUCLEAN, wpath, what);
			free(wpath);
		}
		/* Its header garbled: a non-last segment must have a valid header. */
		img[20] ^= 0x01;
		copy_dir(f->dir, f->work);
		wpath = seg_path(f->work, ids[i]);
		file_write(wpath, img, len);
		snprintf(what, sizeof(what), "segment %d of %d, header byte 20", i, nseg);
		expect_refused(f, f->work, 0, wpath, what);
		free(wpath);
		free(img);
		free(path);
	}
	print_message("[ INFO     ] damaged non-last segment: %s", f->log.text);

	/* The oldest or a middle segment deleted: the log no longer starts at
	 * LSN 0, or the chain of LSNs breaks. Either is refused. */
	for (int i = 0; i + 1 < nseg; i++) {
		struct kv_db *db2 = NULL;
		char *gone;
		int err;

		copy_dir(f->dir, f->work);
		gone = seg_path(f->work, ids[i]);
		assert_int_equal(unlink(gone), 0);
		log_clear(&f->log);
		err = kv_open(f->work, &f->opt, &db2);
		if (!err) {
			kv_close(db2);
			fail_msg("segment %s deleted, but kv_open succeeded", gone);
		}
		assert_true(err < 0);
		assert_true(f->log.len > 0);
		if (i <= 1)
			print_message("[ INFO     ] %s segment deleted: kv_open = %d (%s): %s",
				      i ? "middle" : "oldest", err, strerror(-err), f->log.text);
		free(gone);
	}

	/* The newest segment deleted: without a manifest (format version 1)
	 * nothing says where the log ends; report what the engine does. */
	{
		struct kv_db *db2 = NULL;
		char *gone = seg_path(f->work, ids[nseg - 1]);
		int err;

		copy_dir(f->dir, f->work);
		assert_int_equal(unlink(gone), 0);
		log_clear(&f->log);
		err = kv_open(f->work, &f->opt, &db2);
		if (!err) {
			char got[32];
			ssize_t r = kv_get(db2, 0, "last", 4, got, sizeof(got));

			print_message(
				"[ INFO     ] newest segment deleted: kv_open succeeded; \"last\" = %.*s (of %u batches)\n",
				r > 0 ? (int)r : 0, got, m.n);
			kv_close(db2);
		} else {
			print_message("[ INFO     ] newest segment deleted: kv_open = %d: %s", err,
				      f->log.text);
		}
		free(gone);
	}
	free(recs);
}

/*
 * Segment ids follow the LSN order (FORMAT.md: "Segment ids increase from
 * one segment to the next; replay goes in segment id order"), however fast
 * segments fill: batch-mode writes of large values rotate 64 KiB segments
 * faster than the backstop prepares spares. Checked on the headers, then by
 * a reopen.
 */
static void test_segment_order(void **state)
{
	struct fx *f = *state;
	struct model m = { .seed = kvt_seed("segment_order"),
			   .n = 500 * kvt_scale(),
			   .vmax = 6000 };
	struct kv_write_options batch = { .durability = KV_DUR_BATCH };
	uint64_t ids[1024], base = 0, end = 0;
	char msg[512] = "";
	struct kv_db *db;
	int nseg;

	f->opt.log_buffer_size = 64 << 10;
	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	write_batches(db, &m, 0, m.n, &batch);
	assert_int_equal(kv_close(db), 0);
	nseg = seg_ids(f->dir, ids, 1024);
	assert_true(nseg >= 10);
	for (int i = 0; i < nseg && !msg[0]; i++) {
		char *path = seg_path(f->dir, ids[i]);
		struct kv_seg_header h;
		uint64_t bad = 0;
		uint8_t *img;
		size_t len;
		int err;

		img = file_read(path, &len);
		err = kv_seg_header_decode(img, &h);
		if (err || h.seg_id != ids[i] || (!i && h.prev_end))
			snprintf(msg, sizeof(msg), "%s: bad header (%d)", path, err);
		else if (i && (h.prev_end != end || h.base_lsn != base + end))
			snprintf(
				msg, sizeof(msg),
				"%s: base_lsn %llu, prev_end %llu; but segment %llx (the one before it by id) has base_lsn %llu and its records end at %llu",
				path, (unsigned long long)h.base_lsn,
				(unsigned long long)h.prev_end, (unsigned long long)ids[i - 1],
				(unsigned long long)base, (unsigned long long)end);
		else if (kv_wal_scan(img, len, ids[i], 0, NULL, NULL, &end, &bad))
			snprintf(msg, sizeof(msg), "%s: scan failed at %llu", path,
				 (unsigned long long)bad);
		base = h.base_lsn;
		free(img);
		free(path);
	}
	if (msg[0])
		fail_msg("segment ids out of LSN order: %s", msg);
	expect_prefix(f, f->dir, &m, m.n, "reopen after fast rotations");
}

/* ---- 5. open / write / close cycles ----------------------------------- */

static void test_reopen_cycles(void **state)
{
	struct fx *f = *state;
	int cycles = 20 * kvt_scale();
	struct model m = { .seed = kvt_seed("reopen_cycles"),
			   .n = (unsigned)cycles * 5,
			   .vmax = 200 };
	uint64_t ids[1024];
	struct kv_db *db;
	int before, after;

	for (int c = 0; c < cycles; c++) {
		assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
		/* Everything written so far, nothing more. The model's last batch
		 * differs only in value sizes, so check with a model of c*5. */
		if (c) {
			struct model sofar = m;

			sofar.n = (unsigned)c * 5 + 1; /* its "last" batch is unwritten */
			check_batches(db, &sofar, (unsigned)c * 5);
		}
		write_batches(db, &m, (unsigned)c * 5, (unsigned)(c + 1) * 5, NULL);
		assert_int_equal(kv_close(db), 0);
		before = seg_ids(f->dir, ids, 1024);
		assert_true(before <= c + 1);

		/* An empty reopen leaves no new segment behind. */
		assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
		assert_int_equal(kv_close(db), 0);
		after = seg_ids(f->dir, ids, 1024);
		if (after != before)
			fail_msg("cycle %d: %d segments before an empty reopen, %d after", c,
				 before, after);
	}
	expect_prefix(f, f->dir, &m, m.n, "after all cycles");
	print_message("[ INFO     ] %d cycles: %d segment files\n", cycles,
		      seg_ids(f->dir, ids, 1024));
}

/* ---- 6. foreign and newer stores ------------------------------------------ */

static int has_file(const char *dir, const char *name)
{
	char *p = path_join(dir, name);
	int r = access(p, F_OK) == 0;

	free(p);
	return r;
}

static void test_foreign_and_newer(void **state)
{
	struct fx *f = *state;
	struct kv_db *db = NULL;
	char *p, *missing;
	uint8_t *ident, orig[64];
	size_t len;

	/* A directory holding something else. */
	p = path_join(f->work, "notes.txt");
	file_write(p, "hello\n", 6);
	assert_int_equal(kv_open(f->work, &f->opt, &db), -EMEDIUMTYPE);
	assert_false(has_file(f->work, "LOCK"));
	assert_false(has_file(f->work, "KVSTORE"));
	free(p);

	/* A store, then its identity file patched. */
	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	assert_int_equal(kv_put(db, NULL, "k", 1, "v", 1), 0);
	assert_int_equal(kv_close(db), 0);
	p = path_join(f->dir, "KVSTORE");
	ident = file_read(p, &len);
	assert_int_equal(len, 64);
	memcpy(orig, ident, 64);

	/* A newer format version, correctly checksummed. */
	kv_put_le32(ident + 8, KV_FORMAT_VERSION + 1);
	kv_put_le64(ident + 56, XXH3_64bits(ident, 56));
	file_write(p, ident, 64);
	log_clear(&f->log);
	assert_int_equal(kv_open(f->dir, &f->opt, &db), -EPROTONOSUPPORT);
	assert_non_null(strstr(f->log.text, p));

	/* An unknown incompatible feature, correctly checksummed. */
	memcpy(ident, orig, 64);
	kv_put_le32(ident + 12, 1u << 31);
	kv_put_le64(ident + 56, XXH3_64bits(ident, 56));
	file_write(p, ident, 64);
	assert_int_equal(kv_open(f->dir, &f->opt, &db), -EPROTONOSUPPORT);

	/* A damaged byte anywhere after the magic is a checksum mismatch. */
	for (int b = 8; b < 64; b++) {
		memcpy(ident, orig, 64);
		ident[b] ^= 0x10;
		file_write(p, ident, 64);
		log_clear(&f->log);
		if (kv_open(f->dir, &f->opt, &db) != -EBADMSG)
			fail_msg("KVSTORE byte %d flipped: not -EBADMSG; log:\n%s", b, f->log.text);
		assert_non_null(strstr(f->log.text, p));
	}
	/* In the magic: not ours. */
	memcpy(ident, orig, 64);
	ident[3] ^= 0x10;
	file_write(p, ident, 64);
	assert_int_equal(kv_open(f->dir, &f->opt, &db), -EMEDIUMTYPE);
	/* Of the wrong size. */
	file_write(p, orig, 63);
	assert_true(kv_open(f->dir, &f->opt, &db) < 0);

	/* Put back, it opens again with its data. */
	file_write(p, orig, 64);
	assert_int_equal(kv_open(f->dir, &f->opt, &db), 0);
	assert_int_equal(kv_get(db, 0, "k", 1, NULL, 0), 1);
	assert_int_equal(kv_close(db), 0);
	free(ident);
	free(p);

	/* No directory at all, and an empty one, without create_if_missing. */
	f->opt.create_if_missing = 0;
	missing = path_join(f->work, "nothing-here");
	assert_int_equal(kv_open(missing, &f->opt, &db), -ENOENT);
	assert_int_equal(access(missing, F_OK), -1);
	assert_int_equal(mkdir(missing, 0755), 0);
	assert_int_equal(kv_open(missing, &f->opt, &db), -ENOENT);
	assert_false(has_file(missing, "KVSTORE"));
	free(missing);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_torn_tail_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_flipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoch_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unborn_leftover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_never_used_in_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_cycles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_and_newer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
