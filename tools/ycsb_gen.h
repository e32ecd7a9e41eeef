/* SPDX-License-Identifier: MIT */
/*
 * ycsb_gen.h - the request generators of YCSB's core workloads, for
 * kvbench ycsb (kvbench_ycsb.c) and its tests (tests/tools/test_ycsb_gen.c).
 *
 * They follow YCSB (site.ycsb.generator.*) so that the numbers compare with
 * published YCSB results:
 *
 *   zipfian-true  ZipfianGenerator: Gray et al., "Quickly generating
 *                 billion-record synthetic databases" (SIGMOD 1994), constant
 *                 0.99; item i (0-based) has probability 1 / ((i + 1)^theta *
 *                 zeta(n)), item 0 the most popular. The key space may grow
 *                 (inserts): zeta is extended incrementally, as YCSB does.
 *   zipfian       ScrambledZipfianGenerator, YCSB's default: a zipfian over
 *                 10^10 items (zeta precomputed) whose rank r becomes key
 *                 fnv64(r) mod n. The popular keys are spread over the key
 *                 space; the sorted frequencies are the 10^10-item zipfian's,
 *                 folded into n keys.
 *   latest        SkewedLatestGenerator: the newest record is the most popular,
 *                 key = last - zipfian(count).
 *   uniform       every existing key alike.
 *
 * Keys exist in [0, count) where count is the acknowledged-insert counter
 * (struct ycsb_counter, YCSB's AcknowledgedCounterGenerator): an insert takes
 * the next index and acknowledges it when its write returned; count only
 * moves past indexes whose inserts all returned, so no generator picks a key
 * that is still being written.
 *
 * Threads: struct ycsb_keygen is per thread (its random state, its copy of
 * the zipfian's constants); struct ycsb_counter is shared and lock-free.
 * Nothing here allocates on the request path.
 */
#ifndef YCSB_GEN_H
#define YCSB_GEN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define YCSB_ZIPF_THETA 0.99
#define YCSB_SCRAMBLE_ITEMS 10000000000ull    /* ScrambledZipfianGenerator.ITEM_COUNT */
#define YCSB_SCRAMBLE_ZETAN 26.46902820178302 /* zeta(10^10, 0.99), its ZETAN */
#define YCSB_KEY_MAX 32			      /* "user" + 19 digits, NUL */
#define YCSB_VALUE_HEAD 16		      /* index and version at a value's start */

/* YCSB's Utils.fnvhash64: FNV-1a over the 8 bytes, low first; non-negative. */
uint64_t ycsb_fnv64(uint64_t v);

/* Per-thread random numbers (xorshift64*, seeded through splitmix64). */
uint64_t ycsb_seed(uint64_t seed, uint64_t stream);
uint64_t ycsb_rand(uint64_t *s);
double ycsb_rand_double(uint64_t *s);		   /* [0, 1) */
uint64_t ycsb_rand_below(uint64_t *s, uint64_t n); /* [0, n), n > 0 */

/* ---- zipfian (Gray et al.) ------------------------------------------------- */

struct ycsb_zipf {
	uint64_t items;	 /* n: values in [0, n) */
	double theta;	 /* the zipfian constant */
	double zeta2;	 /* zeta(2, theta) */
	double alpha;	 /* 1 / (1 - theta) */
	double zetan;	 /* zeta(n, theta) */
	double eta;	 /* (1 - (2/n)^(1-theta)) / (1 - zeta2 / zetan) */
	double half_pow; /* 0.5^theta */
};

/* sum_{i=1..n} 1/i^theta. */
double ycsb_zeta(uint64_t n, double theta);
/* The zipfian over [0, items); zetan < 0 computes zeta(items). theta in (0, 1). */
void ycsb_zipf_init(struct ycsb_zipf *z, uint64_t items, double theta, double zetan);
/* The next value; if @items differs from z->items, z is first extended (or,
 * for fewer items, recomputed) to @items, as YCSB's nextLong(itemcount). */
uint64_t ycsb_zipf_next(struct ycsb_zipf *z, uint64_t items, uint64_t *rng);
/* The exact zipf probability of value @i (theory, for the tests and reports). */
double ycsb_zipf_prob(const struct ycsb_zipf *z, uint64_t i);

