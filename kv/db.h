/* SPDX-License-Identifier: MIT */
/*
 * db.h - the engine's internal state, shared by db.c (API, write path),
 * commit.c (group commit), store.c (store directory, segments) and
 * recovery.c (WAL replay).
 *
 * Lock order (outermost first), and what may be held across what:
 *   1. db->fpo_mu            (fsync-per-op baseline: across the commit)
 *   2. db->stripe[i]         (locked baseline: across the commit; in index order)
 *   3. commit token          (db->token; across the WAL write + fdatasync)
 *   4. db->ver_mu            (shape changes and the manifest: background
 *                            threads only, held across manifest I/O; no
 *                            foreground thread ever takes it)
 *   5. db->bg_mu             (background work state, stalls)
 *   6. db->rot_mu            (rotation, spare segment; never across a commit)
 *   7. db->sv_mu, db->snap_mu, db->retired_mu (leaves: install a super / edit
 *                            the snapshot list / flushed memtables' counters)
 *   8. kv_mnode.lock, kv_cq.mu, memtable arena_mu, cache shard mutexes, the
 *      table file cache's mutex (leaf locks, a few instructions)
 *
 * Read-side protection (version.c): every foreground call runs inside a guard
 * (kv_guard_enter/exit: two per-phase counters, no lock). The db's current
 * super (memtables + table version) is loaded inside the guard; a replaced
 * super is retired and freed only after a grace period (every guard that
 * could have seen it has exited), and it holds references on its memtables
 * and version, which hold references on their tables. Iterators and
 * snapshots take a reference on the super and leave the guard.
 * A thread holding the commit token never waits for a writer except for the
 * bounded copy+index window between a writer's reservation and its release,
 * and writers never wait for the token while inside that window.
 */
#ifndef KV_DB_H
#define KV_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cache.h"
#include "env.h"
#include "kv.h"
#include "log.h"
#include "logbuf.h"
#include "manifest.h"
#include "memtable.h"
#include "table.h"
#include "tcache.h"
#include "wal.h"

#define KV_STRIPES 256

/* One memtable: its log buffer, its index and its WAL segment. */
struct kv_mem {
	struct kv_logbuf lb;
	struct kv_memtable mt;
	struct kv_file *file;		/* [commit token] segment; NULL when recovered
					 * read-only or closed once all durable */
	char *path;			/* [immutable] segment file */
	uint64_t seg_id;		/* [immutable] */
	uint64_t base_lsn;		/* [immutable] LSN of buffer offset 0 */
	_Atomic(struct kv_mem *) newer; /* [atomic; set once, at rotation] */
	_Atomic int refs;		/* [atomic] supers holding it (+1 while in the db) */
	int flushing;			/* [bg_mu] picked by the flush thread */
	struct kv_db *db;		/* [immutable] give the buffer back to db's
					 * spare log buffers when freed; NULL: unmap it */
};

/*
 * A log buffer kept for the next memtable (store.c): the memory of a freed
 * memtable's buffer, log_buffer_size bytes, zeroed again by the backstop.
 */
#define KV_LBUF_SPARES 1
struct kv_lbuf_spare {
	uint8_t *base;	/* [lbuf_mu] the mapping, or NULL: empty slot */
	uint64_t dirty; /* [lbuf_mu] bytes [0, dirty) may be non-zero; 0: ready */
	int zeroing;	/* [lbuf_mu] the backstop is zeroing it outside the lock */
};

/*
 * Guard counters, one cache line per slot: a thread always uses the same
 * slot, so readers and writers on different cores do not bounce one line.
 */
#define KV_GUARD_SLOTS 16
struct kv_guard_slot {
	_Alignas(64) _Atomic long n[2]; /* [atomic] guards in each phase */
};

/* A table of the shape: the open reader and its manifest entry. */
struct kv_tref {
	struct kv_file_meta meta; /* [immutable] */
	struct kv_table *t;	  /* [immutable] */
	char *path;		  /* [immutable] */
	_Atomic int refs;	  /* [atomic] versions holding it */
	_Atomic int obsolete;	  /* [atomic] deleted by an edit: unlink at last unref */
	_Atomic int compacting;	  /* [atomic; set/cleared under ver_mu] an input of a compaction */
	struct kv_db *db;	  /* [immutable] */
};

