/* SPDX-License-Identifier: MIT */
/*
 * wal.c - the bytes of WAL segments: header and op encoding, record sealing
 * and validation, and the segment scanner with which recovery tells a torn
 * tail from corruption.
 *
 * A WAL segment is the image of one memtable's log buffer (wal.h has the
 * layouts, kv/FORMAT.md the normative text). Writers encode ops straight into
 * the buffer and seal each record (length, count, epoch, checksum) once its
 * ops are in place; the commit pipeline writes buffer ranges to the file at
 * the same offsets. At open, recovery reads each segment whole and hands it to
 * kv_wal_scan(), which replays records in order and stops at the first one it
 * cannot accept. This file does no I/O, allocates nothing and keeps no state:
 * every function is a pure function of its arguments, safe from any thread.
 *
 * Invariants. 1-5 are the writer's (logbuf.c, commit.c) and the scanner
 * relies on them; 6 is this file's own.
 *   1. Buffer offset == file offset. The header is bytes [0, 64); records
 *      start at 8-aligned offsets >= 64, one after the other. Padding after a
 *      record and everything past the last record are zero (the file is
 *      created zero-filled to its capacity, the buffer is zeroed memory).
 *   2. A record checks itself: its checksum covers every byte of it but the
 *      checksum field, seeded with the segment's id, so a record image from
 *      another segment does not validate here.
 *   3. Epochs never decrease in offset order. The records of epoch e form one
 *      contiguous range, written by one group commit, and that commit is
 *      submitted only after the fdatasync of epoch e - 1 has completed.
 *   4. A segment's first epoch is 1 and no epoch number is skipped between
 *      two records of the segment.
 *   5. Durable bytes are never rewritten: a commit writes [durable, filled).
 *   6. Bytes from disk are untrusted: every length is checked against the
 *      bytes that remain before it is used, and a bad byte gives an error,
 *      never an assertion.
 *
 * The scanner's states, and the function that makes each transition:
 *
 *   REPLAY  --record at off valid, epoch >= max(last, 1)--> REPLAY   [scan_next]
 *           (callback; last = epoch; off += align8(len))            [kv_wal_scan]
 *           --off reaches limit, or no room for a header--> STOPPED [scan_next]
 *           --record at off not acceptable--> STOPPED               [scan_next]
 *   STOPPED --limit set: off < limit--> CORRUPT, else clean end     [scan_verdict]
 *           --no limit: valid record of epoch >= last + 2
 *             at an 8-aligned offset past off--> CORRUPT            [scan_probe]
 *           --otherwise--> clean end or torn tail (0)               [scan_verdict]
 *
 * "last" is the epoch of the last record accepted (0 before the first). Why
 * a later record of epoch >= last + 2 proves corruption, and what the
 * ambiguous case (a later record of epoch last + 1 only) can lose, is in
 * kv/FORMAT.md, "Recovery". The probe is linear in the bytes past the stop
 * and reads one u32 per 8-byte slot of zeroed space, hashing nothing there.
 */
#include "wal.h"
#include "ikey.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <xxhash.h>

#include "kv.h"

/* Field offsets of the segment header, record header and op header. */
enum {
	SEG_MAGIC = 0,
	SEG_VERSION = 8,
	SEG_HEADER_SIZE = 12,
	SEG_ID = 16,
	SEG_BASE_LSN = 24,
	SEG_PREV_END = 32,
	SEG_CAPACITY = 40,
	SEG_FLAGS = 48,
	SEG_RESERVED = 52,
	SEG_CHECKSUM = 56,

	REC_CHECKSUM = 0,
	REC_LEN = 8,
	REC_COUNT = 12,
	REC_EPOCH = 16,
	REC_TYPE = 20,
	REC_FLAGS = 21,
	REC_RESERVED = 22,

	OP_TYPE = 0,
	OP_RESERVED = 1,
	OP_KLEN = 2,
	OP_VLEN = 4,
};

/* The smallest record: a header and one op header (a key needs more). */
#define REC_MIN_LEN (KV_REC_HEADER_SIZE + KV_OP_HEADER_SIZE)

/*
 * Every "this is not a well-formed WAL" verdict goes through WAL_CORRUPT():
 * one place to set a breakpoint, with the line that decided it. wal.c has no
 * log sink; its callers name the file and the offset.
 */
