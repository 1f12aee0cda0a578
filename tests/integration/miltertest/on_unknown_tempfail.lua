-- on-unknown = tempfail: a recipient at a domain the fleet does not know yet gets a temporary
-- failure (the sender retries once a fetcher has filled the cache); known domains go through,
-- and the message is tagged for them.
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()
lib.mail(conn, "QIDUNK1")
lib.rcpt_ok(conn, "<alice@enforce.example>")
lib.rcpt_tempfail(conn, "<bob@unknown.example>")
lib.rcpt_ok(conn, "<carol@nopolicy.example>")
lib.rcpt_ok(conn, "<dave@[192.0.2.7]>")
lib.rcpt_tempfail(conn, "<erin@Unknown.Example>")
lib.eom(conn)
lib.expect_added(conn, "X-MTA-STS", {
  "enforce.example; mode=enforce; id=20260424T120000Z; mx=mail.enforce.example,*.mx.enforce.example"})
mt.disconnect(conn)
mt.echo("OK")
