/* SPDX-License-Identifier: MIT */
/* Unit tests of kv/memtable.c: ordering, the three-slot version protocol,
 * concurrent inserts. Records are laid out in a real log buffer by hand. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv_test_util.h"
#include "logbuf.h"
#include "memtable.h"
#include "wal.h"

static uint32_t nrec;

struct fixture {
	struct kv_logbuf lb;
	struct kv_memtable mt;
};

static int setup(void **state)
{
	struct fixture *f = aligned_alloc(_Alignof(struct fixture), sizeof(*f));

	memset(f, 0, sizeof(*f));

	assert_int_equal(kv_logbuf_init(&f->lb, 64 << 20, KV_SEG_HEADER_SIZE), 0);
	assert_int_equal(kv_memtable_init(&f->mt, &f->lb), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	kv_memtable_destroy(&f->mt);
	kv_logbuf_destroy(&f->lb);
	free(f);
	return 0;
}

/* Append one put op for @key in the current epoch; returns its ref. */
static uint64_t put(struct fixture *f, const char *key, const char *val)
{
	size_t klen = strlen(key), vlen = strlen(val);
	uint64_t len = kv_align8(kv_op_size(klen, vlen)), ref;
	int crossing;

	assert_int_equal(kv_logbuf_reserve(&f->lb, len, &ref, &crossing), 0);
	kv_op_encode(f->lb.base + kv_ref_off(ref), KV_OP_PUT, key, (uint32_t)klen, val,
		     (uint32_t)vlen);
	assert_int_equal(kv_memtable_apply(&f->mt, ref, kv_ref_off(ref),
					   f->lb.base + kv_ref_off(ref) + KV_OP_HEADER_SIZE,
					   (uint32_t)klen),
			 0);
	kv_logbuf_release(&f->lb, ref, len);
	return ref;
}

/* Seal and publish the open epoch (as a commit would). */
static void commit(struct fixture *f)
{
	uint64_t start, end;
	uint32_t epoch;

	if (kv_logbuf_seal(&f->lb, &epoch, &start, &end, &nrec))
		kv_logbuf_publish(&f->lb, epoch, end);
}

/* Seal without publishing: the epoch is "in flight". */
static void seal_only(struct fixture *f, uint32_t *epoch, uint64_t *end)
{
	uint64_t start;

	assert_int_equal(kv_logbuf_seal(&f->lb, epoch, &start, end, &nrec), 1);
}

static const char *get(struct fixture *f, const char *key, int latest, char *buf)
{
	struct kv_op op;
	uint64_t off;

	if (!kv_memtable_get(&f->mt, key, strlen(key), latest, &off))
		return NULL;
	assert_true(kv_op_decode(f->lb.base + off, 1 << 20, &op) > 0);
	memcpy(buf, op.val, op.vlen);
	buf[op.vlen] = '\0';
	return buf;
}

static void test_committed_and_latest(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	uint32_t e;
	uint64_t end;

	put(f, "k", "v1");
	assert_null(get(f, "k", 0, buf));		/* uncommitted: not visible */
	assert_string_equal(get(f, "k", 1, buf), "v1"); /* latest sees it */
	commit(f);
	assert_string_equal(get(f, "k", 0, buf), "v1");

	put(f, "k", "v2"); /* epoch 2 */
	put(f, "k", "v3"); /* epoch 2 again: replaces v2 in place */
	assert_int_equal(atomic_load(&f->mt.replaced), 1);
	assert_string_equal(get(f, "k", 0, buf), "v1");
	assert_string_equal(get(f, "k", 1, buf), "v3");

	/* Epoch 2 in flight while epoch 3 writes: v1 must stay readable. */
	seal_only(f, &e, &end);
	put(f, "k", "v4"); /* epoch 3: shifts, ver = [v4, v3, v1] */
	put(f, "k", "v5"); /* epoch 3: replaces v4 */
	assert_string_equal(get(f, "k", 0, buf), "v1");
	assert_string_equal(get(f, "k", 1, buf), "v5");
	kv_logbuf_publish(&f->lb, e, end); /* epoch 2 commits */
	assert_string_equal(get(f, "k", 0, buf), "v3");
	commit(f);
	assert_string_equal(get(f, "k", 0, buf), "v5");
	assert_null(get(f, "other", 0, buf));
}

