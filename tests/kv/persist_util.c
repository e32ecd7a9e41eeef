/* SPDX-License-Identifier: MIT */
/* persist_util.c - helpers shared by the persistence tests; see persist_util.h. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "persist_util.h"

/* ---- 1. the store under test ------------------------------------------- */

int kvp_store_init(struct kvp_store *s, const char *tag, int fault)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->dir = kvt_mkdtemp(tag);
	if (fault) {
		err = kv_fault_env_create(kv_env_default(), &s->fe);
		if (err) {
			kvt_rmrf(s->dir);
			free(s->dir);
			s->dir = NULL;
			return err;
		}
	}
	kvt_options(&s->opt, s->fe ? kv_fault_env_env(s->fe) : NULL, &s->log);
	return 0;
}

void kvp_store_fini(struct kvp_store *s)
{
	kvp_live_free(s->db);
	if (s->db && s->fe)
		kv_abandon(s->db);
	else if (s->db)
		kv_close(s->db);
	s->db = NULL;
	if (s->fe)
		kv_fault_env_destroy(s->fe);
	s->fe = NULL;
	if (s->dir)
		kvt_rmrf(s->dir);
	free(s->dir);
	s->dir = NULL;
}

int kvp_store_teardown(void **state)
{
	struct kvp_store *s = *state;

	kvp_store_fini(s);
	free(s);
	return 0;
}

/* ---- 2. calls that fail the test with the store's log ------------------- */

static void __attribute__((noreturn, format(printf, 2, 3)))
store_fail(const struct kvp_store *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fail_msg("%s%s%s; log:\n%s", s->ctx ? s->ctx : "", s->ctx ? ": " : "", msg, s->log.text);
	abort(); /* not reached */
}

void kvp_ok(const struct kvp_store *s, int err, const char *what)
{
	if (err)
		store_fail(s, "%s = %d (%s)", what, err, strerror(-err));
}

int kvp_try_open(struct kvp_store *s)
{
	int err;

	assert_null(s->db);
	s->log.len = 0;
	s->log.text[0] = '\0';
	err = kv_open(s->dir, &s->opt, &s->db);
	if (err)
		s->db = NULL;
	return err;
}

void kvp_open(struct kvp_store *s)
{
	int err = kvp_try_open(s);

	if (err)
		store_fail(s, "kv_open(%s) = %d (%s)", s->dir, err, strerror(-err));
}

void kvp_close(struct kvp_store *s)
{
	int err = kv_close(s->db);

	s->db = NULL;
	kvp_ok(s, err, "kv_close");
}

void kvp_reopen(struct kvp_store *s)
{
	kvp_close(s);
	kvp_open(s);
}

void kvp_flush(struct kvp_store *s)
{
	kvp_ok(s, kv_flush(s->db), "kv_flush");
}

void kvp_compact(struct kvp_store *s)
{
	kvp_ok(s, kv_compact(s->db), "kv_compact");
}

void kvp_stats(const struct kvp_store *s, struct kv_stats *st)
{
	kvp_ok(s, kv_stats(s->db, st), "kv_stats");
	if (st->failed || st->bg_error)
		store_fail(s, "the store failed (%d) or has a background error (%d)", st->failed,
			   st->bg_error);
}

/* ---- 3. tracked iterators and snapshots --------------------------------- */

static struct kv_iter *live_iter[KVP_LIVE_MAX];
static struct kv_snapshot *live_snap[KVP_LIVE_MAX];

int kvp_iter_open(struct kv_db *db, const struct kv_snapshot *snap, struct kv_iter **out)
{
	int err = kv_iter_create(db, snap, out);

	for (int i = 0; !err && i < KVP_LIVE_MAX; i++)
		if (!live_iter[i]) {
			live_iter[i] = *out;
			break;
		}
	return err;
}

void kvp_iter_close(struct kv_iter *it)
{
	for (int i = 0; i < KVP_LIVE_MAX; i++)
		if (live_iter[i] == it)
			live_iter[i] = NULL;
	kv_iter_destroy(it);
}

