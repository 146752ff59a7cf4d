#!/bin/sh
# PostgreSQL 17 for the demo stack, run as uid 0 behind the fakeuid shim (see fakeuid.c).
set -e
PGBIN=/usr/lib/postgresql/17/bin
PGDATA=/var/lib/postgresql/17/main
mkdir -p /run/postgresql && chown postgres:postgres /run/postgresql
STACKLIFT_FAKE_UID="$(id -u postgres)"
export STACKLIFT_FAKE_UID
export LD_PRELOAD=/usr/local/lib/stacklift/fakeuid.so
[ -f $PGDATA/PG_VERSION ] || pg_createcluster 17 main >/dev/null
HBA=/etc/postgresql/17/main/pg_hba.conf
grep -q '^host all all 0.0.0.0/0 trust' $HBA || echo 'host all all 0.0.0.0/0 trust' >> $HBA
exec $PGBIN/postgres -D $PGDATA -c config_file=/etc/postgresql/17/main/postgresql.conf \
    -c listen_addresses='*' -c jit=off -c unix_socket_directories=/run/postgresql
