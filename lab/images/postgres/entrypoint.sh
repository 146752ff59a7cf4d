#!/bin/sh
# PostgreSQL 17 for the demo stack, run as uid 0 behind the fakeuid shim (see fakeuid.c).
# With POSTGRES_PASSWORD set (as the official image takes it), connections from the network must
# give the postgres user's password (scram-sha-256); without it they are trusted.
set -e
PGBIN=/usr/lib/postgresql/17/bin
PGDATA=/var/lib/postgresql/17/main
mkdir -p /run/postgresql && chown postgres:postgres /run/postgresql
STACKLIFT_FAKE_UID="$(id -u postgres)"
export STACKLIFT_FAKE_UID
export LD_PRELOAD=/usr/local/lib/stacklift/fakeuid.so
[ -f $PGDATA/PG_VERSION ] || pg_createcluster 17 main >/dev/null
HBA=/etc/postgresql/17/main/pg_hba.conf
CONF=/etc/postgresql/17/main/postgresql.conf
if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    METHOD=scram-sha-256
    printf "ALTER USER postgres PASSWORD '%s';\n" "$(printf %s "$POSTGRES_PASSWORD" | sed "s/'/''/g")" |
        $PGBIN/postgres --single -D $PGDATA -c config_file=$CONF postgres >/dev/null
    unset POSTGRES_PASSWORD
else
    METHOD=trust
fi
grep -q "^host all all 0.0.0.0/0 $METHOD" $HBA || echo "host all all 0.0.0.0/0 $METHOD" >> $HBA
exec $PGBIN/postgres -D $PGDATA -c config_file=$CONF \
    -c listen_addresses='*' -c jit=off -c unix_socket_directories=/run/postgresql
