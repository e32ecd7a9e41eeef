/* SPDX-License-Identifier: MIT */
/*
 * test_concurrency.c - many threads on one real store: what readers may and
 * may not see while writers race on a few hot keys, batch atomicity for
 * readers, rotation under load. Many async writes in flight per caller are
 * in test_async.c.
 *
 * The read checks, with a logical clock (one atomic counter) stamped by every
 * writer just before it calls the engine (start) and just after the call
 * returns (end); each write gets a record (struct wrec) saying which value it
 * wrote and when. For one key, write A "precedes" write B when A.end <
 * B.start: A was acknowledged before B was submitted, so A's LSN is below
 * B's. Concurrent writes may be ordered either way. A read R of a key that
 * returns the value of write V must then satisfy:
 *
 *   C1. not torn: the value's length and checksum are right and its payload
 *       is the one its header names;
 *   C2. produced: a writer really submitted exactly that value (its record
 *       matches), so the engine never invented or mixed versions;
 *   C3. not stale: V does not precede any write W acknowledged before R began
 *       (sync mode: acknowledged means committed; batch mode: appended, so
 *       the check is made for KV_READ_LATEST, and for plain reads against
 *       writes made durable by a kv_sync that returned before R began);
 *   C4. no going back: V does not precede the value of any read of the same
 *       kind (plain or latest) that completed before R began, in any thread;
 *   C5. per writer, the sequence numbers of one key only grow.
 * Each check compares V.end with a start stamp, so it is exact, never racy:
 * if V's end stamp is not yet published the read is not judged (rare).
 *
 * Worker threads never call cmocka (its asserts longjmp): they record
 * failures (failf, conc_util.h) that the main thread asserts on after
 * joining them.
 *
 * Sizes: counts are modest so that each test takes a few seconds in the
 * Debug (ASan) build; under ThreadSanitizer (detected at compile time) they
 * are halved. KV_TEST_LONG=n multiplies them by n; KV_TEST_SEED
 * repeats a run.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "conc_util.h"

/* ---- small helpers ---- */

