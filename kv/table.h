/* SPDX-License-Identifier: MIT */
/*
 * table.h - sorted tables ("tbl-<file number>.sst"): immutable files of
 * internal keys (ikey.h) with their values, plus the range tombstones of the
 * same data. Byte layout: kv/FORMAT.md, "Sorted tables".
 *
 *   [data block]...[filter block][range-del block][properties block]
 *   [index block][footer]
 *
 * Data and index blocks hold prefix-compressed keys with restart points;
 * every block is followed by a trailer with its xxh3 checksum; the filter is
 * a bloom filter over the user keys (xxh3 hashes); the footer has the magic
 * and the format version and locates the other blocks.
 *
 * A builder is used by one thread. An open table (struct kv_table) is
 * immutable and may be read by any number of threads at once: its index,
 * filter, properties and range tombstones are loaded at open; data blocks
 * come through the block cache (cache.h) or, without one, are read per use.
 * Every error names the file and the offset (through the options' log).
 *
 * File descriptors. Given a table file cache (tcache.h; the db has one,
 * sized by kv_options.max_open_tables), a table does not keep its file
 * open: everything but the data blocks is in memory after open, and each
 * data-block read that misses the block cache pins the file in the file
 * cache for the length of the pread, reopening it (same path, O_RDONLY,
 * same env) if the cache closed it to make room. So the db holds at most
 * max_open_tables table fds plus one per thread reading at that moment,
 * however many tables it has. A failed reopen (file gone, -EMFILE) is a
 * read error: logged with the path, returned by get and the iterators.
 * kv_table_close closes the table's fd if the cache holds it, so the caller
 * may unlink the file next. Without a file cache (NULL: tools, tests, short
 * looks at one table) the table keeps its file open from open to close.
 */
#ifndef KV_TABLE_H
#define KV_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "env.h"
#include "ikey.h"
#include "rangedel.h"
#include "tcache.h"

#define KV_TABLE_NAME_FMT "tbl-%016llx.sst"
int kv_table_parse_name(const char *name, uint64_t *file_no);

struct kv_table_build_opts {
	size_t block_size;	/* target data block size; 0 = 4096 */
	int restart_interval;	/* keys between restart points; 0 = 16 */
	int bloom_bits_per_key; /* 0 = 10 */
};

/* What a finished (or opened) table holds. smallest/largest cover both the
 * internal keys and the range tombstones (a tombstone [s, e) counts as
 * (s, its lsn) .. (e, KV_LSN_MAX) for the range); malloc'd. */
struct kv_table_props {
	uint64_t file_size;
	uint64_t entries;    /* internal keys */
	uint64_t rangedels;  /* range tombstones */
	uint64_t data_bytes; /* bytes of data blocks */
	uint64_t min_lsn, max_lsn;
	uint8_t *smallest, *largest; /* internal keys; NULL if empty */
	size_t slen, llen;
};
void kv_table_props_free(struct kv_table_props *p);

struct kv_table_builder;

/* Create @path (O_EXCL) for a new table numbered @file_no. */
int kv_tb_create(struct kv_env *env, const struct kv_options *log, const char *path,
		 uint64_t file_no, const struct kv_table_build_opts *o,
		 struct kv_table_builder **out);
/* Add an entry; internal keys strictly increasing (kv_ikey_cmp). */
int kv_tb_add(struct kv_table_builder *b, const uint8_t *ik, size_t iklen, const void *val,
	      size_t vlen);
/* Add a range tombstone (any order relative to entries). */
int kv_tb_add_rangedel(struct kv_table_builder *b, const void *start, size_t slen, const void *end,
		       size_t elen, uint64_t lsn);
/* Bytes the file will have so far (for output splitting). */
uint64_t kv_tb_size(const struct kv_table_builder *b);
uint64_t kv_tb_entries(const struct kv_table_builder *b);
/* Write the rest, fsync the file, close it, fill *props (caller frees
 * with kv_table_props_free). The builder is freed either way; on error the
 * file is removed. The directory is not synced (the caller's job, before
 * the manifest names the file). */
int kv_tb_finish(struct kv_table_builder *b, struct kv_table_props *props);
/* Give up: close and remove the file, free the builder. */
void kv_tb_abandon(struct kv_table_builder *b);

struct kv_table;

/*
 * Open table @path, numbered @file_no, expected to be @size bytes (0 = do
 * not check). Verifies footer, index, filter, properties and range-del block
 * checksums (not the data blocks: those on use, or kv_table_check).
 * -EUCLEAN/-EBADMSG on corruption, -EPROTONOSUPPORT for a newer version,
 * -ENOENT if missing; each with a log message naming file and offset.
 * @cache (blocks) may be NULL. @files may be NULL: then the table keeps its
 * file open until closed; else it holds a slot in @files, which must
 * outlive it (see above).
 */
int kv_table_open(struct kv_env *env, const struct kv_options *log, const char *path,
		  uint64_t file_no, uint64_t size, struct kv_cache *cache, struct kv_tcache *files,
		  struct kv_table **out);
/* No get or iterator may be in progress on @t. Releases its fd (its own,
 * or the file cache's) before returning. */
void kv_table_close(struct kv_table *t);
const struct kv_table_props *kv_table_props(const struct kv_table *t);
const struct kv_rdset *kv_table_rangedels(const struct kv_table *t);
uint64_t kv_table_file_no(const struct kv_table *t);

/*
 * The newest entry for user key @key with lsn < @snap: returns 1 and calls
 * @fn(arg, kind, lsn, value, vlen) while the value is readable (the block
 * pinned); 0 if the table has none (the bloom filter often answers that
 * without a data block read); or a negative errno (corruption, I/O).
 */
typedef void (*kv_table_hit_fn)(void *arg, unsigned kind, uint64_t lsn, const void *val,
				size_t vlen);
int kv_table_get(struct kv_table *t, const void *key, size_t klen, uint64_t snap,
		 kv_table_hit_fn fn, void *arg);
/* kv_table_get with @bloom_hash = kv_bloom_hash(key, klen) computed by the
 * caller once for every table it asks (= kv_memtable_hash). */
int kv_table_get_hashed(struct kv_table *t, const void *key, size_t klen, uint64_t bloom_hash,
			uint64_t snap, kv_table_hit_fn fn, void *arg);

/* An internal iterator over every entry (all versions) of the table. The
 * table must outlive it. */
int kv_table_iter(struct kv_table *t, struct kv_iiter **out);
/* The same for a compaction: blocks not in the cache are read for the
 * iterator alone, not added (a bulk read must not evict the readers'). */
int kv_table_iter_bulk(struct kv_table *t, struct kv_iiter **out);

/*
 * Verify every byte of table @path: footer, every block checksum, index
 * order and handles, data key order, properties against the data, filter
 * answers for every key. Calls @report(arg, path, offset, problem) for each
 * problem found; returns how many (0 = clean) or -errno if it cannot read
 * the file at all.
 */
int kv_table_check(struct kv_env *env, const char *path, uint64_t file_no, kv_check_fn report,
		   void *arg);

#endif /* KV_TABLE_H */
