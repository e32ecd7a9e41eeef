/* SPDX-License-Identifier: MIT */
/*
 * Iterators with KV_READ_LATEST (kv_iter_create_flags, kv/iter.c): the view
 * of the newest appended versions, for callers that serialize their own
 * writers (kvfs counting a file's blocks under its stripe lock).
 *   - uncommitted: over the fault env, a batch-mode batch (a put over a
 *     table key, a new key, a delete, a range delete) whose commit fails,
 *     so it stays appended and never becomes durable: a LATEST iterator
 *     shows it, from the start and from a seek, as kv_get(KV_READ_LATEST)
 *     does; a plain iterator and plain kv_get do not;
 *   - the flags: unknown flags, and KV_READ_LATEST with a snapshot, are
 *     -EINVAL;
 *   - sources: random batch-mode batches of puts, deletes and range deletes
 *     over rotating memtables, flushes and compactions, each checked right
 *     after its append (no kv_sync) against a model, whole and from random
 *     seeks;
 *   - concurrent: writers each owning a key range behind their own mutex
 *     (the fs's stripe locks) append batch-mode batches and, still holding
 *     it, check their range through a LATEST iterator, while automatic
 *     background work and a maintenance thread flush and compact.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "persist_util.h"

static int setup(void **state)
{
	struct kvp_store *s = calloc(1, sizeof(*s));

	if (!s || kvp_store_init(s, "iterlatest", 1)) {
		free(s);
		return -1;
	}
	s->opt.log_buffer_size = 64 << 10;
	s->opt.manual_background = 1;
	s->opt.max_immutable = 16;
	s->opt.table_target_size = 64 << 10;
	s->opt.level1_max_bytes = 128 << 10;
	*state = s;
	return 0;
}

/*
 * Everything an iterator with @flags shows from @start (NULL: the first key),
 * into @out (empty). The iterator is destroyed before returning, so that a
 * failing check leaves nothing open. Its status.
 */
