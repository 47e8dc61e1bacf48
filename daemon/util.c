/* Small shared helpers of the daemon: arena, growable buffer, clocks, back-off.
 * Nothing here keeps global state. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct ib_arena_chunk {
    struct ib_arena_chunk *next;
    size_t used, size;
    max_align_t data[];
};

#define ARENA_CHUNK 16384

/* `size` bytes at a multiple of `align` (a power of two, at most that of max_align_t), not
 * zeroed. A request larger than a quarter chunk gets a chunk of its own, kept behind the current
 * one so that the current one's free space stays in use. */
static void *arena_take(struct ib_arena *a, size_t size, size_t align)
{
    struct ib_arena_chunk *c = a->chunks;
    size_t off = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (c && off <= c->size && c->size - off >= size) {
        c->used = off + size;
        return (char *)c->data + off;
    }
    bool own = size > ARENA_CHUNK / 4;
    size_t csize = own ? size : ARENA_CHUNK;
    struct ib_arena_chunk *n = malloc(sizeof *n + csize);
    if (!n) {
        fputs("ironbridge: out of memory\n", stderr);
        abort();
    }
    n->used = size;
    n->size = csize;
    if (own && c) {
        n->next = c->next;
        c->next = n;
    } else {
        n->next = c;
        a->chunks = n;
    }
    return n->data;
}

void *ib_arena_alloc(struct ib_arena *a, size_t size)
{
    return ib_arena_alloc_align(a, size, sizeof(max_align_t));
}

void *ib_arena_alloc_align(struct ib_arena *a, size_t size, size_t align)
{
    void *p = arena_take(a, size ? size : 1, align);
    memset(p, 0, size);
    return p;
}

char *ib_arena_strndup(struct ib_arena *a, const char *s, size_t n)
{
    char *p = arena_take(a, n + 1, 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ib_arena_strdup(struct ib_arena *a, const char *s)
{
    return s ? ib_arena_strndup(a, s, strlen(s)) : NULL;
}

/* GCC 12 with -fsanitize=undefined claims "null format string" for vsnprintf with a format
 * parameter (a false positive: UBSan's inserted null checks create a path it then warns about). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
char *ib_arena_printf(struct ib_arena *a, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = arena_take(a, (size_t)n + 1, 1);
    if ((size_t)n < sizeof small) {
        memcpy(p, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return p;
}
#pragma GCC diagnostic pop

void ib_arena_free(struct ib_arena *a)
{
    if (!a)
        return;
    struct ib_arena_chunk *c = a->chunks;
    while (c) {
        struct ib_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->chunks = NULL;
}

int ib_buf_reserve(struct ib_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int ib_buf_append(struct ib_buf *b, const void *data, size_t n)
{
    if (ib_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int ib_buf_puts(struct ib_buf *b, const char *s)
{
    return ib_buf_append(b, s, strlen(s));
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
int ib_buf_printf(struct ib_buf *b, const char *fmt, ...)
{
    if (ib_buf_reserve(b, 64) < 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= b->cap - b->len) {
        if (ib_buf_reserve(b, (size_t)n) < 0)
            return -1;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}
#pragma GCC diagnostic pop

void ib_buf_free(struct ib_buf *b)
{
    if (!b)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec ib_deadline_ms(int64_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += (time_t)(ms / 1000);
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    return dl;
}

void ib_thread_name(pthread_t t, const char *what, const char *name)
{
    char buf[16];
    snprintf(buf, sizeof buf, "ib-%s%s%s", what, name ? "/" : "", name ? name : "");
    pthread_setname_np(t, buf);
}

int ib_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

int64_t ib_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t ib_monotonic_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

uint64_t ib_util_rand64(uint64_t *s)
{
    /* xorshift64*: jitter only needs to decorrelate gateways, not to be secure. */
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

int64_t ib_backoff_ms(int64_t min_ms, int64_t max_ms, unsigned attempt, uint64_t *rng)
{
    int64_t cap = min_ms;
    for (unsigned i = 0; i < attempt && cap < max_ms; i++)
        cap *= 2;
    if (cap > max_ms)
        cap = max_ms;
    if (cap <= min_ms)
        return min_ms;
    return min_ms + (int64_t)(ib_util_rand64(rng) % (uint64_t)(cap - min_ms + 1));
}

void ib_stack_trim(void)
{
    pthread_attr_t at;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &at) != 0)
        return;
    int rc = pthread_attr_getstack(&at, &lo, &size);
    pthread_attr_destroy(&at);
    uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
    if (rc != 0 || frame < (uintptr_t)lo || frame >= (uintptr_t)lo + size)
        return;
    /* Nothing below this frame is live: the frame and the madvise() call beneath it take far
     * less than 1 KiB; the pages wholly below that go. */
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t top = (frame - 1024) & ~(pg - 1);
    uintptr_t base = ((uintptr_t)lo + pg - 1) & ~(pg - 1);
    if (top > base)
        madvise((void *)base, top - base, MADV_DONTNEED);
}
