#!/usr/bin/python3
"""Validates TLS-RPT (RFC 8460) aggregate reports against the project's JSON Schema.

    validate_tlsrpt.py [--schema FILE] [--json] [--quiet] INPUT...

Each INPUT (a path, or - for stdin) may be:
  - the report JSON;
  - the report gzip-compressed (.json.gz, or an HTTPS POST body of application/tlsrpt+gzip);
  - a whole report mail (RFC 8460 section 5.3): multipart/report; report-type="tlsrpt" with
    one application/tlsrpt+gzip (or application/tlsrpt+json) part. The mail is checked too:
    TLS-Report-Domain and TLS-Report-Submitter header fields, the Subject
    "Report Domain: D Submitter: S Report-ID: <ID>", and the part's file name
    submitter!policy-domain!begin!end[!id].json[.gz] (section 5.1).
  - a file written by tests/support/https_sink.py (request headers, a blank line, the body).

Prints "OK <input>: <n> policies" per valid input, or one "validate_tlsrpt: <input>: <where>:
<what is wrong>" line per error, and exits 1 if any input was invalid (2 on usage errors).
--json prints each decoded report (one JSON document per line) instead of the OK lines.

Uses python3-jsonschema (Debian 12: 4.10, draft 2020-12).
"""
import argparse
import email
import email.policy
import gzip
import json
import os
import re
import sys

import jsonschema

DEFAULT_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "reportd",
                              "tlsrpt-report.schema.json")
SUBJECT = re.compile(r"^Report Domain: (\S+) Submitter: (\S+) Report-ID: <([^>]+)>$")
FILENAME = re.compile(r"^([^!]+)!([^!]+)!([0-9]+)!([0-9]+)(![^!]+)?\.json(\.gz)?$")


class Invalid(Exception):
    pass


def _where(path):
    out = "$"
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else "." + str(p)
    return out


def decode_json(data, what):
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise Invalid("%s: not valid gzip: %s" % (what, e))
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Invalid("%s: not valid JSON: %s" % (what, e))


def from_mail(data):
    """The report JSON of a report mail, after checking the mail's own RFC 8460 fields."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    errors = []
    if msg.get_content_type() != "multipart/report":
        raise Invalid("mail: Content-Type is %s, not multipart/report" % msg.get_content_type())
    if (msg.get_param("report-type") or "").lower() != "tlsrpt":
        errors.append("mail: Content-Type has no report-type=\"tlsrpt\"")
    domain = msg.get("TLS-Report-Domain")
    submitter = msg.get("TLS-Report-Submitter")
    if not domain:
        errors.append("mail: no TLS-Report-Domain header field")
    if not submitter:
        errors.append("mail: no TLS-Report-Submitter header field")
    subject = str(msg.get("Subject") or "")
    m = SUBJECT.match(" ".join(subject.split()))
    if not m:
        errors.append("mail: Subject %r is not \"Report Domain: D Submitter: S Report-ID: <ID>\"" % subject)
    elif domain and m.group(1).lower() != str(domain).strip().lower():
        errors.append("mail: Subject's domain %s is not TLS-Report-Domain %s" % (m.group(1), domain))
    parts = [p for p in msg.walk() if p.get_content_type() in ("application/tlsrpt+gzip", "application/tlsrpt+json")]
    if len(parts) != 1:
        raise Invalid("mail: %d application/tlsrpt+gzip or +json parts, not exactly one" % len(parts))
    part = parts[0]
    name = part.get_filename()
    if not name:
        errors.append("mail: the report part has no file name")
    else:
        fm = FILENAME.match(name)
        if not fm:
            errors.append("mail: the report part's file name %r is not submitter!policy-domain!begin!end!id.json.gz" % name)
        elif domain and fm.group(2).lower() != str(domain).strip().lower():
            errors.append("mail: the file name's domain %s is not TLS-Report-Domain %s" % (fm.group(2), domain))
        elif part.get_content_type() == "application/tlsrpt+gzip" and not name.endswith(".gz"):
            errors.append("mail: a gzip part's file name %r does not end in .gz" % name)
    body = part.get_payload(decode=True)
    if body is None:
        raise Invalid("mail: the report part has no body")
    if part.get_content_type() == "application/tlsrpt+gzip" and body[:2] != b"\x1f\x8b":
        errors.append("mail: the application/tlsrpt+gzip part is not gzip data")
    report = decode_json(body, "mail: the report part")
    if errors:
        raise Invalid("\n".join(errors))
    if isinstance(report, dict) and domain:
        domains = {str(p.get("policy", {}).get("policy-domain", "")).lower() for p in report.get("policies", [])
                   if isinstance(p, dict)}
        if str(domain).strip().lower() not in domains:
            raise Invalid("mail: TLS-Report-Domain %s is not a policy-domain of the report (%s)" %
                          (domain, ", ".join(sorted(domains))))
    return report


def load(data):
    """The report from any accepted input form."""
    stripped = data.lstrip()
    if data[:2] == b"\x1f\x8b" or stripped[:1] in (b"{", b"["):
        return decode_json(data, "input")
    # https_sink.py's files: "POST /path HTTP/1.1", header lines, a blank line, the body.
    if re.match(rb"^(POST|PUT) \S+ HTTP/", data):
        sep = data.find(b"\r\n\r\n")
        sep, skip = (sep, 4) if sep >= 0 else (data.find(b"\n\n"), 2)
        if sep < 0:
            raise Invalid("input: an HTTP request without a body")
        return decode_json(data[sep + skip:], "HTTP body")
    return from_mail(data)


def check(report, validator):
    errors = ["%s: %s" % (_where(e.absolute_path), e.message)
              for e in sorted(validator.iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))]
    if errors:
        raise Invalid("\n".join(errors))
    # What the schema cannot say: every failure counted in the details is a failed session.
    for i, p in enumerate(report["policies"]):
        details = sum(d["failed-session-count"] for d in p.get("failure-details", []))
        total = p["summary"]["total-failure-session-count"]
        if details > total:
            raise Invalid("$.policies[%d]: failure-details count %d sessions, summary only %d" % (i, details, total))
    start, end = report["date-range"]["start-datetime"], report["date-range"]["end-datetime"]
    if start >= end:
        raise Invalid("$.date-range: start-datetime %s is not before end-datetime %s" % (start, end))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    ap.add_argument("--json", action="store_true", help="print each decoded report")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args(argv)
    with open(a.schema) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=jsonschema.FormatChecker())
    bad = 0
    for name in a.inputs:
        try:
            if name == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(name, "rb") as f:
                    data = f.read()
            report = load(data)
            check(report, validator)
        except (Invalid, OSError) as e:
            bad += 1
            for line in str(e).split("\n"):
                print("validate_tlsrpt: %s: %s" % (name, line), file=sys.stderr)
            continue
        if a.json:
            print(json.dumps(report, sort_keys=True))
        elif not a.quiet:
            print("OK %s: %d policies" % (name, len(report["policies"])))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
