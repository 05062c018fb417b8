#include "status.h"

const char *eb_status_text(eb_status s)
{
    switch (s) {
    case EB_OK: return "ok";
    case EB_EINVAL: return "invalid argument";
    case EB_ENOTFOUND: return "not found";
    case EB_EEXIST: return "already exists";
    case EB_EPERM: return "permission denied";
    case EB_EUNAUTH: return "unauthenticated";
    case EB_EEXHAUSTED: return "resource exhausted";
    case EB_EUNAVAIL: return "unavailable";
    case EB_EINTERNAL: return "internal error";
    case EB_EUNIMPL: return "unimplemented";
    case EB_EPRECOND: return "failed precondition";
    case EB_ECANCELLED: return "cancelled";
    case EB_ERANGE: return "out of range";
    }
    return "unknown status";
}

grpc_status_code eb_status_to_grpc(eb_status s)
{
    switch (s) {
    case EB_OK: return GRPC_STATUS_OK;
    case EB_EINVAL: return GRPC_STATUS_INVALID_ARGUMENT;
    case EB_ENOTFOUND: return GRPC_STATUS_NOT_FOUND;
    case EB_EEXIST: return GRPC_STATUS_ALREADY_EXISTS;
    case EB_EPERM: return GRPC_STATUS_PERMISSION_DENIED;
    case EB_EUNAUTH: return GRPC_STATUS_UNAUTHENTICATED;
    case EB_EEXHAUSTED: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case EB_EUNAVAIL: return GRPC_STATUS_UNAVAILABLE;
    case EB_EINTERNAL: return GRPC_STATUS_INTERNAL;
    case EB_EUNIMPL: return GRPC_STATUS_UNIMPLEMENTED;
    case EB_EPRECOND: return GRPC_STATUS_FAILED_PRECONDITION;
    case EB_ECANCELLED: return GRPC_STATUS_CANCELLED;
    case EB_ERANGE: return GRPC_STATUS_OUT_OF_RANGE;
    }
    return GRPC_STATUS_UNKNOWN;
}
