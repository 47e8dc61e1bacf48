/* Plugin loading and the ABI v1 checks (major equal, minor not newer, size as the minor needs,
 * required callbacks and schemas present). Nothing of a plugin is called before it passes. */
#include "plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib_build_config.h"

struct loaded {
    char *name;
    char *path;
    void *handle;
    const struct ib_plugin *desc;
};

struct ib_plugin_registry {
    char *dir;
    bool fixed;
    struct loaded *v;
    size_t n;
};

/* The descriptor size each minor of ABI 1 requires: growth is additive, so a plugin built
 * against minor m must be at least this big. A new minor appends its size here (the size of
 * struct ib_plugin once its new fields are in); the entries of older minors never change. */
static const uint32_t abi1_size_for_minor[] = {
    [0] = (uint32_t)sizeof(struct ib_plugin),
    [1] = (uint32_t)sizeof(struct ib_plugin), /* wait_events, group_schema: from reserved */
};
/* 1.1 carved its fields out of the reserved tail: the descriptor kept its 1.0 size. */
_Static_assert(sizeof(struct ib_plugin) == 8 + 20 * sizeof(void *),
               "struct ib_plugin must keep its ABI 1.0 size");
_Static_assert(sizeof abi1_size_for_minor / sizeof abi1_size_for_minor[0] == IB_ABI_MINOR + 1,
               "abi1_size_for_minor needs one entry per minor up to IB_ABI_MINOR");

struct ib_plugin_registry *ib_plugins_new(const char *dir, bool fixed)
{
    struct ib_plugin_registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->dir = strdup(dir);
    if (!r->dir) {
        free(r);
        return NULL;
    }
    r->fixed = fixed;
    return r;
}

int ib_plugins_prefer_dir(struct ib_plugin_registry *r, const char *dir)
{
    if (r->fixed || r->n)
        return -1;
    char *d = strdup(dir);
    if (!d)
        return -1;
    free(r->dir);
    r->dir = d;
    return 0;
}

void ib_plugins_free(struct ib_plugin_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        /* Under AddressSanitizer, unloading would lose the symbols of leak reports. */
#if !defined(__SANITIZE_ADDRESS__)
        dlclose(r->v[i].handle);
#endif
        free(r->v[i].name);
        free(r->v[i].path);
    }
    free(r->v);
    free(r->dir);
    free(r);
}

const char *ib_plugins_dir(const struct ib_plugin_registry *r)
{
    return r->dir;
}

int ib_plugin_check(const struct ib_plugin *p, const char *path, char *err, size_t errlen)
{
    return ib_plugin_check_abi(p, path, IB_ABI_MINOR, abi1_size_for_minor, err, errlen);
}

int ib_plugin_check_abi(const struct ib_plugin *p, const char *path, unsigned host_minor,
                        const uint32_t *size_for_minor, char *err, size_t errlen)
{
    const unsigned maj = IB_ABI_MAJOR, min = host_minor;
    if (p->abi_major != maj) {
        snprintf(err, errlen,
                 "plugin %s was built for plugin ABI %u.%u, this daemon provides ABI %u.%u: "
                 "rebuild the plugin against ironbridge-plugin %u.x",
                 path, p->abi_major, p->abi_minor, maj, min, maj);
        return -1;
    }
    if (p->abi_minor > min) {
        snprintf(err, errlen,
                 "plugin %s needs plugin ABI %u.%u, this daemon provides only ABI %u.%u: "
                 "upgrade ironbridge or use a plugin built for %u.%u",
                 path, p->abi_major, p->abi_minor, maj, min, maj, min);
        return -1;
    }
    uint32_t need = size_for_minor[p->abi_minor];
    if (p->size < need) {
        snprintf(err, errlen,
                 "plugin %s declares ABI %u.%u but its descriptor is %u bytes, ABI %u.%u needs "
                 "%u (this daemon provides ABI %u.%u): the plugin was built with mismatched "
                 "headers; rebuild it",
                 path, p->abi_major, p->abi_minor, p->size, p->abi_major, p->abi_minor, need, maj,
                 min);
        return -1;
    }
    const char *missing = NULL;
    if (!p->name || !*p->name)
        missing = "name";
    else if (!p->version)
        missing = "version";
    else if (!p->connection_schema || !p->device_schema || !p->tag_schema)
        missing = "a config schema";
    else if (!p->create)
        missing = "create()";
    else if (!p->destroy)
        missing = "destroy()";
    else if (!p->open)
        missing = "open()";
    else if (!p->close)
        missing = "close()";
    else if (!p->read_group)
        missing = "read_group()";
    if (missing) {
        snprintf(err, errlen, "plugin %s (ABI %u.%u) has no %s, which ABI %u.%u requires", path,
                 p->abi_major, p->abi_minor, missing, p->abi_major, p->abi_minor);
        return -1;
    }
    return 0;
}

