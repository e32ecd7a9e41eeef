#!/bin/sh
# Install the Debian packages kvfs needs to build, test and run.
# Idempotent: prints nothing and does nothing when everything is present.
# Usage: tools/install-deps.sh [extra-package...]
set -eu

# The integration tests (tests/integration/) also run attr (setfattr,
# getfattr), acl (setfacl, getfacl), rsync, git, sqlite3 and tar on a
# mounted kvfs.
pkgs="cmake make gcc pkg-config libfuse3-dev fuse3 liburing-dev libcmocka-dev libxxhash-dev
      attr acl rsync git sqlite3 tar $*"

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once, then install.
if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
