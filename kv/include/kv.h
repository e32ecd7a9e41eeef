/* SPDX-License-Identifier: MIT */
/*
 * kv.h - the public interface of libkv, the key-value engine under kvfs.
 *
 * This is the only header of kv/ that other layers include. Every handle is
 * opaque; every function returns 0 (or a byte count) on success and a
 * negative errno on failure. Human-readable detail for a failure (the file,
 * the offset, what was expected) goes to the options' log callback, which
 * defaults to stderr.
 *
 * Semantics (see ../shared/DESIGN.md, "libkv"):
 *   - keys and values are byte strings, keys ordered by memcmp then length;
 *     limits KV_MAX_KEY and KV_MAX_VALUE (-E2BIG beyond them, -EINVAL for an
 *     empty key);
 *   - a write batch is atomic for readers and across crashes;
 *   - writes have one global order (the log sequence number, LSN); after a
 *     crash the store is exactly a prefix of that order;
 *   - plain reads return the newest *committed* version and never wait for a
 *     writer; KV_READ_LATEST returns the newest appended version, for callers
 *     that serialize their own writers with their own locks.
 *
 * Thread safety: a struct kv_db may be used by any number of threads at
 * once. A struct kv_batch belongs to one thread at a time. A struct kv_cq is
 * filled by the engine from any thread and drained by its owner only.
 */
#ifndef KV_H
#define KV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The on-disk format version this library writes and the newest it reads. */
#define KV_FORMAT_VERSION 2

#define KV_MAX_KEY 4096u	 /* bytes */
#define KV_MAX_VALUE (16u << 20) /* bytes; also at most log_buffer_size / 4 */
#define KV_MAX_LEVELS 7		 /* level 0 .. 6 */

struct kv_db;
struct kv_batch;
struct kv_cq;
struct kv_env;

/*
 * Durability of a write (DESIGN.md, "Semantics").
 *
 * KV_DUR_SYNC          acknowledged once durable (group-committed fdatasync).
 * KV_DUR_BATCH         acknowledged once appended and visible to KV_READ_LATEST;
 *                      durable within the commit bound: the commit pipeline
 *                      submits every appended byte with the next group commit
 *                      after the one in flight, even if no further write
 *                      comes, and writers wait when more than
 *                      batch_max_pending bytes are not yet durable (see
 *                      kv/FORMAT.md, "Durability bound").
 * KV_DUR_FSYNC_PER_OP  baseline: writers are serialized and each does its own
 *                      write + fdatasync. For benchmarks only.
 * KV_DUR_LOCKED        baseline: the writer holds the key's lock across its
 *                      commit and readers take that lock. For benchmarks only.
 */
enum kv_durability {
	KV_DUR_DEFAULT = 0, /* in write options: the database's mode */
	KV_DUR_SYNC,
	KV_DUR_BATCH,
	KV_DUR_FSYNC_PER_OP,
	KV_DUR_LOCKED,
};

enum kv_log_level { KV_LOG_ERROR, KV_LOG_WARN, KV_LOG_INFO, KV_LOG_DEBUG };

/* Called from any thread of the engine, possibly from several at once. */
typedef void (*kv_log_fn)(void *ctx, enum kv_log_level level, const char *msg);

struct kv_options {
	int create_if_missing;	       /* create an empty store if dir has none */
	int error_if_exists;	       /* -EEXIST if dir already holds a store */
	enum kv_durability durability; /* default KV_DUR_SYNC */
	size_t log_buffer_size;	       /* bytes per memtable log buffer = WAL
					* segment size; default 64 MiB, range
					* [64 KiB, 256 MiB] */
	size_t batch_max_pending;      /* batch mode: a writer whose append leaves
					* more than this many bytes not yet durable
					* waits for the excess to commit, so that
					* acknowledged writes stay within the
					* durability bound; 0 = the default,
					* min(1 MiB, log_buffer_size / 4);
					* else in [4 KiB, log_buffer_size / 2] */
	size_t block_cache_size;       /* bytes of table blocks cached; default
					* 32 MiB; 0 = the default */
	size_t table_target_size;      /* compaction output file size; default
					* 8 MiB; 0 = the default */
	int max_open_tables;	       /* table files kept open; default 512,
					* 0 = the default, minimum 16 (readers
					* in flight may hold one more each) */
	size_t level1_max_bytes;       /* size bound of level 1 (each deeper level
					* x10); default 4 * log_buffer_size */
	int max_immutable;	       /* memtables waiting for flush before
					* writers stall; default 2, range [1, 16] */
	int l0_compact_trigger;	       /* level-0 depth (the most level-0 tables
					* holding one same key) that starts a
					* compaction; default 4 */
	int l0_stall;		       /* level-0 depth at which writers stall
					* until compaction catches up; default 12 */
	int manual_background;	       /* tests: no automatic flush/compaction,
					* only kv_flush / kv_compact */
	struct kv_env *env;	       /* file I/O; NULL = the real one */
	kv_log_fn log;		       /* NULL = stderr, errors and warnings */
	void *log_ctx;
};

