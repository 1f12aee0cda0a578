-- One message to one recipient (-D rcpt=ADDR). With -D want=VALUE the milter must add exactly
-- that X-MTA-STS field; with -D want=none it must add none; without `want` the message only has
-- to go through (the recipient accepted, the message not refused): mail keeps flowing.
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()
lib.mail(conn, "QIDFLEET")
lib.rcpt_ok(conn, rcpt)
lib.header(conn, "Subject", "fleet")
lib.eom(conn)
if want == "none" then
  lib.expect_added(conn, "X-MTA-STS", {})
elseif want ~= nil then
  lib.expect_added(conn, "X-MTA-STS", {want})
end
mt.disconnect(conn)
mt.echo("OK")
