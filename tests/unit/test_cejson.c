/* Unit tests of common/cejson.c: CloudEvent protobuf <-> CloudEvents JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cejson.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

typedef Io__Cloudevents__V1__CloudEvent ce_event;

#define ATTR(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_##x
#define DATA(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_##x

/* Parses text as JSON and converts it; fails the test on any error. */
static ce_event *from_text(const char *text)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    ce_event *ev = NULL;
    char err[256] = "";

    assert_non_null(obj);
    if (ce_from_json(obj, &ev, err, sizeof(err)) != 0)
        fail_msg("ce_from_json(%s): %s", text, err);
    json_decref(obj);
    return ev;
}

/* Converts text and returns the error message (static), or fails the test
 * when the conversion succeeds. */
static const char *from_text_error(const char *text)
{
    static char err[256];
    json_t *obj = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    ce_event *ev = NULL;

    assert_non_null(obj);
    err[0] = '\0';
    assert_int_equal(ce_from_json(obj, &ev, err, sizeof(err)), -1);
    assert_null(ev);
    json_decref(obj);
    return err;
}

static const Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *
find_attr(const ce_event *ev, const char *key)
{
    for (size_t i = 0; i < ev->n_attributes; i++)
        if (strcmp(ev->attributes[i]->key, key) == 0)
            return ev->attributes[i]->value;
    return NULL;
}

/* Asserts that JSON texts a and b denote equal values. */
static void assert_json_equal(const char *a, const char *b)
{
    json_t *ja = json_loads(a, JSON_DECODE_ANY, NULL), *jb = json_loads(b, JSON_DECODE_ANY, NULL);

    assert_non_null(ja);
    assert_non_null(jb);
    if (!json_equal(ja, jb))
        fail_msg("JSON differs:\n  got      %s\n  expected %s", a, b);
    json_decref(ja);
    json_decref(jb);
}

/* Through protobuf bytes and back to JSON: what a subscriber would see. */
static char *round_trip(const char *text)
{
    ce_event *ev = from_text(text), *back;
    size_t len = io__cloudevents__v1__cloud_event__get_packed_size(ev);
    uint8_t *buf = malloc(len ? len : 1);
    char *out;

    io__cloudevents__v1__cloud_event__pack(ev, buf);
    back = io__cloudevents__v1__cloud_event__unpack(NULL, len, buf);
    assert_non_null(back);
    out = ce_to_json_string(back);
    io__cloudevents__v1__cloud_event__free_unpacked(back, NULL);
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
    free(buf);
    return out;
}

static void check_round_trip(const char *text)
{
    char *out = round_trip(text);

    assert_json_equal(out, text);
    free(out);
}

static void test_round_trip_json_data(void **state)
{
    (void)state;
    check_round_trip("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                     "\"datacontenttype\":\"application/json\",\"data\":{\"a\":[1,2,{\"b\":null}]}}");
    check_round_trip("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                     "\"datacontenttype\":\"application/cloudevents+json; charset=utf-8\","
                     "\"data\":42}");
}

static void test_round_trip_text_data(void **state)
{
    (void)state;
    check_round_trip("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                     "\"datacontenttype\":\"text/plain\",\"data\":\"hello {\\\"x\\\":1}\"}");
    /* A JSON string with a JSON content type is the JSON value "hi". */
    check_round_trip("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                     "\"datacontenttype\":\"application/json\",\"data\":\"hi\"}");
}

static void test_round_trip_binary_data(void **state)
{
    (void)state;
    check_round_trip("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                     "\"datacontenttype\":\"application/octet-stream\",\"data_base64\":\"AAEC/w==\"}");
    check_round_trip("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                     "\"data_base64\":\"\"}");
}

static void test_round_trip_attributes(void **state)
{
    (void)state;
    check_round_trip("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                     "\"subject\":\"x\",\"time\":\"2024-05-01T12:00:00.123Z\","
                     "\"flag\":true,\"off\":false,\"count\":-7,\"big\":2147483647,"
                     "\"partitionkey\":\"k\"}");
}

