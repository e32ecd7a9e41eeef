/* SPDX-License-Identifier: MIT */
/*
 * test_manifest.c - unit tests of kv/manifest.c: version edit encoding, the
 * manifest file, CURRENT, the torn-last-record rule, kv_manifest_check and
 * crash safety under the fault env.
 *
 * What is checked, and how it is observed:
 *   - edits round-trip (random, seeded with kvt_seed); every truncation of
 *     an encoding is -EUCLEAN; random byte flips never crash or over-read
 *     (the buffer is an exact-size malloc under ASan) and either decode to an
 *     edit that re-encodes or are -EUCLEAN; damaged structure always is;
 *   - golden bytes of a small manifest: if they change, the format changed;
 *   - create + append + read, and a second create replacing the first;
 *   - every cut length of the file: a torn last record is dropped with a
 *     warning naming its offset, a torn first record or header is -EUCLEAN;
 *   - a flipped byte in any earlier record is -EUCLEAN and the log names the
 *     record's offset; kv_manifest_check reports each problem and goes on;
 *   - garbage in CURRENT and in the file header;
 *   - crash safety: a fault env crash after every possible number of I/O
 *     calls during create + appends, then a power cut (clean and torn): the
 *     edits read back are a prefix of what was appended, holding every
 *     acknowledged append, or the old manifest whole if the new CURRENT was
 *     not acknowledged.
 * Files are inspected and damaged with plain POSIX calls.
 */
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

#include <cmocka.h>
#include <xxhash.h>

#include "ikey.h"
#include "kv_test_util.h"
#include "manifest.h"
#include "wal.h"

#define MAX_EDITS 64

struct fx {
	char *dir;
	struct kvt_log log;
	struct kv_options opt;
	struct kv_vedit edits[MAX_EDITS]; /* what was appended, in order */
	uint64_t rec_off[MAX_EDITS + 1];  /* where each record starts; [n] = end */
	int n;
	uint64_t rng;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = kvt_mkdtemp("manifest");
	kv_options_init(&f->opt);
	f->opt.log = kvt_log_fn;
	f->opt.log_ctx = &f->log;
	f->rng = kvt_seed("test_manifest");
	*state = f;
	return 0;
}

static void forget_edits(struct fx *f)
{
	int i;

	for (i = 0; i < f->n; i++)
		kv_vedit_free(&f->edits[i]);
	f->n = 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	forget_edits(f);
	kvt_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- edits ----------------------------------------------------------- */

static size_t rand_key(uint64_t *rng, uint8_t *k)
{
	size_t n = 8 + kvt_rand(rng) % 40, i;

	if (kvt_rand(rng) % 50 == 0)
		n = KV_MAX_KEY + 8;
	for (i = 0; i < n; i++)
		k[i] = (uint8_t)kvt_rand(rng);
	return n;
}

static void rand_edit(uint64_t *rng, struct kv_vedit *e)
{
	uint8_t s[KV_MAX_KEY + 8], l[KV_MAX_KEY + 8];
	int i, nadd = (int)(kvt_rand(rng) % 6), ndel = (int)(kvt_rand(rng) % 6);

	kv_vedit_init(e);
	e->has_log = kvt_rand(rng) & 1;
	if (e->has_log) {
		e->log_min_seg = kvt_rand(rng);
		e->log_min_lsn = kvt_rand(rng);
	}
	e->has_next_file = kvt_rand(rng) & 1;
	e->next_file = e->has_next_file ? kvt_rand(rng) : 0;
	for (i = 0; i < ndel; i++)
		assert_int_equal(kv_vedit_del(e, kvt_rand(rng) % KV_MAX_LEVELS, kvt_rand(rng)), 0);
	for (i = 0; i < nadd; i++) {
		struct kv_file_meta m = {
			.level = kvt_rand(rng) % KV_MAX_LEVELS,
			.file_no = kvt_rand(rng),
			.size = kvt_rand(rng),
			.entries = kvt_rand(rng),
			.min_lsn = kvt_rand(rng),
			.max_lsn = kvt_rand(rng),
		};

		if (kvt_rand(rng) % 8) { /* else an empty table: no keys */
			m.slen = rand_key(rng, s);
			m.llen = rand_key(rng, l);
			m.smallest = s;
			m.largest = l;
		}
		assert_int_equal(kv_vedit_add(e, &m), 0);
	}
}

static int bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (!alen || !memcmp(a, b, alen));
}

