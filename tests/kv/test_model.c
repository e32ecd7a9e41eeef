/* SPDX-License-Identifier: MIT */
/*
 * Model-based randomized test of libkv: a seeded random sequence of
 * operations runs against the store and against a sorted in-memory model,
 * and every read is compared with the model.
 *
 * Operations: put, delete, delete-range, a batch mixing the three, get,
 * get at a live snapshot, snapshot create and release (the model keeps a
 * copy per live snapshot), full iteration and seek + partial iteration (now
 * or at a snapshot), an iterator created before further writes (it must keep
 * its view), kv_flush, kv_compact, close + reopen, and simulated crashes
 * through the fault env: kv_abandon + kv_fault_env_power_cut (clean or
 * torn), sometimes with the "process" dying part way through a kv_flush or
 * kv_compact (crash_after_ops). Every write is synchronous, so a crash
 * leaves the model unchanged; snapshots do not survive a reopen or crash.
 *
 * Keys are 1..3 bytes (the first from 64 symbols, the others from 8, with
 * 0x00 and 0xff among them) so that writes, deletes and ranges overlap all
 * the time. Log buffers are 64 KiB, so memtables rotate often. Runs alternate
 * manual_background = 1 (the store's shape changes only by the test's
 * kv_flush / kv_compact) and 0 (automatic flush and compaction race with
 * the operations).
 *
 * Seed: kvt_seed("test_model") (KV_TEST_SEED=n repeats a run); each run's
 * seed derives from it. KV_TEST_LONG=n runs n times as many steps. On a
 * mismatch the failure names the run, the step, the operation, the seed and
 * the last operations before it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_test_util.h"

/* Iterators (and snapshots) a test holds, so that teardown can free them
 * after a failure: a db must not be closed under them. */
#define LIVE_MAX 8
static struct kv_iter *live_iter[LIVE_MAX];

static int iter_open(struct kv_db *db, const struct kv_snapshot *s, struct kv_iter **out)
{
	int err = kv_iter_create(db, s, out);

	for (int i = 0; !err && i < LIVE_MAX; i++)
		if (!live_iter[i]) {
			live_iter[i] = *out;
			break;
		}
	return err;
}

static void iter_close(struct kv_iter *it)
{
	for (int i = 0; i < LIVE_MAX; i++)
		if (live_iter[i] == it)
			live_iter[i] = NULL;
	kv_iter_destroy(it);
}

/* After a failure: what the test still held. */
static void live_free(struct kv_db *db)
{
	for (int i = 0; i < LIVE_MAX; i++) {
		if (live_iter[i])
			kv_iter_destroy(live_iter[i]);
		live_iter[i] = NULL;
	}
}

#define RUNS 4
#define STEPS 2500 /* per run, times kvt_scale() */
#define MAX_SNAPS 4
#define TRACE 24     /* operations remembered for a failure report */
#define VAL_MAX 8192 /* longest value (log buffer 64 KiB: at most 16 KiB) */
#define BATCH_MAX_OPS 8

/* ---- the model: a sorted array of byte-string keys ---------------------- */

struct ment {
	uint8_t *k, *v;
	size_t kl, vl;
};

struct model {
	struct ment *e;
	size_t n, cap;
};

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

