#!/bin/sh
# Redis for the demo stack: memory only, so a migration has to carry its state.
# With REDIS_PASSWORD set, the default user is off and clients log in as the ACL user "shop".
set -e
if [ -n "${REDIS_PASSWORD:-}" ]; then
    # (each word its own argument: redis-server joins them into one "user" line)
    set -- --user default off --user shop on ">$REDIS_PASSWORD" '~*' '&*' '+@all'
    unset REDIS_PASSWORD
fi
exec /usr/bin/redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no \
    --daemonize no --loglevel notice "$@"
