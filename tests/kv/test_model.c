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
#include "persist_util.h"

#define RUNS 4
#define STEPS 2500 /* per run, times kvt_scale() */
#define MAX_SNAPS 4
#define TRACE 24     /* operations remembered for a failure report */
#define VAL_MAX 8192 /* longest value (log buffer 64 KiB: at most 16 KiB) */
#define BATCH_MAX_OPS 8

/* ---- a run -------------------------------------------------------------- */

struct snap {
	struct kv_snapshot *s; /* tracked: kvp_snap_take */
	struct kvp_model m;
	int taken_at; /* step */
};

struct run {
	int no;
	uint64_t seed, run_seed, rs;
	int step;
	struct kvp_store kv; /* over a fault env */
	struct kvp_model m;
	struct snap snaps[MAX_SNAPS];
	int nsnaps;
	char op[200]; /* the operation under way */
	char trace[TRACE][220];
	int ntrace;
	uint8_t *val, *got; /* VAL_MAX bytes each */
	unsigned flushes, compacts, reopens, crashes, iters, snaps_taken, checks;
};

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
		 r->no, r->kv.opt.manual_background, r->step, r->op, msg,
		 (unsigned long long)r->seed, (unsigned long long)r->seed,
		 (unsigned long long)r->run_seed, trace, r->kv.log.text);
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
	if (!kvp_key_cmp(s, *sl, e, *el)) {
		e[*sl] = 0;
		*el = *sl + 1;
	}
	if (kvp_key_cmp(s, *sl, e, *el) > 0)
		swap_keys(s, sl, e, el);
}

/* ---- checks ------------------------------------------------------------- */

static void check_get(struct run *r, const struct kv_snapshot *s, const struct kvp_model *m,
		      const uint8_t *k, size_t kl)
{
	const struct kvp_ment *e = kvp_model_get(m, k, kl);
	ssize_t n = s ? kv_get_at(r->kv.db, s, k, kl, r->got, VAL_MAX) :
			kv_get(r->kv.db, 0, k, kl, r->got, VAL_MAX);
	char kb[32], want[64], got[64];

	kvp_fmt_bytes(kb, sizeof(kb), k, kl, 8);
	if (!e) {
		if (n != -ENOENT) {
			kvp_fmt_bytes(got, sizeof(got), r->got, n > 0 ? (size_t)n : 0, 12);
			run_fail(r, "get %s: want absent, got %zd \"%s\"", kb, n, got);
		}
		return;
	}
	if (n != (ssize_t)e->vl || (e->vl && memcmp(r->got, e->v, e->vl))) {
		kvp_fmt_bytes(want, sizeof(want), e->v, e->vl, 12);
		kvp_fmt_bytes(got, sizeof(got), r->got, n > 0 ? (size_t)n : 0, 12);
		run_fail(r, "get %s: want %zu bytes \"%s\", got %zd \"%s\"", kb, e->vl, want, n,
			 got);
	}
	r->checks++;
}

/* Compare @it, positioned, with @m from index @i for @limit keys (0 = all). */
static void check_iter(struct run *r, struct kv_iter *it, const struct kvp_model *m, size_t i,
		       size_t limit)
{
	size_t seen;
	char why[512];

	if (kvp_iter_compare(it, m, i, limit, &seen, why, sizeof(why)))
		run_fail(r, "%s", why);
	r->iters++;
}

static void check_all(struct run *r, const char *when)
{
	struct kv_iter *it;

	set_op(r, "full check (%s, %zu keys)", when, r->m.n);
	check_err(r, kvp_iter_open(r->kv.db, NULL, &it), "kv_iter_create");
	kv_iter_seek_first(it);
	check_iter(r, it, &r->m, 0, 0);
	kvp_iter_close(it);
	for (size_t i = 0; i < r->m.n; i++)
		check_get(r, NULL, &r->m, r->m.e[i].k, r->m.e[i].kl);
}

/* ---- store lifecycle ---------------------------------------------------- */

static void db_open(struct run *r)
{
	check_err(r, kvp_try_open(&r->kv), "kv_open");
}

static void release_snaps(struct run *r)
{
	for (int i = 0; i < r->nsnaps; i++) {
		kvp_snap_drop(r->kv.db, r->snaps[i].s);
		kvp_model_free(&r->snaps[i].m);
	}
	r->nsnaps = 0;
}

static void op_reopen(struct run *r)
{
	set_op(r, "close + reopen (%d snapshots dropped)", r->nsnaps);
	release_snaps(r);
	check_err(r, kv_close(r->kv.db), "kv_close");
	r->kv.db = NULL;
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
		kv_fault_env_set_rules(r->kv.fe, &rules);
		err = how == 2 ? kv_flush(r->kv.db) : kv_compact(r->kv.db);
	}
	kv_abandon(r->kv.db);
	r->kv.db = NULL;
	memset(&rules, 0, sizeof(rules));
	kv_fault_env_set_rules(r->kv.fe, &rules);
	check_err(r, kv_fault_env_power_cut(r->kv.fe, torn), "kv_fault_env_power_cut");
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

	kvp_fmt_bytes(kb, sizeof(kb), k, kl, 8);
	set_op(r, "put %s (%zu bytes)", kb, vl);
	check_err(r, kv_put(r->kv.db, NULL, k, kl, r->val, vl), "kv_put");
	kvp_model_put(&r->m, k, kl, r->val, vl);
}