static int collect(struct kv_db *db, unsigned flags, const char *start, struct kvp_model *out)
{
	struct kv_iter *it;
	int err = kv_iter_create_flags(db, flags, NULL, &it);

	if (err)
		return err;
	if (start)
		kv_iter_seek(it, start, strlen(start));
	else
		kv_iter_seek_first(it);
	for (; kv_iter_valid(it); kv_iter_next(it)) {
		size_t kl, vl;
		const void *k = kv_iter_key(it, &kl), *v = kv_iter_value(it, &vl);

		kvp_model_put(out, k, kl, v, vl);
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	return err;
}

/* "key" = "value" of @e (NULL: the end) for a message. */
static void fmt_ent(char *out, size_t cap, const struct kvp_ment *e)
{
	char k[64], v[64];

	if (!e) {
		snprintf(out, cap, "the end");
		return;
	}
	kvp_fmt_bytes(k, sizeof(k), e->k, e->kl, 16);
	kvp_fmt_bytes(v, sizeof(v), e->v, e->vl, 16);
	snprintf(out, cap, "\"%s\" = \"%s\" (%zu bytes)", k, v, e->vl);
}

/* 0 if @got equals @want from entry @from on; else -1 and @why. */
static int model_diff(const struct kvp_model *got, const struct kvp_model *want, size_t from,
		      char *why, size_t cap)
{
	char a[160], b[160];

	for (size_t i = 0; i < got->n || from + i < want->n; i++) {
		const struct kvp_ment *g = i < got->n ? &got->e[i] : NULL;
		const struct kvp_ment *w = from + i < want->n ? &want->e[from + i] : NULL;

		if (g && w && g->kl == w->kl && !memcmp(g->k, w->k, g->kl) && g->vl == w->vl &&
		    !memcmp(g->v, w->v, g->vl))
			continue;
		fmt_ent(a, sizeof(a), g);
		fmt_ent(b, sizeof(b), w);
		snprintf(why, cap, "entry %zu: iterator has %s, want %s", i, a, b);
		return -1;
	}
	return 0;
}

/* Fail unless an iterator with @flags from @start shows @want (from the
 * first entry >= @start). */
static void check_view(struct kvp_store *s, unsigned flags, const char *start,
		       const struct kvp_model *want, const char *when)
{
	struct kvp_model got = { 0 };
	char why[400];
	int err = collect(s->db, flags, start, &got);
	size_t from = start ? kvp_model_lower(want, start, strlen(start)) : 0;

	if (err)
		fail_msg("%s: %s iterator: %d (%s); log:\n%s", when, flags ? "latest" : "plain",
			 err, strerror(-err), s->log.text);
	if (model_diff(&got, want, from, why, sizeof(why)))
		fail_msg("%s: %s iterator from %s: %s", when, flags ? "latest" : "plain",
			 start ? start : "the first key", why);
	kvp_model_free(&got);
}

static void model_puts(struct kvp_model *m, const char *k, const char *v)
{
	kvp_model_put(m, k, strlen(k), v, strlen(v));
}

/* ---- 1. appended, never committed ----------------------------------------- */

/* kv_get with @flags of @k returns @e's value (NULL: -ENOENT). */
static void expect_get(struct kv_db *db, unsigned flags, const char *k, const struct kvp_ment *e)
{
	char buf[64];
	ssize_t r = kv_get(db, flags, k, strlen(k), buf, sizeof(buf));

	if (!e) {
		if (r != -ENOENT)
			fail_msg("%s: want absent (flags %u), kv_get = %zd", k, flags, r);
		return;
	}
	if (r != (ssize_t)e->vl || memcmp(buf, e->v, e->vl))
		fail_msg("%s: want \"%.*s\" (flags %u), kv_get = %zd (%.*s)", k, (int)e->vl,
			 (const char *)e->v, flags, r, r > 0 ? (int)r : 0, buf);
}

static const char *const starts[] = { "", "b", "c", "d", "d2", "d2x", "e", "g", "h", "z" };
static const char *const all_keys[] = { "a", "b", "c", "d1", "d2", "d2x", "d3", "e", "f", "g", "h" };

static void test_uncommitted(void **state)
{
	static const char *const table_keys[] = { "a", "b", "c", "d1", "d2", "d3", "f" };
	struct kvp_store *s = *state;
	struct kv_write_options batch = { .durability = KV_DUR_BATCH };
	struct kv_fault_rules fail = { .fail_sync_after = 1 };
	struct kvp_model committed = { 0 }, latest = { 0 };
	struct kv_batch *b;

	kvp_open(s);
	/* Committed: most keys in a table, "g" and "h" in the memtable. */
	for (size_t i = 0; i < sizeof(table_keys) / sizeof(table_keys[0]); i++) {
		kvp_ok(s, kv_put(s->db, NULL, table_keys[i], strlen(table_keys[i]), "1", 1),
		       "kv_put");
		model_puts(&committed, table_keys[i], "1");
	}
	kvp_flush(s);
	kvp_ok(s, kv_put(s->db, NULL, "g", 1, "1", 1), "kv_put");
	kvp_ok(s, kv_put(s->db, NULL, "h", 1, "1", 1), "kv_put");
	model_puts(&committed, "g", "1");
	model_puts(&committed, "h", "1");
	check_view(s, 0, NULL, &committed, "committed");
	check_view(s, KV_READ_LATEST, NULL, &committed, "committed");

	/* One batch whose commit fails: appended (acknowledged in batch mode),
	 * never durable, and no later write can commit it. */
	kv_fault_env_set_rules(s->fe, &fail);
	assert_int_equal(kv_batch_create(&b), 0);
	assert_int_equal(kv_batch_put(b, "b", 1, "2", 1), 0);		 /* over a table key */
	assert_int_equal(kv_batch_put(b, "e", 1, "2", 1), 0);		 /* a new key */
	assert_int_equal(kv_batch_delete(b, "c", 1), 0);		 /* a table key */
	assert_int_equal(kv_batch_delete(b, "h", 1), 0);		 /* a memtable key */
	assert_int_equal(kv_batch_delete_range(b, "d1", 2, "d3", 2), 0); /* d1, d2 */
	assert_int_equal(kv_batch_put(b, "d2x", 3, "2", 1), 0);		 /* after the range */
	assert_int_equal(kv_batch_delete_range(b, "g", 1, "gz", 2), 0);	 /* memtable "g" */
	assert_int_equal(kv_write(s->db, &batch, b), 0);
	kv_batch_destroy(b);
	assert_int_equal(kv_sync(s->db), -EIO);

	kvp_model_copy(&latest, &committed);
	model_puts(&latest, "b", "2");
	model_puts(&latest, "e", "2");
	kvp_model_del(&latest, "c", 1);
	kvp_model_del(&latest, "h", 1);
	kvp_model_del_range(&latest, "d1", 2, "d3", 2);
	model_puts(&latest, "d2x", "2");
	kvp_model_del_range(&latest, "g", 1, "gz", 2);
	assert_int_equal(committed.n, 9);
	assert_int_equal(latest.n, 6); /* a b=2 d2x d3 e f */

	check_view(s, 0, NULL, &committed, "failed commit");
	check_view(s, KV_READ_LATEST, NULL, &latest, "failed commit");
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		check_view(s, 0, starts[i], &committed, "failed commit, seek");
		check_view(s, KV_READ_LATEST, starts[i], &latest, "failed commit, seek");
	}
	/* The iterators agree with kv_get of the same mode. */
	for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
		const char *k = all_keys[i];

		expect_get(s->db, 0, k, kvp_model_get(&committed, k, strlen(k)));
		expect_get(s->db, KV_READ_LATEST, k, kvp_model_get(&latest, k, strlen(k)));
	}
	kvp_model_free(&committed);
	kvp_model_free(&latest);
}

