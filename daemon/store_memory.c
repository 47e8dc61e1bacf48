/* The store's memory list: records held in memory, bounded by memory_max_bytes, while the disk
 * refuses writes (docs/store.md "The disk filling up"). */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"

/* ---- memory ---------------------------------------------------------------------------------- */

void store_mem_pop_head(struct ib_store *s)
{
    struct mrec *m = s->mhead;
    s->mhead = m->next;
    if (!s->mhead)
        s->mtail = NULL;
    s->mbytes -= m->size;
    s->mcount--;
    free(m);
}

void store_mem_drop_head(struct ib_store *s, int why)
{
    struct mrec *m = s->mhead;
    if (!m->done) {
        store_pending_sub(s, 1);
        store_drop_note(s, why, 1, m->seq, m->seq);
    }
    store_mem_pop_head(s);
}

void store_mem_trim(struct ib_store *s)
{
    while (s->mhead && s->mhead->done)
        store_mem_pop_head(s);
}

/* The first memory record with seq >= `seq`, starting from a hint when it is still valid. */
struct mrec *store_mem_find(struct ib_store *s, uint64_t seq, struct mrec *hint, uint64_t hint_seq)
{
    struct mrec *m = s->mhead;
    if (hint && s->mhead && hint_seq >= s->mhead->seq && hint_seq <= seq)
        m = hint;
    while (m && m->seq < seq)
        m = m->next;
    return m;
}

bool store_mem_append(struct ib_store *s, uint64_t seq, int64_t ts, const char *topic, size_t tl,
                      const struct iovec *parts, int n_parts)
{
    size_t plen = 0;
    for (int i = 0; i < n_parts; i++)
        plen += parts[i].iov_len;
    size_t size = sizeof(struct mrec) + tl + 1 + plen + 1;
    while (s->mhead && s->mbytes + size > (uint64_t)s->cfg->memory_max_bytes)
        store_mem_drop_head(s, DROP_MEMORY);
    struct mrec *m = size <= (uint64_t)s->cfg->memory_max_bytes ? malloc(size) : NULL;
    if (!m) {
        store_drop_note(s, DROP_MEMORY, 1, seq, seq);
        return false;
    }
    *m = (struct mrec){
        .seq = seq, .ts = ts, .size = size, .tl = (uint32_t)tl, .len = (uint32_t)plen};
    memcpy(m->data, topic, tl);
    m->data[tl] = '\0';
    char *p = m->data + tl + 1;
    for (int i = 0; i < n_parts; i++) {
        memcpy(p, parts[i].iov_base, parts[i].iov_len);
        p += parts[i].iov_len;
    }
    *p = '\0';
    if (s->mtail)
        s->mtail->next = m;
    else
        s->mhead = m;
    s->mtail = m;
    s->mbytes += size;
    s->mcount++;
    s->disk_fail_mem++;
    if (seq + MEM_RESERVE / 2 > s->mem_floor_ok)
        pthread_cond_signal(&s->fcv);
    return true;
}
