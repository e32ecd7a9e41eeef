/* SPDX-License-Identifier: MIT */
/*
 * commit.c - group commit: no logging thread, a foreground leader per commit.
 *
 * The commit token (db->token) is held by at most one thread, the leader. A
 * writer's life after appending (db.c) is one of:
 *
 *   state        enters when                      leaves when
 *   ----------   -----------------------------    -----------------------------
 *   WAITING      it needs durability (sync,       its bytes are durable (done),
 *                locked, fsync-per-op) and the    the db failed (-EIO), or the
 *                token is taken                   token is free: -> LEADING
 *   LEADING      it won the token (CAS 0 -> 1)    one commit step done: it
 *                and gathered (see gather())      releases the token, bumps
 *                                                 commit_seq, wakes all
 *                                                 WAITING, and re-checks
 *   ACKED-EARLY  batch mode / async submit: it    at once; it kicks the
 *                does not wait                    backstop, which leads for it;
 *                                                 a batch writer past
 *                                                 batch_max_pending bytes not
 *                                                 yet durable waits first
 *
 * One commit step (commit_step) on db->commit_mem, the oldest memtable not
 * yet all durable: seal the open epoch (logbuf.c waits for its writers to
 * release), write [durable, end) of the buffer at the same file offset and
 * fdatasync it (env->write_durable: one io_uring write linked to one
 * fdatasync), then publish: durable = end, which makes the whole epoch
 * committed for readers at once (batch-atomic), and deliver the epoch's async
 * completions in LSN order. Appends go on into the next epoch throughout.
 * Memtables are committed strictly in order, so the log on disk is a prefix.
 *
 * Failure: a failed write or fdatasync is never retried (the kernel may have
 * dropped the dirty pages). The db is failed with the error: nothing of the
 * epoch is published, every waiter and every pending async request gets
 * -EIO, and every later write fails until the db is reopened.
 *
 * The backstop thread leads only on a kick, so that async and batch-mode
 * writes commit with no further call: in batch mode an acknowledged write is
 * durable once the commit in flight (if any) and the next one complete. Its
 * one exception: after a commit that completed several async requests (the
 * kvfs daemon in sync mode: each FUSE request waits for its commit, and the
 * thread behind it comes back with the next one) it leads again at once and
 * gathers those writers into the next epoch (gather()), so that N closed-loop
 * writers share one commit instead of splitting into two alternating halves.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "sync.h"
#include "wal.h"

static int token_try(struct kv_db *db)
{
	int zero = 0;

	return atomic_compare_exchange_strong_explicit(&db->token, &zero, 1, memory_order_acquire,
						       memory_order_relaxed);
}

static void token_release(struct kv_db *db)
{
	atomic_store_explicit(&db->token, 0, memory_order_release);
	atomic_fetch_add_explicit(&db->commit_seq, 1, memory_order_release);
	kv_futex_wake_all(&db->commit_seq);
}

/* Merge sort a request list by LSN (the stack arrives in push order). */
static struct kv_req *sort_reqs(struct kv_req *l)
{
	struct kv_req *a = NULL, *b = NULL, *out = NULL, **tail = &out;

	if (!l || !l->next)
		return l;
	for (int i = 0; l; i++) {
		struct kv_req *next = l->next;

		if (i & 1) {
			l->next = b;
			b = l;
		} else {
			l->next = a;
			a = l;
		}
		l = next;
	}
	a = sort_reqs(a);
	b = sort_reqs(b);
	while (a && b) {
		struct kv_req **m = kv_ref_off(a->ref) <= kv_ref_off(b->ref) ? &a : &b;

		*tail = *m;
		tail = &(*m)->next;
		*m = (*m)->next;
	}
	*tail = a ? a : b;
	return out;
}

/* Complete the requests of @l in LSN order; returns how many. */
static uint32_t deliver(struct kv_req *l, int status)
{
	uint32_t n = 0;

	l = sort_reqs(l);
	while (l) {
		struct kv_req *next = l->next;

		kv_req_complete(l, status);
		l = next;
		n++;
	}
	return n;
}

/* Failed db: hand -EIO to every request still waiting, in any memtable
 * (only memtables not all durable have any; they are all in the super). */
static void drain_failed(struct kv_db *db)
{
	int g = kv_guard_enter(db);
	struct kv_super *s = atomic_load_explicit(&db->super, memory_order_acquire);

	for (int i = s ? s->nmem - 1 : -1; i >= 0; i--)
		deliver(kv_logbuf_take_all_reqs(&s->mem[i]->lb), -EIO);
	kv_guard_exit(db, g);
}

void kv_commit_fail(struct kv_db *db, int err)
{
	int zero = 0;

	if (atomic_compare_exchange_strong(&db->failed, &zero, err ? err : -EIO))
		kv_log(db, KV_LOG_ERROR,
		       "%s: the store has failed (%s); writes return -EIO until it is reopened",
		       db->dir, strerror(-(err ? err : -EIO)));
	atomic_fetch_add_explicit(&db->commit_seq, 1, memory_order_release);
	kv_futex_wake_all(&db->commit_seq);
	atomic_fetch_add_explicit(&db->gathered, 1, memory_order_seq_cst);
	kv_futex_wake_all(&db->gathered);
	kv_commit_kick(db);
}

