/* SPDX-License-Identifier: MIT */
/*
 * kvbench_report.c - what kvbench makes of its measurements: the latency
 * histogram's percentiles, the tables on stdout, the ratios the project
 * reports and the JSON file (--json). See kvbench.c and kvbench_persist.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CMake passes it too */
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "kv.h"
#include "kvbench.h"

/* ---- latency histogram --------------------------------------------------- */

void hist_merge(struct hist *to, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		to->b[i] += from->b[i];
	to->count += from->count;
	to->sum += from->sum;
	if (from->max > to->max)
		to->max = from->max;
}

/* The @p quantile (0 < p <= 1) in ns: the middle of its bucket. */
double hist_pct(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;
	unsigned i;

	if (!h->count)
		return 0;
	rank = (uint64_t)(p * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			break;
	}
	if (i < 2 * HIST_SUB)
		return i;
	unsigned shift = i / HIST_SUB - 1;
	double low = (double)((uint64_t)(i - HIST_SUB * shift) << shift);
	double mid = low + (double)((uint64_t)1 << shift) / 2;

	return mid > (double)h->max ? (double)h->max : mid;
}

double hist_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0;
}

static double ns_to_us(double ns)
{
	return ns / 1000.0;
}

/* ---- tables ------------------------------------------------------------------ */

void disk_print(const struct bench_cfg *c, const struct disk_result *r)
{
	printf("\n== disk: 4 KiB pwrite + fdatasync in place, %" PRIu64
	       "-byte preallocated file in %s\n",
	       r->file_bytes, c->dir);
	printf("%10s %10s %10s %10s %10s %12s\n", "ops", "p50 us", "p99 us", "mean us", "max us",
	       "syncs/s");
	printf("%10" PRIu64 " %10.1f %10.1f %10.1f %10.1f %12.0f\n", r->ops,
	       ns_to_us(hist_pct(r->lat, 0.50)), ns_to_us(hist_pct(r->lat, 0.99)),
	       ns_to_us(hist_mean(r->lat)), ns_to_us((double)r->lat->max),
	       r->seconds > 0 ? (double)r->ops / r->seconds : 0);
}

void commit_print_head(const struct bench_cfg *c)
{
	printf("\n== commit: kv_put of %zu-byte values, random keys of %" PRIu64
	       ", %.1f s per run, stores kvbench-%ld-commit-* in %s\n",
	       c->value_size, c->keys, c->commit_seconds, (long)getpid(), c->dir);
	printf("%-13s %4s %12s %10s %10s %9s %10s %8s\n", "mode", "thr", "durable/s", "p50 us",
	       "p99 us", "commits", "ops/commit", "live %");
}

void commit_print(const struct commit_result *r)
{
	char commits[32] = "-", group[32] = "-", live[32] = "-";
	const struct kv_stats *st = &r->st;

	if (r->have_stats) {
		snprintf(commits, sizeof(commits), "%" PRIu64, st->commits);
		if (st->commits)
			snprintf(group, sizeof(group), "%.1f",
				 (double)st->records / (double)st->commits);
		if (st->log_buffer_bytes)
			snprintf(live, sizeof(live), "%.1f",
				 100.0 * (double)st->log_buffer_live_bytes /
					 (double)st->log_buffer_bytes);
	}
	printf("%-13s %4u %12.0f %10.1f %10.1f %9s %10s %8s", kv_durability_name(r->mode),
	       r->threads, r->seconds > 0 ? (double)r->ops / r->seconds : 0,
	       ns_to_us(hist_pct(r->lat, 0.50)), ns_to_us(hist_pct(r->lat, 0.99)), commits, group,
	       live);
	if (r->err)
		printf("  error: %s", strerror(-r->err));
	putchar('\n');
	fflush(stdout);
}

/* Fewer reads than this in a phase: the reader was starved, say so. */
#define HOT_MIN_READS 1000u