static void *dup_bytes(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	assert_non_null(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

static size_t model_lower(const struct model *m, const void *k, size_t kl)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (key_cmp(m->e[mid].k, m->e[mid].kl, k, kl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct ment *model_get(const struct model *m, const void *k, size_t kl)
{
	size_t i = model_lower(m, k, kl);

	if (i < m->n && !key_cmp(m->e[i].k, m->e[i].kl, k, kl))
		return &m->e[i];
	return NULL;
}

static void model_put(struct model *m, const void *k, size_t kl, const void *v, size_t vl)
{
	size_t i = model_lower(m, k, kl);

	if (i < m->n && !key_cmp(m->e[i].k, m->e[i].kl, k, kl)) {
		free(m->e[i].v);
		m->e[i].v = dup_bytes(v, vl);
		m->e[i].vl = vl;
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->e = realloc(m->e, m->cap * sizeof(*m->e));
		assert_non_null(m->e);
	}
	memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof(*m->e));
	m->e[i] = (struct ment){ dup_bytes(k, kl), dup_bytes(v, vl), kl, vl };
	m->n++;
}

static void model_del_range(struct model *m, const void *s, size_t sl, const void *e, size_t el)
{
	size_t a = model_lower(m, s, sl), b = model_lower(m, e, el);

	if (b <= a)
		return;
	for (size_t i = a; i < b; i++) {
		free(m->e[i].k);
		free(m->e[i].v);
	}
	memmove(&m->e[a], &m->e[b], (m->n - b) * sizeof(*m->e));
	m->n -= b - a;
}

static void model_del(struct model *m, const void *k, size_t kl)
{
	size_t i = model_lower(m, k, kl);

	if (i < m->n && !key_cmp(m->e[i].k, m->e[i].kl, k, kl)) {
		free(m->e[i].k);
		free(m->e[i].v);
		memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(*m->e));
		m->n--;
	}
}

static void model_copy(struct model *dst, const struct model *src)
{
	dst->n = dst->cap = src->n;
	dst->e = malloc((src->n ? src->n : 1) * sizeof(*dst->e));
	assert_non_null(dst->e);
	for (size_t i = 0; i < src->n; i++)
		dst->e[i] = (struct ment){ dup_bytes(src->e[i].k, src->e[i].kl),
					   dup_bytes(src->e[i].v, src->e[i].vl), src->e[i].kl,
					   src->e[i].vl };
}

static void model_free(struct model *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->e[i].k);
		free(m->e[i].v);
	}
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* ---- a run -------------------------------------------------------------- */

struct snap {
	struct kv_snapshot *s;
	struct model m;
	int taken_at; /* step */
};

struct run {
	int no;
	uint64_t seed, run_seed, rs;
	int step;
	char *dir;
	struct kv_fault_env *fe;
	struct kvt_log log;
	struct kv_options opt;
	struct kv_db *db;
	struct model m;
	struct snap snaps[MAX_SNAPS];
	int nsnaps;
	char op[200]; /* the operation under way */
	char trace[TRACE][220];
	int ntrace;
	uint8_t *val, *got; /* VAL_MAX bytes each */
	unsigned flushes, compacts, reopens, crashes, iters, snaps_taken, checks;
};

/* Keys and values printed for people: printable bytes as is, others \xx. */
static void fmt_bytes(char *out, size_t cap, const void *p, size_t n, size_t max)
{
	const uint8_t *b = p;
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && i < max && o + 5 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o,
				      b[i] > 0x20 && b[i] < 0x7f && b[i] != '\\' ? "%c" : "\\%02x",
				      b[i]);
	if (n > max && o + 4 < cap)
		snprintf(out + o, cap - o, "...");
}

static void __attribute__((noreturn, format(printf, 2, 3)))
run_fail(struct run *r, const char *fmt, ...)
{
	char msg[1024], trace[TRACE * 230];
	size_t o = 0;
	va_list ap;
	int first = r->ntrace > TRACE ? r->ntrace - TRACE : 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trace[0] = '\0';
	for (int i = first; i < r->ntrace; i++)
		o += (size_t)snprintf(trace + o, sizeof(trace) - o, "    %s\n",
				      r->trace[i % TRACE]);
	fail_msg("run %d (manual_background %d), step %d, op %s: %s\n"
		 "  seed %llu (rerun: KV_TEST_SEED=%llu), run seed %llu; last operations:\n%s"
		 "  log:\n%s",
		 r->no, r->opt.manual_background, r->step, r->op, msg, (unsigned long long)r->seed,
		 (unsigned long long)r->seed, (unsigned long long)r->run_seed, trace, r->log.text);
	abort(); /* not reached */
}

static void __attribute__((format(printf, 2, 3))) set_op(struct run *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->op, sizeof(r->op), fmt, ap);
	va_end(ap);
	snprintf(r->trace[r->ntrace % TRACE], sizeof(r->trace[0]), "%d: %s", r->step, r->op);
	r->ntrace++;
}

