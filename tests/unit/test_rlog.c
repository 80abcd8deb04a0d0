/*
 * test_rlog.c - the log reader of mtasts-report (src/tlsrpt/rlog*.c): each line
 * kind of the decision log, Postfix 3.7 and Sendmail 8.17 (the line text
 * is what those versions wrote in our test runs, with host names and
 * addresses changed where a case needs them), the connection and join
 * rules, counting of what cannot be joined, malformed lines, and reading
 * plain, gzip'd and damaged files.  Table-driven; a failure prints
 * "case NAME: got X, want Y".  Time stamps without a year are read in
 * TZ=UTC with "now" = 2026-11-28T14:00:00Z.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "unit_tmp.h"

#include <zlib.h>

#include "tlsrpt/rlog.h"

#define NOW 1795874400 /* 2026-11-28T14:00:00Z */
#define T_132559 1795873765 /* 2026-11-28T13:49:25Z */

/* ------------------------------------------------------------ lines */

#define PF "Nov 28 13:49:25 mta "
#define PF2 "Nov 28 13:49:26 mta "
#define SM "Nov 28 13:50:47 mta.sendmail.test "

#define TLS_TAIL ": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange " \
                 "X25519 server-signature ECDSA (prime256v1) server-digest SHA256"

/* Decision lines as dlog.c writes them. */
#define DEC_ENFORCE(qid, dom, id) \
    "{\"time\":\"2026-11-28T13:49:24Z\",\"queue_id\":\"" qid "\",\"domain\":\"" dom "\"," \
    "\"result\":\"policy\",\"mode\":\"enforce\",\"policy_id\":\"" id "\"," \
    "\"action\":\"route-enforce\",\"reason\":\"enforce policy\",\"mx\":\"mx1." dom "\"," \
    "\"max_age\":86400,\"from_cache\":false}"
#define DEC_TESTING(qid, dom) \
    "{\"time\":\"2026-11-28T13:49:24Z\",\"queue_id\":\"" qid "\",\"domain\":\"" dom "\"," \
    "\"result\":\"policy\",\"mode\":\"testing\",\"policy_id\":\"tst1\",\"action\":\"accept\"," \
    "\"reason\":\"testing policy: delivered as usual\",\"mx\":\"*." dom "\",\"max_age\":604800," \
    "\"from_cache\":true}"

typedef struct kind_case {
    const char *name;
    const char *line;
    sts_rlog_line_kind want;
} kind_case;

static const kind_case kind_cases[] = {
    { "postfix_verified_tls",
      PF "postfix/mtasts-enforce/smtp[13417]: Verified TLS connection established to "
         "127.0.0.1[127.0.0.1]:39487" TLS_TAIL,
      STS_RLOG_POSTFIX },
    { "postfix_trusted_tls",
      PF "postfix/smtp[13452]: Trusted TLS connection established to "
         "mx.example.com[192.0.2.1]:25" TLS_TAIL,
      STS_RLOG_POSTFIX },
    { "postfix_untrusted_tls_lmtp",
      PF "postfix/lmtp[13482]: Untrusted TLS connection established to "
         "127.0.0.1[127.0.0.1]:43361" TLS_TAIL,
      STS_RLOG_POSTFIX },
    { "postfix_anonymous_tls_reused",
      PF "postfix-out/smtp[7]: Anonymous TLS connection reused to "
         "mx.example.com[2001:db8::25]:25" TLS_TAIL,
      STS_RLOG_POSTFIX },
    { "postfix_hostname_mismatch",
      PF "postfix/sec-other/smtp[13418]: server certificate verification failed for "
         "127.0.0.1[127.0.0.1]:39889: num=62:hostname mismatch",
      STS_RLOG_POSTFIX },
    { "postfix_untrusted_issuer",
      PF "postfix/sec-untr/smtp[13429]: certificate verification failed for "
         "127.0.0.1[127.0.0.1]:43361: untrusted issuer /CN=mtasts-milter UNTRUSTED test CA",
      STS_RLOG_POSTFIX },
    { "postfix_ssl_connect_error",
      PF "postfix/sec-drop/smtp[13439]: SSL_connect error to 127.0.0.1[127.0.0.1]:53287: "
         "Connection reset by peer",
      STS_RLOG_POSTFIX },
    { "postfix_delivery_sent",
      PF "postfix/smtp[30533]: 189C8A8442C: to=<bob@testing.test>, relay=127.0.0.1[127.0.0.1]:40929, "
         "delay=0.11, delays=0.01/0.01/0.04/0.05, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as "
         "SINKA0001)",
      STS_RLOG_POSTFIX },
    { "postfix_delivery_conn_use_orig_to",
      PF "postfix/smtp[13453]: DF735A84CF4: to=<u3@other-other.may.test>, orig_to=<alias@x.test>, "
         "relay=127.0.0.1[127.0.0.1]:41577, conn_use=2, delay=0.18, delays=0.02/0.1/0/0.05, "
         "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as SINKrelay0007)",
      STS_RLOG_POSTFIX },
    { "postfix_cannot_start_tls",
      PF "postfix/may-drop/smtp[13488]: 08667A84D0A: Cannot start TLS: handshake failure",
      STS_RLOG_POSTFIX },
    { "postfix_rfc3339_rsyslog",
      "2026-11-28T13:49:25.123456+01:00 mta postfix/smtp[13417]: Verified TLS connection "
      "established to mx.example.com[192.0.2.1]:25" TLS_TAIL,
      STS_RLOG_POSTFIX },
    { "postfix_journal_short_iso",
      "2026-11-28T13:49:25+0100 mta postfix/smtp[13417]: Verified TLS connection established to "
      "mx.example.com[192.0.2.1]:25" TLS_TAIL,
      STS_RLOG_POSTFIX },
    { "postfix_local_delivery_ignored",
      PF "postfix/lmtp[5]: 1A2B3C4D5E: to=<u@example.com>, relay=mail.example.com[private/dovecot-lmtp], "
         "delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Saved)",
      STS_RLOG_IGNORED },
    { "postfix_cleanup_ignored",
      PF "postfix/cleanup[30505]: D7D47A8442C: milter-header-filter: header X-MTA-STS-Route: enforce "
         "from unknown[127.0.0.1]; from=<sender@client.test> to=<alice@enforce.test> proto=ESMTP "
         "helo=<client.test>: mtasts-enforce:",
      STS_RLOG_IGNORED },
    { "postfix_smtpd_tls_ignored",
      PF "postfix/smtpd[1]: Anonymous TLS connection established from unknown[192.0.2.9]" TLS_TAIL,
      STS_RLOG_IGNORED },
    { "postfix_connect_refused_ignored",
      PF "postfix/smtp[9]: connect to mx.example.com[192.0.2.1]:25: Connection refused",
      STS_RLOG_IGNORED },
    { "sendmail_starttls_client",
      SM "sm-mta[14]: STARTTLS=client, relay=[127.0.0.1], version=TLSv1.3, verify=OK, "
         "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
      STS_RLOG_SENDMAIL },
    { "sendmail_no_host_field",
      "Nov 28 13:50:54 sendmail[14]: STARTTLS: TLS cert verify: depth=0 /CN=mx.expired.test, "
      "state=0, reason=certificate has expired",
      STS_RLOG_SENDMAIL },
    { "sendmail_tls_server_none",
      SM "sendmail[14]: ruleset=tls_server, arg1=NONE, relay=[127.0.0.1], reject=403 4.7.0 other "
         "side does not support STARTTLS",
      STS_RLOG_SENDMAIL },
    { "sendmail_delivery",
      SM "sendmail[14]: 6ASDolB8000012: to=<u3@x.good.example>,<u2@good.example>, delay=00:00:00, "
         "xdelay=00:00:00, mailer=relay, pri=90180, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, "
         "stat=Sent (Ok: queued as SINKgood0001)",
      STS_RLOG_SENDMAIL },
    { "sendmail_local_delivery_ignored",
      SM "sendmail[15]: 6ASDolB8000013: to=root, ctladdr=<root@x.test> (0/0), delay=00:00:00, "
         "xdelay=00:00:00, mailer=local, pri=30000, dsn=2.0.0, stat=Sent",
      STS_RLOG_IGNORED },
    { "sendmail_from_line_ignored",
      SM "sendmail[12]: 6ASDolB8000012: from=<s@client.test>, size=180, class=0, nrcpts=3, "
         "msgid=<1@client.test>, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]",
      STS_RLOG_IGNORED },
    { "decision_line",
      "{\"time\":\"2026-11-28T13:48:00Z\",\"queue_id\":\"33379A84434\",\"domain\":\"nopolicy.test\","
      "\"result\":\"none\",\"mode\":null,\"policy_id\":null,\"action\":\"accept\",\"reason\":\"no "
      "MTA-STS policy\",\"from_cache\":false}",
      STS_RLOG_DECISION },
    { "decision_unknown_fields_ignored",
      "{\"time\":\"2026-11-28T13:48:00Z\",\"queue_id\":\"AB12345\",\"domain\":\"Example.COM.\","
      "\"result\":\"none\",\"action\":\"accept\",\"future\":{\"x\":[1,2]},\"pending\":true}",
      STS_RLOG_DECISION },
    { "decision_cut_json_malformed",
      "{\"time\":\"2026-11-28T13:48:00Z\",\"queue_id\":\"33379A84434\",\"domain\":\"nopo", STS_RLOG_MALFORMED },
    { "json_array_ignored", "[1,2,3]", STS_RLOG_IGNORED },
    { "decision_not_object_malformed", "{\"time\" 1}", STS_RLOG_MALFORMED },
    { "decision_bad_time_malformed",
      "{\"time\":\"2026-13-28T13:48:00Z\",\"queue_id\":\"AB12345\",\"domain\":\"a.test\","
      "\"result\":\"none\",\"action\":\"accept\"}",
      STS_RLOG_MALFORMED },
    { "decision_missing_action_malformed",
      "{\"time\":\"2026-11-28T13:48:00Z\",\"queue_id\":\"AB12345\",\"domain\":\"a.test\","
      "\"result\":\"none\"}",
      STS_RLOG_MALFORMED },
    { "decision_bad_domain_malformed",
      "{\"time\":\"2026-11-28T13:48:00Z\",\"queue_id\":\"AB12345\",\"domain\":\"a..test\","
      "\"result\":\"none\",\"action\":\"accept\"}",
      STS_RLOG_MALFORMED },
    { "decision_unknown_report_type_malformed",
      "{\"time\":\"2026-11-28T13:48:00Z\",\"queue_id\":\"AB12345\",\"domain\":\"a.test\","
      "\"result\":\"temperror\",\"action\":\"accept\",\"report_type\":\"sts-weird\"}",
      STS_RLOG_MALFORMED },
    { "postfix_tls_line_cut_malformed",
      PF "postfix/smtp[13417]: Verified TLS connection established to 127.0.0.1[127.0", STS_RLOG_MALFORMED },
    { "postfix_delivery_no_status_malformed",
      PF "postfix/smtp[30533]: 189C8A8442C: to=<bob@testing.test>, relay=127.0.0.1[127.0.0.1]:40929, "
         "delay=0.11",
      STS_RLOG_MALFORMED },
    { "sendmail_starttls_bad_verify_malformed",
      SM "sm-mta[14]: STARTTLS=client, relay=[127.0.0.1], version=TLSv1.3, verify=MAYBE, "
         "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
      STS_RLOG_MALFORMED },
    /* journalctl -o json records (fields as journalctl 252 prints them). */
    { "journal_json_postfix_tls",
      "{\"__CURSOR\":\"s=04;i=1\",\"__REALTIME_TIMESTAMP\":\"1795873765000000\",\"_HOSTNAME\":"
      "\"mta\",\"SYSLOG_IDENTIFIER\":\"postfix/smtp\",\"SYSLOG_FACILITY\":\"2\",\"MESSAGE\":"
      "\"Verified TLS connection established to mx.example.com[192.0.2.1]:25: TLSv1.3\","
      "\"SYSLOG_PID\":\"13417\",\"_PID\":\"13417\"}",
      STS_RLOG_POSTFIX },
    { "journal_json_message_as_bytes",
      "{\"__REALTIME_TIMESTAMP\":\"1795873765000000\",\"SYSLOG_IDENTIFIER\":\"sm-mta\","
      "\"_PID\":\"14\",\"MESSAGE\":[83,84,65,82,84,84,76,83,61,99,108,105,101,110,116,44,32,114"
      ",101,108,97,121,61,91,49,50,55,46,48,46,48,46,49,93,44,32,118,101,114,115,105,111,110,61"
      ",84,76,83,118,49,46,51,44,32,118,101,114,105,102,121,61,79,75,44,32,99,105,112,104,101,1"
      "14,61,88,255,44,32,98,105,116,115,61,50,53,54,47,50,53,54]}",
      STS_RLOG_SENDMAIL },
    { "journal_json_not_syslog_ignored",
      "{\"__REALTIME_TIMESTAMP\":\"1795873765000000\",\"_TRANSPORT\":\"kernel\",\"MESSAGE\":"
      "\"eth0: link up\"}",
      STS_RLOG_IGNORED },
    { "journal_json_other_program_ignored",
      "{\"__REALTIME_TIMESTAMP\":\"1795873765000000\",\"SYSLOG_IDENTIFIER\":\"postfix/qmgr\","
      "\"SYSLOG_PID\":\"7\",\"MESSAGE\":\"1A2B3C4D5E: removed\"}",
      STS_RLOG_IGNORED },
    { "journal_json_bad_time_malformed",
      "{\"__REALTIME_TIMESTAMP\":\"soon\",\"SYSLOG_IDENTIFIER\":\"postfix/smtp\","
      "\"SYSLOG_PID\":\"7\",\"MESSAGE\":\"x\"}",
      STS_RLOG_MALFORMED },
    { "journal_short_iso_precise",
      "2026-11-28T13:49:25.123456+0000 mta postfix/smtp[13417]: Verified TLS connection "
      "established to mx.example.com[192.0.2.1]:25" TLS_TAIL,
      STS_RLOG_POSTFIX },
    { "kernel_line_ignored", PF "kernel: [12345.678] eth0: link up", STS_RLOG_IGNORED },
    { "empty_line_ignored", "", STS_RLOG_IGNORED },
    { "garbage_ignored", "\x01\x02\xff not a log line", STS_RLOG_IGNORED },
    { "pid_overflow_ignored",
      PF "postfix/smtp[99999999999]: Verified TLS connection established to "
         "mx.example.com[192.0.2.1]:25" TLS_TAIL,
      STS_RLOG_IGNORED },
};

