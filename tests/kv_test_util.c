/* SPDX-License-Identifier: MIT */
#include "kv_test_util.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *kvt_mkdtemp(const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	char *path;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (asprintf(&path, "%s/kvtest-%s-XXXXXX", tmp, tag) < 0)
		abort();
	if (!mkdtemp(path)) {
		perror(path);
		abort();
	}
	return path;
}

void kvt_rmrf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d))) {
		char *sub;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (asprintf(&sub, "%s/%s", path, e->d_name) < 0)
			abort();
		if (e->d_type == DT_DIR)
			kvt_rmrf(sub);
		else
			unlink(sub);
		free(sub);
	}
	closedir(d);
	rmdir(path);
}

uint64_t kvt_seed(const char *test)
{
	const char *s = getenv("KV_TEST_SEED");
	uint64_t seed;

	if (s && *s) {
		seed = strtoull(s, NULL, 0);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
		       (uint64_t)getpid();
	}
	if (!seed)
		seed = 1;
	fprintf(stderr, "%s: seed %llu (rerun with KV_TEST_SEED=%llu)\n", test,
		(unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

uint64_t kvt_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

int kvt_scale(void)
{
	const char *s = getenv("KV_TEST_LONG");
	int n = s ? atoi(s) : 0;

	return n > 0 ? n : 1;
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void kvt_log_fn(void *ctx, enum kv_log_level level, const char *msg)
{
	struct kvt_log *log = ctx;
	size_t n = strlen(msg);

	(void)level;
	if (getenv("KV_TEST_VERBOSE"))
		fprintf(stderr, "kv: %s\n", msg);
	if (!log)
		return;
	/* The engine logs from its background threads too, concurrently. */
	pthread_mutex_lock(&log_mu);
	if (log->len + n + 2 > sizeof(log->text))
		log->len = 0;
	memcpy(log->text + log->len, msg, n);
	log->len += n;
	log->text[log->len++] = '\n';
	log->text[log->len] = '\0';
	pthread_mutex_unlock(&log_mu);
}

void kvt_options(struct kv_options *o, struct kv_env *env, struct kvt_log *log)
{
	kv_options_init(o);
	o->create_if_missing = 1;
	o->log_buffer_size = 256 << 10;
	o->env = env;
	o->log = kvt_log_fn;
	o->log_ctx = log;
}