void hot_print(const struct hot_result *r)
{
	printf("%-13s %7u %10" PRIu64 " %12.0f %10.2f %10.2f %10.2f %10.0f",
	       kv_durability_name(r->mode), r->writers, r->reads,
	       r->seconds > 0 ? (double)r->reads / r->seconds : 0, ns_to_us(hist_pct(r->lat, 0.50)),
	       ns_to_us(hist_pct(r->lat, 0.99)), ns_to_us(hist_pct(r->lat, 0.999)),
	       r->seconds > 0 ? (double)r->writes / r->seconds : 0);
	if (r->err)
		printf("  error: %s", strerror(-r->err));
	putchar('\n');
	/* A read still blocked when the phase ends is timed when it returns. */
	if (r->lat->count < HOT_MIN_READS)
		printf("%-13s only %" PRIu64
		       " read(s) completed in %.1f s: the reader was starved, its "
		       "percentiles are a lower bound\n",
		       "", r->lat->count, r->seconds);
	fflush(stdout);
}

double ratio(double num, double den)
{
	return den > 0 ? num / den : 0;
}

/* ---- persist ------------------------------------------------------------------------ */

#define MIB (1024.0 * 1024.0)

static double per_s(double n, double seconds)
{
	return seconds > 0 ? n / seconds : 0;
}

/* The kv_stats counters a phase moved. */
struct stats_delta {
	uint64_t flushes, compactions, stalls, stall_ns, cache_hits, cache_misses;
};

static void stats_delta(const struct persist_phase *ph, struct stats_delta *d)
{
	d->flushes = ph->after.flushes - ph->before.flushes;
	d->compactions = ph->after.compactions - ph->before.compactions;
	d->stalls = ph->after.stalls - ph->before.stalls;
	d->stall_ns = ph->after.stall_ns - ph->before.stall_ns;
	d->cache_hits = ph->after.cache_hits - ph->before.cache_hits;
	d->cache_misses = ph->after.cache_misses - ph->before.cache_misses;
}

void persist_print_head(const struct bench_cfg *c)
{
	double data = (double)c->keys * (PERSIST_KEY_SIZE + c->value_size);

	printf("\n== persist: %" PRIu64 " keys of %u bytes, %zu-byte values: %.1f MiB = %.1fx the "
	       "%.0f MiB log buffer, %.1fx the %.0f MiB block cache\n",
	       c->keys, PERSIST_KEY_SIZE, c->value_size, data / MIB,
	       data / (double)c->log_buffer_size, (double)c->log_buffer_size / MIB,
	       data / (double)c->block_cache_size, (double)c->block_cache_size / MIB);
	printf("   durability batch, %u reader threads, %.1f s per timed phase, store "
	       "kvbench-%ld-persist in %s\n",
	       c->persist_threads, c->persist_seconds, (long)getpid(), c->dir);
	printf("%-18s %4s %11s %8s %11s %8s %9s %9s %9s\n", "phase", "thr", "ops", "seconds",
	       "ops/s", "MiB/s", "p50 us", "p99 us", "p99.9 us");
}

static void phase_row(const char *name, const struct persist_phase *ph)
{
	printf("%-18s %4u %11" PRIu64 " %8.2f %11.0f %8.1f", name, ph->threads, ph->ops,
	       ph->seconds, per_s((double)ph->ops, ph->seconds),
	       per_s((double)ph->bytes, ph->seconds) / MIB);
	if (ph->lat)
		printf(" %9.1f %9.1f %9.1f", ns_to_us(hist_pct(ph->lat, 0.50)),
		       ns_to_us(hist_pct(ph->lat, 0.99)), ns_to_us(hist_pct(ph->lat, 0.999)));
	else
		printf(" %9s %9s %9s", "-", "-", "-");
	if (ph->errors)
		printf("  %" PRIu64 " errors, the first: %s", ph->errors, strerror(-ph->first_err));
	putchar('\n');
}

/* "flushes 9, compactions 3, stalls 2 (1.23 s)" */
static void print_background(const struct persist_phase *ph)
{
	struct stats_delta d;

	stats_delta(ph, &d);
	printf("flushes %" PRIu64 ", compactions %" PRIu64 ", writer stalls %" PRIu64 " (%.2f s)",
	       d.flushes, d.compactions, d.stalls, (double)d.stall_ns / 1e9);
}

static void print_levels_tables(const struct kv_stats *st)
{
	fputs("tables per level", stdout);
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		if (st->level_tables[l])
			printf(" L%d:%" PRIu64, l, st->level_tables[l]);
}

