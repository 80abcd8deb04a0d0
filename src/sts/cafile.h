/*
 * cafile.h - is a CA bundle usable for the policy fetches (RFC 8461 3.3:
 * the policy host's certificate must chain to a trusted root)?  Checked
 * when the configuration is read, so that `mtasts-milter -n`, the start
 * and a reload refuse a CAFile that holds no certificate, instead of every
 * fetch failing later and every domain silently going without MTA-STS.
 */
#ifndef STS_CAFILE_H
#define STS_CAFILE_H

#include "base/status.h"

/* STS_OK when path is a PEM file from which OpenSSL loads at least one
 * certificate; else STS_PERMFAIL with the file's name and OpenSSL's
 * reason in why (STS_NOMEM when out of memory). */
sts_status sts_cafile_check(const char *path, sts_why *why) STS_MUST_CHECK;

#endif