int kvp_snap_take(struct kv_db *db, struct kv_snapshot **out)
{
	int err = kv_snapshot_create(db, out);

	for (int i = 0; !err && i < KVP_LIVE_MAX; i++)
		if (!live_snap[i]) {
			live_snap[i] = *out;
			break;
		}
	return err;
}

void kvp_snap_drop(struct kv_db *db, struct kv_snapshot *snap)
{
	for (int i = 0; i < KVP_LIVE_MAX; i++)
		if (live_snap[i] == snap)
			live_snap[i] = NULL;
	kv_snapshot_release(db, snap);
}

void kvp_live_free(struct kv_db *db)
{
	for (int i = 0; i < KVP_LIVE_MAX; i++) {
		if (live_iter[i])
			kv_iter_destroy(live_iter[i]);
		live_iter[i] = NULL;
	}
	for (int i = 0; i < KVP_LIVE_MAX; i++) {
		if (live_snap[i] && db)
			kv_snapshot_release(db, live_snap[i]);
		live_snap[i] = NULL;
	}
}

/* ---- 4. the sorted model ------------------------------------------------- */

int kvp_key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

static void *dup_bytes(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	assert_non_null(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

size_t kvp_model_lower(const struct kvp_model *m, const void *k, size_t kl)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (kvp_key_cmp(m->e[mid].k, m->e[mid].kl, k, kl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct kvp_ment *kvp_model_get(const struct kvp_model *m, const void *k, size_t kl)
{
	size_t i = kvp_model_lower(m, k, kl);

	if (i < m->n && !kvp_key_cmp(m->e[i].k, m->e[i].kl, k, kl))
		return &m->e[i];
	return NULL;
}

void kvp_model_put(struct kvp_model *m, const void *k, size_t kl, const void *v, size_t vl)
{
	size_t i = kvp_model_lower(m, k, kl);

	if (i < m->n && !kvp_key_cmp(m->e[i].k, m->e[i].kl, k, kl)) {
		free(m->e[i].v);
		m->e[i].v = dup_bytes(v, vl);
		m->e[i].vl = vl;
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->e = realloc(m->e, m->cap * sizeof(*m->e));
		assert_non_null(m->e);
	}
	memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof(*m->e));
	m->e[i] = (struct kvp_ment){ dup_bytes(k, kl), dup_bytes(v, vl), kl, vl };
	m->n++;
}

void kvp_model_del(struct kvp_model *m, const void *k, size_t kl)
{
	size_t i = kvp_model_lower(m, k, kl);

	if (i < m->n && !kvp_key_cmp(m->e[i].k, m->e[i].kl, k, kl)) {
		free(m->e[i].k);
		free(m->e[i].v);
		memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(*m->e));
		m->n--;
	}
}

void kvp_model_del_range(struct kvp_model *m, const void *s, size_t sl, const void *e, size_t el)
{
	size_t a = kvp_model_lower(m, s, sl), b = kvp_model_lower(m, e, el);

	if (b <= a)
		return;
	for (size_t i = a; i < b; i++) {
		free(m->e[i].k);
		free(m->e[i].v);
	}
	memmove(&m->e[a], &m->e[b], (m->n - b) * sizeof(*m->e));
	m->n -= b - a;
}

void kvp_model_copy(struct kvp_model *dst, const struct kvp_model *src)
{
	dst->n = dst->cap = src->n;
	dst->e = malloc((src->n ? src->n : 1) * sizeof(*dst->e));
	assert_non_null(dst->e);
	for (size_t i = 0; i < src->n; i++)
		dst->e[i] = (struct kvp_ment){ dup_bytes(src->e[i].k, src->e[i].kl),
					       dup_bytes(src->e[i].v, src->e[i].vl), src->e[i].kl,
					       src->e[i].vl };
}

void kvp_model_free(struct kvp_model *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->e[i].k);
		free(m->e[i].v);
	}
	free(m->e);
	memset(m, 0, sizeof(*m));
}

