/* SPDX-License-Identifier: MIT */
/*
 * kvbench_report.c - what kvbench makes of its measurements: the latency
 * histogram's percentiles, the tables on stdout, the ratios the project
 * reports and the JSON file (--json). See kvbench.c.
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

static void json_str(FILE *f, const char *s)
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

static void json_hist(FILE *f, const struct hist *h)
{
	fprintf(f,
		"{\"count\": %" PRIu64 ", \"mean_us\": %.3f, \"p50_us\": %.3f, "
		"\"p99_us\": %.3f, \"p999_us\": %.3f, \"max_us\": %.3f}",
		h->count, ns_to_us(hist_mean(h)), ns_to_us(hist_pct(h, 0.50)),
		ns_to_us(hist_pct(h, 0.99)), ns_to_us(hist_pct(h, 0.999)),
		ns_to_us((double)h->max));
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

static void json_params(FILE *f, const struct bench_cfg *c)
{
	static const char *const names[] = {
		"", "disk", "commit", "", "hotread", "", "", "", "all"
	};
	struct kv_options def;
	struct utsname u;
	char host[256] = "";

	kv_options_init(&def);
	uname(&u);
	gethostname(host, sizeof(host) - 1);
	fprintf(f, "  \"command\": \"%s\",\n  \"host\": ", names[c->cmd]);
	json_str(f, host);
	fprintf(f, ",\n  \"kernel\": ");
	json_str(f, u.release);
	fprintf(f, ",\n  \"cpus\": %ld,\n  \"params\": {\"dir\": ", sysconf(_SC_NPROCESSORS_ONLN));
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

static void json_results(FILE *f, const struct results *res, const struct ratios *q)
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
	fprintf(f,
		"  ],\n  \"ratios\": {\"group_commit_vs_fsync_per_op_8_threads\": %.4f, "
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
	json_results(f, res, q);
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
}
