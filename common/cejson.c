/* CloudEvent protobuf <-> CloudEvents JSON event format (structured mode).
 *
 * Messages built here are laid out exactly as protobuf_c_message_unpack()
 * would lay them out (every string and sub-message malloc'ed, empty strings
 * left pointing at protobuf_c_empty_string), so that callers free them with
 * the generated *__free_unpacked(ev, NULL) whatever their origin.
 */
#include "cejson.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "google/protobuf/timestamp.pb-c.h"

typedef Io__Cloudevents__V1__CloudEvent ce_event;
typedef Io__Cloudevents__V1__CloudEvent__AttributesEntry ce_attr_entry;
typedef Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue ce_attr_value;

#define ATTR(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_##x
#define DATA(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_##x

/* Out of memory is not recoverable in cebus (see STYLE.md): abort. */
static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

/* jansson reports allocation failure as NULL, which would otherwise be
 * indistinguishable from "no such value" further down. */
static json_t *must(json_t *j)
{
    if (!j)
        abort();
    return j;
}

/* Adds value to obj under key, taking the reference. */
static void set_new(json_t *obj, const char *key, json_t *value)
{
    if (json_object_set_new(obj, key, must(value)) != 0)
        abort();
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- Base64 ------------------------------------------------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ce_base64_encode_to(const uint8_t *data, size_t len, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

char *ce_base64_encode(const uint8_t *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);

    out[ce_base64_encode_to(data, len, out)] = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p;

    if (c == '\0')
        return -1;
    p = strchr(b64_alphabet, c);
    return p ? (int)(p - b64_alphabet) : -1;
}

int ce_base64_decode(const char *s, uint8_t **out, size_t *outlen)
{
    size_t len = strlen(s);
    uint8_t *buf;
    size_t i, o = 0;

    /* Padding is required: the JSON format says data_base64 is RFC 4648
     * base64, and accepting several spellings of one value would make
     * duplicate detection on the server depend on the client. */
    if (len % 4 != 0)
        return -1;
    buf = xmalloc(len / 4 * 3);
    for (i = 0; i < len; i += 4) {
        int a = b64_value(s[i]), b = b64_value(s[i + 1]);
        int c = s[i + 2] == '=' ? -2 : b64_value(s[i + 2]);
        int d = s[i + 3] == '=' ? -2 : b64_value(s[i + 3]);
        bool last = i + 4 == len;

        if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2) ||
            ((c == -2 || d == -2) && !last))
            goto fail;
        buf[o++] = (uint8_t)(a << 2 | b >> 4);
        if (c >= 0)
            buf[o++] = (uint8_t)((b & 15) << 4 | c >> 2);
        if (d >= 0)
            buf[o++] = (uint8_t)((c & 3) << 6 | d);
    }
    *out = buf;
    *outlen = o;
    return 0;
fail:
    free(buf);
    return -1;
}

/* ---- RFC 3339 -------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * algorithm); pure arithmetic, so no dependence on the TZ or on timegm. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, unsigned m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n decimal digits. */
static int read_digits(const char **p, int n, int *value)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *value = v;
    return 0;
}

int ce_parse_rfc3339(const char *s, int64_t *seconds, int32_t *nanos)
{
    const char *p = s;
    int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
    int32_t ns = 0;
    int64_t secs;

    if (!s)
        return -1;
    if (read_digits(&p, 4, &year) || *p++ != '-' || read_digits(&p, 2, &mon) ||
        *p++ != '-' || read_digits(&p, 2, &day))
        return -1;
    if (*p != 'T' && *p != 't')
        return -1;
    p++;
    if (read_digits(&p, 2, &hour) || *p++ != ':' || read_digits(&p, 2, &min) ||
        *p++ != ':' || read_digits(&p, 2, &sec))
        return -1;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            /* Digits past nanoseconds are accepted and truncated. */
            if (digits < 9)
                ns = ns * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return -1;
        for (; digits < 9; digits++)
            ns *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        p++;
        if (read_digits(&p, 2, &oh) || *p++ != ':' || read_digits(&p, 2, &om))
            return -1;
        if (oh > 23 || om > 59)
            return -1;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    /* Leap seconds (sec == 60) are refused: google.protobuf.Timestamp
     * cannot represent them. */
    if (year < 1 || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, (unsigned)mon) ||
        hour > 23 || min > 59 || sec > 59)
        return -1;
    secs = days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + hour * 3600 +
           min * 60 + sec;
    secs -= (int64_t)sign * (oh * 3600 + om * 60);
    *seconds = secs;
    *nanos = ns;
    return 0;
}