static void atomic_max_u64(_Atomic uint64_t *p, uint64_t v)
{
	uint64_t cur = atomic_load(p);

	while (cur < v && !atomic_compare_exchange_weak(p, &cur, v))
		;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/*
 * A self-describing value: who wrote it for which key, and a checksum.
 *
 *   0  u32 magic          4  u32 total length   8  u32 key index
 *   12 u32 writer id     16  u32 sequence      20  u32 write id
 *   24 u64 start stamp   32  payload (from fill)    len-8  u64 xxh3 of [0, len-8)
 */
#define VAL_MAGIC 0x564f4854u /* "THOV" */
#define VAL_HDR 32u
#define VAL_MIN (VAL_HDR + 8u)
#define VAL_BUF 20000u

struct vinfo {
	uint32_t len, key, writer, seq, id;
	uint64_t start;
};

static uint64_t vseed(const struct vinfo *v)
{
	return XXH3_64bits(v, sizeof(*v));
}

static void val_encode(uint8_t *out, const struct vinfo *v)
{
	put_u32(out, VAL_MAGIC);
	put_u32(out + 4, v->len);
	put_u32(out + 8, v->key);
	put_u32(out + 12, v->writer);
	put_u32(out + 16, v->seq);
	put_u32(out + 20, v->id);
	put_u64(out + 24, v->start);
	fill(out + VAL_HDR, v->len - VAL_MIN, vseed(v));
	put_u64(out + v->len - 8, XXH3_64bits(out, v->len - 8));
}

/* C1: 0, or a reason the @n bytes at @p are not a whole value. */
static const char *val_decode(const uint8_t *p, size_t n, struct vinfo *v)
{
	uint8_t payload[VAL_BUF];

	if (n < VAL_MIN || get_u32(p) != VAL_MAGIC)
		return "too short or bad magic";
	memset(v, 0, sizeof(*v)); /* vseed hashes the padding too */
	v->len = get_u32(p + 4);
	v->key = get_u32(p + 8);
	v->writer = get_u32(p + 12);
	v->seq = get_u32(p + 16);
	v->id = get_u32(p + 20);
	v->start = get_u64(p + 24);
	if (v->len != n)
		return "length differs from the encoded one";
	if (get_u64(p + n - 8) != XXH3_64bits(p, n - 8))
		return "checksum mismatch";
	fill(payload, n - VAL_MIN, vseed(v));
	if (memcmp(payload, p + VAL_HDR, n - VAL_MIN))
		return "payload differs from the one its header names";
	return NULL;
}

static void vinfo_init(struct vinfo *v)
{
	memset(v, 0, sizeof(*v));
}

/* ======================================================================
 * 1, 2: hot keys
 * ====================================================================== */

#define HOT_KEYS 4
#define HOT_MAX_WRITERS 8

/* What one write wrote and when ([atomic]: readers look while it runs). */
struct wrec {
	_Atomic uint64_t who; /* key << 48 | writer << 32 | seq, + 1; 0 = unused */
	_Atomic uint64_t start;
	_Atomic uint64_t end; /* 0 until the writer's call returned */
};

struct hot_thread {
	struct hot *h;
	int id;
	int latest; /* readers: KV_READ_LATEST */
};

struct hot {
	struct kv_db *db;
	enum kv_durability mode;
	int nwriters, ops;
	uint64_t seed;
	_Atomic uint64_t clk; /* the logical clock */
	_Atomic uint32_t next_id;
	uint32_t max_ids;
	struct wrec *w;
	_Atomic uint64_t acked[HOT_KEYS];   /* max start of acknowledged writes */
	_Atomic uint64_t synced[HOT_KEYS];  /* ... of writes known committed */
	_Atomic uint64_t seen[2][HOT_KEYS]; /* max start returned by a finished
					     * read, [0] plain, [1] latest */
	_Atomic int writers_left;
	_Atomic uint64_t reads, checked;
	int nthreads;
	struct hot_thread *t; /* writers first, then readers */
	/* test_failed_commit_invisible only, per write id: */
	_Atomic uint8_t *failed;     /* its write returned -EIO */
	_Atomic uint8_t *seen_plain; /* a plain read returned it */
};

static uint64_t hot_who(uint32_t key, uint32_t writer, uint32_t seq)
{
	return ((uint64_t)key << 48 | (uint64_t)writer << 32 | seq) + 1;
}

static void hot_key(char *buf, uint32_t k)
{
	snprintf(buf, 16, "hot%02u", k);
}

static uint64_t stamp(struct hot *h)
{
	return atomic_fetch_add(&h->clk, 1) + 1;
}

/* Build one value for key @k into @buf and register its write record. */
static void hot_make(struct hot *h, uint64_t *rng, uint32_t k, uint32_t w, uint32_t seq,
		     uint64_t start, uint8_t *buf, struct vinfo *v)
{
	vinfo_init(v);
	v->len = VAL_MIN + 150 + (uint32_t)(kvt_rand(rng) % 500);
	v->key = k;
	v->writer = w;
	v->seq = seq;
	v->id = atomic_fetch_add(&h->next_id, 1);
	v->start = start;
	if (v->id >= h->max_ids) {
		failf("test bug: too many write ids");
		abort();
	}
	atomic_store(&h->w[v->id].start, start);
	atomic_store(&h->w[v->id].who, hot_who(k, w, seq));
	val_encode(buf, v);
}

/* One write: a put of one key, or (1 in 8) a batch of two. 0 or -errno. */
static int hot_write(struct hot *h, struct hot_thread *t, uint64_t *rng, uint32_t seq,
		     struct kv_batch *b, uint64_t local[HOT_KEYS])
{
	static __thread uint8_t buf[2][VAL_BUF];
	struct vinfo v[2];
	uint32_t k[2], n = kvt_rand(rng) % 8 == 0 ? 2 : 1;
	uint64_t start, end;
	char key[2][16];
	int err;

	k[0] = (uint32_t)(kvt_rand(rng) % HOT_KEYS);
	k[1] = (k[0] + 1 + (uint32_t)(kvt_rand(rng) % (HOT_KEYS - 1))) % HOT_KEYS;
	start = stamp(h);
	for (uint32_t i = 0; i < n; i++) {
		hot_key(key[i], k[i]);
		hot_make(h, rng, k[i], (uint32_t)t->id, seq, start, buf[i], &v[i]);
	}
	if (n == 1) {
		err = kv_put(h->db, NULL, key[0], strlen(key[0]), buf[0], v[0].len);
	} else {
		kv_batch_clear(b);
		for (uint32_t i = 0; i < n; i++)
			must(kv_batch_put(b, key[i], strlen(key[i]), buf[i], v[i].len),
			     "kv_batch_put");
		err = kv_write(h->db, NULL, b);
	}
	if (err) {
		for (uint32_t i = 0; i < n && h->failed; i++)
			atomic_store(&h->failed[v[i].id], 1);
		return err;
	}
	end = stamp(h);
	for (uint32_t i = 0; i < n; i++) {
		atomic_store(&h->w[v[i].id].end, end);
		atomic_max_u64(&h->acked[k[i]], start);
		if (h->mode != KV_DUR_BATCH) /* acknowledged = committed */
			atomic_max_u64(&h->synced[k[i]], start);
		if (start > local[k[i]])
			local[k[i]] = start;
	}
	return 0;
}

static void *hot_writer(void *arg)
{
	struct hot_thread *t = arg;
	struct hot *h = t->h;
	uint64_t rng = h->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(t->id + 1));
	uint64_t local[HOT_KEYS] = { 0 }, pre_sync[HOT_KEYS];
	struct kv_batch *b;
	int err;

	if (kv_batch_create(&b))
		abort();
	for (int i = 0; i < h->ops; i++) {
		err = hot_write(h, t, &rng, (uint32_t)i + 1, b, local);
		if (err) {
			if (!h->failed || err != -EIO)
				failf("writer %d: write %d returned %d", t->id, i, err);
			break;
		}
		if (h->mode != KV_DUR_BATCH || i % 64 != 63)
			continue;
		/* Batch mode: what this writer had acknowledged is committed
		 * once kv_sync returns. */
		memcpy(pre_sync, local, sizeof(pre_sync));
		err = kv_sync(h->db);
		if (err) {
			failf("writer %d: kv_sync returned %d", t->id, err);
			break;
		}
		for (int k = 0; k < HOT_KEYS; k++)
			atomic_max_u64(&h->synced[k], pre_sync[k]);
	}
	kv_batch_destroy(b);
	atomic_fetch_sub(&h->writers_left, 1);
	return NULL;
}

