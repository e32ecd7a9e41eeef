/* SPDX-License-Identifier: MIT */
/*
 * kvbench_backend.c - the libkv backend of kvbench ycsb, through kv.h only,
 * and the table of backends (see kvbench_backend.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "kv.h"
#include "kvbench_backend.h"

#define LIB_ERRORS_SHOWN 10

int kvb_lib_error(const char *lib, const char *what, const char *msg)
{
	static atomic_int shown;

	if (atomic_fetch_add(&shown, 1) < LIB_ERRORS_SHOWN)
		fprintf(stderr, "kvbench: %s %s: %s\n", lib, what, msg ? msg : "error");
	return -EIO;
}

bool kvb_plain_modes(enum kv_durability mode)
{
	return mode == KV_DUR_SYNC || mode == KV_DUR_BATCH;
}

/* ---- libkv -------------------------------------------------------------------- */

static bool kv_supports(enum kv_durability mode)
{
	return mode != KV_DUR_DEFAULT;
}

static int kvs_open(const struct kvb_open_args *a, struct kvb_store **out)
{
	struct kv_options opt;
	struct kv_db *db;
	int err;

	kv_options_init(&opt);
	opt.create_if_missing = 1;
	opt.error_if_exists = 1;
	opt.durability = a->mode;
	if (a->write_buffer)
		opt.log_buffer_size = a->write_buffer;
	if (a->cache)
		opt.block_cache_size = a->cache;
	err = kv_open(a->path, &opt, &db);
	if (!err)
		*out = (struct kvb_store *)db;
	return err;
}

static int kvs_close(struct kvb_store *s)
{
	return kv_close((struct kv_db *)s);
}

static ssize_t kvs_get(struct kvb_store *s, const void *key, size_t klen, void *buf, size_t cap)
{
	return kv_get((struct kv_db *)s, 0, key, klen, buf, cap);
}

static int kvs_put(struct kvb_store *s, const void *key, size_t klen, const void *val, size_t vlen)
{
	return kv_put((struct kv_db *)s, NULL, key, klen, val, vlen);
}

/* One iterator per scan: it pins a consistent view, as a YCSB scan expects. */
static int kvs_scan(struct kvb_store *s, const void *key, size_t klen, unsigned n, size_t *bytes)
{
	struct kv_iter *it;
	int got = 0, err;

	err = kv_iter_create((struct kv_db *)s, NULL, &it);
	if (err)
		return err;
	for (kv_iter_seek(it, key, klen); got < (int)n && kv_iter_valid(it); kv_iter_next(it)) {
		size_t vlen;

		kv_iter_value(it, &vlen);
		*bytes += vlen;
		got++;
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	return err ? err : got;
}

static int kvs_load(struct kvb_store *s, const struct kvb_kv *kv, unsigned n)
{
	const struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	struct kv_batch *b;
	int err;

	err = kv_batch_create(&b);
	if (err)
		return err;
	for (unsigned i = 0; i < n && !err; i++)
		err = kv_batch_put(b, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
	if (!err)
		err = kv_write((struct kv_db *)s, &wo, b);
	kv_batch_destroy(b);
	return err;
}

static int kvs_sync(struct kvb_store *s)
{
	return kv_sync((struct kv_db *)s);
}

static int kvs_stats(struct kvb_store *s, struct kv_stats *st)
{
	return kv_stats((struct kv_db *)s, st);
}

static const struct kvb_backend kvb_libkv = {
	.name = "libkv",
	.supports = kv_supports,
	.open = kvs_open,
	.close = kvs_close,
	.get = kvs_get,
	.put = kvs_put,
	.scan = kvs_scan,
	.load = kvs_load,
	.sync = kvs_sync,
	.stats = kvs_stats,
};

const struct kvb_backend *kvb_backend(enum ycsb_backend b)
{
	switch (b) {
	case YCSB_LIBKV:
		return &kvb_libkv;
#ifdef HAVE_ROCKSDB
	case YCSB_ROCKSDB:
		return &kvb_rocksdb;
#endif
#ifdef HAVE_LEVELDB
	case YCSB_LEVELDB:
		return &kvb_leveldb;
#endif
	default:
		return NULL;
	}
}
