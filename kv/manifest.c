/* SPDX-License-Identifier: MIT */
/*
 * manifest.c - version edits, the manifest log and CURRENT (contract:
 * manifest.h; bytes: kv/FORMAT.md, "Manifest").
 *
 * Byte layout owned here (all integers little-endian, kv_put_le* helpers):
 *
 *   MANIFEST-<16 hex>  [file header, 32][record]...
 *     file header      magic "LVKVMAN1", version, header_size = 32, number,
 *                      xxh3_64 of bytes [0, 24)
 *     record           checksum (xxh3_64 of bytes [8, 16 + len), seeded with
 *                      the manifest number), len, type = 1, reserved; then
 *                      len bytes of encoded edit
 *     edit             nfields, reserved; then nfields tagged fields, each
 *                      tag, reserved, len, then len bytes of value
 *   CURRENT            "MANIFEST-<16 lowercase hex>\n", exactly 26 bytes
 *
 * Invariants the reader relies on:
 *   1. A manifest is complete (header and snapshot record fsync'ed, its
 *      directory entry synced) before CURRENT names it; so the header and
 *      the first record of the manifest CURRENT names are never torn.
 *   2. Records are appended one at a time, each fdatasync'ed before the next
 *      is written, and nothing is written after a failed append; so at most
 *      the last record can be torn, and a torn record is the last thing in
 *      the file (a power cut can leave any subset of its sectors).
 *   3. Durable bytes are never rewritten: a manifest is written once, front
 *      to back, and then only unlinked.
 *
 * The torn-last-record rule (kv_manifest_read, walk_records): the walk stops
 * at the first record that is cut short by the end of the file, has a bad
 * header or fails its checksum. If any later offset holds a valid record
 * (header sane, fits the file, checksum matches), the bad record is not the
 * last one, so by invariant 2 it was durable: corruption (-EUCLEAN, with the
 * file and offset). Otherwise it is a torn last record and is dropped with a
 * warning, unless it is the first record (invariant 1: corruption). The probe
 * looks at every byte offset, because a torn record's length field may be
 * the part that was lost; it rejects most offsets on a few loads, before
 * hashing anything.
 *
 * State of a writer (struct kv_manifest): usable after kv_manifest_create;
 * failed (for good) after any error in kv_manifest_append.
 */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ikey.h"
#include "log.h"
#include "wal.h"

#define MAN_MAGIC "LVKVMAN1"
#define MAN_HDR_SIZE 32u
#define MAN_FIRST_VERSION 2u /* the version that introduced the manifest */
#define MAN_REC_HDR_SIZE 16u
#define MAN_REC_EDIT 1u
#define MAN_MAX_RECORD (64u << 20)
#define MAN_MAX_FILE ((size_t)1 << 30)
#define CURRENT_PREFIX "MANIFEST-"
#define CURRENT_LEN 26u /* "MANIFEST-" + 16 hex + "\n" */
#define CURRENT_MAX 4096u

#define EDIT_HDR_SIZE 8u
#define FIELD_HDR_SIZE 8u
enum { TAG_LOG = 1, TAG_NEXT_FILE = 2, TAG_DEL = 3, TAG_ADD = 4 };
#define LOG_LEN 16u
#define NEXT_FILE_LEN 8u
#define DEL_LEN 16u
#define ADD_FIXED_LEN 56u
#define IKEY_MIN KV_IKEY_TRAILER
#define IKEY_MAX (KV_MAX_KEY + KV_IKEY_TRAILER)

struct kv_manifest {
	struct kv_env *env;	      /* [immutable] */
	const struct kv_options *log; /* [immutable] the caller's; outlives us */
	char *dir, *path;	      /* [immutable] */
	uint64_t number;	      /* [immutable] */
	struct kv_file *f;	      /* [caller's version mutex] */
	uint64_t size;		      /* [caller's version mutex] end of the last record */
	int failed;		      /* [caller's version mutex] 0 or the first error */
};

/* ---- version edits ------------------------------------------------------ */

void kv_vedit_init(struct kv_vedit *e)
{
	memset(e, 0, sizeof(*e));
}

