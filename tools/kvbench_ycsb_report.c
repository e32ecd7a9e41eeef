/* SPDX-License-Identifier: MIT */
/*
 * kvbench_ycsb_report.c - the reports of kvbench ycsb: a table row per run
 * and operation as it ends, a summary (throughput per workload and backend,
 * libkv's ratios to the others, libkv's read p99 under writes against without
 * them), the JSON file (--json: every parameter, every result) and the CSV
 * file (--csv: one row per run and operation, what the plot scripts read).
 * The histogram, its percentiles and the JSON pieces are kvbench_report.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kvbench_ycsb.h"

#define MIB (1024.0 * 1024.0)

static double us(double ns)
{
	return ns / 1000.0;
}

static const char *phase_name(const struct ycsb_result *r, char *buf)
{
	if (r->workload == 'L')
		return "load";
	buf[0] = r->workload;
	buf[1] = '\0';
	return buf;
}

void ycsb_print_head(const struct ycsb_cfg *c)
{
	printf("== ycsb: %" PRIu64 " records of %u fields x %u bytes, load by %s (%u threads), "
	       "runs of ",
	       c->records, c->fields, c->field_length,
	       c->load == YCSB_LOAD_BATCH ? "batches" : "single inserts", c->load_threads);
	if (c->ops)
		printf("%" PRIu64 " ops", c->ops);
	else
		printf("%.1f s", c->seconds);
	printf(", seed %" PRIu64 ", stores kvbench-%ld-ycsb-* in %s\n", c->seed, (long)getpid(),
	       c->dir);
	printf("%-8s %-12s %3s %-4s %-12s %10s  %-6s %9s %8s %8s %8s %9s %9s\n", "backend",
	       "durability", "thr", "wl", "distribution", "ops/s", "op", "count", "p50 us",
	       "p90 us", "p99 us", "p99.9 us", "max us");
}

/* For libkv: the log buffer's use at the end of the run (design note, 3). */
static void print_log_buffer(const struct ycsb_result *r)
{
	const struct kv_stats *a = &r->after, *b = &r->before;
	uint64_t dead = a->log_buffer_bytes - a->log_buffer_live_bytes;
	uint64_t commits = a->commits - b->commits, records = a->records - b->records;

	printf("%47s log buffer %.1f MiB in %" PRIu64 " memtable(s): live %.1f MiB (%.1f%%), "
	       "dead %.1f MiB; versions replaced in place %" PRIu64 ", superseded %" PRIu64
	       "; %" PRIu64 " commits, %.1f records each\n",
	       "", (double)a->log_buffer_bytes / MIB, a->memtables,
	       (double)a->log_buffer_live_bytes / MIB,
	       100.0 * ratio((double)a->log_buffer_live_bytes, (double)a->log_buffer_bytes),
	       (double)dead / MIB, a->versions_replaced_total - b->versions_replaced_total,
	       a->versions_superseded_total - b->versions_superseded_total, commits,
	       ratio((double)records, (double)commits));
}

void ycsb_print_result(const struct ycsb_result *r)
{
	char wl[2];
	bool first = true;

	for (int op = 0; op < YCSB_NOPS; op++) {
		const struct hist *h = r->lat[op];

		if (!h)
			continue;
		if (first)
			printf("%-8s %-12s %3u %-4s %-12s %10.0f  ", ycsb_backend_name(r->backend),
			       kv_durability_name(r->mode), r->threads, phase_name(r, wl),
			       r->workload == 'L' ? "-" : ycsb_dist_name(r->dist), ycsb_tput(r));
		else
			printf("%47s", "");
		printf("%-6s %9" PRIu64 " %8.1f %8.1f %8.1f %9.1f %9.1f\n",
		       r->workload == 'L' && h->count != r->ops ? "batch" : ycsb_op_name(op),
		       h->count, us(hist_pct(h, 0.5)), us(hist_pct(h, 0.9)), us(hist_pct(h, 0.99)),
		       us(hist_pct(h, 0.999)), us((double)h->max));
		first = false;
		if (r->errors[op] || r->not_found[op])
			printf("%47s %" PRIu64 " failed, %" PRIu64 " not found\n", "",
			       r->errors[op], r->not_found[op]);
	}
	if (r->first_err)
		printf("%47s first error: %s\n", "", strerror(-r->first_err));
	if (r->scan_records)
		printf("%47s scans read %" PRIu64 " records (%.1f MiB)\n", "", r->scan_records,
		       (double)r->scan_bytes / MIB);
	if (r->have_stats && r->workload != 'L')
		print_log_buffer(r);
	fflush(stdout);
}

/* ---- summary ----------------------------------------------------------------------- */

static const struct ycsb_result *find(const struct ycsb_result *r, unsigned n, enum ycsb_backend b,
				      enum kv_durability m, unsigned thr, char wl)
{
	for (unsigned i = 0; i < n; i++)
		if (r[i].backend == b && r[i].mode == m && r[i].threads == thr &&
		    r[i].workload == wl)
			return &r[i];
	return NULL;
}

