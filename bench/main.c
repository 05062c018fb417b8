/* cebus-bench: argv and the subcommand table only. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"pg-insert", bench_cmd_pg_insert, "raw durable multi-row INSERT ceiling through libpq"},
    {"ingest", bench_cmd_ingest, "PutEvents throughput and call latency through gRPC"},
    {"latency", bench_cmd_latency, "publish-to-subscriber latency at a fixed rate"},
    {"match", bench_cmd_match, "single-thread pattern matching, JSON parsing included"},
    {"durable", bench_cmd_durable, "delivered-and-acked events/s through a durable subscription"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fputs("usage: cebus-bench COMMAND [--option value]...   (COMMAND --help for its options)\n\n",
          out);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fputs("\nEach command prints a human line and a key=value line starting with "
          "\"bench=\".\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "cebus-bench: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