/* ---- the acknowledged-insert counter ---------------------------------------- */

#define YCSB_ACK_WINDOW 65536u /* inserts in flight at most (YCSB's window) */

struct ycsb_counter {
	_Atomic uint64_t next;	  /* [atomic] the index the next insert takes */
	_Atomic uint64_t count;	  /* [atomic] every index below is acknowledged */
	_Atomic uint64_t *window; /* [atomic slots] slot i % W = i + 1 once acked */
};

int ycsb_counter_init(struct ycsb_counter *c, uint64_t start);
void ycsb_counter_destroy(struct ycsb_counter *c);
/* The index for a new insert (waits while YCSB_ACK_WINDOW are in flight). */
uint64_t ycsb_counter_next(struct ycsb_counter *c);
/* The insert of @i returned. */
void ycsb_counter_ack(struct ycsb_counter *c, uint64_t i);
static inline uint64_t ycsb_counter_count(struct ycsb_counter *c)
{
	return atomic_load_explicit(&c->count, memory_order_acquire);
}

/* ---- key choosers ------------------------------------------------------------ */

enum ycsb_dist {
	YCSB_ZIPFIAN = 0, /* scrambled, YCSB's "zipfian" */
	YCSB_ZIPFIAN_TRUE,
	YCSB_LATEST,
	YCSB_UNIFORM,
	YCSB_NDIST,
};

const char *ycsb_dist_name(enum ycsb_dist d);
int ycsb_dist_parse(const char *s, enum ycsb_dist *out); /* 0 or -EINVAL */

struct ycsb_keygen {
	enum ycsb_dist dist;
	struct ycsb_counter *ctr;
	uint64_t space; /* zipfian: keys fnv64(rank) falls into */
	struct ycsb_zipf z;
	uint64_t rng;
};

/*
 * A thread's key chooser over the keys of @ctr. @space (scrambled zipfian):
 * the key space ranks are folded into (YCSB: records + expected inserts);
 * draws beyond the current count are redrawn. @proto: a zipfian prepared once
 * (ycsb_keygen_proto) and copied, so that threads do not each compute zeta.
 */
void ycsb_keygen_init(struct ycsb_keygen *g, enum ycsb_dist dist, struct ycsb_counter *ctr,
		      uint64_t space, const struct ycsb_zipf *proto, uint64_t seed);
/* The zipfian @dist needs, for a key space of @items now. */
void ycsb_keygen_proto(enum ycsb_dist dist, uint64_t items, struct ycsb_zipf *proto);
/* A key index in [0, count); count must be > 0. */
uint64_t ycsb_keygen_next(struct ycsb_keygen *g);

/* ---- workloads -------------------------------------------------------------- */

enum ycsb_op { YCSB_READ, YCSB_UPDATE, YCSB_INSERT, YCSB_SCAN, YCSB_RMW, YCSB_NOPS };

struct ycsb_workload {
	char name; /* 'A' .. 'F' */
	double prop[YCSB_NOPS];
	enum ycsb_dist dist;
	const char *what;
};

const char *ycsb_op_name(enum ycsb_op op);
/* YCSB's core workload @name ('A'..'F', either case), NULL if none. */
const struct ycsb_workload *ycsb_workload_get(char name);
/* The next operation by the workload's proportions. */
enum ycsb_op ycsb_op_next(const struct ycsb_workload *w, uint64_t *rng);

/* ---- records ---------------------------------------------------------------- */

/* YCSB's key of record @i (hashed inserts): "user" + fnv64(i). Returns its length. */
size_t ycsb_key(char *buf, uint64_t i);
/*
 * The value of record @i at version @ver: @len bytes (>= YCSB_VALUE_HEAD), the
 * index and version little-endian, then bytes drawn from both, so every
 * backend gets the same bytes for the same write.
 */
void ycsb_value(uint8_t *buf, size_t len, uint64_t i, uint64_t ver);
/* 0 if @buf (of @len bytes) is a value of record @i, else -EUCLEAN. */
int ycsb_value_check(const uint8_t *buf, size_t len, size_t want_len, uint64_t i);

#endif
