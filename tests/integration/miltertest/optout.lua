-- Messages that must not be tagged: the sender opted out with "TLS-Required: No" (RFC 8689;
-- tagged anyway when the milter runs with honor-tls-required = no, -D honor=no), and TLS-RPT
-- report mail (RFC 8460), which is never tagged. Forged fields are removed in both cases.
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()

lib.mail(conn, "QIDOPT1")
lib.rcpt_ok(conn, "<alice@enforce.example>")
lib.header(conn, "X-MTA-STS", "enforce.example; mode=none; id=forged; mx=evil.example")
lib.header(conn, "TLS-Required", "No")
lib.eom(conn)
lib.expect_deleted(conn, "X-MTA-STS", true)
if honor == "no" then
  lib.expect_added(conn, "X-MTA-STS", {
    "enforce.example; mode=enforce; id=20260424T120000Z; mx=mail.enforce.example,*.mx.enforce.example"})
else
  lib.expect_added(conn, "X-MTA-STS", {})
end

lib.mail(conn, "QIDOPT2")
lib.rcpt_ok(conn, "<tlsrpt@enforce.example>")
lib.rcpt_ok(conn, "<tlsrpt@testing.example>")
lib.header(conn, "X-MTA-STS", "forged")
lib.header(conn, "MIME-Version", "1.0")
lib.header(conn, "Content-Type", "multipart/report;\r\n\treport-type=\"TLSRPT\";\r\n\tboundary=\"----=_report\"")
lib.eom(conn)
lib.expect_deleted(conn, "X-MTA-STS", true)
lib.expect_added(conn, "X-MTA-STS", {})

-- A delivery status report is ordinary mail: tagged.
lib.mail(conn, "QIDOPT3")
lib.rcpt_ok(conn, "<dsn@testing.example>")
lib.header(conn, "Content-Type", "multipart/report; report-type=delivery-status; boundary=\"b\"")
lib.eom(conn)
lib.expect_added(conn, "X-MTA-STS", {"testing.example; mode=testing; id=testid1; mx=mx.testing.example"})

mt.disconnect(conn)
mt.echo("OK")
