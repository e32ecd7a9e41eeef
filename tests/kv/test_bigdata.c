/* SPDX-License-Identifier: MIT */
/*
 * Big data: write many times more data than the store may hold in memory
 * (memtables and block cache), with automatic background flush and
 * compaction, read all of it back (random gets and a full scan), and check
 * that the process's peak resident set stays under a bound derived from the
 * options, far below the data size: memory that grows with the data fails.
 *
 * The bound (see rss_bound()):
 *
 *   log_buffer_size * (1 + max_immutable)   the memtables' log buffers
 *   + 1/4 of that                           their index (skiplist nodes)
 *   + block_cache_size                      cached blocks
 *   + data / 64                             tables' indexes and filters kept
 *                                           open (~64 B per 4 KiB block,
 *                                           10 bits per key), which do grow
 *                                           with the data, slowly
 *   + 2 * table_target_size                 a flush or compaction output
 *                                           being built, and input buffers
 *   + slack                                 the runtime: libc arenas, thread
 *                                           stacks, io_uring rings, cmocka
 *
 * Under AddressSanitizer (the Debug build) every heap byte costs more: a
 * redzone per allocation, 1/8 more for shadow memory, and freed memory
 * waits in a quarantine before reuse (256 MiB by default; set to 8 MiB
 * below through __asan_default_options, the hook ASan documents for
 * this). So under ASan the bound is 1.5 x the heap terms + the quarantine
 * + a larger slack, and the data size grows with the bound so that it stays
 * a small fraction of the data.
 *
 * Under ThreadSanitizer the peak is reported but not checked.
 *
 * The peak is VmHWM from /proc/self/status, reset at the start by writing
 * "5" to /proc/self/clear_refs; where that is refused, the test measures
 * the growth of VmHWM over the value at its start.
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
#include <time.h>

#include <cmocka.h>

#include "kv.h"
#include "persist_util.h"

#if KVT_UNDER_ASAN
/* ASan reads its defaults from this weak hook; ASAN_OPTIONS still wins. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=8:thread_local_quarantine_size_kb=256";
}
#define ASAN_QUARANTINE (8u << 20)
#endif

#define MiB (1024.0 * 1024.0)
#define VAL_MIN 1000u
#define VAL_SPREAD 2000u /* values of 1000..2999 bytes */

