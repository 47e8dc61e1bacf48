/* fuzz_config.c: fuzz target of the configuration loader (ib_config_load_ex): the main YAML
 * file, drop-ins in conf.d/, a CSV tag list and the text that stands for a remote document,
 * with the real Modbus plugin's schemas (the built modbus.so).
 *
 * Input: the main file's text, then optional parts, each started by a line "%%<kind>" (the rest
 * of that line is ignored): %%d a drop-in conf.d/NN.yaml (in order, at most 16), %%c the CSV
 * file tags.csv (a group's `tags_csv: tags.csv` reads it), %%x the text standing for
 * conf.d/remote.yaml (ib_config_extra, as a verified remote document is checked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_util.h"
#include "ib_build_config.h"
#include "log.h"
#include "plugin_loader.h"

static struct ib_plugin_registry *plugins;
static char main_path[512], dropin_dir[512], csv_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ib_log_init(IB_LOG_ERR);
    const char *dir = getenv("IB_FUZZ_PLUGIN_DIR");
    plugins = ib_plugins_new(dir ? dir : IB_BUILD_PLUGIN_DIR, true);
    fz_path(main_path, sizeof main_path, "ironbridge.yaml");
    fz_path(dropin_dir, sizeof dropin_dir, "conf.d");
    fz_path(csv_path, sizeof csv_path, "tags.csv");
    mkdir(dropin_dir, 0700);
    return 0;
}

/* The next part marker "\n%%" at or after p, or NULL. */
static const char *next_marker(const char *p, const char *end)
{
    for (; p + 3 <= end; p++) {
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p || p + 3 > end)
            return NULL;
        if (p[1] == '%' && p[2] == '%')
            return p;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    fz_clear_dir(dropin_dir);
    unlink(csv_path);
    char *extra_text = NULL;
    int n_dropins = 0;
    char kind = 'm';
    for (;;) {
        const char *m = next_marker(p, end);
        const char *part_end = m ? m + 1 : end; /* the part keeps its last newline */
        size_t len = (size_t)(part_end - p);
        if (kind == 'm') {
            fz_write(main_path, p, len);
        } else if (kind == 'd' && n_dropins < 16) {
            char name[600];
            snprintf(name, sizeof name, "%s/%02d.yaml", dropin_dir, n_dropins++);
            fz_write(name, p, len);
        } else if (kind == 'c') {
            fz_write(csv_path, p, len);
        } else if (kind == 'x') {
            free(extra_text);
            extra_text = strndup(p, len);
        }
        if (!m)
            break;
        kind = m + 3 < end ? m[3] : 'm';
        const char *nl = memchr(m + 1, '\n', (size_t)(end - m - 1));
        p = nl ? nl + 1 : end;
    }
    struct ib_diag diag = {0};
    struct ib_config_extra extra = {.name = "remote.yaml", .text = extra_text};
    struct ib_config *cfg =
        ib_config_load_ex(main_path, plugins, &diag, extra_text ? &extra : NULL);
    ib_config_free(cfg);
    ib_diag_free(&diag);
    free(extra_text);
    return 0;
}
