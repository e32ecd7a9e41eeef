/* SPDX-License-Identifier: MIT */
/*
 * version.c - what readers see and how it changes: guards and grace
 * periods, supers (memtables + table version), table versions built from
 * manifest edits, and snapshots.
 *
 * Guards. A foreground call enters a guard (kv_guard_enter: increment its
 * thread's counter of the current phase, re-check the phase) and leaves it
 * when done.
 * Everything it loads from db->super inside stays alive until it leaves:
 * a replaced super is only retired (db->retired) and freed after
 * kv_guard_sync, which flips the phase and waits for the old phase's counters
 * (all slots) to drain. Only background threads (and close) wait for a grace period,
 * never a thread inside a guard. The argument that one flip suffices: with
 * sequentially consistent operations, a guard whose increment comes after
 * the waiter read the old counter re-reads the phase after its increment and
 * so sees the flip and retries in the new phase.
 *
 * Lifetimes. The db holds one reference on the current super; a super holds
 * one on each of its memtables and on its version; a version holds one on
 * each of its tables. A table deleted by an edit is marked obsolete and its
 * file is unlinked when its last reference goes (no reader, iterator or
 * version uses it any more).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "sync.h"

/* A fresh manifest is started when the current one grows past this. */
#define MANIFEST_ROLL_BYTES (4u << 20)

/* ---- guards ---- */

/* This thread's guard slot (round robin over threads). */
static unsigned guard_slot(void)
{
	static _Atomic unsigned next;
	static __thread unsigned slot = UINT32_MAX;

	if (slot == UINT32_MAX)
		slot = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % KV_GUARD_SLOTS;
	return slot;
}

/* The guard token: slot << 1 | phase. */
int kv_guard_enter(struct kv_db *db)
{
	struct kv_guard_slot *s = &db->gslot[guard_slot()];

	for (;;) {
		int g = (int)(atomic_load(&db->gphase) & 1);

		atomic_fetch_add(&s->n[g], 1);
		if ((int)(atomic_load(&db->gphase) & 1) == g)
			return (int)((s - db->gslot) << 1) | g;
		atomic_fetch_sub(&s->n[g], 1);
	}
}

void kv_guard_exit(struct kv_db *db, int token)
{
	atomic_fetch_sub_explicit(&db->gslot[token >> 1].n[token & 1], 1, memory_order_release);
}

static int guards_in(struct kv_db *db, int phase)
{
	for (int i = 0; i < KV_GUARD_SLOTS; i++)
		if (atomic_load(&db->gslot[i].n[phase]))
			return 1;
	return 0;
}

void kv_guard_sync(struct kv_db *db)
{
	struct timespec ts = { 0, 20000 };
	unsigned spins = 0;
	int old;

	pthread_mutex_lock(&db->gp_mu);
	old = (int)(atomic_fetch_add(&db->gphase, 1) & 1);
	while (guards_in(db, old)) {
		if (spins++ < 64)
			kv_backoff(&spins);
		else
			nanosleep(&ts, NULL);
	}
	pthread_mutex_unlock(&db->gp_mu);
}

/* ---- memtables, tables, versions, supers ---- */

void kv_mem_unref(struct kv_mem *m)
{
	if (m && atomic_fetch_sub(&m->refs, 1) == 1)
		kv_mem_free(m);
}

char *kv_table_path(struct kv_db *db, uint64_t file_no)
{
	char *p;

	if (asprintf(&p, "%s/" KV_TABLE_NAME_FMT, db->dir, (unsigned long long)file_no) < 0)
		return NULL;
	return p;
}

static void meta_free(struct kv_file_meta *m)
{
	free(m->smallest);
	free(m->largest);
}

static int meta_copy(struct kv_file_meta *dst, const struct kv_file_meta *src)
{
	*dst = *src;
	dst->smallest = malloc(src->slen ? src->slen : 1);
	dst->largest = malloc(src->llen ? src->llen : 1);
	if (!dst->smallest || !dst->largest) {
		meta_free(dst);
		return -ENOMEM;
	}
	memcpy(dst->smallest, src->smallest, src->slen);
	memcpy(dst->largest, src->largest, src->llen);
	return 0;
}

