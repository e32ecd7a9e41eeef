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
 *   4. db->rot_mu            (rotation, spare segment; never across a commit)
 *   5. kv_mnode.lock, kv_cq.mu, memtable arena_mu (leaf locks, a few instructions)
 * A thread holding the commit token never waits for a writer except for the
 * bounded copy+index window between a writer's reservation and its release,
 * and writers never wait for the token while inside that window.
 */
#ifndef KV_DB_H
#define KV_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "env.h"
#include "log.h"
#include "kv.h"
#include "logbuf.h"
#include "memtable.h"
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
	struct kv_mem *older;		/* [immutable once installed] */
	_Atomic(struct kv_mem *) newer; /* [atomic; set once, at rotation] */
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
	struct kv_mem *oldest;		 /* [rot_mu] oldest memtable, chain via newer */
	uint64_t next_seg_id;		 /* [rot_mu] */
	uint64_t active_id;		 /* [rot_mu] segment id of the newest active memtable */
	struct kv_file *spare;		 /* [rot_mu] prepared segment file, or NULL */
	char *spare_path;		 /* [rot_mu] */
	uint64_t spare_id;		 /* [rot_mu] */
	pthread_mutex_t rot_mu;
	_Atomic uint32_t rotate_seq; /* [atomic futex] bumped at each rotation */

	_Atomic int token;	     /* the commit token: 1 while a leader commits */
	struct kv_mem *commit_mem;   /* [commit token] oldest not all durable */
	uint64_t commit_ns_avg;	     /* [commit token] moving average of a commit */
	uint32_t last_group;	     /* [commit token] records in the last commit */
	_Atomic int expected;	     /* [atomic] writers of the last commit not yet
				      * back with their next append (gather) */
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
};

/* ---- logging (db.c) ---- */
void kv_log(struct kv_db *db, enum kv_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- db.c ---- */
/* The locked baseline's lock stripe of a key. */
unsigned kv_key_stripe(const void *key, size_t klen);

/* ---- store.c: store directory, identity, segments ---- */
int kv_store_open_dir(struct kv_db *db);
/* Allocate a memtable with a fresh log buffer of @cap bytes. */
int kv_mem_new(uint64_t cap, struct kv_mem **out);
void kv_mem_free(struct kv_mem *m);
/* Index every op of the checked record @rec (header @h) of @m as version
 * @ref (write path and recovery). 0 or -ENOMEM. */
int kv_mem_index(struct kv_mem *m, uint64_t ref, const uint8_t *rec, const struct kv_rec_header *h);
/* Make a new writable memtable on a prepared (or new) segment, with its
 * header in the buffer (written by its first commit). */
int kv_store_new_active(struct kv_db *db, uint64_t base_lsn, uint64_t prev_end,
			struct kv_mem **out);
/* Create the spare segment if there is none (called outside locks). */
int kv_store_prepare_spare(struct kv_db *db);
/* Remove the spare and an active segment that never got a record. */
void kv_store_tidy(struct kv_db *db);
/* The crossing writer: close @m at @end and install a new active memtable. */
int kv_store_rotate(struct kv_db *db, struct kv_mem *m, uint64_t end);

/* ---- recovery.c ---- */
/* Replay every segment of the store into memtables (db->oldest .. newest,
 * all read-only) and report where the log ends. */
int kv_recover(struct kv_db *db, uint64_t *next_seg_id, uint64_t *base_lsn, uint64_t *prev_end,
	       struct kv_mem **newest);

/* ---- commit.c ---- */
int kv_commit_start(struct kv_db *db);
void kv_commit_stop(struct kv_db *db);
/* Wait until @m's bytes below @end are durable, leading commits as needed.
 * 0, or -EIO (or the failure's error) if the db failed first. */
int kv_commit_wait(struct kv_db *db, struct kv_mem *m, uint64_t end);
/* Ask the backstop to commit (async and batch writes). Cheap when pending. */
void kv_commit_kick(struct kv_db *db);
/* Mark the db failed with @err (first error wins) and wake everyone. */
void kv_commit_fail(struct kv_db *db, int err);
/* Deliver a completion (cq push or callback) and free the request. */
void kv_req_complete(struct kv_req *req, int status);

#endif /* KV_DB_H */
