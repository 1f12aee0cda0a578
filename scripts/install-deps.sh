#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tests and the demo need.
# Idempotent: packages already present are skipped quickly by apt.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root (apt-get)" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string mta-sts.test" | debconf-set-selections

BUILD_PKGS="build-essential cmake pkg-config g++ clang libclang-rt-14-dev \
  libmilter-dev libhiredis-dev libldns-dev libcurl4-openssl-dev libssl-dev libidn2-dev zlib1g-dev \
  libboost-program-options-dev libgtest-dev libgmock-dev libmicrohttpd-dev"
SERVER_PKGS="redis-server redis-tools redis-sentinel dnsmasq-base nginx-light postfix miltertest \
  swaks ldnsutils openssl ca-certificates mandoc valgrind iproute2 procps psmisc libwrap0 m4 \
  util-linux dpkg-dev man-db file curl python3-aiosmtpd nsd unbound prometheus faketime \
  opendkim opendkim-tools python3-dkim python3-dnspython python3-jsonschema"

missing=""
for p in $BUILD_PKGS $SERVER_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
fi
# Debian's prometheus package (promtool for etc/prometheus/, and the server the metrics test
# starts on its own port and storage) enables a system instance on :9090: not needed here.
if [ -d /run/systemd/system ] && systemctl is-enabled prometheus >/dev/null 2>&1; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
# opendkim: the reportd tests start their own (opendkim -f, key made at test time); the
# package's system instance is not needed.
if [ -d /run/systemd/system ] && systemctl is-enabled opendkim >/dev/null 2>&1; then
  systemctl disable --now opendkim >/dev/null 2>&1 || true
fi
# Postfix's package starts nothing here (no systemd), but make sure no system instance
# holds port 25 or our test ports.
postfix stop >/dev/null 2>&1 || true

# Sendmail is not installed system-wide (it would replace Postfix's sendmail command):
# its binaries are unpacked into a private folder that the tests use.
SM_DIR=${SENDMAIL_DIR:-/opt/mta-sts-test/sendmail}
if [ ! -x "$SM_DIR/usr/libexec/sendmail/sendmail" ]; then
  mkdir -p "$SM_DIR" /tmp/mta-sts-sm-debs
  ( cd /tmp/mta-sts-sm-debs && apt-get download -qq sendmail-bin sendmail-base sendmail-cf )
  for d in /tmp/mta-sts-sm-debs/*.deb; do dpkg -x "$d" "$SM_DIR"; done
  rm -rf /tmp/mta-sts-sm-debs
fi

# The yardstick of the mta-sts-tlsmap benchmark (bench/tlsmap): Debian's postfix-mta-sts-resolver
# (mta-sts-daemon). Its own service would listen on 127.0.0.1:8461, mta-sts-tlsmap's default
# too: it is kept disabled; the benchmark starts its own instance on a free port. python3-redis
# stands in for the aioredis 2 its Redis cache needs (Debian 12 ships aioredis 1.3.1).
if ! dpkg-query -W -f='${Status}' postfix-mta-sts-resolver 2>/dev/null | grep -q "install ok installed" ||
   ! dpkg-query -W -f='${Status}' python3-redis 2>/dev/null | grep -q "install ok installed"; then
  apt-get install -y -qq --no-install-recommends postfix-mta-sts-resolver python3-redis
  if [ -d /run/systemd/system ]; then
    systemctl disable --now postfix-mta-sts-resolver >/dev/null 2>&1 || true
  fi
fi
# nsd and unbound serve the DNSSEC world of the delivery tests (tests/e2e/deliver), which start
# their own instances inside a network namespace. Their system services would take port 53
# (and unbound may become the machine's resolver): keep them off.
if [ -d /run/systemd/system ]; then
  systemctl disable --now nsd.service unbound.service unbound-resolvconf.service >/dev/null 2>&1 || true
fi
echo "install-deps: ok"
