/* SPDX-License-Identifier: MIT */
/*
 * itest_helper.c - what the integration scripts cannot do quickly or at all
 * with standard tools.
 *
 *   itest_helper mkfiles DIR N           create N empty files DIR/entry-NNNNNNN
 *                                        in one process (a 100k-entry directory
 *                                        without 100k fork+exec)
 *   itest_helper write DIR ID N          writer ID creates DIR/wID-NNNNN for
 *                                        0 <= n < N, each with its own size and
 *                                        content (see fill())
 *   itest_helper verify DIR ID N         check what "write DIR ID N" wrote
 *   itest_helper churn DIR N             create DIR/churn-N and remove the one
 *                                        made 16 steps earlier, for n < N, or
 *                                        until SIGTERM (changes a directory
 *                                        while another process lists it)
 *   itest_helper kvstore DIR             make a plain libkv store (no kvfs
 *                                        superblock) with one key in DIR
 *   itest_helper super STORE HOW         damage a kvfs store's superblock:
 *                                        newer (format version + 1), features
 *                                        (an unknown incompatible feature bit),
 *                                        short (a 5-byte value)
 *
 * Exit status 0 on success; 1 with a message on stderr otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"
#include "schema.h"

static int failf(const char *what, const char *path, int err)
{
	fprintf(stderr, "itest_helper: %s %s: %s\n", what, path, strerror(err));
	return 1;
}

static int parse_count(const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || end == s || *end) {
		fprintf(stderr, "itest_helper: '%s' is not a count\n", s);
		return -1;
	}
	return 0;
}

static int mkfiles(const char *dir, unsigned long n)
{
	char path[4096];

	for (unsigned long i = 0; i < n; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/entry-%07lu", dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			return failf("create", path, errno);
		if (close(fd))
			return failf("close", path, errno);
	}
	return 0;
}

static int churn(const char *dir, unsigned long n)
{
	char path[4096];

	for (unsigned long i = 0; i < n; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/churn-%07lu", dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			return failf("create", path, errno);
		close(fd);
		if (i >= 16) {
			snprintf(path, sizeof(path), "%s/churn-%07lu", dir, i - 16);
			if (unlink(path))
				return failf("unlink", path, errno);
		}
	}
	return 0;
}

/*
 * File n of writer id: its size spreads over inline-sized files (a few
 * hundred bytes) and multi-block ones (up to ~70 KiB), its bytes come from a
 * generator seeded by (id, n), so no two files have the same content.
 */
static size_t file_size(unsigned long id, unsigned long n)
{
	return (size_t)((id * 7919 + n * 104729) % 70001);
}

static void fill(unsigned long id, unsigned long n, unsigned char *buf, size_t len)
{
	uint64_t x = (id << 32 | n) * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
}

static int write_files(const char *dir, unsigned long id, unsigned long n)
{
	static unsigned char buf[70001];
	char path[4096];

	for (unsigned long i = 0; i < n; i++) {
		size_t len = file_size(id, i), off = 0;
		int fd;

		fill(id, i, buf, len);
		snprintf(path, sizeof(path), "%s/w%lu-%05lu", dir, id, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			return failf("create", path, errno);
		/* Odd-sized writes, so that they straddle block boundaries. */
		while (off < len) {
			size_t chunk = len - off < 7001 ? len - off : 7001;
			ssize_t w = write(fd, buf + off, chunk);

			if (w < 0) {
				close(fd);
				return failf("write", path, errno);
			}
			off += (size_t)w;
		}
		if (close(fd))
			return failf("close", path, errno);
	}
	return 0;
}

static int verify_files(const char *dir, unsigned long id, unsigned long n)
{
	static unsigned char want[70001], got[70002];
	char path[4096];
	int bad = 0;

	for (unsigned long i = 0; i < n; i++) {
		size_t len = file_size(id, i), off = 0;
		ssize_t r;
		int fd;

		fill(id, i, want, len);
		snprintf(path, sizeof(path), "%s/w%lu-%05lu", dir, id, i);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return failf("open", path, errno);
		while ((r = read(fd, got + off, sizeof(got) - off)) > 0)
			off += (size_t)r;
		close(fd);
		if (r < 0)
			return failf("read", path, errno);
		if (off != len || memcmp(want, got, len)) {
			fprintf(stderr, "itest_helper: %s: %zu bytes, expected %zu%s\n", path, off,
				len, off == len ? " (content differs)" : "");
			bad = 1;
		}
	}
	return bad;
}

static int kvstore(const char *dir)
{
	struct kv_options o;
	struct kv_db *db;
	int e;

	kv_options_init(&o);
	o.create_if_missing = 1;
	e = kv_open(dir, &o, &db);
	if (e)
		return failf("kv_open", dir, -e);
	e = kv_put(db, NULL, "not-kvfs", 8, "plain libkv", 11);
	if (e) {
		kv_close(db);
		return failf("kv_put", dir, -e);
	}
	e = kv_close(db);
	return e ? failf("kv_close", dir, -e) : 0;
}

static int super(const char *store, const char *how)
{
	uint8_t key[KVFS_KEY_MAX], val[KVFS_SUPER_SIZE];
	size_t klen = kvfs_key_super(key), vlen = sizeof(val);
	struct kvfs_super s;
	struct kv_options o;
	struct kv_db *db;
	ssize_t n;
	int e;

	kv_options_init(&o);
	e = kv_open(store, &o, &db);
	if (e)
		return failf("kv_open", store, -e);
	n = kv_get(db, 0, key, klen, val, sizeof(val));
	e = n < 0 ? (int)n : kvfs_super_decode(val, (size_t)n, &s);
	if (e) {
		kv_close(db);
		return failf("superblock of", store, -e);
	}
	if (!strcmp(how, "newer")) {
		s.version = KVFS_FORMAT_VERSION + 1;
		kvfs_super_encode(&s, val);
	} else if (!strcmp(how, "features")) {
		s.features |= 1ull << 63;
		kvfs_super_encode(&s, val);
	} else if (!strcmp(how, "short")) {
		vlen = 5;
	} else {
		kv_close(db);
		fprintf(stderr, "itest_helper: super: unknown damage '%s'\n", how);
		return 1;
	}
	e = kv_put(db, NULL, key, klen, val, vlen);
	if (e) {
		kv_close(db);
		return failf("kv_put", store, -e);
	}
	e = kv_close(db);
	return e ? failf("kv_close", store, -e) : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: itest_helper mkfiles DIR N | write DIR ID N | verify DIR ID N |\n"
			"                   churn DIR N | kvstore DIR |\n"
			"                   super STORE newer|features|short\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long a, b;

	if (argc == 4 && !strcmp(argv[1], "mkfiles"))
		return parse_count(argv[3], &a) ? 2 : mkfiles(argv[2], a);
	if (argc == 5 && (!strcmp(argv[1], "write") || !strcmp(argv[1], "verify"))) {
		if (parse_count(argv[3], &a) || parse_count(argv[4], &b))
			return 2;
		return argv[1][0] == 'w' ? write_files(argv[2], a, b) : verify_files(argv[2], a, b);
	}
	if (argc == 4 && !strcmp(argv[1], "churn"))
		return parse_count(argv[3], &a) ? 2 : churn(argv[2], a);
	if (argc == 3 && !strcmp(argv[1], "kvstore"))
		return kvstore(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "super"))
		return super(argv[2], argv[3]);
	return usage();
}
