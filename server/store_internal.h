/* Shared by the store*.c files only. */
#ifndef EB_STORE_INTERNAL_H
#define EB_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "status.h"

struct eb_db {
    PGconn *conn;
    char *url;
    bool broken;    /* a statement saw the connection fail */
    bool listening; /* re-LISTEN after a reconnect */
};

/* Runs one parameterized statement. On EB_OK and out != NULL, *out is the
 * result (PQclear it). what names the operation in logs. */
eb_status eb_db_exec(eb_db *db, const char *what, const char *sql, int nparams,
                     const char *const *values, const int *lengths, const int *formats,
                     int binary_result, PGresult **out);

/* Runs a statement without parameters or result. */
eb_status eb_db_simple(eb_db *db, const char *what, const char *sql);

/* Maps a result to a status, logging what is not the client's business. */
eb_status eb_db_result_status(eb_db *db, PGresult *res, const char *what);

/* Integer value of a text-format cell; 0 for NULL. */
int64_t eb_db_int(PGresult *res, int row, int col);

/* First line of a libpq message, quotes replaced, for a log value.
 * Returns a thread-local buffer. */
const char *eb_db_first_line(const char *msg);

#endif
