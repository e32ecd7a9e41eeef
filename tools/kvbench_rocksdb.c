/* SPDX-License-Identifier: MIT */
/*
 * kvbench_rocksdb.c - the RocksDB backend of kvbench ycsb, through
 * rocksdb/c.h (Debian's librocksdb-dev; built with HAVE_ROCKSDB).
 *
 * Configured like libkv, so that the comparison is of designs and not of
 * settings: no compression (libkv has none), a memtable of libkv's log
 * buffer size, an LRU block cache of libkv's size, a 10-bit bloom filter.
 * Everything else is RocksDB's default (leveled compaction, two background
 * jobs, concurrent memtable writes, group commit by the write thread).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "kvbench_backend.h"

#define RDB_DEFAULT_BUFFER (64u << 20) /* libkv's default log buffer */
#define RDB_DEFAULT_CACHE (32u << 20)  /* libkv's default block cache */

struct rdb {
	rocksdb_t *db;
	rocksdb_options_t *opt;
	rocksdb_block_based_table_options_t *bbo;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wo;
	rocksdb_writeoptions_t *wo_load; /* sync = false */
	rocksdb_readoptions_t *ro;
};

static int rdb_err(const char *what, char *err)
{
	int rc = kvb_lib_error("rocksdb", what, err);

	rocksdb_free(err);
	return rc;
}

static void rdb_free(struct rdb *r)
{
	if (r->db)
		rocksdb_close(r->db);
	if (r->ro)
		rocksdb_readoptions_destroy(r->ro);
	if (r->wo)
		rocksdb_writeoptions_destroy(r->wo);
	if (r->wo_load)
		rocksdb_writeoptions_destroy(r->wo_load);
	if (r->opt)
		rocksdb_options_destroy(r->opt);
	if (r->bbo)
		rocksdb_block_based_options_destroy(r->bbo);
	if (r->cache)
		rocksdb_cache_destroy(r->cache);
	free(r);
}

static int rdb_open(const struct kvb_open_args *a, struct kvb_store **out)
{
	struct rdb *r = calloc(1, sizeof(*r));
	char *err = NULL;

	if (!r)
		return -ENOMEM;
	r->opt = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(r->opt, 1);
	rocksdb_options_set_error_if_exists(r->opt, 1);
	rocksdb_options_set_compression(r->opt, rocksdb_no_compression);
	rocksdb_options_set_write_buffer_size(r->opt, a->write_buffer ? a->write_buffer :
									RDB_DEFAULT_BUFFER);
	r->bbo = rocksdb_block_based_options_create();
	r->cache = rocksdb_cache_create_lru(a->cache ? a->cache : RDB_DEFAULT_CACHE);
	rocksdb_block_based_options_set_block_cache(r->bbo, r->cache);
	rocksdb_block_based_options_set_filter_policy(r->bbo,
						      rocksdb_filterpolicy_create_bloom(10));
	rocksdb_options_set_block_based_table_factory(r->opt, r->bbo);
	r->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(r->wo, a->mode == KV_DUR_SYNC);
	r->wo_load = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(r->wo_load, 0);
	r->ro = rocksdb_readoptions_create();
	r->db = rocksdb_open(r->opt, a->path, &err);
	if (err) {
		rdb_free(r);
		return rdb_err("open", err);
	}
	*out = (struct kvb_store *)r;
	return 0;
}

static int rdb_close(struct kvb_store *s)
{
	rdb_free((struct rdb *)s);
	return 0;
}

static ssize_t rdb_get(struct kvb_store *s, const void *key, size_t klen, void *buf, size_t cap)
{
	struct rdb *r = (struct rdb *)s;
	char *err = NULL;
	rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(r->db, r->ro, key, klen, &err);
	const char *v;
	size_t vlen;

	if (err)
		return rdb_err("get", err);
	if (!ps)
		return -ENOENT;
	v = rocksdb_pinnableslice_value(ps, &vlen);
	memcpy(buf, v, vlen < cap ? vlen : cap);
	rocksdb_pinnableslice_destroy(ps);
	return (ssize_t)vlen;
}

static int rdb_put(struct kvb_store *s, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct rdb *r = (struct rdb *)s;
	char *err = NULL;

	rocksdb_put(r->db, r->wo, key, klen, val, vlen, &err);
	return err ? rdb_err("put", err) : 0;
}

static int rdb_scan(struct kvb_store *s, const void *key, size_t klen, unsigned n, size_t *bytes)
{
	struct rdb *r = (struct rdb *)s;
	rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ro);
	char *err = NULL;
	int got = 0;

	for (rocksdb_iter_seek(it, key, klen); got < (int)n && rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t vlen;

		rocksdb_iter_value(it, &vlen);
		*bytes += vlen;
		got++;
	}
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	return err ? rdb_err("scan", err) : got;
}

static int rdb_load(struct kvb_store *s, const struct kvb_kv *kv, unsigned n)
{
	struct rdb *r = (struct rdb *)s;
	rocksdb_writebatch_t *b = rocksdb_writebatch_create();
	char *err = NULL;

	for (unsigned i = 0; i < n; i++)
		rocksdb_writebatch_put(b, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
	rocksdb_write(r->db, r->wo_load, b, &err);
	rocksdb_writebatch_destroy(b);
	return err ? rdb_err("write", err) : 0;
}

static int rdb_sync(struct kvb_store *s)
{
	char *err = NULL;

	rocksdb_flush_wal(((struct rdb *)s)->db, 1, &err);
	return err ? rdb_err("flush_wal", err) : 0;
}

const struct kvb_backend kvb_rocksdb = {
	.name = "rocksdb",
	.supports = kvb_plain_modes,
	.open = rdb_open,
	.close = rdb_close,
	.get = rdb_get,
	.put = rdb_put,
	.scan = rdb_scan,
	.load = rdb_load,
	.sync = rdb_sync,
};
