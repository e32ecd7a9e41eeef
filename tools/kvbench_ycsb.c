/* SPDX-License-Identifier: MIT */
/*
 * kvbench_ycsb.c - kvbench ycsb: YCSB's core workloads A-F on libkv and,
 * side by side in the same run, on RocksDB and LevelDB (kvbench_backend.h).
 *
 * For each backend and durability mode: a fresh store under --dir
 * (kvbench-PID-ycsb-BACKEND-MODE), the load phase (--records records, keys
 * "user" + fnv64(i) as YCSB's hashed inserts, values of --fields x
 * --field-length bytes), then each workload for each thread count, in the
 * order given, on that store. Every backend gets the same generators with
 * the same seeds (ycsb_gen.h), so the same keys and value bytes.
 *
 * Operations, as YCSB's CoreWorkload with readallfields and a record
 * stored as one value:
 *   read    get, the value checked (its length, and its first bytes name
 *           its record); a missing key is counted, not failed;
 *   update  put of the whole record (a blind overwrite: the stores here
 *           keep a record as one value, so a one-field update is a rewrite);
 *   insert  put of the next record (the acknowledged-insert counter);
 *   scan    up to U(1, --max-scan) records from a chosen key;
 *   rmw     read, then update of the same record; timed as one operation.
 *
 * Latency: clock_gettime around each operation into per-thread histograms
 * (kvbench.h), merged when the run ends. For libkv the engine's counters
 * before and after each run give the log buffer's live and dead bytes and
 * the versions replaced in place (the design note's third point).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvbench.h"
#include "kvbench_backend.h"
#include "kvbench_ycsb.h"

/* What every thread of one phase shares. */
struct yrun {
	const struct ycsb_cfg *cfg;
	const struct kvb_backend *be;
	struct kvb_store *st;
	struct ycsb_counter ctr; /* records: [0, count) exist */
	struct phase ph;
	const struct ycsb_workload *wl; /* NULL in the load phase */
	enum ycsb_dist dist;
	uint64_t space;		/* scrambled zipfian: the key space */
	struct ycsb_zipf proto; /* the chooser's zipfian, prepared once */
	unsigned threads;
};

struct yworker {
	struct yrun *run;
	unsigned id;
	uint64_t quota;	   /* operations to do (UINT64_MAX: until stopped) */
	uint64_t from, to; /* load: the records of this thread */
	uint64_t rng, ver;
	struct ycsb_keygen kg;
	uint8_t *val, *buf;
	uint64_t ops, scan_records, scan_bytes;
	uint64_t errors[YCSB_NOPS], not_found[YCSB_NOPS];
	int first_err;
	struct hist lat[YCSB_NOPS];
};

static void note_err(struct yworker *w, enum ycsb_op op, int err)
{
	if (err == -ENOENT) {
		w->not_found[op]++;
		return;
	}
	w->errors[op]++;
	if (!w->first_err)
		w->first_err = err;
}

/* A get of record @k, its value checked. */
static int do_read(struct yworker *w, uint64_t k)
{
	const struct ycsb_cfg *c = w->run->cfg;
	char key[YCSB_KEY_MAX];
	size_t klen = ycsb_key(key, k);
	ssize_t n = w->run->be->get(w->run->st, key, klen, w->buf, c->value_size + 1);

	if (n < 0)
		return (int)n;
	return ycsb_value_check(w->buf, (size_t)n, c->value_size, k);
}

/* A put of a new version of record @k. */
static int do_write(struct yworker *w, uint64_t k)
{
	const struct ycsb_cfg *c = w->run->cfg;
	char key[YCSB_KEY_MAX];
	size_t klen = ycsb_key(key, k);

	/* Versions differ per thread and write: every put writes new bytes. */
	ycsb_value(w->val, c->value_size, k, ((uint64_t)w->id << 48) | ++w->ver);
	return w->run->be->put(w->run->st, key, klen, w->val, c->value_size);
}