/* Per-reader memory for C4 and C5. */
struct hot_reader_state {
	uint64_t mine[HOT_KEYS]; /* max start this reader saw */
	uint32_t last_seq[HOT_KEYS][HOT_MAX_WRITERS];
};

/* C2..C5 for a value @v read from key @k, with floors taken before the read. */
static void hot_judge(struct hot *h, struct hot_thread *t, struct hot_reader_state *rs, uint32_t k,
		      const struct vinfo *v, uint64_t floor_ack, uint64_t floor_seen)
{
	const char *kind = t->latest ? "latest" : "plain";
	uint64_t end;

	if (v->key != k || v->writer >= (uint32_t)h->nwriters || v->id >= h->max_ids ||
	    atomic_load(&h->w[v->id].who) != hot_who(k, v->writer, v->seq) ||
	    atomic_load(&h->w[v->id].start) != v->start) {
		failf("reader %d (%s): key %u returned a value no writer wrote (key %u writer %u seq %u id %u)",
		      t->id, kind, k, v->key, v->writer, v->seq, v->id);
		return;
	}
	end = atomic_load(&h->w[v->id].end);
	atomic_fetch_add(&h->checked, end != 0);
	if (end && end < floor_ack)
		failf("reader %d (%s): key %u is stale: returned write id %u (ended at %llu) although a write started at %llu was acknowledged before the read began",
		      t->id, kind, k, v->id, (unsigned long long)end,
		      (unsigned long long)floor_ack);
	if (end && end < floor_seen)
		failf("reader %d (%s): key %u went back: write id %u (ended at %llu) precedes a value (started at %llu) that an earlier read returned",
		      t->id, kind, k, v->id, (unsigned long long)end,
		      (unsigned long long)floor_seen);
	if (end && end < rs->mine[k])
		failf("reader %d (%s): key %u went back from this reader's earlier read (started at %llu) to write id %u (ended at %llu)",
		      t->id, kind, k, (unsigned long long)rs->mine[k], v->id,
		      (unsigned long long)end);
	if (v->seq < rs->last_seq[k][v->writer])
		failf("reader %d (%s): key %u went back from writer %u's seq %u to seq %u", t->id,
		      kind, k, v->writer, rs->last_seq[k][v->writer], v->seq);
	if (v->seq > rs->last_seq[k][v->writer])
		rs->last_seq[k][v->writer] = v->seq;
	if (v->start > rs->mine[k])
		rs->mine[k] = v->start;
	atomic_max_u64(&h->seen[t->latest][k], v->start);
	if (h->seen_plain && !t->latest)
		atomic_store(&h->seen_plain[v->id], 1);
}

static void hot_read_one(struct hot *h, struct hot_thread *t, struct hot_reader_state *rs,
			 uint32_t k, uint8_t *buf)
{
	const char *kind = t->latest ? "latest" : "plain", *why;
	uint64_t floor_ack, floor_seen;
	struct vinfo v;
	char key[16];
	ssize_t n;

	hot_key(key, k);
	floor_ack = atomic_load(t->latest ? &h->acked[k] : &h->synced[k]);
	floor_seen = atomic_load(&h->seen[t->latest][k]);
	n = kv_get(h->db, t->latest ? KV_READ_LATEST : 0, key, strlen(key), buf, VAL_BUF);
	atomic_fetch_add(&h->reads, 1);
	if (n == -ENOENT) {
		if (floor_ack || floor_seen || rs->mine[k])
			failf("reader %d (%s): key %u vanished (-ENOENT) after it was written",
			      t->id, kind, k);
		return;
	}
	if (n < 0 || n > (ssize_t)VAL_BUF) {
		failf("reader %d (%s): kv_get of key %u returned %zd", t->id, kind, k, n);
		return;
	}
	why = val_decode(buf, (size_t)n, &v);
	if (why) {
		failf("reader %d (%s): key %u returned a torn value of %zd bytes: %s", t->id, kind,
		      k, n, why);
		return;
	}
	hot_judge(h, t, rs, k, &v, floor_ack, floor_seen);
}

