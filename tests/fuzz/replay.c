/*
 * replay.c - run a fuzz target's LLVMFuzzerTestOneInput() over saved
 * inputs without libFuzzer, so `make check` replays tests/corpus/ with
 * the sanitizers of an ordinary build.
 *
 * Usage: replay_TARGET PATH...  where each PATH is a file or a directory
 * (every regular file in it, in name order, not recursing).  Each input is
 * read whole up to REPLAY_MAX bytes (longer files are cut there, as
 * libFuzzer's -max_len would).  Prints "replayed N inputs"; exits 0, or 1
 * if a path cannot be read.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_MAX (1024u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf, *exact;
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    buf = malloc(REPLAY_MAX);
    if (buf == NULL) {
        fclose(f);
        fprintf(stderr, "replay: out of memory\n");
        return -1;
    }
    n = fread(buf, 1, REPLAY_MAX, f);
    if (ferror(f)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    /* An exact-size copy, so that AddressSanitizer sees any over-read. */
    exact = malloc(n > 0 ? n : 1);
    if (exact == NULL) {
        free(buf);
        fprintf(stderr, "replay: out of memory\n");
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    (void)LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int replay_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
        struct stat st;
        char *path;

        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
            continue;
        path = malloc(len);
        if (path == NULL) {
            rc = -1;
            break;
        }
        (void)snprintf(path, len, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap != 0 ? cap * 2 : 64;
            char **nn = ncap <= SIZE_MAX / sizeof(*nn) ? realloc(names, ncap * sizeof(*nn)) : NULL;

            if (nn == NULL) {
                free(path);
                rc = -1;
                break;
            }
            names = nn;
            cap = ncap;
        }
        names[n++] = path;
    }
    closedir(d);
    if (rc != 0)
        fprintf(stderr, "replay: %s: out of memory\n", dir);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (replay_file(names[i]) != 0)
            rc = -1;
        else
            (*count)++;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int rc = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
        return 64;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0)
                rc = 1;
        } else if (replay_file(argv[i]) != 0) {
            rc = 1;
        } else {
            count++;
        }
    }
    printf("replayed %zu inputs\n", count);
    return rc;
}
