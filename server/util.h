/* Small helpers used across the server: allocation that aborts on out of
 * memory, monotonic time, and bounded string copies. */
#ifndef EB_UTIL_H
#define EB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation never fails: on out of memory these abort the process. */
void *eb_malloc(size_t n);
void *eb_calloc(size_t count, size_t size);
void *eb_realloc(void *p, size_t n);
char *eb_strdup(const char *s);
char *eb_strndup(const char *s, size_t n);

/* Monotonic clock, microseconds. */
int64_t eb_now_mono_us(void);
/* Wall clock, microseconds since the Unix epoch. */
int64_t eb_now_wall_us(void);

/* Copies src into dst[0..size) always NUL-terminated; returns strlen(src). */
size_t eb_strlcpy(char *dst, const char *src, size_t size);

/* Fills buf with n cryptographically random bytes. Aborts if the kernel
 * cannot provide them. */
void eb_random_bytes(void *buf, size_t n);

/* Returns whether s[0..len) is well-formed UTF-8 without NUL bytes. */
bool eb_utf8_valid(const char *s, size_t len);

#endif