/* Advance commit_mem past memtables that are complete; close their files. */
static struct kv_mem *commit_target(struct kv_db *db)
{
	struct kv_mem *m = db->commit_mem, *n;

	while (kv_logbuf_done(&m->lb)) {
		n = atomic_load_explicit(&m->newer, memory_order_acquire);
		if (!n)
			return NULL;
		if (m->file) {
			m->file->env->ops->close(m->file);
			m->file = NULL;
		}
		db->commit_mem = m = n;
	}
	return m;
}

/* Token holder: commit one epoch. 1 done, 0 nothing to do, or -errno. */
static int commit_step(struct kv_db *db)
{
	struct kv_mem *m;
	uint64_t start, end, d;
	uint32_t epoch, records;
	int err;

	if (atomic_load_explicit(&db->failed, memory_order_acquire)) {
		drain_failed(db);
		return atomic_load(&db->failed);
	}
	m = commit_target(db);
	if (!m || !kv_logbuf_seal(&m->lb, &epoch, &start, &end, &records))
		return 0;
	d = atomic_load_explicit(&m->lb.durable, memory_order_relaxed);
	/* A writer that could not index its record failed the db before its
	 * release: never write an epoch that holds such a record. */
	err = atomic_load_explicit(&db->failed, memory_order_acquire);
	if (!err) {
		uint64_t t0 = kv_now_ns();

		err = m->file->env->ops->write_durable(m->file, m->lb.base + d, end - d, d);
		/* Moving average over ~8 commits, for gather(). */
		db->commit_ns_avg += ((int64_t)(kv_now_ns() - t0) - (int64_t)db->commit_ns_avg) / 8;
		db->last_group = records;
	}
	if (err) {
		kv_log(db, KV_LOG_ERROR, "%s: WAL commit of bytes [%llu, %llu) failed: %s", m->path,
		       (unsigned long long)d, (unsigned long long)end, strerror(-err));
		kv_commit_fail(db, err);
		drain_failed(db);
		return err;
	}
	atomic_fetch_add_explicit(&db->commits, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&db->commit_bytes, end - d, memory_order_relaxed);
	atomic_store_explicit(&db->expected, (int)records, memory_order_seq_cst);
	/* Before the publish: a writer acknowledged by it must find its write
	 * in any snapshot taken afterwards. Everything below is indexed. */
	atomic_store_explicit(&db->durable_lsn, m->base_lsn + end, memory_order_release);
	db->last_reqs = deliver(kv_logbuf_publish(&m->lb, epoch, end), 0);
	return 1;
}

/*
 * A new leader, before sealing: let the writers the last commit just released
 * append their next records into this epoch rather than the next one.
 * Without this, closed-loop writers split into two cohorts that alternate
 * between commits, each commit carrying half of them. db->expected is set to
 * the last group's size at its publish and counted down by every append
 * (kv_commit_arrived); the leader waits while it is positive, for at most a
 * third of the average commit time. A lone writer (a group of one) never
 * waits. A foreground leader yields (its writers are in this process and
 * runnable); the backstop sleeps on db->gathered, which the append that
 * brings expected to 0 wakes: its writers come back through other threads
 * and the kernel (FUSE), which need the CPU it would spin on, and one wake
 * per commit is cheaper than a yield loop on two cores.
 *
 * The backstop gathers only after an epoch that completed at least two async
 * requests (sync-mode writers such as a FUSE daemon's, which come back with
 * their next write); after batch-mode writes nobody waits for the commit.
 */
static void gather(struct kv_db *db, int backstop)
{
	uint64_t t0, now, budget = db->commit_ns_avg / 3;

	if (db->last_group < 2 || !budget || (backstop && db->last_reqs < 2))
		return;
	if (budget > 200000)
		budget = 200000;
	t0 = kv_now_ns();
	if (!backstop) {
		while (atomic_load_explicit(&db->expected, memory_order_relaxed) > 0 &&
		       kv_now_ns() - t0 < budget)
			sched_yield();
		return;
	}
	atomic_store_explicit(&db->gathering, 1, memory_order_seq_cst);
	for (;;) {
		uint32_t seq = atomic_load_explicit(&db->gathered, memory_order_seq_cst);

		if (atomic_load_explicit(&db->expected, memory_order_seq_cst) <= 0 ||
		    atomic_load_explicit(&db->failed, memory_order_relaxed))
			break;
		now = kv_now_ns();
		if (now - t0 >= budget)
			break;
		kv_futex_wait_ns(&db->gathered, seq, budget - (now - t0));
	}
	atomic_store_explicit(&db->gathering, 0, memory_order_relaxed);
}