static void check_err(struct run *r, int err, const char *what)
{
	if (err)
		run_fail(r, "%s = %d (%s)", what, err, strerror(-err));
}

static uint64_t rnd(struct run *r, uint64_t n)
{
	return kvt_rand(&r->rs) % n;
}

static const uint8_t sym[64] = {
	0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
	'a',  'b',  'c',  'd',	'e',  'f',  'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p',
	'q',  'r',  's',  't',	'u',  'v',  'w', 'x', 'y', 'z', 'A', 'B', 'C', 'D', 'E', 'F',
	'G',  'H',  'I',  'J',	'K',  'L',  'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V',
};
static const uint8_t sym_tail[8] = { 0x00, '0', '5', 'a', 'm', 'z', 'A', 0xff };

static size_t rand_key(struct run *r, uint8_t *k)
{
	unsigned p = (unsigned)rnd(r, 10);
	size_t kl = p < 1 ? 1 : p < 5 ? 2 : 3;

	k[0] = sym[rnd(r, 64)];
	for (size_t i = 1; i < kl; i++)
		k[i] = sym_tail[rnd(r, 8)];
	return kl;
}

static size_t rand_val(struct run *r, uint8_t *v, size_t max)
{
	unsigned p = (unsigned)rnd(r, 100);
	size_t vl = p < 5  ? 0 :
		    p < 75 ? 1 + rnd(r, 40) :
		    p < 95 ? 41 + rnd(r, 960) :
			     1001 + rnd(r, 7000);
	uint64_t x = kvt_rand(&r->rs) | 1;
	char head[24];
	int hl;

	if (vl > max)
		vl = max;
	for (size_t i = 0; i < vl; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v[i] = (uint8_t)x;
	}
	hl = snprintf(head, sizeof(head), "s%d.", r->step);
	memcpy(v, head, vl < (size_t)hl ? vl : (size_t)hl);
	return vl;
}

static void swap_keys(uint8_t *s, size_t *sl, uint8_t *e, size_t *el)
{
	uint8_t t[4];
	size_t tl = *sl;

	memcpy(t, s, *sl);
	memcpy(s, e, *el);
	*sl = *el;
	memcpy(e, t, tl);
	*el = tl;
}

/*
 * A range [s, e), s < e. Mostly narrow, so that the store keeps keys: one
 * key (s, s + 0x00), two keys with the same first byte, every key with one
 * first byte; sometimes two random keys (a wide range).
 */
static void rand_range(struct run *r, uint8_t *s, size_t *sl, uint8_t *e, size_t *el)
{
	unsigned x = (unsigned)rnd(r, 100);

	*sl = rand_key(r, s);
	if (x < 35 || (x < 97 && s[0] == 0xff)) {
		memcpy(e, s, *sl);
		e[*sl] = 0;
		*el = *sl + 1;
		return;
	}
	if (x < 87) {
		*el = 2 + rnd(r, 2);
		e[0] = s[0];
		for (size_t i = 1; i < *el; i++)
			e[i] = sym_tail[rnd(r, 8)];
	} else if (x < 97) {
		*sl = 1;
		e[0] = (uint8_t)(s[0] + 1);
		*el = 1;
	} else {
		*el = rand_key(r, e);
	}
	if (!key_cmp(s, *sl, e, *el)) {
		e[*sl] = 0;
		*el = *sl + 1;
	}
	if (key_cmp(s, *sl, e, *el) > 0)
		swap_keys(s, sl, e, el);
}

/* ---- checks ------------------------------------------------------------- */