/* Fill *opt with the defaults. */
void kv_options_init(struct kv_options *opt);

/*
 * Open the store in directory @dir. Errors: -ENOENT (no store and
 * !create_if_missing), -EEXIST (error_if_exists), -EBUSY (another handle or
 * process has it open), -EMEDIUMTYPE (dir holds something that is not a libkv
 * store), -EPROTONOSUPPORT (a newer format or unknown incompatible feature),
 * -EUCLEAN / -EBADMSG (corruption that recovery cannot treat as a torn tail),
 * -EINVAL (bad options), or an I/O error. Recovery replays the WAL; see
 * kv/FORMAT.md for what counts as a torn tail.
 */
int kv_open(const char *dir, const struct kv_options *opt, struct kv_db **out);

/* Commit everything appended, stop background work, free. Returns the first
 * error of the final commit, or -EIO if the database had failed (the handle
 * is freed regardless). */
int kv_close(struct kv_db *db);

/* ---- writes ----------------------------------------------------------- */

struct kv_write_options {
	enum kv_durability durability; /* KV_DUR_DEFAULT = the database's */
};

/* A batch of puts and deletes applied atomically, in order. */
int kv_batch_create(struct kv_batch **out);
void kv_batch_destroy(struct kv_batch *b);
void kv_batch_clear(struct kv_batch *b);
int kv_batch_put(struct kv_batch *b, const void *key, size_t klen, const void *val, size_t vlen);
int kv_batch_delete(struct kv_batch *b, const void *key, size_t klen);
/* Delete every key k with start <= k < end (a range tombstone; O(1) for the
 * caller whatever the range holds). -EINVAL if start >= end. */
int kv_batch_delete_range(struct kv_batch *b, const void *start, size_t slen, const void *end,
			  size_t elen);
uint32_t kv_batch_count(const struct kv_batch *b);

/*
 * Synchronous writes: return once the write is acknowledged under its
 * durability mode. @wo may be NULL. After a failed WAL write or fdatasync
 * the database is failed and every write returns -EIO until it is reopened.
 */
int kv_put(struct kv_db *db, const struct kv_write_options *wo, const void *key, size_t klen,
	   const void *val, size_t vlen);
int kv_delete(struct kv_db *db, const struct kv_write_options *wo, const void *key, size_t klen);
int kv_write(struct kv_db *db, const struct kv_write_options *wo, const struct kv_batch *b);
int kv_delete_range(struct kv_db *db, const struct kv_write_options *wo, const void *start,
		    size_t slen, const void *end, size_t elen);

/*
 * Asynchronous writes. The batch is appended (and its bytes copied) before
 * the call returns, so @b may be reused at once; the acknowledgement comes
 * later, exactly once, with status 0 or a negative errno:
 *   kv_write_async  as a completion in @cq carrying @tag;
 *   kv_write_cb     by calling @cb(@arg, status) from an engine thread, which
 *                   must not block for long and must not wait on this db.
 * If the call itself returns an error, no completion will come.
 * Many writes may be in flight per caller; completions of one caller's
 * writes of one durability mode arrive in the order of their LSNs (a batch
 * mode write is acknowledged at append, so it may overtake an earlier sync
 * one).
 */
typedef void (*kv_done_fn)(void *arg, int status);
int kv_write_async(struct kv_db *db, const struct kv_write_options *wo, const struct kv_batch *b,
		   struct kv_cq *cq, uint64_t tag);
int kv_write_cb(struct kv_db *db, const struct kv_write_options *wo, const struct kv_batch *b,
		kv_done_fn cb, void *arg);

/* A private completion queue, owned by one thread. */
struct kv_completion {
	uint64_t tag;
	int status;
};
int kv_cq_create(struct kv_cq **out);
/* Only once no write aimed at it is in flight. */
void kv_cq_destroy(struct kv_cq *cq);
/*
 * Move up to @max completions into @out; wait until at least @min are there
 * (0 = do not wait). Returns the number moved.
 */
int kv_cq_reap(struct kv_cq *cq, struct kv_completion *out, int max, int min);

/*
 * Wait until every write appended before the call is durable. Returns -EIO
 * if the database has failed.
 */
int kv_sync(struct kv_db *db);

/* ---- reads ------------------------------------------------------------ */

/* Newest appended version, committed or not (if the store then fails, it
 * may be one whose commit failed: it is not durable and never will be). */
#define KV_READ_LATEST 0x1u

