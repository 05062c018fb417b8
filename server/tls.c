#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "log.h"
#include "util.h"

enum { CERT, KEY, CLIENT_CA, NFILES };

static const char *const setting_names[NFILES] = {"tls-cert-file", "tls-key-file",
                                                  "tls-client-ca-file"};

/* What stat() said about one file; two equal signatures mean "unchanged". */
struct file_sig {
    int err; /* errno of a failed stat, else 0 */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

/* The PEM texts of one checked set, plus what is worth logging about it. */
struct pem_set {
    char *text[NFILES];    /* text[CLIENT_CA] NULL without a client CA */
    char fingerprint[17];  /* first 8 bytes of the leaf's SHA-256, hex */
    char not_after[64];
    bool expired;
};

/* Why a set of files was refused. */
struct problem {
    int file; /* CERT, KEY or CLIENT_CA */
    char reason[256];
};

struct eb_tls {
    char *path[NFILES]; /* path[CLIENT_CA] NULL without a client CA */

    pthread_mutex_t mu;
    /* Built at start; handed to gRPC by the first fetch, which happens
     * while the port is added. */
    grpc_ssl_server_certificate_config *initial;
    int64_t checked_us;              /* last look at the files */
    struct file_sig current[NFILES]; /* the set gRPC is serving */
    struct file_sig refused[NFILES]; /* the last set that failed to load */
    bool have_refused;
};

static void stat_all(const eb_tls *t, struct file_sig sig[NFILES])
{
    memset(sig, 0, sizeof(struct file_sig) * NFILES);
    for (int i = 0; i < NFILES; i++) {
        struct stat st;
        if (!t->path[i])
            continue;
        if (stat(t->path[i], &st) != 0) {
            sig[i].err = errno;
            continue;
        }
        sig[i].dev = st.st_dev;
        sig[i].ino = st.st_ino;
        sig[i].size = st.st_size;
        sig[i].mtime = st.st_mtim;
        sig[i].ctime = st.st_ctim;
    }
}

static bool sigs_equal(const struct file_sig a[NFILES], const struct file_sig b[NFILES])
{
    for (int i = 0; i < NFILES; i++)
        if (a[i].err != b[i].err || a[i].dev != b[i].dev || a[i].ino != b[i].ino ||
            a[i].size != b[i].size || a[i].mtime.tv_sec != b[i].mtime.tv_sec ||
            a[i].mtime.tv_nsec != b[i].mtime.tv_nsec || a[i].ctime.tv_sec != b[i].ctime.tv_sec ||
            a[i].ctime.tv_nsec != b[i].ctime.tv_nsec)
            return false;
    return true;
}

/* Frees a set; the key text is wiped first. */
static void pem_set_clear(struct pem_set *s)
{
    for (int i = 0; i < NFILES; i++) {
        if (s->text[i] && i == KEY)
            OPENSSL_cleanse(s->text[i], strlen(s->text[i]));
        free(s->text[i]);
        s->text[i] = NULL;
    }
}

/* Reads file i of t into a new NUL-terminated string. Returns false and
 * fills p when it cannot be read, is larger than EB_TLS_MAX_FILE_BYTES or
 * holds a NUL byte. */
static bool read_file(const eb_tls *t, int i, char **out, struct problem *p)
{
    FILE *f = fopen(t->path[i], "rb");
    char *buf = NULL;
    size_t len = 0, got;
    bool ok = false;

    p->file = i;
    if (!f) {
        snprintf(p->reason, sizeof p->reason, "cannot read '%.128s': %s", t->path[i],
                 strerror(errno));
        return false;
    }
    /* Read up to one byte past the limit to tell "too large" from "at it". */
    buf = eb_malloc(EB_TLS_MAX_FILE_BYTES + 2);
    while ((got = fread(buf + len, 1, EB_TLS_MAX_FILE_BYTES + 1 - len, f)) > 0)
        len += got;
    if (ferror(f)) {
        snprintf(p->reason, sizeof p->reason, "cannot read '%.128s': %s", t->path[i],
                 strerror(errno));
        goto out;
    }
    if (len > EB_TLS_MAX_FILE_BYTES) {
        snprintf(p->reason, sizeof p->reason, "'%.128s' is larger than %d bytes", t->path[i],
                 EB_TLS_MAX_FILE_BYTES);
        goto out;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        snprintf(p->reason, sizeof p->reason, "'%.128s' is not a PEM file", t->path[i]);
        goto out;
    }
    ok = true;
out:
    fclose(f);
    if (ok) {
        *out = eb_realloc(buf, len + 1);
    } else {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    return ok;
}

/* A key protected by a passphrase is refused rather than prompted for. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Checks the PEM texts of s: a certificate, a private key that belongs to
 * it, and at least one CA certificate when a client CA is configured.
 * Fills s's fingerprint and expiry. Returns false and fills p otherwise. */
static bool check_set(const eb_tls *t, struct pem_set *s, struct problem *p)
{
    BIO *bio = NULL;
    X509 *leaf = NULL, *ca = NULL;
    EVP_PKEY *key = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    bool ok = false;

    bio = BIO_new_mem_buf(s->text[CERT], -1);
    leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!leaf) {
        p->file = CERT;
        snprintf(p->reason, sizeof p->reason, "no PEM certificate in '%.128s'",
                 t->path[CERT]);
        goto out;
    }
    bio = BIO_new_mem_buf(s->text[KEY], -1);
    key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (!key) {
        p->file = KEY;
        snprintf(p->reason, sizeof p->reason,
                 "no unencrypted PEM private key in '%.128s'", t->path[KEY]);
        goto out;
    }
    if (X509_check_private_key(leaf, key) != 1) {
        p->file = KEY;
        snprintf(p->reason, sizeof p->reason,
                 "the key in '%.128s' does not belong to the certificate in tls-cert-file",
                 t->path[KEY]);
        goto out;
    }
    if (s->text[CLIENT_CA]) {
        bio = BIO_new_mem_buf(s->text[CLIENT_CA], -1);
        ca = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!ca) {
            p->file = CLIENT_CA;
            snprintf(p->reason, sizeof p->reason, "no PEM certificate in '%.128s'",
                     t->path[CLIENT_CA]);
            goto out;
        }
    }
    if (X509_digest(leaf, EVP_sha256(), md, &mdlen) == 1 && mdlen >= 8)
        for (int i = 0; i < 8; i++)
            snprintf(s->fingerprint + 2 * i, 3, "%02x", md[i]);
    bio = BIO_new(BIO_s_mem());
    if (bio && ASN1_TIME_print(bio, X509_get0_notAfter(leaf)) == 1) {
        int n = BIO_read(bio, s->not_after, (int)sizeof s->not_after - 1);
        s->not_after[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
    s->expired = X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0;
    ok = true;
out:
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(key);
    /* The fetcher runs on gRPC's threads: leave no error in their OpenSSL
     * error queue for its own TLS code to trip over. */
    ERR_clear_error();
    return ok;
}

/* Reads and checks every file of t into s. Returns false and fills p. */
static bool load_set(const eb_tls *t, struct pem_set *s, struct problem *p)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < NFILES; i++)
        if (t->path[i] && !read_file(t, i, &s->text[i], p))
            goto fail;
    if (!check_set(t, s, p))
        goto fail;
    return true;
fail:
    pem_set_clear(s);
    return false;
}

