/* SPDX-License-Identifier: MIT */
/*
 * store.c - the store directory: identity file, lock, WAL segment files.
 *
 * A store directory holds (kv/FORMAT.md, "Store directory"):
 *   KVSTORE            identity: magic, format version, feature bits, uuid
 *   LOCK               flock'ed while a handle has the store open
 *   wal-<id>.log       WAL segments, one per memtable, ids increasing
 *
 * Opening checks, in this order, so that nothing is created in a directory
 * that is not ours: the directory exists (or is made), it holds a KVSTORE or
 * is empty, then LOCK is taken, then KVSTORE is read (or written) under it.
 *
 * Segments are created zero-filled to their full size and synced with their
 * directory before use, so that a commit overwrites in place: on this
 * hardware an fdatasync after an in-place write costs half of one into
 * fallocated (unwritten) space. The backstop thread keeps one spare segment
 * ready so that rotation does not wait for the zero fill.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <xxhash.h>

#include "db.h"
#include "sync.h"
#include "wal.h"

#define IDENT_NAME "KVSTORE"
#define LOCK_NAME "LOCK"
#define IDENT_MAGIC "LIBKVST1"
#define IDENT_SIZE 64u
#define INCOMPAT_KNOWN 0u /* no incompatible features yet */

static char *path_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static void ident_encode(uint8_t out[IDENT_SIZE])
{
	memset(out, 0, IDENT_SIZE);
	memcpy(out, IDENT_MAGIC, 8);
	kv_put_le32(out + 8, KV_FORMAT_VERSION);
	if (getrandom(out + 24, 16, 0) != 16) {
		uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out;

		kv_put_le64(out + 24, XXH3_64bits(&t, sizeof(t)));
		kv_put_le64(out + 32, t);
	}
	kv_put_le64(out + 40, (uint64_t)time(NULL));
	kv_put_le64(out + 56, XXH3_64bits(out, 56));
}

