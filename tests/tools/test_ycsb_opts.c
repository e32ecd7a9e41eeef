/* SPDX-License-Identifier: MIT */
/* Unit tests of tools/ycsb_opts.c: kvbench ycsb's options, good and bad. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ycsb_opts.h"

#define MAX_ARGS 32

/* Parse "ycsb" followed by the NULL-terminated arguments. */
static int parse(struct ycsb_cfg *c, char *err, ...)
{
	char *argv[MAX_ARGS] = { "ycsb" };
	int argc = 1;
	va_list ap;
	char *a;

	va_start(ap, err);
	while ((a = va_arg(ap, char *)) && argc < MAX_ARGS - 1)
		argv[argc++] = a;
	va_end(ap);
	return ycsb_parse_args(argc, argv, c, err, 256);
}

static void test_defaults(void **state)
{
	struct ycsb_cfg c;
	char err[256];

	assert_int_equal(parse(&c, err, NULL), 0);
	assert_int_equal(c.nworkloads, 1);
	assert_int_equal(c.workloads[0]->name, 'A');
	assert_int_equal(c.backends[0], YCSB_LIBKV);
	assert_int_equal(c.modes[0], KV_DUR_SYNC);
	assert_int_equal(c.threads[0], 8);
	assert_int_equal(c.value_size, 1000); /* 10 fields x 100 bytes */
	assert_int_equal(c.max_scan, 100);
	assert_false(c.dist_set);
	assert_int_equal(parse(&c, err, "--help", NULL), 1);
}

static void test_good_values(void **state)
{
	struct ycsb_cfg c;
	char err[256];

	assert_int_equal(parse(&c, err, "--workload", "a,C,F", "--backend", "libkv,rocksdb,leveldb",
			       "--durability", "sync,batch,locked", "--threads", "1,8,32",
			       "--records", "5000", "--fields", "4", "--field-length", "8", "--ops",
			       "100", "--distribution", "uniform", "--load", "ops", NULL),
			 0);
	assert_int_equal(c.nworkloads, 3);
	assert_int_equal(c.workloads[0]->name, 'A');
	assert_int_equal(c.workloads[2]->name, 'F');
	assert_int_equal(c.nbackends, 3);
	assert_int_equal(c.backends[2], YCSB_LEVELDB);
	assert_int_equal(c.modes[2], KV_DUR_LOCKED);
	assert_int_equal(c.threads[2], 32);
	assert_int_equal(c.records, 5000);
	assert_int_equal(c.value_size, 32);
	assert_int_equal(c.ops, 100);
	assert_true(c.dist_set);
	assert_int_equal(c.dist, YCSB_UNIFORM);
	assert_int_equal(c.load, YCSB_LOAD_OPS);
}

/* Each bad value: -EINVAL and a message naming the option and the value. */
static void test_bad_values(void **state)
{
	static const char *const bad[][3] = {
		{ "--threads", "0", "--threads: '0'" },
		{ "--threads", "4,x", "--threads: 'x'" },
		{ "--threads", "300", "[1, 256]" },
		{ "--workload", "G", "unknown workload 'G'" },
		{ "--workload", "AB", "unknown workload 'AB'" },
		{ "--distribution", "pareto", "unknown distribution 'pareto'" },
		{ "--backend", "mongodb", "unknown backend 'mongodb'" },
		{ "--durability", "fast", "unknown mode 'fast'" },
		{ "--durability", "default", "unknown mode 'default'" },
		{ "--records", "-5", "--records: '-5'" },
		{ "--records", "10k", "--records: '10k'" },
		{ "--seconds", "0", "--seconds: '0'" },
		{ "--seconds", "nan", "--seconds: 'nan'" },
		{ "--ops", "0", "--ops: '0'" },
		{ "--load", "lazy", "--load: unknown mode 'lazy'" },
		{ "--max-scan", "0", "--max-scan: '0'" },
		{ "--field-length", "1", "a value must be in" },
		{ "--log-buffer", "1000", "--log-buffer: '1000'" },
	};
	struct ycsb_cfg c;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(&c, err, bad[i][0], bad[i][1], NULL) != -EINVAL)
			fail_msg("%s %s: accepted", bad[i][0], bad[i][1]);
		if (!strstr(err, bad[i][2]))
			fail_msg("%s %s: message '%s' lacks '%s'", bad[i][0], bad[i][1], err,
				 bad[i][2]);
	}
}

static void test_bad_combinations(void **state)
{
	struct ycsb_cfg c;
	char err[256];

	assert_int_equal(parse(&c, err, "--seconds", "5", "--ops", "100", NULL), -EINVAL);
	assert_non_null(strstr(err, "--seconds and --ops"));
	assert_int_equal(parse(&c, err, "--backend", "rocksdb", "--durability", "locked", NULL),
			 -EINVAL);
	assert_non_null(strstr(err, "sync or batch"));
	assert_int_equal(parse(&c, err, "--fields", "1", "--field-length", "15", NULL), -EINVAL);
	assert_int_equal(parse(&c, err, "--log-buffer", "1", "--field-length", "100000", NULL),
			 -EINVAL);
	assert_non_null(strstr(err, "quarter"));
	assert_int_equal(parse(&c, err, "--frobnicate", NULL), -EINVAL);
	assert_non_null(strstr(err, "unknown option '--frobnicate'"));
	assert_int_equal(parse(&c, err, "--threads", NULL), -EINVAL);
	assert_non_null(strstr(err, "needs a value"));
	assert_int_equal(parse(&c, err, "extra", NULL), -EINVAL);
	assert_non_null(strstr(err, "unexpected argument 'extra'"));
	assert_int_equal(parse(&c, err, "--threads", ",", NULL), -EINVAL);
	assert_non_null(strstr(err, "empty list"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_good_values),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_combinations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