void kv_commit_arrived(struct kv_db *db)
{
	if (atomic_load_explicit(&db->expected, memory_order_relaxed) <= 0)
		return;
	/* seq_cst pairs with gather(): either it sees expected at 0, or this
	 * sees it gathering and wakes it. */
	if (atomic_fetch_sub_explicit(&db->expected, 1, memory_order_seq_cst) == 1 &&
	    atomic_load_explicit(&db->gathering, memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&db->gathered, 1, memory_order_seq_cst);
		kv_futex_wake_all(&db->gathered);
	}
}

static int durable_enough(struct kv_mem *m, uint64_t end)
{
	uint64_t fe = atomic_load_explicit(&m->lb.final_end, memory_order_acquire);

	if (fe < end)
		end = fe;
	return atomic_load_explicit(&m->lb.durable, memory_order_acquire) >= end;
}

int kv_commit_wait(struct kv_db *db, struct kv_mem *m, uint64_t end)
{
	for (;;) {
		uint32_t seq = atomic_load_explicit(&db->commit_seq, memory_order_acquire);
		int err;

		if (durable_enough(m, end))
			return 0;
		err = atomic_load_explicit(&db->failed, memory_order_acquire);
		if (err)
			return -EIO;
		if (token_try(db)) {
			gather(db, 0);
			commit_step(db);
			token_release(db);
			continue;
		}
		kv_futex_wait(&db->commit_seq, seq);
	}
}

void kv_commit_kick(struct kv_db *db)
{
	if (atomic_load_explicit(&db->kick, memory_order_relaxed))
		return;
	if (!atomic_exchange_explicit(&db->kick, 1, memory_order_acq_rel))
		kv_futex_wake_one(&db->kick);
}

/* Anything appended and not durable, in any memtable? */
static int pending(struct kv_db *db)
{
	int g = kv_guard_enter(db), ret = 0;
	struct kv_super *s = atomic_load_explicit(&db->super, memory_order_acquire);

	for (int i = 0; s && i < s->nmem && !ret; i++) {
		struct kv_mem *m = s->mem[i];
		uint64_t appended = kv_logbuf_appended(&m->lb);

		if (kv_logbuf_done(&m->lb))
			break;
		/* A fresh buffer holds only its header: nothing to commit. */
		ret = appended > KV_SEG_HEADER_SIZE && appended > atomic_load(&m->lb.durable);
	}
	kv_guard_exit(db, g);
	return ret;
}

void kv_commit_forget(struct kv_db *db, struct kv_mem *m)
{
	for (;;) {
		uint32_t seq = atomic_load_explicit(&db->commit_seq, memory_order_acquire);

		if (token_try(db)) {
			int past = commit_target(db) != m && db->commit_mem != m;

			token_release(db);
			if (past)
				return;
		}
		kv_commit_kick(db);
		kv_futex_wait(&db->commit_seq, seq);
	}
}

/*
 * The backstop leads until nothing is pending (or the db has failed). After
 * a commit that completed two or more async requests it does not wait for a
 * kick: it leads again at once, gathering the writers it just released (see
 * gather()), so that it sleeps once per commit rather than twice. Each kick
 * it sees on the way is consumed here, and the next WAL segment made ready.
 */
static void backstop_round(struct kv_db *db)
{
	int again = 0;

	for (;;) {
		uint32_t seq = atomic_load_explicit(&db->commit_seq, memory_order_acquire);
		int failed = atomic_load_explicit(&db->failed, memory_order_acquire);

		/* Stopping: close has committed already; abandon must not. */
		if (atomic_load_explicit(&db->stopping, memory_order_acquire))
			return;
		if (atomic_load_explicit(&db->kick, memory_order_acquire)) {
			atomic_store_explicit(&db->kick, 0, memory_order_release);
			if (!failed)
				kv_store_prepare_spare(db);
		}
		if (!failed && !again && !pending(db))
			return;
		if (token_try(db)) {
			int r;

			gather(db, 1);
			r = commit_step(db);
			again = r == 1 && db->last_reqs >= 2;
			token_release(db);
			if (failed || r < 0)
				return;
			/* Pending but not sealable yet (a rotation in progress). */
			if (!r)
				sched_yield();
			continue;
		}
		kv_futex_wait(&db->commit_seq, seq);
	}
}

static void *backstop_main(void *arg)
{
	struct kv_db *db = arg;

	while (!atomic_load_explicit(&db->stopping, memory_order_acquire)) {
		if (!atomic_load_explicit(&db->kick, memory_order_acquire)) {
			kv_futex_wait(&db->kick, 0);
			continue;
		}
		backstop_round(db);
	}
	return NULL;
}

int kv_commit_start(struct kv_db *db)
{
	int err = pthread_create(&db->backstop, NULL, backstop_main, db);

	if (err)
		return -err;
	db->backstop_started = 1;
	kv_commit_kick(db);
	return 0;
}

void kv_commit_stop(struct kv_db *db)
{
	if (!db->backstop_started)
		return;
	atomic_store_explicit(&db->stopping, 1, memory_order_release);
	atomic_store_explicit(&db->kick, 1, memory_order_release);
	kv_futex_wake_one(&db->kick);
	pthread_join(db->backstop, NULL);
	db->backstop_started = 0;
}
