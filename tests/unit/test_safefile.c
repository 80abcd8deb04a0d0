/*
 * test_safefile.c - opening the files a root-started daemon writes
 * (src/base/safefile.c): created with exactly their mode and handed to the
 * service user only when made now; a symbolic link, a hard link, a FIFO,
 * a directory, a file of another user refused; as root, the directory
 * rules (who may write the file's directory and the ones above it, whose
 * symbolic links are followed).  Each case builds its files in a fresh
 * temporary directory; the root-only cases skip when not run as root.
 * Table-driven; a failure prints "case NAME: got X, want Y".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit_run.h"

#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "unit_tmp.h"

#include "base/safefile.h"

#define OTHER_UID 12345 /* a uid that is neither root nor the owner */
#define KEEP "keep\n"   /* content of a file that must stay as it is */

typedef enum want_owner { OWN_ANY, OWN_ROOT, OWN_OWNER } want_owner;

/* Build the case's files under d; return the path to open (relative to d),
 * or NULL to skip the case on this system. */
typedef const char *(*prep_fn)(const char *d, const sts_safefile_owner *own);

typedef struct sf_case {
    const char *name;
    bool root_only;
    prep_fn prep;
    sts_safefile_how how;
    bool relative;         /* open the path relative to d (after chdir) */
    sts_status want;
    const char *want_why;  /* a substring of the reason; NULL when want == STS_OK */
    const char *want_text; /* the file after writing "new\n"; NULL: not checked */
    mode_t want_mode;      /* 0: not checked */
    want_owner want_owner;
    const char *untouched; /* a file (relative to d) that must still hold KEEP */
} sf_case;

/* ------------------------------------------------------------ building files */

static void at(char *buf, size_t sz, const char *d, const char *rel)
{
    assert_true((size_t)snprintf(buf, sz, "%s/%s", d, rel) < sz);
}

