/* SPDX-License-Identifier: MIT */
/*
 * Tables that compactions pass through unchanged (compact.c, "Passing
 * through") and flushes cut per key region (flush.c): the shape of kvfs's
 * sequential writes, where every batch holds a file's header key (02 ino)
 * and its next data keys (04 ino block), so that every memtable spans from
 * the header to the newest data.
 *   - sequential files, automatic background work (the stall bound forces
 *     compactions): every key reads back, an iterator sees them all in
 *     order, and the bytes compactions wrote stay a small fraction of the
 *     data (the old compaction rewrote level 1 at every level-0
 *     compaction: several times the data); kv_check passes after close and
 *     a reopen (the manifest edits that moved tables) sees the same;
 *   - two files written in turns (overlapping tables: merged, next to
 *     tables passed through), a snapshot, a range delete of part of one
 *     file and overwrites: the latest state and the snapshot's read right
 *     through the background compactions, a full compaction, and a reopen.
 */
#include <errno.h>
#include <inttypes.h>
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

#define BLOCK 1024u	 /* value bytes of a data key */
#define PER_BATCH 8u	 /* data keys per batch (a "write") */
#define FILE_BLOCKS 2048 /* 2 MiB per file */

static const struct kv_write_options batch_wo = { .durability = KV_DUR_BATCH };

