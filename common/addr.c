#include "addr.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

bool cebus_addr_is_local(const char *addr)
{
    char host[256];
    const char *end;
    size_t len;
    struct in_addr v4;
    struct in6_addr v6;

    if (strncmp(addr, "unix:", 5) == 0 || strncmp(addr, "unix-abstract:", 14) == 0)
        return true;
    /* The target schemes of gRPC clients that name one host. */
    if (strncmp(addr, "dns:///", 7) == 0)
        addr += 7;
    else if (strncmp(addr, "ipv4:", 5) == 0 || strncmp(addr, "ipv6:", 5) == 0)
        addr += 5;
    if (addr[0] == '[') {
        end = strchr(addr, ']');
        if (!end)
            return false;
        addr++;
    } else {
        end = strrchr(addr, ':');
        if (!end)
            end = addr + strlen(addr);
    }
    len = (size_t)(end - addr);
    if (len == 0 || len >= sizeof host)
        return false; /* ":50051" is every interface */
    memcpy(host, addr, len);
    host[len] = '\0';
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}