int ce_format_rfc3339(int64_t seconds, int32_t nanos, char *buf, size_t buflen)
{
    /* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the Timestamp range. */
    const int64_t min_secs = -62135596800LL, max_secs = 253402300799LL;
    int64_t days, rem, y;
    unsigned m, d;
    char frac[16] = "";
    int n;

    if (seconds < min_secs || seconds > max_secs || nanos < 0 || nanos > 999999999)
        return -1;
    days = seconds / 86400;
    rem = seconds % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    if (nanos % 1000000 == 0 && nanos)
        snprintf(frac, sizeof(frac), ".%03d", (int)(nanos / 1000000));
    else if (nanos % 1000 == 0 && nanos)
        snprintf(frac, sizeof(frac), ".%06d", (int)(nanos / 1000));
    else if (nanos)
        snprintf(frac, sizeof(frac), ".%09d", (int)nanos);
    n = snprintf(buf, buflen, "%04d-%02u-%02uT%02d:%02d:%02d%sZ", (int)y, m, d,
                 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), frac);
    return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

/* ---- Content types ------------------------------------------------------ */

int ce_content_type_is_json(const char *ct)
{
    size_t len;

    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    len = strcspn(ct, ";");
    while (len > 0 && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    if ((len == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
        (len == 9 && strncasecmp(ct, "text/json", 9) == 0))
        return 1;
    return len > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + len - 5, "+json", 5) == 0 && memchr(ct + 12, '/', len - 12) == NULL;
}

/* ---- Protobuf -> JSON --------------------------------------------------- */

/* The members of the JSON form that are not attributes of the map. An
 * attribute of the map with one of these names is dropped, so that a
 * publisher cannot shadow "source" (or the data) in the JSON view that
 * patterns match. */
static bool is_reserved_member(const char *name)
{
    static const char *const reserved[] = {"specversion", "id", "source", "type",
                                           "data", "data_base64"};

    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(name, reserved[i]) == 0)
            return true;
    return false;
}

/* Returns the string value of attribute name, or NULL. */
static const char *find_string_attr(const ce_event *ev, const char *name)
{
    for (size_t i = 0; i < ev->n_attributes; i++) {
        const ce_attr_entry *e = ev->attributes[i];
        if (!e || !e->key || !e->value || strcmp(e->key, name) != 0)
            continue;
        switch (e->value->attr_case) {
        case ATTR(CE_STRING):
            return e->value->ce_string;
        case ATTR(CE_URI):
            return e->value->ce_uri;
        case ATTR(CE_URI_REF):
            return e->value->ce_uri_ref;
        default:
            return NULL;
        }
    }
    return NULL;
}

/* A string member that is always representable: NULL (only from a
 * hand-built message) shows as empty, and text that is not UTF-8 (protobuf-c
 * does not check; a peer can send it) as U+FFFD, so that the member stays
 * present and conversion never fails on hostile input. */
static json_t *string_or_empty(const char *s)
{
    json_t *j = json_string(s ? s : "");
    return j ? j : must(json_string("\xef\xbf\xbd"));
}

/* Returns the JSON form of one attribute value, or NULL when the value is
 * unset or unrepresentable (then the attribute is left out). */
static json_t *attr_value_to_json(const ce_attr_value *v)
{
    char buf[48];
    char *b64;
    json_t *j;

    switch (v->attr_case) {
    case ATTR(CE_BOOLEAN):
        return must(json_boolean(v->ce_boolean));
    case ATTR(CE_INTEGER):
        return must(json_integer(v->ce_integer));
    case ATTR(CE_STRING):
        return string_or_empty(v->ce_string);
    case ATTR(CE_URI):
        return string_or_empty(v->ce_uri);
    case ATTR(CE_URI_REF):
        return string_or_empty(v->ce_uri_ref);
    case ATTR(CE_BYTES):
        b64 = ce_base64_encode(v->ce_bytes.data, v->ce_bytes.len);
        j = must(json_string(b64));
        free(b64);
        return j;
    case ATTR(CE_TIMESTAMP):
        if (!v->ce_timestamp ||
            ce_format_rfc3339(v->ce_timestamp->seconds, v->ce_timestamp->nanos, buf,
                              sizeof(buf)) != 0)
            return NULL;
        return must(json_string(buf));
    default:
        return NULL;
    }
}