/* ---- 2. flags -------------------------------------------------------------- */

static void test_flags(void **state)
{
	struct kvp_store *s = *state;
	struct kv_snapshot *snap;
	struct kv_iter *it = NULL;

	kvp_open(s);
	kvp_ok(s, kv_snapshot_create(s->db, &snap), "kv_snapshot_create");
	assert_int_equal(kv_iter_create_flags(s->db, KV_READ_LATEST, snap, &it), -EINVAL);
	assert_int_equal(kv_iter_create_flags(s->db, 0x2, NULL, &it), -EINVAL);
	assert_int_equal(kv_iter_create_flags(s->db, KV_READ_LATEST | 0x80, NULL, &it), -EINVAL);
	assert_null(it);
	/* A snapshot without flags is kv_iter_create's. */
	assert_int_equal(kv_iter_create_flags(s->db, 0, snap, &it), 0);
	kv_iter_seek_first(it);
	assert_false(kv_iter_valid(it));
	assert_int_equal(kv_iter_status(it), 0);
	kv_iter_destroy(it);
	kv_snapshot_release(s->db, snap);
}

/* ---- 3. every source, checked right after each append ---------------------- */

#define RKEYS 300u

static size_t rkey(char *k, size_t cap, unsigned i)
{
	return (size_t)snprintf(k, cap, "k%04u", i);
}

static void test_sources(void **state)
{
	struct kvp_store *s = *state;
	struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	uint64_t seed = kvt_seed("iter_latest_sources"), rs = seed | 1;
	unsigned batches = 600 * (unsigned)kvt_scale();
	struct kvp_model m = { 0 };
	struct kv_batch *b;
	struct kv_stats st;
	char when[96];

	kvp_open(s);
	assert_int_equal(kv_batch_create(&b), 0);
	for (unsigned n = 0; n < batches; n++) {
		unsigned ops = 1 + (unsigned)(kvt_rand(&rs) % 8);

		kv_batch_clear(b);
		for (unsigned o = 0; o < ops; o++) {
			unsigned r = (unsigned)(kvt_rand(&rs) % 100),
				 i = (unsigned)(kvt_rand(&rs) % RKEYS);
			char k[16], e[16];
			uint8_t v[400];
			size_t kl = rkey(k, sizeof(k), i), el, vl;

			if (r < 75) {
				vl = kvp_value(v, 16 + kvt_rand(&rs) % 380, kvt_rand(&rs), "%s@%u",
					       k, n);
				assert_int_equal(kv_batch_put(b, k, kl, v, vl), 0);
				kvp_model_put(&m, k, kl, v, vl);
			} else if (r < 94) {
				assert_int_equal(kv_batch_delete(b, k, kl), 0);
				kvp_model_del(&m, k, kl);
			} else {
				el = rkey(e, sizeof(e), i + 1 + (unsigned)(kvt_rand(&rs) % 10));
				assert_int_equal(kv_batch_delete_range(b, k, kl, e, el), 0);
				kvp_model_del_range(&m, k, kl, e, el);
			}
		}
		kvp_ok(s, kv_write(s->db, &wo, b), "kv_write");
		if (n % 7 == 0) {
			char start[16];

			rkey(start, sizeof(start), (unsigned)(kvt_rand(&rs) % (RKEYS + 10)));
			snprintf(when, sizeof(when), "seed %llu, batch %u",
				 (unsigned long long)seed, n);
			check_view(s, KV_READ_LATEST, NULL, &m, when);
			check_view(s, KV_READ_LATEST, start, &m, when);
		}
		if (n % 150 == 149)
			kvp_flush(s);
		if (n % 400 == 399)
			kvp_compact(s);
	}
	kv_batch_destroy(b);
	kvp_stats(s, &st);
	print_message("[ INFO     ] %u batches, %llu keys at the end; %llu flushes, "
		      "%llu compactions, %llu memtables now\n",
		      batches, (unsigned long long)m.n, (unsigned long long)st.flushes,
		      (unsigned long long)st.compactions, (unsigned long long)st.memtables);
	assert_true(st.flushes > 0);
	snprintf(when, sizeof(when), "seed %llu, the end", (unsigned long long)seed);
	check_view(s, KV_READ_LATEST, NULL, &m, when);
	kvp_ok(s, kv_sync(s->db), "kv_sync");
	check_view(s, 0, NULL, &m, when);
	kvp_model_free(&m);
}

