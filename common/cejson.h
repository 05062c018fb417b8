/* Conversions between the CloudEvents protobuf message and the CloudEvents
 * JSON event format (structured mode), shared by cebusd (the JSON view that
 * event patterns match) and the cebus CLI (input and output).
 *
 * Pure: no I/O, no globals; safe from any thread.
 */
#ifndef CEBUS_CEJSON_H
#define CEBUS_CEJSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cloudevents.pb-c.h"

/* Returns a new JSON object, the CloudEvents JSON form of ev:
 * "specversion", "id", "source", "type", then every attribute of the
 * attributes map as a top-level member (booleans and integers as JSON
 * booleans and numbers, timestamps as RFC 3339 strings, bytes as base64
 * strings, the rest as strings), then the data:
 *   - text_data or binary_data whose datacontenttype is absent or JSON
 *     ("application/json", "text/json", "application/<subtype>+json", ignoring
 *     parameters) and that parses as JSON: "data" holds the parsed value;
 *   - other text_data: "data" holds the string;
 *   - other binary_data: "data_base64" holds it base64-encoded;
 *   - proto_data: "data_base64" holds the Any's value bytes.
 * Returns NULL only if ev is NULL. Caller owns the result (json_decref). */
json_t *ce_to_json(const Io__Cloudevents__V1__CloudEvent *ev);

/* Same, serialized compactly on one line. Caller frees with free(). */
char *ce_to_json_string(const Io__Cloudevents__V1__CloudEvent *ev);

/* Parses a CloudEvents JSON object (structured mode) into a new CloudEvent.
 * "data" that is a JSON string becomes text_data; other JSON values become
 * text_data holding their compact serialization with datacontenttype
 * defaulted to "application/json"; "data_base64" becomes binary_data.
 * Other members become attributes: strings as ce_string (ce_timestamp for
 * "time" when it parses as RFC 3339), booleans as ce_boolean, integers that
 * fit int32 as ce_integer. Returns 0 and sets *out (free with
 * io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL)), or -1 with a
 * message naming the member in err. */
int ce_from_json(const json_t *obj, Io__Cloudevents__V1__CloudEvent **out, char *err,
                 size_t errlen);

/* Parses an RFC 3339 date-time ("2024-05-01T12:00:00Z", optional fraction of
 * up to 9 digits, "Z" or a "+hh:mm"/"-hh:mm" offset; 't' and 'z' accepted)
 * into seconds and nanoseconds since the Unix epoch. Returns 0 and writes
 * *seconds and *nanos, or -1 (nothing written) when s is not such a time. */
int ce_parse_rfc3339(const char *s, int64_t *seconds, int32_t *nanos);

/* Formats seconds and nanos as an RFC 3339 UTC time ("...Z", with the
 * shortest fraction of 3, 6 or 9 digits when nanos is not 0) into buf.
 * Returns 0, or -1 when the time is outside years 0001-9999, nanos is out of
 * range or buf (at least 40 bytes is enough) is too small. */
int ce_format_rfc3339(int64_t seconds, int32_t nanos, char *buf, size_t buflen);

/* Returns 1 when the media type ct (parameters ignored, case-insensitive) is
 * JSON: "application/json", "text/json" or "application/...+json"; else 0. */
int ce_content_type_is_json(const char *ct);

/* Base64 (RFC 4648, with padding). ce_base64_encode returns a new
 * NUL-terminated string; free() it. ce_base64_decode returns 0 and a new
 * buffer in *out (free() it; *outlen bytes) or -1 when s is not valid
 * base64 (nothing written). */
char *ce_base64_encode(const uint8_t *data, size_t len);
/* Writes the base64 of data[0..len) into out, which must hold
 * 4 * ((len + 2) / 3) bytes (no NUL is added); returns that length. */
size_t ce_base64_encode_to(const uint8_t *data, size_t len, char *out);
int ce_base64_decode(const char *s, uint8_t **out, size_t *outlen);

#endif