/* An immutable shape: the tables of each level. */
struct kv_version {
	_Atomic int refs;		       /* [atomic] */
	size_t n[KV_MAX_LEVELS];	       /* [immutable] */
	struct kv_tref **files[KV_MAX_LEVELS]; /* [immutable] level 0 newest first,
						* others sorted by smallest key */
	/* [compaction thread] the table whose range tombstones hide the most
	 * bytes below it (compact.c), scored once */
	int rd_scored, rd_level;
	size_t rd_index;
	uint64_t rd_debt;
};

/* What a reader needs: the memtables (newest first) and the table version. */
struct kv_super {
	_Atomic int refs;	       /* [atomic] the db's (while current) + iterators' */
	struct kv_version *v;	       /* [immutable] */
	struct kv_super *next_retired; /* [sv_mu] */
	uint32_t retired_phase;	       /* [sv_mu] */
	int nmem;		       /* [immutable] */
	struct kv_mem *mem[];	       /* [immutable] mem[0] was active at install */
};

struct kv_snapshot {
	uint64_t lsn;			 /* [immutable] */
	struct kv_snapshot *prev, *next; /* [snap_mu] list sorted by lsn */
};

struct kv_cq {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct kv_completion *items; /* [mu] FIFO of completions */
	int head, count, cap;	     /* [mu] */
};

struct kv_batch {
	uint8_t *buf; /* encoded ops, WAL op format (wal.h) */
	size_t len, cap;
	uint32_t count;
};

struct kv_db {
	char *dir;		   /* [immutable] */
	struct kv_options opt;	   /* [immutable] */
	struct kv_env *env;	   /* [immutable] */
	struct kv_file *lock_file; /* [immutable] holds the LOCK */

	_Atomic(struct kv_mem *) active; /* [atomic; changed under rot_mu] */
	uint64_t next_seg_id;		 /* [rot_mu] */
	uint64_t active_id;		 /* [rot_mu] segment id of the newest active memtable */
	struct kv_file *spare;		 /* [rot_mu] prepared segment file, or NULL */
	char *spare_path;		 /* [rot_mu] */
	uint64_t spare_id;		 /* [rot_mu] */
	pthread_mutex_t rot_mu;
	_Atomic uint32_t rotate_seq; /* [atomic futex] bumped at each rotation */

	pthread_mutex_t lbuf_mu;		   /* a leaf lock: nothing is taken under it */
	struct kv_lbuf_spare lbuf[KV_LBUF_SPARES]; /* [lbuf_mu] freed log buffers */
	_Atomic uint64_t lbuf_reused;		   /* [atomic] memtables given one (stats) */

	_Atomic int token;	     /* the commit token: 1 while a leader commits */
	struct kv_mem *commit_mem;   /* [commit token] oldest not all durable */
	uint64_t commit_ns_avg;	     /* [commit token] moving average of a commit */
	uint32_t last_group;	     /* [commit token] records in the last commit */
	uint32_t last_reqs;	     /* [commit token] async requests it completed */
	_Atomic int expected;	     /* [atomic] writers of the last commit not yet
				      * back with their next append (gather) */
	_Atomic int gathering;	     /* [atomic] a leader sleeps until expected is 0 */
	_Atomic uint32_t gathered;   /* [atomic futex] bumped when expected reaches 0
				      * while a leader is gathering */
	_Atomic uint32_t commit_seq; /* [atomic futex] bumped when a leader is done */
	_Atomic int failed;	     /* [atomic] 0, or the error that failed the db */

	pthread_t backstop;    /* [immutable] commits for async/batch writers */
	int backstop_started;  /* [immutable after open] */
	_Atomic uint32_t kick; /* [atomic futex] work for the backstop */
	_Atomic int stopping;  /* [atomic] close in progress */

	pthread_mutex_t fpo_mu;		     /* fsync-per-op: one writer at a time */
	pthread_rwlock_t stripe[KV_STRIPES]; /* locked baseline: key locks */

