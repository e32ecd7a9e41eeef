/* SPDX-License-Identifier: MIT */
/*
 * ycsb_opts.c - the options of kvbench ycsb and their parser. Every bad value
 * is an error that names the option, the value and what was expected; the
 * caller prints it and exits 2 (kvbench_ycsb.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CMake passes it too */
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ycsb_opts.h"

static const char *const backend_names[YCSB_NBACKENDS] = {
	[YCSB_LIBKV] = "libkv",
	[YCSB_ROCKSDB] = "rocksdb",
	[YCSB_LEVELDB] = "leveldb",
};

const char *ycsb_backend_name(enum ycsb_backend b)
{
	return b < YCSB_NBACKENDS ? backend_names[b] : "?";
}

void ycsb_cfg_defaults(struct ycsb_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->workloads[0] = ycsb_workload_get('A');
	c->nworkloads = 1;
	c->backends[0] = YCSB_LIBKV;
	c->nbackends = 1;
	c->modes[0] = KV_DUR_SYNC;
	c->nmodes = 1;
	c->threads[0] = 8;
	c->nthreads = 1;
	c->records = 100000;
	c->fields = 10;
	c->field_length = 100;
	c->value_size = 1000;
	c->seconds = 10;
	c->load = YCSB_LOAD_BATCH;
	c->load_threads = 4;
	c->max_scan = 100;
	c->seed = 1;
	c->dir = "/var/tmp";
}

void ycsb_usage(FILE *f)
{
	fputs("usage: kvbench ycsb [options]\n"
	      "\n"
	      "YCSB core workloads against libkv and, when built with them, RocksDB and\n"
	      "LevelDB: per backend and durability mode a fresh store is loaded, then each\n"
	      "workload runs on it in the order given, for each thread count.\n"
	      "\n"
	      "  --workload LIST       A-F (default A): A 50/50 read/update, B 95/5\n"
	      "                        read/update, C read only, D 95/5 read latest/insert,\n"
	      "                        E 95/5 scan/insert, F 50/50 read/read-modify-write\n"
	      "  --distribution D      zipfian (YCSB's scrambled, theta 0.99), zipfian-true,\n"
	      "                        latest, uniform (default: the workload's; D latest,\n"
	      "                        the others zipfian)\n"
	      "  --backend LIST        libkv, rocksdb, leveldb (default libkv)\n"
	      "  --durability LIST     sync, batch, fsync-per-op, locked (default sync);\n"
	      "                        rocksdb and leveldb: sync (sync=true) and batch\n"
	      "                        (sync=false) only, other modes are skipped for them\n"
	      "  --threads LIST        client threads (default 8)\n"
	      "  --records N           records loaded (default 100000)\n"
	      "  --fields N            fields per record (default 10)\n"
	      "  --field-length B      bytes per field (default 100); a value is the fields\n"
	      "                        concatenated, at least 16 and at most 1 MiB\n"
	      "  --seconds S           duration of each workload run (default 10)\n"
	      "  --ops N               operations per workload run instead (over all threads)\n"
	      "  --load MODE           batch: write batches of 100 records, one sync at the\n"
	      "                        end (default); ops: one insert per operation at the\n"
	      "                        run's durability, timed and reported\n"
	      "  --load-threads N      threads of the load phase (default 4)\n"
	      "  --max-scan N          E: scan lengths uniform in 1..N (default 100)\n"
	      "  --seed N              seed of every generator (default 1)\n"
	      "  --log-buffer MIB      libkv log buffer; RocksDB/LevelDB write buffer\n"
	      "                        (default libkv's, 64)\n"
	      "  --cache MIB           block cache of every backend (default libkv's, 32)\n"
	      "  --dir D               where stores are made (default /var/tmp)\n"
	      "  --keep                keep the stores\n"
	      "  --json FILE           every parameter and result as JSON\n"
	      "  --csv FILE            one row per run and operation type, for plots\n"
	      "  -h, --help            this text\n",
	      f);
}

struct perr {
	char *buf;
	size_t len;
};

static __attribute__((format(printf, 2, 3))) int fail(struct perr *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_u64(struct perr *e, const char *opt, const char *s, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+' || *s == ' ' || v < min || v > max)
		return fail(e, "%s: '%s' is not a number in [%" PRIu64 ", %" PRIu64 "]", opt, s,
			    min, max);
	*out = v;
	return 0;
}

typedef int (*item_fn)(struct perr *e, const char *tok, struct ycsb_cfg *c, unsigned i);

/* Split @s at commas, at most YCSB_MAX_LIST items, calling @fn on each. */
static int parse_list(struct perr *e, const char *opt, const char *s, item_fn fn,
		      struct ycsb_cfg *c, unsigned *n)
{
	char buf[512], *save = NULL, *tok;
	unsigned k = 0;
	int err;

	if (strlen(s) >= sizeof(buf))
		return fail(e, "%s: list too long", opt);
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (k == YCSB_MAX_LIST)
			return fail(e, "%s: at most %d items", opt, YCSB_MAX_LIST);
		err = fn(e, tok, c, k++);
		if (err)
			return err;
	}
	if (!k)
		return fail(e, "%s: empty list", opt);
	*n = k;
	return 0;
}