static int setup(void **state)
{
	struct kvp_store *s = calloc(1, sizeof(*s));

	if (!s || kvp_store_init(s, "bigdata", 0)) {
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

/* A field of /proc/self/status in bytes, or 0. */
static uint64_t proc_status(const char *field)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(field);
	uint64_t kb = 0;

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (!strncmp(line, field, n) && line[n] == ':') {
			kb = strtoull(line + n + 1, NULL, 10);
			break;
		}
	fclose(fp);
	return kb * 1024;
}

/* Reset the peak to the current RSS; 0 if the kernel allows it. */
static int reset_peak(void)
{
	FILE *fp = fopen("/proc/self/clear_refs", "w");
	int ok;

	if (!fp)
		return -1;
	ok = fputs("5", fp) >= 0;
	ok &= fclose(fp) == 0;
	return ok ? 0 : -1;
}

static size_t key_of(uint32_t i, char *key)
{
	return (size_t)sprintf(key, "b%010u", i);
}

static size_t val_of(uint32_t i, unsigned ver, uint8_t *buf)
{
	uint64_t h = kvp_mix(((uint64_t)i << 8) | ver);

	return kvp_value(buf, VAL_MIN + h % VAL_SPREAD, h, "%u.%u:", i, ver);
}

/* The version of key @i after the writes: every 8th key was rewritten. */
static unsigned ver_of(uint32_t i)
{
	return i % 8 == 3;
}

struct bound {
	double mem, index, cache, tables, building, quarantine, slack, scale, total;
};

static void rss_bound(const struct kv_options *o, double data, struct bound *b)
{
	b->mem = (double)o->log_buffer_size * (1 + o->max_immutable);
	b->index = b->mem / 4;
	b->cache = (double)o->block_cache_size;
	b->tables = data / 64;
	b->building = 2.0 * (double)o->table_target_size;
#if KVT_UNDER_ASAN
	b->scale = 1.5;
	b->quarantine = ASAN_QUARANTINE;
	b->slack = 32 * MiB;
#else
	b->scale = 1.0;
	b->quarantine = 0;
	b->slack = 12 * MiB;
#endif
	b->total = b->scale * (b->mem + b->index + b->cache + b->tables + b->building) +
		   b->quarantine + b->slack;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bigdata(void **state)
{
	struct kvp_store *f = *state;
	struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	struct kv_stats st;
	struct bound b;
	uint64_t rs = kvt_seed("test_bigdata");
	uint64_t rss0, hwm0, peak_write, peak_read, written = 0, user = 0;
	uint8_t *val = malloc(VAL_MIN + VAL_SPREAD), *got = malloc(VAL_MIN + VAL_SPREAD);
	double data, t0, tw, tr;
	uint32_t n, step;
	int reset;
	struct kv_iter *it;
	uint32_t scanned = 0;
	uint64_t hits0, misses0;

	f->opt.log_buffer_size = 1 << 20;
	f->opt.max_immutable = 2;
	f->opt.block_cache_size = 1 << 20;
	f->opt.table_target_size = 2 << 20;
	f->opt.manual_background = 0;

	/* The data: at least 8x memtables + cache, and 4x the bound. */
	rss_bound(&f->opt, 0, &b);
	data = 4 * b.total / (1 - 4 * b.scale / 64); /* the index term grows with it */
	if (data < 8 * (b.mem + b.cache))
		data = 8 * (b.mem + b.cache);
	data *= kvt_scale();
	rss_bound(&f->opt, data, &b);
	n = (uint32_t)(data / (VAL_MIN + VAL_SPREAD / 2 + 11));
	/* Keys in a scrambled order, so that every table overlaps others. */
	step = 2654435761u % n;
	while (step % 2 == 0 || n % step == 0)
		step++;

	kvp_open(f);
	rss0 = proc_status("VmRSS");
	reset = reset_peak();
	hwm0 = reset == 0 ? rss0 : proc_status("VmHWM");
	print_message("[ INFO     ] %u keys, ~%.0f MiB; RSS at start %.1f MiB; VmHWM %s\n", n,
		      data / MiB, (double)rss0 / MiB,
		      reset == 0 ? "reset through clear_refs" : "not resettable: using growth");
	print_message("[ INFO     ] bound %.1f MiB = %.2f x (memtables %.1f + index %.1f + cache "
		      "%.1f + tables %.1f + building %.1f) + quarantine %.1f + slack %.1f\n",
		      b.total / MiB, b.scale, b.mem / MiB, b.index / MiB, b.cache / MiB,
		      b.tables / MiB, b.building / MiB, b.quarantine / MiB, b.slack / MiB);

	t0 = now();
	for (uint32_t i = 0, k = 0; i < n; i++, k = (uint32_t)(((uint64_t)k + step) % n)) {
		char key[16];
		size_t klen = key_of(k, key), vlen = val_of(k, 0, val);
		int err = kv_put(f->db, &wo, key, klen, val, vlen);

		if (err)
			fail_msg("put %u: %d (%s); log:\n%s", i, err, strerror(-err), f->log.text);
		written += vlen;
		user += klen + vlen;
	}
	/* Rewrite every 8th key, so compaction has versions to drop. */
	for (uint32_t k = 3; k < n; k += 8) {
		char key[16];
		size_t klen = key_of(k, key), vlen = val_of(k, 1, val);

		assert_int_equal(kv_put(f->db, &wo, key, klen, val, vlen), 0);
		user += klen + vlen;
	}
	assert_int_equal(kv_sync(f->db), 0);
	tw = now() - t0;
	peak_write = proc_status("VmHWM");
	kvp_stats(f, &st);
	print_message("[ INFO     ] wrote %.1f MiB of values (%.1f MiB with keys and rewrites) in "
		      "%.1f s; peak RSS %.1f MiB; %" PRIu64 " flushes, %" PRIu64 " compactions, "
		      "%" PRIu64 " stalls (%.0f ms), write amp %.2f\n",
		      (double)written / MiB, (double)user / MiB, tw, (double)peak_write / MiB,
		      st.flushes, st.compactions, st.stalls, (double)st.stall_ns / 1e6,
		      st.write_amp);
	assert_true(st.flushes >= user / f->opt.log_buffer_size / 2);
	assert_true(st.compactions > 0);

	/* Random gets, then a full scan. */
	hits0 = st.cache_hits;
	misses0 = st.cache_misses;
	t0 = now();
	for (uint32_t r = 0; r < n / 4; r++) {
		uint32_t k = (uint32_t)(kvt_rand(&rs) % n);
		char key[16];
		size_t klen = key_of(k, key), vlen = val_of(k, ver_of(k), val);
		ssize_t g = kv_get(f->db, 0, key, klen, got, VAL_MIN + VAL_SPREAD);

		if (g != (ssize_t)vlen || memcmp(got, val, vlen))
			fail_msg("get %s: %zd, want %zu bytes of version %u", key, g, vlen,
				 ver_of(k));
	}
	assert_int_equal(kvp_iter_open(f->db, NULL, &it), 0);
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it), scanned++) {
		size_t kl, vl, wl;
		const char *k = kv_iter_key(it, &kl);
		const void *v = kv_iter_value(it, &vl);
		char want[16];

		if (scanned >= n)
			fail_msg("scan: more than %u keys", n);
		key_of(scanned, want);
		if (kl != 11 || memcmp(k, want, 11))
			fail_msg("scan: key %u is %.*s, want %s", scanned, (int)kl, k, want);
		wl = val_of(scanned, ver_of(scanned), val);
		if (vl != wl || memcmp(v, val, wl))
			fail_msg("scan: %s has %zu bytes, want %zu", want, vl, wl);
	}
	assert_int_equal(kv_iter_status(it), 0);
	kvp_iter_close(it);
	assert_int_equal(scanned, n);
	tr = now() - t0;
	peak_read = proc_status("VmHWM");
	kvp_stats(f, &st);
	{
		uint64_t tb = kvp_table_bytes(&st);
		char shape[200];
		int o = 0;

		for (int l = 0; l < KV_MAX_LEVELS; l++)
			o += snprintf(shape + o, sizeof(shape) - (size_t)o,
				      " L%d %" PRIu64 "/%.1fM", l, st.level_tables[l],
				      (double)st.level_bytes[l] / MiB);
		print_message("[ INFO     ] read back (%u gets, a scan) in %.1f s; peak RSS %.1f "
			      "MiB; cache while reading: %" PRIu64 " hits %" PRIu64 " misses, "
			      "%.1f MiB; tables:%s (%.1f MiB)\n",
			      n / 4, tr, (double)peak_read / MiB, st.cache_hits - hits0,
			      st.cache_misses - misses0, (double)st.cache_bytes / MiB, shape,
			      (double)tb / MiB);
		print_message("[ INFO     ] data %.1f MiB, space amplification %.3f, write "
			      "amplification %.2f\n",
			      (double)written / MiB, st.space_amp, st.write_amp);
		assert_true(st.space_amp >= 1.0);
		assert_true(tb >= written / 2); /* the data is in the tables */
	}
	assert_true(st.cache_bytes <= f->opt.block_cache_size);

	{
		double grown = (double)(peak_read - hwm0);

		print_message(
			"[ INFO     ] peak RSS growth %.1f MiB, bound %.1f MiB, data %.1f MiB\n",
			grown / MiB, b.total / MiB, (double)written / MiB);
#if KVT_UNDER_TSAN
		/* ThreadSanitizer's shadow (several bytes per byte) has no
		 * useful bound here: report only. */
		print_message("[ INFO     ] under ThreadSanitizer: the bound is not checked\n");
		grown = 0;
#endif
		if (grown > b.total)
			fail_msg("peak RSS grew by %.1f MiB (writing: %.1f MiB), over the bound of "
				 "%.1f MiB for %.1f MiB of data",
				 grown / MiB, (double)(peak_write - hwm0) / MiB, b.total / MiB,
				 (double)written / MiB);
		assert_true(b.total < (double)written / 3);
	}
	kvp_close(f);
	free(val);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bigdata, setup, kvp_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
