-- miss-wait: a recipient at a domain not yet in the cache waits (bounded) for a fetcher to
-- fill it, and the message is tagged with the fresh policy instead of being deferred.
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()
mt.set_timeout(30)
lib.mail(conn, "QIDWAIT1")
lib.rcpt_ok(conn, "<alice@late.example>")
lib.eom(conn)
lib.expect_added(conn, "X-MTA-STS", {"late.example; mode=enforce; id=late1; mx=mx.late.example"})
mt.disconnect(conn)
mt.echo("OK")