static __attribute__((noinline, cold)) int wal_corrupt(int line)
{
	(void)line;
	return -EUCLEAN;
}
#define WAL_CORRUPT() wal_corrupt(__LINE__)

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static uint64_t seg_checksum(const uint8_t *hdr)
{
	return XXH3_64bits_withSeed(hdr, SEG_CHECKSUM, 0);
}

static uint64_t rec_checksum(const uint8_t *rec, uint32_t len, uint64_t seg_id)
{
	return XXH3_64bits_withSeed(rec + REC_LEN, len - REC_LEN, seg_id);
}

/* ---- segment header --------------------------------------------------- */

void kv_seg_header_encode(uint8_t out[KV_SEG_HEADER_SIZE], const struct kv_seg_header *h)
{
	kv_put_le64(out + SEG_MAGIC, KV_SEG_MAGIC);
	kv_put_le32(out + SEG_VERSION, h->version);
	kv_put_le32(out + SEG_HEADER_SIZE, KV_SEG_HEADER_SIZE);
	kv_put_le64(out + SEG_ID, h->seg_id);
	kv_put_le64(out + SEG_BASE_LSN, h->base_lsn);
	kv_put_le64(out + SEG_PREV_END, h->prev_end);
	kv_put_le64(out + SEG_CAPACITY, h->capacity);
	kv_put_le32(out + SEG_FLAGS, h->flags);
	kv_put_le32(out + SEG_RESERVED, 0);
	kv_put_le64(out + SEG_CHECKSUM, seg_checksum(out));
}

/*
 * Identity (magic, header size) first: a file that is not a segment is
 * -EUCLEAN whatever its bytes. Then the checksum, before the version, so that
 * a damaged version field reads as damage and not as a newer format. Field
 * values are judged last, by the rules of the version they were written in.
 */