static void print_cache(const struct persist_phase *ph)
{
	struct stats_delta d;

	stats_delta(ph, &d);
	/* The engine's counters: compactions' reads go through the cache too. */
	printf("block cache hits %.1f%% (%" PRIu64 " hits, %" PRIu64 " misses, with compactions')",
	       100.0 * ratio((double)d.cache_hits, (double)(d.cache_hits + d.cache_misses)),
	       d.cache_hits, d.cache_misses);
}

#define NOTE "%-18s "

void persist_print_fill(const struct bench_cfg *c, const struct persist_result *r)
{
	phase_row("fillrandom", &r->fill);
	printf(NOTE "latency is per kv_write of %u puts; the final kv_sync took %.3f s (in the "
		    "time)\n",
	       "", c->persist_batch, r->fill_sync_seconds);
	printf(NOTE, "");
	print_background(&r->fill);
	fputs("; ", stdout);
	print_levels_tables(&r->fill.after);
	putchar('\n');
	fflush(stdout);
}

void persist_print_readrandom(const struct persist_result *r)
{
	phase_row("readrandom", &r->readrandom);
	printf(NOTE, "");
	print_cache(&r->readrandom);
	printf("; every value checked byte for byte\n");
	fflush(stdout);
}

void persist_print_readseq(const struct bench_cfg *c, const struct persist_result *r)
{
	phase_row("readseq", &r->readseq);
	if (!r->readseq.errors)
		printf(NOTE "one kv_iter: %" PRIu64 " keys = --keys, strictly increasing; ", "",
		       c->keys);
	else
		printf(NOTE "one kv_iter, ended early; ", "");
	print_cache(&r->readseq);
	putchar('\n');
	fflush(stdout);
}

void persist_print_rww(const struct persist_result *r)
{
	phase_row("readwhilewriting", &r->rww_read);
	phase_row("  the writer", &r->rww_write);
	printf(NOTE "the writer: kv_put (durability batch) of random existing keys; kv_sync "
		    "after: %.3f s\n",
	       "", r->rww_sync_seconds);
	printf(NOTE, "");
	print_cache(&r->rww_read);
	fputs("; ", stdout);
	print_background(&r->rww_read);
	putchar('\n');
	fflush(stdout);
}

static void print_dir(const char *when, const struct dir_usage *u, uint64_t live)
{
	printf("%-22s %6" PRIu64 " %9.1f %7" PRIu64 " %9.1f %6" PRIu64 " %9.1f %8.2fx %9.2fx\n",
	       when, u->files, (double)u->bytes / MIB, u->table_files, (double)u->table_bytes / MIB,
	       u->wal_files, (double)u->wal_bytes / MIB, ratio((double)u->bytes, (double)live),
	       ratio((double)u->table_bytes, (double)live));
}

void persist_print_compact(const struct bench_cfg *c, const struct persist_result *r)
{
	const struct kv_stats *st = &r->final;
	int deepest = 0;

	printf("\n== after kv_compact (%.2f s)\n", r->compact_seconds);
	printf("write amplification %6.2f  (WAL %.1f + flushes %.1f + compactions %.1f MiB) / "
	       "%.1f MiB of keys and values written (fill and readwhilewriting)\n",
	       st->write_amp, (double)st->commit_bytes / MIB, (double)st->flush_bytes / MIB,
	       (double)st->compact_write_bytes / MIB, (double)st->user_bytes / MIB);
	printf("space amplification %6.2f  (all table bytes / bytes of the deepest level)\n",
	       st->space_amp);
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		if (st->level_tables[l])
			deepest = l;
	printf("%5s %7s %10s\n", "level", "tables", "MiB");
	for (int l = 0; l <= deepest; l++)
		printf("%5d %7" PRIu64 " %10.1f\n", l, st->level_tables[l],
		       (double)st->level_bytes[l] / MIB);
	printf("live data: %" PRIu64 " keys x %zu bytes = %.1f MiB\n", c->keys,
	       PERSIST_KEY_SIZE + c->value_size, (double)r->live_bytes / MIB);
	printf("%-22s %6s %9s %7s %9s %6s %9s %9s %10s\n", "store directory", "files", "MiB",
	       "tables", "MiB", "WAL", "MiB", "/ live", "tables/live");
	print_dir("as kv_compact left it", &r->compacted, r->live_bytes);
	print_dir("after kv_close", &r->closed, r->live_bytes);
	if (r->compacted.table_bytes > r->closed.table_bytes)
		printf("(tables that compactions replaced are unlinked when their last reference "
		       "goes,\n after a grace period run by a background thread: %.1f MiB were "
		       "still on disk when kv_compact returned)\n",
		       (double)(r->compacted.table_bytes - r->closed.table_bytes) / MIB);
	fflush(stdout);
}

