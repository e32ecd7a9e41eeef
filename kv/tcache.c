/* SPDX-License-Identifier: MIT */
/*
 * tcache.c - the table file cache (interface and contract: tcache.h).
 *
 * Why not a plain LRU under one mutex: a pin happens on every block cache
 * miss, which on a store much larger than the block cache is nearly every
 * read; an LRU must take its lock on every pin to move the entry, and that
 * one mutex cost readrandom about 8% with 4 readers (kvbench persist). So a
 * pin of an open file is one compare-and-swap on the slot's own state word,
 * no lock; the replacement policy is CLOCK (second chance, an LRU
 * approximation): a pin sets the slot's used bit, and the hand, sweeping
 * the ring of open slots when room is needed, clears used bits and evicts
 * the first unpinned slot whose bit was already clear. The mutex is taken
 * only to open, evict or remove: list operations, never across I/O.
 *
 * A slot's state word: its pins, plus TF_CLOSED while it has no open file.
 *
 *   closed        TF_CLOSED, no pins, off the ring: kv_tcache_add, or
 *                 evicted (clock_evict, by a pin that opens another slot or
 *                 by an unpin while over capacity)
 *   open, pinned  n > 0 pins, on the ring: kv_tcache_pin (a CAS n -> n + 1;
 *                 or, on a closed slot, pin_closed, which opens the file)
 *   open, idle    0, on the ring: kv_tcache_unpin of the last pin
 *
 * and kv_tcache_remove frees a closed or idle slot (closing its file).
 *
 * Opening a closed slot (pin_closed): under the mutex, reserve room (nopen
 * + 1, evicting one idle file if that goes over capacity); drop the mutex,
 * close the victim, open the file; take the mutex again and re-check: if
 * another thread opened the slot meanwhile, pin its file, give the
 * reservation back and close the copy after unlocking; else install the
 * file and publish the slot open with one pin (a release store). Nobody
 * waits for another thread's open.
 *
 * Invariants:
 *   1. TF_CLOSED is set and cleared only under c->mu; a slot is on the ring
 *      iff it is clear. Eviction sets it by a CAS from 0 (open, no pins), so
 *      a pinned file is never evicted, and a pin that raced with it fails
 *      its CAS and goes the slow way.
 *   2. tf->file is written only under c->mu while TF_CLOSED is set; a pin
 *      reads it after the CAS (acquire) that took the pin, and the install
 *      publishes it with a release store: no pin sees it change.
 *   3. nopen = open slots + reservations in flight [c->mu].
 *   4. nopen > cap only after an eviction found every open slot pinned; then
 *      c->over is set, and each unpin that sees it tries to evict one. Each
 *      open that went over capacity was made by a thread that then holds a
 *      pin on it, and whose own unpin sees c->over (it set it), so the
 *      excess never outlives the pins that caused it.
 *
 * Hence the bound of tcache.h: beyond cap, each thread inside a pin..unpin
 * window accounts for at most one file: an open over capacity, a copy it
 * lost the race with, or a victim it is closing (before its own open, or
 * in its unpin).
 */
#include "tcache.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define TF_CLOSED (1u << 31)

struct kv_tfile {
	_Atomic unsigned state;	      /* [atomic; TF_CLOSED only under c->mu] pins | TF_CLOSED */
	_Atomic unsigned char used;   /* [atomic] pinned since the hand last passed */
	struct kv_file *file;	      /* [c->mu, while TF_CLOSED] read by pin holders (inv. 2) */
	struct kv_tfile *prev, *next; /* [c->mu] the ring of open slots */
	struct kv_env *env;	      /* [immutable] */
	char *path;		      /* [immutable] stored after the slot */
};

struct kv_tcache {
	pthread_mutex_t mu;
	size_t cap;		   /* [immutable] */
	size_t nopen;		   /* [mu] invariant 3 */
	size_t nring;		   /* [mu] open slots */
	struct kv_tfile *hand;	   /* [mu] the ring's next slot to look at; NULL if empty */
	_Atomic int over;	   /* [atomic; stored under mu] nopen > cap (invariant 4) */
	uint64_t opens, evictions; /* [mu] */
	uint64_t slots;		   /* [mu] added and not removed (destroy's assert) */
};

/* Under mu: behind the hand, so the last the sweep reaches. */
static void ring_add(struct kv_tcache *c, struct kv_tfile *tf)
{
	if (!c->hand) {
		tf->prev = tf->next = tf;
		c->hand = tf;
	} else {
		tf->next = c->hand;
		tf->prev = c->hand->prev;
		tf->prev->next = tf;
		c->hand->prev = tf;
	}
	c->nring++;
}

static void ring_del(struct kv_tcache *c, struct kv_tfile *tf)
{
	if (c->hand == tf)
		c->hand = tf->next != tf ? tf->next : NULL;
	tf->prev->next = tf->next;
	tf->next->prev = tf->prev;
	tf->prev = tf->next = NULL;
	c->nring--;
}

/* Under mu: @tf is open and must leave the ring; its file, to close once
 * the mutex is dropped. */
static struct kv_file *detach(struct kv_tcache *c, struct kv_tfile *tf)
{
	struct kv_file *f = tf->file;

	ring_del(c, tf);
	tf->file = NULL;
	c->nopen--;
	atomic_store(&c->over, c->nopen > c->cap);
	return f;
}

/*
 * Under mu: if over capacity, evict one open slot with no pins, giving one
 * used since the hand last passed a second chance; two sweeps at most. The
 * victim's file, or NULL (not over capacity, or every open slot pinned).
 */
