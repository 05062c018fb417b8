/* Statements of per-tenant quotas and of the live-server registry that
 * rate quotas and stream counts are shared through (server/quota.h). Same
 * status contract as store.h. */
#ifndef EB_STORE_QUOTA_H
#define EB_STORE_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "quota.h"
#include "status.h"
#include "store.h"

/* Sets *out to tenant_id's stored quota, 0 in each field it did not set
 * (also when it set none). */
eb_status eb_store_quota_get(eb_db *db, int64_t tenant_id, struct eb_quota_limits *out);

/* Replaces tenant_id's stored quota with q; a 0 field is stored as "the
 * default". EB_ENOTFOUND when the tenant does not exist. */
eb_status eb_store_quota_set(eb_db *db, int64_t tenant_id, const struct eb_quota_limits *q);

/* One heartbeat of server_id, in one transaction: refreshes its row,
 * replaces its published stream counts with streams[i] for tenants[i]
 * (n rows), drops the rows of servers silent for a minute, and reads back
 * the number of live servers (*live >= 1, this one included) and the other
 * live servers' streams per tenant (*rtenants, *rstreams: new arrays of *rn
 * entries; free() both). */
eb_status eb_store_heartbeat(eb_db *db, const char *server_id, const int64_t *tenants,
                             const int64_t *streams, size_t n, int *live, int64_t **rtenants,
                             int64_t **rstreams, size_t *rn);

/* Removes server_id's row and stream counts (at shutdown). */
eb_status eb_store_heartbeat_remove(eb_db *db, const char *server_id);

/* Seconds after its last heartbeat that a server still counts as live. */
#define EB_HEARTBEAT_LIVE_SECONDS 3

#endif
