#!/bin/sh
# start-once.sh ENGINE NAME RUN-ARGUMENTS...: start container NAME (ENGINE run -d --name NAME ...) unless it
# is there already (then prints "present"). A start that runc fails under load ("waiting for init")
# leaves a created container behind: it is removed, and the start tried again, three times at most.
set -u
engine=$1
name=$2
shift 2
for attempt in 1 2 3; do
    if out=$("$engine" run -d --name "$name" "$@" 2>&1); then
        echo "$out"
        exit 0
    fi
    case "$out" in
        *"already in use"*) echo present; exit 0 ;;
    esac
    echo "attempt $attempt: $out" >&2
    "$engine" rm -f "$name" >/dev/null 2>&1
    sleep 2
done
exit 1
