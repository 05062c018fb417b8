/* TLS for cebusd: the server certificate, its key and the optional client
 * CA, read from PEM files, checked, and handed to gRPC through its
 * certificate config fetcher so that new files take effect without a
 * restart.
 *
 * gRPC calls the fetcher at the start of every TLS handshake. The fetcher
 * stats the files at most once a second and reads them only when one of
 * them changed (inode, size, modification or change time). A changed set
 * that does not load (unreadable, not PEM, key not matching the
 * certificate) is logged once and ignored: connections keep getting the
 * last good pair until the files change again.
 *
 * Nothing here logs or prints key material: messages name the setting, the
 * path and the reason only.
 */
#ifndef EB_TLS_H
#define EB_TLS_H

#include <stdio.h>

#include <grpc/grpc_security.h>

#include "status.h"

/* Largest certificate, key or CA file accepted, in bytes. */
#define EB_TLS_MAX_FILE_BYTES (1024 * 1024)
/* Shortest interval between two looks at the files, in microseconds. */
#define EB_TLS_CHECK_INTERVAL_US 1000000

typedef struct eb_tls eb_tls;

struct eb_tls_opts {
    const char *cert_file;      /* PEM certificate chain, leaf first; required */
    const char *key_file;       /* PEM private key of the leaf, unencrypted; required */
    const char *client_ca_file; /* PEM CA certificates; NULL: no client certificates */
};

/* Reads and checks the files of opts (copied). Returns EB_OK and sets *out
 * (free with eb_tls_free()), or EB_EINVAL after printing to err one line
 * naming the setting that is wrong and why ("cebusd: tls-key-file: ..."). */
eb_status eb_tls_new(const struct eb_tls_opts *opts, FILE *err, eb_tls **out);

/* Returns new gRPC server credentials whose certificates come from t's
 * fetcher; with a client CA they require and verify client certificates.
 * The caller releases them after adding the port. REQUIRES: t outlives
 * every server the credentials are used by (free it after grpc_shutdown()).
 * Call once per eb_tls. */
grpc_server_credentials *eb_tls_server_credentials(eb_tls *t);

/* Frees t. NULL is allowed. */
void eb_tls_free(eb_tls *t);

#endif