static int edit_eq(const struct kv_vedit *a, const struct kv_vedit *b)
{
	size_t i;

	if (a->has_log != b->has_log || a->has_next_file != b->has_next_file ||
	    a->nadd != b->nadd || a->ndel != b->ndel)
		return 0;
	if (a->has_log && (a->log_min_seg != b->log_min_seg || a->log_min_lsn != b->log_min_lsn))
		return 0;
	if (a->has_next_file && a->next_file != b->next_file)
		return 0;
	for (i = 0; i < a->ndel; i++)
		if (a->del[i].level != b->del[i].level || a->del[i].file_no != b->del[i].file_no)
			return 0;
	for (i = 0; i < a->nadd; i++) {
		const struct kv_file_meta *x = &a->add[i], *y = &b->add[i];

		if (x->level != y->level || x->file_no != y->file_no || x->size != y->size ||
		    x->entries != y->entries || x->min_lsn != y->min_lsn ||
		    x->max_lsn != y->max_lsn ||
		    !bytes_eq(x->smallest, x->slen, y->smallest, y->slen) ||
		    !bytes_eq(x->largest, x->llen, y->largest, y->llen))
			return 0;
	}
	return 1;
}

/* Decode from an exact-size heap copy, so ASan sees any over-read. */
static int decode_exact(const uint8_t *buf, size_t len, struct kv_vedit *e)
{
	uint8_t *copy = malloc(len ? len : 1);
	int ret;

	memcpy(copy, buf, len);
	ret = kv_vedit_decode(copy, len, e);
	free(copy);
	return ret;
}

static void test_edit_roundtrip(void **state)
{
	struct fx *f = *state;
	struct kv_vedit e, d;
	uint8_t *b, *b2;
	size_t len, len2;
	int i;

	for (i = 0; i < 2000 * kvt_scale(); i++) {
		rand_edit(&f->rng, &e);
		assert_int_equal(kv_vedit_encode(&e, &b, &len), 0);
		assert_int_equal(decode_exact(b, len, &d), 0);
		assert_true(edit_eq(&e, &d));
		assert_int_equal(kv_vedit_encode(&d, &b2, &len2), 0);
		assert_true(bytes_eq(b, len, b2, len2));
		free(b);
		free(b2);
		kv_vedit_free(&e);
		kv_vedit_free(&d);
	}
}

static void test_edit_encode_invalid(void **state)
{
	struct kv_file_meta m = { .level = 1, .slen = 3, .llen = 9 };
	uint8_t k[16] = "abcdefghijklmno";
	struct kv_vedit e;
	uint8_t *b;
	size_t len;

	(void)state;
	kv_vedit_init(&e);
	m.smallest = m.largest = k;
	assert_int_equal(kv_vedit_add(&e, &m), 0); /* a 3-byte internal key */
	assert_int_equal(kv_vedit_encode(&e, &b, &len), -EINVAL);
	kv_vedit_free(&e);
	assert_int_equal(kv_vedit_del(&e, KV_MAX_LEVELS, 1), 0);
	assert_int_equal(kv_vedit_encode(&e, &b, &len), -EINVAL);
	kv_vedit_free(&e);
}

/* Byte offsets of the structural bytes of an encoding: the edit header and
 * each field's reserved and length words (damage there is always caught). */
static int structural(const uint8_t *b, size_t len, size_t *offs)
{
	size_t pos = 8, i;
	int n = 0;

	for (i = 0; i < 8; i++)
		offs[n++] = i;
	while (pos < len) {
		for (i = 1; i < 8; i++) /* a tag's low byte may make another valid tag */
			offs[n++] = pos + i;
		pos += 8 + kv_get_le32(b + pos + 4);
	}
	return n;
}