static struct kv_file *clock_evict(struct kv_tcache *c)
{
	for (size_t n = 2 * c->nring; n && c->nopen > c->cap; n--) {
		struct kv_tfile *tf = c->hand;
		unsigned idle = 0;

		c->hand = tf->next;
		if (atomic_load_explicit(&tf->used, memory_order_relaxed)) {
			atomic_store_explicit(&tf->used, 0, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_strong(&tf->state, &idle, TF_CLOSED)) {
			c->evictions++;
			return detach(c, tf);
		}
	}
	atomic_store(&c->over, c->nopen > c->cap);
	return NULL;
}

static void file_close(struct kv_file *f)
{
	if (f)
		f->env->ops->close(f);
}

int kv_tcache_create(size_t capacity, struct kv_tcache **out)
{
	struct kv_tcache *c;

	if (!capacity)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	c->cap = capacity;
	atomic_init(&c->over, 0);
	*out = c;
	return 0;
}

void kv_tcache_destroy(struct kv_tcache *c)
{
	if (!c)
		return;
	assert(!c->slots && !c->nopen);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int kv_tcache_add(struct kv_tcache *c, struct kv_env *env, const char *path, struct kv_tfile **out)
{
	size_t len = strlen(path) + 1;
	struct kv_tfile *tf = calloc(1, sizeof(*tf) + len);

	if (!tf)
		return -ENOMEM;
	atomic_init(&tf->state, TF_CLOSED);
	atomic_init(&tf->used, 0);
	tf->env = env;
	tf->path = (char *)(tf + 1);
	memcpy(tf->path, path, len);
	pthread_mutex_lock(&c->mu);
	c->slots++;
	pthread_mutex_unlock(&c->mu);
	*out = tf;
	return 0;
}

void kv_tcache_remove(struct kv_tcache *c, struct kv_tfile *tf)
{
	struct kv_file *f = NULL;

	if (!tf)
		return;
	pthread_mutex_lock(&c->mu);
	assert(!(atomic_load(&tf->state) & ~TF_CLOSED)); /* no pins */
	if (!(atomic_load(&tf->state) & TF_CLOSED)) {
		atomic_store(&tf->state, TF_CLOSED);
		f = detach(c, tf);
	}
	c->slots--;
	pthread_mutex_unlock(&c->mu);
	file_close(f);
	free(tf);
}

/* Under mu, on an open slot (which nobody can close meanwhile): one more
 * pin. The acquire pairs with the install's release (invariant 2). */
static struct kv_file *pin_locked(struct kv_tfile *tf)
{
	atomic_fetch_add_explicit(&tf->state, 1, memory_order_acquire);
	atomic_store_explicit(&tf->used, 1, memory_order_relaxed);
	return tf->file;
}

/* The slow pin: the slot looked closed. */
static int pin_closed(struct kv_tcache *c, struct kv_tfile *tf, struct kv_file **out)
{
	struct kv_file *f = NULL, *victim;
	int err;

	pthread_mutex_lock(&c->mu);
	if (!(atomic_load(&tf->state) & TF_CLOSED)) { /* opened meanwhile */
		*out = pin_locked(tf);
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	c->nopen++; /* the reservation */
	victim = clock_evict(c);
	pthread_mutex_unlock(&c->mu);

	file_close(victim);
	err = tf->env->ops->open(tf->env, tf->path, O_RDONLY, 0, &f);

	pthread_mutex_lock(&c->mu);
	c->opens += !err;
	if (err || !(atomic_load(&tf->state) & TF_CLOSED)) {
		c->nopen--; /* give the reservation back */
		atomic_store(&c->over, c->nopen > c->cap);
		if (!(atomic_load(&tf->state) & TF_CLOSED)) {
			/* another thread opened it meanwhile: use its file */
			*out = pin_locked(tf);
			err = 0;
		}
		pthread_mutex_unlock(&c->mu);
		file_close(f);
		return err;
	}
	tf->file = f;
	ring_add(c, tf);
	atomic_store_explicit(&tf->used, 1, memory_order_relaxed);
	atomic_store_explicit(&tf->state, 1, memory_order_release); /* open, one pin */
	pthread_mutex_unlock(&c->mu);
	*out = f;
	return 0;
}

int kv_tcache_pin(struct kv_tcache *c, struct kv_tfile *tf, struct kv_file **out)
{
	unsigned s = atomic_load_explicit(&tf->state, memory_order_relaxed);

	while (!(s & TF_CLOSED)) {
		if (atomic_compare_exchange_weak_explicit(
			    &tf->state, &s, s + 1, memory_order_acquire, memory_order_relaxed)) {
			if (!atomic_load_explicit(&tf->used, memory_order_relaxed))
				atomic_store_explicit(&tf->used, 1, memory_order_relaxed);
			*out = tf->file;
			return 0;
		}
	}
	return pin_closed(c, tf, out);
}

void kv_tcache_unpin(struct kv_tcache *c, struct kv_tfile *tf)
{
	struct kv_file *victim;

	/* Release: the reads through the file happen before any close. */
	atomic_fetch_sub_explicit(&tf->state, 1, memory_order_release);
	if (!atomic_load_explicit(&c->over, memory_order_relaxed))
		return;
	pthread_mutex_lock(&c->mu);
	victim = clock_evict(c);
	pthread_mutex_unlock(&c->mu);
	file_close(victim);
}

void kv_tcache_stats(struct kv_tcache *c, struct kv_tcache_stats *st)
{
	pthread_mutex_lock(&c->mu);
	st->opens = c->opens;
	st->evictions = c->evictions;
	st->open = c->nopen;
	st->capacity = c->cap;
	pthread_mutex_unlock(&c->mu);
}
