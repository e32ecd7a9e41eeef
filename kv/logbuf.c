/* SPDX-License-Identifier: MIT */
/*
 * logbuf.c - appending to the log buffer and sealing its epochs.
 *
 * The buffer is zero-filled memory of the segment's size: a fresh anonymous
 * mapping, or the mapping of a flushed memtable's buffer zeroed again for
 * reuse (store.c: the db keeps one or two, so that a rotation does not pay a
 * page fault per page of its new buffer). Its life, for one epoch e:
 *
 *   1. append     writers do fetch_add(resv, len): the returned word is their
 *                 ref (epoch e, offset). O(1), no lock, no logging thread.
 *   2. copy       each writer copies its record to base + offset, indexes it
 *                 in the memtable as an uncommitted version, optionally
 *                 pushes an async request onto slot[e % 4].reqs, then
 *                 releases: released += len (release order).
 *   3. seal       the commit leader does fetch_add(resv, 1 << 40); the old
 *                 offset is the end of epoch e; it waits until released ==
 *                 end - start (acquire), so every byte and index entry of e
 *                 is in place; it resets the slot for epoch e + 4.
 *   4. write      the leader writes [durable, end) to the segment file and
 *                 fdatasyncs it (commit.c, through the env).
 *   5. publish    durable = end (release): readers now take e's versions as
 *                 committed; the leader delivers e's requests.
 *
 * Invariants:
 *   I1. Reservations are contiguous: the records of epoch e are exactly
 *       [end(e - 1), end(e)), so "committed" is "offset < durable".
 *   I2. Only the commit token holder seals and publishes, one epoch at a
 *       time; a new epoch opens only when the previous one is sealed, and the
 *       next seal waits for the publish of the previous. Hence at most two
 *       epochs are unpublished (one sealed, one open) and slot e % 4 is free
 *       again before epoch e + 4 can open.
 *   I3. Full buffer: the first reservation that does not fit (offset <= cap <
 *       offset + len) is the unique "crossing" one; it stores final_end =
 *       its offset. Later reservations also fail; none of the failed ones
 *       ever releases, and seal clamps the epoch's end to final_end.
 */
#include "logbuf.h"

#include <errno.h>
#include <sys/mman.h>

#include "sync.h"