/* Sets "data" (parsed JSON or a string) or "data_base64" on obj. */
static void data_to_json(const ce_event *ev, json_t *obj)
{
    const char *ct = find_string_attr(ev, "datacontenttype");
    bool json_ct = ct == NULL || ce_content_type_is_json(ct);
    json_t *parsed = NULL;
    char *b64;

    switch (ev->data_case) {
    case DATA(TEXT_DATA):
        if (!ev->text_data)
            return;
        if (json_ct)
            parsed = json_loads(ev->text_data, JSON_DECODE_ANY, NULL);
        if (!parsed)
            parsed = json_string(ev->text_data);
        if (parsed) {
            set_new(obj, "data", parsed);
        } else {
            /* jansson refuses strings that are not UTF-8; protobuf-c does
             * not check, so a peer could send such text. Keep the bytes. */
            b64 = ce_base64_encode((const uint8_t *)ev->text_data, strlen(ev->text_data));
            set_new(obj, "data_base64", json_string(b64));
            free(b64);
        }
        return;
    case DATA(BINARY_DATA):
        if (json_ct && ev->binary_data.len > 0)
            parsed = json_loadb((const char *)ev->binary_data.data, ev->binary_data.len,
                                JSON_DECODE_ANY, NULL);
        if (parsed) {
            set_new(obj, "data", parsed);
            return;
        }
        b64 = ce_base64_encode(ev->binary_data.data, ev->binary_data.len);
        set_new(obj, "data_base64", json_string(b64));
        free(b64);
        return;
    case DATA(PROTO_DATA):
        if (!ev->proto_data)
            return;
        b64 = ce_base64_encode(ev->proto_data->value.data, ev->proto_data->value.len);
        set_new(obj, "data_base64", json_string(b64));
        free(b64);
        return;
    default:
        return;
    }
}

json_t *ce_to_json(const Io__Cloudevents__V1__CloudEvent *ev)
{
    json_t *obj;

    if (!ev)
        return NULL;
    obj = must(json_object());
    set_new(obj, "specversion", string_or_empty(ev->spec_version));
    set_new(obj, "id", string_or_empty(ev->id));
    set_new(obj, "source", string_or_empty(ev->source));
    set_new(obj, "type", string_or_empty(ev->type));
    for (size_t i = 0; i < ev->n_attributes; i++) {
        const ce_attr_entry *e = ev->attributes[i];
        json_t *v;

        if (!e || !e->key || !e->value || is_reserved_member(e->key))
            continue;
        v = attr_value_to_json(e->value);
        /* json_object_set_new fails only for keys that are not UTF-8, which
         * cannot be CloudEvents attribute names: drop those. */
        if (v && json_object_set_new(obj, e->key, v) != 0)
            continue;
    }
    data_to_json(ev, obj);
    return obj;
}

char *ce_to_json_string(const Io__Cloudevents__V1__CloudEvent *ev)
{
    json_t *j = ce_to_json(ev);
    char *s;

    if (!j)
        return NULL;
    s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s)
        abort();
    return s;
}

/* ---- JSON -> protobuf --------------------------------------------------- */

static ce_attr_value *new_attr_value(void)
{
    ce_attr_value *v = xmalloc(sizeof(*v));
    ce_attr_value init = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;

    *v = init;
    return v;
}

/* Appends key -> v to ev's attributes; takes ownership of v. */
static void add_attr(ce_event *ev, const char *key, ce_attr_value *v)
{
    ce_attr_entry *e = xmalloc(sizeof(*e));
    ce_attr_entry init = IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;

    *e = init;
    e->key = xstrdup(key);
    e->value = v;
    ev->attributes = xrealloc(ev->attributes, (ev->n_attributes + 1) * sizeof(*ev->attributes));
    ev->attributes[ev->n_attributes++] = e;
}

static void add_string_attr(ce_event *ev, const char *key, const char *value)
{
    ce_attr_value *v = new_attr_value();

    v->attr_case = ATTR(CE_STRING);
    v->ce_string = xstrdup(value);
    add_attr(ev, key, v);
}

/* CloudEvents attribute names are lower-case ASCII letters and digits. */
static bool valid_attr_name(const char *name)
{
    if (*name == '\0')
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

/* Reads a required, non-empty string member into *field. */
static int required_string(const json_t *obj, const char *name, char **field, char *err,
                           size_t errlen)
{
    const json_t *v = json_object_get(obj, name);

    if (!v) {
        set_err(err, errlen, "member \"%s\" is required", name);
        return -1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0) {
        set_err(err, errlen, "member \"%s\" must be a non-empty string", name);
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        set_err(err, errlen, "member \"%s\" contains a NUL character", name);
        return -1;
    }
    *field = xstrdup(json_string_value(v));
    return 0;
}

/* Converts one extension or optional attribute member. */
static int member_to_attr(ce_event *ev, const char *key, const json_t *v, char *err,
                          size_t errlen)
{
    ce_attr_value *av;
    int64_t secs;
    int32_t nanos;

    if (!valid_attr_name(key)) {
        set_err(err, errlen,
                "member \"%s\": attribute names must be lower-case letters and digits", key);
        return -1;
    }
    switch (json_typeof(v)) {
    case JSON_NULL:
        /* The JSON format treats a null attribute as absent. */
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        av = new_attr_value();
        av->attr_case = ATTR(CE_BOOLEAN);
        av->ce_boolean = json_is_true(v);
        add_attr(ev, key, av);
        return 0;
    case JSON_INTEGER:
        if (json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX) {
            set_err(err, errlen, "member \"%s\": integer out of the int32 range", key);
            return -1;
        }
        av = new_attr_value();
        av->attr_case = ATTR(CE_INTEGER);
        av->ce_integer = (int32_t)json_integer_value(v);
        add_attr(ev, key, av);
        return 0;
    case JSON_STRING:
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            set_err(err, errlen, "member \"%s\" contains a NUL character", key);
            return -1;
        }
        if (strcmp(key, "time") == 0 &&
            ce_parse_rfc3339(json_string_value(v), &secs, &nanos) == 0) {
            Google__Protobuf__Timestamp init = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
            av = new_attr_value();
            av->attr_case = ATTR(CE_TIMESTAMP);
            av->ce_timestamp = xmalloc(sizeof(*av->ce_timestamp));
            *av->ce_timestamp = init;
            av->ce_timestamp->seconds = secs;
            av->ce_timestamp->nanos = nanos;
            add_attr(ev, key, av);
            return 0;
        }
        add_string_attr(ev, key, json_string_value(v));
        return 0;
    default:
        set_err(err, errlen, "member \"%s\": attributes must be strings, booleans or integers",
                key);
        return -1;
    }
}

