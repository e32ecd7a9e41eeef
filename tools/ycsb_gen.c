/* SPDX-License-Identifier: MIT */
/*
 * ycsb_gen.c - YCSB's request generators and core workloads; see ycsb_gen.h
 * for what each one is and whom it follows.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvbench.h" /* rng_next */
#include "ycsb_gen.h"

#define FNV_OFFSET_64 0xcbf29ce484222325ull
#define FNV_PRIME_64 1099511628211ull

uint64_t ycsb_fnv64(uint64_t v)
{
	uint64_t h = FNV_OFFSET_64;

	for (int i = 0; i < 8; i++) {
		h ^= v & 0xff;
		v >>= 8;
		h *= FNV_PRIME_64;
	}
	/* Java's Math.abs on a long; Long.MIN_VALUE stays itself, as there. */
	if ((int64_t)h < 0 && h != (1ull << 63))
		h = (uint64_t)(-(int64_t)h);
	return h;
}

/* ---- random numbers ------------------------------------------------------- */

uint64_t ycsb_seed(uint64_t seed, uint64_t stream)
{
	uint64_t z = seed + 0x9e3779b97f4a7c15ull * (stream + 1);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1; /* xorshift's state must not be 0 */
}

uint64_t ycsb_rand(uint64_t *s)
{
	return rng_next(s);
}

double ycsb_rand_double(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1p-53;
}

uint64_t ycsb_rand_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

/* ---- zipfian ---------------------------------------------------------------- */

static double zeta_range(uint64_t from, uint64_t to, double theta, double sum)
{
	for (uint64_t i = from; i < to; i++)
		sum += 1.0 / pow((double)(i + 1), theta);
	return sum;
}

double ycsb_zeta(uint64_t n, double theta)
{
	return zeta_range(0, n, theta, 0);
}

static void zipf_set_eta(struct ycsb_zipf *z)
{
	z->eta = (1 - pow(2.0 / (double)z->items, 1 - z->theta)) / (1 - z->zeta2 / z->zetan);
}

void ycsb_zipf_init(struct ycsb_zipf *z, uint64_t items, double theta, double zetan)
{
	z->items = items;
	z->theta = theta;
	z->zeta2 = ycsb_zeta(2, theta);
	z->alpha = 1.0 / (1.0 - theta);
	z->zetan = zetan >= 0 ? zetan : ycsb_zeta(items, theta);
	z->half_pow = pow(0.5, theta);
	zipf_set_eta(z);
}

uint64_t ycsb_zipf_next(struct ycsb_zipf *z, uint64_t items, uint64_t *rng)
{
	double u, uz;
	uint64_t v;

	if (items != z->items) {
		/* Growing: add the new terms (YCSB's incremental zeta). */
		if (items > z->items)
			z->zetan = zeta_range(z->items, items, z->theta, z->zetan);
		else
			z->zetan = ycsb_zeta(items, z->theta);
		z->items = items;
		zipf_set_eta(z);
	}
	u = ycsb_rand_double(rng);
	uz = u * z->zetan;
	if (uz < 1.0)
		return 0;
	if (uz < 1.0 + z->half_pow)
		return items > 1 ? 1 : 0;
	v = (uint64_t)((double)items * pow(z->eta * u - z->eta + 1, z->alpha));
	return v < items ? v : items - 1;
}

double ycsb_zipf_prob(const struct ycsb_zipf *z, uint64_t i)
{
	return 1.0 / (pow((double)(i + 1), z->theta) * z->zetan);
}

/* ---- the acknowledged-insert counter ------------------------------------------- */

int ycsb_counter_init(struct ycsb_counter *c, uint64_t start)
{
	c->window = calloc(YCSB_ACK_WINDOW, sizeof(*c->window));
	if (!c->window)
		return -ENOMEM;
	atomic_init(&c->next, start);
	atomic_init(&c->count, start);
	return 0;
}

void ycsb_counter_destroy(struct ycsb_counter *c)
{
	free(c->window);
	c->window = NULL;
}

uint64_t ycsb_counter_next(struct ycsb_counter *c)
{
	uint64_t i = atomic_fetch_add(&c->next, 1);

	/* Its slot is reused only once the index a window earlier is counted. */
	while (i - ycsb_counter_count(c) >= YCSB_ACK_WINDOW)
		sched_yield();
	return i;
}

void ycsb_counter_ack(struct ycsb_counter *c, uint64_t i)
{
	uint64_t n;

	atomic_store_explicit(&c->window[i % YCSB_ACK_WINDOW], i + 1, memory_order_release);
	/* Move count over every acknowledged index; any acker may do it. */
	n = ycsb_counter_count(c);
	while (atomic_load_explicit(&c->window[n % YCSB_ACK_WINDOW], memory_order_acquire) ==
	       n + 1) {
		if (atomic_compare_exchange_weak(&c->count, &n, n + 1))
			n++;
	}
}

/* ---- key choosers ---------------------------------------------------------------- */

static const char *const dist_names[YCSB_NDIST] = {
	[YCSB_ZIPFIAN] = "zipfian",
	[YCSB_ZIPFIAN_TRUE] = "zipfian-true",
	[YCSB_LATEST] = "latest",
	[YCSB_UNIFORM] = "uniform",
};

