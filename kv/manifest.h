/* SPDX-License-Identifier: MIT */
/*
 * manifest.h - the manifest: an append-only log of version edits, and
 * CURRENT, the file that names the live manifest. Byte layout: kv/FORMAT.md,
 * "Manifest".
 *
 * The store's shape (which tables are in which level, which WAL segments are
 * already flushed, the next file number) is the result of applying every
 * edit of the live manifest in order. A new manifest starts with one edit
 * that holds the whole shape (a snapshot), so old manifests can be deleted.
 *
 * Crash safety: an edit is appended and fdatasync'ed before anything that
 * depends on it happens (deleting a flushed segment or a compacted table).
 * A new manifest is written and synced under its own name, then CURRENT is
 * replaced atomically (write CURRENT.tmp, fsync, rename, fsync the
 * directory). The last record of a manifest may be torn by a crash during
 * its append (it was never acknowledged): a last record that is cut short
 * or fails its checksum is dropped with a warning. Any other bad record is
 * corruption (-EUCLEAN), reported with the file and offset.
 *
 * A struct kv_manifest (the writer) is used by one thread at a time (the
 * db's version mutex).
 */
#ifndef KV_MANIFEST_H
#define KV_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"

#define KV_MANIFEST_NAME_FMT "MANIFEST-%016llx"
#define KV_CURRENT_NAME "CURRENT"

/* A table in the shape. Keys are internal keys (ikey.h), malloc'd. */
struct kv_file_meta {
	uint32_t level;
	uint64_t file_no;
	uint64_t size;
	uint64_t entries;
	uint64_t min_lsn, max_lsn;
	uint8_t *smallest, *largest;
	size_t slen, llen;
};

struct kv_file_ref {
	uint32_t level;
	uint64_t file_no;
};

/* One edit. Fields with has_* == 0 are absent (unchanged). */
struct kv_vedit {
	int has_log;
	uint64_t log_min_seg; /* WAL segments with a smaller id are flushed */
	uint64_t log_min_lsn; /* the LSN where segment log_min_seg begins */
	int has_next_file;
	uint64_t next_file; /* table file numbers below this are taken */
	size_t nadd, ndel;
	struct kv_file_meta *add; /* malloc'd array (and keys) */
	struct kv_file_ref *del;  /* malloc'd array */
};

void kv_vedit_init(struct kv_vedit *e);
/* Append copies to the edit's arrays. 0 or -ENOMEM. */
int kv_vedit_add(struct kv_vedit *e, const struct kv_file_meta *m);
int kv_vedit_del(struct kv_vedit *e, uint32_t level, uint64_t file_no);
void kv_vedit_free(struct kv_vedit *e);
/* Encode into a malloc'd buffer; decode checks every length (-EUCLEAN). */
int kv_vedit_encode(const struct kv_vedit *e, uint8_t **buf, size_t *len);
int kv_vedit_decode(const uint8_t *buf, size_t len, struct kv_vedit *e);

struct kv_manifest;

/*
 * Write a new manifest numbered @number in @dir holding @snapshot as its first
 * record, sync it, then point CURRENT at it (atomically, directory synced) and
 * remove the manifest CURRENT named before, if any. Returns the writer. On
 * error CURRENT may already name the new manifest: the caller must fail the
 * store (appending to the old one could be lost).
 */
int kv_manifest_create(struct kv_env *env, const struct kv_options *log, const char *dir,
		       uint64_t number, const struct kv_vedit *snapshot, struct kv_manifest **out);
/* Append @e and fdatasync. An error leaves the manifest unusable (the
 * caller fails the store). */
int kv_manifest_append(struct kv_manifest *m, const struct kv_vedit *e);
/* Bytes written so far (to decide when to start a fresh manifest). */
uint64_t kv_manifest_size(const struct kv_manifest *m);
uint64_t kv_manifest_number(const struct kv_manifest *m);
void kv_manifest_close(struct kv_manifest *m);

/*
 * Read CURRENT and replay its manifest, calling @fn(arg, edit) for each
 * record in order (a non-zero return stops and is returned). -ENOENT if there
 * is no CURRENT; -EUCLEAN on corruption (logged with file and offset); a torn
 * last record is dropped with a warning. *number gets the manifest's number.
 */
int kv_manifest_read(struct kv_env *env, const struct kv_options *log, const char *dir,
		     int (*fn)(void *arg, const struct kv_vedit *e), void *arg, uint64_t *number);

/* For kv_check: verify CURRENT and every record of the manifest it names,
 * reporting each problem (a torn last record included). Returns the number
 * of problems or -errno. */
int kv_manifest_check(struct kv_env *env, const char *dir, kv_check_fn report, void *arg);

#endif /* KV_MANIFEST_H */