static void op_delete(struct run *r)
{
	uint8_t k[4];
	size_t kl = rand_key(r, k);
	char kb[32];

	kvp_fmt_bytes(kb, sizeof(kb), k, kl, 8);
	set_op(r, "delete %s", kb);
	check_err(r, kv_delete(r->kv.db, NULL, k, kl), "kv_delete");
	kvp_model_del(&r->m, k, kl);
}

static void op_delete_range(struct run *r)
{
	uint8_t s[4], e[4];
	size_t sl, el;
	char sb[32], eb[32];

	rand_range(r, s, &sl, e, &el);
	kvp_fmt_bytes(sb, sizeof(sb), s, sl, 8);
	kvp_fmt_bytes(eb, sizeof(eb), e, el, 8);
	set_op(r, "delete_range [%s, %s)", sb, eb);
	check_err(r, kv_delete_range(r->kv.db, NULL, s, sl, e, el), "kv_delete_range");
	kvp_model_del_range(&r->m, s, sl, e, el);
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
		kvp_fmt_bytes(kb, sizeof(kb), p->k, p->kl, 4);
		if (o < (int)sizeof(desc) - 24)
			o += snprintf(desc + o, sizeof(desc) - (size_t)o, " %c%s", "PDR"[p->kind],
				      kb);
	}
	set_op(r, "batch of %d:%s", n, desc);
	if (kv_batch_count(b) != (uint32_t)n)
		run_fail(r, "kv_batch_count = %u, want %d", kv_batch_count(b), n);
	check_err(r, kv_write(r->kv.db, NULL, b), "kv_write");
	kv_batch_destroy(b);
	for (int i = 0; i < n; i++) {
		struct bop *p = &ops[i];

		if (p->kind == 0)
			kvp_model_put(&r->m, p->k, p->kl, r->val + p->voff, p->vl);
		else if (p->kind == 1)
			kvp_model_del(&r->m, p->k, p->kl);
		else
			kvp_model_del_range(&r->m, p->k, p->kl, p->e, p->el);
	}
}

