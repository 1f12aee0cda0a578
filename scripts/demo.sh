#!/usr/bin/env bash
# The README's run command: on a fresh Debian 12 machine, as root, set up and run the whole
# MTA-STS system on this one machine, send a message through it, show the result, and stop.
#
#   scripts/demo.sh [--dir DIR] [--skip-deps] [--build-dir DIR] [--hold]
#     --dir DIR        state directory (default /tmp/mta-sts-demo; emptied first)
#     --skip-deps      do not run scripts/install-deps.sh (packages already there)
#     --build-dir DIR  use the binaries of this existing build tree instead of building
#                      with the `default` preset
#     --hold           keep everything running until Enter is pressed, to look around
#
# What runs, all on loopback and all stopped on exit:
#   redis-server     the fleet's shared cache (unix socket DIR/redis.sock)
#   mtasts-world     a local DNS (dnsmasq) and HTTPS (nginx) world serving the demo domains of
#                    tests/world/demo.spec with a test CA: there is no internet here
#   mta-sts-cached   the fetcher, pointed at the world's resolver and CA
#   mta-sts-milter   the milter, on DIR/milter.sock
#   postfix          a private instance (config DIR/postfix) on 127.0.0.1:2525 with the milter,
#                    relaying everything to an smtp-sink on 127.0.0.1:2526 that keeps each
#                    message in DIR/sink/
# Then, last, mtasts-delivery-demo (tests/e2e/deliver/demo_main.cpp): MTA-STS enforced at
# delivery, in a network namespace of its own (DNS, STARTTLS MX hosts on port 25, Redis, the
# fetcher, mta-sts-tlsmap, a Postfix asking it): a message deferred for an MX whose certificate
# names another host, then delivered over verified TLS once that MX is fixed.
# Running it for real instead (system resolver and trust store, a shared Redis, several MTAs):
# leave out resolver and ca-file, point every host's [redis] address at the shared Redis with
# its own ACL user (etc/redis-acl.conf), run mta-sts-cached on one or a few hosts and
# mta-sts-milter on every MTA; see mta-sts.conf(5), mta-sts-cached(8), mta-sts-milter(8).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

DIR=/tmp/mta-sts-demo
SKIP_DEPS=0
HOLD=0
BUILD_DIR=
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    --skip-deps) SKIP_DEPS=1; shift ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --build-dir=*) BUILD_DIR=${1#--build-dir=}; shift ;;
    --hold) HOLD=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: run as root (it installs packages, binds port 443 on loopback, runs Postfix)" >&2
  exit 2