/* Returns a gRPC certificate config holding copies of s's texts.
 *
 * gRPC 1.51 asserts (and aborts) when a config from the fetcher has no
 * client root certificates, even when client certificates are not
 * requested. Without a client CA the server's own chain stands in: with
 * GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE the server sends no certificate
 * request, so these roots are never used nor shown to clients. */
static grpc_ssl_server_certificate_config *config_of(const struct pem_set *s)
{
    grpc_ssl_pem_key_cert_pair pair = {.private_key = s->text[KEY],
                                       .cert_chain = s->text[CERT]};
    const char *roots = s->text[CLIENT_CA] ? s->text[CLIENT_CA] : s->text[CERT];

    return grpc_ssl_server_certificate_config_create(roots, &pair, 1);
}

static void log_loaded(const char *what, const struct pem_set *s)
{
    eb_log_info("msg=\"%s\" sha256_prefix=%s not_after=\"%s\" client_certificates=%s", what,
                s->fingerprint, s->not_after, s->text[CLIENT_CA] ? "required" : "not_requested");
    if (s->expired)
        eb_log_warn("msg=\"the TLS certificate has expired; clients will refuse it\" "
                    "not_after=\"%s\"",
                    s->not_after);
}

/* gRPC's certificate config fetcher: see the file comment of tls.h. */
static grpc_ssl_certificate_config_reload_status fetch(void *arg,
                                                       grpc_ssl_server_certificate_config **config)
{
    eb_tls *t = arg;
    grpc_ssl_certificate_config_reload_status rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    struct file_sig sig[NFILES];
    struct pem_set set;
    struct problem p;
    int64_t now;

    pthread_mutex_lock(&t->mu);
    if (t->initial) {
        *config = t->initial;
        t->initial = NULL;
        rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
        goto out;
    }
    now = eb_now_mono_us();
    if (now - t->checked_us < EB_TLS_CHECK_INTERVAL_US)
        goto out;
    t->checked_us = now;
    /* Stat before reading: a change during the read shows up next time. */
    stat_all(t, sig);
    if (sigs_equal(sig, t->current) || (t->have_refused && sigs_equal(sig, t->refused)))
        goto out;
    if (!load_set(t, &set, &p)) {
        eb_log_warn("msg=\"TLS files changed but do not load; still serving the previous "
                    "certificate\" setting=%s reason=\"%s\"",
                    setting_names[p.file], p.reason);
        memcpy(t->refused, sig, sizeof t->refused);
        t->have_refused = true;
        goto out;
    }
    *config = config_of(&set);
    memcpy(t->current, sig, sizeof t->current);
    t->have_refused = false;
    log_loaded("TLS certificate reloaded", &set);
    pem_set_clear(&set);
    rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
out:
    pthread_mutex_unlock(&t->mu);
    return rs;
}