	_Atomic uint64_t records;      /* [atomic] stats */
	_Atomic uint64_t commits;      /* [atomic] */
	_Atomic uint64_t commit_bytes; /* [atomic] */
	_Atomic uint64_t user_bytes;   /* [atomic] op bytes of writes accepted */
	_Atomic uint64_t durable_lsn;  /* [atomic; stored by the commit token
					* holder before it publishes] */

	/* ---- read side and shape (version.c) ---- */
	_Alignas(64) _Atomic uint32_t gphase;	    /* [atomic] guard phase */
	struct kv_guard_slot gslot[KV_GUARD_SLOTS]; /* guards per phase, by thread */
	_Alignas(64) pthread_mutex_t sv_mu;
	_Atomic(struct kv_super *) super; /* [load in a guard; store under sv_mu] */
	struct kv_super *retired;	  /* [sv_mu] waiting for a grace period */
	pthread_mutex_t gp_mu;		  /* serializes grace periods */
	pthread_mutex_t ver_mu;
	struct kv_version *current;	   /* [ver_mu] */
	struct kv_manifest *manifest;	   /* [ver_mu] */
	uint64_t manifest_number;	   /* [ver_mu] of the live manifest */
	uint64_t next_file;		   /* [ver_mu] */
	uint64_t log_min_seg, log_min_lsn; /* [ver_mu] flushed below these */
	struct kv_cache *cache;		   /* [immutable] */
	struct kv_tcache *tcache;	   /* [immutable] table fds; locks itself */
	pthread_mutex_t snap_mu;
	struct kv_snapshot snaps; /* [snap_mu] list head */
	uint64_t nsnaps;	  /* [snap_mu] */
	/*
	 * Version counters of flushed memtables, for kv_stats' *_total: a
	 * memtable's are moved here (flush.c) just before the super without it
	 * is installed, and kv_stats counts a memtable of its super only if its
	 * seg_id is not below retired_below, so each is counted exactly once.
	 */
	pthread_mutex_t retired_mu;
	uint64_t retired_below;	     /* [retired_mu] segments below are retired */
	uint64_t retired_replaced;   /* [retired_mu] */
	uint64_t retired_superseded; /* [retired_mu] */

	/* ---- background work (flush.c, compact.c) ---- */
	pthread_mutex_t bg_mu;
	pthread_cond_t bg_cv;			/* [bg_mu] work for the background threads */
	pthread_cond_t progress_cv;		/* [bg_mu] a flush or compaction finished */
	pthread_t flush_thr, compact_thr;	/* [immutable after open] */
	int bg_started;				/* [immutable after open] */
	_Atomic int bg_stop;			/* [atomic; set under bg_mu] */
	_Atomic int imm;			/* [atomic] immutable memtables not yet flushed */
	uint64_t flushed_seq;			/* [bg_mu] flushes completed */
	uint64_t flush_attempts;		/* [bg_mu] flushes tried */
	int flush_err;				/* [bg_mu] result of the last one tried */
	int flush_req;				/* [bg_mu] kv_flush callers waiting */
	int compact_req;			/* [bg_mu] kv_compact: full compactions wanted */
	int compacting;				/* [bg_mu] a compaction is running */
	uint64_t compact_done;			/* [bg_mu] full compactions completed */
	int compact_err;			/* [bg_mu] result of the last full one */
	int bg_error;				/* [bg_mu] the last background error */
	_Atomic int l0_files;			/* [atomic] level 0's depth now (kv_l0_depth) */
	uint8_t *compact_cursor[KV_MAX_LEVELS]; /* [compaction thread] round robin */
	size_t compact_cursor_len[KV_MAX_LEVELS];
	const void *rd_mem_ver;	      /* [compaction thread] against this version */
	uint64_t rd_mem_seg;	      /* [compaction thread] the memtable whose */
	struct kv_mrdel *rd_mem_seen; /* range tombstones down from here are */
	uint64_t rd_mem_debt;	      /* scored, and their estimated bytes hidden */
	_Atomic uint64_t flushes, flush_bytes, compactions, compact_read, compact_write;
	_Atomic uint64_t stalls, stall_ns; /* [atomic] */
};