int kvp_iter_compare(struct kv_iter *it, const struct kvp_model *m, size_t i, size_t limit,
		     size_t *seen, char *why, size_t cap)
{
	char a[80], b[80], va[80], vb[80];
	size_t n = 0;
	int err = -1;

	for (; kv_iter_valid(it) && (!limit || n < limit); kv_iter_next(it), i++, n++) {
		size_t kl, vl;
		const void *k = kv_iter_key(it, &kl);
		const void *v = kv_iter_value(it, &vl);

		kvp_fmt_bytes(a, sizeof(a), k, kl, 16);
		if (i >= m->n) {
			snprintf(why, cap,
				 "iterator returns %s after the model's last key (%zu keys)", a,
				 m->n);
			goto out;
		}
		kvp_fmt_bytes(b, sizeof(b), m->e[i].k, m->e[i].kl, 16);
		if (kvp_key_cmp(k, kl, m->e[i].k, m->e[i].kl)) {
			snprintf(why, cap, "iterator returns %s at position %zu, model has %s", a,
				 n, b);
			goto out;
		}
		if (vl != m->e[i].vl || (vl && memcmp(v, m->e[i].v, vl))) {
			kvp_fmt_bytes(va, sizeof(va), v, vl, 16);
			kvp_fmt_bytes(vb, sizeof(vb), m->e[i].v, m->e[i].vl, 16);
			snprintf(why, cap, "iterator: %s = %zu bytes \"%s\", model %zu \"%s\"", a,
				 vl, va, m->e[i].vl, vb);
			goto out;
		}
	}
	if (kv_iter_status(it)) {
		snprintf(why, cap, "kv_iter_status = %d", kv_iter_status(it));
		goto out;
	}
	if (!kv_iter_valid(it) && i < m->n && (!limit || n < limit)) {
		kvp_fmt_bytes(b, sizeof(b), m->e[i].k, m->e[i].kl, 16);
		snprintf(why, cap, "iterator ended after %zu keys, the model has %s next", n, b);
		goto out;
	}
	err = 0;
out:
	*seen = n;
	return err;
}

/* ---- 5. small things ------------------------------------------------------ */

uint64_t kvp_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

size_t kvp_value(uint8_t *buf, size_t len, uint64_t seed, const char *fmt, ...)
{
	char head[64];
	uint64_t h = seed;
	va_list ap;
	int hl;
	size_t n;

	for (size_t k = 0; k < len; k++) {
		if (k % 8 == 0)
			h = kvp_mix(h);
		buf[k] = (uint8_t)(h >> (8 * (k % 8)));
	}
	va_start(ap, fmt);
	hl = vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	n = hl < 0 ? 0 : (size_t)hl + 1 < sizeof(head) ? (size_t)hl + 1 : sizeof(head);
	memcpy(buf, head, len < n ? len : n);
	return len;
}

void kvp_fmt_bytes(char *out, size_t cap, const void *p, size_t n, size_t max)
{
	const uint8_t *b = p;
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && i < max && o + 5 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o,
				      b[i] > 0x20 && b[i] < 0x7f && b[i] != '\\' ? "%c" : "\\%02x",
				      b[i]);
	if (n > max && o + 4 < cap)
		snprintf(out + o, cap - o, "...");
}

unsigned kvp_count_files(const char *dir, const char *prefix, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		const char *s = e->d_name;

		if (strlen(s) != pl + 16 + sl || strncmp(s, prefix, pl) ||
		    strcmp(s + pl + 16, suffix))
			continue;
		if (strspn(s + pl, "0123456789abcdef") == 16)
			n++;
	}
	closedir(d);
	return n;
}

uint64_t kvp_table_count(const struct kv_stats *st)
{
	uint64_t n = 0;

	for (int l = 0; l < KV_MAX_LEVELS; l++)
		n += st->level_tables[l];
	return n;
}

uint64_t kvp_table_bytes(const struct kv_stats *st)
{
	uint64_t n = 0;

	for (int l = 0; l < KV_MAX_LEVELS; l++)
		n += st->level_bytes[l];
	return n;
}
