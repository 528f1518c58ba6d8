"""Sieve scripts and messages run by both Postroom and Pigeonhole's sieve-test."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    name: str
    raw: bytes
    sender: str
    recipient: str


def _crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


MESSAGES = [
    Sample(
        "plain",
        _crlf("""
Return-Path: <bob@example.org>
Received: from mx.example.org by mail.example.test; Tue, 10 Mar 2026 09:15:02 +0100
From: Bob Smith <bob@example.org>
To: Alice <alice@example.test>
Subject: Meeting tomorrow
Date: Tue, 10 Mar 2026 08:14:59 +0000
Message-ID: <m1@example.org>
X-Priority: 3
X-Spam-Score: 2

Hello Alice,
can we meet tomorrow at ten about the budget?
Bob
"""),
        "bob@example.org",
        "alice@example.test",
    ),
    Sample(
        "list",
        _crlf("""
From: Dev List <dev-bounces@lists.example.org>
Sender: dev-bounces@lists.example.org
To: dev@lists.example.org
Cc: alice@example.test
Subject: [dev] Release 1.2 is out
List-Id: Developers <dev.lists.example.org>
Precedence: bulk
Date: Wed, 11 Mar 2026 23:30:00 -0500
Message-ID: <rel12@lists.example.org>
References: <a@x> <b@y>
X-Spam-Score: 10

Release notes: see https://example.org/release
"""),
        "dev-bounces@lists.example.org",
        "alice@example.test",
    ),
    Sample(
        "mime",
        _crlf("""
From: "Carol" <carol+news@shop.example>
To: alice+shopping@example.test, Dave <dave@example.test>
Subject: =?utf-8?q?Caf=C3=A9_offers?=
Date: Sun, 01 Feb 2026 12:00:00 +0200
Message-ID: <offer@shop.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"
X-Spam-Score: 7
X-Tag: one
X-Tag: two
X-Tag: three

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Fresh coffee =E2=80=93 two for one. Unsubscribe below.
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

PGh0bWw+PGI+RnJlc2ggY29mZmVlPC9iPiBzYWxlPC9odG1sPg==
--b1--
"""),
        "bounce-123@shop.example",
        "alice+shopping@example.test",
    ),
    Sample(
        "bounce",
        _crlf("""
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: alice@example.test
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Date: Thu, 12 Mar 2026 10:00:00 +0000
Message-ID: <dsn1@mx.example.org>

This is the mail system at host mx.example.org.
"""),
        # sieve-test cannot take the null reverse path; the unit tests cover it.
        "MAILER-DAEMON@mx.example.org",
        "alice@example.test",
    ),
    Sample(
        "big",
        _crlf(
            """
From: erin@example.net
To: alice@example.test
Cc: frank@example.net, Alice Again <ALICE@example.test>
Subject: Report Q1 (draft)
Date: Fri, 13 Mar 2026 17:45:30 -0700
Message-ID: <big1@example.net>
X-Spam-Score: 0