static void *hot_reader(void *arg)
{
	struct hot_thread *t = arg;
	struct hot *h = t->h;
	struct hot_reader_state *rs = calloc(1, sizeof(*rs));
	uint8_t *buf = malloc(VAL_BUF);
	int last = 0;

	if (!rs || !buf)
		abort();
	/* One more full pass after the writers are done. */
	while (!last) {
		last = atomic_load(&h->writers_left) == 0;
		for (uint32_t k = 0; k < HOT_KEYS; k++)
			hot_read_one(h, t, rs, k, buf);
	}
	free(buf);
	free(rs);
	return NULL;
}

static void *hot_main(void *arg)
{
	struct hot_thread *t = arg;

	return t->id < t->h->nwriters ? hot_writer(arg) : hot_reader(arg);
}

/* After the run: the value of each key is one no write was acknowledged after. */
static void hot_check_final(struct hot *h, uint8_t out[HOT_KEYS][VAL_BUF], ssize_t len[HOT_KEYS])
{
	for (uint32_t k = 0; k < HOT_KEYS; k++) {
		struct vinfo v;
		uint64_t end;
		char key[16];

		hot_key(key, k);
		len[k] = kv_get(h->db, 0, key, strlen(key), out[k], VAL_BUF);
		assert_in_range(len[k], VAL_MIN, VAL_BUF);
		assert_null(val_decode(out[k], (size_t)len[k], &v));
		assert_int_equal(v.key, k);
		end = atomic_load(&h->w[v.id].end);
		assert_true(end != 0);
		/* No write of this key may have started after v ended. */
		assert_true(end >= atomic_load(&h->acked[k]));
	}
}

static void hot_free(void *arg)
{
	struct hot *h = arg;

	free(h->w);
	free(h->failed);
	free(h->seen_plain);
	free(h->t);
	free(h);
}

/* A run's state, with @nwriters writers of @ops writes and @nreaders readers
 * (the first @latest of them KV_READ_LATEST); freed by the fixture. */
static struct hot *hot_new(struct fx *f, int nwriters, int ops, int nreaders, int latest)
{
	struct hot *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	assert_true(nwriters <= HOT_MAX_WRITERS);
	f->cleanup = hot_free;
	f->cleanup_arg = h;
	h->db = f->db;
	h->mode = f->opt.durability;
	h->nwriters = nwriters;
	h->nthreads = nwriters + nreaders;
	h->ops = ops;
	h->max_ids = (uint32_t)(nwriters * ops * 2 + 16);
	h->w = calloc(h->max_ids, sizeof(*h->w));
	h->t = calloc((size_t)h->nthreads, sizeof(*h->t));
	assert_true(h->w && h->t);
	atomic_store(&h->writers_left, nwriters);
	for (int i = 0; i < h->nthreads; i++) {
		h->t[i].h = h;
		h->t[i].id = i;
		h->t[i].latest = i >= nwriters && i - nwriters < latest;
	}
	return h;
}

static void hot_report(struct hot *h, double t0)
{
	fprintf(stderr, "  %d writes, %llu reads (%llu judged) in %.2f s\n",
		(int)atomic_load(&h->next_id), (unsigned long long)atomic_load(&h->reads),
		(unsigned long long)atomic_load(&h->checked), now_s() - t0);
}

static void hot_run(struct fx *f, enum kv_durability mode, int nwriters, int nreaders,
		    int latest_readers, int ops, const char *name)
{
	static uint8_t before[HOT_KEYS][VAL_BUF], after[HOT_KEYS][VAL_BUF];
	ssize_t len_before[HOT_KEYS], len_after[HOT_KEYS];
	double t0 = now_s();
	struct hot *h;

	f->opt.durability = mode;
	f->opt.log_buffer_size = 256 << 10;
	fx_open(f);
	h = hot_new(f, nwriters, scaled(ops), nreaders, latest_readers);
	h->seed = kvt_seed(name);
	run_threads(h->nthreads, hot_main, h->t, sizeof(*h->t));
	hot_report(h, t0);
	assert_no_failures();
	assert_true(atomic_load(&h->reads) >= (uint64_t)nreaders * HOT_KEYS);

	/* The last values survive a reopen, byte for byte. */
	assert_int_equal(kv_sync(f->db), 0);
	hot_check_final(h, before, len_before);
	fx_reopen(f);
	h->db = f->db;
	hot_check_final(h, after, len_after);
	for (int k = 0; k < HOT_KEYS; k++) {
		assert_int_equal(len_before[k], len_after[k]);
		assert_memory_equal(before[k], after[k], (size_t)len_before[k]);
	}
}

/* 1. Sync mode: plain readers see committed versions, never stale, never back. */
static void test_hot_keys_sync(void **state)
{
	hot_run(*state, KV_DUR_SYNC, 6, 3, 1, 1500, "hot keys, sync");
}