static int workload_item(struct perr *e, const char *tok, struct ycsb_cfg *c, unsigned i)
{
	const struct ycsb_workload *w = strlen(tok) == 1 ? ycsb_workload_get(tok[0]) : NULL;

	if (!w)
		return fail(e, "--workload: unknown workload '%s' (A, B, C, D, E or F)", tok);
	c->workloads[i] = w;
	return 0;
}

static int backend_item(struct perr *e, const char *tok, struct ycsb_cfg *c, unsigned i)
{
	for (int b = 0; b < YCSB_NBACKENDS; b++) {
		if (!strcmp(tok, backend_names[b])) {
			c->backends[i] = (enum ycsb_backend)b;
			return 0;
		}
	}
	return fail(e, "--backend: unknown backend '%s' (libkv, rocksdb, leveldb)", tok);
}

static int mode_item(struct perr *e, const char *tok, struct ycsb_cfg *c, unsigned i)
{
	enum kv_durability d;

	if (kv_durability_parse(tok, &d) || d == KV_DUR_DEFAULT)
		return fail(e,
			    "--durability: unknown mode '%s' (sync, batch, fsync-per-op, "
			    "locked)",
			    tok);
	c->modes[i] = d;
	return 0;
}

static int thread_item(struct perr *e, const char *tok, struct ycsb_cfg *c, unsigned i)
{
	uint64_t v;
	int err = parse_u64(e, "--threads", tok, 1, YCSB_MAX_THREADS, &v);

	c->threads[i] = (unsigned)v;
	return err;
}

static int parse_seconds(struct perr *e, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.01 && v <= 3600))
		return fail(e, "--seconds: '%s' is not a duration in [0.01, 3600]", s);
	*out = v;
	return 0;
}

enum {
	O_WORKLOAD = 256,
	O_DIST,
	O_BACKEND,
	O_DURABILITY,
	O_THREADS,
	O_RECORDS,
	O_FIELDS,
	O_FIELD_LENGTH,
	O_SECONDS,
	O_OPS,
	O_LOAD,
	O_LOAD_THREADS,
	O_MAX_SCAN,
	O_SEED,
	O_LOG_BUFFER,
	O_CACHE,
	O_DIR,
	O_KEEP,
	O_JSON,
	O_CSV,
};

static const struct option long_opts[] = {
	{ "workload", required_argument, NULL, O_WORKLOAD },
	{ "distribution", required_argument, NULL, O_DIST },
	{ "backend", required_argument, NULL, O_BACKEND },
	{ "durability", required_argument, NULL, O_DURABILITY },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "records", required_argument, NULL, O_RECORDS },
	{ "fields", required_argument, NULL, O_FIELDS },
	{ "field-length", required_argument, NULL, O_FIELD_LENGTH },
	{ "seconds", required_argument, NULL, O_SECONDS },
	{ "ops", required_argument, NULL, O_OPS },
	{ "load", required_argument, NULL, O_LOAD },
	{ "load-threads", required_argument, NULL, O_LOAD_THREADS },
	{ "max-scan", required_argument, NULL, O_MAX_SCAN },
	{ "seed", required_argument, NULL, O_SEED },
	{ "log-buffer", required_argument, NULL, O_LOG_BUFFER },
	{ "cache", required_argument, NULL, O_CACHE },
	{ "dir", required_argument, NULL, O_DIR },
	{ "keep", no_argument, NULL, O_KEEP },
	{ "json", required_argument, NULL, O_JSON },
	{ "csv", required_argument, NULL, O_CSV },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int apply_num(struct perr *e, struct ycsb_cfg *c, int id, const char *arg)
{
	uint64_t v = 0;
	int err = 0;

	switch (id) {
	case O_RECORDS:
		err = parse_u64(e, "--records", arg, 1, 1000000000, &c->records);
		break;
	case O_FIELDS:
		err = parse_u64(e, "--fields", arg, 1, 1000, &v);
		c->fields = (unsigned)v;
		break;
	case O_FIELD_LENGTH:
		err = parse_u64(e, "--field-length", arg, 1, 1u << 20, &v);
		c->field_length = (unsigned)v;
		break;
	case O_OPS:
		err = parse_u64(e, "--ops", arg, 1, 1000000000000ull, &c->ops);
		break;
	case O_LOAD_THREADS:
		err = parse_u64(e, "--load-threads", arg, 1, YCSB_MAX_THREADS, &v);
		c->load_threads = (unsigned)v;
		break;
	case O_MAX_SCAN:
		err = parse_u64(e, "--max-scan", arg, 1, 10000, &v);
		c->max_scan = (unsigned)v;
		break;
	case O_SEED:
		err = parse_u64(e, "--seed", arg, 0, UINT64_MAX, &c->seed);
		break;
	case O_LOG_BUFFER:
		err = parse_u64(e, "--log-buffer", arg, 1, 256, &v);
		c->log_buffer_size = (size_t)v << 20;
		break;
	case O_CACHE:
		err = parse_u64(e, "--cache", arg, 1, 65536, &v);
		c->cache_size = (size_t)v << 20;
		break;
	}
	return err;
}