static void check_get(struct run *r, const struct kv_snapshot *s, const struct model *m,
		      const uint8_t *k, size_t kl)
{
	const struct ment *e = model_get(m, k, kl);
	ssize_t n = s ? kv_get_at(r->db, s, k, kl, r->got, VAL_MAX) :
			kv_get(r->db, 0, k, kl, r->got, VAL_MAX);
	char kb[32], want[64], got[64];

	fmt_bytes(kb, sizeof(kb), k, kl, 8);
	if (!e) {
		if (n != -ENOENT) {
			fmt_bytes(got, sizeof(got), r->got, n > 0 ? (size_t)n : 0, 12);
			run_fail(r, "get %s: want absent, got %zd \"%s\"", kb, n, got);
		}
		return;
	}
	if (n != (ssize_t)e->vl || (e->vl && memcmp(r->got, e->v, e->vl))) {
		fmt_bytes(want, sizeof(want), e->v, e->vl, 12);
		fmt_bytes(got, sizeof(got), r->got, n > 0 ? (size_t)n : 0, 12);
		run_fail(r, "get %s: want %zu bytes \"%s\", got %zd \"%s\"", kb, e->vl, want, n,
			 got);
	}
	r->checks++;
}

/* Compare @it, positioned, with @m from index @i for @limit keys (0 = all). */
static void check_iter(struct run *r, struct kv_iter *it, const struct model *m, size_t i,
		       size_t limit)
{
	size_t seen = 0;
	char a[32], b[32], va[64], vb[64];

	for (; kv_iter_valid(it) && (!limit || seen < limit); kv_iter_next(it), i++, seen++) {
		size_t kl, vl;
		const void *k = kv_iter_key(it, &kl);
		const void *v = kv_iter_value(it, &vl);

		fmt_bytes(a, sizeof(a), k, kl, 8);
		if (i >= m->n)
			run_fail(r, "iterator: %s after the model's last key (%zu keys)", a, m->n);
		fmt_bytes(b, sizeof(b), m->e[i].k, m->e[i].kl, 8);
		if (key_cmp(k, kl, m->e[i].k, m->e[i].kl))
			run_fail(r, "iterator: key %zu after the seek is %s, model has %s", seen, a,
				 b);
		if (vl != m->e[i].vl || (vl && memcmp(v, m->e[i].v, vl))) {
			fmt_bytes(va, sizeof(va), v, vl, 12);
			fmt_bytes(vb, sizeof(vb), m->e[i].v, m->e[i].vl, 12);
			run_fail(r, "iterator: %s = %zu bytes \"%s\", model %zu \"%s\"", a, vl, va,
				 m->e[i].vl, vb);
		}
	}
	if (kv_iter_status(it))
		run_fail(r, "kv_iter_status = %d", kv_iter_status(it));
	if (!kv_iter_valid(it) && i < m->n && (!limit || seen < limit)) {
		fmt_bytes(b, sizeof(b), m->e[i].k, m->e[i].kl, 8);
		run_fail(r, "iterator ended after %zu keys; the model has %s next", seen, b);
	}
	r->iters++;
}

static void check_all(struct run *r, const char *when)
{
	struct kv_iter *it;

	set_op(r, "full check (%s, %zu keys)", when, r->m.n);
	check_err(r, iter_open(r->db, NULL, &it), "kv_iter_create");
	kv_iter_seek_first(it);
	check_iter(r, it, &r->m, 0, 0);
	iter_close(it);
	for (size_t i = 0; i < r->m.n; i++)
		check_get(r, NULL, &r->m, r->m.e[i].k, r->m.e[i].kl);
}

/* ---- store lifecycle ---------------------------------------------------- */

static void db_open(struct run *r)
{
	int err;

	r->log.len = 0;
	r->log.text[0] = '\0';
	err = kv_open(r->dir, &r->opt, &r->db);
	if (err) {
		r->db = NULL;
		run_fail(r, "kv_open = %d (%s)", err, strerror(-err));
	}
}

static void release_snaps(struct run *r)
{
	for (int i = 0; i < r->nsnaps; i++) {
		kv_snapshot_release(r->db, r->snaps[i].s);
		model_free(&r->snaps[i].m);
	}
	r->nsnaps = 0;
}

static void op_reopen(struct run *r)
{
	set_op(r, "close + reopen (%d snapshots dropped)", r->nsnaps);
	release_snaps(r);
	check_err(r, kv_close(r->db), "kv_close");
	r->db = NULL;
	db_open(r);
	r->reopens++;
	check_all(r, "after reopen");
}

