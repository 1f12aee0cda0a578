#!/usr/bin/env python3
"""Parses a TLS-RPT report message (RFC 8460 section 5.3) with Python's email package, an
independent MIME parser, and prints what the tests check, one "name<TAB>value" per line:
header:<Name> (each header, unfolded, in order), defects, content_type, report_type,
max_line, parts, then per part i: part<i>.content_type, .filename, .disposition, .cte,
.defects, and .text (text parts, newlines as \\n). The gunzipped report of the
application/tlsrpt+gzip part is written to JSON_OUT.
Usage: report_mail.py FILE JSON_OUT"""
import email
import email.policy
import gzip
import sys

raw = open(sys.argv[1], "rb").read()
msg = email.message_from_bytes(raw, policy=email.policy.default)


def put(name, value):
    print("%s\t%s" % (name, str(value).replace("\r", "\\r").replace("\n", "\\n")))


for k, v in msg.items():
    put("header:" + k, v)
put("defects", len(msg.defects) + sum(len(p.defects) for p in msg.walk()))
put("content_type", msg.get_content_type())
put("report_type", msg.get_param("report-type"))
put("max_line", max((len(l) for l in raw.split(b"\n")), default=0))
parts = list(msg.iter_parts())
put("parts", len(parts))
for i, part in enumerate(parts):
    put("part%d.content_type" % i, part.get_content_type())
    put("part%d.filename" % i, part.get_filename())
    put("part%d.disposition" % i, part.get_content_disposition())
    put("part%d.cte" % i, part.get("Content-Transfer-Encoding"))
    if part.get_content_type() == "application/tlsrpt+gzip":
        with open(sys.argv[2], "wb") as f:
            f.write(gzip.decompress(part.get_payload(decode=True)))
    else:
        put("part%d.text" % i, part.get_content())