static void test_superseded(void **state)
{
	struct fixture *f = *state;
	uint64_t r1, r2, len = kv_align8(kv_op_size(1, 1));
	char buf[16];
	int crossing;

	/* Two writers reserve in order r1 < r2 but index in reverse order. */
	assert_int_equal(kv_logbuf_reserve(&f->lb, len, &r1, &crossing), 0);
	assert_int_equal(kv_logbuf_reserve(&f->lb, len, &r2, &crossing), 0);
	kv_op_encode(f->lb.base + kv_ref_off(r1), KV_OP_PUT, "a", 1, "1", 1);
	kv_op_encode(f->lb.base + kv_ref_off(r2), KV_OP_PUT, "a", 1, "2", 1);
	kv_memtable_apply(&f->mt, r2, kv_ref_off(r2), f->lb.base + kv_ref_off(r2) + 8, 1);
	kv_memtable_apply(&f->mt, r1, kv_ref_off(r1), f->lb.base + kv_ref_off(r1) + 8, 1);
	kv_logbuf_release(&f->lb, r1, len);
	kv_logbuf_release(&f->lb, r2, len);
	commit(f);
	assert_int_equal(atomic_load(&f->mt.superseded), 1);
	assert_string_equal(get(f, "a", 0, buf), "2");
}

/* Lay out a put op in fresh buffer space; returns its offset. */
static uint64_t place(struct fixture *f, const char *key, const char *val, uint64_t *end)
{
	uint64_t len = kv_align8(kv_op_size(strlen(key), strlen(val))), ref;
	int crossing;

	assert_int_equal(kv_logbuf_reserve(&f->lb, len, &ref, &crossing), 0);
	kv_op_encode(f->lb.base + kv_ref_off(ref), KV_OP_PUT, key, (uint32_t)strlen(key), val,
		     (uint32_t)strlen(val));
	*end = kv_ref_off(ref) + len;
	return kv_ref_off(ref);
}

static void apply_at(struct fixture *f, uint32_t epoch, uint64_t off)
{
	assert_int_equal(kv_memtable_apply(&f->mt, kv_ref_make(epoch, off), off,
					   f->lb.base + off + KV_OP_HEADER_SIZE, 1),
			 0);
}

/*
 * A writer of epoch 2 indexes its version after a writer of epoch 3 did (it
 * was slow between reservation and indexing). Epoch 2 is published first:
 * readers must then see its version, not fall back past it.
 */
static void test_late_older_epoch(void **state)
{
	struct fixture *f = *state;
	uint64_t x, a, b, x_end, a_end, b_end;
	char buf[16];

	x = place(f, "k", "x", &x_end);
	a = place(f, "k", "a", &a_end);
	b = place(f, "k", "b", &b_end);
	apply_at(f, 1, x);
	atomic_store(&f->lb.durable, x_end); /* epoch 1 published */
	apply_at(f, 3, b);
	apply_at(f, 2, a); /* late: below b, not dropped */
	assert_int_equal(atomic_load(&f->mt.superseded), 0);
	assert_string_equal(get(f, "k", 0, buf), "x");
	assert_string_equal(get(f, "k", 1, buf), "b");
	atomic_store(&f->lb.durable, a_end); /* epoch 2 published */
	assert_string_equal(get(f, "k", 0, buf), "a");
	atomic_store(&f->lb.durable, b_end); /* epoch 3 published */
	assert_string_equal(get(f, "k", 0, buf), "b");
}

struct collect {
	char last[64];
	int n;
};

static void check_order(void *arg, struct kv_mnode *n)
{
	struct collect *c = arg;
	char key[64];

	memcpy(key, n->key, n->klen);
	key[n->klen] = '\0';
	if (c->n)
		assert_true(strcmp(c->last, key) < 0);
	strcpy(c->last, key);
	c->n++;
}