/* The process dies (optionally part way through a flush or compaction), then
 * the power goes. Every write was acknowledged in sync mode: nothing is lost. */
static void op_crash(struct run *r)
{
	struct kv_fault_rules rules = { 0 };
	unsigned how = (unsigned)rnd(r, 4);
	uint64_t torn = rnd(r, 2) ? kvt_rand(&r->rs) | 1 : 0;
	int err = 0;

	if (how >= 2)
		rules.crash_after_ops = 1 + (int64_t)rnd(r, 40);
	set_op(r, "crash%s (crash_after_ops %lld), power cut (torn %llu)",
	       how == 2 ? " in kv_flush" :
	       how == 3 ? " in kv_compact" :
			  "",
	       (long long)rules.crash_after_ops, (unsigned long long)torn);
	release_snaps(r);
	if (how >= 2) {
		kv_fault_env_set_rules(r->fe, &rules);
		err = how == 2 ? kv_flush(r->db) : kv_compact(r->db);
	}
	kv_abandon(r->db);
	r->db = NULL;
	memset(&rules, 0, sizeof(rules));
	kv_fault_env_set_rules(r->fe, &rules);
	check_err(r, kv_fault_env_power_cut(r->fe, torn), "kv_fault_env_power_cut");
	(void)err; /* the flush may have failed or not: either is fine */
	db_open(r);
	r->crashes++;
	check_all(r, "after crash");
}

/* ---- operations --------------------------------------------------------- */

static void op_put(struct run *r)
{
	uint8_t k[4];
	size_t kl = rand_key(r, k), vl = rand_val(r, r->val, VAL_MAX);
	char kb[32];

	fmt_bytes(kb, sizeof(kb), k, kl, 8);
	set_op(r, "put %s (%zu bytes)", kb, vl);
	check_err(r, kv_put(r->db, NULL, k, kl, r->val, vl), "kv_put");
	model_put(&r->m, k, kl, r->val, vl);
}

static void op_delete(struct run *r)
{
	uint8_t k[4];
	size_t kl = rand_key(r, k);
	char kb[32];

	fmt_bytes(kb, sizeof(kb), k, kl, 8);
	set_op(r, "delete %s", kb);
	check_err(r, kv_delete(r->db, NULL, k, kl), "kv_delete");
	model_del(&r->m, k, kl);
}

static void op_delete_range(struct run *r)
{
	uint8_t s[4], e[4];
	size_t sl, el;
	char sb[32], eb[32];

	rand_range(r, s, &sl, e, &el);
	fmt_bytes(sb, sizeof(sb), s, sl, 8);
	fmt_bytes(eb, sizeof(eb), e, el, 8);
	set_op(r, "delete_range [%s, %s)", sb, eb);
	check_err(r, kv_delete_range(r->db, NULL, s, sl, e, el), "kv_delete_range");
	model_del_range(&r->m, s, sl, e, el);
}

struct bop {
	int kind; /* 0 put, 1 delete, 2 delete range */
	uint8_t k[4], e[4];
	size_t kl, el, voff, vl;
};