int kv_seg_header_decode(const uint8_t in[KV_SEG_HEADER_SIZE], struct kv_seg_header *h)
{
	uint32_t version;

	if (all_zero(in, KV_SEG_HEADER_SIZE))
		return -ENODATA;
	if (kv_get_le64(in + SEG_MAGIC) != KV_SEG_MAGIC ||
	    kv_get_le32(in + SEG_HEADER_SIZE) != KV_SEG_HEADER_SIZE)
		return WAL_CORRUPT();
	if (kv_get_le64(in + SEG_CHECKSUM) != seg_checksum(in))
		return -EBADMSG;
	version = kv_get_le32(in + SEG_VERSION);
	if (version > KV_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	/* Version 1 defines no flags: a set one is a bit we cannot honour. */
	if (version == 0 || kv_get_le64(in + SEG_CAPACITY) < KV_SEG_HEADER_SIZE ||
	    kv_get_le32(in + SEG_FLAGS) != 0 || kv_get_le32(in + SEG_RESERVED) != 0)
		return WAL_CORRUPT();

	h->version = version;
	h->flags = 0;
	h->seg_id = kv_get_le64(in + SEG_ID);
	h->base_lsn = kv_get_le64(in + SEG_BASE_LSN);
	h->prev_end = kv_get_le64(in + SEG_PREV_END);
	h->capacity = kv_get_le64(in + SEG_CAPACITY);
	return 0;
}

/* ---- ops ---------------------------------------------------------------- */

uint8_t *kv_op_encode(uint8_t *p, uint8_t type, const void *key, uint32_t klen, const void *val,
		      uint32_t vlen)
{
	assert(type == KV_OP_PUT || type == KV_OP_DEL || type == KV_OP_DELRANGE);
	assert(klen >= 1 && klen <= KV_MAX_KEY);
	assert(vlen <= KV_MAX_VALUE && (type != KV_OP_DEL || vlen == 0));

	p[OP_TYPE] = type;
	p[OP_RESERVED] = 0;
	kv_put_le16(p + OP_KLEN, (uint16_t)klen);
	kv_put_le32(p + OP_VLEN, vlen);
	p += KV_OP_HEADER_SIZE;
	memcpy(p, key, klen);
	p += klen;
	if (vlen)
		memcpy(p, val, vlen);
	return p + vlen;
}

int kv_op_decode(const uint8_t *p, size_t avail, struct kv_op *op)
{
	uint8_t type;
	uint32_t klen, vlen;

	if (avail < KV_OP_HEADER_SIZE)
		return WAL_CORRUPT();
	type = p[OP_TYPE];
	klen = kv_get_le16(p + OP_KLEN);
	vlen = kv_get_le32(p + OP_VLEN);
	if (type != KV_OP_PUT && type != KV_OP_DEL && type != KV_OP_DELRANGE)
		return WAL_CORRUPT();
	if (p[OP_RESERVED] != 0 || klen == 0 || klen > KV_MAX_KEY)
		return WAL_CORRUPT();
	if (vlen > KV_MAX_VALUE || (type == KV_OP_DEL && vlen != 0))
		return WAL_CORRUPT();
	/* A range [key, value) is non-empty: 0 < vlen <= KV_MAX_KEY, key < value. */
	if (type == KV_OP_DELRANGE &&
	    (vlen == 0 || vlen > KV_MAX_KEY || (size_t)klen + vlen > avail - KV_OP_HEADER_SIZE ||
	     kv_ukey_cmp(p + KV_OP_HEADER_SIZE, klen, p + KV_OP_HEADER_SIZE + klen, vlen) >= 0))
		return WAL_CORRUPT();
	/* Both lengths are bounded above, so the sum cannot wrap. */
	if ((size_t)klen + vlen > avail - KV_OP_HEADER_SIZE)
		return WAL_CORRUPT();

	op->type = type;
	op->klen = klen;
	op->vlen = vlen;
	op->key = p + KV_OP_HEADER_SIZE;
	op->val = op->key + klen;
	return (int)kv_op_size(klen, vlen);
}

/* ---- records ------------------------------------------------------------ */

void kv_rec_seal(uint8_t *rec, uint32_t len, uint32_t count, uint32_t epoch, uint64_t seg_id)
{
	assert(len >= REC_MIN_LEN && count > 0 && epoch > 0);

	kv_put_le32(rec + REC_LEN, len);
	kv_put_le32(rec + REC_COUNT, count);
	kv_put_le32(rec + REC_EPOCH, epoch);
	rec[REC_TYPE] = KV_REC_BATCH;
	rec[REC_FLAGS] = 0;
	kv_put_le16(rec + REC_RESERVED, 0);
	kv_put_le64(rec + REC_CHECKSUM, rec_checksum(rec, len, seg_id));
}

/* The header fields that can be judged without hashing: they bound the hash. */
static int rec_header_parse(const uint8_t *rec, size_t avail, struct kv_rec_header *h)
{
	h->len = kv_get_le32(rec + REC_LEN);
	h->count = kv_get_le32(rec + REC_COUNT);
	h->epoch = kv_get_le32(rec + REC_EPOCH);
	h->type = rec[REC_TYPE];
	if (h->len < REC_MIN_LEN || h->len > avail || h->count == 0)
		return WAL_CORRUPT();
	if (h->type != KV_REC_BATCH || rec[REC_FLAGS] != 0 || kv_get_le16(rec + REC_RESERVED) != 0)
		return WAL_CORRUPT();
	return 0;
}

/* Exactly h->count ops, ending exactly at h->len (fewer ops than count: the
 * decode at h->len fails, having no bytes). */
static int rec_ops_check(const uint8_t *rec, const struct kv_rec_header *h)
{
	size_t off = KV_REC_HEADER_SIZE;
	struct kv_op op;

	for (uint32_t i = 0; i < h->count; i++) {
		int n = kv_op_decode(rec + off, h->len - off, &op);

		if (n < 0)
			return n;
		off += (size_t)n;
	}
	if (off != h->len)
		return WAL_CORRUPT(); /* bytes after the last op */
	return 0;
}

int kv_rec_check(const uint8_t *rec, size_t avail, uint64_t seg_id, struct kv_rec_header *h)
{
	struct kv_rec_header rh;
	int err;

	if (avail < KV_REC_HEADER_SIZE)
		return WAL_CORRUPT();
	if (all_zero(rec, KV_REC_HEADER_SIZE))
		return -ENODATA;
	err = rec_header_parse(rec, avail, &rh);
	if (err)
		return err;
	if (kv_get_le64(rec + REC_CHECKSUM) != rec_checksum(rec, rh.len, seg_id))
		return -EBADMSG;
	err = rec_ops_check(rec, &rh);
	if (err)
		return err;
	if (h)
		*h = rh;
	return 0;
}

void kv_op_iter_init(struct kv_op_iter *it, const uint8_t *rec, const struct kv_rec_header *h)
{
	it->p = rec + KV_REC_HEADER_SIZE;
	it->end = rec + h->len;
}

int kv_op_next(struct kv_op_iter *it, struct kv_op *op)
{
	int n;

	if (it->p >= it->end)
		return 0;
	n = kv_op_decode(it->p, (size_t)(it->end - it->p), op);
	assert(n > 0); /* kv_rec_check() passed on this record */
	if (n <= 0)
		return 0;
	it->p += n;
	return 1;
}

/* ---- scanning ----------------------------------------------------------- */

struct scan {
	const uint8_t *seg;
	size_t size;
	uint64_t seg_id;
	uint64_t limit; /* 0: none */
	uint64_t off;	/* the next record's offset */
	uint32_t last;	/* epoch of the last record accepted, 0 before the first */
};

/*
 * Accept the record at s->off if it is valid and its epoch does not go
 * backwards (epoch 0 is never written, so it is refused too). Returns true
 * and fills *h, or false: the scan stops at s->off.
 */
static bool scan_next(const struct scan *s, struct kv_rec_header *h)
{
	uint64_t stop = s->size;

	if (s->limit && s->off >= s->limit)
		return false;
	if (s->off + KV_REC_HEADER_SIZE > s->size)
		return false;
	if (s->limit && s->limit < stop)
		stop = s->limit;
	if (kv_rec_check(s->seg + s->off, stop - s->off, s->seg_id, h))
		return false;
	return h->epoch >= s->last && h->epoch > 0;
}

/*
 * Is there a valid record of epoch >= @min_epoch at an 8-aligned offset past
 * s->off? The epoch field is compared before anything is hashed, so zeroed
 * space (epoch 0) costs one load per slot.
 */
static bool scan_probe(const struct scan *s, uint64_t min_epoch)
{
	struct kv_rec_header h;

	for (uint64_t p = s->off + KV_REC_ALIGN; p + KV_REC_HEADER_SIZE <= s->size;
	     p += KV_REC_ALIGN) {
		if (kv_get_le32(s->seg + p + REC_EPOCH) < min_epoch)
			continue;
		if (!kv_rec_check(s->seg + p, s->size - p, s->seg_id, &h))
			return true;
	}
	return false;
}

/* The scan stopped at s->off: 0 (clean end or torn tail) or -EUCLEAN. */
static int scan_verdict(const struct scan *s)
{
	/*
	 * The next segment says this one's records end at the limit: reaching
	 * it is the clean end of a complete segment, stopping short is loss.
	 */
	if (s->limit)
		return s->off < s->limit ? WAL_CORRUPT() : 0;
	/* A later epoch was written, so the stop's epoch had been durable. */
	if (scan_probe(s, (uint64_t)s->last + 2))
		return WAL_CORRUPT();
	return 0;
}

int kv_wal_scan(const uint8_t *seg, size_t size, uint64_t seg_id, uint64_t limit, kv_rec_fn fn,
		void *arg, uint64_t *end, uint64_t *bad_off)
{
	struct scan s = {
		.seg = seg,
		.size = size,
		.seg_id = seg_id,
		.limit = limit,
		.off = KV_SEG_HEADER_SIZE,
	};
	struct kv_rec_header h;
	int ret = 0, verdict = 0;

	while (scan_next(&s, &h)) {
		ret = fn ? fn(arg, s.off, &h, seg + s.off) : 0;
		if (ret)
			break;
		s.last = h.epoch;
		s.off += kv_align8(h.len);
	}
	if (!ret)
		verdict = scan_verdict(&s);
	if (end)
		*end = s.off;
	if (bad_off)
		*bad_off = verdict ? s.off : 0;
	return ret ? ret : verdict;
}

int kv_wal_probe(const uint8_t *seg, size_t size, uint64_t seg_id, uint64_t from,
		 uint32_t min_epoch)
{
	struct scan s = { .seg = seg, .size = size, .seg_id = seg_id, .off = from };

	/* scan_probe looks strictly past s.off; start one slot before @from. */
	if (from >= KV_REC_ALIGN)
		s.off = from - KV_REC_ALIGN;
	return scan_probe(&s, min_epoch);
}

/* ---- file names --------------------------------------------------------- */

int kv_wal_parse_name(const char *name, uint64_t *seg_id)
{
	static const char prefix[] = "wal-", suffix[] = ".log";
	const size_t plen = sizeof(prefix) - 1, digits = 16;
	uint64_t id = 0;

	if (strncmp(name, prefix, plen) != 0)
		return -EINVAL;
	for (size_t i = 0; i < digits; i++) {
		char c = name[plen + i];

		if (c >= '0' && c <= '9')
			id = id << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			id = id << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -EINVAL; /* also the terminating NUL of a short name */
	}
	if (strcmp(name + plen + digits, suffix) != 0)
		return -EINVAL;
	*seg_id = id;
	return 0;
}
