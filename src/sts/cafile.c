/*
 * cafile.c - checking a CA bundle the way the fetches will use it (see
 * cafile.h): libcurl hands CURLOPT_CAINFO to OpenSSL, which reads it as
 * X509_STORE_load_file does here.  Only the certificates count: a file of
 * CRLs alone would verify nothing.
 */
#include "sts/cafile.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

sts_status sts_cafile_check(const char *path, sts_why *why)
{
    X509_STORE *store = X509_STORE_new();
    sts_status st = STS_PERMFAIL;
    size_t ncerts = 0;
    char reason[256] = "";

    if (store == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    ERR_clear_error();
    if (X509_STORE_load_file(store, path) != 1) {
        unsigned long e = ERR_peek_last_error();

        if (e != 0)
            ERR_error_string_n(e, reason, sizeof(reason));
        sts_why_set(why, "CA file %s holds no usable PEM certificate%s%s", path,
                    reason[0] != '\0' ? ": " : "", reason);
        goto done;
    }
    {
        STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);

        for (int i = 0; objs != NULL && i < sk_X509_OBJECT_num(objs); i++)
            if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i)) == X509_LU_X509)
                ncerts++;
    }
    if (ncerts == 0) {
        sts_why_set(why, "CA file %s holds no certificate", path);
        goto done;
    }
    st = STS_OK;
done:
    ERR_clear_error();
    X509_STORE_free(store);
    return st;
}