static void run_kind_case(void **state)
{
    const kind_case *c = *state;
    sts_rlog *r;
    sts_rlog_line_kind got;

    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    got = sts_rlog_feed_line(r, c->line, strlen(c->line), "test", 1);
    if (got != c->want)
        fail_msg("case %s: got kind %d, want %d", c->name, (int)got, (int)c->want);
    sts_rlog_free(r);
}

/* --------------------------------------------------------- scenarios */

typedef struct want_session {
    const char *qid, *domain;
    sts_rlog_tls tls;
    const char *rt; /* NULL: success */
    const char *host, *ip;
    bool decision, engine;
    const char *detail; /* substring of detail, NULL: not checked */
} want_session;

/* Counters checked when >= 0. */
typedef struct want_stats {
    long malformed, no_tls_info, absorbed, no_session, unjoined_attempts, unjoined_decisions,
        duplicates, joined, engine_failures;
} want_stats;

#define ANY_STATS -1, -1, -1, -1, -1, -1, -1, -1, -1

typedef struct scenario {
    const char *name;
    const char *const *lines;
    const want_session *want;
    want_stats stats;
} scenario;

#define LINES(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define WANT(...) ((const want_session[]){ __VA_ARGS__, { NULL } })
#define NO_SESSIONS ((const want_session[]){ { NULL } })

