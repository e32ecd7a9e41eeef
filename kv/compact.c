/* SPDX-License-Identifier: MIT */
/*
 * compact.c - leveled compaction, and the filter that decides which
 * versions a flush or compaction keeps.
 *
 * Shape: level 0 holds flushed memtables (a flush writes one table per key
 * region, flush.c; tables of different flushes may overlap, newest first); each deeper level holds
 * tables of disjoint key ranges, sorted, and is bounded: level 1 by level1_max_bytes, each next one
 * 10x more.
 *
 * Picking (one compaction at a time, by the compaction thread):
 *   - the level with the highest score >= 1: level 0 is due when its depth
 *     (kv_l0_depth: the most of its tables holding one key; a flush's
 *     tables, cut per key region, are disjoint and count once) reaches
 *     l0_compact_trigger or its bytes level 1's bound, deeper levels score
 *     their bytes over their bound;
 *   - level 0: all of it and the level-1 tables it overlaps, into level 1
 *     (taking all of level 0 keeps "a newer source holds newer versions of
 *     a key");
 *   - a deeper level: one table, round robin through the key space (a
 *     per-level cursor), and the tables of the next level it overlaps. A
 *     table with nothing to overlap below moves down by a manifest edit
 *     alone (a trivial move);
 *   - a full compaction (kv_compact): every table into the deepest level in
 *     use (level 1 if only level 0 has any).
 * The output is cut into tables of about table_target_size, only between
 * two user keys, so that no key's versions straddle two tables of a level.
 *
 * Passing through: an input whose key range holds no key and no range
 * tombstone of any other input, and which has no range tombstone itself,
 * goes into the output level unchanged, by the same manifest edit as the
 * outputs (deleted from its level and added to the output level, or left
 * where it is if it is there already), not read nor rewritten: the current
 * output is closed before its smallest key and the next one starts after
 * its largest, so the level stays sorted and disjoint. The merge would have
 * copied its entries as they are, except versions the filter would drop
 * (older ones no snapshot needs, point tombstones at the bottom): it keeps
 * those, as a trivial move does. This is what makes a file's data, written
 * in key order next to its inode's key in every memtable, cost no rewrite:
 * of the level-1 tables a level-0 compaction overlaps only those holding
 * keys of the level-0 tables are merged (found by a seek in each
 * overlapping input). Not in a full compaction (kv_compact drops all it
 * can).
 * Range tombstones go to every output table they overlap, clipped to the
 * table's part of the key space, so tables of a level stay disjoint.
 * "Bottom" (nothing older can be below) means every deeper level is empty;
 * there, tombstones every reader sees are dropped with what they hide.
 *
 * Reclaiming what range tombstones hide (deleting a big file's keys is one
 * tombstone; its data would otherwise stay on disk until size-triggered
 * compactions happen to bring the two together):
 *   - a table's "debt" is the estimated bytes of data below it that its
 *     tombstones cover: for each fragment, the tables of every deeper level
 *     (and, in level 0, the older level-0 tables) it overlaps, each counted
 *     in proportion to the part of its key range covered (the first 8 bytes
 *     past the common prefix of its smallest and largest key read as
 *     numbers). File metadata only, no I/O; computed once per version, by
 *     the compaction thread, the first time it finds no size-triggered work;
 *   - when no size-triggered compaction is due, the table with the largest
 *     debt, if that is at least table_target_size and at least the table's
 *     own size, is compacted as its level would be (level 0: all of it),
 *     which pushes its tombstones one level down; the next version scores
 *     the outputs against the levels still below, so a tombstone walks
 *     down to the bottom, where it is dropped with what it hid;
 *   - the active memtable's tombstones are scored the same way against all
 *     tables (each once per version: as it is first seen, and all again
 *     when the shape has changed since); when they cover at least
 *     table_target_size, the compaction thread flushes it (kv_flush), so an
 *     idle store still gets its space back;
 *   - any compaction skips, without reading it, an input table every entry
 *     of which a tombstone of the inputs hides from every reader (the
 *     tombstones cover its whole key range, are newer than all of it and
 *     seen by the oldest reader that sees any of it): dropping the data of
 *     a deleted range costs the tables at its edges, not its size. The
 *     skipped table's own tombstones still go to the outputs.
 * With manual_background only kv_compact runs (a full compaction, which
 * drops everything hidden and skips what it can).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

/* ---- the filter ---- */

/* The first reader point above @lsn: the oldest snapshot that sees it, or
 * UINT64_MAX ("now"). */