static int do_scan(struct yworker *w)
{
	char key[YCSB_KEY_MAX];
	size_t klen = ycsb_key(key, ycsb_keygen_next(&w->kg));
	unsigned len = 1 + (unsigned)ycsb_rand_below(&w->rng, w->run->cfg->max_scan);
	int n = w->run->be->scan(w->run->st, key, klen, len, &w->scan_bytes);

	if (n < 0)
		return n;
	w->scan_records += (uint64_t)n;
	return 0;
}

static int do_op(struct yworker *w, enum ycsb_op op)
{
	uint64_t k;
	int err;

	switch (op) {
	case YCSB_READ:
		return do_read(w, ycsb_keygen_next(&w->kg));
	case YCSB_UPDATE:
		return do_write(w, ycsb_keygen_next(&w->kg));
	case YCSB_INSERT:
		k = ycsb_counter_next(&w->run->ctr);
		err = do_write(w, k);
		/* Acknowledged even if it failed, or the counter would stall;
		 * the failure is counted, later reads of it as not found. */
		ycsb_counter_ack(&w->run->ctr, k);
		return err;
	case YCSB_SCAN:
		return do_scan(w);
	case YCSB_RMW:
		k = ycsb_keygen_next(&w->kg);
		err = do_read(w, k);
		return err ? err : do_write(w, k);
	default:
		return -EINVAL;
	}
}

static void run_loop(struct yworker *w)
{
	const struct ycsb_workload *wl = w->run->wl;

	while (!atomic_load_explicit(&w->run->ph.stop, memory_order_relaxed)) {
		enum ycsb_op op;
		uint64_t t;
		int err;

		if (w->ops == w->quota)
			break;
		op = ycsb_op_next(wl, &w->rng);
		t = now_ns();
		err = do_op(w, op);
		hist_add(&w->lat[op], now_ns() - t);
		w->ops++;
		if (err)
			note_err(w, op, err);
	}
}

/* Load: this thread's records, in batches (timed per batch) or one by one. */
static void load_loop(struct yworker *w)
{
	const struct ycsb_cfg *c = w->run->cfg;
	unsigned per = c->load == YCSB_LOAD_BATCH ? YCSB_LOAD_BATCH_OPS : 1;
	struct kvb_kv kv[YCSB_LOAD_BATCH_OPS];
	char(*keys)[YCSB_KEY_MAX] = xcalloc(per, YCSB_KEY_MAX);
	uint8_t *vals = xcalloc(per, c->value_size);

	for (uint64_t i = w->from; i < w->to;) {
		unsigned n = 0;
		uint64_t t;
		int err;

		for (; n < per && i < w->to; n++, i++) {
			kv[n].key = keys[n];
			kv[n].klen = ycsb_key(keys[n], i);
			kv[n].val = vals + (size_t)n * c->value_size;
			kv[n].vlen = c->value_size;
			ycsb_value(vals + (size_t)n * c->value_size, c->value_size, i, 0);
		}
		t = now_ns();
		if (per > 1)
			err = w->run->be->load(w->run->st, kv, n);
		else
			err = w->run->be->put(w->run->st, kv[0].key, kv[0].klen, kv[0].val,
					      kv[0].vlen);
		hist_add(&w->lat[YCSB_INSERT], now_ns() - t);
		w->ops += n;
		if (err)
			note_err(w, YCSB_INSERT, err);
	}
	free(keys);
	free(vals);
}

static void *worker_main(void *arg)
{
	struct yworker *w = arg;

	pthread_barrier_wait(&w->run->ph.start);
	if (w->run->wl)
		run_loop(w);
	else
		load_loop(w);
	return NULL;
}

/* Sum the workers into @r and free them. */
static void collect(struct yworker *w, unsigned n, struct ycsb_result *r)
{
	for (unsigned i = 0; i < n; i++) {
		for (int op = 0; op < YCSB_NOPS; op++) {
			if (!w[i].lat[op].count)
				continue;
			if (!r->lat[op])
				r->lat[op] = xcalloc(1, sizeof(struct hist));
			hist_merge(r->lat[op], &w[i].lat[op]);
			r->errors[op] += w[i].errors[op];
			r->not_found[op] += w[i].not_found[op];
		}
		r->ops += w[i].ops;
		r->scan_records += w[i].scan_records;
		r->scan_bytes += w[i].scan_bytes;
		if (w[i].first_err && !r->first_err)
			r->first_err = w[i].first_err;
		free(w[i].val);
		free(w[i].buf);
	}
	free(w);
}

