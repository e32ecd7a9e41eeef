// SPDX-License-Identifier: MIT
/*
 * POSIX ACL values (the format is described in acl.h): validation, the mode
 * an ACL stands for, chmod and inheritance. Pure functions on the bytes, no
 * store and no locks, so that fs/xattr.c, fs/ns.c and fs/attr.c share one
 * reading of the format and the unit test (tests/fs/test_acl.c) covers it
 * alone.
 *
 * The rules are Linux's, as ext4 and tmpfs apply them through
 * fs/posix_acl.c:
 *   - the group class of the mode is the MASK entry when there is one, the
 *     GROUP_OBJ entry otherwise; the owner class is USER_OBJ, the other
 *     class OTHER;
 *   - an access ACL with neither named entries nor a MASK says no more than
 *     the mode, and is kept as the mode only;
 *   - chmod rewrites the three class entries (the MASK, not GROUP_OBJ, when
 *     there is a MASK), never the named ones;
 *   - a new inode's access ACL is its directory's default ACL with each
 *     class entry cut down to the create mode's bits for that class, and
 *     the mode cut down to the ACL's.
 * libacl is not used: it has no call that reads this attribute format (its
 * acl_copy_int takes another layout), and the format is four fields.
 */
#include "acl.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>

#define PERM_RWX 7u

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t nentries(size_t size)
{
	return size < KVFS_ACL_HEADER_SIZE ? 0 :
					     (size - KVFS_ACL_HEADER_SIZE) / KVFS_ACL_ENTRY_SIZE;
}

static uint8_t *entry(const void *acl, size_t i)
{
	return (uint8_t *)acl + KVFS_ACL_HEADER_SIZE + i * KVFS_ACL_ENTRY_SIZE;
}

static unsigned tag_of(const uint8_t *e)
{
	return get16(e);
}

static unsigned perm_of(const uint8_t *e)
{
	return get16(e + 2);
}

static void set_perm(uint8_t *e, unsigned perm)
{
	e[2] = (uint8_t)(perm & PERM_RWX);
	e[3] = 0;
}

/* Where kvfs_acl_valid is in the entry order. */
enum stage {
	ST_START,      /* USER_OBJ next */
	ST_USERS,      /* after USER_OBJ: USER..., then GROUP_OBJ */
	ST_GROUPS,     /* after GROUP_OBJ: GROUP..., then MASK or OTHER */
	ST_AFTER_MASK, /* OTHER next */
	ST_END,	       /* after OTHER: nothing more */
};

/* A named entry's id must exceed the previous one of its kind. */
static bool id_in_order(const uint8_t *e, bool *have_prev, uint32_t *prev)
{
	uint32_t id = get32(e + 4);

	if (*have_prev && id <= *prev)
		return false;
	*have_prev = true;
	*prev = id;
	return true;
}

int kvfs_acl_valid(const void *acl, size_t size)
{
	enum stage st = ST_START;
	bool named = false, have_prev = false;
	uint32_t prev = 0;
	size_t n = nentries(size);

	if (!size)
		return 0;
	if (size > KVFS_ACL_SIZE_MAX)
		return -E2BIG;
	if (size < KVFS_ACL_HEADER_SIZE)
		return -EINVAL;
	if (get32(acl) != KVFS_ACL_VERSION)
		return -EOPNOTSUPP;
	if ((size - KVFS_ACL_HEADER_SIZE) % KVFS_ACL_ENTRY_SIZE)
		return -EINVAL;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = entry(acl, i);

		if (perm_of(e) & ~PERM_RWX)
			return -EINVAL;
		switch (tag_of(e)) {
		case KVFS_ACL_USER_OBJ:
			if (st != ST_START)
				return -EINVAL;
			st = ST_USERS;
			break;
		case KVFS_ACL_USER:
			if (st != ST_USERS || !id_in_order(e, &have_prev, &prev))
				return -EINVAL;
			named = true;
			break;
		case KVFS_ACL_GROUP_OBJ:
			if (st != ST_USERS)
				return -EINVAL;
			st = ST_GROUPS;
			have_prev = false;
			break;
		case KVFS_ACL_GROUP:
			if (st != ST_GROUPS || !id_in_order(e, &have_prev, &prev))
				return -EINVAL;
			named = true;
			break;
		case KVFS_ACL_MASK:
			if (st != ST_GROUPS)
				return -EINVAL;
			st = ST_AFTER_MASK;
			break;
		case KVFS_ACL_OTHER:
			if (st != ST_AFTER_MASK && (st != ST_GROUPS || named))
				return -EINVAL;
			st = ST_END;
			break;
		default:
			return -EINVAL;
		}
	}
	return st == ST_END ? (int)n : -EINVAL;
}

/* The class entries of a valid ACL (group: MASK if present, else GROUP_OBJ). */
struct classes {
	uint8_t *owner, *group, *other;
	bool extended; /* named entries or a MASK */
};

static void find_classes(const void *acl, size_t size, struct classes *c)
{
	uint8_t *group_obj = NULL, *mask = NULL;
	size_t n = nentries(size);

	c->owner = c->other = NULL;
	c->extended = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = entry(acl, i);

		switch (tag_of(e)) {
		case KVFS_ACL_USER_OBJ:
			c->owner = e;
			break;
		case KVFS_ACL_GROUP_OBJ:
			group_obj = e;
			break;
		case KVFS_ACL_MASK:
			mask = e;
			c->extended = true;
			break;
		case KVFS_ACL_OTHER:
			c->other = e;
			break;
		default: /* USER, GROUP */
			c->extended = true;
			break;
		}
	}
	c->group = mask ? mask : group_obj;
}

/* The rwx bits of the mode the class entries of @c stand for. */
static mode_t class_mode(const struct classes *c)
{
	mode_t m = 0;

	if (c->owner)
		m |= (mode_t)perm_of(c->owner) << 6;
	if (c->group)
		m |= (mode_t)perm_of(c->group) << 3;
	if (c->other)
		m |= (mode_t)perm_of(c->other);
	return m;
}

int kvfs_acl_equiv_mode(const void *acl, size_t size, mode_t *mode)
{
	struct classes c;

	find_classes(acl, size, &c);
	*mode = (*mode & ~(mode_t)0777) | class_mode(&c);
	return c.extended;
}

void kvfs_acl_chmod(void *acl, size_t size, mode_t mode)
{
	struct classes c;

	find_classes(acl, size, &c);
	if (c.owner)
		set_perm(c.owner, (mode >> 6) & PERM_RWX);
	if (c.group)
		set_perm(c.group, (mode >> 3) & PERM_RWX);
	if (c.other)
		set_perm(c.other, mode & PERM_RWX);
}

int kvfs_acl_create_masq(void *acl, size_t size, mode_t *mode)
{
	struct classes c;

	find_classes(acl, size, &c);
	/* Each class entry keeps only what the create mode grants that class;
	 * the mode then keeps only what the entries grant. */
	if (c.owner)
		set_perm(c.owner, perm_of(c.owner) & (*mode >> 6));
	if (c.group)
		set_perm(c.group, perm_of(c.group) & (*mode >> 3));
	if (c.other)
		set_perm(c.other, perm_of(c.other) & *mode);
	*mode = (*mode & ~(mode_t)0777) | (*mode & class_mode(&c));
	return c.extended;
}