int kv_tref_open(struct kv_db *db, const struct kv_file_meta *meta, struct kv_tref **out)
{
	struct kv_tref *t = calloc(1, sizeof(*t));
	int err = -ENOMEM;

	if (!t)
		return -ENOMEM;
	t->db = db;
	t->path = kv_table_path(db, meta->file_no);
	if (!t->path || meta_copy(&t->meta, meta))
		goto fail;
	err = kv_table_open(db->env, &db->opt, t->path, meta->file_no, meta->size, db->cache,
			    db->tcache, &t->t);
	if (err == -ENOENT) {
		/* Named by the manifest: a missing table is damage, not "no store". */
		kv_log(db, KV_LOG_ERROR,
		       "%s: offset 0: missing, but the manifest names it (level %u)", t->path,
		       meta->level);
		err = -EUCLEAN;
	}
	if (err) {
		meta_free(&t->meta);
		goto fail;
	}
	atomic_init(&t->refs, 1);
	*out = t;
	return 0;
fail:
	free(t->path);
	free(t);
	return err;
}

void kv_tref_unref(struct kv_tref *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	kv_table_close(t->t);
	if (atomic_load(&t->obsolete)) {
		struct kv_db *db = t->db;

		if (db->cache)
			kv_cache_erase_file(db->cache, t->meta.file_no);
		db->env->ops->unlink(db->env, t->path);
	}
	meta_free(&t->meta);
	free(t->path);
	free(t);
}

static struct kv_version *version_alloc(void)
{
	struct kv_version *v = calloc(1, sizeof(*v));

	if (v)
		atomic_init(&v->refs, 1);
	return v;
}

void kv_version_unref(struct kv_version *v)
{
	if (!v || atomic_fetch_sub(&v->refs, 1) != 1)
		return;
	for (int l = 0; l < KV_MAX_LEVELS; l++) {
		for (size_t i = 0; i < v->n[l]; i++)
			kv_tref_unref(v->files[l][i]);
		free(v->files[l]);
	}
	free(v);
}

static int level0_cmp(const void *a, const void *b)
{
	const struct kv_tref *x = *(struct kv_tref *const *)a, *y = *(struct kv_tref *const *)b;

	/* Newest first: a later flush holds later lsns. */
	if (x->meta.max_lsn != y->meta.max_lsn)
		return x->meta.max_lsn > y->meta.max_lsn ? -1 : 1;
	return x->meta.file_no > y->meta.file_no ? -1 : x->meta.file_no < y->meta.file_no;
}

static int level_cmp(const void *a, const void *b)
{
	const struct kv_tref *x = *(struct kv_tref *const *)a, *y = *(struct kv_tref *const *)b;

	return kv_ikey_cmp(x->meta.smallest, x->meta.slen, y->meta.smallest, y->meta.slen);
}

/*
 * Level 0's depth: the most of its tables whose key ranges hold one same
 * key (what a read may have to look at). One flush may write several
 * disjoint tables (one per key region): they count once.
 */
int kv_l0_depth(const struct kv_version *v)
{
	int depth = 0;

	for (size_t i = 0; i < v->n[0]; i++) {
		const struct kv_file_meta *a = &v->files[0][i]->meta;
		int d = 0;

		/* The deepest point is the smallest key of one of the tables. */
		for (size_t k = 0; k < v->n[0]; k++) {
			const struct kv_file_meta *b = &v->files[0][k]->meta;

			d += kv_ukey_cmp(b->smallest, kv_ikey_ulen(b->slen), a->smallest,
					 kv_ikey_ulen(a->slen)) <= 0 &&
			     kv_ukey_cmp(b->largest, kv_ikey_ulen(b->llen), a->smallest,
					 kv_ikey_ulen(a->slen)) >= 0;
		}
		depth = d > depth ? d : depth;
	}
	return depth;
}

static int readded(const struct kv_vedit *e, uint64_t file_no)
{
	for (size_t i = 0; i < e->nadd; i++)
		if (e->add[i].file_no == file_no)
			return 1;
	return 0;
}

static int deleted(const struct kv_vedit *e, uint32_t level, uint64_t file_no)
{
	for (size_t i = 0; i < e->ndel; i++)
		if (e->del[i].level == level && e->del[i].file_no == file_no)
			return 1;
	return 0;
}

/* @base with @e applied; @added[i] is the open table of e->add[i] (the new
 * version takes its own references). */
static int version_build(const struct kv_version *base, const struct kv_vedit *e,
			 struct kv_tref **added, struct kv_version **out)
{
	struct kv_version *v = version_alloc();

