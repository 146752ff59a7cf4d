#!/bin/sh
# Redis for the demo stack: memory only, so a migration has to carry its state.
exec /usr/bin/redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no \
    --daemonize no --loglevel notice