eb_status eb_tls_new(const struct eb_tls_opts *opts, FILE *err, eb_tls **out)
{
    eb_tls *t = eb_calloc(1, sizeof *t);
    struct pem_set set;
    struct problem p;

    t->path[CERT] = eb_strdup(opts->cert_file);
    t->path[KEY] = eb_strdup(opts->key_file);
    t->path[CLIENT_CA] = opts->client_ca_file ? eb_strdup(opts->client_ca_file) : NULL;
    pthread_mutex_init(&t->mu, NULL);
    stat_all(t, t->current);
    t->checked_us = eb_now_mono_us();
    if (!load_set(t, &set, &p)) {
        fprintf(err, "cebusd: %s: %s\n", setting_names[p.file], p.reason);
        eb_tls_free(t);
        return EB_EINVAL;
    }
    t->initial = config_of(&set);
    log_loaded("TLS enabled", &set);
    pem_set_clear(&set);
    *out = t;
    return EB_OK;
}

grpc_server_credentials *eb_tls_server_credentials(eb_tls *t)
{
    grpc_ssl_server_credentials_options *o =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            t->path[CLIENT_CA] ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            fetch, t);

    return grpc_ssl_server_credentials_create_with_options(o);
}

void eb_tls_free(eb_tls *t)
{
    if (!t)
        return;
    if (t->initial)
        grpc_ssl_server_certificate_config_destroy(t->initial);
    for (int i = 0; i < NFILES; i++)
        free(t->path[i]);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
