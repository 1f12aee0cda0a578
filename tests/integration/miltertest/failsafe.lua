-- Fail-safe enforcement (failsafe_test.cpp): one message to enforce.example after a fault in
-- the shared cache; the domain was read before, so the message is still tagged with its
-- policy (-D enforce=FIELD). Without -D enforce, no field is expected (the policy was dropped).
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()
lib.mail(conn, "QIDFAILSAFE")
lib.rcpt_ok(conn, "<a@enforce.example>")
lib.header(conn, "Subject", "failsafe")
lib.eom(conn)
lib.expect_added(conn, "X-MTA-STS", {enforce})
mt.disconnect(conn)
mt.echo("OK")