uint8_t *kv_logbuf_map(uint64_t cap)
{
	void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void kv_logbuf_unmap(uint8_t *mem, uint64_t cap)
{
	if (mem)
		munmap(mem, cap);
}

void kv_logbuf_init_on(struct kv_logbuf *lb, uint8_t *mem, uint64_t cap, uint64_t start)
{
	lb->base = mem;
	lb->cap = cap;
	atomic_init(&lb->resv, kv_ref_make(1, start));
	atomic_init(&lb->durable, 0);
	atomic_init(&lb->final_end, KV_NO_END);
	lb->sealed = start;
	for (int i = 0; i < KV_EPOCH_SLOTS; i++) {
		atomic_init(&lb->slot[i].released, 0);
		atomic_init(&lb->slot[i].records, 0);
		atomic_init(&lb->slot[i].reqs, NULL);
	}
}

int kv_logbuf_init(struct kv_logbuf *lb, uint64_t cap, uint64_t start)
{
	uint8_t *p = kv_logbuf_map(cap);

	if (!p)
		return -errno;
	kv_logbuf_init_on(lb, p, cap, start);
	return 0;
}

uint8_t *kv_logbuf_detach(struct kv_logbuf *lb)
{
	uint8_t *p = lb->base;

	lb->base = NULL;
	return p;
}

void kv_logbuf_destroy(struct kv_logbuf *lb)
{
	kv_logbuf_unmap(lb->base, lb->cap);
	lb->base = NULL;
}

int kv_logbuf_reserve(struct kv_logbuf *lb, uint64_t len, uint64_t *ref, int *crossing)
{
	uint64_t r = atomic_fetch_add_explicit(&lb->resv, len, memory_order_acq_rel);
	uint64_t off = kv_ref_off(r);

	*crossing = 0;
	if (off + len <= lb->cap) {
		*ref = r;
		return 0;
	}
	*crossing = off <= lb->cap;
	*ref = r;
	return -ENOSPC;
}

void kv_logbuf_close_at(struct kv_logbuf *lb, uint64_t end)
{
	atomic_store_explicit(&lb->final_end, end, memory_order_release);
}

void kv_logbuf_release(struct kv_logbuf *lb, uint64_t ref, uint64_t len)
{
	struct kv_epoch_slot *s = &lb->slot[kv_ref_epoch(ref) % KV_EPOCH_SLOTS];

	atomic_fetch_add_explicit(&s->records, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->released, len, memory_order_release);
}

uint32_t kv_logbuf_open_records(const struct kv_logbuf *lb)
{
	uint64_t r = atomic_load_explicit(&lb->resv, memory_order_acquire);

	return atomic_load_explicit(&lb->slot[kv_ref_epoch(r) % KV_EPOCH_SLOTS].records,
				    memory_order_relaxed);
}

void kv_logbuf_push_req(struct kv_logbuf *lb, uint64_t ref, struct kv_req *req)
{
	struct kv_epoch_slot *s = &lb->slot[kv_ref_epoch(ref) % KV_EPOCH_SLOTS];
	struct kv_req *head = atomic_load_explicit(&s->reqs, memory_order_relaxed);

	do
		req->next = head;
	while (!atomic_compare_exchange_weak_explicit(&s->reqs, &head, req, memory_order_release,
						      memory_order_relaxed));
}

/* Wait for the crossing writer to say where the records end. */
static uint64_t wait_final_end(struct kv_logbuf *lb)
{
	unsigned spins = 0;
	uint64_t end;

	while ((end = atomic_load_explicit(&lb->final_end, memory_order_acquire)) == KV_NO_END)
		kv_backoff(&spins);
	return end;
}

int kv_logbuf_seal(struct kv_logbuf *lb, uint32_t *epoch, uint64_t *start, uint64_t *end,
		   uint32_t *records)
{
	uint64_t r = atomic_load_explicit(&lb->resv, memory_order_acquire);
	struct kv_epoch_slot *s;
	unsigned spins = 0;
	uint64_t off;

	/* Nothing appended since the last seal: do not open an empty epoch. */
	if (kv_ref_off(r) == lb->sealed)
		return 0;
	if (kv_ref_off(r) > lb->cap && wait_final_end(lb) == lb->sealed)
		return 0;

	r = atomic_fetch_add_explicit(&lb->resv, KV_REF_EPOCH_ONE, memory_order_acq_rel);
	off = kv_ref_off(r);
	if (off > lb->cap)
		off = wait_final_end(lb);
	*epoch = kv_ref_epoch(r);
	*start = lb->sealed;
	*end = off;
	lb->sealed = off;

	s = &lb->slot[*epoch % KV_EPOCH_SLOTS];
	while (atomic_load_explicit(&s->released, memory_order_acquire) != off - *start)
		kv_backoff(&spins);
	*records = atomic_load_explicit(&s->records, memory_order_relaxed);
	atomic_store_explicit(&s->records, 0, memory_order_relaxed);
	atomic_store_explicit(&s->released, 0, memory_order_relaxed);
	return 1;
}

struct kv_req *kv_logbuf_publish(struct kv_logbuf *lb, uint32_t epoch, uint64_t end)
{
	struct kv_epoch_slot *s = &lb->slot[epoch % KV_EPOCH_SLOTS];

	atomic_store_explicit(&lb->durable, end, memory_order_release);
	return atomic_exchange_explicit(&s->reqs, NULL, memory_order_acquire);
}

struct kv_req *kv_logbuf_take_all_reqs(struct kv_logbuf *lb)
{
	struct kv_req *all = NULL;

	for (int i = 0; i < KV_EPOCH_SLOTS; i++) {
		struct kv_req *l =
			atomic_exchange_explicit(&lb->slot[i].reqs, NULL, memory_order_acquire);

		while (l) {
			struct kv_req *next = l->next;

			l->next = all;
			all = l;
			l = next;
		}
	}
	return all;
}

uint64_t kv_logbuf_appended(const struct kv_logbuf *lb)
{
	uint64_t off = kv_ref_off(atomic_load_explicit(&lb->resv, memory_order_acquire));
	uint64_t fe = atomic_load_explicit(&lb->final_end, memory_order_acquire);

	if (fe != KV_NO_END)
		return fe;
	return off > lb->cap ? lb->cap : off;
}

int kv_logbuf_done(const struct kv_logbuf *lb)
{
	uint64_t fe = atomic_load_explicit(&lb->final_end, memory_order_acquire);

	return fe != KV_NO_END && atomic_load_explicit(&lb->durable, memory_order_acquire) >= fe;
}