static int apply_opt(struct perr *e, struct ycsb_cfg *c, int id, const char *arg, bool *secs)
{
	switch (id) {
	case O_WORKLOAD:
		return parse_list(e, "--workload", arg, workload_item, c, &c->nworkloads);
	case O_DIST:
		c->dist_set = true;
		if (ycsb_dist_parse(arg, &c->dist))
			return fail(e,
				    "--distribution: unknown distribution '%s' (zipfian, "
				    "zipfian-true, latest, uniform)",
				    arg);
		return 0;
	case O_BACKEND:
		return parse_list(e, "--backend", arg, backend_item, c, &c->nbackends);
	case O_DURABILITY:
		return parse_list(e, "--durability", arg, mode_item, c, &c->nmodes);
	case O_THREADS:
		return parse_list(e, "--threads", arg, thread_item, c, &c->nthreads);
	case O_SECONDS:
		*secs = true;
		return parse_seconds(e, arg, &c->seconds);
	case O_LOAD:
		if (!strcmp(arg, "batch"))
			c->load = YCSB_LOAD_BATCH;
		else if (!strcmp(arg, "ops"))
			c->load = YCSB_LOAD_OPS;
		else
			return fail(e, "--load: unknown mode '%s' (batch or ops)", arg);
		return 0;
	case O_DIR:
		c->dir = arg;
		return 0;
	case O_KEEP:
		c->keep = true;
		return 0;
	case O_JSON:
		c->json = arg;
		return 0;
	case O_CSV:
		c->csv = arg;
		return 0;
	default:
		return apply_num(e, c, id, arg);
	}
}

/* What no single option can check. */
static int check_cfg(struct perr *e, struct ycsb_cfg *c, bool secs)
{
	bool plain_mode = false;

	if (secs && c->ops)
		return fail(e, "--seconds and --ops exclude each other: a run is timed or counted");
	c->value_size = (size_t)c->fields * c->field_length;
	if (c->value_size < YCSB_VALUE_HEAD || c->value_size > (1u << 20))
		return fail(e, "--fields x --field-length = %zu bytes: a value must be in [%d, %u]",
			    c->value_size, YCSB_VALUE_HEAD, 1u << 20);
	if (c->log_buffer_size && c->value_size + 256 > c->log_buffer_size / 4)
		return fail(e, "a %zu-byte value is more than a quarter of the %zu MiB log buffer",
			    c->value_size, c->log_buffer_size >> 20);
	for (unsigned i = 0; i < c->nmodes; i++)
		plain_mode |= c->modes[i] == KV_DUR_SYNC || c->modes[i] == KV_DUR_BATCH;
	for (unsigned i = 0; i < c->nbackends; i++)
		if (c->backends[i] != YCSB_LIBKV && !plain_mode)
			return fail(e, "--backend %s: runs only with --durability sync or batch",
				    backend_names[c->backends[i]]);
	return 0;
}

int ycsb_parse_args(int argc, char **argv, struct ycsb_cfg *c, char *err, size_t errlen)
{
	struct perr e = { err, errlen };
	bool secs = false;
	int id, rc;

	ycsb_cfg_defaults(c);
	if (errlen)
		err[0] = '\0';
	optind = 0; /* GNU: start over, the tests parse many times */
	opterr = 0;
	while ((id = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		if (id == 'h')
			return 1;
		if (id == '?')
			return fail(&e, "unknown option '%s'", argv[optind - 1]);
		if (id == ':')
			return fail(&e, "option '%s' needs a value", argv[optind - 1]);
		rc = apply_opt(&e, c, id, optarg, &secs);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return fail(&e, "unexpected argument '%s'", argv[optind]);
	return check_cfg(&e, c, secs);
}