static const scenario scenarios[] = {
    /* Hostile lines (issue 11): text a sender or a remote server chose
     * must not make, move or hide a session. */
    { "hostile_postfix_quoted_recipient_stays_in_its_domain",
      LINES(PF "postfix/smtp[700]: Trusted TLS connection established to "
               "mx.attacker.test[198.51.100.7]:25" TLS_TAIL,
            PF "postfix/smtp[700]: 4A1B2C3D4E: to=<\"x@victim.test>, relay=mx.attacker.test"
               "[198.51.100.7]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)\""
               "@attacker.test>, relay=mx.attacker.test[198.51.100.7]:25, delay=0.2, "
               "delays=0/0/0.1/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)"),
      WANT({ "4A1B2C3D4E", "attacker.test", STS_RLOG_TLS_TRUSTED, NULL, "mx.attacker.test",
             "198.51.100.7", false, false, "" }),
      { 0, 0, 0, 0, 1, 0, 0, 0, 0 } },

    { "hostile_postfix_escaped_quote_in_local_part",
      LINES(PF "postfix/smtp[701]: 4A1B2C3D4F: to=<\"a\\\"@victim.test>, relay=x[192.0.2.1]:25, "
               "dsn=2.0.0, status=sent (ok)\\\\\"@attacker.test>, relay=mx.attacker.test"
               "[198.51.100.7]:25, delay=0.2, delays=0/0/0.1/0.1, dsn=4.0.0, status=deferred "
               "(TLS is required, but was not offered by host mx.attacker.test[198.51.100.7])"),
      WANT({ "4A1B2C3D4F", "attacker.test", STS_RLOG_TLS_NOT_OFFERED, "starttls-not-supported",
             "mx.attacker.test", "198.51.100.7", false, false, "not offered" }),
      { ANY_STATS } },

    { "hostile_postfix_unquoted_special_in_local_part_malformed",
      LINES(PF "postfix/smtp[702]: 4A1B2C3D50: to=<x@victim.test, relay=a>@attacker.test>, "
               "relay=mx.attacker.test[198.51.100.7]:25, delay=0.2, delays=0/0/0.1/0.1, "
               "dsn=2.0.0, status=sent (250 ok)"),
      NO_SESSIONS,
      { 1, 0, 0, 0, 0, 0, 0, 0, 0 } },

    { "hostile_postfix_server_reply_cannot_hide_the_attempt",
      LINES(PF "postfix/mtasts-enforce/smtp[703]: 4A1B2C3D51: to=<u@victim.test>, "
               "relay=mx.victim.test[192.0.2.44]:25, delay=0.2, delays=0/0/0.1/0.1, dsn=4.7.4, "
               "status=deferred (TLS is required, but host mx.victim.test[192.0.2.44] refused "
               "to start TLS: 454 4.7.0 TLS is required, but our TLS engine is unavailable)"),
      WANT({ "4A1B2C3D51", "victim.test", STS_RLOG_TLS_NOT_OFFERED, "starttls-not-supported",
             "mx.victim.test", "192.0.2.44", false, false, "refused to start TLS" }),
      { ANY_STATS } },

    { "hostile_postfix_server_reply_is_not_postfix_words",
      LINES(PF "postfix/smtp[704]: Verified TLS connection established to "
               "mx.victim.test[192.0.2.45]:25" TLS_TAIL,
            PF "postfix/smtp[704]: 4A1B2C3D52: to=<u@victim.test>, relay=mx.victim.test"
               "[192.0.2.45]:25, delay=0.2, delays=0/0/0.1/0.1, dsn=4.0.0, status=deferred "
               "(host mx.victim.test[192.0.2.45] said: 450 TLS is required, but was not offered "
               "by host x Server certificate not verified (in reply to RCPT TO command))"),
      WANT({ "4A1B2C3D52", "victim.test", STS_RLOG_TLS_VERIFIED, NULL, "mx.victim.test",
             "192.0.2.45", false, false, "" }),
      { ANY_STATS } },

    { "hostile_postfix_issuer_name_does_not_choose_result_type",
      LINES(PF "postfix/smtp[705]: certificate verification failed for mx.victim.test"
               "[192.0.2.46]:25: untrusted issuer /CN=certificate has expired hostname mismatch",
            PF "postfix/smtp[705]: Untrusted TLS connection established to "
               "mx.victim.test[192.0.2.46]:25" TLS_TAIL,
            PF "postfix/smtp[705]: 4A1B2C3D53: to=<u@victim.test>, relay=mx.victim.test"
               "[192.0.2.46]:25, delay=0.2, delays=0/0/0.1/0.1, dsn=2.0.0, status=sent (250 ok)"),
      WANT({ "4A1B2C3D53", "victim.test", STS_RLOG_TLS_UNTRUSTED, "certificate-not-trusted",
             "mx.victim.test", "192.0.2.46", false, false, "untrusted issuer" }),
      { ANY_STATS } },

    { "hostile_sendmail_quoted_recipient_stays_in_its_domain",
      LINES(SM "sm-mta[800]: STARTTLS=client, relay=mx.attacker.test., version=TLSv1.3, "
               "verify=OK, cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
            SM "sm-mta[800]: 6ASDolB8000099: to=<\"x@victim.test>, mailer=esmtp, relay=mx.victim."
               "test. [192.0.2.9], dsn=2.0.0, stat=Sent (ok)\"@attacker.test>,<y@attacker.test>, "
               "delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=30000, relay=mx.attacker.test. "
               "[198.51.100.7], dsn=2.0.0, stat=Sent (Ok: queued as X)"),
      WANT({ "6ASDolB8000099", "attacker.test", STS_RLOG_TLS_TRUSTED, NULL, "mx.attacker.test",
             "198.51.100.7", false, false, "" }),
      { ANY_STATS } },

    { "hostile_sendmail_server_reply_does_not_say_starttls",
      LINES(SM "sm-mta[801]: STARTTLS=client, relay=mx.victim.test., version=TLSv1.3, "
               "verify=OK, cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
            SM "sm-mta[801]: 6ASDolB8000100: to=<u@victim.test>, delay=00:00:01, "
               "xdelay=00:00:01, mailer=esmtp, pri=30000, relay=mx.victim.test. [192.0.2.47], "
               "dsn=4.0.0, stat=Deferred: 450 4.7.0 other side does not support STARTTLS"),
      WANT({ "6ASDolB8000100", "victim.test", STS_RLOG_TLS_TRUSTED, NULL, "mx.victim.test",
             "192.0.2.47", false, false, NULL }),
      { ANY_STATS } },

    { "hostile_sendmail_subject_does_not_choose_reason",
      LINES(SM "sm-mta[802]: STARTTLS: TLS cert verify: depth=0 /CN=x, state=0, reason=certificate "
               "has expired, state=0, reason=self-signed certificate",
            SM "sm-mta[802]: STARTTLS=client, relay=mx.victim.test., version=TLSv1.3, verify=FAIL, "
               "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
            SM "sm-mta[802]: 6ASDolB8000101: to=<u@victim.test>, delay=00:00:01, "
               "xdelay=00:00:01, mailer=esmtp, pri=30000, relay=mx.victim.test. [192.0.2.48], "
               "dsn=2.0.0, stat=Sent (ok)"),
      WANT({ "6ASDolB8000101", "victim.test", STS_RLOG_TLS_UNTRUSTED, "certificate-not-trusted",
             "mx.victim.test", "192.0.2.48", false, false, "self-signed" }),
      { ANY_STATS } },

    { "enforce_verified_joined_once_per_domain",
      LINES(DEC_ENFORCE("B90DBA84CD4", "good.test", "enf1"),
            DEC_ENFORCE("B90DBA84CD4", "good.test", "enf1"),
            PF "postfix/mtasts-enforce/smtp[13417]: Verified TLS connection established to "
               "mx1.good.test[192.0.2.10]:25" TLS_TAIL,
            PF "postfix/mtasts-enforce/smtp[13417]: B90DBA84CD4: to=<u1@good.test>, "
               "relay=mx1.good.test[192.0.2.10]:25, delay=0.26, delays=0.02/0.06/0.1/0.07, "
               "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as SINKgood0001)",
            PF "postfix/mtasts-enforce/smtp[13417]: B90DBA84CD4: to=<u2@GOOD.test>, "
               "relay=mx1.good.test[192.0.2.10]:25, delay=0.26, delays=0.02/0.06/0.1/0.07, "
               "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as SINKgood0001)"),
      WANT({ "B90DBA84CD4", "good.test", STS_RLOG_TLS_VERIFIED, NULL, "mx1.good.test",
             "192.0.2.10", true, false, "" }),
      { 0, 0, 0, 0, 0, 0, 1, 1, 0 } },

    { "hostname_mismatch_deferred",
      LINES(PF "postfix/sec-other/smtp[13418]: server certificate verification failed for "
               "mx1.other.test[192.0.2.11]:25: num=62:hostname mismatch",
            PF "postfix/sec-other/smtp[13418]: Untrusted TLS connection established to "
               "mx1.other.test[192.0.2.11]:25" TLS_TAIL,
            PF "postfix/sec-other/smtp[13418]: BA5C1A84CD6: to=<u1@other.test>, "
               "relay=mx1.other.test[192.0.2.11]:25, delay=0.13, delays=0.01/0.04/0.08/0, "
               "dsn=4.7.5, status=deferred (Server certificate not verified)",
            PF "postfix/sec-other/smtp[13418]: BA5C1A84CD6: to=<u2@other.test>, "
               "relay=mx1.other.test[192.0.2.11]:25, delay=0.13, delays=0.01/0.04/0.08/0, "
               "dsn=4.7.5, status=deferred (Server certificate not verified)"),
      WANT({ "BA5C1A84CD6", "other.test", STS_RLOG_TLS_UNTRUSTED, "certificate-host-mismatch",
             "mx1.other.test", "192.0.2.11", false, false, "num=62:hostname mismatch" }),
      { 0, 0, 0, 0, 1, 0, 0, 0, 0 } },

    { "expired_certificate",
      LINES(PF "postfix/sec-expired/smtp[13420]: server certificate verification failed for "
               "127.0.0.1[127.0.0.1]:35143: certificate has expired",
            PF "postfix/sec-expired/smtp[13420]: Untrusted TLS connection established to "
               "127.0.0.1[127.0.0.1]:35143" TLS_TAIL,
            PF "postfix/sec-expired/smtp[13420]: BCADFA84CD8: to=<u1@expired.secure.test>, "
               "relay=127.0.0.1[127.0.0.1]:35143, delay=0.13, delays=0/0.06/0.06/0, dsn=4.7.5, "
               "status=deferred (Server certificate not verified)"),
      WANT({ "BCADFA84CD8", "expired.secure.test", STS_RLOG_TLS_UNTRUSTED, "certificate-expired",
             "", "127.0.0.1", false, false, "certificate has expired" }),
      { ANY_STATS } },

    { "not_yet_valid_counts_as_expired",
      LINES(PF "postfix/sec-notyet/smtp[13424]: server certificate verification failed for "
               "127.0.0.1[127.0.0.1]:34555: certificate not yet valid",
            PF "postfix/sec-notyet/smtp[13424]: Untrusted TLS connection established to "
               "127.0.0.1[127.0.0.1]:34555" TLS_TAIL,
            PF "postfix/sec-notyet/smtp[13424]: C138BA84CDC: to=<u1@notyet.secure.test>, "
               "relay=127.0.0.1[127.0.0.1]:34555, delay=0.17, delays=0/0.1/0.06/0, dsn=4.7.5, "
               "status=deferred (Server certificate not verified)"),
      WANT({ "C138BA84CDC", "notyet.secure.test", STS_RLOG_TLS_UNTRUSTED, "certificate-expired",
             "", "127.0.0.1", false, false, "not yet valid" }),
      { ANY_STATS } },

    { "self_signed_and_untrusted_issuer_not_trusted",
      LINES(PF "postfix/sec-self/smtp[13425]: certificate verification failed for "
               "127.0.0.1[127.0.0.1]:44741: self-signed certificate",
            PF "postfix/sec-untr/smtp[13429]: certificate verification failed for "
               "127.0.0.1[127.0.0.1]:43361: untrusted issuer /CN=mtasts-milter UNTRUSTED test CA",
            PF "postfix/sec-self/smtp[13425]: Untrusted TLS connection established to "
               "127.0.0.1[127.0.0.1]:44741" TLS_TAIL,
            PF "postfix/sec-untr/smtp[13429]: Untrusted TLS connection established to "
               "127.0.0.1[127.0.0.1]:43361" TLS_TAIL,
            PF "postfix/sec-untr/smtp[13429]: C4AF7A84CE1: to=<u1@untr.secure.test>, "
               "relay=127.0.0.1[127.0.0.1]:43361, delay=0.14, delays=0.01/0.08/0.06/0, "
               "dsn=4.7.5, status=deferred (Server certificate not verified)",
            PF "postfix/sec-self/smtp[13425]: C1F43A84CDD: to=<u1@self.secure.test>, "
               "relay=127.0.0.1[127.0.0.1]:44741, delay=0.16, delays=0.01/0.05/0.1/0, "
               "dsn=4.7.5, status=deferred (Server certificate not verified)"),
      WANT({ "C4AF7A84CE1", "untr.secure.test", STS_RLOG_TLS_UNTRUSTED, "certificate-not-trusted",
             "", "127.0.0.1", false, false, "untrusted issuer" },
           { "C1F43A84CDD", "self.secure.test", STS_RLOG_TLS_UNTRUSTED, "certificate-not-trusted",
             "", "127.0.0.1", false, false, "self-signed" }),
      { ANY_STATS } },

    { "starttls_not_offered_once_per_domain",
      LINES(PF "postfix/sec-plain/smtp[13435]: C969DA84CE4: to=<u1@plain.secure.test>, "
               "relay=127.0.0.1[127.0.0.1]:35831, delay=0.13, delays=0.01/0.06/0.05/0, "
               "dsn=4.7.4, status=deferred (TLS is required, but was not offered by host "
               "127.0.0.1[127.0.0.1])",
            PF "postfix/sec-plain/smtp[13435]: C969DA84CE4: to=<u2@plain.secure.test>, "
               "relay=127.0.0.1[127.0.0.1]:35831, delay=0.13, delays=0.01/0.06/0.05/0, "
               "dsn=4.7.4, status=deferred (TLS is required, but was not offered by host "
               "127.0.0.1[127.0.0.1])"),
      WANT({ "C969DA84CE4", "plain.secure.test", STS_RLOG_TLS_NOT_OFFERED, "starttls-not-supported",
             "", "127.0.0.1", false, false, "was not offered" }),
      { ANY_STATS } },

    { "handshake_failure_and_plaintext_retry",
      LINES(PF "postfix/may-drop/smtp[13488]: SSL_connect error to 127.0.0.1[127.0.0.1]:53287: "
               "Connection reset by peer",
            PF "postfix/may-drop/smtp[13488]: 08667A84D0A: to=<u1@drop.may.test>, "
               "relay=127.0.0.1[127.0.0.1]:53287, delay=0.2, delays=0.02/0.04/0.13/0, dsn=4.7.5, "
               "status=deferred (Cannot start TLS: handshake failure)",
            "Nov 28 13:49:28 mta postfix/may-drop/smtp[13488]: SSL_connect error to "
            "127.0.0.1[127.0.0.1]:53287: Connection reset by peer",
            "Nov 28 13:49:28 mta postfix/may-drop/smtp[13488]: 08667A84D0A: Cannot start TLS: "
            "handshake failure",
            "Nov 28 13:49:28 mta postfix/may-drop/smtp[13488]: 08667A84D0A: to=<u1@drop.may.test>, "
            "relay=127.0.0.1[127.0.0.1]:53287, delay=2.3, delays=1.3/0/1.1/0, dsn=2.0.0, "
            "status=sent (250 2.0.0 Ok)"),
      WANT({ "08667A84D0A", "drop.may.test", STS_RLOG_TLS_FAILED, "validation-failure", "",
             "127.0.0.1", false, false, "Connection reset by peer" },
           { "08667A84D0A", "drop.may.test", STS_RLOG_TLS_FAILED, "validation-failure", "",
             "127.0.0.1", false, false, "Connection reset by peer" }),
      { ANY_STATS } },

    { "may_level_trusted_is_success_untrusted_is_not",
      LINES(DEC_TESTING("D164EA84CEB", "good.may.test"), DEC_TESTING("02204A84591", "untr.may.test"),
            PF2 "postfix/smtp[13452]: Trusted TLS connection established to "
                "127.0.0.1[127.0.0.1]:39487" TLS_TAIL,
            PF2 "postfix/smtp[13482]: Untrusted TLS connection established to "
                "127.0.0.1[127.0.0.1]:43361" TLS_TAIL,
            PF2 "postfix/smtp[13482]: 02204A84591: to=<u1@untr.may.test>, "
                "relay=127.0.0.1[127.0.0.1]:43361, delay=0.25, delays=0.04/0.05/0.09/0.06, "
                "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as SINKuntr0001)",
            PF2 "postfix/smtp[13452]: D164EA84CEB: to=<u1@good.may.test>, "
                "relay=127.0.0.1[127.0.0.1]:39487, delay=0.26, delays=0.05/0.03/0.13/0.06, "
                "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as SINKgood0002)"),
      WANT({ "D164EA84CEB", "good.may.test", STS_RLOG_TLS_TRUSTED, NULL, "", "127.0.0.1", true,
             false, "" },
           { "02204A84591", "untr.may.test", STS_RLOG_TLS_UNTRUSTED, "certificate-not-trusted", "",
             "127.0.0.1", true, false, NULL }),
      { 0, 0, 0, 0, 0, 0, 0, 2, 0 } },

    { "earlier_mx_of_same_delivery_counts",
      LINES(PF "postfix/smtp[200]: server certificate verification failed for "
               "mx1.multi.test[192.0.2.21]:25: certificate has expired",
            PF "postfix/smtp[200]: Untrusted TLS connection established to "
               "mx1.multi.test[192.0.2.21]:25" TLS_TAIL,
            PF "postfix/smtp[200]: Verified TLS connection established to "
               "mx2.multi.test[192.0.2.22]:25" TLS_TAIL,
            PF "postfix/smtp[200]: 4AB3C2D1E0: to=<a@multi.test>, relay=mx2.multi.test[192.0.2.22]:25, "
               "delay=1.2, delays=0.1/0/1/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
            PF "postfix/smtp[200]: 4AB3C2D1E0: to=<b@multi.test>, relay=mx2.multi.test[192.0.2.22]:25, "
               "delay=1.2, delays=0.1/0/1/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)"),
      WANT({ "4AB3C2D1E0", "multi.test", STS_RLOG_TLS_UNTRUSTED, "certificate-expired",
             "mx1.multi.test", "192.0.2.21", false, false, "expired" },
           { "4AB3C2D1E0", "multi.test", STS_RLOG_TLS_VERIFIED, NULL, "mx2.multi.test", "192.0.2.22",
             false, false, "" }),
      { ANY_STATS } },

    { "interleaved_processes_keep_their_connections",
      LINES(PF "postfix/smtp[301]: Verified TLS connection established to a.one.test[192.0.2.31]:25" TLS_TAIL,
            PF "postfix/smtp[302]: server certificate verification failed for b.two.test[192.0.2.32]:25: "
               "num=62:hostname mismatch",
            PF "postfix/smtp[302]: Untrusted TLS connection established to b.two.test[192.0.2.32]:25" TLS_TAIL,
            PF "postfix/smtp[301]: 11111AAAAA: to=<x@one.test>, relay=a.one.test[192.0.2.31]:25, "
               "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)",
            PF "postfix/smtp[302]: 22222BBBBB: to=<y@two.test>, relay=b.two.test[192.0.2.32]:25, "
               "delay=1, delays=0/0/0.5/0, dsn=4.7.5, status=deferred (Server certificate not verified)"),
      WANT({ "11111AAAAA", "one.test", STS_RLOG_TLS_VERIFIED, NULL, "a.one.test", "192.0.2.31", false,
             false, "" },
           { "22222BBBBB", "two.test", STS_RLOG_TLS_UNTRUSTED, "certificate-host-mismatch", "b.two.test",
             "192.0.2.32", false, false, NULL }),
      { ANY_STATS } },

    { "one_connection_several_domains",
      LINES(PF "postfix/relay/smtp[400]: Verified TLS connection established to "
               "smarthost.isp.test[192.0.2.40]:587" TLS_TAIL,
            PF "postfix/relay/smtp[400]: 3C3C3C3C3C: to=<a@one.test>, relay=smarthost.isp.test[192.0.2.40]:587, "
               "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)",
            PF "postfix/relay/smtp[400]: 3C3C3C3C3C: to=<b@two.test>, relay=smarthost.isp.test[192.0.2.40]:587, "
               "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)",
            PF "postfix/relay/smtp[400]: 3C3C3C3C3C: to=<c@one.test>, relay=smarthost.isp.test[192.0.2.40]:587, "
               "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)"),
      WANT({ "3C3C3C3C3C", "one.test", STS_RLOG_TLS_VERIFIED, NULL, "smarthost.isp.test", "192.0.2.40",
             false, false, "" },
           { "3C3C3C3C3C", "two.test", STS_RLOG_TLS_VERIFIED, NULL, "smarthost.isp.test", "192.0.2.40",
             false, false, "" }),
      { ANY_STATS } },

    { "plaintext_by_a_tls_logging_service_is_starttls_not_supported",
      LINES(PF "postfix/smtp[500]: Trusted TLS connection established to mx.tls.test[192.0.2.50]:25" TLS_TAIL,
            PF "postfix/smtp[500]: 5A5A5A5A5A: to=<a@tls.test>, relay=mx.tls.test[192.0.2.50]:25, delay=1, "
               "delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)",
            PF2 "postfix/smtp[500]: 5B5B5B5B5B: to=<a@plain.test>, relay=mx.plain.test[192.0.2.51]:25, "
                "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)",
            PF2 "postfix/smtp[500]: 5C5C5C5C5C: to=<a@down.test>, relay=mx.down.test[192.0.2.52]:25, "
                "delay=1, delays=0/0/0.5/0, dsn=4.0.0, status=deferred (host mx.down.test[192.0.2.52] "
                "said: 421 busy (in reply to EHLO command))",
            PF2 "postfix/nontls/smtp[501]: 5D5D5D5D5D: to=<a@plain.test>, relay=mx.plain.test[192.0.2.51]:25, "
                "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)"),
      WANT({ "5A5A5A5A5A", "tls.test", STS_RLOG_TLS_TRUSTED, NULL, "mx.tls.test", "192.0.2.50", false,
             false, "" },
           { "5B5B5B5B5B", "plain.test", STS_RLOG_TLS_PLAINTEXT, "starttls-not-supported",
             "mx.plain.test", "192.0.2.51", false, false, NULL }),
      { 0, 2, 0, 0, 2, 0, 0, 0, 0 } },

    { "no_connection_no_session",
      LINES(PF "postfix/smtp[600]: 6A6A6A6A6A: to=<a@away.test>, relay=none, delay=300, "
               "delays=300/0/0/0, dsn=4.4.1, status=deferred (connect to mx.away.test[192.0.2.60]:25: "
               "Connection refused)",
            PF "postfix/smtp[601]: 6B6B6B6B6B: to=<a@away.test>, relay=none, delay=1, delays=1/0/0/0, "
               "dsn=4.7.4, status=deferred (delivery temporarily suspended: TLS is required, but was not "
               "offered by host mx.away.test[192.0.2.60])"),
      NO_SESSIONS, { 0, 0, 0, 0, 0, 0, 0, 0, 0 } },

    { "sendmail_ok_fail_none",
      LINES(SM "sm-mta[14]: STARTTLS=client, relay=mx.good.test., version=TLSv1.3, verify=OK, "
               "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
            SM "sm-mta[14]: 6ASDolB8000012: to=<u3@x.good.test>,<u2@good.test>,<u1@good.test>, "
               "delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=90180, relay=mx.good.test. "
               "[192.0.2.70], dsn=2.0.0, stat=Sent (Ok: queued as SINKgood0001)",
            SM "sm-mta[15]: STARTTLS: TLS cert verify: depth=0 /CN=mx.expired.test, state=0, "
               "reason=certificate has expired",
            SM "sm-mta[15]: STARTTLS=client, relay=[192.0.2.71], version=TLSv1.3, verify=FAIL, "
               "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
            SM "sm-mta[15]: ruleset=tls_server, arg1=FAIL, relay=[192.0.2.71], reject=403 4.7.0 "
               "authentication failed",
            SM "sm-mta[15]: 6ASDpoJF000012: to=<u1@expired.test>, delay=00:00:00, xdelay=00:00:00, "
               "mailer=relay, pri=30181, relay=[192.0.2.71] [192.0.2.71], dsn=4.7.0, stat=Deferred: "
               "403 4.7.0 authentication failed",
            SM "sm-mta[16]: ruleset=tls_server, arg1=NONE, relay=mx.plain.test., reject=403 4.7.0 "
               "other side does not support STARTTLS",
            SM "sm-mta[16]: 6ASDpwM0000012: to=<u1@plain.test>, delay=00:00:00, xdelay=00:00:00, "
               "mailer=esmtp, pri=30182, relay=mx.plain.test. [192.0.2.72], dsn=4.7.0, stat=Deferred: "
               "403 4.7.0 other side does not support STARTTLS"),
      WANT({ "6ASDolB8000012", "good.test", STS_RLOG_TLS_TRUSTED, NULL, "mx.good.test", "192.0.2.70",
             false, false, "" },
           { "6ASDolB8000012", "x.good.test", STS_RLOG_TLS_TRUSTED, NULL, "mx.good.test", "192.0.2.70",
             false, false, "" },
           { "6ASDpoJF000012", "expired.test", STS_RLOG_TLS_UNTRUSTED, "certificate-expired", "",
             "192.0.2.71", false, false, "certificate has expired" },
           { "6ASDpwM0000012", "plain.test", STS_RLOG_TLS_NOT_OFFERED, "starttls-not-supported",
             "mx.plain.test", "192.0.2.72", false, false, "does not support STARTTLS" }),
      { ANY_STATS } },

    { "sendmail_self_signed_and_connection_cache",
      LINES(SM "sendmail[14]: STARTTLS=client, relay=[192.0.2.80], version=TLSv1.3, verify=FAIL, "
               "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
            SM "sendmail[14]: STARTTLS=client, cert-subject=/CN=mx.self.test, cert-issuer=/CN=mx.self.test, "
               "verifymsg=self-signed certificate",
            SM "sendmail[14]: 6ASDp07B000012: to=<u1@self.test>, delay=00:00:00, xdelay=00:00:00, "
               "mailer=relay, pri=90180, relay=[192.0.2.80] [192.0.2.80], dsn=2.0.0, stat=Sent (Ok)",
            SM "sendmail[14]: 6ASDp07B000013: to=<u9@self.test>, delay=00:00:00, xdelay=00:00:00, "
               "mailer=relay, pri=90180, relay=[192.0.2.80] [192.0.2.80], dsn=2.0.0, stat=Sent (Ok)"),
      WANT({ "6ASDp07B000012", "self.test", STS_RLOG_TLS_UNTRUSTED, "certificate-not-trusted", "",
             "192.0.2.80", false, false, "self-signed" },
           { "6ASDp07B000013", "self.test", STS_RLOG_TLS_UNTRUSTED, "certificate-not-trusted", "",
             "192.0.2.80", false, false, "self-signed" }),
      { ANY_STATS } },

    { "engine_failures_and_decisions_without_session",
      LINES("{\"time\":\"2026-11-28T13:49:00Z\",\"queue_id\":\"7A7A7A7A7A\",\"domain\":\"fetchfail.test\","
            "\"result\":\"temperror\",\"mode\":null,\"policy_id\":\"abc123\",\"action\":\"accept\","
            "\"reason\":\"policy fetch failed: HTTP 404\",\"report_type\":\"sts-policy-fetch-error\","
            "\"from_cache\":false}",
            "{\"time\":\"2026-11-28T13:49:00Z\",\"queue_id\":\"7A7A7A7A7A\",\"domain\":\"fetchfail.test\","
            "\"result\":\"temperror\",\"mode\":null,\"policy_id\":\"abc123\",\"action\":\"accept\","
            "\"reason\":\"policy fetch failed: HTTP 404\",\"report_type\":\"sts-policy-fetch-error\","
            "\"from_cache\":false}",
            "{\"time\":\"2026-11-28T13:49:01Z\",\"queue_id\":\"7B7B7B7B7B\",\"domain\":\"webpki.test\","
            "\"result\":\"invalid\",\"mode\":null,\"policy_id\":\"x1\",\"action\":\"accept\","
            "\"reason\":\"certificate expired\",\"report_type\":\"sts-webpki-invalid\",\"from_cache\":false}",
            "{\"time\":\"2026-11-28T13:49:02Z\",\"queue_id\":\"c17\",\"domain\":\"nomx.test\","
            "\"result\":\"policy\",\"mode\":\"enforce\",\"policy_id\":\"n1\",\"action\":\"tempfail-no-mx\","
            "\"reason\":\"no MX host matches\",\"mx\":\"mx.elsewhere.test\",\"max_age\":3600,"
            "\"from_cache\":true}",
            "{\"time\":\"2026-11-28T13:49:03Z\",\"queue_id\":\"7C7C7C7C7C\",\"domain\":\"split.test\","
            "\"result\":\"policy\",\"mode\":\"testing\",\"policy_id\":\"s1\",\"action\":\"split\","
            "\"reason\":\"message already routed as enforce\",\"mx\":\"mx.split.test\",\"max_age\":1,"
            "\"from_cache\":true}",
            "{\"time\":\"2026-11-28T13:49:03Z\",\"queue_id\":\"7C7C7C7C7C\",\"domain\":\"lit\","
            "\"result\":\"skipped\",\"mode\":null,\"policy_id\":null,\"action\":\"skip\","
            "\"reason\":\"address literal\"}",
            "{\"time\":\"2026-11-28T13:49:03Z\",\"queue_id\":\"7D7D7D7D7D\",\"domain\":\"t.test\","
            "\"result\":\"temperror\",\"mode\":null,\"policy_id\":null,\"action\":\"tempfail\","
            "\"reason\":\"lookup failed, deferred\",\"from_cache\":false}",
            "{\"time\":\"2026-11-28T13:49:03Z\",\"queue_id\":\"7E7E7E7E7E\",\"domain\":\"a.test\","
            "\"result\":\"none\",\"mode\":null,\"policy_id\":null,\"action\":\"aborted\","
            "\"reason\":\"message aborted by the client\",\"from_cache\":false}",
            "{\"time\":\"2026-11-28T13:49:03Z\",\"queue_id\":\"7F7F7F7F7F\",\"domain\":\"queued.test\","
            "\"result\":\"none\",\"mode\":null,\"policy_id\":null,\"action\":\"accept\","
            "\"reason\":\"no MTA-STS policy\",\"from_cache\":false}",
            PF "postfix/smtp[700]: Trusted TLS connection established to mx.fetchfail.test[192.0.2.90]:25" TLS_TAIL,
            PF "postfix/smtp[700]: 7A7A7A7A7A: to=<u@fetchfail.test>, relay=mx.fetchfail.test[192.0.2.90]:25, "
               "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)"),
      WANT({ "7A7A7A7A7A", "fetchfail.test", STS_RLOG_TLS_NONE, "sts-policy-fetch-error", "", "", true,
             true, "HTTP 404" },
           { "7B7B7B7B7B", "webpki.test", STS_RLOG_TLS_NONE, "sts-webpki-invalid", "", "", true, true,
             "certificate expired" },
           { "c17", "nomx.test", STS_RLOG_TLS_NONE, "validation-failure", "", "", true, true,
             "no MX host matches" }),
      { 0, 0, 1, 4, 0, 1, 1, 0, 3 } },

    /* A refresh failed while a valid cached policy applied (result
     * "policy" with a report_type): the mail went out under the cached
     * policy, its connection is the session, not a fetch error. */
    /* RFC 8461 6: the failed refresh is one failed session under the
     * cached policy; the delivery is a session of its own, not absorbed. */
    { "refresh_failure_under_cached_policy_is_reported_beside_delivery",
      LINES("{\"time\":\"2026-11-28T13:49:24Z\",\"queue_id\":\"5E5E5E5E5E\",\"domain\":\"cached.test\","
            "\"result\":\"policy\",\"mode\":\"enforce\",\"policy_id\":\"c1\",\"action\":\"route-enforce\","
            "\"reason\":\"enforce policy\",\"report_type\":\"sts-policy-fetch-error\","
            "\"refresh_error\":\"HTTP status 503\","
            "\"mx\":\"mx1.cached.test\",\"max_age\":604800,\"from_cache\":true}",
            PF "postfix/smtp[900]: Verified TLS connection established to mx1.cached.test[192.0.2.91]:25" TLS_TAIL,
            PF "postfix/smtp[900]: 5E5E5E5E5E: to=<u@cached.test>, relay=mx1.cached.test[192.0.2.91]:25, "
               "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)"),
      WANT({ "5E5E5E5E5E", "cached.test", STS_RLOG_TLS_NONE, "sts-policy-fetch-error", "", "",
             true, true, "HTTP status 503" },
           { "5E5E5E5E5E", "cached.test", STS_RLOG_TLS_VERIFIED, NULL, "mx1.cached.test", "192.0.2.91",
             true, false, "" }),
      { 0, 0, 0, 0, 0, 0, 0, 1, 1 } },

    /* Reason texts go into report JSON as they are (printable ASCII): a
     * quote stays a quote, only other bytes are escaped. */
    { "reason_text_keeps_quotes_escapes_control_bytes",
      LINES("{\"time\":\"2026-11-28T13:49:02Z\",\"queue_id\":\"c18\",\"domain\":\"nomx2.test\","
            "\"result\":\"policy\",\"mode\":\"enforce\",\"policy_id\":\"n2\",\"action\":\"tempfail-no-mx\","
            "\"reason\":\"policy matches none of the domain's \\\"MX\\\" hosts\\t\\\\\",\"mx\":\"mx.x.test\","
            "\"max_age\":3600,\"from_cache\":true}"),
      WANT({ "c18", "nomx2.test", STS_RLOG_TLS_NONE, "validation-failure", "", "", true, true,
             "none of the domain's \"MX\" hosts\\x09\\" }),
      { 0, 0, 0, 0, 0, 0, 0, 0, 1 } },

    /* An attempt whose log says nothing about TLS is no session, but its
     * decision did have its delivery: not an unjoined decision. */
    { "attempt_without_tls_info_still_joins_its_decision",
      LINES(DEC_TESTING("6F6F6F6F6F", "quiet.test"),
            PF "postfix/quiet/smtp[901]: 6F6F6F6F6F: to=<u@quiet.test>, relay=mx.quiet.test[192.0.2.92]:25, "
               "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)"),
      NO_SESSIONS, { 0, 1, 0, 0, 0, 0, 0, 0, 0 } },

    { "queue_id_reused_joins_the_nearest_earlier_decision",
      LINES("{\"time\":\"2026-11-26T10:00:00Z\",\"queue_id\":\"ABCDE12345\",\"domain\":\"reuse.test\","
            "\"result\":\"none\",\"mode\":null,\"policy_id\":null,\"action\":\"accept\",\"reason\":\"x\"}",
            DEC_ENFORCE("ABCDE12345", "reuse.test", "new1"),
            PF "postfix/smtp[800]: Verified TLS connection established to mx1.reuse.test[192.0.2.95]:25" TLS_TAIL,
            PF "postfix/smtp[800]: ABCDE12345: to=<u@reuse.test>, relay=mx1.reuse.test[192.0.2.95]:25, "
               "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)"),
      WANT({ "ABCDE12345", "reuse.test", STS_RLOG_TLS_VERIFIED, NULL, "mx1.reuse.test", "192.0.2.95",
             true, false, "" }),
      { 0, 0, 0, 0, 0, 1, 0, 1, 0 } },
};