static void test_from_json_types(void **state)
{
    ce_event *ev;
    const Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v;

    (void)state;
    ev = from_text("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"time\":\"2024-05-01T14:00:00+02:00\","
                   "\"b\":true,\"n\":5,\"s\":\"str\",\"nothing\":null,\"data\":[1,2]}");
    assert_string_equal(ev->spec_version, "1.0"); /* defaulted */
    v = find_attr(ev, "time");
    assert_non_null(v);
    assert_int_equal(v->attr_case, ATTR(CE_TIMESTAMP));
    assert_int_equal(v->ce_timestamp->seconds, 1714564800);
    assert_int_equal(v->ce_timestamp->nanos, 0);
    v = find_attr(ev, "b");
    assert_int_equal(v->attr_case, ATTR(CE_BOOLEAN));
    assert_true(v->ce_boolean);
    v = find_attr(ev, "n");
    assert_int_equal(v->attr_case, ATTR(CE_INTEGER));
    assert_int_equal(v->ce_integer, 5);
    v = find_attr(ev, "s");
    assert_int_equal(v->attr_case, ATTR(CE_STRING));
    assert_string_equal(v->ce_string, "str");
    assert_null(find_attr(ev, "nothing"));
    /* Non-string data: compact text, content type defaulted to JSON. */
    assert_int_equal(ev->data_case, DATA(TEXT_DATA));
    assert_string_equal(ev->text_data, "[1,2]");
    v = find_attr(ev, "datacontenttype");
    assert_non_null(v);
    assert_string_equal(v->ce_string, "application/json");
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);

    /* A "time" that is not RFC 3339 stays a string. */
    ev = from_text("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"time\":\"yesterday\","
                   "\"data\":\"plain\"}");
    v = find_attr(ev, "time");
    assert_int_equal(v->attr_case, ATTR(CE_STRING));
    /* Without a datacontenttype the data is JSON (the JSON format implies
     * application/json): the string keeps its quotes, so that patterns and
     * consumers see a string, never the value it spells. */
    assert_int_equal(ev->data_case, DATA(TEXT_DATA));
    assert_string_equal(ev->text_data, "\"plain\"");
    v = find_attr(ev, "datacontenttype");
    assert_non_null(v);
    assert_string_equal(v->ce_string, "application/json");
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);

    /* With a non-JSON content type the string is the text itself. */
    ev = from_text("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                   "\"datacontenttype\":\"text/plain\",\"data\":\"plain\"}");
    assert_int_equal(ev->data_case, DATA(TEXT_DATA));
    assert_string_equal(ev->text_data, "plain");
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
}

/* Builds an event by hand, as a server would receive it from a client. */
static ce_event *hand_event(const char *content_type)
{
    ce_event *ev = calloc(1, sizeof(*ev));

    io__cloudevents__v1__cloud_event__init(ev);
    ev->id = strdup("id1");
    ev->source = strdup("/src");
    ev->spec_version = strdup("1.0");
    ev->type = strdup("t");
    if (content_type) {
        Io__Cloudevents__V1__CloudEvent__AttributesEntry *e = calloc(1, sizeof(*e));
        Io__Cloudevents__V1__CloudEvent__AttributesEntry einit =
            IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
        Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v = calloc(1, sizeof(*v));
        Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue vinit =
            IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;

        *e = einit;
        *v = vinit;
        v->attr_case = ATTR(CE_STRING);
        v->ce_string = strdup(content_type);
        e->key = strdup("datacontenttype");
        e->value = v;
        ev->n_attributes = 1;
        ev->attributes = calloc(1, sizeof(*ev->attributes));
        ev->attributes[0] = e;
    }
    return ev;
}

static void set_text(ce_event *ev, const char *text)
{
    ev->data_case = DATA(TEXT_DATA);
    ev->text_data = strdup(text);
}

static void set_binary(ce_event *ev, const void *data, size_t len)
{
    ev->data_case = DATA(BINARY_DATA);
    ev->binary_data.data = malloc(len ? len : 1);
    memcpy(ev->binary_data.data, data, len);
    ev->binary_data.len = len;
}