static uint64_t first_reader(const struct kv_cfilter *f, uint64_t lsn)
{
	size_t lo = 0, hi = f->nsnaps;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (f->snaps[mid] <= lsn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < f->nsnaps ? f->snaps[lo] : UINT64_MAX;
}

int kv_cfilter_keep(struct kv_cfilter *f, const uint8_t *ik, size_t iklen)
{
	size_t ulen = kv_ikey_ulen(iklen);
	uint64_t lsn = kv_ikey_lsn(ik, iklen), q;
	int first = !f->have || kv_ukey_cmp(ik, ulen, f->ukey.p, f->ukey.len) != 0;

	if (first) {
		if (kv_keybuf_set(&f->ukey, ik, ulen))
			return -ENOMEM;
		f->have = 1;
	}
	q = first_reader(f, lsn);
	/* A newer version of the key is seen by every reader that sees this one. */
	if (!first && q > f->prev_lsn) {
		f->prev_lsn = lsn;
		return 0;
	}
	f->prev_lsn = lsn;
	/* Hidden by a range tombstone from every reader that would see it. */
	if (f->rd && kv_rdset_cover(f->rd, ik, ulen, q) > lsn)
		return 0;
	/* A point tombstone at the bottom that every reader sees hides nothing. */
	if (f->bottom && kv_ikey_kind(ik, iklen) == KV_IK_DEL && (!f->nsnaps || f->snaps[0] > lsn))
		return 0;
	return 1;
}

int kv_cfilter_drop_rdel(const struct kv_cfilter *f, uint64_t lsn)
{
	return f->bottom && (!f->nsnaps || f->snaps[0] > lsn);
}

uint64_t kv_level_max_bytes(const struct kv_db *db, int level)
{
	uint64_t b = db->opt.level1_max_bytes;

	for (int l = 1; l < level; l++)
		b *= 10;
	return b;
}

/* ---- picking ---- */

struct job {
	int level, out_level; /* inputs from level and out_level */
	struct kv_tref **in;  /* referenced */
	size_t nin;
	int bottom, trivial, full;
};

static uint64_t level_bytes(const struct kv_version *v, int l)
{
	uint64_t b = 0;

	for (size_t i = 0; i < v->n[l]; i++)
		b += v->files[l][i]->meta.size;
	return b;
}

static int overlaps(const struct kv_file_meta *m, const uint8_t *lo, size_t lolen,
		    const uint8_t *hi, size_t hilen)
{
	return kv_ukey_cmp(m->largest, kv_ikey_ulen(m->llen), lo, lolen) >= 0 &&
	       kv_ukey_cmp(m->smallest, kv_ikey_ulen(m->slen), hi, hilen) <= 0;
}

static int job_add(struct job *j, struct kv_tref *t, size_t cap)
{
	if (!j->in) {
		j->in = calloc(cap ? cap : 1, sizeof(*j->in));
		if (!j->in)
			return -ENOMEM;
	}
	atomic_fetch_add(&t->refs, 1);
	j->in[j->nin++] = t;
	return 0;
}

/* The user-key range of the inputs so far. */
static void job_range(const struct job *j, const uint8_t **lo, size_t *lolen, const uint8_t **hi,
		      size_t *hilen)
{
	for (size_t i = 0; i < j->nin; i++) {
		const struct kv_file_meta *m = &j->in[i]->meta;
		size_t sl = kv_ikey_ulen(m->slen), ll = kv_ikey_ulen(m->llen);

		if (!i || kv_ukey_cmp(m->smallest, sl, *lo, *lolen) < 0) {
			*lo = m->smallest;
			*lolen = sl;
		}
		if (!i || kv_ukey_cmp(m->largest, ll, *hi, *hilen) > 0) {
			*hi = m->largest;
			*hilen = ll;
		}
	}
}

static int add_overlapping(struct job *j, const struct kv_version *v, size_t cap)
{
	const uint8_t *lo = NULL, *hi = NULL;
	size_t lolen = 0, hilen = 0, first = j->nin;
	int err = 0;

	job_range(j, &lo, &lolen, &hi, &hilen);
	for (size_t i = 0; i < v->n[j->out_level] && !err; i++)
		if (overlaps(&v->files[j->out_level][i]->meta, lo, lolen, hi, hilen))
			err = job_add(j, v->files[j->out_level][i], cap);
	j->trivial = j->level > 0 && j->nin == 1 && first == 1;
	return err;
}

static int deepest_in_use(const struct kv_version *v)
{
	for (int l = KV_MAX_LEVELS - 1; l > 0; l--)
		if (v->n[l])
			return l;
	return 0;
}

static size_t total_files(const struct kv_version *v)
{
	size_t n = 0;

	for (int l = 0; l < KV_MAX_LEVELS; l++)
		n += v->n[l];
	return n;
}

static int pick_full(const struct kv_version *v, struct job *j)
{
	size_t cap = total_files(v);
	int err = 0;

	if (!cap)
		return 0;
	j->out_level = deepest_in_use(v);
	if (!j->out_level)
		j->out_level = 1;
	j->level = 0;
	for (int l = 0; l < KV_MAX_LEVELS && !err; l++)
		for (size_t i = 0; i < v->n[l] && !err; i++)
			err = job_add(j, v->files[l][i], cap);
	j->bottom = 1;
	j->full = 1;
	return err ? err : 1;
}

/* A compaction of @level into the next: level 0 all of it, a deeper level
 * table @pick; with the tables of the next level they overlap. */
static int fill_job(const struct kv_version *v, struct job *j, int level, size_t pick)
{
	int err = 0;

	j->level = level;
	j->out_level = level + 1;
	if (level == 0) {
		for (size_t i = 0; i < v->n[0] && !err; i++)
			err = job_add(j, v->files[0][i], v->n[0] + v->n[1]);
	} else {
		err = job_add(j, v->files[level][pick], 1 + v->n[level + 1]);
	}
	if (!err)
		err = add_overlapping(j, v, j->nin + v->n[j->out_level]);
	if (err)
		return err;
	j->bottom = 1;
	for (int l = j->out_level + 1; l < KV_MAX_LEVELS; l++)
		if (v->n[l])
			j->bottom = 0;
	return 0;
}

static int pick_level(struct kv_db *db, const struct kv_version *v, struct job *j)
{
	double best = 1.0;
	int level = -1, err;
	size_t pick = 0;

	if (kv_l0_depth(v) >= db->opt.l0_compact_trigger ||
	    level_bytes(v, 0) >= kv_level_max_bytes(db, 1)) {
		level = 0;
	} else {
		for (int l = 1; l < KV_MAX_LEVELS - 1; l++) {
			double score =
				(double)level_bytes(v, l) / (double)kv_level_max_bytes(db, l);

			if (score > best) {
				best = score;
				level = l;
			}
		}
	}
	if (level < 0)
		return 0;
	if (level > 0) {
		/* Round robin: the first table past the cursor. */
		const uint8_t *cur = db->compact_cursor[level];
		size_t curlen = db->compact_cursor_len[level];

		for (pick = 0; cur && pick < v->n[level]; pick++)
			if (kv_ukey_cmp(v->files[level][pick]->meta.smallest,
					kv_ikey_ulen(v->files[level][pick]->meta.slen), cur,
					curlen) > 0)
				break;
		if (pick == v->n[level])
			pick = 0;
	}
	err = fill_job(v, j, level, pick);
	return err ? err : 1;
}

static void set_cursor(struct kv_db *db, int level, const struct kv_file_meta *m)
{
	size_t ulen = kv_ikey_ulen(m->llen);
	uint8_t *p = realloc(db->compact_cursor[level], ulen ? ulen : 1);

	if (!p)
		return;
	memcpy(p, m->largest, ulen);
	db->compact_cursor[level] = p;
	db->compact_cursor_len[level] = ulen;
}

/* ---- reclaiming what range tombstones hide ---- */

/* Eight bytes of @k from @off, big-endian, zero padded. */
static uint64_t key_word(const uint8_t *k, size_t len, size_t off)
{
	uint64_t w = 0;

	for (size_t i = 0; i < 8; i++)
		w = w << 8 | (off + i < len ? k[off + i] : 0);
	return w;
}

/* Where @k (lo <= k <= hi) lies between @lo and @hi, from 0 to 1. */
static double key_pos(const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
		      const uint8_t *k, size_t klen)
{
	size_t p = 0;
	uint64_t a, b, x;

	while (p < lolen && p < hilen && lo[p] == hi[p])
		p++;
	a = key_word(lo, lolen, p);
	b = key_word(hi, hilen, p);
	x = key_word(k, klen, p);
	if (x <= a || b <= a)
		return 0;
	if (x >= b)
		return 1;
	return (double)(x - a) / (double)(b - a);
}

/* Estimated bytes of table @m in user keys [@s, @e). */
static uint64_t meta_covered(const struct kv_file_meta *m, const uint8_t *s, size_t slen,
			     const uint8_t *e, size_t elen)
{
	const uint8_t *lo = m->smallest, *hi = m->largest;
	size_t ll = kv_ikey_ulen(m->slen), hl = kv_ikey_ulen(m->llen);
	double f0 = 0, f1 = 1;

	if (kv_ukey_cmp(e, elen, lo, ll) <= 0 || kv_ukey_cmp(s, slen, hi, hl) > 0)
		return 0;
	if (kv_ukey_cmp(s, slen, lo, ll) > 0)
		f0 = key_pos(lo, ll, hi, hl, s, slen);
	if (kv_ukey_cmp(e, elen, hi, hl) <= 0)
		f1 = key_pos(lo, ll, hi, hl, e, elen);
	return f1 > f0 ? (uint64_t)((double)m->size * (f1 - f0)) : 0;
}

/* Estimated bytes of level @l (level 0: its tables from @from on) in
 * [@s, @e). */
static uint64_t level_covered(const struct kv_version *v, int l, size_t from, const uint8_t *s,
			      size_t slen, const uint8_t *e, size_t elen)
{
	size_t lo = from, hi = v->n[l];
	uint64_t b = 0;

	if (l == 0) {
		for (size_t i = from; i < v->n[0]; i++)
			b += meta_covered(&v->files[0][i]->meta, s, slen, e, elen);
		return b;
	}
	while (lo < hi) { /* the first table whose largest key is >= s */
		size_t mid = (lo + hi) / 2;
		const struct kv_file_meta *m = &v->files[l][mid]->meta;

		if (kv_ukey_cmp(m->largest, kv_ikey_ulen(m->llen), s, slen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < v->n[l]; i++) {
		const struct kv_file_meta *m = &v->files[l][i]->meta;

		if (kv_ukey_cmp(m->smallest, kv_ikey_ulen(m->slen), e, elen) >= 0)
			break;
		b += meta_covered(m, s, slen, e, elen);
	}
	return b;
}

/* Estimated bytes below table @i of level @l that its tombstones hide. */
static uint64_t table_debt(const struct kv_version *v, int l, size_t i)
{
	const struct kv_rdset *rd = kv_table_rangedels(v->files[l][i]->t);
	uint64_t d = 0;

	for (size_t k = 0; rd && k < kv_rdset_fragments(rd); k++) {
		const uint64_t *lsns;
		struct kv_rtomb t;
		size_t n;

		kv_rdset_fragment(rd, k, &t, &lsns, &n);
		for (int dl = l; dl < KV_MAX_LEVELS; dl++)
			if (v->n[dl] && (dl > l || l == 0))
				d += level_covered(v, dl, dl == l ? i + 1 : 0, t.start, t.slen,
						   t.end, t.elen);
	}
	return d;
}

static uint64_t reclaim_min(const struct kv_db *db)
{
	return db->opt.table_target_size;
}

/* The table whose tombstones hide the most, if worth a compaction. */
static int pick_reclaim(struct kv_db *db, struct kv_version *v, struct job *j)
{
	int err;

	if (!v->rd_scored) {
		v->rd_debt = 0;
		for (int l = 0; l < KV_MAX_LEVELS - 1; l++) {
			for (size_t i = 0; i < v->n[l]; i++) {
				uint64_t d;

				if (!kv_rdset_fragments(kv_table_rangedels(v->files[l][i]->t)))
					continue;
				d = table_debt(v, l, i);
				if (d > v->rd_debt) {
					v->rd_debt = d;
					v->rd_level = l;
					v->rd_index = i;
				}
			}
		}
		v->rd_scored = 1;
	}
	if (v->rd_debt < reclaim_min(db) ||
	    v->rd_debt < v->files[v->rd_level][v->rd_index]->meta.size)
		return 0;
	err = fill_job(v, j, v->rd_level, v->rd_index);
	return err ? err : 1;
}

/*
 * Score the active memtable's tombstones not seen yet against @v; flush it
 * once they hide enough. 1 if it was flushed, 0, or -errno.
 */
static int mem_reclaim(struct kv_db *db)
{
	struct kv_super *s = kv_super_get(db);
	struct kv_mem *m = s->mem[0];
	struct kv_mrdel *head = atomic_load_explicit(&m->mt.rdels, memory_order_acquire), *d;
	int flush, err;

	/* Rescored from the start against each new version: data still in
	 * memtables when a tombstone was first seen may be in tables now. */
	if (m->seg_id != db->rd_mem_seg || s->v != db->rd_mem_ver) {
		db->rd_mem_seg = m->seg_id;
		db->rd_mem_ver = s->v;
		db->rd_mem_seen = NULL;
		db->rd_mem_debt = 0;
	}
	for (d = head; d && d != db->rd_mem_seen; d = d->next)
		for (int l = 0; l < KV_MAX_LEVELS; l++)
			if (s->v->n[l])
				db->rd_mem_debt += level_covered(s->v, l, 0, d->start, d->slen,
								 d->end, d->elen);
	db->rd_mem_seen = head;
	flush = db->rd_mem_debt >= reclaim_min(db);
	kv_super_unref(s);
	if (!flush)
		return 0;
	db->rd_mem_debt = 0;
	err = kv_flush(db);
	return err ? err : 1;
}

/*
 * Whether every entry of input @m is hidden from every reader by tombstones
 * of @rd: fragments covering its whole key range, each with a tombstone
 * newer than all of @m that the oldest reader seeing any of @m sees.
 */
static int input_hidden(const struct kv_cfilter *f, const struct kv_rdset *rd,
			const struct kv_file_meta *m)
{
	size_t n = kv_rdset_fragments(rd), lo = 0, hi = n;
	const uint8_t *s = m->smallest, *e = m->largest, *prev = NULL;
	size_t sl = kv_ikey_ulen(m->slen), el = kv_ikey_ulen(m->llen), prevlen = 0;
	uint64_t q = first_reader(f, m->min_lsn);

	while (lo < hi) { /* the first fragment starting after s */
		size_t mid = (lo + hi) / 2;
		const uint64_t *lsns;
		struct kv_rtomb t;
		size_t nl;

		kv_rdset_fragment(rd, mid, &t, &lsns, &nl);
		if (kv_ukey_cmp(t.start, t.slen, s, sl) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo ? lo - 1 : n; i < n; i++) {
		const uint64_t *lsns;
		struct kv_rtomb t;
		size_t nl, k;

		kv_rdset_fragment(rd, i, &t, &lsns, &nl);
		if (prev ? kv_ukey_cmp(t.start, t.slen, prev, prevlen) != 0 :
			   kv_ukey_cmp(s, sl, t.end, t.elen) >= 0)
			return 0;
		for (k = 0; k < nl; k++)
			if (lsns[k] > m->max_lsn && lsns[k] < q)
				break;
		if (k == nl)
			return 0;
		if (kv_ukey_cmp(e, el, t.end, t.elen) < 0)
			return 1;
		prev = t.end;
		prevlen = t.elen;
	}
	return 0;
}

/* ---- passing tables through ---- */

/* Whether a range tombstone of input @t overlaps user keys [lo, hi]. */
static int rdels_touch(const struct kv_tref *t, const uint8_t *lo, size_t lolen, const uint8_t *hi,
		       size_t hilen)
{
	const struct kv_rdset *rd = kv_table_rangedels(t->t);

	for (size_t k = 0; rd && k < kv_rdset_fragments(rd); k++) {
		const uint64_t *lsns;
		struct kv_rtomb f;
		size_t n;

		kv_rdset_fragment(rd, k, &f, &lsns, &n);
		if (kv_ukey_cmp(f.start, f.slen, hi, hilen) <= 0 &&
		    kv_ukey_cmp(f.end, f.elen, lo, lolen) > 0)
			return 1;
	}
	return 0;
}

/*
 * Whether input @c can go into the output level unchanged: it has entries
 * and no range tombstone, and no other input has a key or a range tombstone
 * in its key range (so the merge would copy its entries as they are, and
 * the outputs can be cut around it). @its: iterators over the inputs,
 * opened as needed. 1, 0 or -errno.
 */
static int passable(const struct job *j, size_t c, struct kv_iiter **its)
{
	const struct kv_file_meta *m = &j->in[c]->meta;
	size_t lolen = kv_ikey_ulen(m->slen), hilen = kv_ikey_ulen(m->llen);
	const uint8_t *lo = m->smallest, *hi = m->largest;
	uint8_t *seek;
	int r = 1;

	if (!m->entries || kv_rdset_fragments(kv_table_rangedels(j->in[c]->t)))
		return 0;
	seek = malloc(lolen + KV_IKEY_TRAILER);
	if (!seek)
		return -ENOMEM;
	kv_ikey_make(seek, lo, lolen, KV_LSN_MAX, KV_IK_SEEK);
	for (size_t i = 0; i < j->nin && r == 1; i++) {
		struct kv_iiter *it;

		if (i == c || !overlaps(&j->in[i]->meta, lo, lolen, hi, hilen))
			continue;
		if (rdels_touch(j->in[i], lo, lolen, hi, hilen)) {
			r = 0;
			break;
		}
		if (!its[i]) {
			int err = kv_table_iter_bulk(j->in[i]->t, &its[i]);

			if (err) {
				its[i] = NULL;
				r = err;
				break;
			}
		}
		it = its[i];
		it->ops->seek(it, seek, lolen + KV_IKEY_TRAILER);
		if (it->err)
			r = it->err;
		else if (it->valid && kv_ukey_cmp(it->key, kv_ikey_ulen(it->klen), hi, hilen) <= 0)
			r = 0;
	}
	free(seek);
	return r;
}

static int pass_cmp(const void *a, const void *b)
{
	const struct kv_tref *x = *(struct kv_tref *const *)a, *y = *(struct kv_tref *const *)b;

	return kv_ikey_cmp(x->meta.smallest, x->meta.slen, y->meta.smallest, y->meta.slen);
}

/*
 * Mark in @pass the inputs that go through unchanged and list them in
 * @list, by key. Not in a full compaction (kv_compact drops everything
 * hidden it can), and never an input @skip already leaves out.
 */
static int pick_pass(const struct job *j, const uint8_t *skip, uint8_t *pass, struct kv_tref **list,
		     size_t *n)
{
	struct kv_iiter **its;
	int err = 0;

	*n = 0;
	if (j->full || j->nin < 2)
		return 0;
	its = calloc(j->nin, sizeof(*its));
	if (!its)
		return -ENOMEM;
	for (size_t i = 0; i < j->nin && !err; i++) {
		int r = skip[i] ? 0 : passable(j, i, its);

		if (r < 0)
			err = r;
		else if (r)
			pass[i] = 1;
	}
	for (size_t i = 0; i < j->nin; i++) {
		if (its[i])
			its[i]->ops->destroy(its[i]);
		if (!err && pass[i])
			list[(*n)++] = j->in[i];
	}
	free(its);
	qsort(list, *n, sizeof(*list), pass_cmp);
	return err;
}

/* ---- running ---- */

struct out {
	struct kv_db *db;
	struct job *j;
	struct kv_vedit *e;
	struct kv_table_builder *b;
	uint64_t file_no;
	struct kv_keybuf lo; /* the current output's first user key */
	int have_lo;	     /* 0: the output starts at -inf */
	const struct kv_rdset *rd;
	const struct kv_cfilter *f;
	uint64_t written;
	struct kv_keybuf last; /* the last user key added */
	struct kv_tref **pass; /* inputs going through unchanged, by key */
	size_t npass, next_pass;
};

static int out_open(struct out *o)
{
	char *path;
	int err;

	pthread_mutex_lock(&o->db->ver_mu);
	o->file_no = o->db->next_file++;
	pthread_mutex_unlock(&o->db->ver_mu);
	path = kv_table_path(o->db, o->file_no);
	if (!path)
		return -ENOMEM;
	err = kv_tb_create(o->db->env, &o->db->opt, path, o->file_no, NULL, &o->b);
	free(path);
	return err;
}

/* Clip every kept fragment to [lo, hi) (NULL = unbounded) into the table. */
static int out_rdels(struct out *o, const uint8_t *hi, size_t hilen)
{
	for (size_t i = 0; o->rd && i < kv_rdset_fragments(o->rd); i++) {
		const uint64_t *lsns;
		struct kv_rtomb t;
		size_t n;

		kv_rdset_fragment(o->rd, i, &t, &lsns, &n);
		if (o->have_lo && kv_ukey_cmp(t.end, t.elen, o->lo.p, o->lo.len) <= 0)
			continue;
		if (hi && kv_ukey_cmp(t.start, t.slen, hi, hilen) >= 0)
			break;
		if (o->have_lo && kv_ukey_cmp(t.start, t.slen, o->lo.p, o->lo.len) < 0) {
			t.start = o->lo.p;
			t.slen = o->lo.len;
		}
		if (hi && kv_ukey_cmp(t.end, t.elen, hi, hilen) > 0) {
			t.end = hi;
			t.elen = hilen;
		}
		for (size_t k = 0; k < n; k++) {
			int err;

			if (kv_cfilter_drop_rdel(o->f, lsns[k]))
				continue;
			err = kv_tb_add_rangedel(o->b, t.start, t.slen, t.end, t.elen, lsns[k]);
			if (err)
				return err;
		}
	}
	return 0;
}

/* Finish the current output, whose part of the key space ends at @hi. */
static int out_close(struct out *o, const uint8_t *hi, size_t hilen)
{
	struct kv_table_props p = { 0 };
	struct kv_file_meta fm;
	int err = out_rdels(o, hi, hilen);

	if (err) {
		kv_tb_abandon(o->b);
		o->b = NULL;
		return err;
	}
	err = kv_tb_finish(o->b, &p);
	o->b = NULL;
	if (err)
		return err;
	if (p.entries || p.rangedels) {
		fm = (struct kv_file_meta){ .level = (uint32_t)o->j->out_level,
					    .file_no = o->file_no,
					    .size = p.file_size,
					    .entries = p.entries,
					    .min_lsn = p.min_lsn,
					    .max_lsn = p.max_lsn,
					    .smallest = p.smallest,
					    .slen = p.slen,
					    .largest = p.largest,
					    .llen = p.llen };
		err = kv_vedit_add(o->e, &fm);
		o->written += p.file_size;
	} else {
		char *path = kv_table_path(o->db, o->file_no);

		if (path)
			o->db->env->ops->unlink(o->db->env, path);
		free(path);
	}
	kv_table_props_free(&p);
	if (hi && !err) {
		err = kv_keybuf_set(&o->lo, hi, hilen);
		o->have_lo = !err;
	}
	return err;
}

/* Every range tombstone of the inputs, as one set. */
static int job_rdset(const struct job *j, struct kv_rdset **out)
{
	struct kv_rtombs l = { 0 };
	int err = 0;

	for (size_t i = 0; i < j->nin && !err; i++)
		err = kv_rtombs_add_set(&l, kv_table_rangedels(j->in[i]->t), UINT64_MAX);
	if (!err)
		err = kv_rdset_build(l.t, l.n, out);
	free(l.t);
	return err;
}

/* A merging iterator over the inputs not @hidden. */
static int merge_inputs(struct job *j, const uint8_t *hidden, struct kv_iiter **out)
{
	struct kv_iiter **kids = calloc(j->nin ? j->nin : 1, sizeof(*kids));
	size_t n = 0;
	int err = 0;

	if (!kids)
		return -ENOMEM;
	for (size_t i = 0; i < j->nin && !err; i++) {
		if (hidden[i])
			continue;
		err = kv_table_iter_bulk(j->in[i]->t, &kids[n]);
		n += !err;
	}
	err = kv_merge_new(kids, n, err, out);
	free(kids);
	return err;
}

/* Whether a kept fragment lies (partly) in [lo, @hi): tombstones that
 * still need an output before @hi. */
static int rdels_before(const struct out *o, const uint8_t *hi, size_t hilen)
{
	for (size_t i = 0; o->rd && i < kv_rdset_fragments(o->rd); i++) {
		const uint64_t *lsns;
		struct kv_rtomb t;
		size_t n;

		kv_rdset_fragment(o->rd, i, &t, &lsns, &n);
		if (kv_ukey_cmp(t.start, t.slen, hi, hilen) >= 0)
			break;
		if (o->have_lo && kv_ukey_cmp(t.end, t.elen, o->lo.p, o->lo.len) <= 0)
			continue;
		for (size_t k = 0; k < n; k++)
			if (!kv_cfilter_drop_rdel(o->f, lsns[k]))
				return 1;
	}
	return 0;
}

/*
 * Put the next input that goes through unchanged into the output level:
 * the current output ends before it, the next one starts after it (no
 * kept key or tombstone falls in its range).
 */
static int out_pass(struct out *o)
{
	struct kv_tref *t = o->pass[o->next_pass++];
	struct kv_file_meta fm = t->meta;
	size_t sl = kv_ikey_ulen(fm.slen), ll = kv_ikey_ulen(fm.llen);
	int err = 0;

	if (!o->b && rdels_before(o, fm.smallest, sl))
		err = out_open(o);
	if (!err && o->b)
		err = out_close(o, fm.smallest, sl);
	if (!err && fm.level != (uint32_t)o->j->out_level) {
		fm.level = (uint32_t)o->j->out_level;
		err = kv_vedit_add(o->e, &fm);
	}
	if (!err)
		err = kv_keybuf_set(&o->lo, fm.largest, ll);
	o->have_lo = !err;
	return err;
}

static int write_outputs(struct out *o, struct kv_iiter *it, struct kv_cfilter *f)
{
	uint64_t target = o->db->opt.table_target_size, n = 0;
	int err = 0;

	for (it->ops->seek_first(it); it->valid && !err; it->ops->next(it)) {
		size_t ulen = kv_ikey_ulen(it->klen);
		int keep;

		/* Close does not wait for a long compaction: it is dropped. */
		if (!(++n % 4096) && atomic_load(&o->db->bg_stop)) {
			err = -ECANCELED;
			break;
		}
		keep = kv_cfilter_keep(f, it->key, it->klen);
		if (keep <= 0) {
			err = keep;
			continue;
		}
		while (!err && o->next_pass < o->npass &&
		       kv_ukey_cmp(it->key, ulen, o->pass[o->next_pass]->meta.smallest,
				   kv_ikey_ulen(o->pass[o->next_pass]->meta.slen)) > 0)
			err = out_pass(o);
		if (err)
			break;
		if (o->b && kv_tb_size(o->b) >= target &&
		    kv_ukey_cmp(it->key, ulen, o->last.p, o->last.len) != 0)
			err = out_close(o, it->key, ulen);
		if (!err && !o->b)
			err = out_open(o);
		if (!err)
			err = kv_tb_add(o->b, it->key, it->klen, it->val, it->vlen);
		if (!err)
			err = kv_keybuf_set(&o->last, it->key, ulen); /* cut only between keys */
	}
	if (!err)
		err = it->err;
	while (!err && o->next_pass < o->npass)
		err = out_pass(o);
	/* Tombstones with no data left around them still need a table. */
	if (!err && !o->b && o->rd && kv_rdset_fragments(o->rd))
		err = out_open(o);
	if (!err && o->b)
		err = out_close(o, NULL, 0);
	return err;
}

/* A failed compaction removes the tables it wrote (not the ones it passed
 * through). */
static void remove_outputs(struct kv_db *db, struct out *o)
{
	if (o->b)
		kv_tb_abandon(o->b);
	o->b = NULL;
	for (size_t i = 0; i < o->e->nadd; i++) {
		char *path = NULL;
		size_t k = 0;

		while (k < o->npass && o->pass[k]->meta.file_no != o->e->add[i].file_no)
			k++;
		if (k == o->npass)
			path = kv_table_path(db, o->e->add[i].file_no);
		if (path)
			db->env->ops->unlink(db->env, path);
		free(path);
	}
}

/* Bytes of the inputs read (not @hidden). */
static uint64_t input_bytes(const struct job *j, const uint8_t *hidden)
{
	uint64_t b = 0;

	for (size_t i = 0; i < j->nin; i++)
		b += hidden[i] ? 0 : j->in[i]->meta.size;
	return b;
}

static int trivial_move(struct kv_db *db, struct job *j)
{
	struct kv_file_meta fm = j->in[0]->meta;
	struct kv_vedit e;
	int err;

	kv_vedit_init(&e);
	fm.level = (uint32_t)j->out_level;
	err = kv_vedit_del(&e, (uint32_t)j->level, fm.file_no);
	if (!err)
		err = kv_vedit_add(&e, &fm);
	pthread_mutex_lock(&db->ver_mu);
	if (!err)
		err = kv_version_apply(db, &e, NULL);
	pthread_mutex_unlock(&db->ver_mu);
	kv_vedit_free(&e);
	return err;
}

static int run_job(struct kv_db *db, struct job *j)
{
	struct kv_cfilter f = { .bottom = j->bottom };
	struct out o = { .db = db, .j = j, .f = &f };
	struct kv_rdset *rd = NULL;
	struct kv_iiter *it = NULL;
	struct kv_tref **pass = NULL;
	uint64_t *snaps = NULL;
	uint8_t *hidden = NULL;
	struct kv_vedit e;
	int err;

	if (j->trivial)
		return trivial_move(db, j);
	kv_vedit_init(&e);
	o.e = &e;
	err = kv_snapshot_list(db, &snaps, &f.nsnaps);
	f.snaps = snaps;
	if (!err)
		err = job_rdset(j, &rd);
	hidden = calloc(j->nin ? 2 * j->nin : 1, 1); /* hidden, then passed */
	pass = calloc(j->nin ? j->nin : 1, sizeof(*pass));
	if (!err && (!hidden || !pass))
		err = -ENOMEM;
	for (size_t i = 0; i < j->nin && !err; i++)
		hidden[i] = (uint8_t)input_hidden(&f, rd, &j->in[i]->meta);
	if (!err)
		err = pick_pass(j, hidden, hidden + j->nin, pass, &o.npass);
	o.pass = pass;
	for (size_t i = 0; i < j->nin && !err; i++)
		hidden[i] |= (uint8_t)(hidden[j->nin + i] << 1); /* not read either */
	if (!err)
		err = merge_inputs(j, hidden, &it);
	if (err)
		goto out;
	f.rd = rd;
	o.rd = rd;
	err = write_outputs(&o, it, &f);
	for (size_t i = 0; i < j->nin && !err; i++)
		if (!hidden[j->nin + i] || j->in[i]->meta.level != (uint32_t)j->out_level)
			err = kv_vedit_del(&e, (uint32_t)(j->in[i]->meta.level),
					   j->in[i]->meta.file_no);
	if (!err)
		err = db->env->ops->sync_dir(db->env, db->dir);
	if (!err) {
		pthread_mutex_lock(&db->ver_mu);
		err = kv_version_apply(db, &e, NULL);
		pthread_mutex_unlock(&db->ver_mu);
	}
	if (err) {
		if (err != -ECANCELED)
			kv_log(db, KV_LOG_ERROR, "%s: compaction of level %d into %d failed: %s",
			       db->dir, j->level, j->out_level, strerror(-err));
		remove_outputs(db, &o);
	} else {
		atomic_fetch_add(&db->compactions, 1);
		atomic_fetch_add(&db->compact_read, input_bytes(j, hidden));
		atomic_fetch_add(&db->compact_write, o.written);
	}
out:
	if (it)
		it->ops->destroy(it);
	kv_rdset_free(rd);
	free(hidden);
	free(pass);
	free(snaps);
	free(f.ukey.p);
	free(o.lo.p);
	free(o.last.p);
	kv_vedit_free(&e);
	return err;
}

int kv_compact_once(struct kv_db *db, int full)
{
	struct job j = { 0 };
	struct kv_version *v;
	int r;

	pthread_mutex_lock(&db->ver_mu);
	v = db->current;
	atomic_fetch_add(&v->refs, 1);
	pthread_mutex_unlock(&db->ver_mu);
	r = full ? pick_full(v, &j) : pick_level(db, v, &j);
	if (!r && !full)
		r = pick_reclaim(db, v, &j);
	if (r > 0) {
		if (!full && j.level > 0)
			set_cursor(db, j.level, &j.in[0]->meta);
		r = run_job(db, &j);
		r = r ? r : 1;
	}
	for (size_t i = 0; i < j.nin; i++)
		kv_tref_unref(j.in[i]);
	free(j.in);
	kv_version_unref(v);
	if (!r && !full)
		r = mem_reclaim(db);
	return r;
}