static const char *str_or(const char *s)
{
    return s != NULL ? s : "(null)";
}

static bool session_matches(const sts_rsession *s, const want_session *w)
{
    return strcmp(s->queue_id, w->qid) == 0 && strcmp(s->domain, w->domain) == 0 &&
           s->tls == w->tls && strcmp(str_or(s->result_type), str_or(w->rt)) == 0 &&
           s->success == (w->rt == NULL) && strcmp(s->mx_host, w->host) == 0 &&
           strcmp(s->mx_ip, w->ip) == 0 && s->has_decision == w->decision &&
           s->engine_failure == w->engine &&
           (w->detail == NULL ||
            (w->detail[0] == '\0' ? s->detail[0] == '\0' : strstr(s->detail, w->detail) != NULL));
}

static void print_sessions(const sts_rsession *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        print_message("  got %s %s tls=%d rt=%s host=%s ip=%s dec=%d eng=%d detail=%s\n",
                      s[i].queue_id, s[i].domain, (int)s[i].tls, str_or(s[i].result_type),
                      s[i].mx_host, s[i].mx_ip, s[i].has_decision, s[i].engine_failure, s[i].detail);
}

static void check_stat(const char *name, const char *what, uint64_t got, long want)
{
    if (want >= 0 && got != (uint64_t)want)
        fail_msg("case %s: got %s %llu, want %ld", name, what, (unsigned long long)got, want);
}

