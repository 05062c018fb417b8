/* The embedded default database: a PostgreSQL cluster that cebusd
 * initializes and starts under its data directory when no database URL is
 * configured, so that one command runs cebus on a fresh machine. */
#ifndef EB_EMBEDDED_PG_H
#define EB_EMBEDDED_PG_H

#include <stddef.h>

#include "status.h"

/* Initializes (first time) and starts the cluster in data_dir/pg, listening
 * only on a Unix socket in data_dir/pg-run on port. As root, the cluster
 * runs as the "postgres" system user, since PostgreSQL refuses root.
 * Writes the connection string into url. Returns EB_OK or EB_EUNAVAIL
 * (details logged). */
eb_status eb_embedded_pg_start(const char *data_dir, long port, char *url, size_t urlsize);

/* Stops the cluster started by eb_embedded_pg_start (fast shutdown). */
void eb_embedded_pg_stop(const char *data_dir);

#endif