/* ---- the ratios the project reports --------------------------------------------- */

static const struct commit_result *find_commit(const struct results *res, enum kv_durability m,
					       unsigned threads)
{
	for (unsigned i = 0; i < res->ncommit; i++)
		if (res->commit[i].mode == m && res->commit[i].threads == threads)
			return &res->commit[i];
	return NULL;
}

static const struct hot_result *find_hot(const struct results *res, enum kv_durability m,
					 bool loaded)
{
	for (unsigned i = 0; i < res->nhot; i++)
		if (res->hot[i].mode == m && (res->hot[i].writers > 0) == loaded)
			return &res->hot[i];
	return NULL;
}

static double commit_wps(const struct commit_result *r)
{
	return r && r->seconds > 0 ? (double)r->ops / r->seconds : 0;
}

static double hot_p99(const struct hot_result *r)
{
	return r ? hist_pct(r->lat, 0.99) : 0;
}

void ratios_compute(const struct results *res, struct ratios *q)
{
	q->group_vs_fsync = ratio(commit_wps(find_commit(res, KV_DUR_SYNC, 8)),
				  commit_wps(find_commit(res, KV_DUR_FSYNC_PER_OP, 8)));
	q->locked_vs_mvcc = ratio(hot_p99(find_hot(res, KV_DUR_LOCKED, true)),
				  hot_p99(find_hot(res, KV_DUR_SYNC, true)));
	q->mvcc_loaded = ratio(hot_p99(find_hot(res, KV_DUR_SYNC, true)),
			       hot_p99(find_hot(res, KV_DUR_SYNC, false)));
}

static void print_ratio(const char *what, double v)
{
	if (v > 0)
		printf("  %-62s %8.2fx\n", what, v);
	else
		printf("  %-62s %9s\n", what, "n/a");
}

void ratios_print(const struct bench_cfg *c, const struct ratios *q)
{
	char buf[128];

	printf("\n== ratios\n");
	print_ratio("durable writes/s, group commit (sync) / fsync-per-op, 8 threads",
		    q->group_vs_fsync);
	snprintf(buf, sizeof(buf), "read p99 under %u writers, locked / MVCC (sync)", c->writers);
	print_ratio(buf, q->locked_vs_mvcc);
	snprintf(buf, sizeof(buf), "MVCC (sync) read p99, %u writers / no writer", c->writers);
	print_ratio(buf, q->mvcc_loaded);
}

/* ---- JSON ------------------------------------------------------------------------ */

void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void json_hist(FILE *f, const struct hist *h)
{
	fprintf(f,
		"{\"count\": %" PRIu64 ", \"mean_us\": %.3f, \"p50_us\": %.3f, "
		"\"p90_us\": %.3f, \"p99_us\": %.3f, \"p999_us\": %.3f, \"max_us\": %.3f}",
		h->count, ns_to_us(hist_mean(h)), ns_to_us(hist_pct(h, 0.50)),
		ns_to_us(hist_pct(h, 0.90)), ns_to_us(hist_pct(h, 0.99)),
		ns_to_us(hist_pct(h, 0.999)), ns_to_us((double)h->max));
}

static void json_modes(FILE *f, const enum kv_durability *m, unsigned n)
{
	fputc('[', f);
	for (unsigned i = 0; i < n; i++) {
		fputs(i ? ", " : "", f);
		json_str(f, kv_durability_name(m[i]));
	}
	fputc(']', f);
}

static const char *cmd_name(enum cmd cmd)
{
	switch (cmd) {
	case CMD_DISK:
		return "disk";
	case CMD_COMMIT:
		return "commit";
	case CMD_HOTREAD:
		return "hotread";
	case CMD_ALL:
		return "all";
	case CMD_PERSIST:
		return "persist";
	}
	return "?";
}

