/* The daemon's command line: its options, their parsing and --help. */
#ifndef IB_CLI_H
#define IB_CLI_H

#include <stdbool.h>
#include <stdio.h>

struct ib_cli {
    const char *config;
    const char *plugin_dir;
    int log_level; /* -1: from the config */
    bool check, once, list_plugins, markdown;
    const char *list_only; /* --list-plugins=NAME */
    const char *sign_file, *sign_key;
    unsigned long long sign_version;
    bool sign_command;                  /* --sign-command FILE (sign_file) */
    const char *write_spec, *read_spec; /* --write DEVICE.TAG=VALUE, --read DEVICE.TAG */
    bool status, json;                  /* `ironbridge status [--json]` (or --status) */
    const char *status_socket;          /* --socket PATH */
};

/* Parse argv into `o` (pointers into argv). --help and --version print and exit(0). Returns 0,
 * or -1 after a message on stderr (exit status 2). */
int ib_cli_parse(int argc, char **argv, struct ib_cli *o);
void ib_cli_usage(FILE *f);

#endif
