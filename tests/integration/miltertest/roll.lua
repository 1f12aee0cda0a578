-- Rolling upgrade: one message to the domains whose entries the next codec version wrote
-- (roll_test.cpp). Entries today's reader may read are used as today's own: the message is
-- tagged for enforce.example (-D enforce=FIELD) and testing.example (-D testing=FIELD), and
-- nopolicy.example is a known domain without a policy. needs2.example's entry needs a newer
-- reader: the domain is unknown, which on-unknown = tempfail makes visible at RCPT.
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()
lib.mail(conn, "QIDROLL")
lib.rcpt_ok(conn, "<a@enforce.example>")
lib.rcpt_ok(conn, "<b@testing.example>")
lib.rcpt_ok(conn, "<c@nopolicy.example>")
lib.rcpt_tempfail(conn, "<d@needs2.example>")
lib.header(conn, "Subject", "roll")
lib.eom(conn)
lib.expect_added(conn, "X-MTA-STS", {enforce, testing})
mt.disconnect(conn)
mt.echo("OK")
