#!/usr/bin/python3
# Runs Debian's postfix-mta-sts-resolver (mta-sts-daemon, the reference peer) for
# bench_tlsmap with its cache filled in advance: the benchmark has no internet, so the
# peer could not fetch the policies itself. The cache is filled through the peer's own
# cache class (internal LRU or Redis, as configured) before its server starts; everything
# that answers a lookup is the peer's unmodified code. `cache_grace` in the configuration
# is set high by the benchmark so that no entry is looked up again during the run.
#
# Its Redis cache calls aioredis.from_url (aioredis 2), which Debian 12's python3-aioredis
# 1.3.1 lacks: as shipped, the peer cannot use Redis at all. For the benchmark, redis-py's
# asyncio client (python3-redis), which aioredis 2 became, stands in for it.
#
# usage: peer_daemon.py CONFIG.yml DOMAINS_FILE
#   DOMAINS_FILE: one "domain mx-host" per line; each gets an enforce policy for mx-host.
import sys
import time

import aioredis

if not hasattr(aioredis, "from_url"):
    import redis.asyncio
    aioredis.from_url = redis.asyncio.from_url
    aioredis.Redis = redis.asyncio.Redis

from postfix_mta_sts_resolver import daemon, utils
from postfix_mta_sts_resolver.base_cache import CacheEntry

config, domains_file = sys.argv[1], sys.argv[2]
with open(domains_file, encoding="ascii") as f:
    pairs = [line.split() for line in f if line.strip()]

_create_cache = utils.create_cache


def create_cache(cache_type, options):
    cache = _create_cache(cache_type, options)
    setup = cache.setup

    async def filled_setup():
        await setup()
        now = time.time()
        for domain, mx in pairs:
            body = {"version": "STSv1", "mode": "enforce", "mx": [mx], "max_age": 86400}
            await cache.set(domain, CacheEntry(now, "bench1", body))
        print("peer cache filled: %d domains" % len(pairs), file=sys.stderr, flush=True)

    cache.setup = filled_setup
    return cache


utils.create_cache = create_cache
sys.argv = ["mta-sts-daemon", "-c", config, "-v", "warn", "--disable-uvloop"]
daemon.main()