void json_machine(FILE *f)
{
	struct utsname u;
	char host[256] = "";

	uname(&u);
	gethostname(host, sizeof(host) - 1);
	fputs("  \"host\": ", f);
	json_str(f, host);
	fprintf(f, ",\n  \"kernel\": ");
	json_str(f, u.release);
	fprintf(f, ",\n  \"cpus\": %ld,\n", sysconf(_SC_NPROCESSORS_ONLN));
}

static void json_params(FILE *f, const struct bench_cfg *c)
{
	struct kv_options def;

	kv_options_init(&def);
	fprintf(f, "  \"command\": \"%s\",\n", cmd_name(c->cmd));
	json_machine(f);
	fprintf(f, "  \"params\": {\"dir\": ");
	json_str(f, c->dir);
	fprintf(f, ", \"keep\": %s, \"disk_ops\": %" PRIu64 ", \"threads\": [",
		c->keep ? "true" : "false", c->disk_ops);
	for (unsigned i = 0; i < c->nthreads; i++)
		fprintf(f, "%s%u", i ? ", " : "", c->threads[i]);
	fputs("], \"commit_modes\": ", f);
	json_modes(f, c->commit_modes, c->ncommit_modes);
	fputs(", \"hot_modes\": ", f);
	json_modes(f, c->hot_modes, c->nhot_modes);
	fprintf(f,
		", \"commit_seconds\": %.3f, \"hot_seconds\": %.3f, \"value_size\": %zu, "
		"\"keys\": %" PRIu64 ", \"writers\": %u, \"log_buffer_size\": %zu},\n",
		c->commit_seconds, c->hot_seconds, c->value_size, c->keys, c->writers,
		c->log_buffer_size ? c->log_buffer_size : def.log_buffer_size);
}

static void json_commit(FILE *f, const struct commit_result *r)
{
	fprintf(f,
		"    {\"mode\": \"%s\", \"threads\": %u, \"error\": %d, \"ops\": %" PRIu64
		", \"seconds\": %.6f, \"final_sync_seconds\": %.6f, "
		"\"durable_writes_per_s\": %.1f, \"put_latency\": ",
		kv_durability_name(r->mode), r->threads, r->err, r->ops, r->seconds,
		r->sync_seconds, commit_wps(r));
	json_hist(f, r->lat);
	if (r->have_stats)
		fprintf(f,
			", \"stats\": {\"records\": %" PRIu64 ", \"commits\": %" PRIu64
			", \"commit_bytes\": %" PRIu64 ", \"versions_replaced\": %" PRIu64
			", \"log_buffer_bytes\": %" PRIu64 ", \"log_buffer_live_bytes\": %" PRIu64
			", \"memtables\": %" PRIu64 ", \"wal_segments\": %" PRIu64 "}",
			r->st.records, r->st.commits, r->st.commit_bytes, r->st.versions_replaced,
			r->st.log_buffer_bytes, r->st.log_buffer_live_bytes, r->st.memtables,
			r->st.wal_segments);
	fputc('}', f);
}

static void json_hot(FILE *f, const struct hot_result *r)
{
	fprintf(f,
		"    {\"mode\": \"%s\", \"writers\": %u, \"error\": %d, \"seconds\": %.6f, "
		"\"reads\": %" PRIu64 ", \"writes\": %" PRIu64 ", \"read_latency\": ",
		kv_durability_name(r->mode), r->writers, r->err, r->seconds, r->reads, r->writes);
	json_hist(f, r->lat);
	fputc('}', f);
}

static void json_u64s(FILE *f, const char *name, const uint64_t *v, int n)
{
	fprintf(f, "\"%s\": [", name);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%" PRIu64, i ? ", " : "", v[i]);
	fputc(']', f);
}