static void test_order(void **state)
{
	struct fixture *f = *state;
	uint64_t seed = kvt_seed("test_order");
	struct collect c = { .n = 0 };
	char key[32], buf[64];
	int distinct = 0;
	static char seen[10000];

	for (int i = 0; i < 20000; i++) {
		int k = (int)(kvt_rand(&seed) % 10000);

		snprintf(key, sizeof(key), "key%05d", k);
		put(f, key, key);
		distinct += !seen[k];
		seen[k] = 1;
	}
	commit(f);
	kv_memtable_for_each(&f->mt, check_order, &c);
	assert_int_equal(c.n, distinct);
	assert_int_equal(atomic_load(&f->mt.nodes), distinct);
	for (int k = 0; k < 10000; k++) {
		snprintf(key, sizeof(key), "key%05d", k);
		if (seen[k])
			assert_string_equal(get(f, key, 0, buf), key);
		else
			assert_null(get(f, key, 0, buf));
	}
	/* A prefix and an extension of a key are different keys. */
	assert_null(get(f, "key0000", 0, buf));
	assert_null(get(f, "key000000", 0, buf));
}

#define THREADS 4
#define PER_THREAD 20000
static struct fixture *cf;

static void *inserter(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
	char key[32];

	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(key, sizeof(key), "c%06d", (int)(kvt_rand(&seed) % 5000));
		put(cf, key, key);
	}
	return NULL;
}

static void test_concurrent_inserts(void **state)
{
	struct collect c = { .n = 0 };
	pthread_t t[THREADS];
	char key[32], buf[64];

	cf = *state;
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, inserter, (void *)(i + 1));
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	commit(cf);
	kv_memtable_for_each(&cf->mt, check_order, &c);
	assert_int_equal(c.n, atomic_load(&cf->mt.nodes));
	assert_true(c.n > 4000);
	for (int k = 0; k < 5000; k++) {
		snprintf(key, sizeof(key), "c%06d", k);
		if (get(cf, key, 0, buf))
			assert_string_equal(buf, key);
	}
}

/*
 * Range tombstones: many (so lookups go through the fragmented set and the
 * list scan both, across several rebuilds), against a brute force over all
 * of them, at several limits.
 */
static void test_range_tombstones(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = kvt_seed("memtable_rdel");
	struct {
		char s[8], e[8];
		uint64_t off;
	} t[300];
	int n = 0;

	for (int i = 0; i < 300; i++) {
		unsigned a = (unsigned)(kvt_rand(&rng) % 1000),
			 b = a + 1 + (unsigned)(kvt_rand(&rng) % 50);
		uint64_t ref, len;
		int crossing;

		snprintf(t[i].s, sizeof(t[i].s), "%04u", a);
		snprintf(t[i].e, sizeof(t[i].e), "%04u", b);
		len = kv_align8(kv_op_size(4, 4));
		assert_int_equal(kv_logbuf_reserve(&f->lb, len, &ref, &crossing), 0);
		kv_op_encode(f->lb.base + kv_ref_off(ref), KV_OP_DELRANGE, t[i].s, 4, t[i].e, 4);
		t[i].off = kv_ref_off(ref);
		assert_int_equal(kv_memtable_add_rdel(&f->mt, t[i].off,
						      f->lb.base + t[i].off + KV_OP_HEADER_SIZE, 4,
						      f->lb.base + t[i].off + KV_OP_HEADER_SIZE + 4,
						      4),
				 0);
		n++;
		/* Probe as it grows: lookups trigger the rebuilds. */
		for (int q = 0; q < 40; q++) {
			char key[8];
			uint64_t limit = q % 4 ? t[kvt_rand(&rng) % (unsigned)n].off + 1 :
						 UINT64_MAX;
			uint64_t want = 0, got = 0;
			int found;

			snprintf(key, sizeof(key), "%04u", (unsigned)(kvt_rand(&rng) % 1100));
			for (int k = 0; k < n; k++)
				if (t[k].off < limit && strcmp(t[k].s, key) <= 0 &&
				    strcmp(key, t[k].e) < 0 && t[k].off > want)
					want = t[k].off;
			found = kv_memtable_rdel_cover(&f->mt, key, 4, limit, &got);
			assert_int_equal(found, want != 0);
			if (found)
				assert_int_equal(got, want);
		}
	}
	assert_non_null(atomic_load(&f->mt.frag));
}