/* Seeds depend on the workload, thread count and thread, never on the
 * backend: every backend sees the same requests. */
static uint64_t stream(char wl, unsigned threads, unsigned id, unsigned what)
{
	return ((uint64_t)(unsigned char)wl << 40) | ((uint64_t)threads << 24) |
	       ((uint64_t)id << 4) | what;
}

static void phase(struct yrun *run, unsigned threads, struct ycsb_result *r)
{
	const struct ycsb_cfg *c = run->cfg;
	struct yworker *w = xcalloc(threads, sizeof(*w));
	char wl = run->wl ? run->wl->name : 'L';
	uint64_t t0, t1;

	r->threads = threads;
	r->workload = wl;
	r->dist = run->dist;
	r->records_before = ycsb_counter_count(&run->ctr);
	r->have_stats = run->be->stats && !run->be->stats(run->st, &r->before);
	for (unsigned i = 0; i < threads; i++) {
		w[i].id = i;
		w[i].rng = ycsb_seed(c->seed, stream(wl, threads, i, 1));
		w[i].val = xcalloc(1, c->value_size + 1);
		w[i].buf = xcalloc(1, c->value_size + 1);
		w[i].from = c->records * i / threads;
		w[i].to = c->records * (i + 1) / threads;
		w[i].quota = c->ops ? c->ops / threads + (i < c->ops % threads) : UINT64_MAX;
		ycsb_keygen_init(&w[i].kg, run->dist, &run->ctr, run->space, &run->proto,
				 ycsb_seed(c->seed, stream(wl, threads, i, 2)));
		w[i].run = run;
	}
	t0 = phase_run(&run->ph, w, sizeof(*w), threads, worker_main,
		       run->wl && !c->ops ? c->seconds : 0, &t1);
	r->seconds = (double)(t1 - t0) / 1e9;
	collect(w, threads, r);
	if (!run->wl) {
		/* Batch loads are acknowledged before durability: end with a sync. */
		int err = run->be->sync(run->st);

		r->seconds = (double)(now_ns() - t0) / 1e9;
		if (err && !r->first_err)
			r->first_err = err;
	}
	r->records_after = ycsb_counter_count(&run->ctr);
	if (r->have_stats)
		r->have_stats = !run->be->stats(run->st, &r->after);
}

/* One workload run on the open store. */
static void workload_run(struct yrun *run, const struct ycsb_workload *wl, unsigned threads,
			 struct ycsb_result *r)
{
	const struct ycsb_cfg *c = run->cfg;
	uint64_t count = ycsb_counter_count(&run->ctr);

	run->wl = wl;
	run->dist = c->dist_set ? c->dist : wl->dist;
	/* YCSB sizes the scrambled zipfian for the inserts it expects (2x). */
	run->space = count + (uint64_t)(2.0 * wl->prop[YCSB_INSERT] * (double)c->ops);
	ycsb_keygen_proto(run->dist, count, &run->proto);
	phase(run, threads, r);
}

static void load_run(struct yrun *run, struct ycsb_result *r)
{
	run->wl = NULL;
	run->dist = YCSB_UNIFORM;
	phase(run, run->cfg->load_threads, r);
	atomic_store(&run->ctr.next, run->cfg->records);
	atomic_store(&run->ctr.count, run->cfg->records);
	r->records_after = run->cfg->records;
}

/* The results of one store: the load, then threads x workloads. */
static unsigned store_run(const struct ycsb_cfg *c, enum ycsb_backend b, enum kv_durability m,
			  struct ycsb_result *res)
{
	struct kvb_open_args a;
	struct bench_cfg paths = { .dir = c->dir, .keep = c->keep };
	struct yrun run = { .cfg = c, .be = kvb_backend(b) };
	char what[64], path[4096];
	unsigned n = 0;
	int err;

