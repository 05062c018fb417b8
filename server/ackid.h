/* Ack ids of durable subscriptions (docs/decisions/0014): base64url
 * without padding of 21 bytes: version (1), the subscription's epoch (8),
 * the event's sequence (8) and the delivery's attempt (4), big-endian.
 * They carry nothing the consumer has not seen except the epoch, a random
 * number that changes at every seek. Pure functions, any thread. */
#ifndef EB_ACKID_H
#define EB_ACKID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EB_ACKID_VERSION 1
/* Characters of an encoded id, without the terminating NUL. */
#define EB_ACKID_LEN 28
/* Longest id a request may carry (longer ones are refused unread). */
#define EB_ACKID_MAX 64

struct eb_ackid {
    int64_t epoch;
    int64_t seq;
    int32_t attempt;
};

/* Writes the id of a to out (EB_ACKID_LEN characters and a NUL). */
void eb_ackid_encode(const struct eb_ackid *a, char out[EB_ACKID_LEN + 1]);

/* Decodes s[0..len) (need not be NUL-terminated): false when it is not an
 * ack id (a length other than EB_ACKID_LEN, a character outside base64url,
 * '=' padding included, an unknown version). 21 bytes fill 28 characters
 * exactly, so no character carries padding bits. */
bool eb_ackid_decode(const char *s, size_t len, struct eb_ackid *out);

#endif