static void check_to_json(ce_event *ev, const char *expected)
{
    char *s = ce_to_json_string(ev);

    assert_non_null(s);
    assert_json_equal(s, expected);
    free(s);
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
}

#define HEAD "\"specversion\":\"1.0\",\"id\":\"id1\",\"source\":\"/src\",\"type\":\"t\""

static void test_to_json_data_detection(void **state)
{
    ce_event *ev;

    (void)state;
    /* No content type and valid JSON: parsed. */
    ev = hand_event(NULL);
    set_text(ev, "{\"k\": 1}");
    check_to_json(ev, "{" HEAD ",\"data\":{\"k\":1}}");
    /* No content type, not JSON: a string. */
    ev = hand_event(NULL);
    set_text(ev, "hello");
    check_to_json(ev, "{" HEAD ",\"data\":\"hello\"}");
    /* JSON-looking text with a non-JSON content type: a string. */
    ev = hand_event("text/plain");
    set_text(ev, "{\"k\":1}");
    check_to_json(ev, "{" HEAD ",\"datacontenttype\":\"text/plain\",\"data\":\"{\\\"k\\\":1}\"}");
    /* +json suffix with parameters, any case. */
    ev = hand_event("Application/Vnd.Foo+JSON ; charset=utf-8");
    set_text(ev, "true");
    check_to_json(ev, "{" HEAD ",\"datacontenttype\":\"Application/Vnd.Foo+JSON ; charset=utf-8\","
                      "\"data\":true}");
    /* Binary data that is JSON, with a JSON content type: parsed. */
    ev = hand_event("text/json");
    set_binary(ev, "[1]", 3);
    check_to_json(ev, "{" HEAD ",\"datacontenttype\":\"text/json\",\"data\":[1]}");
    /* Binary data that is not JSON although the type says so: base64. */
    ev = hand_event("application/json");
    set_binary(ev, "\xff\x00", 2);
    check_to_json(ev, "{" HEAD ",\"datacontenttype\":\"application/json\",\"data_base64\":\"/wA=\"}");
    /* Binary data with another content type: base64. */
    ev = hand_event("image/png");
    set_binary(ev, "[1]", 3);
    check_to_json(ev, "{" HEAD ",\"datacontenttype\":\"image/png\",\"data_base64\":\"WzFd\"}");
}

static void test_to_json_proto_data_and_bytes(void **state)
{
    ce_event *ev = hand_event(NULL);
    Google__Protobuf__Any *any = calloc(1, sizeof(*any));
    Google__Protobuf__Any init = GOOGLE__PROTOBUF__ANY__INIT;
    Io__Cloudevents__V1__CloudEvent__AttributesEntry *e = calloc(1, sizeof(*e));
    Io__Cloudevents__V1__CloudEvent__AttributesEntry einit =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v = calloc(1, sizeof(*v));
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue vinit =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;

    (void)state;
    *any = init;
    any->type_url = strdup("type.googleapis.com/x.Y");
    any->value.data = malloc(3);
    memcpy(any->value.data, "abc", 3);
    any->value.len = 3;
    ev->data_case = DATA(PROTO_DATA);
    ev->proto_data = any;
    *e = einit;
    *v = vinit;
    v->attr_case = ATTR(CE_BYTES);
    v->ce_bytes.data = malloc(1);
    v->ce_bytes.data[0] = 0xfb;
    v->ce_bytes.len = 1;
    e->key = strdup("blob");
    e->value = v;
    ev->n_attributes = 1;
    ev->attributes = calloc(1, sizeof(*ev->attributes));
    ev->attributes[0] = e;
    check_to_json(ev, "{" HEAD ",\"blob\":\"+w==\",\"data_base64\":\"YWJj\"}");
}

/* An attribute of the map cannot shadow the required ones in the JSON
 * view that patterns match. */