	snprintf(what, sizeof(what), "ycsb-%s-%s", ycsb_backend_name(b), kv_durability_name(m));
	store_path(path, sizeof(path), &paths, what);
	store_remove(path);
	if (mkdir(path, 0755))
		die("mkdir %s: %s", path, strerror(errno));
	a.path = path;
	a.mode = m;
	a.write_buffer = c->log_buffer_size;
	a.cache = c->cache_size;
	err = run.be->open(&a, &run.st);
	if (err)
		die("%s: open %s (%s): %s", run.be->name, path, kv_durability_name(m),
		    strerror(-err));
	if (ycsb_counter_init(&run.ctr, 0))
		die("out of memory");
	for (unsigned i = 0; i < c->nthreads * c->nworkloads + 1; i++) {
		res[i].backend = b;
		res[i].mode = m;
	}
	load_run(&run, &res[n]);
	ycsb_print_result(&res[n++]);
	for (unsigned t = 0; t < c->nthreads; t++) {
		for (unsigned i = 0; i < c->nworkloads; i++) {
			workload_run(&run, c->workloads[i], c->threads[t], &res[n]);
			ycsb_print_result(&res[n++]);
		}
	}
	err = run.be->close(run.st);
	if (err)
		fprintf(stderr, "kvbench: %s: close %s: %s\n", run.be->name, path, strerror(-err));
	ycsb_counter_destroy(&run.ctr);
	if (!c->keep)
		store_remove(path);
	return n;
}

static __attribute__((noreturn)) void ycsb_bad_usage(const char *msg)
{
	fprintf(stderr, "kvbench ycsb: %s\nTry 'kvbench ycsb --help'.\n", msg);
	exit(2);
}

int ycsb_main(int argc, char **argv)
{
	struct ycsb_cfg c;
	struct ycsb_result *res;
	char err[256];
	unsigned n = 0, per_store;
	struct stat sb;
	int rc = ycsb_parse_args(argc, argv, &c, err, sizeof(err));

	if (rc == 1) {
		ycsb_usage(stdout);
		return 0;
	}
	if (rc)
		ycsb_bad_usage(err);
	for (unsigned i = 0; i < c.nbackends; i++) {
		if (!kvb_backend(c.backends[i])) {
			snprintf(err, sizeof(err),
				 "--backend %s: this kvbench was built without it (install "
				 "lib%s-dev and run cmake again)",
				 ycsb_backend_name(c.backends[i]),
				 ycsb_backend_name(c.backends[i]));
			ycsb_bad_usage(err);
		}
	}
	if (stat(c.dir, &sb) || !S_ISDIR(sb.st_mode)) {
		snprintf(err, sizeof(err), "--dir %s: not a directory", c.dir);
		ycsb_bad_usage(err);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	per_store = c.nthreads * c.nworkloads + 1;
	res = xcalloc((size_t)c.nbackends * c.nmodes * per_store, sizeof(*res));
	ycsb_print_head(&c);
	for (unsigned m = 0; m < c.nmodes; m++) {
		for (unsigned b = 0; b < c.nbackends; b++) {
			if (!kvb_backend(c.backends[b])->supports(c.modes[m])) {
				printf("(%s has no %s mode: skipped)\n",
				       ycsb_backend_name(c.backends[b]),
				       kv_durability_name(c.modes[m]));
				continue;
			}
			n += store_run(&c, c.backends[b], c.modes[m], &res[n]);
		}
	}
	ycsb_print_summary(&c, res, n);
	if (c.json)
		ycsb_write_json(&c, res, n);
	if (c.csv)
		ycsb_write_csv(&c, res, n);
	for (unsigned i = 0; i < n; i++)
		for (int op = 0; op < YCSB_NOPS; op++)
			free(res[i].lat[op]);
	free(res);
	return 0;
}
