-- Helpers shared by the milter's miltertest scripts. miltertest's error() prints nothing, so
-- every failure is echoed first. Globals from the command line (-D name=value):
--   socket   the milter's socket ("unix:/path" or "inet:PORT@127.0.0.1")
--   scripts  this directory (for dofile)
local M = {}

function M.fail(msg)
  mt.echo("FAIL: " .. msg)
  error(msg)
end

function M.check(cond, msg)
  if not cond then M.fail(msg) end
end

function M.connect()
  local conn = mt.connect(socket, 50, 0.1)
  M.check(conn ~= nil, "cannot connect to " .. tostring(socket))
  M.check(mt.negotiate(conn, nil, nil, nil) == nil, "negotiate failed")
  return conn
end

-- A new transaction with the queue id the milter logs (macro i). The milter skips the MAIL
-- step (SMFIP_NOMAIL) and miltertest refuses to send a step the filter declined, so MAIL FROM
-- is only sent when it was not skipped.
-- The client address goes with it, as Postfix sends it when the milter asks for it.
function M.mail(conn, qid, from)
  M.check(mt.macro(conn, SMFIC_MAIL, "i", qid, "{client_addr}", "192.0.2.25") == nil, "macro i")
  if not mt.test_option(conn, SMFIP_NOMAIL) then
    M.check(mt.mailfrom(conn, from or "<sender@sender.example>") == nil, "mailfrom")
  end
end

local function reply_name(r)
  if r == SMFIR_CONTINUE then return "continue" end
  if r == SMFIR_TEMPFAIL then return "tempfail" end
  if r == SMFIR_ACCEPT then return "accept" end
  if r == SMFIR_REJECT then return "reject" end
  if r == SMFIR_REPLYCODE then return "replycode" end
  return tostring(r)
end
M.reply_name = reply_name

function M.rcpt_ok(conn, rcpt)
  M.check(mt.rcptto(conn, rcpt) == nil, "rcptto " .. rcpt)
  local r = mt.getreply(conn)
  M.check(r == SMFIR_CONTINUE, "RCPT " .. rcpt .. ": expected continue, got " .. reply_name(r))
end

-- A temporary failure: with a reply text (smfi_setreply) the MTA sees a reply code.
function M.rcpt_tempfail(conn, rcpt)
  M.check(mt.rcptto(conn, rcpt) == nil, "rcptto " .. rcpt)
  local r = mt.getreply(conn)
  M.check(r == SMFIR_TEMPFAIL or r == SMFIR_REPLYCODE,
          "RCPT " .. rcpt .. ": expected a temporary failure, got " .. reply_name(r))
end

function M.header(conn, name, value)
  M.check(mt.header(conn, name, value) == nil, "header " .. name)
end

function M.eom(conn, expected)
  -- No mt.eoh or mt.bodystring: the milter negotiated those steps away, and miltertest
  -- refuses to send steps a filter declined.
  M.check(mt.eom(conn) == nil, "eom")
  local r = mt.getreply(conn)
  local want = expected or SMFIR_CONTINUE
  M.check(r == want, "end of message: expected " .. reply_name(want) .. ", got " .. reply_name(r))
end

-- The values of every field `name` the milter added, in order.
function M.added(conn, name)
  local out = {}
  local i = 0
  while true do
    local v = mt.getheader(conn, name, i)
    if v == nil then break end
    table.insert(out, v)
    i = i + 1
  end
  return out
end

-- The fields added must be exactly `expected`. Compared as sets: miltertest does not keep
-- the order in which the filter added them (the order is checked end to end).
function M.expect_added(conn, name, expected)
  local got = M.added(conn, name)
  local show = function(t) return "[" .. table.concat(t, " | ") .. "]" end
  local sorted = function(t)
    local c = {}
    for i, v in ipairs(t) do c[i] = v end
    table.sort(c)
    return c
  end
  local g, e = sorted(got), sorted(expected)
  local same = #g == #e
  for i = 1, #e do
    if g[i] ~= e[i] then same = false end
  end
  M.check(same, "added " .. name .. ": expected " .. show(e) .. ", got " .. show(g))
  for i = 1, #expected do
    M.check(mt.eom_check(conn, MT_HDRADD, name, expected[i]), "eom_check HDRADD " .. expected[i])
  end
end

function M.expect_deleted(conn, name, yes)
  local deleted = mt.eom_check(conn, MT_HDRDELETE, name)
  M.check(deleted == yes, name .. (yes and " not deleted" or " deleted unexpectedly"))
end

return M