static void test_edit_decode_garbage(void **state)
{
	struct fx *f = *state;
	size_t len, cut, offs[256];
	struct kv_vedit e, d;
	uint8_t *b, *b2;
	int i, j, k, n;

	for (i = 0; i < 300 * kvt_scale(); i++) {
		rand_edit(&f->rng, &e);
		assert_int_equal(kv_vedit_encode(&e, &b, &len), 0);
		for (cut = 0; cut < len; cut++)
			assert_int_equal(decode_exact(b, cut, &d), -EUCLEAN);
		n = structural(b, len, offs);
		for (j = 0; j < n; j++) {
			b2 = malloc(len);
			memcpy(b2, b, len);
			b2[offs[j]] ^= (uint8_t)(1 + kvt_rand(&f->rng) % 255);
			assert_int_equal(decode_exact(b2, len, &d), -EUCLEAN);
			free(b2);
		}
		for (j = 0; j < 20; j++) { /* random flips anywhere */
			b2 = malloc(len);
			memcpy(b2, b, len);
			for (k = 0; k < 1 + j % 4; k++)
				b2[kvt_rand(&f->rng) % len] ^=
					(uint8_t)(1 + kvt_rand(&f->rng) % 255);
			if (decode_exact(b2, len, &d) == 0) {
				free(b2);
				assert_int_equal(kv_vedit_encode(&d, &b2, &cut), 0);
				kv_vedit_free(&d);
			}
			free(b2);
		}
		free(b);
		kv_vedit_free(&e);
	}
}

/* ---- files ----------------------------------------------------------- */

static char *fpath(struct fx *f, const char *name)
{
	static char buf[4][512];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, 512, "%s/%s", f->dir, name);
	return p;
}

