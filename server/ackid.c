/* Ack ids (ackid.h): 21 bytes in base64url without padding. 21 bytes are
 * 168 bits, exactly 28 characters, so no character carries padding bits. */
#include "ackid.h"

#include <string.h>

#define RAW_LEN 21

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The value of a base64url character, or -1. */
static int char_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

void eb_ackid_encode(const struct eb_ackid *a, char out[EB_ACKID_LEN + 1])
{
    uint8_t raw[RAW_LEN];
    size_t o = 0;

    raw[0] = EB_ACKID_VERSION;
    put_be(raw + 1, (uint64_t)a->epoch, 8);
    put_be(raw + 9, (uint64_t)a->seq, 8);
    put_be(raw + 17, (uint32_t)a->attempt, 4);
    for (size_t i = 0; i < RAW_LEN; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
}

bool eb_ackid_decode(const char *s, size_t len, struct eb_ackid *out)
{
    uint8_t raw[RAW_LEN];
    size_t o = 0;

    if (!s || len != EB_ACKID_LEN)
        return false;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int c = char_value(s[i + j]);
            if (c < 0)
                return false;
            v = v << 6 | (uint32_t)c;
        }
        raw[o++] = (uint8_t)(v >> 16);
        raw[o++] = (uint8_t)(v >> 8);
        raw[o++] = (uint8_t)v;
    }
    if (raw[0] != EB_ACKID_VERSION)
        return false;
    out->epoch = (int64_t)get_be(raw + 1, 8);
    out->seq = (int64_t)get_be(raw + 9, 8);
    out->attempt = (int32_t)(uint32_t)get_be(raw + 17, 4);
    return true;
}
