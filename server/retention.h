/* Retention: a thread that runs partition maintenance (creates the event
 * log's partitions ahead of need, records each bus's oldest retained
 * sequence, drops wholly expired partitions) and the sweep of durable
 * subscriptions (rows past their limits become dead letters; dead letters
 * of expired events go) at start and then every EB_RETENTION_EVERY_MS.
 * Every replica runs one; an advisory lock in the database lets one of
 * them do a given run and the others skip it. See
 * docs/decisions/0011-retention.md and 0014-durable-subscriptions.md. */
#ifndef EB_RETENTION_H
#define EB_RETENTION_H

typedef struct eb_retention eb_retention;

/* How often maintenance runs. Partitions are created two days ahead, so a
 * replica set that misses runs for up to two days still appends into real
 * partitions; expired events go within a day plus this interval. */
#define EB_RETENTION_EVERY_MS 60000

/* Starts the thread on its own connection to url (copied). Returns a new
 * handle; stop and free it with eb_retention_free(). */
eb_retention *eb_retention_new(const char *url);

/* Stops the thread (waiting for a run in progress) and frees r. NULL is
 * allowed. */
void eb_retention_free(eb_retention *r);

#endif
