/* SPDX-License-Identifier: MIT */
/* table_util.c - helpers shared by the table tests (table_util.h). */
#include "table_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "env.h"
#include "table_fmt.h"

/* ---- a model of a table ------------------------------------------------------------ */

void tt_fill_value(uint8_t *v, size_t len, uint32_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i < len; i++)
		v[i] = (uint8_t)(kvt_rand(&s) >> 24);
}

void tt_model_add(struct tt_model *m, const char *key, uint64_t lsn, unsigned kind, size_t vlen,
		  uint32_t vseed)
{
	size_t kl = strlen(key);
	struct tt_ent *e;

	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->e = realloc(m->e, m->cap * sizeof(*m->e));
		assert_non_null(m->e);
	}
	e = &m->e[m->n++];
	assert_true(kl + 8 <= sizeof(e->ik));
	kv_ikey_make(e->ik, key, kl, lsn, kind);
	e->iklen = kl + 8;
	e->vlen = kind == KV_IK_PUT ? vlen : 0;
	e->vseed = vseed;
}

void tt_add_tomb(struct tt_model *m, const char *s, const char *e, uint64_t lsn)
{
	m->t = realloc(m->t, (m->nt + 1) * sizeof(*m->t));
	m->t[m->nt++] = (struct kv_rtomb){ (const uint8_t *)strdup(s), strlen(s),
					   (const uint8_t *)strdup(e), strlen(e), lsn };
}

void tt_free_tombs(struct tt_model *m)
{
	for (size_t i = 0; i < m->nt; i++) {
		free((void *)m->t[i].start);
		free((void *)m->t[i].end);
	}
	free(m->t);
	m->t = NULL;
	m->nt = 0;
}

void tt_model_free(struct tt_model *m)
{
	tt_free_tombs(m);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

void tt_key_of(char *out, unsigned i)
{
	snprintf(out, 16, "k%07u", i);
}

void tt_model_random(struct tt_model *m, unsigned nkeys, uint64_t *rs)
{
	char k[16];

	for (unsigned i = 0; i < nkeys; i++) {
		unsigned nv = 1 + (unsigned)(kvt_rand(rs) % 4);
		uint64_t lsn = 1000 + kvt_rand(rs) % 100000;

		tt_key_of(k, 2 * i);
		for (unsigned v = 0; v < nv; v++) {
			uint64_t r = kvt_rand(rs) % 1000;
			size_t vlen = r < 700 ? r % 101 :
				      r < 995 ? 100 + r * 4 :
						kvt_rand(rs) % 102401;

			tt_model_add(m, k, lsn, kvt_rand(rs) % 5 ? KV_IK_PUT : KV_IK_DEL, vlen,
				     (uint32_t)kvt_rand(rs));
			lsn -= 1 + kvt_rand(rs) % 50;
		}
	}
}

/* ---- the fixture ------------------------------------------------------------------- */

int tt_setup(void **state)
{
	struct tt_fx *f = calloc(1, sizeof(*f));

	f->dir = kvt_mkdtemp("table");
	snprintf(f->path, sizeof(f->path), "%s/" KV_TABLE_NAME_FMT, f->dir, 5ull);
	f->env = kv_env_posix();
	kvt_options(&f->opt, f->env, &f->log);
	*state = f;
	return 0;
}

int tt_teardown(void **state)
{
	struct tt_fx *f = *state;

	kvt_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

void tt_build_at(struct tt_fx *f, const char *path, uint64_t file_no, const struct tt_model *m,
		 const struct kv_table_build_opts *o, struct kv_table_props *pr)
{
	struct kv_table_builder *b;
	uint8_t *v = malloc(102400 + 1);

	unlink(path);
	assert_int_equal(kv_tb_create(f->env, &f->opt, path, file_no, o, &b), 0);
	for (size_t i = 0; i < m->n; i++) {
		tt_fill_value(v, m->e[i].vlen, m->e[i].vseed);
		assert_int_equal(kv_tb_add(b, m->e[i].ik, m->e[i].iklen, v, m->e[i].vlen), 0);
	}
	for (size_t i = 0; i < m->nt; i++)
		assert_int_equal(kv_tb_add_rangedel(b, m->t[i].start, m->t[i].slen, m->t[i].end,
						    m->t[i].elen, m->t[i].lsn),
				 0);
	assert_int_equal(kv_tb_entries(b), m->n);
	assert_int_equal(kv_tb_finish(b, pr), 0);
	free(v);
}

void tt_build(struct tt_fx *f, const struct tt_model *m, const struct kv_table_build_opts *o,
	      struct kv_table_props *pr)
{
	tt_build_at(f, f->path, 5, m, o, pr);
}

/* ---- reading ---------------------------------------------------------------------- */

void tt_on_hit(void *arg, unsigned kind, uint64_t lsn, const void *val, size_t vlen)
{
	struct tt_hit *h = arg;

	h->n++;
	h->kind = kind;
	h->lsn = lsn;
	h->vlen = vlen;
	free(h->val);
	h->val = malloc(vlen + 1);
	memcpy(h->val, val, vlen);
}

uint8_t *tt_slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *p;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	*n = (size_t)ftell(fp);
	rewind(fp);
	p = malloc(*n + 1);
	assert_int_equal(fread(p, 1, *n, fp), *n);
	fclose(fp);
	return p;
}

void tt_read_handles(const uint8_t *file, size_t n, struct tt_handles *h)
{
	const uint8_t *fp = file + n - 88;

	h->footer = n - 88;
	for (int i = 0; i < 4; i++) {
		h->off[i] = kv_get_le64(fp + 8 + 16 * i);
		h->size[i] = kv_get_le64(fp + 16 + 16 * i);
	}
	assert_int_equal(kv_get_le64(fp + 80), 0x314c4254564b564cull);
	assert_int_equal(kv_get_le32(fp + 76), KV_FORMAT_VERSION);
	assert_int_equal(kv_get_le32(fp + 72), 88);
}