static void test_to_json_reserved_attribute_dropped(void **state)
{
    ce_event *ev = hand_event(NULL);

    (void)state;
    free(ev->attributes);
    ev->attributes = NULL;
    ev->n_attributes = 0;
    {
        Io__Cloudevents__V1__CloudEvent__AttributesEntry *e = calloc(1, sizeof(*e));
        Io__Cloudevents__V1__CloudEvent__AttributesEntry einit =
            IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
        Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v = calloc(1, sizeof(*v));
        Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue vinit =
            IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;
        *e = einit;
        *v = vinit;
        v->attr_case = ATTR(CE_URI);
        v->ce_uri = strdup("/evil");
        e->key = strdup("source");
        e->value = v;
        ev->n_attributes = 1;
        ev->attributes = calloc(1, sizeof(*ev->attributes));
        ev->attributes[0] = e;
    }
    check_to_json(ev, "{" HEAD "}");
}

/* Regression (found by fuzz_cloudevent): protobuf-c does not check UTF-8,
 * and a string attribute that is not UTF-8 made the JSON view abort the
 * process. It now shows as U+FFFD and the member stays. */
static void test_to_json_attribute_not_utf8(void **state)
{
    ce_event *ev = hand_event(NULL);
    Io__Cloudevents__V1__CloudEvent__AttributesEntry *e = calloc(1, sizeof(*e));
    Io__Cloudevents__V1__CloudEvent__AttributesEntry einit =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v = calloc(1, sizeof(*v));
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue vinit =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;

    (void)state;
    free(ev->attributes);
    *e = einit;
    *v = vinit;
    v->attr_case = ATTR(CE_STRING);
    v->ce_string = strdup("a\xd6" "b");
    e->key = strdup("subject");
    e->value = v;
    ev->n_attributes = 1;
    ev->attributes = calloc(1, sizeof(*ev->attributes));
    ev->attributes[0] = e;
    check_to_json(ev, "{" HEAD ",\"subject\":\"\\ufffd\"}");
}

static void test_to_json_null(void **state)
{
    (void)state;
    assert_null(ce_to_json(NULL));
    assert_null(ce_to_json_string(NULL));
}

static void test_from_json_errors_name_member(void **state)
{
    (void)state;
    assert_non_null(strstr(from_text_error("[1]"), "object"));
    assert_non_null(strstr(from_text_error("{\"source\":\"/s\",\"type\":\"t\"}"), "\"id\""));
    assert_non_null(strstr(from_text_error("{\"id\":\"1\",\"type\":\"t\"}"), "\"source\""));
    assert_non_null(strstr(from_text_error("{\"id\":\"1\",\"source\":\"/s\"}"), "\"type\""));
    assert_non_null(strstr(from_text_error("{\"id\":1,\"source\":\"/s\",\"type\":\"t\"}"), "\"id\""));
    assert_non_null(
        strstr(from_text_error("{\"id\":\"\",\"source\":\"/s\",\"type\":\"t\"}"), "\"id\""));
    assert_non_null(strstr(
        from_text_error("{\"specversion\":1,\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}"),
        "\"specversion\""));
    assert_non_null(strstr(
        from_text_error("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"ext\":1.5}"), "\"ext\""));
    assert_non_null(strstr(
        from_text_error("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"ext\":{}}"), "\"ext\""));
    assert_non_null(strstr(
        from_text_error("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"big\":2147483648}"),
        "\"big\""));
    assert_non_null(strstr(
        from_text_error("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"Bad_Name\":\"x\"}"),
        "\"Bad_Name\""));
    assert_non_null(strstr(from_text_error("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                                           "\"data_base64\":\"not base64!\"}"),
                           "\"data_base64\""));
    assert_non_null(strstr(from_text_error("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                                           "\"data_base64\":\"QQ==\",\"data\":1}"),
                           "\"data\""));
    assert_non_null(strstr(from_text_error("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                                           "\"ext\":\"a\\u0000b\"}"),
                           "\"ext\""));
}