/* A fixture with a 64 KiB buffer: the fewest hash buckets, so chains form. */
static int setup_small(void **state)
{
	struct fixture *f = aligned_alloc(_Alignof(struct fixture), sizeof(*f));

	memset(f, 0, sizeof(*f));
	assert_int_equal(kv_logbuf_init(&f->lb, 64 << 10, KV_SEG_HEADER_SIZE), 0);
	assert_int_equal(kv_memtable_init(&f->mt, &f->lb), 0);
	*state = f;
	return 0;
}

/* Put binary key @key (@klen bytes) with a 1-byte value @v; 0 or -ENOSPC. */
static int put_bin(struct fixture *f, const uint8_t *key, size_t klen, uint8_t v)
{
	uint64_t len = kv_align8(kv_op_size(klen, 1)), ref;
	int crossing;

	if (kv_logbuf_reserve(&f->lb, len, &ref, &crossing))
		return -ENOSPC;
	kv_op_encode(f->lb.base + kv_ref_off(ref), KV_OP_PUT, key, (uint32_t)klen, &v, 1);
	assert_int_equal(kv_memtable_apply(&f->mt, ref, kv_ref_off(ref),
					   f->lb.base + kv_ref_off(ref) + KV_OP_HEADER_SIZE,
					   (uint32_t)klen),
			 0);
	kv_logbuf_release(&f->lb, ref, len);
	return 0;
}

/* The value byte of binary key @key, or -1 if the memtable has none. */
static int get_bin(struct fixture *f, const uint8_t *key, size_t klen)
{
	struct kv_op op;
	uint64_t off;

	if (!kv_memtable_get(&f->mt, key, klen, 1, &off))
		return -1;
	assert_true(kv_op_decode(f->lb.base + off, 1 << 20, &op) > 0);
	assert_int_equal(op.vlen, 1);
	return ((const uint8_t *)op.val)[0];
}

#define BK_MAX 20
#define BK_N 900
struct bkey {
	uint8_t k[BK_MAX + 1]; /* room for one more byte */
	size_t len;
	int val;
};