/* 2. Batch mode: latest readers see acknowledged (appended) versions, plain
 * readers what kv_sync made committed; none torn, none going back. */
static void test_hot_keys_batch(void **state)
{
	hot_run(*state, KV_DUR_BATCH, 4, 4, 2, 6000, "hot keys, batch");
}

/* The benchmark baselines must read just as correctly (fewer ops: the
 * fsync-per-op one does one fdatasync per write). */
static void test_hot_keys_baselines(void **state)
{
	struct fx *f = *state;

	hot_run(f, KV_DUR_LOCKED, 4, 2, 1, 300, "hot keys, locked");
	assert_int_equal(kv_close(f->db), 0);
	f->db = NULL;
	f->cleanup(f->cleanup_arg);
	f->cleanup = NULL;
	kvt_rmrf(f->dir); /* a fresh store: old values would have foreign ids */
	free(f->dir);
	f->dir = kvt_mkdtemp("conc");
	hot_run(f, KV_DUR_FSYNC_PER_OP, 4, 2, 1, 300, "hot keys, fsync-per-op");
}

/* After the failed commit: what plain reads saw and see, and the store's state. */
static void failed_commit_check(struct kv_db *db, struct hot *h)
{
	uint32_t failed = 0, ids = atomic_load(&h->next_id);
	struct kv_stats st;

	for (uint32_t id = 0; id < ids; id++) {
		failed += atomic_load(&h->failed[id]);
		if (atomic_load(&h->failed[id]) && atomic_load(&h->seen_plain[id]))
			fail_msg(
				"write id %u returned -EIO (its commit failed) but a plain read had returned it",
				id);
	}
	assert_in_range(failed, 4, 8); /* each writer stopped at its first -EIO */
	/* Plain reads still give committed values only; writes are refused. */
	for (uint32_t k = 0; k < HOT_KEYS; k++) {
		uint8_t buf[VAL_BUF];
		struct vinfo v;
		char key[16];
		ssize_t n;

		hot_key(key, k);
		n = kv_get(db, 0, key, strlen(key), buf, sizeof(buf));
		if (n == -ENOENT)
			continue;
		assert_in_range(n, VAL_MIN, VAL_BUF);
		assert_null(val_decode(buf, (size_t)n, &v));
		assert_int_equal(atomic_load(&h->failed[v.id]), 0);
		assert_true(atomic_load(&h->w[v.id].end) != 0);
	}
	assert_int_equal(kv_stats(db, &st), 0);
	assert_true(st.failed != 0);
	assert_int_equal(kv_put(db, NULL, "x", 1, "y", 1), -EIO);
}

/*
 * 1b. Never uncommitted: fail the fdatasync of a group commit while writers
 * and readers run. The writes of that commit return -EIO and are never
 * published, so no plain read may ever have returned one of them (a latest
 * read may). The buffer is large enough that no rotation happens, so the
 * failing sync is a commit's.
 */
static void test_failed_commit_invisible(void **state)
{
	struct kv_fault_rules rules = { .fail_sync_after = 1 };
	struct fx *f = *state;
	struct kv_fault_env *fe;
	pthread_t tid[16];
	double t0 = now_s();
	struct hot *h;

	assert_int_equal(kv_fault_env_create(kv_env_default(), &fe), 0);
	f->fault = fe;
	f->opt.env = kv_fault_env_env(fe);
	f->opt.log_buffer_size = 16 << 20;
	fx_open(f);
	h = hot_new(f, 4, 4000, 3, 1);
	h->seed = kvt_seed("failed commit");
	h->failed = calloc(h->max_ids, sizeof(*h->failed));
	h->seen_plain = calloc(h->max_ids, sizeof(*h->seen_plain));
	assert_true(h->failed && h->seen_plain);
	for (int i = 0; i < h->nthreads; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, hot_main, &h->t[i]), 0);
	while (atomic_load(&h->next_id) < 300 && atomic_load(&h->writers_left) > 0)
		sleep_us(100);
	kv_fault_env_set_rules(fe, &rules);
	for (int i = 0; i < h->nthreads; i++)
		pthread_join(tid[i], NULL);
	hot_report(h, t0);
	assert_no_failures();

	failed_commit_check(f->db, h);
}

/* ======================================================================
 * 3. batches are atomic for readers
 * ====================================================================== */

#define PAIRS 3
#define PAIR_KEYS 3 /* one batch sets all of them to one generation */

/*
 *   0 u32 magic   4 u32 length   8 u32 pair   12 u32 slot   16 u64 generation
 *   24 payload    len-8 u64 xxh3 of [0, len-8)
 */
#define GEN_MAGIC 0x4e454750u /* "PGEN" */
#define GEN_HDR 24u

struct pairs {
	struct kv_db *db;
	int ops;
	uint64_t seed;
	pthread_mutex_t mu[PAIRS];    /* order of generations == order of appends */
	uint64_t gen[PAIRS];	      /* [mu[p]] */
	_Atomic uint64_t seen[PAIRS]; /* max generation a finished read returned */
	_Atomic int writers_left;
	_Atomic uint64_t cb_sent, cb_done, passes;
};