	if (!v)
		return -ENOMEM;
	for (uint32_t l = 0; l < KV_MAX_LEVELS; l++) {
		size_t cap = (base ? base->n[l] : 0) + e->nadd, n = 0;

		v->files[l] = calloc(cap ? cap : 1, sizeof(*v->files[l]));
		if (!v->files[l]) {
			kv_version_unref(v);
			return -ENOMEM;
		}
		for (size_t i = 0; base && i < base->n[l]; i++) {
			struct kv_tref *t = base->files[l][i];

			if (deleted(e, l, t->meta.file_no))
				continue;
			atomic_fetch_add(&t->refs, 1);
			v->files[l][n++] = t;
		}
		for (size_t i = 0; i < e->nadd; i++) {
			if (e->add[i].level != l)
				continue;
			atomic_fetch_add(&added[i]->refs, 1);
			v->files[l][n++] = added[i];
		}
		v->n[l] = n;
		qsort(v->files[l], n, sizeof(*v->files[l]), l ? level_cmp : level0_cmp);
	}
	*out = v;
	return 0;
}

static struct kv_super *super_alloc(int nmem)
{
	struct kv_super *s = calloc(1, sizeof(*s) + (size_t)nmem * sizeof(s->mem[0]));

	if (s) {
		atomic_init(&s->refs, 1);
		s->nmem = nmem;
	}
	return s;
}

void kv_super_unref(struct kv_super *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (int i = 0; i < s->nmem; i++)
		kv_mem_unref(s->mem[i]);
	kv_version_unref(s->v);
	free(s);
}

struct kv_super *kv_super_get(struct kv_db *db)
{
	int g = kv_guard_enter(db);
	struct kv_super *s = atomic_load_explicit(&db->super, memory_order_acquire);

	atomic_fetch_add(&s->refs, 1);
	kv_guard_exit(db, g);
	return s;
}

/* sv_mu held: make @s current; the old one waits for a grace period. */
static void super_install(struct kv_db *db, struct kv_super *s)
{
	struct kv_super *old = atomic_load_explicit(&db->super, memory_order_relaxed);

	atomic_store_explicit(&db->super, s, memory_order_release);
	if (old) {
		old->next_retired = db->retired;
		db->retired = old;
	}
}

void kv_super_reclaim(struct kv_db *db)
{
	struct kv_mfrag *frags = NULL, **tail = &frags;
	struct kv_super *l, *cur;

	pthread_mutex_lock(&db->sv_mu);
	l = db->retired;
	db->retired = NULL;
	/* Superseded range tombstone views of the live memtables (memtable.c):
	 * lookups use them inside their guard only. */
	cur = atomic_load_explicit(&db->super, memory_order_relaxed);
	for (int i = 0; cur && i < cur->nmem; i++) {
		*tail = kv_memtable_frag_detach(&cur->mem[i]->mt);
		while (*tail)
			tail = &(*tail)->older;
	}
	pthread_mutex_unlock(&db->sv_mu);
	if (!l && !frags)
		return;
	kv_guard_sync(db);
	kv_memtable_frag_free(frags);
	while (l) {
		struct kv_super *next = l->next_retired;

		kv_super_unref(l);
		l = next;
	}
}

int kv_super_add_active(struct kv_db *db, struct kv_mem *active)
{
	struct kv_super *old, *s;

	pthread_mutex_lock(&db->sv_mu);
	old = atomic_load_explicit(&db->super, memory_order_relaxed);
	s = super_alloc(old->nmem + 1);
	if (!s) {
		pthread_mutex_unlock(&db->sv_mu);
		return -ENOMEM;
	}
	s->mem[0] = active;
	atomic_fetch_add(&active->refs, 1);
	for (int i = 0; i < old->nmem; i++) {
		s->mem[i + 1] = old->mem[i];
		atomic_fetch_add(&old->mem[i]->refs, 1);
	}
	s->v = old->v;
	atomic_fetch_add(&s->v->refs, 1);
	super_install(db, s);
	pthread_mutex_unlock(&db->sv_mu);
	return 0;
}

/* sv_mu held: a super of the current memtables minus @drop, with @v. */
static int super_replace(struct kv_db *db, struct kv_version *v, struct kv_mem *drop)
{
	struct kv_super *old = atomic_load_explicit(&db->super, memory_order_relaxed), *s;
	int n = 0;

	s = super_alloc(old->nmem);
	if (!s)
		return -ENOMEM;
	for (int i = 0; i < old->nmem; i++) {
		if (old->mem[i] == drop)
			continue;
		s->mem[n++] = old->mem[i];
		atomic_fetch_add(&old->mem[i]->refs, 1);
	}
	s->nmem = n;
	s->v = v;
	atomic_fetch_add(&v->refs, 1);
	super_install(db, s);
	return 0;
}

