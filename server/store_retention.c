/* Retention: partition maintenance and the oldest retained sequence of a
 * bus (migrations/0007_retention.sql, docs/decisions/0011-retention.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "store_internal.h"

eb_status eb_store_events_oldest(eb_db *db, int64_t bus_id, int64_t *seq)
{
    char bid[24];
    const char *params[1] = {bid};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    /* Reads forward from the last recorded value, so only what expired
     * since the last maintenance run is skipped over. One statement, one
     * snapshot: the counter and the events agree. */
    st = eb_db_exec(db, "events_oldest",
                    "SELECT COALESCE((SELECT min(e.seq) FROM events e WHERE e.bus_id = b.id"
                    " AND e.seq >= COALESCE((SELECT oldest_seq FROM event_retention"
                    " WHERE bus_id = b.id), 1) AND e.expires_at > now()), b.next_seq)"
                    " FROM buses b WHERE b.id = $1",
                    1, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0)
        st = EB_ENOTFOUND;
    else
        *seq = eb_db_int(res, 0, 0);
    PQclear(res);
    return st;
}

eb_status eb_store_partitions_maintain(eb_db *db, int64_t now_us, struct eb_maintain_result *out)
{
    char when[24];
    const char *params[1] = {now_us ? when : NULL};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(when, sizeof when, now_us);
    st = eb_db_exec(db, "partitions_maintain",
                    "SELECT skipped, created, dropped FROM cebus_maintain_partitions("
                    "COALESCE(to_timestamp($1::bigint / 1000000.0), now()))",
                    1, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return EB_EINTERNAL;
    }
    out->skipped = PQgetvalue(res, 0, 0)[0] == 't';
    out->created = (int)eb_db_int(res, 0, 1);
    out->dropped = (int)eb_db_int(res, 0, 2);
    PQclear(res);
    return EB_OK;
}

void eb_store_partitions_for_retention(eb_db *db, int retention_hours)
{
    char hours[16];
    const char *params[1] = {hours};
    PGresult *res;

    snprintf(hours, sizeof hours, "%d", retention_hours);
    /* Best effort: when it cannot get the lock in time, the next
     * maintenance run creates the partitions. */
    if (eb_db_exec(db, "partitions_for_retention", "SELECT cebus_partitions_for_retention($1)", 1,
                   params, NULL, NULL, 0, &res) != EB_OK)
        return;
    if (PQntuples(res) == 1 && eb_db_int(res, 0, 0) < 0)
        eb_log_info("msg=\"partitions for a new retention left to maintenance\" hours=%d",
                    retention_hours);
    PQclear(res);
}
