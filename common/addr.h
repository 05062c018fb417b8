/* gRPC addresses ("host:port", "[v6]:port", "unix:path"): what cebusd and
 * the cebus CLI decide from them. Pure: no I/O, no globals. */
#ifndef CEBUS_ADDR_H
#define CEBUS_ADDR_H

#include <stdbool.h>

/* Returns true when the host of addr (optionally prefixed "dns:///",
 * "ipv4:" or "ipv6:") is a loopback address (127.0.0.0/8, ::1, localhost)
 * or addr is a Unix socket ("unix:..."): addresses where
 * plaintext never leaves the machine. An empty host (":50051", every
 * interface) and names other than localhost are not. */
bool cebus_addr_is_local(const char *addr);

#endif