static void test_rfc3339(void **state)
{
    int64_t s;
    int32_t ns;
    char buf[48];

    (void)state;
    assert_int_equal(ce_parse_rfc3339("1970-01-01T00:00:00Z", &s, &ns), 0);
    assert_int_equal(s, 0);
    assert_int_equal(ce_parse_rfc3339("2024-02-29t23:59:59.5z", &s, &ns), 0);
    assert_int_equal(ns, 500000000);
    assert_int_equal(ce_format_rfc3339(s, ns, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2024-02-29T23:59:59.500Z");
    assert_int_equal(ce_parse_rfc3339("1969-12-31T23:59:59.000000001-00:30", &s, &ns), 0);
    assert_int_equal(s, 1799);
    assert_int_equal(ns, 1);
    assert_int_equal(ce_format_rfc3339(-1, 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    assert_int_equal(ce_format_rfc3339(0, 1000, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1970-01-01T00:00:00.000001Z");
    assert_int_equal(ce_format_rfc3339(253402300800LL, 0, buf, sizeof(buf)), -1);
    assert_int_equal(ce_format_rfc3339(0, 0, buf, 10), -1);

    assert_int_equal(ce_parse_rfc3339("2023-02-29T00:00:00Z", &s, &ns), -1);
    assert_int_equal(ce_parse_rfc3339("2024-05-01 12:00:00Z", &s, &ns), -1);
    assert_int_equal(ce_parse_rfc3339("2024-05-01T12:00:00", &s, &ns), -1);
    assert_int_equal(ce_parse_rfc3339("2024-05-01T12:00:00.Z", &s, &ns), -1);
    assert_int_equal(ce_parse_rfc3339("2024-05-01T24:00:00Z", &s, &ns), -1);
    assert_int_equal(ce_parse_rfc3339("2024-05-01T12:00:00Zjunk", &s, &ns), -1);
    assert_int_equal(ce_parse_rfc3339("", &s, &ns), -1);
    assert_int_equal(ce_parse_rfc3339(NULL, &s, &ns), -1);
}

static void test_base64(void **state)
{
    static const char *const cases[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    uint8_t *out;
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *enc = ce_base64_encode((const uint8_t *)cases[i][0], strlen(cases[i][0]));
        assert_string_equal(enc, cases[i][1]);
        free(enc);
        assert_int_equal(ce_base64_decode(cases[i][1], &out, &len), 0);
        assert_int_equal(len, strlen(cases[i][0]));
        assert_memory_equal(out, cases[i][0], len);
        free(out);
    }
    assert_int_equal(ce_base64_decode("Zg=", &out, &len), -1);
    assert_int_equal(ce_base64_decode("Z===", &out, &len), -1);
    assert_int_equal(ce_base64_decode("Zg==Zg==", &out, &len), -1);
    assert_int_equal(ce_base64_decode("Zm9v\n", &out, &len), -1);
}

static void test_content_type_is_json(void **state)
{
    (void)state;
    assert_true(ce_content_type_is_json("application/json"));
    assert_true(ce_content_type_is_json(" APPLICATION/JSON;charset=utf-8"));
    assert_true(ce_content_type_is_json("text/json"));
    assert_true(ce_content_type_is_json("application/cloudevents+json"));
    assert_false(ce_content_type_is_json("application/+json"));
    assert_false(ce_content_type_is_json("application/jsonx"));
    assert_false(ce_content_type_is_json("text/plain"));
    assert_false(ce_content_type_is_json("application/a/b+json"));
    assert_false(ce_content_type_is_json(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_json_data),
        cmocka_unit_test(test_round_trip_text_data),
        cmocka_unit_test(test_round_trip_binary_data),
        cmocka_unit_test(test_round_trip_attributes),
        cmocka_unit_test(test_from_json_types),
        cmocka_unit_test(test_to_json_data_detection),
        cmocka_unit_test(test_to_json_proto_data_and_bytes),
        cmocka_unit_test(test_to_json_reserved_attribute_dropped),
        cmocka_unit_test(test_to_json_attribute_not_utf8),
        cmocka_unit_test(test_to_json_null),
        cmocka_unit_test(test_from_json_errors_name_member),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_content_type_is_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