const char *ycsb_dist_name(enum ycsb_dist d)
{
	return d < YCSB_NDIST ? dist_names[d] : "?";
}

int ycsb_dist_parse(const char *s, enum ycsb_dist *out)
{
	for (int d = 0; d < YCSB_NDIST; d++) {
		if (!strcmp(s, dist_names[d])) {
			*out = (enum ycsb_dist)d;
			return 0;
		}
	}
	return -EINVAL;
}

void ycsb_keygen_proto(enum ycsb_dist dist, uint64_t items, struct ycsb_zipf *proto)
{
	if (dist == YCSB_ZIPFIAN)
		ycsb_zipf_init(proto, YCSB_SCRAMBLE_ITEMS, YCSB_ZIPF_THETA, YCSB_SCRAMBLE_ZETAN);
	else
		ycsb_zipf_init(proto, items ? items : 1, YCSB_ZIPF_THETA, -1);
}

void ycsb_keygen_init(struct ycsb_keygen *g, enum ycsb_dist dist, struct ycsb_counter *ctr,
		      uint64_t space, const struct ycsb_zipf *proto, uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	g->dist = dist;
	g->ctr = ctr;
	g->space = space ? space : 1;
	if (proto)
		g->z = *proto;
	g->rng = seed ? seed : 1;
}

uint64_t ycsb_keygen_next(struct ycsb_keygen *g)
{
	uint64_t count = ycsb_counter_count(g->ctr), k;

	switch (g->dist) {
	case YCSB_ZIPFIAN:
		/* YCSB redraws keys not inserted yet (space counts expected inserts). */
		do
			k = ycsb_fnv64(ycsb_zipf_next(&g->z, YCSB_SCRAMBLE_ITEMS, &g->rng)) %
			    g->space;
		while (k >= count);
		return k;
	case YCSB_ZIPFIAN_TRUE:
		return ycsb_zipf_next(&g->z, count, &g->rng);
	case YCSB_LATEST:
		return count - 1 - ycsb_zipf_next(&g->z, count, &g->rng);
	default:
		return ycsb_rand_below(&g->rng, count);
	}
}

/* ---- workloads ---------------------------------------------------------------------- */

static const char *const op_names[YCSB_NOPS] = {
	[YCSB_READ] = "read", [YCSB_UPDATE] = "update", [YCSB_INSERT] = "insert",
	[YCSB_SCAN] = "scan", [YCSB_RMW] = "rmw",
};

const char *ycsb_op_name(enum ycsb_op op)
{
	return op < YCSB_NOPS ? op_names[op] : "?";
}

/* YCSB's workloads/workloada .. workloadf. */
static const struct ycsb_workload workloads[] = {
	{ 'A', { [YCSB_READ] = 0.5, [YCSB_UPDATE] = 0.5 }, YCSB_ZIPFIAN, "update heavy" },
	{ 'B', { [YCSB_READ] = 0.95, [YCSB_UPDATE] = 0.05 }, YCSB_ZIPFIAN, "read mostly" },
	{ 'C', { [YCSB_READ] = 1.0 }, YCSB_ZIPFIAN, "read only" },
	{ 'D', { [YCSB_READ] = 0.95, [YCSB_INSERT] = 0.05 }, YCSB_LATEST, "read latest" },
	{ 'E', { [YCSB_SCAN] = 0.95, [YCSB_INSERT] = 0.05 }, YCSB_ZIPFIAN, "short ranges" },
	{ 'F', { [YCSB_READ] = 0.5, [YCSB_RMW] = 0.5 }, YCSB_ZIPFIAN, "read-modify-write" },
};

const struct ycsb_workload *ycsb_workload_get(char name)
{
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (workloads[i].name == name || workloads[i].name == name - 'a' + 'A')
			return &workloads[i];
	return NULL;
}

enum ycsb_op ycsb_op_next(const struct ycsb_workload *w, uint64_t *rng)
{
	double u = ycsb_rand_double(rng), acc = 0;
	int last = YCSB_READ;

	for (int op = 0; op < YCSB_NOPS; op++) {
		if (w->prop[op] <= 0)
			continue;
		acc += w->prop[op];
		last = op;
		if (u < acc)
			return (enum ycsb_op)op;
	}
	return (enum ycsb_op)last; /* rounding: the proportions sum to 1 */
}

/* ---- records ------------------------------------------------------------------------- */

size_t ycsb_key(char *buf, uint64_t i)
{
	return (size_t)snprintf(buf, YCSB_KEY_MAX, "user%" PRIu64, ycsb_fnv64(i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

void ycsb_value(uint8_t *buf, size_t len, uint64_t i, uint64_t ver)
{
	uint64_t s = ycsb_seed(i, ver), r;
	size_t off;

	put_le64(buf, i);
	put_le64(buf + 8, ver);
	for (off = YCSB_VALUE_HEAD; off + 8 <= len; off += 8) {
		r = rng_next(&s);
		memcpy(buf + off, &r, 8);
	}
	r = rng_next(&s);
	memcpy(buf + off, &r, len - off);
}

int ycsb_value_check(const uint8_t *buf, size_t len, size_t want_len, uint64_t i)
{
	if (len != want_len || len < YCSB_VALUE_HEAD || get_le64(buf) != i)
		return -EUCLEAN;
	return 0;
}
