/* SPDX-License-Identifier: MIT */
/*
 * kvbench_leveldb.c - the LevelDB backend of kvbench ycsb, through
 * leveldb/c.h (Debian's libleveldb-dev; built with HAVE_LEVELDB).
 *
 * Configured like libkv: no compression, a memtable (write buffer) of
 * libkv's log buffer size, an LRU block cache of libkv's size, a 10-bit
 * bloom filter; the rest is LevelDB's default. Its writers queue behind one
 * leader that writes and syncs the log for the group.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

#include "kvbench_backend.h"

#define LDB_DEFAULT_BUFFER (64u << 20) /* libkv's default log buffer */
#define LDB_DEFAULT_CACHE (32u << 20)  /* libkv's default block cache */

struct ldb {
	leveldb_t *db;
	leveldb_options_t *opt;
	leveldb_cache_t *cache;
	leveldb_filterpolicy_t *bloom;
	leveldb_writeoptions_t *wo;
	leveldb_writeoptions_t *wo_load; /* sync = false */
	leveldb_writeoptions_t *wo_sync; /* sync = true, for kvb sync */
	leveldb_readoptions_t *ro;
};

static int ldb_err(const char *what, char *err)
{
	int rc = kvb_lib_error("leveldb", what, err);

	leveldb_free(err);
	return rc;
}

static void ldb_free(struct ldb *l)
{
	if (l->db)
		leveldb_close(l->db);
	if (l->ro)
		leveldb_readoptions_destroy(l->ro);
	if (l->wo)
		leveldb_writeoptions_destroy(l->wo);
	if (l->wo_load)
		leveldb_writeoptions_destroy(l->wo_load);
	if (l->wo_sync)
		leveldb_writeoptions_destroy(l->wo_sync);
	if (l->opt)
		leveldb_options_destroy(l->opt);
	if (l->bloom)
		leveldb_filterpolicy_destroy(l->bloom);
	if (l->cache)
		leveldb_cache_destroy(l->cache);
	free(l);
}

static leveldb_writeoptions_t *wo_make(int sync)
{
	leveldb_writeoptions_t *wo = leveldb_writeoptions_create();

	leveldb_writeoptions_set_sync(wo, (unsigned char)sync);
	return wo;
}

static int ldb_open(const struct kvb_open_args *a, struct kvb_store **out)
{
	struct ldb *l = calloc(1, sizeof(*l));
	char *err = NULL;

	if (!l)
		return -ENOMEM;
	l->opt = leveldb_options_create();
	leveldb_options_set_create_if_missing(l->opt, 1);
	leveldb_options_set_error_if_exists(l->opt, 1);
	leveldb_options_set_compression(l->opt, leveldb_no_compression);
	leveldb_options_set_write_buffer_size(l->opt, a->write_buffer ? a->write_buffer :
									LDB_DEFAULT_BUFFER);
	l->cache = leveldb_cache_create_lru(a->cache ? a->cache : LDB_DEFAULT_CACHE);
	leveldb_options_set_cache(l->opt, l->cache);
	l->bloom = leveldb_filterpolicy_create_bloom(10);
	leveldb_options_set_filter_policy(l->opt, l->bloom);
	l->wo = wo_make(a->mode == KV_DUR_SYNC);
	l->wo_load = wo_make(0);
	l->wo_sync = wo_make(1);
	l->ro = leveldb_readoptions_create();
	l->db = leveldb_open(l->opt, a->path, &err);
	if (err) {
		ldb_free(l);
		return ldb_err("open", err);
	}
	*out = (struct kvb_store *)l;
	return 0;
}

static int ldb_close(struct kvb_store *s)
{
	ldb_free((struct ldb *)s);
	return 0;
}

static ssize_t ldb_get(struct kvb_store *s, const void *key, size_t klen, void *buf, size_t cap)
{
	struct ldb *l = (struct ldb *)s;
	char *err = NULL, *v;
	size_t vlen = 0;

	v = leveldb_get(l->db, l->ro, key, klen, &vlen, &err);
	if (err)
		return ldb_err("get", err);
	if (!v)
		return -ENOENT;
	memcpy(buf, v, vlen < cap ? vlen : cap);
	leveldb_free(v);
	return (ssize_t)vlen;
}

static int ldb_put(struct kvb_store *s, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct ldb *l = (struct ldb *)s;
	char *err = NULL;

	leveldb_put(l->db, l->wo, key, klen, val, vlen, &err);
	return err ? ldb_err("put", err) : 0;
}

static int ldb_scan(struct kvb_store *s, const void *key, size_t klen, unsigned n, size_t *bytes)
{
	struct ldb *l = (struct ldb *)s;
	leveldb_iterator_t *it = leveldb_create_iterator(l->db, l->ro);
	char *err = NULL;
	int got = 0;

	for (leveldb_iter_seek(it, key, klen); got < (int)n && leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		size_t vlen;

		leveldb_iter_value(it, &vlen);
		*bytes += vlen;
		got++;
	}
	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	return err ? ldb_err("scan", err) : got;
}

static int ldb_write(struct ldb *l, const leveldb_writeoptions_t *wo, const struct kvb_kv *kv,
		     unsigned n)
{
	leveldb_writebatch_t *b = leveldb_writebatch_create();
	char *err = NULL;

	for (unsigned i = 0; i < n; i++)
		leveldb_writebatch_put(b, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
	leveldb_write(l->db, wo, b, &err);
	leveldb_writebatch_destroy(b);
	return err ? ldb_err("write", err) : 0;
}

static int ldb_load(struct kvb_store *s, const struct kvb_kv *kv, unsigned n)
{
	struct ldb *l = (struct ldb *)s;

	return ldb_write(l, l->wo_load, kv, n);
}

/* LevelDB has no "sync the log": an empty batch with sync = true does it. */
static int ldb_sync(struct kvb_store *s)
{
	struct ldb *l = (struct ldb *)s;

	return ldb_write(l, l->wo_sync, NULL, 0);
}

const struct kvb_backend kvb_leveldb = {
	.name = "leveldb",
	.supports = kvb_plain_modes,
	.open = ldb_open,
	.close = ldb_close,
	.get = ldb_get,
	.put = ldb_put,
	.scan = ldb_scan,
	.load = ldb_load,
	.sync = ldb_sync,
};
