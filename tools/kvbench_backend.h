/* SPDX-License-Identifier: MIT */
/*
 * kvbench_backend.h - the stores kvbench ycsb drives: libkv (kvbench_backend.c),
 * RocksDB (kvbench_rocksdb.c, with HAVE_ROCKSDB) and LevelDB
 * (kvbench_leveldb.c, with HAVE_LEVELDB), each through its C API, behind one
 * table of operations so that every backend runs the same generators on the
 * same key and value bytes.
 *
 * Durability: libkv opens in the mode asked. RocksDB and LevelDB know two:
 * KV_DUR_SYNC is WriteOptions.sync = true (acknowledged once the WAL is
 * synced, group-committed by their write thread), KV_DUR_BATCH is sync =
 * false (acknowledged once in the OS page cache); other modes are libkv's own.
 *
 * Every operation returns 0 (get: the value's length) or a negative errno; a
 * backend's error text goes to stderr once, -EIO is returned. Thread safety:
 * a store is used by all the benchmark's threads at once, as each library
 * allows.
 */
#ifndef KVBENCH_BACKEND_H
#define KVBENCH_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kv.h"
#include "ycsb_opts.h"

struct kvb_store;

struct kvb_open_args {
	const char *path; /* an empty directory, made by the caller */
	enum kv_durability mode;
	size_t write_buffer; /* libkv log buffer, the others' memtable; 0 = defaults */
	size_t cache;	     /* block cache bytes; 0 = libkv's default */
};

/* One put of a load batch. */
struct kvb_kv {
	const void *key, *val;
	size_t klen, vlen;
};

struct kvb_backend {
	const char *name;
	bool (*supports)(enum kv_durability mode);
	int (*open)(const struct kvb_open_args *a, struct kvb_store **out);
	int (*close)(struct kvb_store *s);
	/* Like kv_get: the length, min(length, cap) bytes copied; -ENOENT. */
	ssize_t (*get)(struct kvb_store *s, const void *key, size_t klen, void *buf, size_t cap);
	/* A put at the store's durability. */
	int (*put)(struct kvb_store *s, const void *key, size_t klen, const void *val, size_t vlen);
	/* Up to @n records from the first key >= @key; returns how many were
	 * read, their value bytes added to *bytes. */
	int (*scan)(struct kvb_store *s, const void *key, size_t klen, unsigned n, size_t *bytes);
	/* @n puts as one batch, acknowledged without waiting for durability. */
	int (*load)(struct kvb_store *s, const struct kvb_kv *kv, unsigned n);
	/* Wait until everything written is durable. */
	int (*sync)(struct kvb_store *s);
	/* libkv only (NULL for the others): the engine's counters. */
	int (*stats)(struct kvb_store *s, struct kv_stats *st);
};

/* The backend, or NULL if this kvbench was built without it. */
const struct kvb_backend *kvb_backend(enum ycsb_backend b);

#ifdef HAVE_ROCKSDB
extern const struct kvb_backend kvb_rocksdb;
#endif
#ifdef HAVE_LEVELDB
extern const struct kvb_backend kvb_leveldb;
#endif

/* For the RocksDB and LevelDB backends: print their error text @msg of
 * @what (the first few only, not one line per failed operation); -EIO. */
int kvb_lib_error(const char *lib, const char *what, const char *msg);
/* Both know sync and batch only. */
bool kvb_plain_modes(enum kv_durability mode);

#endif