static void op_batch(struct run *r)
{
	struct bop ops[BATCH_MAX_OPS];
	int n = 1 + (int)rnd(r, BATCH_MAX_OPS);
	size_t used = 0;
	struct kv_batch *b;
	char desc[160];
	int o = 0;

	check_err(r, kv_batch_create(&b), "kv_batch_create");
	for (int i = 0; i < n; i++) {
		struct bop *p = &ops[i];
		unsigned x = (unsigned)rnd(r, 100);
		char kb[32];

		p->kind = x < 62 ? 0 : x < 92 ? 1 : 2;
		if (p->kind == 2) {
			rand_range(r, p->k, &p->kl, p->e, &p->el);
			check_err(r, kv_batch_delete_range(b, p->k, p->kl, p->e, p->el),
				  "kv_batch_delete_range");
		} else {
			p->kl = rand_key(r, p->k);
		}
		if (p->kind == 0) {
			p->voff = used;
			p->vl = rand_val(r, r->val + used, 1000);
			used += p->vl;
			check_err(r, kv_batch_put(b, p->k, p->kl, r->val + p->voff, p->vl),
				  "kv_batch_put");
		} else if (p->kind == 1) {
			check_err(r, kv_batch_delete(b, p->k, p->kl), "kv_batch_delete");
		}
		fmt_bytes(kb, sizeof(kb), p->k, p->kl, 4);
		if (o < (int)sizeof(desc) - 24)
			o += snprintf(desc + o, sizeof(desc) - (size_t)o, " %c%s", "PDR"[p->kind],
				      kb);
	}
	set_op(r, "batch of %d:%s", n, desc);
	if (kv_batch_count(b) != (uint32_t)n)
		run_fail(r, "kv_batch_count = %u, want %d", kv_batch_count(b), n);
	check_err(r, kv_write(r->db, NULL, b), "kv_write");
	kv_batch_destroy(b);
	for (int i = 0; i < n; i++) {
		struct bop *p = &ops[i];

		if (p->kind == 0)
			model_put(&r->m, p->k, p->kl, r->val + p->voff, p->vl);
		else if (p->kind == 1)
			model_del(&r->m, p->k, p->kl);
		else
			model_del_range(&r->m, p->k, p->kl, p->e, p->el);
	}
}

/* A key to read: often one the model has, so hits are checked too. */
static size_t read_key(struct run *r, const struct model *m, uint8_t *k)
{
	if (m->n && rnd(r, 2)) {
		const struct ment *e = &m->e[rnd(r, m->n)];

		memcpy(k, e->k, e->kl);
		return e->kl;
	}
	return rand_key(r, k);
}

static void op_get(struct run *r)
{
	uint8_t k[4];
	size_t kl = read_key(r, &r->m, k);
	char kb[32];

	fmt_bytes(kb, sizeof(kb), k, kl, 8);
	set_op(r, "get %s", kb);
	check_get(r, NULL, &r->m, k, kl);
}

static void op_snap_get(struct run *r)
{
	struct snap *s;
	uint8_t k[4];
	size_t kl;
	char kb[32];

	if (!r->nsnaps)
		return;
	s = &r->snaps[rnd(r, (uint64_t)r->nsnaps)];
	kl = read_key(r, &s->m, k);
	fmt_bytes(kb, sizeof(kb), k, kl, 8);
	set_op(r, "get %s at the snapshot of step %d", kb, s->taken_at);
	check_get(r, s->s, &s->m, k, kl);
}

static void op_snap_create(struct run *r)
{
	struct snap *s;

	if (r->nsnaps == MAX_SNAPS)
		return;
	set_op(r, "snapshot create (%d live)", r->nsnaps);
	s = &r->snaps[r->nsnaps];
	check_err(r, kv_snapshot_create(r->db, &s->s), "kv_snapshot_create");
	model_copy(&s->m, &r->m);
	s->taken_at = r->step;
	r->nsnaps++;
	r->snaps_taken++;
}

static void op_snap_release(struct run *r)
{
	int i;

	if (!r->nsnaps)
		return;
	i = (int)rnd(r, (uint64_t)r->nsnaps);
	set_op(r, "snapshot release (of step %d)", r->snaps[i].taken_at);
	kv_snapshot_release(r->db, r->snaps[i].s);
	model_free(&r->snaps[i].m);
	r->snaps[i] = r->snaps[--r->nsnaps];
}

/* Iterate now or at a snapshot: all of it, or from a seek for a few keys. */
static void op_iter(struct run *r, int full)
{
	struct snap *s = r->nsnaps && rnd(r, 3) == 0 ? &r->snaps[rnd(r, (uint64_t)r->nsnaps)] :
						       NULL;
	const struct model *m = s ? &s->m : &r->m;
	struct kv_iter *it;
	uint8_t k[4];
	size_t kl = 0, limit = full ? 0 : 1 + rnd(r, 20);
	char kb[32] = "";

	if (!full) {
		kl = rand_key(r, k);
		fmt_bytes(kb, sizeof(kb), k, kl, 8);
	}
	set_op(r, "%s%s%s, %zu keys%s", full ? "full iteration" : "seek to ", kb,
	       s ? " at a snapshot" : "", limit, full ? " (all)" : "");
	check_err(r, iter_open(r->db, s ? s->s : NULL, &it), "kv_iter_create");
	if (full)
		kv_iter_seek_first(it);
	else
		kv_iter_seek(it, k, kl);
	check_iter(r, it, m, full ? 0 : model_lower(m, k, kl), limit);
	/* Seek again on the same iterator, backwards. */
	if (!full && m->n) {
		const struct ment *e = &m->e[rnd(r, m->n)];

		kv_iter_seek(it, e->k, e->kl);
		check_iter(r, it, m, model_lower(m, e->k, e->kl), 3);
	}
	iter_close(it);
}