"""
            + "The quarterly report is attached as text.\n" * 300
        ),
        "erin@example.net",
        "alice@example.test",
    ),
]

# (name, script). Every script is run on every message.
SCRIPTS: list[tuple[str, str]] = [
    ("empty", ""),
    ("keep", "keep;"),
    ("discard", "discard;"),
    ("stop", "stop; discard;"),
    ("fileinto", 'require "fileinto"; fileinto "Archive";'),
    ("fileinto-twice", 'require "fileinto"; fileinto "A"; fileinto "A"; fileinto "B";'),
    ("fileinto-inbox-keep", 'require "fileinto"; fileinto "INBOX"; keep;'),
    ("redirect", 'redirect "carol@example.net";'),
    ("redirect-copy", 'require "copy"; redirect :copy "carol@example.net";'),
    ("redirect-dup", 'redirect "x@example.net"; redirect "x@example.net";'),
    (
        "redirect-limit",
        'redirect "a@x.example"; redirect "b@x.example"; redirect "c@x.example";'
        ' redirect "d@x.example"; redirect "e@x.example";',
    ),
    ("fileinto-copy", 'require ["fileinto","copy"]; fileinto :copy "Copies";'),
    ("reject", 'require "reject"; if header :contains "subject" "release" { reject "No lists"; }'),
    ("reject-conflict", 'require ["reject","fileinto"]; fileinto "X"; reject "no";'),
    (
        "header-is",
        'require "fileinto"; if header :is "subject" "Meeting tomorrow" { fileinto "M"; }',
    ),
    (
        "header-is-case",
        'require "fileinto"; if header :is "Subject" "MEETING TOMORROW" { fileinto "M"; }',
    ),
    (
        "header-octet",
        'require "fileinto"; if header :is :comparator "i;octet" "subject" "MEETING TOMORROW"'
        ' { fileinto "M"; }',
    ),
    (
        "header-contains",
        'require "fileinto"; if header :contains ["subject","from"] "bob" { fileinto "Bob"; }',
    ),
    (
        "header-matches",
        'require "fileinto"; if header :matches "subject" "*[dev]*" { fileinto "dev"; }',
    ),
    (
        "header-matches-q",
        'require "fileinto"; if header :matches "subject" "?eeting*" { fileinto "q"; }',
    ),
    (
        "header-matches-escape",
        'require "fileinto"; if header :matches "subject" "\\\\[dev\\\\] *" { fileinto "esc"; }',
    ),
    (
        "header-2047",
        'require "fileinto"; if header :contains "subject" "Café" { fileinto "cafe"; }',
    ),
    ("exists", 'require "fileinto"; if exists ["list-id","precedence"] { fileinto "lists"; }'),
    ("exists-not", 'require "fileinto"; if not exists "x-spam-score" { fileinto "nospam"; }'),
    ("size-over", 'require "fileinto"; if size :over 5K { fileinto "big"; }'),
    ("size-under", 'require "fileinto"; if size :under 1000 { fileinto "small"; }'),
    (
        "allof",
        'require "fileinto"; if allof (header :contains "from" "example", not size :over 100K)'
        ' { fileinto "ok"; }',
    ),
    (
        "anyof",
        'require "fileinto"; if anyof (false, header :contains "to" "dave") { fileinto "d"; }',
    ),
    ("true-false", 'require "fileinto"; if true { if false { discard; } else { fileinto "t"; } }'),
    (
        "elsif",
        'require "fileinto"; if header :contains "subject" "meeting" { fileinto "a"; }'
        ' elsif header :contains "subject" "release" { fileinto "b"; }'
        ' elsif size :over 10K { fileinto "c"; } else { fileinto "d"; }',
    ),
    (
        "address-all",
        'require "fileinto"; if address :is "from" "bob@example.org" { fileinto "b"; }',
    ),
    (
        "address-domain",
        'require "fileinto"; if address :domain :is "from" "shop.example" { fileinto "s"; }',
    ),
    (
        "address-localpart",
        'require "fileinto"; if address :localpart :is "to" "dave" { fileinto "d"; }',
    ),
    (
        "address-casemap",
        'require "fileinto"; if address :all :is ["to","cc"] "alice@EXAMPLE.test"'
        ' { fileinto "a"; }',
    ),
    (
        "subaddress",
        'require ["fileinto","subaddress"]; if address :detail :is "to" "shopping"'
        ' { fileinto "shop"; }'
        ' elsif address :user :is "from" "carol" { fileinto "carol"; }',
    ),
    (
        "envelope",
        'require ["envelope","fileinto"]; if envelope :domain :is "from" "lists.example.org"'
        ' { fileinto "env"; }',
    ),
    (
        "envelope-null",
        'require ["envelope","fileinto"]; if envelope :is "from" "" { fileinto "null"; }',
    ),
    (
        "envelope-to-detail",
        'require ["envelope","fileinto","subaddress"]; if envelope :detail "to" "shopping"'
        ' { fileinto "envshop"; }',
    ),
    (
        "flags-add",
        'require "imap4flags"; addflag "\\\\Flagged"; addflag ["$Work", "\\\\Seen"];'
        ' removeflag "\\\\Seen";',
    ),
    (
        "flags-fileinto",
        'require ["imap4flags","fileinto"]; setflag "\\\\Seen"; fileinto "Read";'
        ' fileinto :flags "\\\\Answered" "Answered";',
    ),
    ("flags-keep", 'require "imap4flags"; keep :flags ["\\\\Deleted", "junk"];'),
    (
        "hasflag",
        'require ["imap4flags","fileinto"]; addflag "urgent"; if hasflag :is "URGENT"'
        ' { fileinto "urgent"; }',
    ),
    (
        "body-contains",
        'require ["body","fileinto"]; if body :contains "budget" { fileinto "money"; }',
    ),
    (
        "body-text",
        'require ["body","fileinto"]; if body :text :contains "coffee" { fileinto "c"; }',
    ),
    (
        "body-content",
        'require ["body","fileinto"]; if body :content "text/html" :contains "sale"'
        ' { fileinto "h"; }',
    ),
    (
        "body-raw",
        'require ["body","fileinto"]; if body :raw :contains "PGh0bWw" { fileinto "raw"; }',
    ),
    (
        "relational-value",
        'require ["relational","comparator-i;ascii-numeric","fileinto"];'
        ' if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "7"'
        ' { fileinto "Junk"; }',
    ),
    (
        "relational-count",
        'require ["relational","comparator-i;ascii-numeric","fileinto"];'
        ' if address :count "ge" :comparator "i;ascii-numeric" ["to","cc"] "2"'
        ' { fileinto "many"; }',
    ),
    (
        "relational-count-header",
        'require ["relational","comparator-i;ascii-numeric","fileinto"];'
        ' if header :count "eq" :comparator "i;ascii-numeric" "x-tag" "3" { fileinto "three"; }',
    ),
    (
        "numeric-is",
        'require ["comparator-i;ascii-numeric","fileinto"];'
        ' if header :is :comparator "i;ascii-numeric" "x-spam-score" "010" { fileinto "ten"; }',
    ),
    (
        "variables-matches",
        'require ["variables","fileinto"]; if header :matches "subject" "[*] *"'
        ' { fileinto "list-${1}"; }',
    ),
    (
        "variables-set",
        'require ["variables","fileinto"]; set "folder" "Sorted"; set :upper "x" "abc";'
        ' fileinto "${folder}/${x}";',
    ),
    (
        "variables-from",
        'require ["variables","fileinto"]; if address :matches :domain "from" "*.*"'
        ' { set :lower "dom" "${1}"; fileinto "from/${dom}"; }',
    ),
    (
        "variables-string",
        'require ["variables","fileinto"]; set "a" "hello"; if string :is "${a}" "hello"'
        ' { fileinto "str"; }',
    ),
    (
        "variables-length",
        'require ["variables","fileinto"]; set :length "n" "abcd"; if string :is "${n}" "4"'
        ' { fileinto "four"; }',
    ),
    (
        "variables-multi-star",
        'require ["variables","fileinto"]; if header :matches "message-id" "<*@*.*>"'
        ' { fileinto "${2}"; }',
    ),
    (
        "date-year",
        'require ["date","relational","fileinto"]; if date :value "ge" :originalzone "date" "year"'
        ' "2026" { fileinto "recent"; }',
    ),
    (
        "date-zone",
        'require ["date","fileinto"]; if date :is :zone "+0000" "date" "hour" "08"'
        ' { fileinto "eight"; }',
    ),
    (
        "date-weekday",
        'require ["date","fileinto","variables"];'
        ' if date :matches :originalzone "date" "weekday" "*"'
        ' { fileinto "day${1}"; }',
    ),
    (
        "date-index",
        'require ["date","index","fileinto"]; if date :index 1 :zone "+0100" "received" "date"'
        ' "2026-03-10" { fileinto "rcvd"; }',
    ),
    (
        "index-header",
        'require ["index","fileinto"]; if header :index 2 :is "x-tag" "two" { fileinto "second"; }',
    ),
    (
        "index-last",
        'require ["index","fileinto"]; if header :index 1 :last :is "x-tag" "three"'
        ' { fileinto "last"; }',
    ),
    (
        "encoded-character",
        'require ["encoded-character","fileinto"];'
        ' if header :contains "subject" "${hex:4d 65 65}" { fileinto "${unicode:41}"; }',
    ),
    ("vacation", 'require "vacation"; vacation :days 7 "I am away.";'),
    (
        "vacation-subject",
        'require "vacation"; vacation :subject "Out" :addresses ["alice@example.test"] "Away";',
    ),
    ("vacation-seconds", 'require ["vacation","vacation-seconds"]; vacation :seconds 60 "brb";'),
    ("vacation-twice", 'require "vacation"; vacation "a"; vacation "b";'),
    (
        "vacation-and-file",
        'require ["vacation","fileinto"]; fileinto "Away";'
        ' vacation :from "alice@example.test" "x";',
    ),
    ("mailbox-create", 'require ["fileinto","mailbox"]; fileinto :create "New/Sub";'),
    (
        "spam-like",
        'require ["fileinto","relational","comparator-i;ascii-numeric","imap4flags"];'
        ' if anyof (header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "5",'
        ' header :contains "subject" ["viagra","lottery"]) { addflag "$Junk"; fileinto "Junk";'
        " stop; } keep;",
    ),
    ("address-not-an-address-field", 'if address :contains "subject" "a" { discard; }'),
    (
        "address-x-original-to",
        'require "fileinto"; if address :domain "x-original-to" "example.test"'
        ' { fileinto "orig"; }',
    ),
    ("include-personal", 'require "include"; include :personal "fileinto"; keep;'),
    (
        "include-once-optional",
        'require "include"; include :once "flags-keep"; include :once "flags-keep";'
        ' include :optional "no-such-script";',
    ),
    ("include-missing", 'require "include"; include "no-such-script";'),
    ("syntax-missing-semicolon", "keep"),
    ("syntax-unknown-command", "frobnicate;"),
    ("syntax-no-require", 'fileinto "X";'),
    ("syntax-require-late", 'keep; require "fileinto";'),
    ("syntax-bad-match", 'if header :matches :comparator "i;ascii-numeric" "a" "b" { keep; }'),
    ("syntax-multiline", 'require "fileinto";\nif true {\n fileinto text:\nFolder\n.\n;\n}'),
]