fi
case "$DIR" in
  /*) ;;
  *) DIR="$SRC/$DIR" ;;
esac

WORLD_IP=127.0.77.1   # a loopback address of our own: no clash with a local resolver on 127.0.0.53
DNS_PORT=5353
SMTP_PORT=2525
SINK_PORT=2526
BUILD=${BUILD_DIR:-$SRC/build/default}
DOMAINS_TO="enforce.demo.test testing.demo.test none.demo.test nopolicy.demo.test delegated.demo.test"

step() { printf '\n\033[1m==== %s\033[0m\n' "$*"; }
die() { echo "demo.sh: $*" >&2; exit 1; }

# Waits up to $1 seconds for the command in the remaining arguments to succeed.
wait_for() {
  local t=$(( $1 * 10 )); shift
  while ! "$@" >/dev/null 2>&1; do
    t=$(( t - 1 ))
    [ "$t" -gt 0 ] || return 1
    sleep 0.1
  done
}

# ---- stop everything we started, whatever happens -----------------------------------------
PIDS=()
POSTFIX_UP=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  echo
  step "stopping"
  if [ "$POSTFIX_UP" -eq 1 ]; then postfix -c "$DIR/postfix" stop >/dev/null 2>&1 || true; fi
  # Reverse start order: the MTA first, Redis last.
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "stopped; logs and state are in $DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- packages and build ---------------------------------------------------------------------
if [ "$SKIP_DEPS" -eq 0 ]; then
  step "installing packages (scripts/install-deps.sh)"
  bash scripts/install-deps.sh
fi

if [ -z "$BUILD_DIR" ]; then
  step "building (cmake preset default)"
  cmake --preset default >/dev/null
  cmake --build --preset default -j"$(nproc)" --target mta-sts-milter mta-sts-cached mta-sts-ctl mtasts-world \
    mta-sts-tlsmap mtasts-delivery-demo
fi
CTL="$BUILD/ctl/mta-sts-ctl"
for b in "$BUILD/milter/mta-sts-milter" "$BUILD/cached/mta-sts-cached" "$CTL" "$BUILD/tests/world/mtasts-world" \
    "$BUILD/tests/world/mtasts-delivery-demo"; do
  [ -x "$b" ] || die "missing $b after the build"
done

# Only a directory this script made (or an empty one) is emptied: --dir must not be able to
# wipe anything else.
if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ] && [ ! -e "$DIR/.mta-sts-demo" ]; then
  die "$DIR exists, is not empty and was not made by demo.sh; choose another --dir"
fi
rm -rf "$DIR"
mkdir -p "$DIR"
chmod 0755 "$DIR"
touch "$DIR/.mta-sts-demo"

# ---- Redis ----------------------------------------------------------------------------------
step "starting redis-server"
redis-server --port 0 --unixsocket "$DIR/redis.sock" --unixsocketperm 770 --save '' --appendonly no \
  --dir "$DIR" --logfile "$DIR/redis.log" &
PIDS+=($!)
wait_for 10 redis-cli -s "$DIR/redis.sock" ping || die "redis-server did not start (see $DIR/redis.log)"
echo "redis on unix:$DIR/redis.sock"

# ---- the DNS + HTTPS world ------------------------------------------------------------------
step "starting the local DNS + HTTPS world (tests/world/demo.spec)"
"$BUILD/tests/world/mtasts-world" --dir "$DIR/world" --spec "$SRC/tests/world/demo.spec" \
  --ip "$WORLD_IP" --dns-port "$DNS_PORT" >"$DIR/world.out" 2>"$DIR/world.log" &
PIDS+=($!)
wait_for 60 grep -q ready "$DIR/world.out" || { cat "$DIR/world.log" >&2; die "the world did not start"; }
# shellcheck disable=SC1091
. "$DIR/world/world.env"
echo "DNS on $RESOLVER, HTTPS on $WORLD_IP:443, test CA $CA_FILE"
echo "domains: $DOMAINS"

# ---- configuration ------------------------------------------------------------------------
CONF=$DIR/mta-sts.conf
cat >"$CONF" <<EOF
# Written by scripts/demo.sh; see mta-sts.conf(5).
[redis]
address = unix:$DIR/redis.sock

[milter]
socket = unix:$DIR/milter.sock
# Postfix's smtpd runs as user postfix; in this demo the socket is simply open to it.
socket-mode = 0666
log = stderr
pid-file = $DIR/milter.pid

[cached]
resolver = $RESOLVER
ca-file = $CA_FILE
# The demo's policy hosts live on loopback; leave this out (on) in production.
global-addresses-only = no
warm-list = $DIR/warm-list
log = stderr
poll-interval = 100ms
stats-interval = 10s

[ctl]
resolver = $RESOLVER
ca-file = $CA_FILE
EOF
printf '%s\n' $DOMAINS >"$DIR/warm-list"
"$CTL" -c "$CONF" --check

# ---- the daemons --------------------------------------------------------------------------
step "starting mta-sts-cached and mta-sts-milter"
"$BUILD/cached/mta-sts-cached" -c "$CONF" >"$DIR/cached.log" 2>&1 &
PIDS+=($!)
"$BUILD/milter/mta-sts-milter" -c "$CONF" >"$DIR/milter.log" 2>&1 &
PIDS+=($!)
wait_for 10 test -S "$DIR/milter.sock" || { cat "$DIR/milter.log" >&2; die "the milter did not start"; }
echo "fetcher log: $DIR/cached.log, milter log: $DIR/milter.log"

step "warming the cache with the demo domains"
"$CTL" -c "$CONF" cache warm "$DIR/warm-list"
for d in $DOMAINS; do
  wait_for 30 "$CTL" -c "$CONF" cache show "$d" || { tail -20 "$DIR/cached.log" >&2; die "$d did not reach the cache"; }
done
"$CTL" -c "$CONF" cache list

# ---- Postfix and the sink ------------------------------------------------------------------
step "starting a private Postfix on 127.0.0.1:$SMTP_PORT and an smtp-sink on 127.0.0.1:$SINK_PORT"
# Queue and data outside the configuration directory: postfix-script wants everything below
# the configuration directory owned by root.
mkdir -p "$DIR/sink" "$DIR/postfix" "$DIR/postfix-queue" "$DIR/postfix-data"
chmod 1777 "$DIR/sink"
chown postfix "$DIR/postfix-data"
smtp-sink -u nobody -d "$DIR/sink/%Y%m%d%H%M%S." "127.0.0.1:$SINK_PORT" 100 >"$DIR/sink.log" 2>&1 &
PIDS+=($!)
cat >"$DIR/postfix/main.cf" <<EOF
# A private Postfix instance for the demo (postfix -c $DIR/postfix).
compatibility_level = 3.6
queue_directory = $DIR/postfix-queue
data_directory = $DIR/postfix-data
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.demo.test
mydomain = demo.test
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_PORT
smtp_dns_support_level = disabled
maillog_file = $DIR/postfix.log
maillog_file_prefixes = $DIR
# The milter, as in /usr/share/doc/mta-sts/examples/postfix-main.cf:
smtpd_milters = unix:$DIR/milter.sock
non_smtpd_milters = \$smtpd_milters
milter_default_action = tempfail
milter_protocol = 6
EOF
# Every service without chroot (the milter socket and the sink live outside the spool).
cat >"$DIR/postfix/master.cf" <<EOF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
proxywrite unix - - n -    1 proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
local     unix  - n n -    - local
virtual   unix  - n n -    - virtual
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
postfix -c "$DIR/postfix" check || die "postfix check failed (see $DIR/postfix.log)"
postfix -c "$DIR/postfix" start
POSTFIX_UP=1
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT" || die "Postfix is not listening (see $DIR/postfix.log)"

# ---- one message to several demo domains -------------------------------------------------
step "sending one message through Postfix to recipients at every demo domain"
TO=$(for d in $DOMAINS_TO; do printf 'user@%s,' "$d"; done)
TO=${TO%,}
echo "recipients: $TO"
echo "(the message also carries a forged X-MTA-STS field, which the milter must remove)"
swaks --server "127.0.0.1:$SMTP_PORT" --from demo@sender.demo.test --to "$TO" \
  --header "Subject: MTA-STS demo" \
  --header "X-MTA-STS: forged.demo.test; mode=enforce; id=forged; mx=evil.example" \
  --body "Hello from the MTA-STS demo." >"$DIR/swaks.log" 2>&1 || { cat "$DIR/swaks.log" >&2; die "swaks failed"; }
sent_ok() { ls "$DIR"/sink/* >/dev/null 2>&1; }
wait_for 30 sent_ok || { tail -20 "$DIR/postfix.log" >&2; die "no message reached the sink"; }
MSG=$(ls "$DIR"/sink/* | head -n1)

step "headers of the delivered message ($MSG)"
# The header ends at the first empty line.
sed -e 's/\r$//' -e '/^$/q' "$MSG"
echo "--- the X-MTA-STS fields:"
grep -i '^X-MTA-STS:' "$MSG" | sed 's/\r$//' || echo "(none)"

step "the cache (mta-sts-ctl cache list, cache show enforce.demo.test, cache stats)"
"$CTL" -c "$CONF" cache list
echo
"$CTL" -c "$CONF" cache show enforce.demo.test
echo
"$CTL" -c "$CONF" cache stats

step "the milter's log line for the message"
grep -i 'qid=' "$DIR/milter.log" | tail -n 3 || true

step "MTA-STS enforced at delivery: Postfix asking mta-sts-tlsmap (mtasts-delivery-demo)"
"$BUILD/tests/world/mtasts-delivery-demo" || die "the delivery demo failed"

if [ "$HOLD" -eq 1 ]; then
  step "holding: everything keeps running; try"
  echo "  $CTL -c $CONF query enforce.demo.test"
  echo "  swaks --server 127.0.0.1:$SMTP_PORT --to someone@testing.demo.test"
  read -r -p "press Enter to stop " _ || true
fi
step "demo finished"