struct pair_thread {
	struct pairs *ps;
	int id;
};

static void pair_key(char *buf, int p, int slot)
{
	snprintf(buf, KEY_BUF, "pair%d/%c", p, 'a' + slot);
}

static size_t gen_encode(uint8_t *out, uint64_t *rng, int p, int slot, uint64_t g)
{
	size_t len = GEN_HDR + 8 + kvt_rand(rng) % 400;

	put_u32(out, GEN_MAGIC);
	put_u32(out + 4, (uint32_t)len);
	put_u32(out + 8, (uint32_t)p);
	put_u32(out + 12, (uint32_t)slot);
	put_u64(out + 16, g);
	fill(out + GEN_HDR, len - GEN_HDR - 8, g * 131 + (uint64_t)(p * PAIR_KEYS + slot));
	put_u64(out + len - 8, XXH3_64bits(out, len - 8));
	return len;
}

/* The generation in the @n bytes at @buf, or a reason it is no such value. */
static const char *gen_decode(const uint8_t *buf, ssize_t n, int p, int slot, uint64_t *g)
{
	uint8_t payload[512];

	if (n < (ssize_t)(GEN_HDR + 8) || n > (ssize_t)sizeof(payload) ||
	    get_u32(buf) != GEN_MAGIC || get_u32(buf + 4) != (uint32_t)n)
		return "bad length or magic";
	if (get_u64(buf + n - 8) != XXH3_64bits(buf, (size_t)n - 8))
		return "checksum mismatch";
	if (get_u32(buf + 8) != (uint32_t)p || get_u32(buf + 12) != (uint32_t)slot)
		return "the value of another key";
	*g = get_u64(buf + 16);
	fill(payload, (size_t)n - GEN_HDR - 8, *g * 131 + (uint64_t)(p * PAIR_KEYS + slot));
	if (memcmp(payload, buf + GEN_HDR, (size_t)n - GEN_HDR - 8))
		return "payload differs";
	return NULL;
}

static void pair_cb(void *arg, int status)
{
	struct pairs *ps = arg;

	if (status)
		failf("kv_write_cb completed with status %d", status);
	atomic_fetch_add(&ps->cb_done, 1);
}

/*
 * Under the pair's lock (so that generations are appended in order): a batch
 * setting every key of the pair to the next generation, as a batch-mode
 * kv_write, a sync-mode kv_write_cb (committed later, lock released), or
 * rarely a sync kv_write with the lock held across its commit.
 */
static void pair_write(struct pairs *ps, uint64_t *rng, struct kv_batch *b, uint8_t *buf)
{
	struct kv_write_options batch = { KV_DUR_BATCH }, sync = { KV_DUR_SYNC };
	int p = (int)(kvt_rand(rng) % PAIRS), how = (int)(kvt_rand(rng) % 20), err;
	char key[KEY_BUF];
	uint64_t g;

	pthread_mutex_lock(&ps->mu[p]);
	g = ++ps->gen[p];
	kv_batch_clear(b);
	for (int s = 0; s < PAIR_KEYS; s++) {
		size_t len = gen_encode(buf, rng, p, s, g);

		pair_key(key, p, s);
		must(kv_batch_put(b, key, strlen(key), buf, len), "kv_batch_put");
	}
	if (how < 10) {
		err = kv_write(ps->db, &batch, b);
	} else if (how < 19) {
		atomic_fetch_add(&ps->cb_sent, 1);
		err = kv_write_cb(ps->db, &sync, b, pair_cb, ps);
		if (err)
			atomic_fetch_add(&ps->cb_done, 1);
	} else {
		err = kv_write(ps->db, &sync, b);
	}
	pthread_mutex_unlock(&ps->mu[p]);
	if (err)
		failf("pair %d generation %llu: write returned %d", p, (unsigned long long)g, err);
}

static void *pair_writer(void *arg)
{
	struct pair_thread *t = arg;
	struct pairs *ps = t->ps;
	uint64_t rng = ps->seed ^ (uint64_t)(t->id + 1) * 0x2545f4914f6cdd1dull;
	uint8_t buf[512];
	struct kv_batch *b;

	if (kv_batch_create(&b))
		abort();
	for (int i = 0; i < ps->ops && !atomic_load(&bad_count); i++)
		pair_write(ps, &rng, b, buf);
	kv_batch_destroy(b);
	atomic_fetch_sub(&ps->writers_left, 1);
	return NULL;
}

/* One pass: read the keys of pair @p in a random order (plain reads). Every
 * value must be at least the largest generation seen before it. */