/* A key to read: often one the model has, so hits are checked too. */
static size_t read_key(struct run *r, const struct kvp_model *m, uint8_t *k)
{
	if (m->n && rnd(r, 2)) {
		const struct kvp_ment *e = &m->e[rnd(r, m->n)];

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

	kvp_fmt_bytes(kb, sizeof(kb), k, kl, 8);
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
	kvp_fmt_bytes(kb, sizeof(kb), k, kl, 8);
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
	check_err(r, kvp_snap_take(r->kv.db, &s->s), "kv_snapshot_create");
	kvp_model_copy(&s->m, &r->m);
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
	kvp_snap_drop(r->kv.db, r->snaps[i].s);
	kvp_model_free(&r->snaps[i].m);
	r->snaps[i] = r->snaps[--r->nsnaps];
}

/* Iterate now or at a snapshot: all of it, or from a seek for a few keys. */
static void op_iter(struct run *r, int full)
{
	struct snap *s = r->nsnaps && rnd(r, 3) == 0 ? &r->snaps[rnd(r, (uint64_t)r->nsnaps)] :
						       NULL;
	const struct kvp_model *m = s ? &s->m : &r->m;
	struct kv_iter *it;
	uint8_t k[4];
	size_t kl = 0, limit = full ? 0 : 1 + rnd(r, 20);
	char kb[32] = "";

	if (!full) {
		kl = rand_key(r, k);
		kvp_fmt_bytes(kb, sizeof(kb), k, kl, 8);
	}
	set_op(r, "%s%s%s, %zu keys%s", full ? "full iteration" : "seek to ", kb,
	       s ? " at a snapshot" : "", limit, full ? " (all)" : "");
	check_err(r, kvp_iter_open(r->kv.db, s ? s->s : NULL, &it), "kv_iter_create");
	if (full)
		kv_iter_seek_first(it);
	else
		kv_iter_seek(it, k, kl);
	check_iter(r, it, m, full ? 0 : kvp_model_lower(m, k, kl), limit);
	/* Seek again on the same iterator, backwards. */
	if (!full && m->n) {
		const struct kvp_ment *e = &m->e[rnd(r, m->n)];

		kv_iter_seek(it, e->k, e->kl);
		check_iter(r, it, m, kvp_model_lower(m, e->k, e->kl), 3);
	}
	kvp_iter_close(it);
}

/* An iterator made now keeps its view through later writes (and a flush). */
static void op_iter_stale(struct run *r)
{
	struct kvp_model frozen;
	struct kv_iter *it;
	int n = 1 + (int)rnd(r, 6), flush = rnd(r, 4) == 0;

	set_op(r, "iterator, then %d writes%s, then iterate", n, flush ? " and a flush" : "");
	check_err(r, kvp_iter_open(r->kv.db, NULL, &it), "kv_iter_create");
	kvp_model_copy(&frozen, &r->m);
	for (int i = 0; i < n; i++) {
		if (rnd(r, 3))
			op_put(r);
		else
			op_delete_range(r);
	}
	if (flush)
		check_err(r, kv_flush(r->kv.db), "kv_flush");
	set_op(r, "the iterator made before %d writes", n);
	kv_iter_seek_first(it);
	check_iter(r, it, &frozen, 0, 0);
	kvp_iter_close(it);
	kvp_model_free(&frozen);
}

static void op_flush(struct run *r)
{
	set_op(r, "kv_flush");
	check_err(r, kv_flush(r->kv.db), "kv_flush");
	r->flushes++;
}

static void op_compact(struct run *r)
{
	struct kv_stats st;
	int levels = 0;

	set_op(r, "kv_compact (%d snapshots)", r->nsnaps);
	check_err(r, kv_compact(r->kv.db), "kv_compact");
	r->compacts++;
	check_err(r, kv_stats(r->kv.db, &st), "kv_stats");
	if (st.bg_error || st.failed)
		run_fail(r, "after kv_compact: bg_error %d, failed %d", st.bg_error, st.failed);
	/* With manual background work nothing can have landed since. */
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		levels += st.level_tables[l] != 0;
	if (r->kv.opt.manual_background && levels > 1)
		run_fail(r, "kv_compact left tables in %d levels", levels);
}

/* After each step: stats agree, and in manual mode (nothing flushes unless
 * asked) the memtables stay few. */
static void keep_memtables_few(struct run *r)
{
	struct kv_stats st;

	check_err(r, kv_stats(r->kv.db, &st), "kv_stats");
	if (st.bg_error || st.failed)
		run_fail(r, "bg_error %d, failed %d", st.bg_error, st.failed);
	if (st.snapshots != (uint64_t)r->nsnaps)
		run_fail(r, "stats: %llu snapshots, %d live", (unsigned long long)st.snapshots,
			 r->nsnaps);
	if (!r->kv.opt.manual_background && st.memtables > (uint64_t)r->kv.opt.max_immutable + 1)
		run_fail(r, "stats: %llu memtables, max_immutable %d",
			 (unsigned long long)st.memtables, r->kv.opt.max_immutable);
	if (r->kv.opt.manual_background && st.memtables >= 8) {
		set_op(r, "kv_flush (%llu memtables)", (unsigned long long)st.memtables);
		check_err(r, kv_flush(r->kv.db), "kv_flush");
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
	kvp_store_fini(&r->kv); /* releases the snapshots, abandons the db */
	for (int i = 0; i < r->nsnaps; i++)
		kvp_model_free(&r->snaps[i].m);
	kvp_model_free(&r->m);
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
	assert_int_equal(kvp_store_init(&r->kv, "model", 1), 0);
	r->val = malloc(VAL_MAX);
	r->got = malloc(VAL_MAX);
	assert_non_null(r->val);
	assert_non_null(r->got);
	r->kv.opt.log_buffer_size = 64 << 10;
	r->kv.opt.manual_background = no % 2 == 0;
	r->kv.opt.max_immutable = r->kv.opt.manual_background ? 16 : 2;
	r->kv.opt.table_target_size = 32 << 10; /* several tables per compaction */
	r->kv.opt.level1_max_bytes = 128 << 10; /* and several levels */
	r->kv.opt.l0_compact_trigger = 3;
	db_open(r);
	for (r->step = 0; r->step < steps; r->step++) {
		step(r);
		keep_memtables_few(r);
	}
	r->step = steps;
	check_all(r, "end of run");
	check_err(r, kv_stats(r->kv.db, &st), "kv_stats");
	for (int l = 0, o = 0; l < KV_MAX_LEVELS; l++)
		o += snprintf(shape + o, sizeof(shape) - (size_t)o, " %llu",
			      (unsigned long long)st.level_tables[l]);
	release_snaps(r);
	check_err(r, kv_close(r->kv.db), "kv_close");
	r->kv.db = NULL;
	set_op(r, "kv_check");
	before = r->checks;
	problems = kv_check(r->kv.dir, NULL, check_report, r);
	if (problems < 0)
		run_fail(r, "kv_check = %d (%s)", problems, strerror(-problems));
	if (problems || r->checks != before)
		run_fail(r, "kv_check reports %d problems", problems);
	print_message("[ INFO     ] run %d (manual %d): %d steps, %zu keys at the end, tables per "
		      "level%s; %u flushes, %u compactions, %u reopens, %u crashes, %u snapshots, "
		      "%u iterations, %u reads checked\n",
		      no, r->kv.opt.manual_background, steps, r->m.n, shape, r->flushes,
		      r->compacts, r->reopens, r->crashes, r->snaps_taken, r->iters, r->checks);
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