static int setup(void **state)
{
	struct kvp_store *s = calloc(1, sizeof(*s));

	if (!s || kvp_store_init(s, "cmove", 0)) {
		free(s);
		return -1;
	}
	s->opt.log_buffer_size = 64 << 10;
	s->opt.table_target_size = 16 << 10;
	s->opt.level1_max_bytes = 128 << 10;
	s->opt.l0_compact_trigger = 2;
	s->opt.l0_stall = 4;
	*state = s;
	return 0;
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static size_t head_key(uint8_t *k, uint64_t ino)
{
	k[0] = 0x02;
	be64(k + 1, ino);
	return 9;
}

static size_t data_key(uint8_t *k, uint64_t ino, uint64_t blk)
{
	k[0] = 0x04;
	be64(k + 1, ino);
	be64(k + 9, blk);
	return 17;
}

/* One "write" of file @ino: blocks [blk, blk + PER_BATCH) with values of
 * generation @gen, and its header; into the store and @m. */
static void write_blocks(struct kvp_store *s, struct kvp_model *m, uint64_t ino, uint64_t blk,
			 unsigned gen)
{
	uint8_t k[17], v[BLOCK], h[64];
	struct kv_batch *b;
	size_t kl, hl;

	assert_int_equal(kv_batch_create(&b), 0);
	for (uint64_t i = blk; i < blk + PER_BATCH; i++) {
		kl = data_key(k, ino, i);
		kvp_value(v, BLOCK, ino * 1000003 + i * 31 + gen, "f%" PRIu64 " b%" PRIu64 " g%u",
			  ino, i, gen);
		assert_int_equal(kv_batch_put(b, k, kl, v, BLOCK), 0);
		kvp_model_put(m, k, kl, v, BLOCK);
	}
	kl = head_key(k, ino);
	hl = kvp_value(h, sizeof(h), ino + blk, "ino %" PRIu64 " size %" PRIu64, ino,
		       (blk + PER_BATCH) * BLOCK);
	assert_int_equal(kv_batch_put(b, k, kl, h, hl), 0);
	kvp_model_put(m, k, kl, h, hl);
	kvp_ok(s, kv_write(s->db, &batch_wo, b), "kv_write");
	kv_batch_destroy(b);
}

/* The store (or @snap) holds exactly @m: a full scan, and gets of some keys. */
static void check_model(struct kvp_store *s, const struct kv_snapshot *snap,
			const struct kvp_model *m, const char *when)
{
	struct kv_iter *it;
	size_t seen = 0;
	char why[256];
	uint8_t got[BLOCK];

	assert_int_equal(kvp_iter_open(s->db, snap, &it), 0);
	kv_iter_seek_first(it);
	if (kvp_iter_compare(it, m, 0, 0, &seen, why, sizeof(why)))
		fail_msg("%s: scan: %s (after %zu keys)", when, why, seen);
	assert_int_equal(seen, m->n);
	kvp_iter_close(it);
	for (size_t i = 0; i < m->n; i += 13) {
		const struct kvp_ment *e = &m->e[i];
		ssize_t n = snap ? kv_get_at(s->db, snap, e->k, e->kl, got, sizeof(got)) :
				   kv_get(s->db, 0, e->k, e->kl, got, sizeof(got));

		if (n != (ssize_t)e->vl || memcmp(got, e->v, e->vl))
			fail_msg("%s: get of entry %zu: %zd bytes, want %zu", when, i, n, e->vl);
	}
}

static void report(void *arg, const char *file, uint64_t off, const char *problem)
{
	(*(unsigned *)arg)++;
	print_message("kv_check: %s: offset %" PRIu64 ": %s\n", file, off, problem);
}

/* Close, kv_check, reopen. */
static void check_and_reopen(struct kvp_store *s)
{
	unsigned problems = 0;

	kvp_close(s);
	assert_int_equal(kv_check(s->dir, NULL, report, &problems), 0);
	assert_int_equal(problems, 0);
	kvp_open(s);
}

static void test_sequential_files(void **state)
{
	struct kvp_store *s = *state;
	struct kvp_model m = { 0 };
	struct kv_stats st;
	uint64_t data = 0;

	kvp_open(s);
	for (uint64_t ino = 10; ino < 13; ino++)
		for (uint64_t blk = 0; blk < FILE_BLOCKS; blk += PER_BATCH) {
			write_blocks(s, &m, ino, blk, 0);
			data += PER_BATCH * BLOCK;
		}
	kvp_ok(s, kv_sync(s->db), "kv_sync");
	kvp_stats(s, &st);
	/* 6 MiB through 64 KiB memtables with a stall at depth 4: compactions
	 * must have run, level 1 being rewritten by each would write several
	 * times the data; passed through, only the headers are merged. */
	print_message("%" PRIu64 " flushes, %" PRIu64 " compactions wrote %" PRIu64
		      " bytes for %" PRIu64 " bytes of data\n",
		      st.flushes, st.compactions, st.compact_write_bytes, data);
	assert_true(st.flushes >= 50);
	assert_true(st.compactions >= 10);
	if (st.compact_write_bytes >= data / 8)
		fail_msg("compactions wrote %" PRIu64 " bytes for %" PRIu64 " bytes of data",
			 st.compact_write_bytes, data);
	check_model(s, NULL, &m, "after the writes");
	check_and_reopen(s);
	check_model(s, NULL, &m, "after a reopen");
	kvp_compact(s);
	check_model(s, NULL, &m, "after kv_compact");
	check_and_reopen(s);
	check_model(s, NULL, &m, "after kv_compact and a reopen");
	kvp_model_free(&m);
}

static void test_interleaved_snapshot_rangedel(void **state)
{
	struct kvp_store *s = *state;
	struct kvp_model m = { 0 }, at_snap;
	struct kv_snapshot *snap;
	uint8_t a[17], z[17];
	size_t al, zl;

	kvp_open(s);
	/* Two files in turns: each memtable holds parts of both. */
	for (uint64_t blk = 0; blk < FILE_BLOCKS / 2; blk += PER_BATCH) {
		write_blocks(s, &m, 20, blk, 0);
		write_blocks(s, &m, 21, blk, 0);
	}
	kvp_ok(s, kv_sync(s->db), "kv_sync");
	assert_int_equal(kvp_snap_take(s->db, &snap), 0);
	kvp_model_copy(&at_snap, &m);
	/* Drop blocks [256, 512) of file 20, rewrite some of file 21, and go on
	 * with a new file past both. */
	al = data_key(a, 20, 256);
	zl = data_key(z, 20, 512);
	kvp_ok(s, kv_delete_range(s->db, &batch_wo, a, al, z, zl), "kv_delete_range");
	for (size_t i = kvp_model_lower(&m, a, al); i < m.n;) {
		if (kvp_key_cmp(m.e[i].k, m.e[i].kl, z, zl) >= 0)
			break;
		kvp_model_del(&m, m.e[i].k, m.e[i].kl);
	}
	for (uint64_t blk = 128; blk < 384; blk += PER_BATCH)
		write_blocks(s, &m, 21, blk, 1);
	for (uint64_t blk = 0; blk < FILE_BLOCKS; blk += PER_BATCH)
		write_blocks(s, &m, 22, blk, 0);
	kvp_ok(s, kv_sync(s->db), "kv_sync");
	check_model(s, NULL, &m, "latest");
	check_model(s, snap, &at_snap, "at the snapshot");
	kvp_compact(s);
	check_model(s, NULL, &m, "latest after kv_compact");
	check_model(s, snap, &at_snap, "at the snapshot after kv_compact");
	kvp_snap_drop(s->db, snap);
	/* More writes over what the full compaction left. */
	for (uint64_t blk = FILE_BLOCKS; blk < FILE_BLOCKS + 512; blk += PER_BATCH)
		write_blocks(s, &m, 20, blk, 2);
	kvp_ok(s, kv_sync(s->db), "kv_sync");
	check_model(s, NULL, &m, "after more writes");
	check_and_reopen(s);
	check_model(s, NULL, &m, "after a reopen");
	kvp_model_free(&at_snap);
	kvp_model_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sequential_files, setup, kvp_store_teardown),
		cmocka_unit_test_setup_teardown(test_interleaved_snapshot_rangedel, setup,
						kvp_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