/*
 * Look @key up. On success returns the value's length and copies
 * min(length, @cap) bytes into @buf (so a return above @cap means "call again
 * with a bigger buffer"). -ENOENT if there is no such key.
 */
ssize_t kv_get(struct kv_db *db, unsigned flags, const void *key, size_t klen, void *buf,
	       size_t cap);
/* As kv_get, into a malloc'd buffer the caller frees. */
int kv_get_alloc(struct kv_db *db, unsigned flags, const void *key, size_t klen, void **val,
		 size_t *vlen);

/*
 * Snapshots pin a point in the write order: reads and iterators at a
 * snapshot see exactly the writes committed (durable) when it was taken,
 * and compaction keeps what they need until they are released.
 */
struct kv_snapshot;
int kv_snapshot_create(struct kv_db *db, struct kv_snapshot **out);
void kv_snapshot_release(struct kv_db *db, struct kv_snapshot *snap);
/* The snapshot's point in the order: it sees writes with LSN below this. */
uint64_t kv_snapshot_lsn(const struct kv_snapshot *snap);
/* kv_get at a snapshot (NULL = now, committed versions). */
ssize_t kv_get_at(struct kv_db *db, const struct kv_snapshot *snap, const void *key, size_t klen,
		  void *buf, size_t cap);

/*
 * Ordered forward iteration over a consistent view of the whole store: the
 * given snapshot, or (@snap NULL) the committed state when it is created.
 * The iterator holds that view (and the files under it) until destroyed.
 * key/value pointers stay valid until the next call on the iterator.
 * kv_iter_status is 0 at a clean end and a negative errno if an error
 * (corruption, I/O) ended the iteration early.
 */
struct kv_iter;
int kv_iter_create(struct kv_db *db, const struct kv_snapshot *snap, struct kv_iter **out);
/*
 * kv_iter_create with read @flags. KV_READ_LATEST (@snap must be NULL):
 * every key shows its newest appended version, committed or not, as
 * kv_get(KV_READ_LATEST) would return it when the iterator reaches the key;
 * puts, deletes and range deletes appended before the call and not yet
 * durable count. For callers that serialize the writers of the keys they
 * scan with their own locks (kvfs counting a file's blocks under its
 * stripe lock) and must not wait for a commit: it replaces kv_sync followed
 * by a plain iterator. It is not a consistent view of other writers: of a
 * write appended after the call, the puts and deletes of keys not yet
 * passed may show and the range deletes do not; and if the store then
 * fails, a version shown may be one whose commit failed.
 * -EINVAL for an unknown flag or KV_READ_LATEST with a snapshot.
 */
int kv_iter_create_flags(struct kv_db *db, unsigned flags, const struct kv_snapshot *snap,
			 struct kv_iter **out);
void kv_iter_destroy(struct kv_iter *it);
void kv_iter_seek_first(struct kv_iter *it);
/* First key >= @key. */
void kv_iter_seek(struct kv_iter *it, const void *key, size_t klen);
int kv_iter_valid(const struct kv_iter *it);
void kv_iter_next(struct kv_iter *it);
const void *kv_iter_key(const struct kv_iter *it, size_t *klen);
const void *kv_iter_value(const struct kv_iter *it, size_t *vlen);
int kv_iter_status(const struct kv_iter *it);

/* ---- maintenance -------------------------------------------------------- */

/* Turn the active memtable (if it holds anything) into an immutable one and
 * wait until every immutable memtable is flushed to a table and its WAL
 * segment deleted. */
int kv_flush(struct kv_db *db);
/* kv_flush, then compact everything into the deepest level in use, dropping
 * what no snapshot needs; waits. The replaced tables are deleted before it
 * returns, except those an open iterator still reads (deleted when it is
 * destroyed). */
int kv_compact(struct kv_db *db);

/*
 * Verify a store that no process has open: the identity file, CURRENT and
 * every manifest record, every table (footer, index, filter, every block's
 * checksum, key order) and every WAL segment record. @report is called once
 * per problem with the file, the offset and what is wrong. Returns the
 * number of problems (0 = clean) or a negative errno if the store cannot be
 * checked at all (-ENOENT: no such directory, -EMEDIUMTYPE: no store in it,
 * -EBUSY: it is open, ...). Nothing is written. @env NULL = real.
 */
typedef void (*kv_check_fn)(void *arg, const char *file, uint64_t off, const char *problem);
int kv_check(const char *dir, struct kv_env *env, kv_check_fn report, void *arg);

/* ---- introspection ---------------------------------------------------- */

