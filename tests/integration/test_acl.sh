#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_acl.sh - POSIX ACLs and extended attributes on a mounted kvfs, checked
# as root and as another user (nobody, through setpriv) on a mount with
# allow_other: setfacl/getfacl, the '+' of ls -l, reads and writes allowed
# or refused (EACCES) by named user and group entries, default ACLs passed to
# new files and subdirectories (the mode showing the mask), chmod updating the
# mask, setfacl -b; setfattr/getfattr in user., trusted. and security. with
# create/replace semantics, trusted.* hidden from and refused to nobody,
# values at the 64 KiB limit and over it; cp -a keeping ACLs; then a remount
# and everything again.
. "$(dirname "$0")/lib.sh"
itest_init
export LC_ALL=C
command -v setfacl >/dev/null || skip "no setfacl (install acl: tools/install-deps.sh)"
command -v setpriv >/dev/null || skip "no setpriv"
command -v python3 >/dev/null || skip "no python3"

# nobody must be able to reach the mount point.
chmod 711 "$T"
new_store store
M=$T/mnt
mkdir "$M"
kvfs_mount "$STORE" "$M" -o allow_other

NOBODY=65534
as_nobody() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups -- "$@"; }
# can WHAT CMD...: nobody can; cannot WHAT CMD...: nobody gets EACCES.
can() {
	local what=$1
	shift
	as_nobody "$@" >/dev/null 2>"$T/err" || fail "$what: refused to nobody: $(cat "$T/err")"
}
cannot() {
	local what=$1
	shift
	if as_nobody "$@" >/dev/null 2>"$T/err"; then
		fail "$what: allowed to nobody"
	elif ! grep -q "Permission denied" "$T/err"; then
		fail "$what: not EACCES: $(cat "$T/err")"
	fi
}
# The ACL with numeric ids, one entry a line, getfacl's tabs before "#effective:" as one space.
acl_of() { getfacl --omit-header --absolute-names --numeric "$1" 2>/dev/null | grep -v '^$' | tr -s '\t' ' '; }
has_entry() { acl_of "$1" | grep -qxF -e "$2"; }
check_entry() { has_entry "$1" "$2" || fail "$3: no '$2' in: $(acl_of "$1" | tr '\n' ' ')"; }
check_no_entry() { has_entry "$1" "$2" && fail "$3: '$2' still in the ACL" || true; }
plus_of() { ls -ld "$1" | cut -c11; }

# py SCRIPT ARGS...: a python3 check; exits non-zero with a message on failure.
py() { python3 -c "$@"; }

# ---- access ACLs ------------------------------------------------------------