static double read_p99(const struct ycsb_result *r)
{
	return r && r->lat[YCSB_READ] ? hist_pct(r->lat[YCSB_READ], 0.99) : 0;
}

static void summary_table(const struct ycsb_cfg *c, const struct ycsb_result *r, unsigned n,
			  enum kv_durability m, unsigned thr)
{
	const struct ycsb_result *kv, *other;

	printf("\n%s, %u threads: ops/s\n%-10s", kv_durability_name(m), thr, "backend");
	for (unsigned w = 0; w < c->nworkloads; w++)
		printf(" %10c", c->workloads[w]->name);
	putchar('\n');
	for (unsigned b = 0; b < c->nbackends; b++) {
		printf("%-10s", ycsb_backend_name(c->backends[b]));
		for (unsigned w = 0; w < c->nworkloads; w++) {
			other = find(r, n, c->backends[b], m, thr, c->workloads[w]->name);
			if (other)
				printf(" %10.0f", ycsb_tput(other));
			else
				printf(" %10s", "-");
		}
		putchar('\n');
	}
	for (unsigned b = 0; b < c->nbackends; b++) {
		if (c->backends[b] == YCSB_LIBKV ||
		    !find(r, n, c->backends[b], m, thr, c->workloads[0]->name) ||
		    !find(r, n, YCSB_LIBKV, m, thr, c->workloads[0]->name))
			continue;
		printf("libkv/%-4.4s", ycsb_backend_name(c->backends[b]));
		for (unsigned w = 0; w < c->nworkloads; w++) {
			kv = find(r, n, YCSB_LIBKV, m, thr, c->workloads[w]->name);
			other = find(r, n, c->backends[b], m, thr, c->workloads[w]->name);
			printf(" %9.2fx", ratio(ycsb_tput(kv), ycsb_tput(other)));
		}
		putchar('\n');
	}
	kv = find(r, n, YCSB_LIBKV, m, thr, 'A');
	other = find(r, n, YCSB_LIBKV, m, thr, 'C');
	if (kv && other)
		printf("libkv read p99: %.1f us under A's writes, %.1f us in C (no writers): "
		       "%.2fx\n",
		       us(read_p99(kv)), us(read_p99(other)), ratio(read_p99(kv), read_p99(other)));
}

void ycsb_print_summary(const struct ycsb_cfg *c, const struct ycsb_result *r, unsigned n)
{
	printf("\n== summary");
	for (unsigned m = 0; m < c->nmodes; m++)
		for (unsigned t = 0; t < c->nthreads; t++)
			summary_table(c, r, n, c->modes[m], c->threads[t]);
	fflush(stdout);
}

/* ---- JSON ---------------------------------------------------------------------------- */

static void json_list_params(FILE *f, const struct ycsb_cfg *c)
{
	fputs("\"workloads\": [", f);
	for (unsigned i = 0; i < c->nworkloads; i++)
		fprintf(f, "%s\"%c\"", i ? ", " : "", c->workloads[i]->name);
	fputs("], \"backends\": [", f);
	for (unsigned i = 0; i < c->nbackends; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "", ycsb_backend_name(c->backends[i]));
	fputs("], \"durability\": [", f);
	for (unsigned i = 0; i < c->nmodes; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "", kv_durability_name(c->modes[i]));
	fputs("], \"threads\": [", f);
	for (unsigned i = 0; i < c->nthreads; i++)
		fprintf(f, "%s%u", i ? ", " : "", c->threads[i]);
	fputs("]", f);
}

static void json_params(FILE *f, const struct ycsb_cfg *c)
{
	struct kv_options def;

	kv_options_init(&def);
	fputs("  \"params\": {", f);
	json_list_params(f, c);
	fprintf(f,
		", \"distribution\": \"%s\", \"records\": %" PRIu64
		", \"fields\": %u, \"field_length\": %u, \"value_size\": %zu, "
		"\"seconds\": %.3f, \"ops\": %" PRIu64 ", \"load\": \"%s\", "
		"\"load_threads\": %u, \"load_batch_ops\": %u, \"max_scan\": %u, "
		"\"seed\": %" PRIu64 ", \"zipfian_constant\": %.2f, "
		"\"log_buffer_size\": %zu, \"cache_size\": %zu, \"keep\": %s, \"dir\": ",
		c->dist_set ? ycsb_dist_name(c->dist) : "workload", c->records, c->fields,
		c->field_length, c->value_size, c->ops ? 0 : c->seconds, c->ops,
		c->load == YCSB_LOAD_BATCH ? "batch" : "ops", c->load_threads, YCSB_LOAD_BATCH_OPS,
		c->max_scan, c->seed, YCSB_ZIPF_THETA,
		c->log_buffer_size ? c->log_buffer_size : def.log_buffer_size,
		c->cache_size ? c->cache_size : def.block_cache_size, c->keep ? "true" : "false");
	json_str(f, c->dir);
	fputs("},\n", f);
}