struct kv_stats {
	uint64_t appended_lsn;		/* end of the last appended record */
	uint64_t durable_lsn;		/* everything below is on disk */
	uint64_t records;		/* WAL records (batches) appended */
	uint64_t commits;		/* group commits completed */
	uint64_t commit_bytes;		/* bytes written by group commits */
	uint64_t versions_replaced;	/* uncommitted versions replaced in place */
	uint64_t versions_superseded;	/* versions already older than the latest */
	uint64_t log_buffer_bytes;	/* bytes used in all memtable log buffers */
	uint64_t log_buffer_live_bytes; /* of which still referenced by a key */
	uint64_t memtables;		/* active + immutable */
	uint64_t wal_segments;		/* live WAL segment files */
	int failed;			/* 0, or the error that failed the store */

	/* persistence (this process's counters since open) */
	uint64_t level_tables[KV_MAX_LEVELS]; /* tables per level now */
	uint64_t level_bytes[KV_MAX_LEVELS];  /* their bytes */
	uint64_t flushes, flush_bytes;	      /* memtables flushed, table bytes */
	uint64_t compactions;
	uint64_t compact_read_bytes, compact_write_bytes;
	uint64_t user_bytes;	   /* key + value bytes of writes accepted */
	double write_amp;	   /* (WAL + flush + compaction bytes) / user_bytes */
	double space_amp;	   /* all table bytes / bytes of the deepest level
				    * (1.0 right after kv_compact) */
	uint64_t stalls, stall_ns; /* writer stalls on memory or level 0 */
	uint64_t cache_hits, cache_misses, cache_bytes;
	uint64_t snapshots; /* live snapshots */
	int bg_error;	    /* 0, or the last flush/compaction error */

	/* Since open, over every memtable, flushed ones included (the fields
	 * above count the memtables in memory now, so they drop at a flush):
	 * what a benchmark subtracts to get the versions of one run. */
	uint64_t versions_replaced_total;
	uint64_t versions_superseded_total;
};
int kv_stats(struct kv_db *db, struct kv_stats *st);

/* The name of a durability mode ("sync", "batch", "fsync-per-op", "locked")
 * and back (-EINVAL for an unknown name). */
const char *kv_durability_name(enum kv_durability d);
int kv_durability_parse(const char *name, enum kv_durability *out);

/* ---- file I/O environments (see kv/env.h for the interface) ----------- */

/* The real environment: POSIX calls, WAL commits through io_uring. Shared,
 * never freed. */
struct kv_env *kv_env_default(void);

/*
 * A fault-injecting environment for tests, wrapping @base. It remembers every
 * write not yet made durable (by fsync/fdatasync of the file, or of its
 * directory for creates, renames and unlinks) so that a power cut can be
 * simulated.
 */
struct kv_fault_env;
int kv_fault_env_create(struct kv_env *base, struct kv_fault_env **out);
void kv_fault_env_destroy(struct kv_fault_env *fe);
struct kv_env *kv_fault_env_env(struct kv_fault_env *fe);

struct kv_fault_rules {
	int64_t fail_sync_after;    /* the Nth later sync fails with -EIO (1 = next);
				     * then every sync fails; 0 = off */
	int64_t enospc_after_bytes; /* writes past this many more bytes fail
				     * with -ENOSPC (partially: a short
				     * write first); 0 = off */
	int short_writes;	    /* each write writes at most half its
				     * bytes (at least 1) per call */
	int64_t crash_after_ops;    /* after N more I/O calls every call fails
				     * with -EIO, as if the process had died
				     * there; 0 = off */
};
void kv_fault_env_set_rules(struct kv_fault_env *fe, const struct kv_fault_rules *r);

/*
 * Simulate a power cut: every file is put back to its durable state (unsynced
 * writes undone, files whose creation was not made durable removed, renames
 * and unlinks not made durable undone). With @torn_seed != 0, a seeded random
 * subset of the unsynced 512-byte sectors survives instead, as a torn write
 * would leave them. All files must be closed (the db closed or abandoned).
 */
int kv_fault_env_power_cut(struct kv_fault_env *fe, uint64_t torn_seed);
/*
 * A power cut now, with the db still open (a test hook for a process that
 * then exits at once with _exit, or abandons the db with kv_abandon): every
 * later call through the env fails with -EIO (close still closes), so no
 * I/O can become durable any more, and the files are put back to their
 * durable state as by kv_fault_env_power_cut. A later
 * kv_fault_env_power_cut, once every file is closed, lifts the freeze.
 */
int kv_fault_env_freeze(struct kv_fault_env *fe, uint64_t torn_seed);
/* Forget the remembered unsynced state (as if everything had been synced). */
void kv_fault_env_settle(struct kv_fault_env *fe);

/*
 * Abandon a database without committing anything: the state a SIGKILL leaves
 * (for tests with a fault env). Frees memory and closes files only.
 */
void kv_abandon(struct kv_db *db);

#ifdef __cplusplus
}
#endif
#endif /* KV_H */
