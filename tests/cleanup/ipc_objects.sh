#!/usr/bin/env bash
# The suite's cleanup check. `snapshot FILE` records every IPC object on the
# machine before the tests run; `check FILE` fails, naming them, if the tests
# left any new ones behind: System V queues, segments and semaphore sets,
# POSIX shared memory and named semaphores (/dev/shm), POSIX message queues
# (listed through a private mount of the mqueue filesystem when /dev/mqueue is
# not mounted; where no private mount is possible, as in a chroot, queues go
# unlisted).
set -uo pipefail

ipc_objects() {
  ipcs -q -m -s 2>/dev/null | awk '$1 ~ /^0x/ {print "sysv", $1, $2}'
  ls -1 /dev/shm 2>/dev/null | sed 's/^/shm /'
  if mountpoint -q /dev/mqueue 2>/dev/null; then
    ls -1 /dev/mqueue | sed 's/^/mqueue /'
  elif command -v unshare >/dev/null; then
    unshare --mount sh -c 'd=$(mktemp -d) && mount -t mqueue none "$d" 2>/dev/null &&
      ls -1 "$d"; umount "$d" 2>/dev/null; rmdir "$d"' 2>/dev/null | sed 's/^/mqueue /'
  fi
}

case "${1:-}" in
  snapshot)
    ipc_objects | sort > "$2"
    ;;
  check)
    left=$(comm -13 "$2" <(ipc_objects | sort) | sed '/^$/d')
    if [ -n "$left" ]; then
      echo "the tests left IPC objects behind:"
      printf '%s\n' "$left" | sed 's/^/  /'
      exit 1
    fi
    echo "no IPC objects left behind (ipcs, /dev/shm, mqueue)"
    ;;
  *)
    echo "usage: $0 snapshot FILE | check FILE" >&2
    exit 2
    ;;
esac