static void run_scenario(void **state)
{
    const scenario *c = *state;
    sts_rlog *r;
    const sts_rsession *s;
    const sts_rlog_stats *st;
    size_t n, nwant = 0;
    bool used[64] = { false };

    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (size_t i = 0; c->lines[i] != NULL; i++)
        (void)sts_rlog_feed_line(r, c->lines[i], strlen(c->lines[i]), c->name, i + 1);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    while (c->want[nwant].qid != NULL)
        nwant++;
    if (n != nwant) {
        print_sessions(s, n);
        fail_msg("case %s: got %zu sessions, want %zu", c->name, n, nwant);
    }
    for (size_t w = 0; w < nwant; w++) {
        size_t i;

        for (i = 0; i < n; i++)
            if (!used[i] && session_matches(&s[i], &c->want[w]))
                break;
        if (i == n) {
            print_sessions(s, n);
            fail_msg("case %s: got no session like want[%zu] (%s %s rt=%s host=%s)", c->name, w,
                     c->want[w].qid, c->want[w].domain, str_or(c->want[w].rt), c->want[w].host);
        }
        used[i] = true;
    }
    for (size_t i = 1; i < n; i++)
        if (s[i].time < s[i - 1].time)
            fail_msg("case %s: sessions not sorted by time at %zu", c->name, i);
    st = sts_rlog_get_stats(r);
    check_stat(c->name, "malformed", st->malformed_lines, c->stats.malformed);
    check_stat(c->name, "no_tls_info", st->no_tls_info, c->stats.no_tls_info);
    check_stat(c->name, "absorbed", st->absorbed, c->stats.absorbed);
    check_stat(c->name, "no_session", st->no_session, c->stats.no_session);
    check_stat(c->name, "unjoined_attempts", st->unjoined_attempts, c->stats.unjoined_attempts);
    check_stat(c->name, "unjoined_decisions", st->unjoined_decisions, c->stats.unjoined_decisions);
    check_stat(c->name, "duplicate_decisions", st->duplicate_decisions, c->stats.duplicates);
    check_stat(c->name, "joined", st->joined, c->stats.joined);
    check_stat(c->name, "engine_failures", st->engine_failures, c->stats.engine_failures);
    if (st->lines != st->decision_lines + st->mta_lines + st->ignored_lines + st->malformed_lines)
        fail_msg("case %s: line counts do not add up", c->name);
    sts_rlog_free(r);
}