/* Every field of struct kv_stats. */
void json_stats(FILE *f, const struct kv_stats *st)
{
	fprintf(f,
		"{\"appended_lsn\": %" PRIu64 ", \"durable_lsn\": %" PRIu64
		", \"records\": %" PRIu64 ", \"commits\": %" PRIu64 ", \"commit_bytes\": %" PRIu64
		", \"versions_replaced\": %" PRIu64 ", \"versions_superseded\": %" PRIu64
		", \"log_buffer_bytes\": %" PRIu64 ", \"log_buffer_live_bytes\": %" PRIu64
		", \"memtables\": %" PRIu64 ", \"wal_segments\": %" PRIu64 ", \"failed\": %d, ",
		st->appended_lsn, st->durable_lsn, st->records, st->commits, st->commit_bytes,
		st->versions_replaced, st->versions_superseded, st->log_buffer_bytes,
		st->log_buffer_live_bytes, st->memtables, st->wal_segments, st->failed);
	json_u64s(f, "level_tables", st->level_tables, KV_MAX_LEVELS);
	fputs(", ", f);
	json_u64s(f, "level_bytes", st->level_bytes, KV_MAX_LEVELS);
	fprintf(f,
		", \"flushes\": %" PRIu64 ", \"flush_bytes\": %" PRIu64
		", \"compactions\": %" PRIu64 ", \"compact_read_bytes\": %" PRIu64
		", \"compact_write_bytes\": %" PRIu64 ", \"user_bytes\": %" PRIu64
		", \"write_amp\": %.4f, \"space_amp\": %.4f, \"stalls\": %" PRIu64
		", \"stall_ns\": %" PRIu64 ", \"cache_hits\": %" PRIu64
		", \"cache_misses\": %" PRIu64 ", \"cache_bytes\": %" PRIu64
		", \"snapshots\": %" PRIu64
		", \"bg_error\": %d, \"versions_replaced_total\": %" PRIu64
		", \"versions_superseded_total\": %" PRIu64 "}",
		st->flushes, st->flush_bytes, st->compactions, st->compact_read_bytes,
		st->compact_write_bytes, st->user_bytes, st->write_amp, st->space_amp, st->stalls,
		st->stall_ns, st->cache_hits, st->cache_misses, st->cache_bytes, st->snapshots,
		st->bg_error, st->versions_replaced_total, st->versions_superseded_total);
}

static void json_phase(FILE *f, const struct persist_phase *ph)
{
	struct stats_delta d;

	stats_delta(ph, &d);
	fprintf(f,
		"{\"threads\": %u, \"ops\": %" PRIu64 ", \"bytes\": %" PRIu64
		", \"seconds\": %.6f, \"ops_per_s\": %.1f, \"mib_per_s\": %.3f, \"errors\": %" PRIu64
		", \"first_error\": %d, \"latency\": ",
		ph->threads, ph->ops, ph->bytes, ph->seconds, per_s((double)ph->ops, ph->seconds),
		per_s((double)ph->bytes, ph->seconds) / MIB, ph->errors, ph->first_err);
	if (ph->lat)
		json_hist(f, ph->lat);
	else
		fputs("null", f);
	fprintf(f,
		",\n       \"delta\": {\"flushes\": %" PRIu64 ", \"compactions\": %" PRIu64
		", \"stalls\": %" PRIu64 ", \"stall_ns\": %" PRIu64 ", \"cache_hits\": %" PRIu64
		", \"cache_misses\": %" PRIu64 "},\n       \"stats_after\": ",
		d.flushes, d.compactions, d.stalls, d.stall_ns, d.cache_hits, d.cache_misses);
	json_stats(f, &ph->after);
	fputc('}', f);
}

static void json_dir(FILE *f, const struct dir_usage *u, uint64_t live)
{
	fprintf(f,
		"{\"files\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"table_files\": %" PRIu64
		", \"table_bytes\": %" PRIu64 ", \"wal_files\": %" PRIu64
		", \"wal_bytes\": %" PRIu64
		", \"bytes_vs_live\": %.4f, \"table_bytes_vs_live\": %.4f}",
		u->files, u->bytes, u->table_files, u->table_bytes, u->wal_files, u->wal_bytes,
		ratio((double)u->bytes, (double)live), ratio((double)u->table_bytes, (double)live));
}