/* An iterator made now keeps its view through later writes (and a flush). */
static void op_iter_stale(struct run *r)
{
	struct model frozen;
	struct kv_iter *it;
	int n = 1 + (int)rnd(r, 6), flush = rnd(r, 4) == 0;

	set_op(r, "iterator, then %d writes%s, then iterate", n, flush ? " and a flush" : "");
	check_err(r, iter_open(r->db, NULL, &it), "kv_iter_create");
	model_copy(&frozen, &r->m);
	for (int i = 0; i < n; i++) {
		if (rnd(r, 3))
			op_put(r);
		else
			op_delete_range(r);
	}
	if (flush)
		check_err(r, kv_flush(r->db), "kv_flush");
	set_op(r, "the iterator made before %d writes", n);
	kv_iter_seek_first(it);
	check_iter(r, it, &frozen, 0, 0);
	iter_close(it);
	model_free(&frozen);
}

static void op_flush(struct run *r)
{
	set_op(r, "kv_flush");
	check_err(r, kv_flush(r->db), "kv_flush");
	r->flushes++;
}

static void op_compact(struct run *r)
{
	struct kv_stats st;
	int levels = 0;

	set_op(r, "kv_compact (%d snapshots)", r->nsnaps);
	check_err(r, kv_compact(r->db), "kv_compact");
	r->compacts++;
	check_err(r, kv_stats(r->db, &st), "kv_stats");
	if (st.bg_error || st.failed)
		run_fail(r, "after kv_compact: bg_error %d, failed %d", st.bg_error, st.failed);
	/* With manual background work nothing can have landed since. */
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		levels += st.level_tables[l] != 0;
	if (r->opt.manual_background && levels > 1)
		run_fail(r, "kv_compact left tables in %d levels", levels);
}

/* After each step: stats agree, and in manual mode (nothing flushes unless
 * asked) the memtables stay few. */
static void keep_memtables_few(struct run *r)
{
	struct kv_stats st;

	check_err(r, kv_stats(r->db, &st), "kv_stats");
	if (st.bg_error || st.failed)
		run_fail(r, "bg_error %d, failed %d", st.bg_error, st.failed);
	if (st.snapshots != (uint64_t)r->nsnaps)
		run_fail(r, "stats: %llu snapshots, %d live", (unsigned long long)st.snapshots,
			 r->nsnaps);
	if (!r->opt.manual_background && st.memtables > (uint64_t)r->opt.max_immutable + 1)
		run_fail(r, "stats: %llu memtables, max_immutable %d",
			 (unsigned long long)st.memtables, r->opt.max_immutable);
	if (r->opt.manual_background && st.memtables >= 8) {
		set_op(r, "kv_flush (%llu memtables)", (unsigned long long)st.memtables);
		check_err(r, kv_flush(r->db), "kv_flush");
	}
}

static void step(struct run *r)
{
	unsigned x = (unsigned)rnd(r, 1000);

	if (x < 300)
		op_put(r);
	else if (x < 360)
		op_delete(r);
	else if (x < 380)
		op_delete_range(r);
	else if (x < 480)
		op_batch(r);
	else if (x < 650)
		op_get(r);
	else if (x < 720)
		op_snap_get(r);
	else if (x < 745)
		op_snap_create(r);
	else if (x < 765)
		op_snap_release(r);
	else if (x < 785)
		op_iter(r, 1);
	else if (x < 880)
		op_iter(r, 0);
	else if (x < 910)
		op_iter_stale(r);
	else if (x < 950)
		op_flush(r);
	else if (x < 965)
		op_compact(r);
	else if (x < 980)
		op_reopen(r);
	else
		op_crash(r);
}