/* ---- logging (db.c) ---- */
void kv_log(struct kv_db *db, enum kv_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- db.c ---- */
/* The locked baseline's lock stripe of a key. */
unsigned kv_key_stripe(const void *key, size_t klen);

/* ---- store.c: store directory, identity, segments ---- */
#define KV_IDENT_NAME "KVSTORE"
#define KV_LOCK_NAME "LOCK"
/* The ids of the WAL segments in @dir with id >= @min, ascending, in a
 * malloc'd array (for kv_check and kvdump). 0 or -errno. */
int kv_store_list_segments(struct kv_env *env, const char *dir, uint64_t min, uint64_t **ids,
			   size_t *n);
/* Verify the identity file's bytes; logs what is wrong. 0 or -errno. */
int kv_ident_check(const struct kv_options *opt, const char *path, const uint8_t *b, size_t len);
int kv_store_open_dir(struct kv_db *db);
/* Allocate a memtable with a fresh log buffer of @cap bytes. */
int kv_mem_new(uint64_t cap, struct kv_mem **out);
/* Free @m; if @m->db is set, its buffer may be kept for the next memtable
 * (only once no reader can reach @m: after its last kv_mem_unref). */
void kv_mem_free(struct kv_mem *m);
/* Index every op of the checked record @rec (header @h) of @m as version
 * @ref (write path and recovery). 0 or -ENOMEM. */
int kv_mem_index(struct kv_mem *m, uint64_t ref, const uint8_t *rec, const struct kv_rec_header *h);
/* Make a new writable memtable on a prepared (or new) segment, with its
 * header in the buffer (written by its first commit). */
int kv_store_new_active(struct kv_db *db, uint64_t base_lsn, uint64_t prev_end,
			struct kv_mem **out);
/* Create the spare segment if there is none, and zero (a step of) a freed
 * log buffer for the next memtable (the backstop, outside locks). */
int kv_store_prepare_spare(struct kv_db *db);
/* Unmap the kept log buffers (close, once every memtable is freed). */
void kv_store_release_lbufs(struct kv_db *db);
/* Remove the spare and an active segment that never got a record. */
void kv_store_tidy(struct kv_db *db);
/* The crossing writer: close @m at @end and install a new active memtable. */
int kv_store_rotate(struct kv_db *db, struct kv_mem *m, uint64_t end);

/* ---- version.c: guards, supers, versions, the manifest, snapshots ---- */
int kv_guard_enter(struct kv_db *db);
void kv_guard_exit(struct kv_db *db, int token);
/* Wait until every guard entered before the call has exited. */
void kv_guard_sync(struct kv_db *db);
/* The current super, referenced (for iterators); kv_super_unref drops it. */
struct kv_super *kv_super_get(struct kv_db *db);
void kv_super_unref(struct kv_super *s);
/* Install a super of @active + the current one's memtables (rotation). */
int kv_super_add_active(struct kv_db *db, struct kv_mem *active);
/* Free the retired supers after a grace period (background threads, close). */
void kv_super_reclaim(struct kv_db *db);
void kv_mem_unref(struct kv_mem *m);
void kv_version_unref(struct kv_version *v);
void kv_tref_unref(struct kv_tref *t);
/* Read the manifest (or start one), open every table; sets log_min_*,
 * next_file, current. Before WAL recovery. */
int kv_version_open(struct kv_db *db);
/* After WAL recovery: write a fresh manifest and install the first super
 * with @mems (newest first). */
int kv_version_start(struct kv_db *db, struct kv_mem **mems, int nmem);
/*
 * Under ver_mu: append @e to the manifest, build the new version, install
 * a super with it whose memtables are the current ones minus @drop (may be
 * NULL), mark deleted tables obsolete. Fails the store on a manifest error.
 */
int kv_version_apply(struct kv_db *db, struct kv_vedit *e, struct kv_mem *drop);
int kv_l0_depth(const struct kv_version *v);
/* Open the table of @meta as a tref (1 ref). */
int kv_tref_open(struct kv_db *db, const struct kv_file_meta *meta, struct kv_tref **out);
char *kv_table_path(struct kv_db *db, uint64_t file_no);
/* The oldest live snapshot's lsn, or UINT64_MAX; and all of them (sorted,
 * malloc'd) for compaction. */
int kv_snapshot_list(struct kv_db *db, uint64_t **lsns, size_t *n);
void kv_version_close(struct kv_db *db);

/* ---- flush.c: background threads, admission, flush ---- */
int kv_bg_start(struct kv_db *db);
void kv_bg_stop(struct kv_db *db);
/* Stall a writer while memtables or level 0 are over their bounds. */
int kv_bg_admit(struct kv_db *db);
/* A rotation made one more immutable memtable. */
void kv_bg_rotated(struct kv_db *db);
void kv_bg_error(struct kv_db *db, int err);

/* ---- compact.c ---- */
/*
 * Which versions a flush or compaction keeps (the input arrives in internal
 * key order): the newest version of each key for every reader point (each
 * live snapshot, and "now"), minus those a range tombstone of @rd hides from
 * every reader that would see them; at the bottom level also point
 * tombstones that every reader sees (nothing older is left below).
 */
struct kv_cfilter {
	const uint64_t *snaps; /* sorted ascending */
	size_t nsnaps;
	int bottom;
	const struct kv_rdset *rd;
	struct kv_keybuf ukey; /* the current key's user key */
	uint64_t prev_lsn;     /* the previous version of the current key */
	int have;
};
/* 1 keep, 0 drop, -ENOMEM. */
int kv_cfilter_keep(struct kv_cfilter *f, const uint8_t *ik, size_t iklen);
/* Whether a range tombstone at @lsn can go (bottom, seen by every reader). */
int kv_cfilter_drop_rdel(const struct kv_cfilter *f, uint64_t lsn);
/* Pick and run one compaction; 1 if one ran, 0 if none needed, or -errno.
 * @full: compact everything into the deepest level. */
int kv_compact_once(struct kv_db *db, int full);
/* Level 1's bound times 10^(level - 1). */
uint64_t kv_level_max_bytes(const struct kv_db *db, int level);

/* ---- iter.c: the read path ---- */
/* Look @key up at @snap (UINT64_MAX: committed now; with @latest: newest
 * appended), copying min(len, cap) into @buf. Length or -ENOENT / -errno. */
ssize_t kv_read(struct kv_super *s, uint64_t snap, int latest, const void *key, size_t klen,
		void *buf, size_t cap);
/* The merging internal iterator over all of @s's sources below @snap. */
int kv_merge_iter(struct kv_super *s, struct kv_version *v, uint64_t snap, struct kv_iiter **out);
/* A merging iterator over @n children, whose ownership passes either way:
 * if building them failed (@err) or memory runs out, they are destroyed and
 * the error returned. */
int kv_merge_new(struct kv_iiter **kids, size_t n, int err, struct kv_iiter **out);

/* ---- recovery.c ---- */
/* Replay every segment not yet flushed (id >= db->log_min_seg) into
 * memtables (*mems, malloc'd, oldest first, all read-only) and report where
 * the log ends. */
int kv_recover(struct kv_db *db, uint64_t *next_seg_id, uint64_t *base_lsn, uint64_t *prev_end,
	       struct kv_mem ***mems, int *nmem);

/* ---- commit.c ---- */
int kv_commit_start(struct kv_db *db);
void kv_commit_stop(struct kv_db *db);
/* Wait until @m's bytes below @end are durable, leading commits as needed.
 * 0, or -EIO (or the failure's error) if the db failed first. */
int kv_commit_wait(struct kv_db *db, struct kv_mem *m, uint64_t end);
/* A writer has appended: one fewer of the last group to gather. */
void kv_commit_arrived(struct kv_db *db);
/* Ask the backstop to commit (async and batch writes). Cheap when pending. */
void kv_commit_kick(struct kv_db *db);
/* Mark the db failed with @err (first error wins) and wake everyone. */
void kv_commit_fail(struct kv_db *db, int err);
/* The flush thread, before freeing done memtable @m (which has a newer
 * one): make sure the commit pipeline no longer points at it. */
void kv_commit_forget(struct kv_db *db, struct kv_mem *m);
/* Deliver a completion (cq push or callback) and free the request. */
void kv_req_complete(struct kv_req *req, int status);

#endif /* KV_DB_H */