/* ---- 4. concurrent: writers serialized by their own locks ------------------ */

#define CWRITERS 3
#define CKEYS 64u

struct cshared {
	struct kvp_store *s;
	pthread_mutex_t lock[CWRITERS]; /* the callers' own locks */
	atomic_int writers_left;
	atomic_int stop;
	pthread_mutex_t mu;
	char err[512];
};

struct cthread {
	struct cshared *c;
	int id;
	uint64_t rs;
	unsigned rounds;
	uint64_t views;
};

static void cfail(struct cshared *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfail(struct cshared *c, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&c->mu);
	if (!c->err[0]) {
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&c->mu);
	atomic_store(&c->stop, 1);
}

static size_t ckey(char *k, size_t cap, int w, unsigned i)
{
	return (size_t)snprintf(k, cap, "w%d/%03u", w, i);
}

/* The writer's range through a LATEST iterator, against its model. */
static int cview(struct cthread *t, const struct kvp_model *m)
{
	struct kvp_model got = { 0 };
	struct kv_iter *it;
	char lo[16], hi[16], why[400];
	size_t ll = (size_t)snprintf(lo, sizeof(lo), "w%d/", t->id);
	size_t hl = (size_t)snprintf(hi, sizeof(hi), "w%d0", t->id); /* '0' follows '/' */
	int err = kv_iter_create_flags(t->c->s->db, KV_READ_LATEST, NULL, &it);

	if (err) {
		cfail(t->c, "writer %d: kv_iter_create_flags = %d", t->id, err);
		return -1;
	}
	for (kv_iter_seek(it, lo, ll); kv_iter_valid(it); kv_iter_next(it)) {
		size_t kl, vl;
		const void *k = kv_iter_key(it, &kl), *v = kv_iter_value(it, &vl);

		if (kvp_key_cmp(k, kl, hi, hl) >= 0)
			break;
		kvp_model_put(&got, k, kl, v, vl);
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	if (err)
		cfail(t->c, "writer %d: iterator status %d", t->id, err);
	else if (model_diff(&got, m, 0, why, sizeof(why)))
		cfail(t->c, "writer %d, view %llu: %s", t->id, (unsigned long long)t->views, why);
	kvp_model_free(&got);
	t->views++;
	return err ? -1 : 0;
}

static void *cwriter(void *arg)
{
	struct cthread *t = arg;
	struct cshared *c = t->c;
	struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	struct kvp_model m = { 0 };
	struct kv_batch *b;

	if (kv_batch_create(&b)) {
		cfail(c, "writer %d: kv_batch_create", t->id);
		goto out;
	}
	for (unsigned n = 0; n < t->rounds && !atomic_load(&c->stop); n++) {
		unsigned ops = 1 + (unsigned)(kvt_rand(&t->rs) % 6);
		int err = 0;

		pthread_mutex_lock(&c->lock[t->id]);
		kv_batch_clear(b);
		for (unsigned o = 0; o < ops && !err; o++) {
			unsigned r = (unsigned)(kvt_rand(&t->rs) % 100);
			unsigned i = (unsigned)(kvt_rand(&t->rs) % CKEYS);
			char k[16], e[16];
			uint8_t v[300];
			size_t kl = ckey(k, sizeof(k), t->id, i), el, vl;

			if (r < 70) {
				vl = kvp_value(v, 8 + kvt_rand(&t->rs) % 290, kvt_rand(&t->rs),
					       "%s@%u", k, n);
				err = kv_batch_put(b, k, kl, v, vl);
				kvp_model_put(&m, k, kl, v, vl);
			} else if (r < 90) {
				err = kv_batch_delete(b, k, kl);
				kvp_model_del(&m, k, kl);
			} else {
				el = ckey(e, sizeof(e), t->id,
					  i + 1 + (unsigned)(kvt_rand(&t->rs) % 8));
				err = kv_batch_delete_range(b, k, kl, e, el);
				kvp_model_del_range(&m, k, kl, e, el);
			}
		}
		if (!err)
			err = kv_write(c->s->db, &wo, b);
		if (err)
			cfail(c, "writer %d: batch %u: %d", t->id, n, err);
		else
			cview(t, &m); /* still under the lock, no kv_sync */
		pthread_mutex_unlock(&c->lock[t->id]);
	}
	kv_batch_destroy(b);
out:
	kvp_model_free(&m);
	atomic_fetch_sub(&c->writers_left, 1);
	return NULL;
}

static void *cmaint(void *arg)
{
	struct cthread *t = arg;
	struct cshared *c = t->c;

	while (atomic_load(&c->writers_left) > 0 && !atomic_load(&c->stop)) {
		int err = t->views % 8 == 7 ? kv_compact(c->s->db) : kv_flush(c->s->db);

		if (err)
			cfail(c, "maintenance: %d", err);
		t->views++;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct kvp_store *s = *state;
	struct cshared c = { .s = s };
	struct cthread th[CWRITERS + 1];
	pthread_t tid[CWRITERS + 1];
	uint64_t seed = kvt_seed("iter_latest_concurrent");
	struct kv_stats st;

	s->opt.manual_background = 0;
	s->opt.max_immutable = 2;
	kvp_open(s);
	pthread_mutex_init(&c.mu, NULL);
	for (int i = 0; i < CWRITERS; i++)
		pthread_mutex_init(&c.lock[i], NULL);
	atomic_init(&c.writers_left, CWRITERS);
	atomic_init(&c.stop, 0);
	for (int i = 0; i <= CWRITERS; i++) {
		th[i] = (struct cthread){ .c = &c,
					  .id = i,
					  .rs = (seed + (uint64_t)i * 7919) | 1,
					  .rounds = 400 * (unsigned)kvt_scale() };
		assert_int_equal(
			pthread_create(&tid[i], NULL, i < CWRITERS ? cwriter : cmaint, &th[i]), 0);
	}
	for (int i = 0; i <= CWRITERS; i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < CWRITERS; i++)
		pthread_mutex_destroy(&c.lock[i]);
	pthread_mutex_destroy(&c.mu);
	assert_int_equal(kv_stats(s->db, &st), 0);
	print_message("[ INFO     ] %llu + %llu + %llu latest views; %llu maintenance calls; "
		      "%llu flushes, %llu compactions\n",
		      (unsigned long long)th[0].views, (unsigned long long)th[1].views,
		      (unsigned long long)th[2].views, (unsigned long long)th[CWRITERS].views,
		      (unsigned long long)st.flushes, (unsigned long long)st.compactions);
	if (c.err[0])
		fail_msg("seed %llu: %s; log:\n%s", (unsigned long long)seed, c.err, s->log.text);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.bg_error, 0);
	for (int i = 0; i < CWRITERS; i++)
		assert_int_equal(th[i].views, th[i].rounds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_uncommitted, setup, kvp_store_teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, kvp_store_teardown),
		cmocka_unit_test_setup_teardown(test_sources, setup, kvp_store_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, kvp_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