acl_checks() {
	say "named user entry"
	check_eq "$(stat -c %a "$M/f")" 640 "mode of f"
	check_entry "$M/f" "user:$NOBODY:r--" "getfacl f"
	check_entry "$M/f" "mask::r--" "getfacl f"
	check_eq "$(plus_of "$M/f")" "+" "ls -l shows the ACL of f"
	can "read f through user:nobody" cat "$M/f"
	cannot "write f" sh -c "echo x >>'$M/f'"
	cannot "read g (no entry)" cat "$M/g"
	check_eq "$(plus_of "$M/g")" " " "ls -l of g (no ACL)"
	say "named group entry"
	can "read h through group:nogroup" cat "$M/h"
	check_entry "$M/h" "group:$NOBODY:r--" "getfacl h"
	say "the mask limits a named entry"
	check_eq "$(stat -c %a "$M/w")" 640 "mode of w after chmod g-w"
	check_entry "$M/w" "user:$NOBODY:rw- #effective:r--" "getfacl w"
	cannot "write w (masked)" sh -c "echo x >>'$M/w'"
	can "read w" cat "$M/w"
	say "default ACLs are inherited"
	check_entry "$M/d" "default:user:$NOBODY:rwx" "getfacl d"
	check_entry "$M/d/new" "user:$NOBODY:rwx #effective:rw-" "getfacl d/new"
	check_entry "$M/d/new" "mask::rw-" "getfacl d/new"
	check_eq "$(stat -c %a "$M/d/new")" 664 "mode of d/new (mask rw-, umask ignored)"
	check_eq "$(stat -c %a "$M/d/sub")" 775 "mode of d/sub"
	check_entry "$M/d/sub" "user:$NOBODY:rwx" "getfacl d/sub"
	check_entry "$M/d/sub" "default:user:$NOBODY:rwx" "getfacl d/sub (default)"
	check_entry "$M/d/sub/deep" "user:$NOBODY:rwx #effective:r--" "getfacl d/sub/deep"
	check_eq "$(stat -c %a "$M/d/sub/deep")" 644 "mode of d/sub/deep (created 0644)"
	can "write d/new through the inherited entry" sh -c "echo n >>'$M/d/new'"
	check_eq "$(stat -c %U "$M/d/sub/byn")" nobody "owner of a file nobody created"
	check_entry "$M/d/sub/byn" "user:$NOBODY:rwx #effective:rw-" "getfacl d/sub/byn"
	check_eq "$(stat -c %a "$M/d/chm")" 640 "mode of d/chm after chmod 640"
	check_entry "$M/d/chm" "mask::r--" "chmod set the mask of d/chm"
	cannot "write d/chm after chmod" sh -c "echo x >>'$M/d/chm'"
	say "S_ISGID and ACLs"
	check_eq "$(stat -c %a "$M/sg")" 770 "setfacl by an owner outside the group cleared S_ISGID"
	check_eq "$(stat -c %a "$M/sg2")" 2770 "setfacl by root kept S_ISGID"
	say "setfacl -b"
	check_eq "$(plus_of "$M/b")" " " "ls -l of b after setfacl -b"
	check_no_entry "$M/b" "user:$NOBODY:r--" "getfacl b after setfacl -b"
	cannot "read b after setfacl -b" cat "$M/b"
	getfattr -m - -d "$M/b" 2>/dev/null | grep -q posix_acl_access &&
		fail "b still has system.posix_acl_access"
	check_eq "$(stat -c %a "$M/b")" 640 "mode of b after setfacl -b"
	say "cp -a keeps ACLs"
	check_eq "$(cd "$M/d" && getfacl -R --absolute-names . 2>/dev/null)" \
		"$(cd "$M/d2" && getfacl -R --absolute-names . 2>/dev/null)" "getfacl -R of d and its copy"
}

say "setting up ACLs"
for x in f g h w b; do
	echo "secret $x" >"$M/$x"
	chmod 640 "$M/$x"
done
cannot "read f before any ACL" cat "$M/f"
setfacl -m u:nobody:r "$M/f"
setfacl -m "g:$NOBODY:r" "$M/h"
setfacl -m u:nobody:rw "$M/w"
check_eq "$(stat -c %a "$M/w")" 660 "mode of w with mask rw-"
can "write w through user:$NOBODY:rw" sh -c "echo y >>'$M/w'"
chmod g-w "$M/w"
echo s | tee "$M/sg" >"$M/sg2"
chown nobody:root "$M/sg"
chmod 2770 "$M/sg" "$M/sg2"
as_nobody setfacl -m u:4242:r "$M/sg"
setfacl -m u:4242:r "$M/sg2"
setfacl -m u:nobody:r "$M/b"
can "read b with its ACL" cat "$M/b"
setfacl -b "$M/b"
mkdir "$M/d"
setfacl -m u:nobody:rwx "$M/d"
setfacl -d -m u:nobody:rwx "$M/d"
(umask 022 && touch "$M/d/new" && mkdir "$M/d/sub" && touch "$M/d/chm")
chmod 640 "$M/d/chm"
(umask 077 && python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644))' \
	"$M/d/sub/deep")
as_nobody touch "$M/d/sub/byn"
cp -a "$M/d" "$M/d2"
acl_checks

# ---- extended attributes -----------------------------------------------------