/* Make room for element @n of a growing array (capacity: 8, then powers of
 * two, implied by the count). */
static int reserve(void **arr, size_t n, size_t elem)
{
	size_t cap;
	void *p;

	if ((n > 0 && n < 8) || (n > 8 && (n & (n - 1))))
		return 0;
	cap = n < 8 ? 8 : n * 2;
	if (cap > SIZE_MAX / elem)
		return -ENOMEM;
	p = realloc(*arr, cap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	return 0;
}

static uint8_t *dup_bytes(const uint8_t *b, size_t n)
{
	uint8_t *p = n ? malloc(n) : NULL;

	return p ? memcpy(p, b, n) : NULL;
}

int kv_vedit_add(struct kv_vedit *e, const struct kv_file_meta *m)
{
	struct kv_file_meta *d;

	if (reserve((void **)&e->add, e->nadd, sizeof(*e->add)))
		return -ENOMEM;
	d = &e->add[e->nadd];
	*d = *m;
	d->smallest = dup_bytes(m->smallest, m->slen);
	d->largest = dup_bytes(m->largest, m->llen);
	if ((m->slen && !d->smallest) || (m->llen && !d->largest)) {
		free(d->smallest);
		free(d->largest);
		return -ENOMEM;
	}
	e->nadd++;
	return 0;
}

int kv_vedit_del(struct kv_vedit *e, uint32_t level, uint64_t file_no)
{
	if (reserve((void **)&e->del, e->ndel, sizeof(*e->del)))
		return -ENOMEM;
	e->del[e->ndel++] = (struct kv_file_ref){ .level = level, .file_no = file_no };
	return 0;
}

void kv_vedit_free(struct kv_vedit *e)
{
	size_t i;

	for (i = 0; i < e->nadd; i++) {
		free(e->add[i].smallest);
		free(e->add[i].largest);
	}
	free(e->add);
	free(e->del);
	kv_vedit_init(e);
}

/* Both keys absent (an empty table), or both internal keys of legal size. */
static int keys_ok(size_t slen, size_t llen)
{
	if (!slen && !llen)
		return 1;
	return slen >= IKEY_MIN && slen <= IKEY_MAX && llen >= IKEY_MIN && llen <= IKEY_MAX;
}

static uint8_t *put_field_hdr(uint8_t *p, unsigned tag, uint32_t len)
{
	kv_put_le16(p, (uint16_t)tag);
	kv_put_le16(p + 2, 0);
	kv_put_le32(p + 4, len);
	return p + FIELD_HDR_SIZE;
}

static uint8_t *put_add(uint8_t *p, const struct kv_file_meta *m)
{
	p = put_field_hdr(p, TAG_ADD, (uint32_t)(ADD_FIXED_LEN + m->slen + m->llen));
	kv_put_le32(p, m->level);
	kv_put_le32(p + 4, (uint32_t)m->slen);
	kv_put_le32(p + 8, (uint32_t)m->llen);
	kv_put_le32(p + 12, 0);
	kv_put_le64(p + 16, m->file_no);
	kv_put_le64(p + 24, m->size);
	kv_put_le64(p + 32, m->entries);
	kv_put_le64(p + 40, m->min_lsn);
	kv_put_le64(p + 48, m->max_lsn);
	p += ADD_FIXED_LEN;
	if (m->slen)
		memcpy(p, m->smallest, m->slen);
	p += m->slen;
	if (m->llen)
		memcpy(p, m->largest, m->llen);
	return p + m->llen;
}

/* The encoded size, or 0 if the edit cannot be encoded (-EINVAL). */
static size_t edit_size(const struct kv_vedit *e)
{
	size_t n = EDIT_HDR_SIZE, i;

	n += e->has_log ? FIELD_HDR_SIZE + LOG_LEN : 0;
	n += e->has_next_file ? FIELD_HDR_SIZE + NEXT_FILE_LEN : 0;
	for (i = 0; i < e->ndel; i++) {
		if (e->del[i].level >= KV_MAX_LEVELS)
			return 0;
		n += FIELD_HDR_SIZE + DEL_LEN;
	}
	for (i = 0; i < e->nadd; i++) {
		const struct kv_file_meta *m = &e->add[i];

		if (m->level >= KV_MAX_LEVELS || !keys_ok(m->slen, m->llen))
			return 0;
		n += FIELD_HDR_SIZE + ADD_FIXED_LEN + m->slen + m->llen;
	}
	return n <= MAN_MAX_RECORD ? n : 0;
}

/* Encode @e into edit_size(e) bytes at @b. */
static void edit_write(const struct kv_vedit *e, uint8_t *b)
{
	uint8_t *p;
	size_t i;

	kv_put_le32(b, (uint32_t)(!!e->has_log + !!e->has_next_file + e->ndel + e->nadd));
	kv_put_le32(b + 4, 0);
	p = b + EDIT_HDR_SIZE;
	if (e->has_log) {
		p = put_field_hdr(p, TAG_LOG, LOG_LEN);
		kv_put_le64(p, e->log_min_seg);
		kv_put_le64(p + 8, e->log_min_lsn);
		p += LOG_LEN;
	}
	if (e->has_next_file) {
		p = put_field_hdr(p, TAG_NEXT_FILE, NEXT_FILE_LEN);
		kv_put_le64(p, e->next_file);
		p += NEXT_FILE_LEN;
	}
	for (i = 0; i < e->ndel; i++) {
		p = put_field_hdr(p, TAG_DEL, DEL_LEN);
		kv_put_le32(p, e->del[i].level);
		kv_put_le32(p + 4, 0);
		kv_put_le64(p + 8, e->del[i].file_no);
		p += DEL_LEN;
	}
	for (i = 0; i < e->nadd; i++)
		p = put_add(p, &e->add[i]);
}

int kv_vedit_encode(const struct kv_vedit *e, uint8_t **buf, size_t *len)
{
	size_t n = edit_size(e);

	*buf = NULL;
	*len = 0;
	if (!n)
		return -EINVAL;
	*buf = malloc(n);
	if (!*buf)
		return -ENOMEM;
	edit_write(e, *buf);
	*len = n;
	return 0;
}

static int decode_add(const uint8_t *v, uint32_t len, struct kv_vedit *e)
{
	struct kv_file_meta m;

	if (len < ADD_FIXED_LEN || kv_get_le32(v + 12))
		return -EUCLEAN;
	m.level = kv_get_le32(v);
	m.slen = kv_get_le32(v + 4);
	m.llen = kv_get_le32(v + 8);
	if (m.level >= KV_MAX_LEVELS || !keys_ok(m.slen, m.llen) ||
	    (uint64_t)ADD_FIXED_LEN + m.slen + m.llen != len)
		return -EUCLEAN;
	m.file_no = kv_get_le64(v + 16);
	m.size = kv_get_le64(v + 24);
	m.entries = kv_get_le64(v + 32);
	m.min_lsn = kv_get_le64(v + 40);
	m.max_lsn = kv_get_le64(v + 48);
	/* kv_vedit_add copies the keys; the buffer itself is never written. */
	m.smallest = (uint8_t *)(uintptr_t)(v + ADD_FIXED_LEN);
	m.largest = m.smallest + m.slen;
	return kv_vedit_add(e, &m);
}

/* One field's value @v of @len bytes (already known to lie in the buffer). */
static int decode_field(unsigned tag, const uint8_t *v, uint32_t len, struct kv_vedit *e)
{
	switch (tag) {
	case TAG_LOG:
		if (len != LOG_LEN || e->has_log)
			return -EUCLEAN;
		e->has_log = 1;
		e->log_min_seg = kv_get_le64(v);
		e->log_min_lsn = kv_get_le64(v + 8);
		return 0;
	case TAG_NEXT_FILE:
		if (len != NEXT_FILE_LEN || e->has_next_file)
			return -EUCLEAN;
		e->has_next_file = 1;
		e->next_file = kv_get_le64(v);
		return 0;
	case TAG_DEL:
		if (len != DEL_LEN || kv_get_le32(v) >= KV_MAX_LEVELS || kv_get_le32(v + 4))
			return -EUCLEAN;
		return kv_vedit_del(e, kv_get_le32(v), kv_get_le64(v + 8));
	case TAG_ADD:
		return decode_add(v, len, e);
	default:
		return -EUCLEAN; /* a new tag comes with a new format version */
	}
}

int kv_vedit_decode(const uint8_t *buf, size_t len, struct kv_vedit *e)
{
	size_t pos = EDIT_HDR_SIZE;
	uint32_t nfields, i, flen;
	int ret;

	kv_vedit_init(e);
	if (len < EDIT_HDR_SIZE || kv_get_le32(buf + 4))
		return -EUCLEAN;
	nfields = kv_get_le32(buf);
	for (i = 0; i < nfields; i++) {
		ret = -EUCLEAN;
		if (len - pos < FIELD_HDR_SIZE || kv_get_le16(buf + pos + 2))
			goto fail;
		flen = kv_get_le32(buf + pos + 4);
		if (flen > len - pos - FIELD_HDR_SIZE)
			goto fail;
		ret = decode_field(kv_get_le16(buf + pos), buf + pos + FIELD_HDR_SIZE, flen, e);
		if (ret)
			goto fail;
		pos += FIELD_HDR_SIZE + flen;
	}
	if (pos == len)
		return 0;
	ret = -EUCLEAN; /* bytes after the last field */
fail:
	kv_vedit_free(e);
	return ret;
}

/* ---- problems: logged (read) or reported (check) ------------------------ */

struct msink {
	const struct kv_options *log; /* read: log the problem, then fail */
	kv_check_fn report;	      /* check: report every problem, go on */
	void *arg;
	int warn; /* log problems as warnings (create replaces a bad CURRENT) */
	int problems;
};

/* Report a problem at @file:@off; @torn marks a torn last record (a warning
 * when reading). Returns what a walk does next: 0 go on (check, or a torn
 * record), -EUCLEAN stop (read). */
__attribute__((format(printf, 5, 6))) static int
problem(struct msink *s, const char *file, uint64_t off, int torn, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	s->problems++;
	if (s->report)
		s->report(s->arg, file, off, torn ? "torn last record" : text);
	else if (torn)
		kv_log_opt(
			s->log, KV_LOG_WARN,
			"%s: torn last record at offset %llu dropped (%s); its append never completed",
			file, (unsigned long long)off, text);
	else
		kv_log_opt(s->log, s->warn ? KV_LOG_WARN : KV_LOG_ERROR, "%s: offset %llu: %s",
			   file, (unsigned long long)off, text);
	return s->report || torn ? 0 : -EUCLEAN;
}

/* ---- CURRENT ------------------------------------------------------------ */

/* Strict: exactly "MANIFEST-" 16 lowercase hex digits "\n"; *bad is the
 * offset of the first byte that is wrong (or missing). */
static int parse_current(const uint8_t *b, size_t len, uint64_t *number, size_t *bad)
{
	static const char hex[] = "0123456789abcdef";
	const size_t plen = sizeof(CURRENT_PREFIX) - 1;
	const char *d;
	uint64_t n = 0;
	size_t i;
	int ok;

	for (i = 0; i < CURRENT_LEN; i++) {
		if (i >= len)
			break;
		if (i < plen) {
			ok = b[i] == (uint8_t)CURRENT_PREFIX[i];
		} else if (i < CURRENT_LEN - 1) {
			d = b[i] ? strchr(hex, b[i]) : NULL;
			ok = d != NULL;
			n = (n << 4) | (uint64_t)(ok ? d - hex : 0);
		} else {
			ok = b[i] == '\n';
		}
		if (!ok)
			break;
	}
	*bad = i;
	if (i < CURRENT_LEN || len != CURRENT_LEN)
		return -EUCLEAN;
	*number = n;
	return 0;
}

/* "@dir/MANIFEST-<number>", malloc'd; NULL if out of memory. */
static char *manifest_path(const char *dir, uint64_t number)
{
	char *p;

	if (asprintf(&p, "%s/" KV_MANIFEST_NAME_FMT, dir, (unsigned long long)number) < 0)
		return NULL;
	return p;
}

/* The number CURRENT names: -ENOENT without CURRENT, -EUCLEAN (reported)
 * if it holds anything but a manifest name, or an I/O error. */
static int read_current(struct kv_env *env, struct msink *s, const char *dir, uint64_t *number)
{
	size_t len = 0, bad = 0;
	char *path;
	void *buf = NULL;
	int ret;

	if (asprintf(&path, "%s/" KV_CURRENT_NAME, dir) < 0)
		return -ENOMEM;
	ret = kv_env_read_file(env, path, CURRENT_MAX, &buf, &len);
	if (ret == -EFBIG) {
		problem(s, path, CURRENT_LEN, 0,
			"larger than %u bytes; expected \"" CURRENT_PREFIX
			"<16 lowercase hex digits>\\n\" (%u bytes)",
			CURRENT_MAX, CURRENT_LEN);
		ret = -EUCLEAN;
	} else if (ret && ret != -ENOENT) {
		kv_log_opt(s->log, KV_LOG_ERROR, "%s: cannot read: %s", path, strerror(-ret));
	} else if (!ret && parse_current(buf, len, number, &bad)) {
		problem(s, path, bad, 0,
			"expected \"" CURRENT_PREFIX "<16 lowercase hex digits>\\n\" (%u bytes); "
			"%zu bytes, the first wrong one at offset %zu",
			CURRENT_LEN, len, bad);
		ret = -EUCLEAN;
	}
	free(buf);
	free(path);
	return ret;
}

/* ---- the manifest file -------------------------------------------------- */

static void header_encode(uint8_t *h, uint64_t number)
{
	memcpy(h, MAN_MAGIC, 8);
	kv_put_le32(h + 8, KV_FORMAT_VERSION);
	kv_put_le32(h + 12, MAN_HDR_SIZE);
	kv_put_le64(h + 16, number);
	kv_put_le64(h + 24, XXH3_64bits_withSeed(h, 24, 0));
}

/*
 * Judge the file header. Returns 0, -EUCLEAN or -EPROTONOSUPPORT (reported);
 * *walkable says whether the records can still be checked (the header's
 * place and the format are right, only its contents are damaged).
 */
static int header_check(struct msink *s, const char *path, const uint8_t *h, size_t size,
			uint64_t number, int *walkable)
{
	uint32_t version;

	*walkable = 0;
	if (size < MAN_HDR_SIZE) {
		problem(s, path, size, 0, "file of %zu bytes ends inside its %u-byte header", size,
			MAN_HDR_SIZE);
		return -EUCLEAN;
	}
	if (memcmp(h, MAN_MAGIC, 8) || kv_get_le32(h + 12) != MAN_HDR_SIZE) {
		problem(s, path, 0, 0, "not a manifest (expected magic \"%s\", header_size %u)",
			MAN_MAGIC, MAN_HDR_SIZE);
		return -EUCLEAN;
	}
	*walkable = 1;
	if (kv_get_le64(h + 24) != XXH3_64bits_withSeed(h, 24, 0)) {
		problem(s, path, 24, 0, "header checksum mismatch");
		return -EUCLEAN;
	}
	version = kv_get_le32(h + 8);
	if (version > KV_FORMAT_VERSION) {
		*walkable = 0;
		problem(s, path, 8, 0, "format version %u is newer than this libkv reads (%u)",
			version, KV_FORMAT_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (version < MAN_FIRST_VERSION) {
		problem(s, path, 8, 0, "format version %u has no manifest (expected %u..%u)",
			version, MAN_FIRST_VERSION, KV_FORMAT_VERSION);
		return -EUCLEAN;
	}
	if (kv_get_le64(h + 16) != number) {
		problem(s, path, 16, 0, "header names manifest %llu, expected %llu (the file name)",
			(unsigned long long)kv_get_le64(h + 16), (unsigned long long)number);
		return -EUCLEAN;
	}
	return 0;
}

/* 0: a valid record of *len payload bytes at @off. -ENODATA: cut short by
 * the end of the file; -EUCLEAN: impossible header; -EBADMSG: checksum. */
static int rec_judge(const uint8_t *buf, size_t size, size_t off, uint64_t seed, uint32_t *len,
		     const char **why)
{
	const uint8_t *r = buf + off;
	uint32_t n;

	if (size - off < MAN_REC_HDR_SIZE) {
		*why = "the file ends inside its header";
		return -ENODATA;
	}
	n = kv_get_le32(r + 8);
	if (kv_get_le16(r + 12) != MAN_REC_EDIT || kv_get_le16(r + 14) || n > MAN_MAX_RECORD) {
		*why = "impossible record header";
		return -EUCLEAN;
	}
	if (n > size - off - MAN_REC_HDR_SIZE) {
		*why = "its length runs past the end of the file";
		return -ENODATA;
	}
	if (kv_get_le64(r) != XXH3_64bits_withSeed(r + 8, 8 + (size_t)n, seed)) {
		*why = "checksum mismatch";
		return -EBADMSG;
	}
	*len = n;
	return 0;
}

/* The first offset after @off that holds a valid record, or @size. */
static size_t rec_probe(const uint8_t *buf, size_t size, size_t off, uint64_t seed)
{
	const char *why;
	uint32_t len;
	size_t p;

	for (p = off + 1; p + MAN_REC_HDR_SIZE <= size; p++)
		if (!rec_judge(buf, size, p, seed, &len, &why))
			return p;
	return size;
}

struct mwalk {
	struct msink *sink;
	const char *path;
	const uint8_t *buf;
	size_t size;
	uint64_t seed;					/* the manifest number */
	int (*fn)(void *arg, const struct kv_vedit *e); /* NULL: check only */
	void *arg;
};

static int deliver(struct mwalk *w, size_t off, uint32_t len)
{
	struct kv_vedit e;
	int ret;

	ret = kv_vedit_decode(w->buf + off + MAN_REC_HDR_SIZE, len, &e);
	if (ret == -EUCLEAN)
		return problem(
			w->sink, w->path, off, 0,
			"record of %u bytes passes its checksum but is not a valid version edit",
			len);
	if (!ret && w->fn)
		ret = w->fn(w->arg, &e);
	kv_vedit_free(&e);
	return ret;
}

/* The torn-last-record rule (top of file). Read: stops at the first
 * corruption (-EUCLEAN) or non-zero fn; check: reports and goes on. */
static int walk_records(struct mwalk *w)
{
	size_t off = MAN_HDR_SIZE, next, nrec = 0;
	const char *why;
	uint32_t len;
	int ret = 0;

	while (!ret && off < w->size) {
		if (!rec_judge(w->buf, w->size, off, w->seed, &len, &why)) {
			ret = deliver(w, off, len);
			off += MAN_REC_HDR_SIZE + len;
			nrec++;
			continue;
		}
		next = rec_probe(w->buf, w->size, off, w->seed);
		if (next < w->size) {
			ret = problem(w->sink, w->path, off, 0,
				      "bad record (%s), but a valid record follows at offset %zu",
				      why, next);
			off = next;
			continue;
		}
		if (!nrec)
			return problem(
				w->sink, w->path, off, 0,
				"bad first record (%s): the snapshot was synced before CURRENT named this manifest",
				why);
		return problem(w->sink, w->path, off, 1, "%s", why);
	}
	if (!ret && !nrec)
		ret = problem(w->sink, w->path, off, 0, "no records (expected a snapshot record)");
	return ret;
}

/* Read and walk the manifest CURRENT names (the body of read and check). */
static int walk_current(struct kv_env *env, struct msink *s, const char *dir, struct mwalk *w)
{
	void *buf = NULL;
	char *path = NULL;
	size_t size = 0;
	int ret, walkable;

	ret = read_current(env, s, dir, &w->seed);
	if (ret)
		return ret;
	path = manifest_path(dir, w->seed);
	if (!path)
		return -ENOMEM;
	ret = kv_env_read_file(env, path, MAN_MAX_FILE, &buf, &size);
	if (ret == -ENOENT || ret == -EFBIG) {
		if (ret == -ENOENT)
			problem(s, path, 0, 0, "missing, but " KV_CURRENT_NAME " names it");
		else
			problem(s, path, 0, 0, "larger than %zu bytes", MAN_MAX_FILE);
		ret = -EUCLEAN;
	} else if (ret) {
		kv_log_opt(s->log, KV_LOG_ERROR, "%s: cannot read: %s", path, strerror(-ret));
	}
	if (ret)
		goto out;
	ret = header_check(s, path, buf, size, w->seed, &walkable);
	if (ret && !(s->report && walkable))
		goto out;
	w->sink = s;
	w->path = path;
	w->buf = buf;
	w->size = size;
	ret = walk_records(w);
out:
	free(buf);
	free(path);
	return ret;
}

int kv_manifest_read(struct kv_env *env, const struct kv_options *log, const char *dir,
		     int (*fn)(void *arg, const struct kv_vedit *e), void *arg, uint64_t *number)
{
	struct msink s = { .log = log };
	struct mwalk w = { .fn = fn, .arg = arg };
	int ret = walk_current(env, &s, dir, &w);

	if (!ret)
		*number = w.seed;
	return ret;
}

int kv_manifest_check(struct kv_env *env, const char *dir, kv_check_fn report, void *arg)
{
	struct msink s = { .report = report, .arg = arg };
	struct mwalk w = { 0 };
	int ret = walk_current(env, &s, dir, &w);

	if (ret && ret != -EUCLEAN && ret != -EPROTONOSUPPORT)
		return ret; /* could not check: no CURRENT, I/O error, ENOMEM */
	return s.problems;
}

/* ---- the writer --------------------------------------------------------- */

/* @prefix bytes of room (for the file header), then the record of @e. */
static int record_image(const struct kv_vedit *e, uint64_t seed, size_t prefix, uint8_t **img,
			size_t *n)
{
	size_t len = edit_size(e);
	uint8_t *b, *r;

	if (!len)
		return -EINVAL;
	b = malloc(prefix + MAN_REC_HDR_SIZE + len);
	if (!b)
		return -ENOMEM;
	r = b + prefix;
	kv_put_le32(r + 8, (uint32_t)len);
	kv_put_le16(r + 12, MAN_REC_EDIT);
	kv_put_le16(r + 14, 0);
	edit_write(e, r + MAN_REC_HDR_SIZE);
	kv_put_le64(r, XXH3_64bits_withSeed(r + 8, 8 + len, seed));
	*img = b;
	*n = prefix + MAN_REC_HDR_SIZE + len;
	return 0;
}

/* Invariant 1: header and snapshot written, file fsync'ed, entry synced. */
static int write_new_file(struct kv_manifest *m, const struct kv_vedit *snapshot)
{
	const struct kv_env_ops *ops = m->env->ops;
	const char *what = "encoding the snapshot";
	uint8_t *img = NULL;
	size_t n = 0;
	int ret;

	ret = record_image(snapshot, m->number, MAN_HDR_SIZE, &img, &n);
	if (ret)
		goto out;
	header_encode(img, m->number);
	what = "creating it";
	ret = ops->open(m->env, m->path, O_RDWR | O_CREAT | O_TRUNC, 0644, &m->f);
	if (ret)
		goto out;
	what = "writing";
	ret = kv_env_write_all(m->f, img, n, 0);
	if (!ret) {
		what = "fsync";
		ret = m->f->env->ops->sync(m->f, 0);
	}
	if (!ret) {
		what = "syncing its directory";
		ret = ops->sync_dir(m->env, m->dir);
	}
	if (ret) {
		m->f->env->ops->close(m->f);
		m->f = NULL;
		ops->unlink(m->env, m->path); /* best effort: CURRENT does not name it */
	}
out:
	if (ret)
		kv_log_opt(m->log, KV_LOG_ERROR,
			   "%s: new manifest (%zu bytes at offset 0): %s failed: %s", m->path, n,
			   what, strerror(-ret));
	m->size = n;
	free(img);
	return ret;
}

/* CURRENT now names us (durably); dropping the old manifest is cleanup. */
static void remove_old(struct kv_manifest *m, uint64_t old)
{
	char *path = manifest_path(m->dir, old);
	int ret;

	if (!path)
		return;
	ret = m->env->ops->unlink(m->env, path);
	if (!ret)
		ret = m->env->ops->sync_dir(m->env, m->dir);
	if (ret && ret != -ENOENT)
		kv_log_opt(m->log, KV_LOG_WARN, "%s: cannot remove the old manifest: %s", path,
			   strerror(-ret));
	free(path);
}

static struct kv_manifest *writer_new(struct kv_env *env, const struct kv_options *log,
				      const char *dir, uint64_t number)
{
	struct kv_manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	*m = (struct kv_manifest){ .env = env, .log = log, .number = number };
	m->dir = strdup(dir);
	m->path = manifest_path(dir, number);
	if (!m->dir || !m->path) {
		kv_manifest_close(m);
		return NULL;
	}
	return m;
}

int kv_manifest_create(struct kv_env *env, const struct kv_options *log, const char *dir,
		       uint64_t number, const struct kv_vedit *snapshot, struct kv_manifest **out)
{
	struct msink warn = { .log = log, .warn = 1 };
	char current[CURRENT_LEN + 1];
	struct kv_manifest *m;
	uint64_t old = 0;
	int ret, have_old;

	*out = NULL;
	m = writer_new(env, log, dir, number);
	if (!m)
		return -ENOMEM;
	ret = read_current(env, &warn, dir, &old);
	have_old = !ret;
	if (ret && ret != -ENOENT && ret != -EUCLEAN)
		goto fail; /* an unreadable CURRENT: do not guess */
	if (have_old && old == number) {
		kv_log_opt(log, KV_LOG_ERROR, "%s: refusing to overwrite the live manifest",
			   m->path);
		ret = -EEXIST;
		goto fail;
	}
	ret = write_new_file(m, snapshot);
	if (ret)
		goto fail;
	snprintf(current, sizeof(current), KV_MANIFEST_NAME_FMT "\n", (unsigned long long)number);
	ret = kv_env_write_file_atomic(env, dir, KV_CURRENT_NAME, current, CURRENT_LEN);
	if (ret) {
		/* The rename may have happened: the new file must stay. */
		kv_log_opt(log, KV_LOG_ERROR,
			   "%s/%s: cannot point it at %s (%u bytes at offset 0): %s", dir,
			   KV_CURRENT_NAME, m->path, CURRENT_LEN, strerror(-ret));
		goto fail;
	}
	if (have_old)
		remove_old(m, old);
	*out = m;
	return 0;
fail:
	kv_manifest_close(m);
	return ret;
}

int kv_manifest_append(struct kv_manifest *m, const struct kv_vedit *e)
{
	uint8_t *img = NULL;
	size_t n = 0;
	int ret;

	if (m->failed)
		return -EIO;
	ret = record_image(e, m->number, 0, &img, &n);
	if (!ret)
		ret = kv_env_write_all(m->f, img, n, m->size);
	if (!ret)
		ret = m->f->env->ops->sync(m->f, 1);
	free(img);
	if (ret) {
		m->failed = ret;
		kv_log_opt(
			m->log, KV_LOG_ERROR,
			"%s: append of %zu bytes at offset %llu failed: %s; the manifest is unusable",
			m->path, n, (unsigned long long)m->size, strerror(-ret));
		return ret;
	}
	m->size += n;
	return 0;
}

uint64_t kv_manifest_size(const struct kv_manifest *m)
{
	return m->size;
}

uint64_t kv_manifest_number(const struct kv_manifest *m)
{
	return m->number;
}

void kv_manifest_close(struct kv_manifest *m)
{
	if (!m)
		return;
	if (m->f)
		m->f->env->ops->close(m->f);
	free(m->dir);
	free(m->path);
	free(m);
}
