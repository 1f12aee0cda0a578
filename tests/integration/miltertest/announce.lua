-- One message to enforce.example. phase=before: tagged (policy still enforce, or still cached
-- locally); phase=after: the domain switched to mode none and the change was announced, so
-- the local entry is gone and the message is not tagged.
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()
lib.mail(conn, "QIDANN")
lib.rcpt_ok(conn, "<alice@enforce.example>")
lib.eom(conn)
if phase == "before" then
  lib.expect_added(conn, "X-MTA-STS", {
    "enforce.example; mode=enforce; id=20260424T120000Z; mx=mail.enforce.example,*.mx.enforce.example"})
else
  lib.expect_added(conn, "X-MTA-STS", {})
end
mt.disconnect(conn)
mt.echo("OK")
