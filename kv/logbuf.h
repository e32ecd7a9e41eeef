/* SPDX-License-Identifier: MIT */
/*
 * logbuf.h - the log buffer: where foreground threads append WAL records.
 *
 * One log buffer per memtable, the same size as its WAL segment: buffer
 * offset == file offset, and the bytes in the buffer are exactly the bytes
 * the group commit writes to the file (see logbuf.c for the protocol).
 *
 * The reservation word (resv) packs the open epoch and the next free offset:
 *
 *     63          40 39                         0
 *    +--------------+----------------------------+
 *    |  epoch (24)  |   offset (40)              |
 *    +--------------+----------------------------+
 *
 * A writer reserves with one fetch_add of its (8-aligned) length; the value
 * it gets back is its version reference ("ref"): the epoch its record belongs
 * to and the offset of the record. The commit leader seals the epoch with
 * one fetch_add of 1 << 40: every reservation before it has the old epoch,
 * every one after it the new. The per-memtable epoch count stays below 2^24
 * because the buffer is at most 256 MiB and a record takes at least 40 bytes.
 */
#ifndef KV_LOGBUF_H
#define KV_LOGBUF_H

#include <stdatomic.h>
#include <stdint.h>

#include "kv.h"

#define KV_REF_OFF_BITS 40
#define KV_REF_OFF_MASK ((1ull << KV_REF_OFF_BITS) - 1)
#define KV_REF_EPOCH_ONE (1ull << KV_REF_OFF_BITS)
#define kv_ref_off(r) ((r)&KV_REF_OFF_MASK)
#define kv_ref_epoch(r) ((uint32_t)((r) >> KV_REF_OFF_BITS))
#define kv_ref_make(epoch, off) (((uint64_t)(epoch) << KV_REF_OFF_BITS) | (off))

#define KV_EPOCH_SLOTS 4 /* at most 2 epochs are unpublished at a time */
#define KV_NO_END UINT64_MAX

#define KV_LOGBUF_MIN (64ull << 10)
#define KV_LOGBUF_MAX (256ull << 20)

/*
 * An async write's acknowledgement, waiting for its epoch's commit. It sits
 * on its epoch slot's list from push until the commit (or the failure) that
 * detaches the list and delivers it exactly once.
 */
struct kv_req {
	struct kv_req *next; /* [the list's] */
	uint64_t ref;	     /* [immutable] its record: orders completions by LSN */
	struct kv_cq *cq;    /* [immutable] deliver here with @tag, or ... */
	uint64_t tag;
	kv_done_fn cb; /* [immutable] ... call @cb(@arg, status) */
	void *arg;
};

/*
 * Per-epoch bookkeeping, reused for epoch e + KV_EPOCH_SLOTS once epoch e is
 * committed (the leader resets it before the next epoch can use it).
 */
struct kv_epoch_slot {
	_Atomic uint64_t released;     /* [atomic] bytes whose writers are done */
	_Atomic uint32_t records;      /* [atomic] records released */
	_Atomic(struct kv_req *) reqs; /* [atomic] async requests (a stack) */
} __attribute__((aligned(64)));

/*
 * Cache lines: readers load base and durable on every read, while every
 * writer does a fetch_add on resv. They live on separate lines, or each write
 * would cost each reader a cache miss (measured: the hot-key read p99).
 */
struct kv_logbuf {
	/* read-mostly */
	uint8_t *base; /* [immutable] cap bytes, zero-filled at init (mmap) */
	uint64_t cap;  /* [immutable] */
	/* written by every append */
	_Alignas(64) _Atomic uint64_t resv; /* [atomic] epoch:offset of the next append */
	uint64_t sealed;		    /* [commit token] start of the open epoch */
	/* written once per commit */
	_Alignas(64) _Atomic uint64_t durable; /* [atomic; written by the commit token holder]
						* bytes [0, durable) are on disk; versions
						* below it are committed (published) */
	_Atomic uint64_t final_end;	       /* [atomic] end of records once the buffer is
						* full, KV_NO_END before */
	struct kv_epoch_slot slot[KV_EPOCH_SLOTS];
};

/* Map a zeroed buffer of @cap bytes; records start at @start. */
int kv_logbuf_init(struct kv_logbuf *lb, uint64_t cap, uint64_t start);
/*
 * The same on @mem: @cap bytes that are all zero (kv_logbuf_map'd, or a
 * detached buffer zeroed again), owned by @lb from now on.
 */
void kv_logbuf_init_on(struct kv_logbuf *lb, uint8_t *mem, uint64_t cap, uint64_t start);
/* Unmap the buffer (if it still has one). */
void kv_logbuf_destroy(struct kv_logbuf *lb);
/* Take the buffer's memory out of @lb (for reuse); destroy then unmaps nothing. */
uint8_t *kv_logbuf_detach(struct kv_logbuf *lb);
/* A fresh zero-filled mapping of @cap bytes, or NULL with errno set. */
uint8_t *kv_logbuf_map(uint64_t cap);
void kv_logbuf_unmap(uint8_t *mem, uint64_t cap);

/*
 * Reserve @len (a multiple of 8) bytes. Returns 0 and *ref, or -ENOSPC when
 * the buffer is full; then *crossing is 1 for exactly one caller, the one
 * whose reservation crossed the end: it must call kv_logbuf_close_at and
 * rotate to a new memtable. The others wait for that rotation.
 */
int kv_logbuf_reserve(struct kv_logbuf *lb, uint64_t len, uint64_t *ref, int *crossing);
/* The crossing writer: records end where its failed reservation began. */
void kv_logbuf_close_at(struct kv_logbuf *lb, uint64_t end);
/* Done copying and indexing the record of @ref (@len bytes). */
void kv_logbuf_release(struct kv_logbuf *lb, uint64_t ref, uint64_t len);
/* Push an async request onto the list of @ref's epoch (before release). */
void kv_logbuf_push_req(struct kv_logbuf *lb, uint64_t ref, struct kv_req *req);

/*
 * Commit token holder only. Seal the open epoch if it has records: returns 1
 * with its number in *epoch and its records in [*start, *end), after waiting
 * until every writer of the epoch has released; 0 if there is nothing to
 * seal; *records is the number of records in it. The caller writes [durable, *end) to the file and
 * then calls kv_logbuf_publish (or fails the store).
 */
int kv_logbuf_seal(struct kv_logbuf *lb, uint32_t *epoch, uint64_t *start, uint64_t *end,
		   uint32_t *records);
/* Records released so far in the open epoch (for the leader's gathering). */
uint32_t kv_logbuf_open_records(const struct kv_logbuf *lb);
/* Make [0, end) committed; returns the epoch's async requests (detached). */
struct kv_req *kv_logbuf_publish(struct kv_logbuf *lb, uint32_t epoch, uint64_t end);
/* Detach the requests of every epoch slot (failure path). */
struct kv_req *kv_logbuf_take_all_reqs(struct kv_logbuf *lb);

/* Offset of the next append (records end below it), clamped to the end. */
uint64_t kv_logbuf_appended(const struct kv_logbuf *lb);
/* 1 if all records ever appended are durable and no more can be. */
int kv_logbuf_done(const struct kv_logbuf *lb);

#endif /* KV_LOGBUF_H */