/* ---- the manifest ---- */

/* The whole shape as one edit (a new manifest's first record). */
static int shape_edit(struct kv_db *db, struct kv_version *v, struct kv_vedit *e)
{
	int err = 0;

	kv_vedit_init(e);
	e->has_log = 1;
	e->log_min_seg = db->log_min_seg;
	e->log_min_lsn = db->log_min_lsn;
	e->has_next_file = 1;
	e->next_file = db->next_file;
	for (int l = 0; l < KV_MAX_LEVELS && !err; l++)
		for (size_t i = 0; i < v->n[l] && !err; i++)
			err = kv_vedit_add(e, &v->files[l][i]->meta);
	return err;
}

static int manifest_roll(struct kv_db *db, struct kv_version *v)
{
	uint64_t number = db->manifest_number + 1;
	struct kv_manifest *m;
	struct kv_vedit e;
	int err = shape_edit(db, v, &e);

	if (!err)
		err = kv_manifest_create(db->env, &db->opt, db->dir, number, &e, &m);
	kv_vedit_free(&e);
	if (err)
		return err;
	if (db->manifest)
		kv_manifest_close(db->manifest);
	db->manifest = m;
	db->manifest_number = number;
	return 0;
}

int kv_version_apply(struct kv_db *db, struct kv_vedit *e, struct kv_mem *drop)
{
	struct kv_tref **added = calloc(e->nadd ? e->nadd : 1, sizeof(*added));
	struct kv_version *v = NULL;
	int err = added ? 0 : -ENOMEM;
	size_t opened = 0;

	e->has_next_file = 1;
	e->next_file = db->next_file;
	for (; !err && opened < e->nadd; opened++)
		err = kv_tref_open(db, &e->add[opened], &added[opened]);
	if (err)
		goto out;
	err = version_build(db->current, e, added, &v);
	if (err)
		goto out;
	err = kv_manifest_append(db->manifest, e);
	if (err) {
		kv_log(db, KV_LOG_ERROR, "%s: manifest update failed: %s", db->dir, strerror(-err));
		kv_commit_fail(db, err);
		goto out;
	}
	if (e->has_log) {
		db->log_min_seg = e->log_min_seg;
		db->log_min_lsn = e->log_min_lsn;
	}
	/* A table moved down a level (deleted and re-added) stays. */
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		for (size_t i = 0; i < db->current->n[l]; i++) {
			uint64_t no = db->current->files[l][i]->meta.file_no;

			if (deleted(e, (uint32_t)l, no) && !readded(e, no))
				atomic_store(&db->current->files[l][i]->obsolete, 1);
		}
	pthread_mutex_lock(&db->sv_mu);
	err = super_replace(db, v, drop);
	pthread_mutex_unlock(&db->sv_mu);
	if (err) {
		kv_commit_fail(db, err);
		goto out;
	}
	kv_version_unref(db->current);
	db->current = v;
	v = NULL;
	atomic_store(&db->l0_files, kv_l0_depth(db->current));
	/* A failed switch may leave CURRENT naming either manifest: the store
	 * cannot go on appending to the old one. */
	if (kv_manifest_size(db->manifest) > MANIFEST_ROLL_BYTES) {
		err = manifest_roll(db, db->current);
		if (err) {
			kv_log(db, KV_LOG_ERROR, "%s: cannot start a fresh manifest: %s", db->dir,
			       strerror(-err));
			kv_commit_fail(db, err);
		}
	}
out:
	kv_version_unref(v);
	for (size_t i = 0; i < opened; i++)
		kv_tref_unref(added[i]);
	free(added);
	return err;
}

/* Replaying the manifest: the shape as a flat list of tables. */
struct replay {
	struct kv_db *db;
	struct kv_file_meta *files;
	size_t n, cap;
};