xattr_checks() {
	say "xattrs in every namespace"
	check_eq "$(getfattr --absolute-names --only-values -n user.x "$M/x")" two "user.x"
	check_eq "$(getfattr --absolute-names --only-values -n trusted.t "$M/x")" tee "trusted.t"
	check_eq "$(getfattr --absolute-names --only-values -n security.s "$M/x")" ess "security.s"
	getfattr --absolute-names -m - -d "$M/x" >"$T/root.xa"
	check_eq "$(grep -c = "$T/root.xa")" 6 "attributes listed to root"
	check_eq "$(grep -c '^trusted\.' "$T/root.xa")" 2 "trusted.* listed to root"
	getfattr --absolute-names -n user.none "$M/x" 2>"$T/err" && fail "getfattr of a missing name succeeded"
	grep -q "No such attribute" "$T/err" || fail "missing attribute: not ENODATA: $(cat "$T/err")"
	say "as nobody"
	as_nobody getfattr --absolute-names -m - -d "$M/x" >"$T/nobody.xa" 2>"$T/err" ||
		fail "getfattr -d as nobody: $(cat "$T/err")"
	check_eq "$(grep -c '^trusted\.' "$T/nobody.xa" || true)" 0 "trusted.* listed to nobody"
	check_eq "$(grep -c '^user\.' "$T/nobody.xa")" 2 "user.* listed to nobody"
	check_eq "$(grep -c '^security\.' "$T/nobody.xa")" 2 "security.* listed to nobody"
	as_nobody getfattr --absolute-names -n trusted.t "$M/x" >/dev/null 2>&1 && fail "nobody read trusted.t"
	as_nobody setfattr -n trusted.n -v 1 "$M/x" 2>"$T/err" && fail "nobody set trusted.n"
	grep -q "Operation not permitted" "$T/err" || fail "trusted.n as nobody: not EPERM: $(cat "$T/err")"
	cannot "set user.n on a file nobody cannot write" setfattr -n user.n -v 1 "$M/x"
	say "size limits"
	py 'import os, sys
p = sys.argv[1]
for n in ("user.big", "trusted.big", "security.big"):
    v = os.getxattr(p, n)
    assert v == bytes(range(256)) * 256, n + ": wrong value, " + str(len(v)) + " bytes"
' "$M/x" || fail "64 KiB values read back"
}

say "setting up xattrs"
echo data >"$M/x"
chmod 644 "$M/x"
setfattr -n user.x -v one "$M/x"
setfattr -n trusted.t -v tee "$M/x"
setfattr -n security.s -v ess "$M/x"
py 'import errno, os, sys
p = sys.argv[1]
def expect(err, f, *a):
    try:
        f(*a)
    except OSError as e:
        assert e.errno == err, "%s%r: %s, expected %s" % (f.__name__, a[1:3], e, errno.errorcode[err])
        return
    raise AssertionError("%s%r succeeded" % (f.__name__, a[1:3]))
for ns in ("user.", "trusted.", "security."):
    expect(errno.EEXIST, os.setxattr, p, ns + ("x" if ns == "user." else "t" if ns == "trusted." else "s"), b"2", os.XATTR_CREATE)
    expect(errno.ENODATA, os.setxattr, p, ns + "absent", b"1", os.XATTR_REPLACE)
    expect(errno.ENODATA, os.getxattr, p, ns + "absent")
    expect(errno.ENODATA, os.removexattr, p, ns + "absent")
    os.setxattr(p, ns + "c", b"1", os.XATTR_CREATE)
    os.setxattr(p, ns + "c", b"22", os.XATTR_REPLACE)
    assert os.getxattr(p, ns + "c") == b"22"
    os.removexattr(p, ns + "c")
    big = bytes(range(256)) * 256
    os.setxattr(p, ns + "big", big)
    expect(errno.E2BIG, os.setxattr, p, ns + "big", big + b"!")
    expect(errno.ERANGE, os.setxattr, p, ns + "n" * (256 - len(ns)), b"1")
    os.setxattr(p, ns + "n" * (255 - len(ns)), b"1")
    os.removexattr(p, ns + "n" * (255 - len(ns)))
os.setxattr(p, "user.x", b"two", os.XATTR_REPLACE)
' "$M/x" || fail "xattr create/replace/limits through the kernel"
xattr_checks

say "remount"
getfacl -R --absolute-names "$M" >"$T/acl.before" 2>/dev/null
getfattr -R -h --absolute-names -m - -d -e hex "$M" >"$T/xa.before" 2>/dev/null
kvfs_remount "$STORE" "$M" -o allow_other
getfacl -R --absolute-names "$M" >"$T/acl.after" 2>/dev/null
getfattr -R -h --absolute-names -m - -d -e hex "$M" >"$T/xa.after" 2>/dev/null
check "getfacl -R after remount" diff "$T/acl.before" "$T/acl.after"
check "getfattr -R after remount" diff "$T/xa.before" "$T/xa.after"
acl_checks
xattr_checks
kvfs_umount "$M"
kvfs_fsck "$STORE"