static void pair_pass(struct pairs *ps, struct pair_thread *t, uint64_t *rng, uint64_t *mine, int p)
{
	int order[PAIR_KEYS];
	uint64_t floor = atomic_load(&ps->seen[p]), g;
	uint8_t buf[512];
	const char *why;
	char key[KEY_BUF];
	ssize_t n;

	if (*mine > floor)
		floor = *mine;
	for (int s = 0; s < PAIR_KEYS; s++)
		order[s] = s;
	for (int s = PAIR_KEYS - 1; s > 0; s--) {
		int j = (int)(kvt_rand(rng) % (uint64_t)(s + 1)), x = order[s];

		order[s] = order[j];
		order[j] = x;
	}
	for (int i = 0; i < PAIR_KEYS; i++) {
		pair_key(key, p, order[i]);
		n = kv_get(ps->db, 0, key, strlen(key), buf, sizeof(buf));
		if (n == -ENOENT && !floor)
			continue;
		why = n < 0 ? "kv_get failed" : gen_decode(buf, n, p, order[i], &g);
		if (why) {
			failf("reader %d: %s: %s (%zd)", t->id, key, why, n);
			return;
		}
		if (g < floor)
			failf("reader %d: %s has generation %llu after generation %llu was seen: a batch was not atomic for readers",
			      t->id, key, (unsigned long long)g, (unsigned long long)floor);
		if (g > floor)
			floor = g;
	}
	*mine = floor;
	atomic_max_u64(&ps->seen[p], floor);
	atomic_fetch_add(&ps->passes, 1);
}

static void *pair_reader(void *arg)
{
	struct pair_thread *t = arg;
	struct pairs *ps = t->ps;
	uint64_t rng = ps->seed ^ (uint64_t)(t->id + 77) * 0x9e3779b97f4a7c15ull;
	uint64_t mine[PAIRS] = { 0 };

	while (atomic_load(&ps->writers_left) > 0 && !atomic_load(&bad_count)) {
		int p = (int)(kvt_rand(&rng) % PAIRS);

		pair_pass(ps, t, &rng, &mine[p], p);
	}
	return NULL;
}

static void *pair_main(void *arg)
{
	struct pair_thread *t = arg;

	return t->id < 4 ? pair_writer(arg) : pair_reader(arg);
}

static void test_batch_atomic_for_readers(void **state)
{
	struct fx *f = *state;
	struct pairs *ps = calloc(1, sizeof(*ps));
	struct pair_thread t[7];

	assert_non_null(ps);
	fx_open(f);
	ps->db = f->db;
	ps->ops = scaled(3000);
	ps->seed = kvt_seed("batch atomicity");
	atomic_store(&ps->writers_left, 4);
	for (int p = 0; p < PAIRS; p++)
		pthread_mutex_init(&ps->mu[p], NULL);
	for (int i = 0; i < 7; i++)
		t[i] = (struct pair_thread){ ps, i };
	run_threads(7, pair_main, t, sizeof(t[0]));
	assert_int_equal(wait_count(&ps->cb_done, atomic_load(&ps->cb_sent), 60), 0);
	fprintf(stderr, "  %llu read passes, %llu callbacks\n",
		(unsigned long long)atomic_load(&ps->passes),
		(unsigned long long)atomic_load(&ps->cb_done));
	assert_no_failures();
	assert_true(atomic_load(&ps->passes) > 0);

	/* Everything committed: every key holds its pair's last generation. */
	assert_int_equal(kv_sync(f->db), 0);
	for (int p = 0; p < PAIRS; p++) {
		for (int s = 0; s < PAIR_KEYS; s++) {
			uint8_t buf[512];
			char key[KEY_BUF];
			uint64_t g = 0;
			ssize_t n;

			pair_key(key, p, s);
			n = kv_get(f->db, 0, key, strlen(key), buf, sizeof(buf));
			assert_null(gen_decode(buf, n, p, s, &g));
			assert_int_equal(g, ps->gen[p]);
		}
		pthread_mutex_destroy(&ps->mu[p]);
	}
	free(ps);
}

/* ======================================================================
 * 5. rotation under load
 * ====================================================================== */

#define ROT_WRITERS 4
#define ROT_KEYS 256 /* per writer */

struct rot_thread {
	struct kv_db *db;
	int id, ops;
	uint64_t seed;
	uint32_t last[ROT_KEYS]; /* last acknowledged seq per key, 0 = none */
	_Atomic int *writers_left;
};

static void rot_key(char *buf, int w, int k)
{
	snprintf(buf, KEY_BUF, "rot%d/%04d", w, k);
}

/* Mostly ~500 bytes; 1 in 64 is large (4..15 KiB, a quarter of the buffer
 * at most) so records cross the end of the buffer in many ways. */
static void rot_value(uint8_t *buf, int w, int k, uint32_t seq, uint64_t *rng, struct vinfo *v)
{
	vinfo_init(v);
	v->len = kvt_rand(rng) % 64 ? 300 + (uint32_t)(kvt_rand(rng) % 400) :
				      4096 + (uint32_t)(kvt_rand(rng) % 11000);
	v->key = (uint32_t)k;
	v->writer = (uint32_t)w;
	v->seq = seq;
	val_encode(buf, v);
}

