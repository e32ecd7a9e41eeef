#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_mount.sh - the ways to mount and unmount: SIGTERM and SIGINT unmount
# cleanly with everything synced; -o durability=sync, ro, cache sizes;
# mount -t fuse.kvfs and a (temporary) fstab line through mount.fuse3;
# allow_other and default_permissions, for a second user.
. "$(dirname "$0")/lib.sh"
itest_init

# A daemon that forked into the background (kvfs without -f, mount.fuse3):
# record its PID so that the cleanup can stop it.
adopt_daemon() {
	local p
	p=$(itest_daemons)
	[ "$(echo "$p" | wc -w)" -eq 1 ] || die "expected one kvfs daemon, found: '$p'"
	ITEST_PID[$1]=$p
}
# kvfs_umount of a daemon that is not our child: wait can't reap it.
umount_adopted() {
	local pid=${ITEST_PID[$1]}
	itest_unmount "$1"
	unset "ITEST_PID[$1]"
	wait_gone "$pid" 120 || fail "the daemon of $1 did not exit after unmount"
	is_mounted "$1" && fail "$1 still mounted"
	return 0
}

new_store store
M=$T/mnt
mkdir "$M"

say "SIGTERM and SIGINT unmount cleanly"
for sig in TERM INT; do
	kvfs_mount "$STORE" "$M"
	head -c 300000 /dev/urandom >"$T/data.$sig"
	cp "$T/data.$sig" "$M/by-$sig"
	mkdir "$M/dir-$sig"
	pid=${ITEST_PID[$M]}
	kill -$sig "$pid"
	wait_exit "$pid" 120 || die "the daemon did not exit on SIG$sig"
	rc=0
	wait "$pid" || rc=$?
	unset "ITEST_PID[$M]"
	check_eq "$rc" 0 "exit status of the daemon after SIG$sig"
	check_log "${ITEST_LOG[$M]}"
	is_mounted "$M" && fail "still mounted after SIG$sig" && itest_unmount "$M"
	kvfs_mount "$STORE" "$M"
	check "the file written before SIG$sig" cmp "$M/by-$sig" "$T/data.$sig"
	[ -d "$M/dir-$sig" ] || fail "the directory made before SIG$sig is gone"
	kvfs_umount "$M"
done

say "SIGKILL: what fsync made durable survives, orphans are reclaimed"
kvfs_mount "$STORE" "$M"
head -c 200000 /dev/urandom >"$T/crash"
mkdir "$M/crashdir"
dd if="$T/crash" of="$M/crashdir/synced" bs=65536 conv=fsync status=none
printf 'open but unlinked\n' >"$M/orphan"
exec 3<"$M/orphan"
rm "$M/orphan"
used=$(df --output=iused "$M" | tail -1 | tr -d ' ')
pid=${ITEST_PID[$M]}
kill -KILL "$pid"
wait "$pid" || true
unset "ITEST_PID[$M]"
exec 3<&-
itest_unmount "$M"
kvfs_mount "$STORE" "$M"
check "a file fsynced before SIGKILL" cmp "$M/crashdir/synced" "$T/crash"
check_eq "$(df --output=iused "$M" | tail -1 | tr -d ' ')" $((used - 1)) \
	"df's inodes used after the orphan of a crash was reclaimed"
kvfs_umount "$M"

say "without -f: the daemon forks once the mount is ready"
"$KVFS" "$STORE" "$M" >"$T/bg.out" 2>&1 || {
	cat "$T/bg.out" >&2
	die "kvfs STORE MNT (in the background) failed"
}
# No polling: the command returned, so the mount must be there now.
is_mounted "$M" || fail "kvfs returned before the mount was ready"
adopt_daemon "$M"
check_eq "$(wc -c <"$M/by-TERM")" 300000 "a file through a daemonized kvfs"
umount_adopted "$M"

say "-o durability=sync, cache sizes"
kvfs_mount "$STORE" "$M" -o durability=sync,block_cache=8388608,log_buffer=4194304
grep -q "durability=foo" "${ITEST_LOG[$M]}" && fail "the log mentions a bad option"
printf 'synced\n' >"$M/sync-file"
mkdir "$M/sync-dir"
kvfs_umount "$M"
kvfs_mount "$STORE" "$M" -o sync
check_eq "$(cat "$M/sync-file")" synced "a file written with durability=sync"
printf 'o sync\n' >"$M/o-sync"
kvfs_umount "$M"
kvfs_mount "$STORE" "$M" -o durability=batch
check_eq "$(cat "$M/o-sync")" "o sync" "a file written with -o sync"
kvfs_umount "$M"

say "-o ro"
kvfs_mount "$STORE" "$M" -o ro
check_eq "$(cat "$M/sync-file")" synced "reading a read-only mount"
itest_mountinfo "$M" | grep -qE ' ro[, ]' || fail "the mount is not flagged ro: $(itest_mountinfo "$M")"
for what in "touch $M/new" "mkdir $M/newdir" "rm $M/sync-file" "chmod 600 $M/sync-file"; do
	if $what 2>"$T/err"; then
		fail "on a read-only mount, '$what' succeeded"
	else
		grep -q "Read-only file system" "$T/err" || fail "ro: '$what': $(cat "$T/err")"
	fi