static void check_report(void *arg, const char *file, uint64_t off, const char *problem)
{
	struct run *r = arg;

	print_message("[ ERROR    ] kv_check: %s at %llu: %s\n", file, (unsigned long long)off,
		      problem);
	r->checks++;
}

/* A run in progress, so that teardown can clean up after a failure. */
static struct run *current;

static void run_free(struct run *r)
{
	live_free(r->db);
	if (r->db) {
		release_snaps(r);
		kv_abandon(r->db);
	}
	for (int i = 0; i < r->nsnaps; i++)
		model_free(&r->snaps[i].m);
	model_free(&r->m);
	if (r->fe)
		kv_fault_env_destroy(r->fe);
	kvt_rmrf(r->dir);
	free(r->dir);
	free(r->val);
	free(r->got);
	free(r);
}

static void one_run(int no, uint64_t seed)
{
	struct run *r = calloc(1, sizeof(*r));
	int steps = STEPS * kvt_scale(), problems;
	unsigned before;
	struct kv_stats st;
	char shape[128];

	assert_non_null(r);
	current = r;
	r->no = no;
	r->seed = seed;
	r->rs = seed;
	for (int i = 0; i <= no; i++)
		r->rs = kvt_rand(&r->rs) | 1;
	r->run_seed = r->rs;
	r->dir = kvt_mkdtemp("model");
	r->val = malloc(VAL_MAX);
	r->got = malloc(VAL_MAX);
	assert_non_null(r->val);
	assert_non_null(r->got);
	assert_int_equal(kv_fault_env_create(kv_env_default(), &r->fe), 0);
	kvt_options(&r->opt, kv_fault_env_env(r->fe), &r->log);
	r->opt.log_buffer_size = 64 << 10;
	r->opt.manual_background = no % 2 == 0;
	r->opt.max_immutable = r->opt.manual_background ? 16 : 2;
	r->opt.table_target_size = 32 << 10; /* several tables per compaction */
	r->opt.level1_max_bytes = 128 << 10; /* and several levels */
	r->opt.l0_compact_trigger = 3;
	db_open(r);
	for (r->step = 0; r->step < steps; r->step++) {
		step(r);
		keep_memtables_few(r);
	}
	r->step = steps;
	check_all(r, "end of run");
	check_err(r, kv_stats(r->db, &st), "kv_stats");
	for (int l = 0, o = 0; l < KV_MAX_LEVELS; l++)
		o += snprintf(shape + o, sizeof(shape) - (size_t)o, " %llu",
			      (unsigned long long)st.level_tables[l]);
	release_snaps(r);
	check_err(r, kv_close(r->db), "kv_close");
	r->db = NULL;
	set_op(r, "kv_check");
	before = r->checks;
	problems = kv_check(r->dir, NULL, check_report, r);
	if (problems < 0)
		run_fail(r, "kv_check = %d (%s)", problems, strerror(-problems));
	if (problems || r->checks != before)
		run_fail(r, "kv_check reports %d problems", problems);
	print_message("[ INFO     ] run %d (manual %d): %d steps, %zu keys at the end, tables per "
		      "level%s; %u flushes, %u compactions, %u reopens, %u crashes, %u snapshots, "
		      "%u iterations, %u reads checked\n",
		      no, r->opt.manual_background, steps, r->m.n, shape, r->flushes, r->compacts,
		      r->reopens, r->crashes, r->snaps_taken, r->iters, r->checks);
	current = NULL;
	run_free(r);
}

static void test_model(void **state)
{
	uint64_t seed = kvt_seed("test_model");

	(void)state;
	for (int no = 0; no < RUNS; no++)
		one_run(no, seed);
}

static int teardown(void **state)
{
	(void)state;
	if (current)
		run_free(current);
	current = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_model, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
