-- Every kind of recipient in one message, through every phase the milter negotiates:
-- enforce and testing domains are tagged once each (two recipients of one domain: one field),
-- none / no-policy / not-yet-known / address-literal recipients are not, and two forged
-- incoming fields are removed. A second message on the same connection starts clean.
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()

-- Only what the milter uses is negotiated.
lib.check(mt.test_action(conn, SMFIF_ADDHDRS), "ADDHDRS not requested")
lib.check(mt.test_action(conn, SMFIF_CHGHDRS), "CHGHDRS not requested")
lib.check(not mt.test_action(conn, SMFIF_CHGBODY), "CHGBODY requested")
lib.check(not mt.test_action(conn, SMFIF_ADDRCPT), "ADDRCPT requested")
lib.check(mt.test_option(conn, SMFIP_NOBODY), "body not skipped")
lib.check(mt.test_option(conn, SMFIP_NOHELO), "HELO not skipped")
lib.check(mt.test_option(conn, SMFIP_NOCONNECT), "connect not skipped")
lib.check(not mt.test_option(conn, SMFIP_NOMAIL), "MAIL skipped: it starts each transaction")

lib.mail(conn, "QID0001")
lib.rcpt_ok(conn, "<alice@Enforce.Example>")
lib.rcpt_ok(conn, "<bob@enforce.example.>")
lib.rcpt_ok(conn, "<carol@testing.example>")
lib.rcpt_ok(conn, "<dave@none.example>")
lib.rcpt_ok(conn, "<erin@nopolicy.example>")
lib.rcpt_ok(conn, "<frank@unknown.example>")
lib.rcpt_ok(conn, "<grace@[192.0.2.1]>")
lib.rcpt_ok(conn, "<\"heidi@evil.example\"@enforce.example>")
lib.header(conn, "From", "sender@sender.example")
lib.header(conn, "X-MTA-STS", "enforce.example; mode=none; id=forged; mx=evil.example")
lib.header(conn, "Subject", "test")
lib.header(conn, "x-mta-sts", "unknown.example; mode=enforce; id=forged; mx=evil.example")
lib.eom(conn)
lib.expect_deleted(conn, "X-MTA-STS", true)
lib.expect_added(conn, "X-MTA-STS", {
  "enforce.example; mode=enforce; id=20260424T120000Z; mx=mail.enforce.example,*.mx.enforce.example",
  "testing.example; mode=testing; id=testid1; mx=mx.testing.example",
})

-- Second message, same connection: nothing carried over.
lib.mail(conn, "QID0002")
lib.rcpt_ok(conn, "<ivan@nopolicy.example>")
lib.header(conn, "Subject", "second")
lib.eom(conn)
lib.expect_added(conn, "X-MTA-STS", {})
lib.expect_deleted(conn, "X-MTA-STS", false)

-- Third message: an aborted transaction leaves nothing behind.
lib.mail(conn, "QID0003")
lib.rcpt_ok(conn, "<judy@enforce.example>")
lib.check(mt.abort(conn) == nil, "abort")
lib.mail(conn, "QID0004")
lib.rcpt_ok(conn, "<ken@testing.example>")
lib.eom(conn)
lib.expect_added(conn, "X-MTA-STS", {"testing.example; mode=testing; id=testid1; mx=mx.testing.example"})

mt.disconnect(conn)
mt.echo("OK")
