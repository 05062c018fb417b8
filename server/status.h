/* The project's status codes, their text and their gRPC mapping. */
#ifndef EB_STATUS_H
#define EB_STATUS_H

#include <grpc/status.h>

typedef enum eb_status {
    EB_OK = 0,
    EB_EINVAL,       /* bad input: INVALID_ARGUMENT */
    EB_ENOTFOUND,    /* NOT_FOUND (also: another tenant's resource) */
    EB_EEXIST,       /* ALREADY_EXISTS */
    EB_EPERM,        /* PERMISSION_DENIED */
    EB_EUNAUTH,      /* UNAUTHENTICATED */
    EB_EEXHAUSTED,   /* RESOURCE_EXHAUSTED */
    EB_EUNAVAIL,     /* UNAVAILABLE: database down, shutting down */
    EB_EINTERNAL,    /* INTERNAL */
    EB_EUNIMPL,      /* UNIMPLEMENTED */
    EB_EPRECOND,     /* FAILED_PRECONDITION */
    EB_ECANCELLED,   /* CANCELLED */
    EB_ERANGE,       /* OUT_OF_RANGE: a position past the bus's retention */
} eb_status;

/* Returns a static, human-readable name of s. */
const char *eb_status_text(eb_status s);

/* Returns the gRPC status code for s. */
grpc_status_code eb_status_to_grpc(eb_status s);

#endif