static char *mpath(struct fx *f, uint64_t number)
{
	char name[64];

	snprintf(name, sizeof(name), KV_MANIFEST_NAME_FMT, (unsigned long long)number);
	return fpath(f, name);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *b;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void spill(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

/* Create manifest @number in f->dir with a random snapshot and @nappend
 * random appends, remembering edits and record offsets. */
static void build(struct fx *f, struct kv_env *env, uint64_t number, int nappend)
{
	struct kv_manifest *m;
	int i;

	forget_edits(f);
	rand_edit(&f->rng, &f->edits[0]);
	assert_int_equal(kv_manifest_create(env, &f->opt, f->dir, number, &f->edits[0], &m), 0);
	f->rec_off[0] = 32;
	f->rec_off[1] = kv_manifest_size(m);
	for (i = 1; i <= nappend; i++) {
		rand_edit(&f->rng, &f->edits[i]);
		assert_int_equal(kv_manifest_append(m, &f->edits[i]), 0);
		f->rec_off[i + 1] = kv_manifest_size(m);
	}
	f->n = nappend + 1;
	assert_int_equal(kv_manifest_number(m), number);
	kv_manifest_close(m);
}

struct got {
	struct kv_vedit e[MAX_EDITS];
	int n;
};

static int collect(void *arg, const struct kv_vedit *e)
{
	struct got *g = arg;
	uint8_t *b;
	size_t len;

	assert_true(g->n < MAX_EDITS);
	assert_int_equal(kv_vedit_encode(e, &b, &len), 0); /* a deep copy */
	assert_int_equal(kv_vedit_decode(b, len, &g->e[g->n++]), 0);
	free(b);
	return 0;
}

static void got_free(struct got *g)
{
	while (g->n > 0)
		kv_vedit_free(&g->e[--g->n]);
}

/* Read f->dir; on success check the edits are f->edits[0 .. n). */
static int read_back(struct fx *f, struct kv_env *env, int n, uint64_t *number)
{
	struct got g = { .n = 0 };
	int ret, i;

	f->log.len = 0;
	f->log.text[0] = '\0';
	ret = kv_manifest_read(env, &f->opt, f->dir, collect, &g, number);
	if (!ret) {
		assert_int_equal(g.n, n);
		for (i = 0; i < n; i++)
			assert_true(edit_eq(&g.e[i], &f->edits[i]));
	}
	got_free(&g);
	return ret;
}

static void test_create_append_read(void **state)
{
	struct fx *f = *state;
	uint64_t number = 0;
	size_t len;

	build(f, kv_env_default(), 7, 30);
	assert_int_equal(read_back(f, kv_env_default(), f->n, &number), 0);
	assert_int_equal(number, 7);
	assert_int_equal(f->log.len, 0); /* no warning */
	free(slurp(mpath(f, 7), &len));
	assert_int_equal(len, f->rec_off[f->n]);
}

static void test_second_create(void **state)
{
	struct fx *f = *state;
	struct kv_manifest *m;
	uint64_t number = 0;
	uint8_t *cur;
	size_t len;

	build(f, kv_env_default(), 1, 3);
	build(f, kv_env_default(), 2, 4);
	assert_int_equal(read_back(f, kv_env_default(), f->n, &number), 0);
	assert_int_equal(number, 2);
	assert_int_equal(access(mpath(f, 1), F_OK), -1); /* the old one is gone */
	cur = slurp(fpath(f, "CURRENT"), &len);
	assert_true(bytes_eq(cur, len, (const uint8_t *)"MANIFEST-0000000000000002\n", 26));
	free(cur);
	/* The live manifest is never overwritten. */
	assert_int_equal(kv_manifest_create(kv_env_default(), &f->opt, f->dir, 2, &f->edits[0], &m),
			 -EEXIST);
	assert_int_equal(read_back(f, kv_env_default(), f->n, &number), 0);
}

/* Which record holds byte @off (the header counts as -1). */
static int rec_of(struct fx *f, uint64_t off)
{
	int i;

	for (i = 0; i < f->n; i++)
		if (off < f->rec_off[i + 1])
			return off < f->rec_off[0] ? -1 : i;
	return f->n;
}

static void assert_logged_offset(struct fx *f, uint64_t off)
{
	char want[64];

	snprintf(want, sizeof(want), "offset %llu", (unsigned long long)off);
	if (!strstr(f->log.text, want))
		fail_msg("log does not name %s:\n%s", want, f->log.text);
}

static void test_torn_tail(void **state)
{
	struct fx *f = *state;
	uint64_t number;
	uint8_t *img;
	size_t len, cut;
	int r;

	build(f, kv_env_default(), 3, 4);
	img = slurp(mpath(f, 3), &len);
	for (cut = 0; cut <= len; cut++) {
		spill(mpath(f, 3), img, cut);
		r = rec_of(f, cut);
		if (r <= 0 && cut != f->rec_off[1]) { /* header or snapshot torn */
			assert_int_equal(read_back(f, kv_env_default(), 0, &number), -EUCLEAN);
			continue;
		}
		assert_int_equal(read_back(f, kv_env_default(), r, &number), 0);
		if (cut == f->rec_off[r]) {
			assert_int_equal(f->log.len, 0); /* a clean end */
		} else {
			assert_non_null(strstr(f->log.text, "torn last record"));
			assert_logged_offset(f, f->rec_off[r]);
		}
	}
	/* Full length, but a bad checksum or a lost header sector. */
	img[len - 1] ^= 0x40;
	spill(mpath(f, 3), img, len);
	assert_int_equal(read_back(f, kv_env_default(), f->n - 1, &number), 0);
	assert_logged_offset(f, f->rec_off[f->n - 1]);
	img[len - 1] ^= 0x40;
	memset(img + f->rec_off[f->n - 1], 0, 16);
	spill(mpath(f, 3), img, len);
	assert_int_equal(read_back(f, kv_env_default(), f->n - 1, &number), 0);
	assert_logged_offset(f, f->rec_off[f->n - 1]);
	free(img);
}

struct reports {
	int n;
	uint64_t off[32];
	char text[32][128];
};

static void report(void *arg, const char *file, uint64_t off, const char *problem)
{
	struct reports *r = arg;

	assert_non_null(strstr(file, "/"));
	if (r->n < 32) {
		r->off[r->n] = off;
		snprintf(r->text[r->n], sizeof(r->text[0]), "%s", problem);
	}
	r->n++;
}

static void test_corrupt_record(void **state)
{
	struct fx *f = *state;
	struct reports rep = { 0 };
	uint64_t number, off;
	uint8_t *img, *orig;
	size_t len;
	int r;

	build(f, kv_env_default(), 4, 5);
	orig = slurp(mpath(f, 4), &len);
	img = malloc(len);
	assert_int_equal(kv_manifest_check(kv_env_default(), f->dir, report, &rep), 0);
	for (off = f->rec_off[0]; off < f->rec_off[f->n - 1]; off++) {
		r = rec_of(f, off);
		memcpy(img, orig, len);
		img[off] ^= (uint8_t)(1 + kvt_rand(&f->rng) % 255);
		spill(mpath(f, 4), img, len);
		assert_int_equal(read_back(f, kv_env_default(), 0, &number), -EUCLEAN);
		assert_logged_offset(f, f->rec_off[r]);
		memset(&rep, 0, sizeof(rep));
		assert_int_equal(kv_manifest_check(kv_env_default(), f->dir, report, &rep), 1);
		assert_int_equal(rep.off[0], f->rec_off[r]);
	}
	memcpy(img, orig, len);
	/* Two bad records and a torn tail: check reports all three. */
	img[f->rec_off[1] + 20] ^= 1;
	img[f->rec_off[3] + 3] ^= 1;
	img[len - 2] ^= 1;
	spill(mpath(f, 4), img, len);
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(kv_manifest_check(kv_env_default(), f->dir, report, &rep), 3);
	assert_int_equal(rep.off[0], f->rec_off[1]);
	assert_int_equal(rep.off[1], f->rec_off[3]);
	assert_int_equal(rep.off[2], f->rec_off[f->n - 1]);
	assert_string_equal(rep.text[2], "torn last record");
	free(img);
	free(orig);
}

static void put_current(struct fx *f, const char *text, size_t len)
{
	spill(fpath(f, "CURRENT"), text, len);
}

static void test_current_garbage(void **state)
{
	static const char *bad[] = {
		"",
		"MANIFEST-0000000000000001",
		"MANIFEST-0000000000000001\n\n",
		"MANIFEST-000000000000001\n",
		"MANIFEST-000000000000000A\n",
		"manifest-0000000000000001\n",
		"MANIFEST-00000000000000x1\n",
		"MANIFEST-0000000000000002\n", /* names a missing manifest */
	};
	struct fx *f = *state;
	char good[32] = "MANIFEST-0000000000000001\n";
	uint64_t number;
	size_t i;

	build(f, kv_env_default(), 1, 2);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_current(f, bad[i], strlen(bad[i]));
		assert_int_equal(read_back(f, kv_env_default(), 0, &number), -EUCLEAN);
		assert_non_null(strstr(f->log.text, "CURRENT"));
	}
	for (i = 0; i < 26; i++) {
		good[i] ^= (char)(1u << (i % 8));
		put_current(f, good, 26);
		assert_int_equal(read_back(f, kv_env_default(), 0, &number), -EUCLEAN);
		good[i] ^= (char)(1u << (i % 8));
	}
	put_current(f, good, 26);
	assert_int_equal(read_back(f, kv_env_default(), f->n, &number), 0);
	unlink(fpath(f, "CURRENT"));
	assert_int_equal(read_back(f, kv_env_default(), 0, &number), -ENOENT);
}

static void rewrite_header(uint8_t *h, uint32_t version, uint64_t number)
{
	kv_put_le32(h + 8, version);
	kv_put_le64(h + 16, number);
	kv_put_le64(h + 24, XXH3_64bits_withSeed(h, 24, 0));
}

static void test_header_garbage(void **state)
{
	struct fx *f = *state;
	uint64_t number;
	uint8_t *img;
	size_t len, i;

	build(f, kv_env_default(), 1, 2);
	img = slurp(mpath(f, 1), &len);
	for (i = 0; i < 32; i++) {
		img[i] ^= 0x10;
		spill(mpath(f, 1), img, len);
		assert_int_equal(read_back(f, kv_env_default(), 0, &number), -EUCLEAN);
		assert_non_null(strstr(f->log.text, "MANIFEST-0000000000000001"));
		img[i] ^= 0x10;
	}
	rewrite_header(img, KV_FORMAT_VERSION + 1, 1);
	spill(mpath(f, 1), img, len);
	assert_int_equal(read_back(f, kv_env_default(), 0, &number), -EPROTONOSUPPORT);
	rewrite_header(img, 1, 1); /* version 1 had no manifest */
	spill(mpath(f, 1), img, len);
	assert_int_equal(read_back(f, kv_env_default(), 0, &number), -EUCLEAN);
	rewrite_header(img, KV_FORMAT_VERSION, 9); /* not its name */
	spill(mpath(f, 1), img, len);
	assert_int_equal(read_back(f, kv_env_default(), 0, &number), -EUCLEAN);
	rewrite_header(img, KV_FORMAT_VERSION, 1);
	spill(mpath(f, 1), img, len);
	assert_int_equal(read_back(f, kv_env_default(), f->n, &number), 0);
	free(img);
}

static void test_check_clean(void **state)
{
	struct fx *f = *state;
	struct reports rep = { 0 };

	assert_int_equal(kv_manifest_check(kv_env_default(), f->dir, report, &rep), -ENOENT);
	build(f, kv_env_default(), 1, 3);
	assert_int_equal(kv_manifest_check(kv_env_default(), f->dir, report, &rep), 0);
	put_current(f, "MANIFEST-zz\n", 12);
	assert_int_equal(kv_manifest_check(kv_env_default(), f->dir, report, &rep), 1);
	assert_int_equal(rep.off[0], 9); /* the first bad byte */
}

/* ---- crash safety ------------------------------------------------------ */

/* The outcome of one run of create(2) + appends under a crash point. */
struct crash_run {
	int created; /* kv_manifest_create returned 0 */
	int acked;   /* appends that returned 0 */
};

static void fresh_dir(struct fx *f)
{
	kvt_rmrf(f->dir);
	assert_int_equal(mkdir(f->dir, 0755), 0);
}

/* Manifest 1 holds old[0 .. nold), durable. Then, crashing after @n calls,
 * create manifest 2 with nw[0] and append nw[1 ..]. */
static void crash_run(struct fx *f, struct kv_fault_env *fe, int64_t n, struct kv_vedit *old,
		      int nold, struct kv_vedit *nw, int nnew, struct crash_run *cr)
{
	struct kv_env *env = kv_fault_env_env(fe);
	struct kv_fault_rules rules = { .crash_after_ops = n };
	struct kv_manifest *m;
	int i;

	assert_int_equal(kv_manifest_create(env, &f->opt, f->dir, 1, &old[0], &m), 0);
	for (i = 1; i < nold; i++)
		assert_int_equal(kv_manifest_append(m, &old[i]), 0);
	kv_manifest_close(m);
	kv_fault_env_set_rules(fe, &rules);
	*cr = (struct crash_run){ 0 };
	if (kv_manifest_create(env, &f->opt, f->dir, 2, &nw[0], &m))
		return;
	cr->created = 1;
	for (i = 1; i < nnew && !kv_manifest_append(m, &nw[i]); i++)
		cr->acked++;
	kv_manifest_close(m);
}

static void crash_verify(struct fx *f, struct kv_env *env, struct kv_vedit *old, int nold,
			 struct kv_vedit *nw, int nnew, const struct crash_run *cr)
{
	struct got g = { .n = 0 };
	uint64_t number = 0;
	int ret, i;

	ret = kv_manifest_read(env, &f->opt, f->dir, collect, &g, &number);
	if (ret)
		fail_msg("read after the power cut: %d; log:\n%s", ret, f->log.text);
	if (number == 1) {
		assert_false(cr->created);
		assert_int_equal(g.n, nold);
		for (i = 0; i < nold; i++)
			assert_true(edit_eq(&g.e[i], &old[i]));
	} else {
		assert_int_equal(number, 2);
		assert_true(g.n >= 1 + cr->acked && g.n <= nnew);
		for (i = 0; i < g.n; i++)
			assert_true(edit_eq(&g.e[i], &nw[i]));
	}
	got_free(&g);
}

static void test_crash_safety(void **state)
{
	enum { NOLD = 3, NNEW = 5 };
	struct kv_vedit old[NOLD], nw[NNEW];
	struct fx *f = *state;
	struct kv_fault_env *fe;
	struct crash_run cr;
	int64_t n;
	int i, torn, done = 0;

	for (i = 0; i < NOLD; i++)
		rand_edit(&f->rng, &old[i]);
	for (i = 0; i < NNEW; i++)
		rand_edit(&f->rng, &nw[i]);
	for (n = 1; !done; n++) {
		assert_true(n < 10000);
		for (torn = 0; torn < 2; torn++) {
			fresh_dir(f);
			assert_int_equal(kv_fault_env_create(kv_env_default(), &fe), 0);
			crash_run(f, fe, n, old, NOLD, nw, NNEW, &cr);
			done = cr.created && cr.acked == NNEW - 1;
			assert_int_equal(
				kv_fault_env_power_cut(fe, torn ? kvt_rand(&f->rng) | 1 : 0), 0);
			crash_verify(f, kv_fault_env_env(fe), old, NOLD, nw, NNEW, &cr);
			kv_fault_env_destroy(fe);
		}
	}
	for (i = 0; i < NOLD; i++)
		kv_vedit_free(&old[i]);
	for (i = 0; i < NNEW; i++)
		kv_vedit_free(&nw[i]);
}

/* A failed fdatasync leaves the writer failed for good; what was synced
 * before survives a power cut. */
static void test_append_failure(void **state)
{
	struct kv_fault_rules rules = { .fail_sync_after = 1 };
	struct fx *f = *state;
	struct kv_fault_env *fe;
	struct kv_manifest *m;
	struct kv_vedit e;
	uint64_t number;
	int i;

	forget_edits(f);
	assert_int_equal(kv_fault_env_create(kv_env_default(), &fe), 0);
	for (i = 0; i < 3; i++)
		rand_edit(&f->rng, &f->edits[i]);
	f->n = 3;
	assert_int_equal(
		kv_manifest_create(kv_fault_env_env(fe), &f->opt, f->dir, 1, &f->edits[0], &m), 0);
	assert_int_equal(kv_manifest_append(m, &f->edits[1]), 0);
	assert_int_equal(kv_manifest_append(m, &f->edits[2]), 0);
	kv_fault_env_set_rules(fe, &rules);
	rand_edit(&f->rng, &e);
	assert_int_equal(kv_manifest_append(m, &e), -EIO);
	assert_logged_offset(f, kv_manifest_size(m));
	rules.fail_sync_after = 0;
	kv_fault_env_set_rules(fe, &rules);
	assert_int_equal(kv_manifest_append(m, &e), -EIO); /* stays failed */
	kv_manifest_close(m);
	kv_vedit_free(&e);
	assert_int_equal(kv_fault_env_power_cut(fe, 0), 0);
	assert_int_equal(read_back(f, kv_fault_env_env(fe), 3, &number), 0);
	kv_fault_env_destroy(fe);
}

/* ---- golden bytes ------------------------------------------------------ */

/* MANIFEST-0000000000000005 holding one edit: log (3, 0x1000), next_file 9,
 * delete (level 1, file 4), add (level 1, file 8, size 0x2000, 10 entries,
 * lsn 5..20, keys "a"@5 put .. "z"@20 put). */
static const char golden_hex[] =
	/* file header: magic, version 2, header_size 32, number 5, checksum */
	"4c564b564d414e31 02000000 20000000 0500000000000000 2792b7f6e3ea05c5"
	/* record header: checksum, len 154, type 1, reserved; edit: 4 fields */
	"68ef74c6bab421e6 9a000000 0100 0000 04000000 00000000"
	/* log: min segment 3, min lsn 0x1000 */
	"0100 0000 10000000 0300000000000000 0010000000000000"
	/* next_file 9 */
	"0200 0000 08000000 0900000000000000"
	/* delete level 1, file 4 */
	"0300 0000 10000000 01000000 00000000 0400000000000000"
	/* add level 1, slen 9, llen 9, file 8, size 0x2000, 10 entries, lsn 5..20 */
	"0400 0000 4a000000 01000000 09000000 09000000 00000000 0800000000000000"
	"0020000000000000 0a00000000000000 0500000000000000 1400000000000000"
	"610105000000000000 7a0114000000000000";

static void hex_decode(const char *hex, uint8_t *out, size_t *len)
{
	size_t n = 0;
	unsigned v;

	for (; *hex; hex++) {
		if (*hex == ' ')
			continue;
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		hex++;
	}
	*len = n;
}

static void test_golden(void **state)
{
	struct kv_file_meta m = { .level = 1,
				  .file_no = 8,
				  .size = 0x2000,
				  .entries = 10,
				  .min_lsn = 5,
				  .max_lsn = 20 };
	uint8_t s[9], l[9], want[512], *got;
	struct fx *f = *state;
	struct kv_manifest *man;
	struct kv_vedit e;
	size_t wlen, glen, i;

	kv_vedit_init(&e);
	e.has_log = 1;
	e.log_min_seg = 3;
	e.log_min_lsn = 0x1000;
	e.has_next_file = 1;
	e.next_file = 9;
	assert_int_equal(kv_vedit_del(&e, 1, 4), 0);
	kv_ikey_make(s, "a", 1, 5, KV_IK_PUT);
	kv_ikey_make(l, "z", 1, 20, KV_IK_PUT);
	m.smallest = s;
	m.largest = l;
	m.slen = m.llen = 9;
	assert_int_equal(kv_vedit_add(&e, &m), 0);
	assert_int_equal(kv_manifest_create(kv_env_default(), &f->opt, f->dir, 5, &e, &man), 0);
	kv_manifest_close(man);
	kv_vedit_free(&e);
	got = slurp(mpath(f, 5), &glen);
	hex_decode(golden_hex, want, &wlen);
	if (!bytes_eq(got, glen, want, wlen)) {
		for (i = 0; i < glen; i++)
			fprintf(stderr, "%02x", got[i]);
		fail_msg("the manifest bytes changed (above): a format change?");
	}
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_edit_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_encode_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_decode_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_golden, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_append_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_current_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