static const struct ib_plugin *load_path(const char *path, void **handle, char *err, size_t errlen)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load plugin %s: %s", path, dlerror());
        return NULL;
    }
    const struct ib_plugin *p = dlsym(h, IB_PLUGIN_SYMBOL);
    if (!p) {
        snprintf(err, errlen,
                 "%s is not an ironbridge plugin: it exports no '%s' descriptor (build it with "
                 "IB_PLUGIN_DEFINE from <ironbridge/plugin.h>)",
                 path, IB_PLUGIN_SYMBOL);
        dlclose(h);
        return NULL;
    }
    if (ib_plugin_check(p, path, err, errlen) < 0) {
        dlclose(h);
        return NULL;
    }
    *handle = h;
    return p;
}

static int valid_name(const char *name)
{
    if (!*name || strlen(name) > 64)
        return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return 0;
    return 1;
}

const struct ib_plugin *ib_plugins_get(struct ib_plugin_registry *r, const char *name, char *err,
                                       size_t errlen)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return r->v[i].desc;
    if (!valid_name(name)) {
        snprintf(err, errlen, "'%s' is not a plugin name (lower-case letters, digits and '_')",
                 name);
        return NULL;
    }
    char path[PATH_MAX];
    /* Installed plugins sit directly in the directory; in the build tree each has a folder. */
    snprintf(path, sizeof path, "%s/%s.so", r->dir, name);
    if (access(path, F_OK) != 0) {
        char alt[PATH_MAX];
        snprintf(alt, sizeof alt, "%s/%s/%s.so", r->dir, name, name);
        if (access(alt, F_OK) != 0) {
            snprintf(err, errlen,
                     "unknown plugin '%s': no %s in the plugin directory %s (see "
                     "`ironbridge --list-plugins`, or set --plugin-dir)",
                     name, path, r->dir);
            return NULL;
        }
        memcpy(path, alt, sizeof path);
    }
    void *h = NULL;
    const struct ib_plugin *p = load_path(path, &h, err, errlen);
    if (!p)
        return NULL;
    if (strcmp(p->name, name) != 0) {
        snprintf(err, errlen, "plugin file %s names itself '%s', not '%s'", path, p->name, name);
        dlclose(h);
        return NULL;
    }
    struct loaded *v = realloc(r->v, (r->n + 1) * sizeof *v);
    if (!v) {
        dlclose(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->v = v;
    r->v[r->n] = (struct loaded){strdup(name), strdup(path), h, p};
    r->n++;
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ib_plugins_scan(struct ib_plugin_registry *r, ib_plugin_visit_fn fn, void *ud)
{
    DIR *d = opendir(r->dir);
    if (!d) {
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof msg, "cannot open the plugin directory %s", r->dir);
        fn(r->dir, NULL, msg, ud);
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(e->d_name);
        char *cand = NULL;
        if (len > 3 && strcmp(e->d_name + len - 3, ".so") == 0)
            cand = strndup(e->d_name, len - 3);
        else if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN)
            cand = strdup(e->d_name); /* build tree: plugins/<name>/<name>.so */
        if (!cand)
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn) {
            free(cand);
            break;
        }
        names = nn;
        names[n++] = cand;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s.so", r->dir, names[i]);
        char alt[PATH_MAX];
        snprintf(alt, sizeof alt, "%s/%s/%s.so", r->dir, names[i], names[i]);
        if (access(path, F_OK) != 0 && access(alt, F_OK) != 0) {
            free(names[i]);
            continue;
        }
        char err[1024];
        const struct ib_plugin *p = ib_plugins_get(r, names[i], err, sizeof err);
        fn(access(path, F_OK) == 0 ? path : alt, p, p ? NULL : err, ud);
        free(names[i]);
    }
    free(names);
}

const char *ib_plugins_default_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        size_t rl = strlen(IB_BUILD_ROOT);
        if (strncmp(exe, IB_BUILD_ROOT, rl) == 0 && exe[rl] == '/')
            return IB_BUILD_PLUGIN_DIR;
    }
    return IB_PLUGIN_DIR;
}
