#!/usr/bin/python3
"""Tests of tests/support/validate_tlsrpt.py and the TLS-RPT JSON Schema it applies: a
hand-written valid report (tests/fixtures/reportd/example-report.json) is accepted in every
input form (JSON, gzip, report mail, HTTPS sink file); reports that common parsers reject are
refused with a message naming what is wrong. Run by ctest (TlsRptValidator)."""
import copy
import gzip
import json
import os
import subprocess
import sys
import tempfile
import unittest
from email.message import EmailMessage

HERE = os.path.dirname(os.path.abspath(__file__))
VALIDATOR = os.path.join(HERE, "validate_tlsrpt.py")
EXAMPLE = os.path.join(HERE, "..", "fixtures", "reportd", "example-report.json")


def report_mail(report_bytes, domain="mixed.dlv.test", subject=None, headers=True,
                name="sender.dlv.test!mixed.dlv.test!1796601600!1796687999!r1.json.gz"):
    m = EmailMessage()
    m["From"] = "tlsrpt-noreply@sender.dlv.test"
    m["To"] = "tlsrpt@reports.dlv.test"
    m["Subject"] = subject or "Report Domain: %s Submitter: sender.dlv.test Report-ID: <r1@sender.dlv.test>" % domain
    if headers:
        m["TLS-Report-Domain"] = domain
        m["TLS-Report-Submitter"] = "sender.dlv.test"
    m["TLS-Required"] = "No"
    m["Auto-Submitted"] = "auto-generated"
    m.set_content("This is an aggregate TLS report from sender.dlv.test\n")
    m.add_attachment(gzip.compress(report_bytes), maintype="application", subtype="tlsrpt+gzip", filename=name)
    m.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"; boundary="%s"' % m.get_boundary())
    return m.as_bytes()


class Validator(unittest.TestCase):
    def setUp(self):
        with open(EXAMPLE, "rb") as f:
            self.raw = f.read()
        self.report = json.loads(self.raw)
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def run_on(self, data, name="in"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "wb") as f:
            f.write(data)
        r = subprocess.run([sys.executable, VALIDATOR, path], capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr

    def assert_valid(self, data, name="in"):
        rc, out = self.run_on(data, name)
        self.assertEqual(rc, 0, out)
        self.assertIn("OK ", out)

    def assert_invalid(self, data, *needles):
        rc, out = self.run_on(data)
        self.assertEqual(rc, 1, out)
        for n in needles:
            self.assertIn(n, out)

    def test_accepts_the_hand_written_report_in_every_form(self):
        self.assert_valid(self.raw, "report.json")
        self.assert_valid(gzip.compress(self.raw), "report.json.gz")
        self.assert_valid(report_mail(self.raw), "report.eml")
        self.assert_valid(b"POST /tlsrpt HTTP/1.1\r\nContent-Type: application/tlsrpt+gzip\r\n\r\n" +
                          gzip.compress(self.raw), "post.http")

    def test_rejects_a_report_without_policy_domain(self):
        # The no-policy-found entry without policy-domain: what some reporters send and common
        # parsers reject.
        r = copy.deepcopy(self.report)
        del r["policies"][1]["policy"]["policy-domain"]
        self.assert_invalid(json.dumps(r).encode(), "$.policies[1].policy", "'policy-domain' is a required property")
        self.assert_invalid(report_mail(json.dumps(r).encode()), "'policy-domain' is a required property")

    def test_rejects_what_parsers_reject(self):
        cases = [
            (lambda r: r.pop("report-id"), "'report-id' is a required property"),
            (lambda r: r["date-range"].update({"start-datetime": "2026-12-07"}), "$.date-range.start-datetime"),
            (lambda r: r["policies"][0]["failure-details"][0].update({"result-type": "host-mismatch"}),
             "'host-mismatch' is not one of"),
            (lambda r: r["policies"][0]["policy"].update({"policy-type": "mta-sts"}), "$.policies[0].policy.policy-type"),
            (lambda r: r["policies"][0]["summary"].update({"total-successful-session-count": "1"}),
             "total-successful-session-count"),
            (lambda r: r["policies"][0]["policy"].pop("mx-host"), "'mx-host' is a required property"),
            (lambda r: r["policies"][0]["failure-details"][0].update({"failed-sessions-count": 1}),
             "Additional properties are not allowed"),
            (lambda r: r["policies"][0]["summary"].update({"total-failure-session-count": 0}),
             "failure-details count 1 sessions, summary only 0"),
            (lambda r: r.update({"policies": []}), "$.policies"),
        ]
        for change, needle in cases:
            with self.subTest(needle=needle):
                r = copy.deepcopy(self.report)
                change(r)
                self.assert_invalid(json.dumps(r).encode(), needle)
        self.assert_invalid(b"{not json", "not valid JSON")
        self.assert_invalid(b"\x1f\x8b\x08garbage", "not valid gzip")

    def test_rejects_a_report_mail_without_the_rfc_fields(self):
        self.assert_invalid(report_mail(self.raw, headers=False), "no TLS-Report-Domain", "no TLS-Report-Submitter")
        self.assert_invalid(report_mail(self.raw, subject="TLS report"), "Subject")
        self.assert_invalid(report_mail(self.raw, name="report.json.gz"), "file name")
        # The mail says one domain, the report is about others.
        self.assert_invalid(report_mail(self.raw, domain="good.dlv.test",
                                        name="sender.dlv.test!good.dlv.test!1!2!r1.json.gz"),
                            "is not a policy-domain of the report")


if __name__ == "__main__":
    unittest.main(verbosity=2)
