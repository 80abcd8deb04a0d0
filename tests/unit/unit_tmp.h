/*
 * unit_tmp.h - temporary files and directories for the unit tests, under
 * $TMPDIR (else /tmp), named after the test: "<base>/<name>.XXXXXX" is the
 * mkstemp(3)/mkdtemp(3) template.  Header-only: each test program
 * includes it once.
 */
#ifndef UNIT_TMP_H
#define UNIT_TMP_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline const char *unit_tmp_base(void)
{
    const char *base = getenv("TMPDIR");

    return base != NULL && *base != '\0' ? base : "/tmp";
}

/* A new empty directory; its path in buf.  False if it cannot be made. */
static inline bool unit_mkdtemp(char *buf, size_t sz, const char *name)
{
    int n = snprintf(buf, sz, "%s/%s.XXXXXX", unit_tmp_base(), name);

    return n > 0 && (size_t)n < sz && mkdtemp(buf) != NULL;
}

/* A new empty file, closed; its path in buf.  False if it cannot be made. */
static inline bool unit_mkstemp(char *buf, size_t sz, const char *name)
{
    int n = snprintf(buf, sz, "%s/%s.XXXXXX", unit_tmp_base(), name);
    int fd;

    if (n <= 0 || (size_t)n >= sz || (fd = mkstemp(buf)) < 0)
        return false;
    return close(fd) == 0;
}

/* Remove dir and everything below it (no symlinks followed); 0 or -1. */
static inline int unit_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        struct stat sb;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= sizeof(p))
            continue; /* never made by a test: names stay short */
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            (void)unit_rmtree(p);
        else
            (void)unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

#endif
