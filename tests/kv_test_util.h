/* SPDX-License-Identifier: MIT */
/* Helpers shared by the tests: scratch directories, seeds, a log sink. */
#ifndef KV_TEST_UTIL_H
#define KV_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* Which sanitizer the build uses (GCC defines __SANITIZE_*, clang has
 * __has_feature): 1 or 0. */
#if defined(__SANITIZE_THREAD__)
#define KVT_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KVT_UNDER_TSAN 1
#endif
#endif
#ifndef KVT_UNDER_TSAN
#define KVT_UNDER_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KVT_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVT_UNDER_ASAN 1
#endif
#endif
#ifndef KVT_UNDER_ASAN
#define KVT_UNDER_ASAN 0
#endif

/* Make a fresh empty directory under $TMPDIR (or /tmp); returns a malloc'd
 * path. kvt_rmrf() removes it and everything in it. */
char *kvt_mkdtemp(const char *tag);
void kvt_rmrf(const char *path);

/* The seed for randomized tests: $KV_TEST_SEED if set, else from the clock;
 * printed to stderr so a failing run can be repeated. */
uint64_t kvt_seed(const char *test);
/* xorshift64* */
uint64_t kvt_rand(uint64_t *state);

/* "long" runs: $KV_TEST_LONG set to a non-zero number scales iteration counts. */
int kvt_scale(void);

/* A log callback that keeps the last messages so tests can assert on them. */
struct kvt_log {
	char text[8192];
	size_t len;
};
void kvt_log_fn(void *ctx, enum kv_log_level level, const char *msg);

/* Options with a small log buffer, the given env and log sink. */
void kvt_options(struct kv_options *o, struct kv_env *env, struct kvt_log *log);

#endif