static int bkey_cmp(const void *a, const void *b)
{
	const struct bkey *x = a, *y = b;
	int c = memcmp(x->k, y->k, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static struct bkey *bk_sorted;
static size_t bk_n, bk_seen;

static void check_bin_order(void *arg, struct kv_mnode *n)
{
	struct bkey k = { .len = n->klen };

	(void)arg;
	assert_true(bk_seen < bk_n);
	memcpy(k.k, n->key, n->klen);
	assert_int_equal(bkey_cmp(&k, &bk_sorted[bk_seen]), 0);
	bk_seen++;
}

/*
 * Binary keys around the 16 bytes the nodes keep as prefix words: zero
 * bytes (so zero padding ties), keys that are prefixes of each other, long
 * shared prefixes, lengths 1..20. The skiplist order must be memcmp order,
 * then length; every key found, and absent neighbours not found, through
 * a hash index small enough to have chains.
 */
static void test_binary_keys(void **state)
{
	static const uint8_t alpha[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
	struct fixture *f = *state;
	uint64_t seed = kvt_seed("test_binary_keys");
	static struct bkey keys[BK_N];
	size_t n = 0, distinct;

	while (n < BK_N) {
		struct bkey *k = &keys[n];

		/* Mostly 15..17 bytes sharing a 14-byte run of zeros. */
		k->len = kvt_rand(&seed) % 4 ? 15 + kvt_rand(&seed) % 3 :
					       1 + kvt_rand(&seed) % BK_MAX;
		memset(k->k, 0, sizeof(k->k));
		for (size_t i = 0; i < k->len; i++)
			k->k[i] = i < 14 && k->len >= 15 ? 0 :
							   alpha[kvt_rand(&seed) % sizeof(alpha)];
		k->val = (int)(n & 0x7f);
		if (put_bin(f, k->k, k->len, (uint8_t)k->val))
			break;
		n++;
	}
	assert_true(n > 500);
	/* The newest value of each key wins: sort stably by key, keep the last. */
	for (size_t i = 0; i < n; i++)
		keys[i].val |= (int)i << 8;
	qsort(keys, n, sizeof(keys[0]), bkey_cmp);
	distinct = 0;
	for (size_t i = 0; i < n; i++) {
		if (distinct && !bkey_cmp(&keys[distinct - 1], &keys[i])) {
			if (keys[i].val > keys[distinct - 1].val)
				keys[distinct - 1] = keys[i];
			continue;
		}
		keys[distinct++] = keys[i];
	}
	/* At most 155 short keys (1-3 free bytes of 5 values) and about 225
	 * long ones: more than 300 distinct is likely, not certain. */
	assert_true(distinct > 200);
	bk_sorted = keys;
	bk_n = distinct;
	bk_seen = 0;
	kv_memtable_for_each(&f->mt, check_bin_order, NULL);
	assert_int_equal(bk_seen, distinct);
	assert_int_equal(atomic_load(&f->mt.nodes), distinct);
	for (size_t i = 0; i < distinct; i++) {
		struct bkey k = keys[i];

		assert_int_equal(get_bin(f, k.k, k.len), k.val & 0x7f);
		/* A byte more (zero: ties the padded prefix) or less: absent
		 * unless that key was written too. */
		k.k[k.len] = 0;
		k.len++;
		if (k.len <= BK_MAX && !bsearch(&k, keys, distinct, sizeof(k), bkey_cmp))
			assert_int_equal(get_bin(f, k.k, k.len), -1);
		k.len -= 2;
		if (k.len && !bsearch(&k, keys, distinct, sizeof(k), bkey_cmp))
			assert_int_equal(get_bin(f, k.k, k.len), -1);
	}
}

/*
 * Racing writers of the same brand-new keys: whichever loses the level-0
 * race applies its version to the winner's node, and each writer, once its
 * apply has returned, finds the key (the hash index holds every node whose
 * apply returned), while a reader thread looks the keys up meanwhile.
 */
#define RACE_KEYS 20000
static _Atomic int race_done;

static void *race_writer(void *arg)
{
	char key[32], buf[64];

	(void)arg;
	for (int i = 0; i < RACE_KEYS; i++) {
		snprintf(key, sizeof(key), "r%06d", i);
		put(cf, key, key);
		assert_non_null(get(cf, key, 1, buf));
		assert_string_equal(buf, key);
	}
	return NULL;
}

static void *race_reader(void *arg)
{
	char key[32], buf[64];

	(void)arg;
	while (!atomic_load(&race_done)) {
		for (int i = 0; i < RACE_KEYS; i += 97) {
			snprintf(key, sizeof(key), "r%06d", i);
			if (get(cf, key, 1, buf))
				assert_string_equal(buf, key);
		}
	}
	return NULL;
}

static void test_concurrent_fresh_keys(void **state)
{
	struct collect c = { .n = 0 };
	pthread_t t[THREADS], r;

	cf = *state;
	atomic_store(&race_done, 0);
	pthread_create(&r, NULL, race_reader, NULL);
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, race_writer, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&race_done, 1);
	pthread_join(r, NULL);
	kv_memtable_for_each(&cf->mt, check_order, &c);
	assert_int_equal(c.n, RACE_KEYS);
	assert_int_equal(atomic_load(&cf->mt.nodes), RACE_KEYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_committed_and_latest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_superseded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_older_epoch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_inserts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_tombstones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_keys, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_fresh_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