static int replay_edit(void *arg, const struct kv_vedit *e)
{
	struct replay *r = arg;
	size_t out = 0;

	if (e->has_log) {
		r->db->log_min_seg = e->log_min_seg;
		r->db->log_min_lsn = e->log_min_lsn;
	}
	if (e->has_next_file)
		r->db->next_file = e->next_file;
	for (size_t i = 0; i < r->n; i++) {
		if (deleted(e, r->files[i].level, r->files[i].file_no))
			meta_free(&r->files[i]);
		else
			r->files[out++] = r->files[i];
	}
	r->n = out;
	for (size_t i = 0; i < e->nadd; i++) {
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 64;
			struct kv_file_meta *f = realloc(r->files, cap * sizeof(*f));

			if (!f)
				return -ENOMEM;
			r->files = f;
			r->cap = cap;
		}
		if (meta_copy(&r->files[r->n], &e->add[i]))
			return -ENOMEM;
		if (e->add[i].level >= KV_MAX_LEVELS)
			return -EUCLEAN;
		r->n++;
	}
	return 0;
}

static int find_table(void *arg, const char *name)
{
	uint64_t no;

	(void)arg;
	return !kv_table_parse_name(name, &no);
}

/*
 * No CURRENT: a new store, one from before tables (format 1), or a crash
 * while the first manifest was being made (a MANIFEST-* without CURRENT; it
 * is rewritten). With tables, their list is lost: corruption. (Without
 * tables, any flushed data is gone too, and recovery says so: the log would
 * not start at LSN 0.)
 */
static int no_manifest(struct kv_db *db)
{
	int err = db->env->ops->list_dir(db->env, db->dir, find_table, NULL);

	if (err == 1) {
		kv_log(db, KV_LOG_ERROR, "%s/" KV_CURRENT_NAME ": missing, but tables exist",
		       db->dir);
		return -EUCLEAN;
	}
	db->log_min_seg = 0;
	db->log_min_lsn = 0;
	db->next_file = 1;
	return err;
}

int kv_version_open(struct kv_db *db)
{
	struct replay r = { .db = db };
	struct kv_vedit e;
	struct kv_tref **added = NULL;
	uint64_t number = 0;
	size_t opened = 0;
	int err;

	err = kv_manifest_read(db->env, &db->opt, db->dir, replay_edit, &r, &number);
	if (err == -ENOENT)
		err = no_manifest(db);
	if (err)
		goto out;
	kv_vedit_init(&e);
	e.add = r.files;
	e.nadd = r.n;
	added = calloc(r.n ? r.n : 1, sizeof(*added));
	err = added ? 0 : -ENOMEM;
	for (; !err && opened < r.n; opened++)
		err = kv_tref_open(db, &r.files[opened], &added[opened]);
	if (!err)
		err = version_build(NULL, &e, added, &db->current);
	if (!err)
		atomic_store(&db->l0_files, kv_l0_depth(db->current));
	db->manifest_number = number;
out:
	for (size_t i = 0; i < opened; i++)
		kv_tref_unref(added[i]);
	free(added);
	for (size_t i = 0; i < r.n; i++)
		meta_free(&r.files[i]);
	free(r.files);
	return err;
}

/*
 * Tables no version names: a flush or compaction cut short before its edit,
 * removed. Unless the table holds writes at or past log_min_lsn and no WAL
 * segment was replayed: then the only copy of those writes is in it, and the
 * manifest lost the edit that named it (a damaged last record): refused.
 */
struct orphans {
	struct kv_db *db;
	int removed;
	int have_log; /* WAL segments were replayed from log_min_lsn */
};

static int orphan_needed(struct orphans *o, uint64_t no, const char *path)
{
	struct kv_table *t;
	int needed;

	if (o->have_log || kv_table_open(o->db->env, &o->db->opt, path, no, 0, NULL, NULL, &t))
		return 0;
	needed = kv_table_props(t)->max_lsn >= o->db->log_min_lsn &&
		 (kv_table_props(t)->entries || kv_table_props(t)->rangedels);
	kv_table_close(t);
	if (needed)
		kv_log(o->db, KV_LOG_ERROR,
		       "%s: offset 0: holds writes past LSN %llu where the manifest says the log starts, and no WAL segment has them: the manifest edit that names this table is missing",
		       path, (unsigned long long)o->db->log_min_lsn);
	return needed;
}

static int in_shape(struct kv_version *v, uint64_t no)
{
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		for (size_t i = 0; i < v->n[l]; i++)
			if (v->files[l][i]->meta.file_no == no)
				return 1;
	return 0;
}

