/* SPDX-License-Identifier: MIT */
/*
 * table_util.h - helpers shared by the table tests (test_table.c,
 * test_table_corrupt.c):
 *
 * 1. A model of a table (struct tt_model): internal keys in order, each with
 *    the seed of its value (tt_fill_value makes the bytes), and range
 *    tombstones; random contents from a seed.
 * 2. The fixture (struct tt_fx): a scratch directory, the path of table 5 in
 *    it, options with a log sink, the posix env; tt_build writes a model as
 *    a table there.
 * 3. Reading: a kv_table_get callback that copies the hit (tt_on_hit), a
 *    whole file into memory, and the footer's block handles read as
 *    kv/FORMAT.md describes them (independently of the reader's code).
 *
 * Main thread only (they fail the test through cmocka), except tt_on_hit
 * and tt_fill_value.
 */
#ifndef TABLE_UTIL_H
#define TABLE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "kv_test_util.h"
#include "rangedel.h"
#include "table.h"

/* ---- 1. a model of a table ---- */

struct tt_ent {
	uint8_t ik[32]; /* user key + trailer */
	size_t iklen;
	size_t vlen;
	uint32_t vseed;
};

struct tt_model {
	struct tt_ent *e;
	size_t n, cap;
	struct kv_rtomb *t;
	size_t nt;
};

void tt_fill_value(uint8_t *v, size_t len, uint32_t seed);
void tt_model_add(struct tt_model *m, const char *key, uint64_t lsn, unsigned kind, size_t vlen,
		  uint32_t vseed);
/* Add tombstone [@s, @e) at @lsn (copies of the keys). */
void tt_add_tomb(struct tt_model *m, const char *s, const char *e, uint64_t lsn);
void tt_free_tombs(struct tt_model *m);
void tt_model_free(struct tt_model *m);
/* Keys "k%07u" for even numbers; the odd ones are absent. */
void tt_key_of(char *out, unsigned i);
/* @nkeys user keys, 1..4 versions each, lsns descending within a key. */
void tt_model_random(struct tt_model *m, unsigned nkeys, uint64_t *rs);

/* ---- 2. the fixture ---- */

struct tt_fx {
	char *dir;
	char path[512]; /* table 5 in dir */
	struct kvt_log log;
	struct kv_options opt;
	struct kv_env *env;
};

int tt_setup(void **state);
int tt_teardown(void **state);
/* Write @m as table 5 at f->path (replacing it); *pr as kv_tb_finish. */
void tt_build(struct tt_fx *f, const struct tt_model *m, const struct kv_table_build_opts *o,
	      struct kv_table_props *pr);
/* The same as table @file_no at @path. */
void tt_build_at(struct tt_fx *f, const char *path, uint64_t file_no, const struct tt_model *m,
		 const struct kv_table_build_opts *o, struct kv_table_props *pr);

/* ---- 3. reading ---- */

/* kv_table_get's callback: counts hits and keeps a malloc'd copy of the
 * last one (free val when done). */
struct tt_hit {
	int n;
	unsigned kind;
	uint64_t lsn;
	uint8_t *val;
	size_t vlen;
};
void tt_on_hit(void *arg, unsigned kind, uint64_t lsn, const void *val, size_t vlen);

/* The whole file, malloc'd; NULL if it cannot be opened. */
uint8_t *tt_slurp(const char *path, size_t *n);

/* The footer's handles, read as kv/FORMAT.md says. */
struct tt_handles {
	uint64_t off[4], size[4]; /* filter, rangedel, props, index */
	uint64_t footer;
};
void tt_read_handles(const uint8_t *file, size_t n, struct tt_handles *h);

#endif /* TABLE_UTIL_H */
