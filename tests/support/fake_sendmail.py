#!/usr/bin/env python3
"""A stand-in for sendmail(1) in tests of mta-sts-reportd's mailto: reports. Usage as
`sendmail-command`: fake_sendmail.py OUTDIR [-i]; the sender appends -f SENDER -- RCPT.
Stores each message as OUTDIR/N.eml and its argv (JSON) as OUTDIR/N.argv. When the file
OUTDIR/fail exists, exits with status 75 (EX_TEMPFAIL) and a message on stderr instead."""
import json
import os
import sys

outdir = sys.argv[1]
data = sys.stdin.buffer.read()
if os.path.exists(os.path.join(outdir, "fail")):
    sys.stderr.write("fake sendmail: temporary failure\n")
    sys.exit(75)
n = 0
while True:
    try:
        fd = os.open(os.path.join(outdir, "%d.argv" % n), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        break
    except FileExistsError:
        n += 1
with os.fdopen(fd, "w") as f:
    json.dump(sys.argv[2:], f)
with open(os.path.join(outdir, "%d.eml" % n), "wb") as f:
    f.write(data)