static int drop_orphan(void *arg, const char *name)
{
	struct orphans *o = arg;
	uint64_t no;
	char *path;

	if (kv_table_parse_name(name, &no) || in_shape(o->db->current, no))
		return 0;
	path = kv_table_path(o->db, no);
	if (!path)
		return -ENOMEM;
	if (orphan_needed(o, no, path)) {
		free(path);
		return -EUCLEAN;
	}
	kv_log(o->db, KV_LOG_INFO, "%s: removing a table no version names", path);
	o->db->env->ops->unlink(o->db->env, path);
	if (no >= o->db->next_file)
		o->db->next_file = no + 1;
	free(path);
	o->removed = 1;
	return 0;
}

/* A manifest CURRENT does not name: left by a crash during a switch. */
static int drop_stale_manifest(void *arg, const char *name)
{
	struct kv_db *db = arg;
	char live[64], *path;

	snprintf(live, sizeof(live), KV_MANIFEST_NAME_FMT, (unsigned long long)db->manifest_number);
	if (strncmp(name, "MANIFEST-", 9) || !strcmp(name, live))
		return 0;
	if (asprintf(&path, "%s/%s", db->dir, name) < 0)
		return -ENOMEM;
	kv_log(db, KV_LOG_INFO, "%s: removing a manifest CURRENT does not name", path);
	db->env->ops->unlink(db->env, path);
	free(path);
	return 0;
}

int kv_version_start(struct kv_db *db, struct kv_mem **mems, int nmem)
{
	/* mems[0] is the new active memtable; the rest were replayed. */
	struct orphans o = { .db = db, .have_log = nmem > 1 };
	struct kv_super *s;
	int err;

	err = db->env->ops->list_dir(db->env, db->dir, drop_orphan, &o);
	if (!err && o.removed)
		err = db->env->ops->sync_dir(db->env, db->dir);
	if (err)
		return err;
	err = manifest_roll(db, db->current);
	if (err) {
		kv_log(db, KV_LOG_ERROR, "%s: cannot write the manifest: %s", db->dir,
		       strerror(-err));
		return err;
	}
	err = db->env->ops->list_dir(db->env, db->dir, drop_stale_manifest, db);
	if (err)
		return err;
	s = super_alloc(nmem);
	if (!s)
		return -ENOMEM;
	for (int i = 0; i < nmem; i++) {
		s->mem[i] = mems[i];
		atomic_fetch_add(&mems[i]->refs, 1);
	}
	s->v = db->current;
	atomic_fetch_add(&s->v->refs, 1);
	pthread_mutex_lock(&db->sv_mu);
	super_install(db, s);
	pthread_mutex_unlock(&db->sv_mu);
	return 0;
}

void kv_version_close(struct kv_db *db)
{
	struct kv_super *s = atomic_load(&db->super);

	kv_super_reclaim(db);
	atomic_store(&db->super, NULL);
	kv_super_unref(s);
	kv_version_unref(db->current);
	db->current = NULL;
	if (db->manifest)
		kv_manifest_close(db->manifest);
	db->manifest = NULL;
}

/* ---- snapshots ---- */

int kv_snapshot_create(struct kv_db *db, struct kv_snapshot **out)
{
	struct kv_snapshot *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&db->snap_mu);
	/* Under snap_mu, so the list stays sorted (durable_lsn only grows). */
	s->lsn = atomic_load_explicit(&db->durable_lsn, memory_order_acquire);
	s->prev = db->snaps.prev;
	s->next = &db->snaps;
	db->snaps.prev->next = s;
	db->snaps.prev = s;
	db->nsnaps++;
	pthread_mutex_unlock(&db->snap_mu);
	*out = s;
	return 0;
}

void kv_snapshot_release(struct kv_db *db, struct kv_snapshot *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&db->snap_mu);
	s->prev->next = s->next;
	s->next->prev = s->prev;
	db->nsnaps--;
	pthread_mutex_unlock(&db->snap_mu);
	free(s);
}

uint64_t kv_snapshot_lsn(const struct kv_snapshot *snap)
{
	return snap->lsn;
}

int kv_snapshot_list(struct kv_db *db, uint64_t **lsns, size_t *n)
{
	size_t i = 0;

	pthread_mutex_lock(&db->snap_mu);
	*lsns = malloc((db->nsnaps ? db->nsnaps : 1) * sizeof(**lsns));
	if (!*lsns) {
		pthread_mutex_unlock(&db->snap_mu);
		return -ENOMEM;
	}
	for (struct kv_snapshot *s = db->snaps.next; s != &db->snaps; s = s->next)
		(*lsns)[i++] = s->lsn;
	pthread_mutex_unlock(&db->snap_mu);
	*n = i;
	return 0;
}