/* ------------------------------------------------------ single tests */

/* The policy fields of a joined decision reach the session. */
static void test_decision_fields(void **state)
{
    static const char *const lines[] = {
        DEC_TESTING("D164EA84CEB", "good.may.test"),
        PF2 "postfix/smtp[13452]: Trusted TLS connection established to 127.0.0.1[127.0.0.1]:39487" TLS_TAIL,
        PF2 "postfix/smtp[13452]: D164EA84CEB: to=<u1@good.may.test>, relay=127.0.0.1[127.0.0.1]:39487, "
            "delay=0.26, delays=0.05/0.03/0.13/0.06, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    };
    sts_rlog *r;
    const sts_rsession *s;
    size_t n;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (size_t i = 0; i < 3; i++)
        (void)sts_rlog_feed_line(r, lines[i], strlen(lines[i]), "t", i + 1);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    if (n != 1)
        fail_msg("case decision_fields: got %zu sessions, want 1", n);
    if (!s->has_decision || s->result != STS_RESULT_POLICY || !s->has_policy ||
        s->mode != STS_MODE_TESTING || strcmp(s->policy_id, "tst1") != 0 ||
        strcmp(s->mx, "*.good.may.test") != 0 || s->mx_truncated || !s->max_age_known ||
        s->max_age != 604800 || s->time != T_132559 + 1)
        fail_msg("case decision_fields: got result %d mode %d id '%s' mx '%s' max_age %u time %lld, "
                 "want policy testing tst1 *.good.may.test 604800 %lld",
                 (int)s->result, (int)s->mode, s->policy_id, s->mx, s->max_age, (long long)s->time,
                 (long long)T_132559 + 1);
    sts_rlog_free(r);
}

/* A cut mx list (",..." from the decision log) is flagged. */
static void test_mx_truncated(void **state)
{
    static const char line[] =
        "{\"time\":\"2026-11-28T13:49:00Z\",\"queue_id\":\"7B7B7B7B7B\",\"domain\":\"cut.test\","
        "\"result\":\"policy\",\"mode\":\"enforce\",\"policy_id\":\"x1\",\"action\":\"tempfail-no-mx\","
        "\"reason\":\"r\",\"mx\":\"a.cut.test,b.cut.test,...\",\"max_age\":5}";
    sts_rlog *r;
    const sts_rsession *s;
    size_t n;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    assert_int_equal(sts_rlog_feed_line(r, line, strlen(line), "t", 1), STS_RLOG_DECISION);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    if (n != 1 || !s->mx_truncated || strcmp(s->mx, "a.cut.test,b.cut.test,...") != 0)
        fail_msg("case mx_truncated: got n=%zu truncated=%d mx '%s', want 1 true", n,
                 n > 0 && s->mx_truncated, n > 0 ? s->mx : "");
    sts_rlog_free(r);
}

/* Time stamps: RFC 3339 offsets, and the year of a BSD stamp around New Year. */
static void test_time_stamps(void **state)
{
    static const struct {
        const char *name, *stamp;
        int64_t now, want;
    } cases[] = {
        { "rfc3339_z", "2026-11-28T13:49:25Z", NOW, T_132559 },
        { "rfc3339_plus_0100", "2026-11-28T14:49:25.5+01:00", NOW, T_132559 },
        { "rfc3339_minus_0130_no_colon", "2026-11-28T12:19:25-0130", NOW, T_132559 },
        { "bsd_same_year", "Nov 28 13:49:25", NOW, T_132559 },
        { "bsd_december_read_in_january", "Dec 31 23:59:59", 1767225600 + 3600, 1767225599 },
        { "bsd_padded_day", "Nov  3 00:00:00", NOW, 1793664000 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[512];
        sts_rlog *r;
        const sts_rsession *s;
        size_t n;

        assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
        sts_rlog_set_now(r, cases[i].now);
        (void)snprintf(line, sizeof(line),
                       "%s mta postfix/smtp[1]: 1A2B3C4D5E: to=<a@b.test>, relay=mx.b.test[192.0.2.1]:25, "
                       "delay=1, delays=0/0/0/1, dsn=4.7.4, status=deferred (TLS is required, but was "
                       "not offered by host mx.b.test[192.0.2.1])",
                       cases[i].stamp);
        assert_int_equal(sts_rlog_feed_line(r, line, strlen(line), "t", 1), STS_RLOG_POSTFIX);
        assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
        if (n != 1 || s->time != cases[i].want)
            fail_msg("case %s: got time %lld, want %lld", cases[i].name, n ? (long long)s->time : -1LL,
                     (long long)cases[i].want);
        sts_rlog_free(r);
    }
}

/* The window keeps sessions of [from, until) and still joins older
 * decisions; sessions come out sorted whatever the input order. */
static void test_window_and_order(void **state)
{
    static const char *const lines[] = {
        ("Nov 28 13:00:00 mta postfix/smtp[1]: 2A2A2A2A2A: to=<a@late.test>, relay=mx.late.test[192.0.2.2]:25, "
        "delay=1, delays=0/0/0/1, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host "
        "mx.late.test[192.0.2.2])"),
        ("Nov 27 23:59:59 mta postfix/smtp[2]: 1A1A1A1A1A: to=<a@early.test>, relay=mx.early.test[192.0.2.1]:25, "
        "delay=1, delays=0/0/0/1, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host "
        "mx.early.test[192.0.2.1])"),
        ("Nov 28 10:00:00 mta postfix/smtp[3]: 3A3A3A3A3A: to=<a@mid.test>, relay=mx.mid.test[192.0.2.3]:25, "
        "delay=1, delays=0/0/0/1, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host "
        "mx.mid.test[192.0.2.3])"),
        ("{\"time\":\"2026-11-27T23:00:00Z\",\"queue_id\":\"3A3A3A3A3A\",\"domain\":\"mid.test\","
        "\"result\":\"none\",\"mode\":null,\"policy_id\":null,\"action\":\"accept\",\"reason\":\"x\"}"),
    };
    sts_rlog *r;
    const sts_rsession *s;
    size_t n;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (size_t i = 0; i < 4; i++)
        (void)sts_rlog_feed_line(r, lines[i], strlen(lines[i]), "t", i + 1);
    sts_rlog_set_window(r, 1795824000 /* 2026-11-28T00:00Z */, 1795910400);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    if (n != 2 || strcmp(s[0].domain, "mid.test") != 0 || strcmp(s[1].domain, "late.test") != 0 ||
        !s[0].has_decision || s[1].has_decision)
        fail_msg("case window_and_order: got %zu sessions (%s, %s), want mid.test (joined) then late.test",
                 n, n > 0 ? s[0].domain : "", n > 1 ? s[1].domain : "");
    if (sts_rlog_get_stats(r)->outside_window != 1)
        fail_msg("case window_and_order: got outside_window %llu, want 1",
                 (unsigned long long)sts_rlog_get_stats(r)->outside_window);
    sts_rlog_free(r);
}

typedef struct warn_log {
    unsigned n;
    char first[256];
} warn_log;

static void collect_warning(void *arg, const char *msg)
{
    warn_log *w = arg;

    if (w->n++ == 0)
        (void)snprintf(w->first, sizeof(w->first), "%s", msg);
}

/* Malformed lines are counted, each warned with file and line, up to a
 * limit; a line longer than STS_RLOG_LINE_MAX is malformed too. */
static void test_malformed_warned_and_limited(void **state)
{
    static const char bad[] = PF "postfix/smtp[1]: Verified TLS connection established to nowhere";
    warn_log w = { 0, "" };
    sts_rlog *r;
    char *big;

    (void)state;
    assert_int_equal(sts_rlog_new(collect_warning, &w, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (unsigned i = 0; i < 200; i++)
        assert_int_equal(sts_rlog_feed_line(r, bad, strlen(bad), "mail.log", i + 7), STS_RLOG_MALFORMED);
    big = malloc(STS_RLOG_LINE_MAX + 10);
    assert_non_null(big);
    memset(big, 'x', STS_RLOG_LINE_MAX + 10);
    assert_int_equal(sts_rlog_feed_line(r, big, STS_RLOG_LINE_MAX + 1, "mail.log", 300), STS_RLOG_MALFORMED);
    assert_int_equal(sts_rlog_feed_line(r, big, STS_RLOG_LINE_MAX, "mail.log", 301), STS_RLOG_IGNORED);
    free(big);
    if (sts_rlog_get_stats(r)->malformed_lines != 201)
        fail_msg("case malformed_counted: got %llu, want 201",
                 (unsigned long long)sts_rlog_get_stats(r)->malformed_lines);
    if (strncmp(w.first, "mail.log:7: ", 12) != 0)
        fail_msg("case malformed_warning_names_file_line: got '%s', want 'mail.log:7: ...'", w.first);
    if (w.n < 10 || w.n > 60)
        fail_msg("case malformed_warnings_limited: got %u warnings for 201 lines, want 10..60", w.n);
    sts_rlog_free(r);
}

/* More concurrent processes than PIDS_MAX: the least recently seen are
 * forgotten and their open connections counted as dropped. */
static void test_process_cap(void **state)
{
    sts_rlog *r;
    char line[300];

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (unsigned i = 0; i < 5000; i++) {
        (void)snprintf(line, sizeof(line),
                       PF "postfix/smtp[%u]: Verified TLS connection established to mx.a.test[192.0.2.1]:25" TLS_TAIL,
                       i + 1);
        assert_int_equal(sts_rlog_feed_line(r, line, strlen(line), "t", i + 1), STS_RLOG_POSTFIX);
    }
    if (sts_rlog_get_stats(r)->dropped < 900)
        fail_msg("case process_cap: got dropped %llu, want >= 900",
                 (unsigned long long)sts_rlog_get_stats(r)->dropped);
    sts_rlog_free(r);
}

/* A TLS line whose delivery line is missing (a gap in the log) is not
 * tied to a delivery of the same process much later: it is dropped. */
static void test_stale_connection(void **state)
{
    static const char *const lines[] = {
        PF "postfix/smtp[900]: Verified TLS connection established to mx.s.test[192.0.2.99]:25" TLS_TAIL,
        ("Nov 28 14:10:00 mta postfix/smtp[900]: 9A9A9A9A9A: to=<a@s.test>, relay=mx.s.test[192.0.2.99]:25, "
         "delay=1, delays=0/0/0.5/0, dsn=4.0.0, status=deferred (host mx.s.test[192.0.2.99] said: 421 busy "
         "(in reply to MAIL FROM command))"),
    };
    sts_rlog *r;
    const sts_rsession *s;
    const sts_rlog_stats *st;
    size_t n;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(sts_rlog_feed_line(r, lines[i], strlen(lines[i]), "t", i + 1), STS_RLOG_POSTFIX);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    st = sts_rlog_get_stats(r);
    if (n != 0 || st->unfinished != 1 || st->dropped != 0 || st->no_tls_info != 1 ||
        st->tls_lines != 1)
        fail_msg("case stale_connection: got %zu sessions, unfinished %llu, no_tls_info %llu, tls_lines %llu; "
                 "want 0, 1, 1, 1",
                 n, (unsigned long long)st->unfinished, (unsigned long long)st->no_tls_info,
                 (unsigned long long)st->tls_lines);
    sts_rlog_free(r);

    /* A TLS line whose delivery line never comes (the input ends first):
     * its outcome is lost, and counted so. */
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    assert_int_equal(sts_rlog_feed_line(r, lines[0], strlen(lines[0]), "t", 1), STS_RLOG_POSTFIX);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK); /* counted once */
    st = sts_rlog_get_stats(r);
    if (n != 0 || st->unfinished != 1 || st->dropped != 0)
        fail_msg("case connection_pending_at_end: got %zu sessions, unfinished %llu; want 0, 1", n,
                 (unsigned long long)st->unfinished);
    sts_rlog_free(r);
}

/* ------------------------------------------------------------- files */

static const char *const file_lines[] = {
    DEC_ENFORCE("B90DBA84CD4", "good.test", "enf1"),
    PF "postfix/smtp[13417]: Verified TLS connection established to mx1.good.test[192.0.2.10]:25" TLS_TAIL,
    PF "postfix/smtp[13417]: B90DBA84CD4: to=<u1@good.test>, relay=mx1.good.test[192.0.2.10]:25, delay=0.26, "
       "delays=0.02/0.06/0.1/0.07, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as SINKgood0001)",
    PF "postfix/smtp[13418]: BA5C1A84CD6: to=<u1@plain.test>, relay=mx.plain.test[192.0.2.11]:25, delay=0.13, "
       "delays=0.01/0.04/0.08/0, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host "
       "mx.plain.test[192.0.2.11])",
};
#define N_FILE_LINES (sizeof(file_lines) / sizeof(file_lines[0]))

static void make_temp(char *path, size_t sz)
{
    assert_true(unit_mkstemp(path, sz, "test_rlog"));
}

/* Write the file lines plain or gzip'd, with CRLF line ends and no final
 * newline after the last line; cut: cut the gzip stream short. */
static void write_log(const char *path, bool gzip, bool cut)
{
    char text[8192];
    size_t len = 0;

    for (size_t i = 0; i < N_FILE_LINES; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s", file_lines[i],
                                i + 1 < N_FILE_LINES ? "\r\n" : "");
    if (gzip) {
        gzFile g = gzopen(path, "wb");

        assert_non_null(g);
        assert_int_equal(gzwrite(g, text, (unsigned)len), (int)len);
        assert_int_equal(gzclose(g), Z_OK);
        if (cut) {
            FILE *f = fopen(path, "r+b");
            long size;

            assert_non_null(f);
            assert_int_equal(fseek(f, 0, SEEK_END), 0);
            size = ftell(f);
            (void)fclose(f);
            /* Only the 8-byte trailer goes: all the text is still there. */
            assert_int_equal(truncate(path, size - 8), 0);
        }
    } else {
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
}

static void read_and_check(const char *name, const char *path, sts_status want_st, size_t want_n)
{
    sts_rlog *r;
    const sts_rsession *s;
    size_t n;
    sts_why why;
    sts_status st;

    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    why.text[0] = '\0';
    st = sts_rlog_read_file(r, path, &why);
    if (st != want_st)
        fail_msg("case %s: got %s (%s), want %s", name, sts_status_name(st), why.text,
                 sts_status_name(want_st));
    if (st != STS_OK && why.text[0] == '\0')
        fail_msg("case %s: got no reason", name);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    if (n != want_n)
        fail_msg("case %s: got %zu sessions, want %zu", name, n, want_n);
    if (want_n == 2 && (!s[0].has_decision || s[0].tls != STS_RLOG_TLS_VERIFIED ||
                        s[1].tls != STS_RLOG_TLS_NOT_OFFERED))
        fail_msg("case %s: got sessions %s/%d, %s/%d, want joined verified good.test, not-offered "
                 "plain.test",
                 name, s[0].domain, (int)s[0].tls, s[1].domain, (int)s[1].tls);
    if (sts_rlog_get_stats(r)->malformed_lines != 0)
        fail_msg("case %s: got %llu malformed lines, want 0", name,
                 (unsigned long long)sts_rlog_get_stats(r)->malformed_lines);
    sts_rlog_free(r);
}

static void test_files(void **state)
{
    char path[256];

    (void)state;
    make_temp(path, sizeof(path));
    write_log(path, false, false);
    read_and_check("plain_file_crlf_no_final_newline", path, STS_OK, 2);
    write_log(path, true, false);
    read_and_check("gzip_file_by_content", path, STS_OK, 2);
    /* Damaged: the lines before the damage are kept, the read fails. */
    write_log(path, true, true);
    read_and_check("truncated_gzip_permfail", path, STS_PERMFAIL, 2);
    (void)unlink(path);
    read_and_check("missing_file_permfail", path, STS_PERMFAIL, 0);
}

/* A line over STS_RLOG_LINE_MAX in a file is one malformed line; the
 * next line is read normally. */
static void test_file_long_line(void **state)
{
    char path[256];
    FILE *f;
    sts_rlog *r;
    sts_why why;
    const sts_rlog_stats *st;

    (void)state;
    make_temp(path, sizeof(path));
    f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < STS_RLOG_LINE_MAX + 5000; i++)
        (void)fputc('{', f);
    (void)fprintf(f, "\n%s\n", file_lines[3]);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    assert_int_equal(sts_rlog_read_file(r, path, &why), STS_OK);
    st = sts_rlog_get_stats(r);
    if (st->lines != 2 || st->malformed_lines != 1 || st->mta_lines != 1)
        fail_msg("case file_long_line: got lines %llu malformed %llu mta %llu, want 2 1 1",
                 (unsigned long long)st->lines, (unsigned long long)st->malformed_lines,
                 (unsigned long long)st->mta_lines);
    sts_rlog_free(r);
    (void)unlink(path);
}

/* The first time stamp of a file, for reading rotated logs oldest first:
 * plain and gzip'd files, a decision log (none), stdin and a missing file
 * (none). */
static void test_first_time(void **state)
{
    char path[256];
    sts_rlog *r;
    int64_t t = 0;
    FILE *f;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    make_temp(path, sizeof(path));
    write_log(path, false, false);
    if (!sts_rlog_first_time(r, path, &t) || t != T_132559)
        fail_msg("case first_time_plain: got %lld, want %lld", (long long)t, (long long)T_132559);
    t = 0;
    write_log(path, true, false);
    if (!sts_rlog_first_time(r, path, &t) || t != T_132559)
        fail_msg("case first_time_gzip: got %lld, want %lld", (long long)t, (long long)T_132559);
    f = fopen(path, "wb");
    assert_non_null(f);
    (void)fprintf(f, "%s\n", file_lines[0]);
    assert_int_equal(fclose(f), 0);
    if (sts_rlog_first_time(r, path, &t))
        fail_msg("case first_time_decision_log: got a time, want none");
    if (sts_rlog_first_time(r, "-", &t))
        fail_msg("case first_time_stdin: got a time, want none (stdin is not read)");
    (void)unlink(path);
    if (sts_rlog_first_time(r, path, &t))
        fail_msg("case first_time_missing_file: got a time, want none");
    /* Nothing was fed to the reader. */
    if (sts_rlog_get_stats(r)->lines != 0)
        fail_msg("case first_time: got %llu lines read, want 0",
                 (unsigned long long)sts_rlog_get_stats(r)->lines);
    sts_rlog_free(r);
}

#define N_KIND (sizeof(kind_cases) / sizeof(kind_cases[0]))
#define N_SCEN (sizeof(scenarios) / sizeof(scenarios[0]))

/* The decision log's policy record gives the sessions under that policy
 * its text as published; records of unknown kinds are skipped. */
static void test_policy_record(void **state)
{
    static const char *const lines[] = {
        "{\"time\":\"2026-11-28T13:00:00Z\",\"record\":\"policy\",\"domain\":\"Good.test\","
        "\"policy_id\":\"enf1\",\"policy\":\"version: STSv1\\nmode: enforce\\nmx: mx1.good.test\\n"
        "max_age: 86400\\nx-extra: 1\\n\"}",
        "{\"time\":\"2026-11-28T13:00:01Z\",\"record\":\"future\",\"domain\":\"good.test\"}",
        "{\"time\":\"2026-11-28T13:00:02Z\",\"record\":\"policy\",\"domain\":\"good.test\"}",
        DEC_ENFORCE("B90DBA84CD4", "good.test", "enf1"),
        DEC_ENFORCE("B90DBA84CD5", "good.test", "enf2"),
        PF "postfix/smtp[13417]: Verified TLS connection established to "
           "mx1.good.test[192.0.2.10]:25" TLS_TAIL,
        PF "postfix/smtp[13417]: B90DBA84CD4: to=<u1@good.test>, relay=mx1.good.test[192.0.2.10]:25, "
           "delay=0.26, delays=0.02/0.06/0.1/0.07, dsn=2.0.0, status=sent (250 ok)",
        PF "postfix/smtp[13418]: Verified TLS connection established to "
           "mx1.good.test[192.0.2.10]:25" TLS_TAIL,
        PF "postfix/smtp[13418]: B90DBA84CD5: to=<u1@good.test>, relay=mx1.good.test[192.0.2.10]:25, "
           "delay=0.26, delays=0.02/0.06/0.1/0.07, dsn=2.0.0, status=sent (250 ok)",
    };
    static const sts_rlog_line_kind want_kind[] = { STS_RLOG_DECISION, STS_RLOG_IGNORED,
                                                    STS_RLOG_MALFORMED };
    sts_rlog *r;
    const sts_rsession *s;
    size_t n;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        sts_rlog_line_kind k = sts_rlog_feed_line(r, lines[i], strlen(lines[i]), "t", i + 1);

        if (i < 3 && k != want_kind[i])
            fail_msg("line %zu: got kind %d, want %d", i + 1, (int)k, (int)want_kind[i]);
    }
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    if (n != 2)
        fail_msg("got %zu sessions, want 2", n);
    for (size_t i = 0; i < n; i++) {
        bool first = strcmp(s[i].queue_id, "B90DBA84CD4") == 0;

        if (first && (s[i].policy_text == NULL ||
                      strcmp(s[i].policy_text, "version: STSv1\nmode: enforce\nmx: mx1.good.test\n"
                                               "max_age: 86400\nx-extra: 1\n") != 0))
            fail_msg("enf1: got policy text %s, want the record's", str_or(s[i].policy_text));
        if (!first && s[i].policy_text != NULL)
            fail_msg("enf2: got policy text %s, want none (no record)", s[i].policy_text);
    }
    sts_rlog_free(r);
}

/* RFC 8460 3: the delivery of our own report mail (known by the Message-ID
 * rmail.c writes) is not a session; another message id is. */
static void test_own_reports_left_out(void **state)
{
    static const char *const lines[] = {
        PF "postfix/cleanup[50]: 3F1A2B3C4D: message-id=<tlsrpt.0123456789abcdef0123456789abcdef."
           "1795873700.0@sender.test>",
        PF "postfix/cleanup[50]: 3F1A2B3C4E: message-id=<tlsrpt.0123456789abcdef0123456789abcdef."
           "1795873700.0@other.test>",
        PF "postfix/smtp[60]: Verified TLS connection established to mx.rua.test[192.0.2.20]:25"
           TLS_TAIL,
        PF "postfix/smtp[60]: 3F1A2B3C4D: to=<tlsrpt@rua.test>, relay=mx.rua.test[192.0.2.20]:25, "
           "delay=0.2, delays=0/0/0.1/0.1, dsn=2.0.0, status=sent (250 ok)",
        PF "postfix/smtp[61]: Verified TLS connection established to mx.rua.test[192.0.2.20]:25"
           TLS_TAIL,
        PF "postfix/smtp[61]: 3F1A2B3C4E: to=<tlsrpt@rua.test>, relay=mx.rua.test[192.0.2.20]:25, "
           "delay=0.2, delays=0/0/0.1/0.1, dsn=2.0.0, status=sent (250 ok)",
        SM "sm-mta[70]: 6ASDolB8000200: from=<postmaster@sender.test>, size=900, class=0, nrcpts=1, "
           "msgid=<tlsrpt.00000000000000000000000000000000.1.1@sender.test>, proto=ESMTP, "
           "daemon=MTA, relay=localhost [127.0.0.1]",
        SM "sm-mta[71]: STARTTLS=client, relay=mx.rua.test., version=TLSv1.3, verify=OK, "
           "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
        SM "sm-mta[71]: 6ASDolB8000200: to=<tlsrpt@rua.test>, delay=00:00:01, xdelay=00:00:01, "
           "mailer=esmtp, pri=30000, relay=mx.rua.test. [192.0.2.20], dsn=2.0.0, stat=Sent (ok)",
    };
    sts_rlog *r;
    const sts_rsession *s;
    size_t n;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    sts_rlog_set_own_reports(r, "sender.test");
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        (void)sts_rlog_feed_line(r, lines[i], strlen(lines[i]), "t", i + 1);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    if (n != 1 || strcmp(s[0].queue_id, "3F1A2B3C4E") != 0)
        fail_msg("got %zu sessions (first %s), want only 3F1A2B3C4E", n, n > 0 ? s[0].queue_id : "-");
    if (sts_rlog_get_stats(r)->own_reports != 2)
        fail_msg("own_reports: got %llu, want 2",
                 (unsigned long long)sts_rlog_get_stats(r)->own_reports);
    sts_rlog_free(r);
}

static void write_text(const char *path, const char *const *lines, size_t n)
{
    FILE *fh = fopen(path, "w");

    assert_non_null(fh);
    for (size_t i = 0; i < n; i++)
        assert_true(fputs(lines[i], fh) >= 0 && fputc('\n', fh) != EOF);
    assert_int_equal(fclose(fh), 0);
}

typedef struct collected {
    size_t n, joined;
    char domains[8][STS_DOMAIN_MAX + 1];
} collected;

static void collect(void *arg, const sts_rsession *s)
{
    collected *c = arg;

    if (c->n < 8)
        (void)snprintf(c->domains[c->n], sizeof(c->domains[0]), "%s", s->domain);
    c->n++;
    if (s->has_decision)
        c->joined++;
}

/* Streaming: the decision log and the mail log given in either order are
 * merged by time and give the sessions array mode gives; a decision is
 * kept DEC_KEEP (6 h) of log time, so an attempt 8 h later is unjoined
 * there (array mode, which keeps everything, joins it). */
static void test_streaming_merge_and_window(void **state)
{
    static const char *const decisions[] = {
        "{\"time\":\"2026-11-28T05:40:00Z\",\"queue_id\":\"0LD0000001\",\"domain\":\"late.test\","
        "\"result\":\"policy\",\"mode\":\"testing\",\"policy_id\":\"l1\",\"action\":\"accept\","
        "\"reason\":\"testing policy\",\"mx\":\"mx.late.test\",\"max_age\":86400}",
        DEC_ENFORCE("B90DBA84CD4", "good.test", "enf1"),
    };
    static const char *const mail[] = {
        PF "postfix/smtp[13417]: Verified TLS connection established to "
           "mx1.good.test[192.0.2.10]:25" TLS_TAIL,
        PF "postfix/smtp[13417]: B90DBA84CD4: to=<u1@good.test>, relay=mx1.good.test[192.0.2.10]:25, "
           "delay=0.26, delays=0.02/0.06/0.1/0.07, dsn=2.0.0, status=sent (250 ok)",
        PF2 "postfix/smtp[13418]: Trusted TLS connection established to "
            "mx.late.test[192.0.2.11]:25" TLS_TAIL,
        PF2 "postfix/smtp[13418]: 0LD0000001: to=<u1@late.test>, relay=mx.late.test[192.0.2.11]:25, "
            "delay=8h, delays=0.02/0.06/0.1/0.07, dsn=2.0.0, status=sent (250 ok)",
    };
    char dpath[256], mpath[256];
    const char *paths[2];
    sts_why why = { "" };

    (void)state;
    make_temp(dpath, sizeof(dpath));
    make_temp(mpath, sizeof(mpath));
    write_text(dpath, decisions, 2);
    write_text(mpath, mail, 4);
    for (int order = 0; order < 2; order++) {
        collected c;
        sts_rlog *r;
        const sts_rsession *s;
        size_t n;

        memset(&c, 0, sizeof(c));
        paths[0] = order == 0 ? mpath : dpath;
        paths[1] = order == 0 ? dpath : mpath;
        assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
        sts_rlog_set_now(r, NOW);
        sts_rlog_set_sink(r, collect, &c);
        assert_int_equal(sts_rlog_read_files(r, paths, 2, &why), STS_OK);
        assert_int_equal(sts_rlog_finish(r), STS_OK);
        if (c.n != 2 || c.joined != 1 || sts_rlog_get_stats(r)->unjoined_attempts != 1 ||
            sts_rlog_get_stats(r)->unjoined_decisions != 1)
            fail_msg("streaming, order %d: got %zu sessions (%zu joined, unjoined attempts %llu, "
                     "decisions %llu), want 2 (1), 1, 1", order, c.n, c.joined,
                     (unsigned long long)sts_rlog_get_stats(r)->unjoined_attempts,
                     (unsigned long long)sts_rlog_get_stats(r)->unjoined_decisions);
        assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
        assert_int_equal(n, 0); /* streaming keeps nothing */
        sts_rlog_free(r);

        assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
        sts_rlog_set_now(r, NOW);
        assert_int_equal(sts_rlog_read_files(r, paths, 2, &why), STS_OK);
        assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
        if (n != 2 || !s[0].has_decision || !s[1].has_decision)
            fail_msg("array mode, order %d: got %zu sessions, want 2, both joined", order, n);
        sts_rlog_free(r);
    }
    (void)unlink(dpath);
    (void)unlink(mpath);
}

int main(void)
{
    struct CMUnitTest tests[N_KIND + N_SCEN + 13];
    size_t n = 0;

    /* BSD syslog stamps are local time: pin it. */
    (void)setenv("TZ", "UTC", 1);
    tzset();
    for (size_t i = 0; i < N_KIND; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_kind_case, (void *)&kind_cases[i]);
        tests[n++].name = kind_cases[i].name;
    }
    for (size_t i = 0; i < N_SCEN; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_scenario, (void *)&scenarios[i]);
        tests[n++].name = scenarios[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_decision_fields);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_mx_truncated);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_time_stamps);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_window_and_order);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_malformed_warned_and_limited);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_process_cap);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_stale_connection);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_files);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_file_long_line);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_first_time);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_policy_record);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_own_reports_left_out);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_streaming_merge_and_window);
    return UNIT_RUN("rlog", tests, n);
}
