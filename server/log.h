/* One-line key=value logs to stderr. Never log payloads, keys or database
 * URLs: log lines may be shipped to people who must not see them. */
#ifndef EB_LOG_H
#define EB_LOG_H

enum eb_log_level { EB_LOG_DEBUG, EB_LOG_INFO, EB_LOG_WARN, EB_LOG_ERROR };

/* Sets the lowest level written. THREAD SAFETY: call before threads start. */
void eb_log_set_level(enum eb_log_level level);

/* Writes "ts=... level=... msg" plus fmt's key=value pairs as one line.
 * THREAD SAFETY: safe from any thread; lines never interleave. */
void eb_log(enum eb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define eb_log_debug(...) eb_log(EB_LOG_DEBUG, __VA_ARGS__)
#define eb_log_info(...) eb_log(EB_LOG_INFO, __VA_ARGS__)
#define eb_log_warn(...) eb_log(EB_LOG_WARN, __VA_ARGS__)
#define eb_log_error(...) eb_log(EB_LOG_ERROR, __VA_ARGS__)

#endif
