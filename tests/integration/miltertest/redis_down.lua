-- Redis up, down and back (the test kills and restarts redis-server between runs):
--   phase=up                    enforce.example tagged (and now cached locally)
--   phase=down-accept           Redis gone, on-redis-error = accept: the locally cached domain
--                               is still tagged, an uncached one goes through untagged
--   phase=down-accept-nolocal   Redis gone or stalled, nothing cached: untagged, accepted
--   phase=down-tempfail         on-redis-error = tempfail: recipients needing a lookup are
--                               deferred; one without a policy domain goes through
--   phase=recovered             Redis back with fresh data: tagging resumes
-- Forged fields are removed in every phase.
local lib = dofile(scripts .. "/lib.lua")
local conn = lib.connect()
local enforce = "enforce.example; mode=enforce; id=20260424T120000Z; mx=mail.enforce.example,*.mx.enforce.example"
lib.mail(conn, "QIDRD-" .. phase)
if phase == "up" then
  lib.rcpt_ok(conn, "<alice@enforce.example>")
  lib.header(conn, "X-MTA-STS", "forged")
  lib.eom(conn)
  lib.expect_added(conn, "X-MTA-STS", {enforce})
elseif phase == "down-accept" then
  lib.rcpt_ok(conn, "<alice@enforce.example>")
  lib.rcpt_ok(conn, "<bob@new.example>")
  lib.header(conn, "X-MTA-STS", "forged")
  lib.eom(conn)
  lib.expect_added(conn, "X-MTA-STS", {enforce})
elseif phase == "down-accept-nolocal" then
  lib.rcpt_ok(conn, "<bob@new.example>")
  lib.rcpt_ok(conn, "<carol@other.example>")
  lib.header(conn, "X-MTA-STS", "forged")
  lib.eom(conn)
  lib.expect_added(conn, "X-MTA-STS", {})
elseif phase == "down-tempfail" then
  lib.rcpt_tempfail(conn, "<bob@new.example>")
  lib.rcpt_tempfail(conn, "<alice@enforce.example>")
  lib.rcpt_ok(conn, "<carol@[192.0.2.9]>")
  lib.header(conn, "X-MTA-STS", "forged")
  lib.eom(conn)
  lib.expect_added(conn, "X-MTA-STS", {})
elseif phase == "recovered" then
  lib.rcpt_ok(conn, "<alice@enforce.example>")
  lib.rcpt_ok(conn, "<bob@new.example>")
  lib.header(conn, "X-MTA-STS", "forged")
  lib.eom(conn)
  lib.expect_added(conn, "X-MTA-STS", {enforce, "new.example; mode=enforce; id=new1; mx=mx.new.example"})
else
  lib.fail("unknown phase " .. tostring(phase))
end
lib.expect_deleted(conn, "X-MTA-STS", true)
mt.disconnect(conn)
mt.echo("OK")