static void json_result(FILE *f, const struct ycsb_result *r)
{
	char wl[2];
	bool first = true;

	fprintf(f,
		"    {\"backend\": \"%s\", \"durability\": \"%s\", \"threads\": %u, "
		"\"phase\": \"%s\", \"distribution\": \"%s\", \"records_before\": %" PRIu64
		", \"records_after\": %" PRIu64 ", \"ops\": %" PRIu64 ", \"seconds\": %.6f, "
		"\"ops_per_s\": %.1f, \"first_error\": %d, \"scan_records\": %" PRIu64
		", \"scan_bytes\": %" PRIu64 ",\n     \"latency\": {",
		ycsb_backend_name(r->backend), kv_durability_name(r->mode), r->threads,
		phase_name(r, wl), r->workload == 'L' ? "-" : ycsb_dist_name(r->dist),
		r->records_before, r->records_after, r->ops, r->seconds, ycsb_tput(r), r->first_err,
		r->scan_records, r->scan_bytes);
	for (int op = 0; op < YCSB_NOPS; op++) {
		if (!r->lat[op])
			continue;
		fprintf(f, "%s\"%s\": {\"errors\": %" PRIu64 ", \"not_found\": %" PRIu64 ", ",
			first ? "" : ", ", ycsb_op_name(op), r->errors[op], r->not_found[op]);
		fputs("\"latency\": ", f);
		json_hist(f, r->lat[op]);
		fputc('}', f);
		first = false;
	}
	fputc('}', f);
	if (r->have_stats) {
		fprintf(f,
			",\n     \"log_buffer\": {\"bytes\": %" PRIu64 ", \"live_bytes\": %" PRIu64
			", \"dead_bytes\": %" PRIu64 ", \"versions_replaced\": %" PRIu64
			", \"versions_superseded\": %" PRIu64 "},\n     \"stats_before\": ",
			r->after.log_buffer_bytes, r->after.log_buffer_live_bytes,
			r->after.log_buffer_bytes - r->after.log_buffer_live_bytes,
			r->after.versions_replaced_total - r->before.versions_replaced_total,
			r->after.versions_superseded_total - r->before.versions_superseded_total);
		json_stats(f, &r->before);
		fputs(",\n     \"stats_after\": ", f);
		json_stats(f, &r->after);
	}
	fputc('}', f);
}

void ycsb_write_json(const struct ycsb_cfg *c, const struct ycsb_result *r, unsigned n)
{
	FILE *f = fopen(c->json, "w");

	if (!f)
		die("open %s: %s", c->json, strerror(errno));
	fputs("{\n  \"tool\": \"kvbench\",\n  \"command\": \"ycsb\",\n  \"format\": 1,\n", f);
	json_machine(f);
	json_params(f, c);
	fputs("  \"runs\": [\n", f);
	for (unsigned i = 0; i < n; i++) {
		json_result(f, &r[i]);
		fputs(i + 1 < n ? ",\n" : "\n", f);
	}
	fputs("  ]\n}\n", f);
	if (fclose(f))
		die("write %s: %s", c->json, strerror(errno));
	printf("\nresults written to %s\n", c->json);
}

/* ---- CSV ------------------------------------------------------------------------------ */

void ycsb_write_csv(const struct ycsb_cfg *c, const struct ycsb_result *r, unsigned n)
{
	FILE *f = fopen(c->csv, "w");

	if (!f)
		die("open %s: %s", c->csv, strerror(errno));
	fputs("backend,durability,threads,phase,distribution,records,value_size,seed,"
	      "run_seconds,ops,ops_per_s,op,count,errors,not_found,mean_us,p50_us,p90_us,"
	      "p99_us,p999_us,max_us,lb_bytes,lb_live_bytes,lb_dead_bytes,versions_replaced\n",
	      f);
	for (unsigned i = 0; i < n; i++) {
		const struct ycsb_result *x = &r[i];
		const struct kv_stats *a = &x->after;
		char wl[2];

		for (int op = 0; op < YCSB_NOPS; op++) {
			const struct hist *h = x->lat[op];

			if (!h)
				continue;
			fprintf(f,
				"%s,%s,%u,%s,%s,%" PRIu64 ",%zu,%" PRIu64 ",%.6f,%" PRIu64
				",%.1f,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64
				",%.3f,%.3f,%.3f,%.3f,%.3f,%.3f",
				ycsb_backend_name(x->backend), kv_durability_name(x->mode),
				x->threads, phase_name(x, wl),
				x->workload == 'L' ? "-" : ycsb_dist_name(x->dist), c->records,
				c->value_size, c->seed, x->seconds, x->ops, ycsb_tput(x),
				ycsb_op_name(op), h->count, x->errors[op], x->not_found[op],
				us(hist_mean(h)), us(hist_pct(h, 0.5)), us(hist_pct(h, 0.9)),
				us(hist_pct(h, 0.99)), us(hist_pct(h, 0.999)), us((double)h->max));
			if (x->have_stats)
				fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
					a->log_buffer_bytes, a->log_buffer_live_bytes,
					a->log_buffer_bytes - a->log_buffer_live_bytes,
					a->versions_replaced_total -
						x->before.versions_replaced_total);
			else
				fputs(",,,,\n", f);
		}
	}
	if (fclose(f))
		die("write %s: %s", c->csv, strerror(errno));
	printf("results written to %s\n", c->csv);
}