int kv_ident_check(const struct kv_options *opt, const char *path, const uint8_t *b, size_t len)
{
	uint32_t version, incompat;

	if (len < 8 || memcmp(b, IDENT_MAGIC, 8)) {
		kv_log_opt(
			opt, KV_LOG_ERROR,
			"%s: offset 0: not a libkv identity file (expected %u bytes starting \"%s\")",
			path, IDENT_SIZE, IDENT_MAGIC);
		return -EMEDIUMTYPE;
	}
	if (len != IDENT_SIZE) {
		kv_log_opt(opt, KV_LOG_ERROR,
			   "%s: offset %zu: the identity file is %u bytes, not %zu", path,
			   len < IDENT_SIZE ? len : (size_t)IDENT_SIZE, IDENT_SIZE, len);
		return -EUCLEAN;
	}
	if (kv_get_le64(b + 56) != XXH3_64bits(b, 56)) {
		kv_log_opt(opt, KV_LOG_ERROR, "%s: checksum mismatch at offset 56", path);
		return -EBADMSG;
	}
	version = kv_get_le32(b + 8);
	incompat = kv_get_le32(b + 12);
	if (version > KV_FORMAT_VERSION || (incompat & ~INCOMPAT_KNOWN)) {
		kv_log_opt(
			opt, KV_LOG_ERROR,
			"%s: format version %u (incompatible features 0x%x) is newer than this libkv reads (version %u)",
			path, version, incompat, KV_FORMAT_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

/* The first entry of @dir that is not ours to ignore, for error messages. */
static int first_foreign(void *arg, const char *name)
{
	char **found = arg;

	if (!strcmp(name, LOCK_NAME) || !strcmp(name, IDENT_NAME ".tmp"))
		return 0;
	*found = strdup(name);
	return 1;
}

static int ensure_dir(struct kv_db *db)
{
	const struct kv_env_ops *ops = db->env->ops;
	int is_dir = 0, err;

	err = ops->exists(db->env, db->dir, &is_dir);
	if (err == -ENOENT) {
		if (!db->opt.create_if_missing) {
			kv_log(db, KV_LOG_ERROR, "%s: no such store", db->dir);
			return -ENOENT;
		}
		err = ops->mkdir(db->env, db->dir, 0755);
		if (err)
			kv_log(db, KV_LOG_ERROR, "%s: cannot create directory: %s", db->dir,
			       strerror(-err));
		return err;
	}
	if (!err && !is_dir) {
		kv_log(db, KV_LOG_ERROR, "%s: not a directory", db->dir);
		return -ENOTDIR;
	}
	return err;
}

/* No KVSTORE: the directory must be empty (but for LOCK) to become a store. */
static int init_ident(struct kv_db *db, const char *ident_path)
{
	uint8_t ident[IDENT_SIZE];
	char *foreign = NULL;
	int err;

	db->env->ops->list_dir(db->env, db->dir, first_foreign, &foreign);
	if (foreign) {
		kv_log(db, KV_LOG_ERROR, "%s: not a libkv store (no %s, but it holds \"%s\")",
		       db->dir, IDENT_NAME, foreign);
		free(foreign);
		return -EMEDIUMTYPE;
	}
	if (!db->opt.create_if_missing) {
		kv_log(db, KV_LOG_ERROR, "%s: no store here (no %s)", db->dir, ident_path);
		return -ENOENT;
	}
	ident_encode(ident);
	err = kv_env_write_file_atomic(db->env, db->dir, IDENT_NAME, ident, sizeof(ident));
	if (err)
		kv_log(db, KV_LOG_ERROR, "%s: cannot write: %s", ident_path, strerror(-err));
	return err;
}

static int take_lock(struct kv_db *db)
{
	char *path = path_join(db->dir, LOCK_NAME);
	int err;

	if (!path)
		return -ENOMEM;
	err = db->env->ops->open(db->env, path, O_RDWR | O_CREAT, 0644, &db->lock_file);
	if (!err) {
		err = db->lock_file->env->ops->lock(db->lock_file);
		if (err == -EBUSY)
			kv_log(db, KV_LOG_ERROR,
			       "%s: the store is in use (%s is locked by another handle or process)",
			       db->dir, path);
	}
	if (err && err != -EBUSY)
		kv_log(db, KV_LOG_ERROR, "%s: cannot lock: %s", path, strerror(-err));
	free(path);
	return err;
}

int kv_store_open_dir(struct kv_db *db)
{
	char *ident_path = path_join(db->dir, IDENT_NAME), *foreign = NULL;
	void *buf = NULL;
	size_t len = 0;
	int err;

	if (!ident_path)
		return -ENOMEM;
	err = ensure_dir(db);
	if (err)
		goto out;
	err = kv_env_read_file(db->env, ident_path, 4096, &buf, &len);
	if (err == -ENOENT) {
		/* Refuse a foreign directory before creating anything in it. */
		db->env->ops->list_dir(db->env, db->dir, first_foreign, &foreign);
		if (foreign || !db->opt.create_if_missing) {
			err = init_ident(db, ident_path);
			goto out;
		}
	}
	err = take_lock(db);
	if (err)
		goto out;
	free(buf);
	buf = NULL;
	err = kv_env_read_file(db->env, ident_path, 4096, &buf, &len);
	if (err == -ENOENT) {
		err = init_ident(db, ident_path);
	} else if (!err) {
		err = kv_ident_check(&db->opt, ident_path, buf, len);
		if (!err && db->opt.error_if_exists) {
			kv_log(db, KV_LOG_ERROR, "%s: a store already exists", db->dir);
			err = -EEXIST;
		}
	} else {
		kv_log(db, KV_LOG_ERROR, "%s: cannot read: %s", ident_path, strerror(-err));
	}
out:
	free(foreign);
	free(buf);
	free(ident_path);
	return err;
}

/*
 * Freed log buffers kept for reuse. Every rotation needs a zeroed buffer of
 * log_buffer_size bytes; a fresh mapping costs a page fault (and the kernel
 * zeroing the page) for each page on the writers' path. So a memtable's
 * buffer, once the memtable is freed (after its last unref: no reader can
 * reach it), is kept in one of db->lbuf's slots with the extent its records
 * may have dirtied; the backstop zeroes that a step at a time (from
 * kv_store_prepare_spare) and a rotation takes a ready one, or maps a fresh
 * buffer when none is ready. At most KV_LBUF_SPARES buffers are kept; close
 * unmaps them.
 */
#define KV_LBUF_ZERO_STEP (4ull << 20)

/* Keep @mem, whose bytes [0, @dirty) may be non-zero: 1 if kept. */
static int lbuf_keep(struct kv_db *db, uint8_t *mem, uint64_t dirty)
{
	int kept = 0;

	pthread_mutex_lock(&db->lbuf_mu);
	for (int i = 0; i < KV_LBUF_SPARES && !kept; i++) {
		if (db->lbuf[i].base)
			continue;
		db->lbuf[i].base = mem;
		db->lbuf[i].dirty = dirty;
		db->lbuf[i].zeroing = 0;
		kept = 1;
	}
	pthread_mutex_unlock(&db->lbuf_mu);
	if (kept && dirty)
		kv_commit_kick(db); /* the backstop zeroes it */
	return kept;
}

/* A kept buffer that is all zero, or NULL. */
static uint8_t *lbuf_take(struct kv_db *db)
{
	uint8_t *mem = NULL;

	pthread_mutex_lock(&db->lbuf_mu);
	for (int i = 0; i < KV_LBUF_SPARES && !mem; i++) {
		if (!db->lbuf[i].base || db->lbuf[i].dirty || db->lbuf[i].zeroing)
			continue;
		mem = db->lbuf[i].base;
		db->lbuf[i].base = NULL;
	}
	pthread_mutex_unlock(&db->lbuf_mu);
	if (mem)
		atomic_fetch_add_explicit(&db->lbuf_reused, 1, memory_order_relaxed);
	return mem;
}

/*
 * The backstop: zero the top KV_LBUF_ZERO_STEP bytes of a kept buffer's dirty
 * extent, outside the lock (the slot is marked so that nobody takes it
 * meanwhile), and kick itself again while any dirty bytes are left: commits
 * wait for at most one step.
 */
static void lbuf_zero_step(struct kv_db *db)
{
	struct kv_lbuf_spare *sp = NULL;
	uint64_t lo = 0, hi = 0;
	uint8_t *mem = NULL;
	int more = 0;

	pthread_mutex_lock(&db->lbuf_mu);
	for (int i = 0; i < KV_LBUF_SPARES && !sp; i++) {
		if (!db->lbuf[i].base || !db->lbuf[i].dirty || db->lbuf[i].zeroing)
			continue;
		sp = &db->lbuf[i];
		mem = sp->base;
		hi = sp->dirty;
		lo = hi > KV_LBUF_ZERO_STEP ? hi - KV_LBUF_ZERO_STEP : 0;
		sp->zeroing = 1;
	}
	pthread_mutex_unlock(&db->lbuf_mu);
	if (!sp)
		return;
	memset(mem + lo, 0, hi - lo);
	pthread_mutex_lock(&db->lbuf_mu);
	sp->dirty = lo;
	sp->zeroing = 0;
	for (int i = 0; i < KV_LBUF_SPARES; i++)
		more |= db->lbuf[i].base && db->lbuf[i].dirty;
	pthread_mutex_unlock(&db->lbuf_mu);
	if (more)
		kv_commit_kick(db);
}

void kv_store_release_lbufs(struct kv_db *db)
{
	for (int i = 0; i < KV_LBUF_SPARES; i++) {
		kv_logbuf_unmap(db->lbuf[i].base, db->opt.log_buffer_size);
		db->lbuf[i].base = NULL;
	}
}

/* A memtable on @mem (zeroed, @cap bytes; owned by it from now on) or, if
 * @mem is NULL, on a fresh mapping. */
static int mem_alloc(uint64_t cap, uint8_t *mem, struct kv_mem **out)
{
	struct kv_mem *m = NULL;
	int err = 0;

	/* The log buffer's fields sit on their own cache lines (logbuf.h). */
	if (posix_memalign((void **)&m, _Alignof(struct kv_mem), sizeof(*m))) {
		kv_logbuf_unmap(mem, cap);
		return -ENOMEM;
	}
	memset(m, 0, sizeof(*m));
	if (mem)
		kv_logbuf_init_on(&m->lb, mem, cap, KV_SEG_HEADER_SIZE);
	else
		err = kv_logbuf_init(&m->lb, cap, KV_SEG_HEADER_SIZE);
	if (!err) {
		err = kv_memtable_init(&m->mt, &m->lb);
		if (err)
			kv_logbuf_destroy(&m->lb);
	}
	if (err) {
		free(m);
		return err;
	}
	atomic_init(&m->newer, NULL);
	atomic_init(&m->refs, 0);
	*out = m;
	return 0;
}

int kv_mem_new(uint64_t cap, struct kv_mem **out)
{
	return mem_alloc(cap, NULL, out);
}

int kv_mem_index(struct kv_mem *m, uint64_t ref, const uint8_t *rec, const struct kv_rec_header *h)
{
	struct kv_op_iter it;
	struct kv_op op;

	kv_op_iter_init(&it, rec, h);
	while (kv_op_next(&it, &op)) {
		uint64_t op_off = (uint64_t)(op.key - KV_OP_HEADER_SIZE - m->lb.base);
		int err;

		if (op.type == KV_OP_DELRANGE)
			err = kv_memtable_add_rdel(&m->mt, op_off, op.key, op.klen, op.val,
						   op.vlen);
		else
			err = kv_memtable_apply(&m->mt, ref, op_off, op.key, op.klen);

		if (err)
			return err;
	}
	return 0;
}

/* Close and remove a segment file that will never be used. */
static void discard_segment(struct kv_db *db, struct kv_file *f, char *path)
{
	f->env->ops->close(f);
	db->env->ops->unlink(db->env, path);
	free(path);
}

void kv_mem_free(struct kv_mem *m)
{
	if (!m)
		return;
	if (m->file)
		m->file->env->ops->close(m->file);
	kv_memtable_destroy(&m->mt);
	/* Its records end at appended: nothing above was ever written. */
	if (m->db && m->lb.base && m->lb.cap == m->db->opt.log_buffer_size &&
	    lbuf_keep(m->db, m->lb.base, kv_logbuf_appended(&m->lb)))
		kv_logbuf_detach(&m->lb);
	kv_logbuf_destroy(&m->lb);
	free(m->path);
	free(m);
}

static int create_segment(struct kv_db *db, struct kv_file **f, char **path, uint64_t *id)
{
	char name[64];
	int err;

	pthread_mutex_lock(&db->rot_mu);
	*id = db->next_seg_id++;
	pthread_mutex_unlock(&db->rot_mu);
	snprintf(name, sizeof(name), KV_WAL_NAME_FMT, (unsigned long long)*id);
	*path = path_join(db->dir, name);
	if (!*path)
		return -ENOMEM;
	err = kv_env_create_zeroed(db->env, *path, db->opt.log_buffer_size, f);
	if (err) {
		kv_log(db, KV_LOG_ERROR, "%s: cannot create WAL segment: %s", *path,
		       strerror(-err));
		free(*path);
		*path = NULL;
	}
	return err;
}

static int prepare_segment(struct kv_db *db)
{
	struct kv_file *f;
	uint64_t id;
	char *path;
	int err, have, stale;

	pthread_mutex_lock(&db->rot_mu);
	have = db->spare != NULL;
	pthread_mutex_unlock(&db->rot_mu);
	if (have)
		return 0;
	err = create_segment(db, &f, &path, &id);
	if (err)
		return err;
	pthread_mutex_lock(&db->rot_mu);
	/*
	 * A rotation that found no spare ready made its own segment, with a
	 * later id; a spare with an earlier id would put the log out of id
	 * order (recovery replays by id), so it is thrown away.
	 */
	stale = id < db->active_id;
	if (!stale) {
		db->spare = f;
		db->spare_path = path;
		db->spare_id = id;
	}
	pthread_mutex_unlock(&db->rot_mu);
	if (stale)
		discard_segment(db, f, path);
	return 0;
}

int kv_store_prepare_spare(struct kv_db *db)
{
	int err = prepare_segment(db);

	/* After the segment: a rotation may be waiting for that one. */
	lbuf_zero_step(db);
	return err;
}

int kv_store_new_active(struct kv_db *db, uint64_t base_lsn, uint64_t prev_end, struct kv_mem **out)
{
	struct kv_seg_header h = { 0 };
	struct kv_file *f;
	struct kv_mem *m;
	char *path;
	uint64_t id;
	int err, stale;

	pthread_mutex_lock(&db->rot_mu);
	f = db->spare;
	path = db->spare_path;
	id = db->spare_id;
	db->spare = NULL;
	db->spare_path = NULL;
	stale = f && id < db->active_id; /* see prepare_segment */
	pthread_mutex_unlock(&db->rot_mu);
	if (stale) {
		discard_segment(db, f, path);
		f = NULL;
	}
	if (!f) {
		err = create_segment(db, &f, &path, &id);
		if (err)
			return err;
	}
	pthread_mutex_lock(&db->rot_mu);
	db->active_id = id;
	pthread_mutex_unlock(&db->rot_mu);
	err = mem_alloc(db->opt.log_buffer_size, lbuf_take(db), &m);
	if (err) {
		discard_segment(db, f, path);
		return err;
	}
	m->db = db;
	m->file = f;
	m->path = path;
	m->seg_id = id;
	m->base_lsn = base_lsn;
	h.seg_id = id;
	h.base_lsn = base_lsn;
	h.prev_end = prev_end;
	h.capacity = db->opt.log_buffer_size;
	h.version = KV_FORMAT_VERSION;
	/* The header reaches the file with the segment's first commit. */
	kv_seg_header_encode(m->lb.base, &h);
	*out = m;
	return 0;
}

int kv_store_rotate(struct kv_db *db, struct kv_mem *m, uint64_t end)
{
	struct kv_mem *n;
	int err;

	kv_logbuf_close_at(&m->lb, end);
	err = kv_store_new_active(db, m->base_lsn + end, end, &n);
	if (!err) {
		/* Readers find n (through the super) before any write lands in it. */
		err = kv_super_add_active(db, n);
		if (err)
			kv_mem_free(n);
	}
	if (err) {
		kv_commit_fail(db, err);
	} else {
		pthread_mutex_lock(&db->rot_mu);
		atomic_store_explicit(&m->newer, n, memory_order_release);
		atomic_store_explicit(&db->active, n, memory_order_release);
		pthread_mutex_unlock(&db->rot_mu);
		kv_bg_rotated(db);
	}
	atomic_fetch_add_explicit(&db->rotate_seq, 1, memory_order_release);
	kv_futex_wake_all(&db->rotate_seq);
	/* The old tail needs committing and a new spare is wanted. */
	kv_commit_kick(db);
	return err;
}

void kv_store_tidy(struct kv_db *db)
{
	struct kv_mem *m = atomic_load(&db->active);
	int removed = 0;

	if (db->spare) {
		discard_segment(db, db->spare, db->spare_path);
		db->spare = NULL;
		db->spare_path = NULL;
		removed = 1;
	}
	if (m && m->file && atomic_load(&m->lb.durable) == 0 &&
	    kv_logbuf_appended(&m->lb) == KV_SEG_HEADER_SIZE) {
		m->file->env->ops->close(m->file);
		m->file = NULL;
		db->env->ops->unlink(db->env, m->path);
		removed = 1;
	}
	if (removed)
		db->env->ops->sync_dir(db->env, db->dir);
}

struct seg_ids {
	uint64_t min, *ids;
	size_t n, cap;
};

static int collect_seg_id(void *arg, const char *name)
{
	struct seg_ids *s = arg;
	uint64_t id;

	if (kv_wal_parse_name(name, &id) || id < s->min)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		uint64_t *p = realloc(s->ids, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->ids = p;
		s->cap = cap;
	}
	s->ids[s->n++] = id;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int kv_store_list_segments(struct kv_env *env, const char *dir, uint64_t min, uint64_t **ids,
			   size_t *n)
{
	struct seg_ids s = { .min = min };
	int err = env->ops->list_dir(env, dir, collect_seg_id, &s);

	if (err) {
		free(s.ids);
		return err;
	}
	if (s.n)
		qsort(s.ids, s.n, sizeof(*s.ids), u64_cmp);
	*ids = s.ids;
	*n = s.n;
	return 0;
}
