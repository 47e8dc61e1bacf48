/* The configuration loader: reads the main file and its conf.d drop-ins (YAML, one document
 * each) and hands their trees to the sections (config_core.c, config_conns.c); a configuration
 * is returned only when no error was found, and every error found is reported. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_loader.h"

void ib_loader_use_doc(struct ib_loader *L, size_t i)
{
    L->cur = i;
    L->t = &L->docs[i]->tree;
    L->file = L->docs[i]->file;
    L->dir = L->docs[i]->dir;
}

size_t ib_loader_add_doc(struct ib_loader *L, struct ib_srcdoc *sd)
{
    struct ib_srcdoc **nd = realloc(L->docs, (L->n_docs + 1) * sizeof *nd);
    if (!nd)
        abort();
    L->docs = nd;
    L->docs[L->n_docs] = sd;
    return L->n_docs++;
}

/* Read a YAML file (or `text`, standing for that file) into a new document; -1 on error.
 * `shown`: the name messages give it (NULL: `path`); its relative paths resolve against the
 * directory of `path` all the same. */
static int read_yaml(struct ib_loader *L, const char *path, const char *text, const char *shown)
{
    const char *rpath = path;
    path = shown ? shown : path;
    FILE *f = text ? fmemopen((void *)text, strlen(text), "rb") : fopen(rpath, "rb");
    if (!f) {
        ib_diag_add(L->diag, NULL, NULL, "%s: cannot open the configuration: %s", path,
                    strerror(errno));
        return -1;
    }
    struct ib_srcdoc *sd = ib_arena_alloc(&L->cfg->arena, sizeof *sd);
    sd->file = ib_arena_strdup(&L->cfg->arena, path);
    char *dir = ib_arena_strdup(&L->cfg->arena, rpath);
    char *slash = strrchr(dir, '/');
    sd->dir = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    ib_ytree_init(&sd->tree, &L->strings);
    struct yerror ye;
    int rc = -1;
    if (ib_ytree_load(&sd->tree, &parser, &ye) < 0) {
        ib_diag_add(L->diag, NULL, NULL, "%s:%zu:%zu: YAML syntax error: %s%s%s", path, ye.line,
                    ye.col, ye.problem ? ye.problem : "unknown", ye.context ? " " : "",
                    ye.context ? ye.context : "");
        ib_ytree_free(&sd->tree);
    } else {
        /* A second document in the same file would be silently ignored: refuse it. It is read
         * into a scratch tree whose strings are thrown away with it. */
        struct ib_arena scratch = {0};
        struct ystrpool sp = {.arena = &scratch};
        struct ytree doc2;
        ib_ytree_init(&doc2, &sp);
        if (ib_ytree_root(&sd->tree) && ib_ytree_load(&doc2, &parser, &ye) == 0 &&
            ib_ytree_root(&doc2))
            ib_diag_add(L->diag, NULL, NULL,
                        "%s: holds more than one YAML document ('---'); keep one", path);
        ib_ytree_free(&doc2);
        ib_ystr_free(&sp);
        ib_arena_free(&scratch);
        rc = (int)ib_loader_add_doc(L, sd);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* conf.d/NAME.yaml beside the main file, in lexical order; `extra` stands for one of them (or is
 * added in its place). */
static void read_dropins(struct ib_loader *L, const char *main_path,
                         const struct ib_config_extra *extra)
{
    char *dir = ib_arena_strdup(&L->cfg->arena, main_path);
    char *slash = strrchr(dir, '/');
    const char *cdir =
        ib_arena_printf(&L->cfg->arena, "%s/conf.d", slash ? (*slash = '\0', dir) : ".");
    L->cfg->dropin_dir = cdir;
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(cdir);
    if (!d && errno != ENOENT)
        ib_diag_add(L->diag, NULL, NULL, "%s: cannot read the drop-in directory: %s", cdir,
                    strerror(errno));
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn)
            abort();
        names = nn;
        names[n++] = ib_arena_strdup(&L->cfg->arena, e->d_name);
    }
    if (d)
        closedir(d);
    bool extra_seen = false;
    if (extra && extra->name) {
        for (size_t i = 0; i < n; i++)
            extra_seen |= strcmp(names[i], extra->name) == 0;
        if (!extra_seen) {
            char **nn = realloc(names, (n + 1) * sizeof *nn);
            if (!nn)
                abort();
            names = nn;
            names[n++] = (char *)extra->name;
        }
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        const char *path = ib_arena_printf(&L->cfg->arena, "%s/%s", cdir, names[i]);
        bool is_extra = extra && extra->name && strcmp(names[i], extra->name) == 0;
        read_yaml(L, path, is_extra ? extra->text : NULL, is_extra ? extra->shown_as : NULL);
    }
    free(names);
}

struct ib_config *ib_config_load_ex(const char *path, struct ib_plugin_registry *plugins,
                                    struct ib_diag *diag, const struct ib_config_extra *extra)
{
    size_t errs_before = ib_diag_total(diag);
    struct ib_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        ib_diag_add(diag, NULL, NULL, "out of memory");
        return NULL;
    }
    cfg->refs = 1;
    cfg->file = ib_arena_strdup(&cfg->arena, path);
    struct ib_loader L = {.cfg = cfg, .diag = diag, .plugins = plugins, .strings = {&cfg->arena}};
    if (read_yaml(&L, path, NULL, NULL) == 0) {
        read_dropins(&L, path, extra);
        L.n_tree = L.n_docs;
        ib_loader_use_doc(&L, 0);
        struct ynode *root = ib_ytree_root(L.t);
        if (!root || (root->type == YNODE_SCALAR && !*scalar(root) && L.n_tree == 1)) {
            ib_diag_add(diag, NULL, NULL, "%s: the configuration is empty", path);
        } else {
            ib_loader_core(&L);
            ib_loader_connections(&L);
            ib_loader_sparkplug_names(&L);
            if (!cfg->has_north && cfg->remote.enabled)
                ib_diag_add(diag, NULL, NULL,
                            "%s: remote_config is enabled but there is no north.mqtt section to "
                            "receive documents from",
                            path);
            if (!cfg->has_north && cfg->n_connections > 0 && !(extra && extra->north_optional))
                ib_diag_add(diag, NULL, NULL,
                            "%s: connections are configured but there is no north.mqtt section: "
                            "the values would go nowhere",
                            path);
        }
    }
    cfg->n_files = L.n_tree;
    for (size_t i = 0; i < L.n_docs; i++)
        ib_ytree_free(&L.docs[i]->tree);
    ib_ystr_free(&L.strings);
    ib_nameset_free(&L.device_names);
    free(L.docs);
    if (ib_diag_total(diag) > errs_before) {
        ib_config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct ib_config *ib_config_load(const char *path, struct ib_plugin_registry *plugins,
                                 struct ib_diag *diag)
{
    return ib_config_load_ex(path, plugins, diag, NULL);
}

struct ib_config *ib_config_ref(struct ib_config *cfg)
{
    cfg->refs++;
    return cfg;
}

void ib_config_free(struct ib_config *cfg)
{
    if (!cfg || --cfg->refs > 0)
        return;
    ib_arena_free(&cfg->arena);
    free(cfg);
}

const struct ib_where *ib_config_where(const void *where)
{
    return where;
}