/* Fills ev's data from "data" or "data_base64". */
static int data_from_json(ce_event *ev, const json_t *obj, char *err, size_t errlen)
{
    const json_t *data = json_object_get(obj, "data");
    const json_t *b64 = json_object_get(obj, "data_base64");
    const json_t *ct = json_object_get(obj, "datacontenttype");
    char *text;

    if (data && json_is_null(data))
        data = NULL;
    if (b64 && json_is_null(b64))
        b64 = NULL;
    if (data && b64) {
        set_err(err, errlen, "members \"data\" and \"data_base64\" are mutually exclusive");
        return -1;
    }
    if (b64) {
        uint8_t *bytes;
        size_t len;

        if (!json_is_string(b64) || ce_base64_decode(json_string_value(b64), &bytes, &len) != 0) {
            set_err(err, errlen, "member \"data_base64\" must be a base64 string");
            return -1;
        }
        ev->data_case = DATA(BINARY_DATA);
        ev->binary_data.data = bytes;
        ev->binary_data.len = len;
        return 0;
    }
    if (!data)
        return 0;
    /* A JSON string is the text itself when the event says its data is
     * not JSON. Otherwise, an absent datacontenttype included (the JSON
     * format implies application/json), the data is that JSON value, a
     * string, and its text is the quoted form: so "5" stays the string "5"
     * to patterns rather than becoming the number 5. This keeps
     * ce_to_json(ce_from_json(x)) == x. */
    if (json_is_string(data) && ct &&
        !(json_is_string(ct) && ce_content_type_is_json(json_string_value(ct)))) {
        if (strlen(json_string_value(data)) != json_string_length(data)) {
            set_err(err, errlen, "member \"data\" contains a NUL character");
            return -1;
        }
        text = xstrdup(json_string_value(data));
    } else {
        text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        if (!text)
            abort();
        if (!ct)
            add_string_attr(ev, "datacontenttype", "application/json");
    }
    ev->data_case = DATA(TEXT_DATA);
    ev->text_data = text;
    return 0;
}

int ce_from_json(const json_t *obj, Io__Cloudevents__V1__CloudEvent **out, char *err,
                 size_t errlen)
{
    ce_event *ev = NULL;
    const json_t *specversion;
    const char *key;
    json_t *value;
    int rc = -1;

    if (!json_is_object(obj)) {
        set_err(err, errlen, "event must be a JSON object");
        goto out;
    }
    /* The generated INIT macro for this message trips -Wmissing-braces (its
     * data union starts with a struct); the init function does the same. */
    ev = xmalloc(sizeof(*ev));
    io__cloudevents__v1__cloud_event__init(ev);
    specversion = json_object_get(obj, "specversion");
    if (specversion) {
        if (required_string(obj, "specversion", &ev->spec_version, err, errlen) != 0)
            goto out;
    } else {
        ev->spec_version = xstrdup("1.0");
    }
    if (required_string(obj, "id", &ev->id, err, errlen) != 0 ||
        required_string(obj, "source", &ev->source, err, errlen) != 0 ||
        required_string(obj, "type", &ev->type, err, errlen) != 0)
        goto out;
    /* json_object_foreach is a macro over a non-const object; iterating
     * does not modify it. */
    json_object_foreach((json_t *)obj, key, value) {
        if (is_reserved_member(key))
            continue;
        if (member_to_attr(ev, key, value, err, errlen) != 0)
            goto out;
    }
    if (data_from_json(ev, obj, err, errlen) != 0)
        goto out;
    *out = ev;
    ev = NULL;
    rc = 0;
out:
    if (ev)
        io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
    return rc;
}