static void json_persist(FILE *f, const struct bench_cfg *c, const struct persist_result *r)
{
	fprintf(f,
		"  \"persist\": {\n    \"params\": {\"keys\": %" PRIu64
		", \"key_size\": %u, \"value_size\": %zu, \"threads\": %u, \"seconds\": %.3f, "
		"\"log_buffer_size\": %zu, \"block_cache_size\": %zu, \"durability\": \"batch\", "
		"\"fill_batch_ops\": %u},\n",
		c->keys, PERSIST_KEY_SIZE, c->value_size, c->persist_threads, c->persist_seconds,
		c->log_buffer_size, c->block_cache_size, c->persist_batch);
	fputs("    \"stats_at_open\": ", f);
	json_stats(f, &r->fill.before);
	fputs(",\n    \"fillrandom\": ", f);
	json_phase(f, &r->fill);
	fprintf(f, ",\n    \"fillrandom_final_sync_seconds\": %.6f", r->fill_sync_seconds);
	fputs(",\n    \"readrandom\": ", f);
	json_phase(f, &r->readrandom);
	fputs(",\n    \"readseq\": ", f);
	json_phase(f, &r->readseq);
	fputs(",\n    \"readwhilewriting_reads\": ", f);
	json_phase(f, &r->rww_read);
	fputs(",\n    \"readwhilewriting_writes\": ", f);
	json_phase(f, &r->rww_write);
	fprintf(f,
		",\n    \"readwhilewriting_sync_seconds\": %.6f,\n"
		"    \"compact\": {\"seconds\": %.6f, \"write_amp\": %.4f, \"space_amp\": %.4f, "
		"\"live_bytes\": %" PRIu64 ",\n      \"dir_as_compacted\": ",
		r->rww_sync_seconds, r->compact_seconds, r->final.write_amp, r->final.space_amp,
		r->live_bytes);
	json_dir(f, &r->compacted, r->live_bytes);
	fputs(",\n      \"dir_after_close\": ", f);
	json_dir(f, &r->closed, r->live_bytes);
	fputs(",\n      \"stats\": ", f);
	json_stats(f, &r->final);
	fputs("}\n  },\n", f);
}

static void json_results(FILE *f, const struct bench_cfg *c, const struct results *res,
			 const struct ratios *q)
{
	if (res->disk.done) {
		fprintf(f,
			"  \"disk\": {\"ops\": %" PRIu64 ", \"file_bytes\": %" PRIu64
			", \"seconds\": %.6f, \"latency\": ",
			res->disk.ops, res->disk.file_bytes, res->disk.seconds);
		json_hist(f, res->disk.lat);
		fputs("},\n", f);
	}
	fputs("  \"commit\": [\n", f);
	for (unsigned i = 0; i < res->ncommit; i++) {
		json_commit(f, &res->commit[i]);
		fputs(i + 1 < res->ncommit ? ",\n" : "\n", f);
	}
	fputs("  ],\n  \"hotread\": [\n", f);
	for (unsigned i = 0; i < res->nhot; i++) {
		json_hot(f, &res->hot[i]);
		fputs(i + 1 < res->nhot ? ",\n" : "\n", f);
	}
	fputs("  ],\n", f);
	if (res->persist)
		json_persist(f, c, res->persist);
	fprintf(f,
		"  \"ratios\": {\"group_commit_vs_fsync_per_op_8_threads\": %.4f, "
		"\"locked_vs_mvcc_read_p99\": %.4f, \"mvcc_read_p99_loaded_vs_idle\": %.4f}\n",
		q->group_vs_fsync, q->locked_vs_mvcc, q->mvcc_loaded);
}

void json_write(const struct bench_cfg *c, const struct results *res, const struct ratios *q)
{
	FILE *f = fopen(c->json, "w");

	if (!f)
		die("open %s: %s", c->json, strerror(errno));
	fprintf(f, "{\n  \"tool\": \"kvbench\",\n  \"format\": 1,\n");
	json_params(f, c);
	json_results(f, c, res, q);
	fputs("}\n", f);
	if (fclose(f))
		die("write %s: %s", c->json, strerror(errno));
	printf("\nresults written to %s\n", c->json);
}

void results_free(struct results *res)
{
	for (unsigned i = 0; i < res->ncommit; i++)
		free(res->commit[i].lat);
	for (unsigned i = 0; i < res->nhot; i++)
		free(res->hot[i].lat);
	free(res->commit);
	free(res->hot);
	free(res->disk.lat);
	if (res->persist) {
		free(res->persist->fill.lat);
		free(res->persist->readrandom.lat);
		free(res->persist->readseq.lat);
		free(res->persist->rww_read.lat);
		free(res->persist->rww_write.lat);
		free(res->persist);
	}
}