static void *rot_writer(void *arg)
{
	struct rot_thread *t = arg;
	uint64_t rng = t->seed ^ (uint64_t)(t->id + 1) * 0x9e3779b97f4a7c15ull;
	uint8_t *buf = malloc(VAL_BUF);
	struct vinfo v;
	char key[KEY_BUF];

	if (!buf)
		abort();
	for (int i = 0; i < t->ops; i++) {
		int k = (int)(kvt_rand(&rng) % ROT_KEYS), err;

		rot_key(key, t->id, k);
		rot_value(buf, t->id, k, (uint32_t)i + 1, &rng, &v);
		err = kv_put(t->db, NULL, key, strlen(key), buf, v.len);
		if (err) {
			failf("rotation writer %d: put %d returned %d", t->id, i, err);
			break;
		}
		t->last[k] = (uint32_t)i + 1;
	}
	free(buf);
	atomic_fetch_sub(t->writers_left, 1);
	return NULL;
}

/* A reader during the run: values whole and of the key asked for. */
static void *rot_reader(void *arg)
{
	struct rot_thread *t = arg;
	uint64_t rng = t->seed;
	uint8_t *buf = malloc(VAL_BUF);
	struct vinfo v;
	char key[KEY_BUF];

	if (!buf)
		abort();
	while (atomic_load(t->writers_left) > 0) {
		int w = (int)(kvt_rand(&rng) % ROT_WRITERS), k = (int)(kvt_rand(&rng) % ROT_KEYS);
		ssize_t n;
		const char *why;

		rot_key(key, w, k);
		n = kv_get(t->db, 0, key, strlen(key), buf, VAL_BUF);
		if (n == -ENOENT)
			continue;
		why = n < 0 || n > (ssize_t)VAL_BUF ? "kv_get failed" :
						      val_decode(buf, (size_t)n, &v);
		if (!why && (v.key != (uint32_t)k || v.writer != (uint32_t)w))
			why = "the value of another key";
		if (why)
			failf("rotation reader: %s: %s (%zd)", key, why, n);
	}
	free(buf);
	return NULL;
}

static void *rot_main(void *arg)
{
	struct rot_thread *t = arg;

	return t->id < ROT_WRITERS ? rot_writer(arg) : rot_reader(arg);
}

static void rot_check(struct kv_db *db, struct rot_thread *t)
{
	uint8_t *buf = malloc(VAL_BUF);

	assert_non_null(buf);
	for (int w = 0; w < ROT_WRITERS; w++) {
		for (int k = 0; k < ROT_KEYS; k++) {
			struct vinfo v;
			char key[KEY_BUF];
			ssize_t n;

			rot_key(key, w, k);
			n = kv_get(db, 0, key, strlen(key), buf, VAL_BUF);
			if (!t[w].last[k]) {
				assert_int_equal(n, -ENOENT);
				continue;
			}
			assert_in_range(n, VAL_MIN, VAL_BUF);
			assert_null(val_decode(buf, (size_t)n, &v));
			assert_int_equal(v.key, k);
			assert_int_equal(v.writer, w);
			assert_int_equal(v.seq, t[w].last[k]);
		}
	}
	free(buf);
}

static void test_rotation_under_load(void **state)
{
	struct fx *f = *state;
	struct rot_thread *t = calloc(ROT_WRITERS + 1, sizeof(*t));
	_Atomic int left = ROT_WRITERS;
	uint64_t seed = kvt_seed("rotation under load");
	struct kv_stats st;
	double t0 = now_s();

	assert_non_null(t);
	f->opt.log_buffer_size = 64 << 10;
	fx_open(f);
	for (int i = 0; i <= ROT_WRITERS; i++)
		t[i] = (struct rot_thread){ .db = f->db,
					    .id = i,
					    .seed = seed + (uint64_t)i,
					    .ops = scaled(20000) / ROT_WRITERS,
					    .writers_left = &left };
	run_threads(ROT_WRITERS + 1, rot_main, t, sizeof(*t));
	assert_no_failures();
	assert_int_equal(kv_stats(f->db, &st), 0);
	fprintf(stderr, "  %d puts in %.2f s: %llu memtables, %llu commits\n",
		ROT_WRITERS * t[0].ops, now_s() - t0, (unsigned long long)st.memtables,
		(unsigned long long)st.commits);
	assert_true(st.memtables + st.flushes >= 10); /* it did rotate, many times */
	assert_int_equal(st.failed, 0);
	rot_check(f->db, t);
	fx_reopen(f);
	rot_check(f->db, t);
	/* Recovering a recovered store changes nothing. */
	fx_reopen(f);
	rot_check(f->db, t);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hot_keys_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hot_keys_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hot_keys_baselines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_invisible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_atomic_for_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_under_load, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