static void mk_dir(const char *d, const char *rel, mode_t mode, uid_t uid, gid_t gid)
{
    char p[1024];

    at(p, sizeof(p), d, rel);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chown(p, uid, gid), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static void mk_file(const char *d, const char *rel, const char *text, uid_t uid, mode_t mode)
{
    char p[1024];
    int fd;

    at(p, sizeof(p), d, rel);
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(p, uid, uid), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static void mk_link(const char *d, const char *rel, const char *target, uid_t uid)
{
    char p[1024];

    at(p, sizeof(p), d, rel);
    assert_int_equal(symlink(target, p), 0);
    if (geteuid() == 0)
        assert_int_equal(lchown(p, uid, uid), 0);
}

/* ------------------------------------------------------------ the cases' files */

static const char *p_nothing(const char *d, const sts_safefile_owner *own)
{
    (void)d, (void)own;
    return "f";
}

static const char *p_old_root_file(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_file(d, "f", "old\n", 0, 0600);
    return "f";
}

static const char *p_old_owner_file(const char *d, const sts_safefile_owner *own)
{
    mk_file(d, "f", "old\n", own->uid, 0644);
    return "f";
}

static const char *p_old_other_file(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_file(d, "f", "old\n", OTHER_UID, 0644);
    return "f";
}

static const char *p_symlink(const char *d, const sts_safefile_owner *own)
{
    mk_file(d, "target", KEEP, 0, 0600);
    mk_link(d, "f", "target", own->uid);
    return "f";
}

static const char *p_dangling(const char *d, const sts_safefile_owner *own)
{
    mk_link(d, "f", "nowhere", own->uid);
    return "f";
}

static const char *p_fifo(const char *d, const sts_safefile_owner *own)
{
    char p[1024];

    (void)own;
    at(p, sizeof(p), d, "f");
    assert_int_equal(mkfifo(p, 0666), 0);
    return "f";
}

static const char *p_hardlink(const char *d, const sts_safefile_owner *own)
{
    char t[1024], p[1024];

    (void)own;
    mk_file(d, "target", KEEP, 0, 0600);
    at(t, sizeof(t), d, "target");
    at(p, sizeof(p), d, "f");
    assert_int_equal(link(t, p), 0);
    return "f";
}

static const char *p_directory(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_dir(d, "f", 0755, geteuid(), getegid());
    return "f";
}

static const char *p_dir_mode_0777(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_dir(d, "d", 0777, 0, 0);
    return "d/f";
}

static const char *p_dir_mode_1777(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_dir(d, "d", 01777, 0, 0);
    return "d/f";
}

static const char *p_above_0777(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_dir(d, "a", 0777, 0, 0);
    mk_dir(d, "a/b", 0755, 0, 0);
    return "a/b/f";
}

static const char *p_above_1777(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_dir(d, "a", 01777, 0, 0);
    mk_dir(d, "a/b", 0755, 0, 0);
    return "a/b/f";
}

static const char *p_dir_of_owner(const char *d, const sts_safefile_owner *own)
{
    mk_dir(d, "d", 0750, own->uid, own->gid);
    return "d/f";
}

static const char *p_above_of_owner(const char *d, const sts_safefile_owner *own)
{
    mk_dir(d, "a", 0755, own->uid, own->gid);
    mk_dir(d, "a/b", 0755, own->uid, own->gid);
    return "a/b/f";
}

static const char *p_above_group_of_owner(const char *d, const sts_safefile_owner *own)
{
    mk_dir(d, "a", 0775, 0, own->gid);
    mk_dir(d, "a/b", 0755, 0, 0);
    return "a/b/f";
}

static const char *p_dir_of_other(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_dir(d, "d", 0755, OTHER_UID, OTHER_UID);
    return "d/f";
}

/* A group with a member that is neither root nor the owner: the primary
 * group of some other account. */
static const char *p_dir_group_other_member(const char *d, const sts_safefile_owner *own)
{
    struct passwd *pw;
    gid_t gid = 0;
    bool found = false;

    setpwent();
    while (!found && (pw = getpwent()) != NULL)
        if (pw->pw_uid != 0 && pw->pw_uid != own->uid && pw->pw_gid != own->gid &&
            pw->pw_gid != 0) {
            gid = pw->pw_gid;
            found = true;
        }
    endpwent();
    if (!found)
        return NULL;
    mk_dir(d, "d", 0770, 0, gid);
    return "d/f";
}

static const char *p_root_link_in_path(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_dir(d, "real", 0755, 0, 0);
    mk_link(d, "link", "real", 0);
    return "link/f";
}

static const char *p_owner_link_in_path(const char *d, const sts_safefile_owner *own)
{
    mk_dir(d, "real", 0755, own->uid, own->gid);
    mk_link(d, "link", "real", own->uid);
    return "link/f";
}

static const char *p_dotdot(const char *d, const sts_safefile_owner *own)
{
    (void)own;
    mk_dir(d, "a", 0755, geteuid(), getegid());
    return "a/../f";
}

/* ------------------------------------------------------------ the table */

#define A STS_SAFEFILE_APPEND
#define R STS_SAFEFILE_REPLACE
#define OK STS_OK, NULL
#define NO(why) STS_PERMFAIL, why, NULL, 0, OWN_ANY

static const sf_case cases[] = {
    /* The file (any caller). */
    { "created_with_exactly_its_mode_whatever_the_umask", false, p_nothing, A, false, OK,
      "new\n", 0640, OWN_ANY, NULL },
    { "relative_path_taken_from_the_working_directory", false, p_nothing, A, true, OK, "new\n",
      0640, OWN_ANY, NULL },
    { "dotdot_in_the_path_resolved", false, p_dotdot, A, false, OK, "new\n", 0640, OWN_ANY,
      NULL },
    { "append_keeps_what_was_there", false, p_old_owner_file, A, false, OK, "old\nnew\n", 0644,
      OWN_ANY, NULL },
    { "replace_empties_it_first", false, p_old_owner_file, R, false, OK, "new\n", 0644, OWN_ANY,
      NULL },
    { "symbolic_link_refused_target_untouched", false, p_symlink, A, false,
      NO("is a symbolic link"), "target" },
    { "dangling_symbolic_link_refused", false, p_dangling, A, false, NO("is a symbolic link"),
      NULL },
    { "fifo_refused_without_waiting_for_a_reader", false, p_fifo, A, false,
      NO("is not a regular file"), NULL },
    { "hard_link_refused_target_untouched", false, p_hardlink, R, false, NO("has 2 hard links"),
      "target" },
    { "directory_refused", false, p_directory, A, false, NO("Is a directory"), NULL },
    /* Ownership, as root. */
    { "created_file_handed_to_the_owner", true, p_nothing, A, false, OK, "new\n", 0640,
      OWN_OWNER, NULL },
    { "existing_root_file_keeps_its_owner_and_mode", true, p_old_root_file, A, false, OK,
      "old\nnew\n", 0600, OWN_ROOT, NULL },
    { "existing_file_of_another_user_refused", true, p_old_other_file, A, false,
      NO("belongs to uid 12345, neither root nor UserID"), NULL },
    /* The file's directory, as root. */
    { "directory_of_the_owner_accepted", true, p_dir_of_owner, A, false, OK, "new\n", 0640,
      OWN_OWNER, NULL },
    { "world_writable_directory_refused", true, p_dir_mode_0777, A, false,
      NO("is writable by everyone (mode 0777)"), NULL },
    { "world_writable_sticky_directory_refused", true, p_dir_mode_1777, A, false,
      NO("is writable by everyone (mode 1777)"), NULL },
    { "directory_of_another_user_refused", true, p_dir_of_other, A, false,
      NO("belongs to uid 12345, neither root nor UserID"), NULL },
    { "directory_writable_by_a_group_with_another_member_refused", true,
      p_dir_group_other_member, A, false, NO("which has other members"), NULL },
    /* The directories above it, as root. */
    { "world_writable_directory_above_refused", true, p_above_0777, A, false,
      NO("above it is writable by everyone (mode 0777)"), NULL },
    { "sticky_world_writable_directory_above_accepted", true, p_above_1777, A, false, OK,
      "new\n", 0640, OWN_OWNER, NULL },
    { "directory_above_of_the_owner_refused", true, p_above_of_owner, A, false,
      NO("above it belongs to UserID"), NULL },
    { "directory_above_writable_by_the_owners_group_refused", true, p_above_group_of_owner, A,
      false, NO("above it is writable by group"), NULL },
    { "root_symbolic_link_on_the_way_followed", true, p_root_link_in_path, A, false, OK, "new\n",
      0640, OWN_OWNER, NULL },
    { "owners_symbolic_link_on_the_way_refused", true, p_owner_link_in_path, A, false,
      NO("is a symbolic link of uid"), NULL },
};

#undef A
#undef R
#undef OK
#undef NO

/* ------------------------------------------------------------ running a case */

static sts_safefile_owner test_owner(void)
{
    sts_safefile_owner own = { geteuid(), getegid() };
    struct passwd *pw;

    if (geteuid() == 0 && (pw = getpwnam("nobody")) != NULL) {
        own.uid = pw->pw_uid;
        own.gid = pw->pw_gid;
    }
    return own;
}

static void check_file(const sf_case *tc, const char *d, const char *rel,
                       const sts_safefile_owner *own)
{
    char p[1024], text[64];
    struct stat sb;
    ssize_t n;
    int fd;

    at(p, sizeof(p), d, rel);
    fd = open(p, O_RDONLY | O_NOFOLLOW);
    assert_true(fd >= 0);
    n = read(fd, text, sizeof(text) - 1);
    assert_true(n >= 0 && fstat(fd, &sb) == 0);
    (void)close(fd);
    text[n] = '\0';
    if (tc->want_text != NULL && strcmp(text, tc->want_text) != 0)
        fail_msg("case %s: got content '%s', want '%s'", tc->name, text, tc->want_text);
    if (tc->want_mode != 0 && (sb.st_mode & 07777) != tc->want_mode)
        fail_msg("case %s: got mode %04o, want %04o", tc->name, (unsigned)(sb.st_mode & 07777),
                 (unsigned)tc->want_mode);
    if ((tc->want_owner == OWN_ROOT && sb.st_uid != 0) ||
        (tc->want_owner == OWN_OWNER && (sb.st_uid != own->uid || sb.st_gid != own->gid)))
        fail_msg("case %s: got owner %u:%u, want %s", tc->name, (unsigned)sb.st_uid,
                 (unsigned)sb.st_gid, tc->want_owner == OWN_ROOT ? "root" : "the owner");
}

static void run_case(void **state)
{
    const sf_case *tc = *state;
    sts_safefile_owner own = test_owner();
    char d[512], p[1024], cwd[1024];
    const char *rel;
    sts_why why = { "" };
    sts_status st;
    mode_t mask;
    int fd = -1;

    if (tc->root_only && geteuid() != 0)
        skip();
    assert_true(unit_mkdtemp(d, sizeof(d), "test_safefile"));
    rel = tc->prep(d, &own);
    if (rel == NULL) {
        (void)unit_rmtree(d);
        skip();
    }
    at(p, sizeof(p), d, rel);
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    if (tc->relative)
        assert_int_equal(chdir(d), 0);
    mask = umask(0077); /* the mode asked for wins over the umask */
    st = sts_safefile_open(tc->relative ? rel : p, tc->how, 0640, &own, &fd, &why);
    (void)umask(mask);
    assert_int_equal(chdir(cwd), 0);
    if (st != tc->want)
        fail_msg("case %s: got %s (%s), want %s", tc->name, sts_status_name(st), why.text,
                 sts_status_name(tc->want));
    if (tc->want_why != NULL && strstr(why.text, tc->want_why) == NULL)
        fail_msg("case %s: got reason '%s', want one with '%s'", tc->name, why.text,
                 tc->want_why);
    if (st == STS_OK) {
        assert_int_equal(write(fd, "new\n", 4), 4);
        assert_int_equal(close(fd), 0);
        check_file(tc, d, rel, &own);
    } else if (fd != -1) {
        fail_msg("case %s: got fd %d on failure, want -1", tc->name, fd);
    }
    if (tc->untouched != NULL) {
        sf_case keep = { tc->name, false, NULL, 0, false, STS_OK, NULL, KEEP, 0600,
                         geteuid() == 0 ? OWN_ROOT : OWN_ANY, NULL };

        check_file(&keep, d, tc->untouched, &own);
    }
    (void)unit_rmtree(d);
}

UNIT_MAIN_CASES("safefile", cases, run_case)