done
kvfs_umount "$M"

# Everything below mounts and switches users: root only.
if [ "$(id -u)" -ne 0 ]; then
	say "not root: skipping mount -t, fstab and allow_other"
	exit 0
fi

say "mount -t fuse.kvfs (mount.fuse3)"
# mount(8) runs its helpers without PATH, so mount.fuse3's /bin/sh finds
# "kvfs" in the shell's default path (/usr/local/sbin first), where
# "make install" puts it. In this test's private mount namespace only, a copy
# of that directory with kvfs added is bound over it.
[ -n "${ITEST_IN_NS:-}" ] || skip "no private mount namespace (unshare -m) for mount -t"
SBIN=/usr/local/sbin
[ -d $SBIN ] || skip "no $SBIN to put kvfs in"
mkdir "$T/sbin"
for f in "$SBIN"/* "$SBIN"/.[!.]*; do
	[ -e "$f" ] && ln -s "$f" "$T/sbin/"
done
ln -sf "$KVFS_REAL" "$T/sbin/kvfs"
mount --bind "$T/sbin" "$SBIN"
mount -t fuse.kvfs "$STORE" "$M" 2>"$T/err" || {
	cat "$T/err" >&2
	die "mount -t fuse.kvfs failed"
}
is_mounted "$M" || die "mount -t fuse.kvfs returned but nothing is mounted"
adopt_daemon "$M"
check_eq "$(fstype_of "$M")" fuse.kvfs "the type in the mount table"
check_eq "$(cat "$M/sync-file")" synced "a file through mount -t fuse.kvfs"
printf 'via mount\n' >"$M/via-mount"
umount_adopted "$M"
kvfs_mount "$STORE" "$M"
check_eq "$(cat "$M/via-mount")" "via mount" "a file written through mount -t, remounted"
kvfs_umount "$M"

say "an fstab line: mount MOUNTPOINT with a temporary fstab"
printf '%s %s fuse.kvfs defaults,durability=sync 0 0\n' "$STORE" "$M" >"$T/fstab"
mount -T "$T/fstab" "$M" 2>"$T/err" || {
	cat "$T/err" >&2
	die "mount -T fstab MOUNTPOINT failed"
}
is_mounted "$M" || die "mount -T fstab returned but nothing is mounted"
adopt_daemon "$M"
check_eq "$(cat "$M/via-mount")" "via mount" "a file through the fstab mount"
pid=${ITEST_PID[$M]}
umount "$M"
unset "ITEST_PID[$M]"
is_mounted "$M" && fail "umount of the fstab mount left it mounted"
wait_gone "$pid" 120 || fail "the daemon of the fstab mount did not exit after umount"
umount "$SBIN"

say "allow_other, default_permissions: another user"
chmod 755 "$T"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
kvfs_mount "$STORE" "$M"
mkdir "$M/open" "$M/closed"
chmod 777 "$M/open"
chmod 700 "$M/closed"
"${NOBODY[@]}" ls "$M" >/dev/null 2>"$T/err" && fail "another user can list a mount without allow_other"
kvfs_umount "$M"
kvfs_mount "$STORE" "$M" -o allow_other
check "another user lists an allow_other mount" "${NOBODY[@]}" ls "$M"
"${NOBODY[@]}" ls "$M/closed" 2>"$T/err" && fail "another user lists a 0700 root dir"
grep -q "Permission denied" "$T/err" || fail "listing a 0700 dir: $(cat "$T/err")"
"${NOBODY[@]}" touch "$M/nope" 2>"$T/err" && fail "another user creates a file in a 0755 root dir"
"${NOBODY[@]}" sh -c "echo mine >'$M/open/mine'"
check_eq "$(stat -c '%u %g' "$M/open/mine")" "65534 65534" "owner of a file another user made"
# A write by a non-root owner clears setuid (the kernel asks, kvfs does it).
chmod 4755 "$M/open/mine"
"${NOBODY[@]}" sh -c "echo more >>'$M/open/mine'"
check_eq "$(stat -c %a "$M/open/mine")" 755 "setuid after a write by the (non-root) owner"
check_eq "$(cat "$M/open/mine")" "mine
more" "the file another user wrote"
# setgid directories pass on their group.
mkdir "$M/sgid"
chown 0:4242 "$M/sgid"
chmod 2777 "$M/sgid"
"${NOBODY[@]}" mkdir "$M/sgid/sub"
"${NOBODY[@]}" touch "$M/sgid/file"
check_eq "$(stat -c '%u %g %a' "$M/sgid/file")" "65534 4242 644" "a file in a setgid dir"
check_eq "$(stat -c '%u %g %A' "$M/sgid/sub")" "65534 4242 drwxr-sr-x" "a dir in a setgid dir"
kvfs_umount "$M"
