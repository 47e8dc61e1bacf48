/* bench_pub: the practical MQTT publish limit of this machine, for the suite to compare the
 * gateway with: a raw paho MQTTAsync loop publishing SIZE-byte messages at QoS 0 or 1 into the
 * broker for SECONDS, keeping at most WINDOW messages handed to paho and not yet completed (as
 * the gateway's north does with max_inflight). With WINDOW 0 it bypasses paho: MQTT 3.1.1
 * CONNECT, then QoS 0 PUBLISH packets written straight to a blocking TCP socket (the broker's
 * and the machine's limit, without any client library). Prints one JSON object; delivered
 * figures come from the subscriber the suite runs beside it. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

static atomic_long done, failed, outstanding;
static atomic_int state; /* 0 connecting, 1 connected, -1 failed */
static sem_t slots;      /* free places in the window */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&done, 1);
    atomic_fetch_sub(&outstanding, 1);
    sem_post(&slots);
}

static void on_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&failed, 1);
    atomic_fetch_sub(&outstanding, 1);
    sem_post(&slots);
}

static void on_conn(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_store(&state, 1);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    (void)r;
    atomic_store(&state, -1);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t put_len(uint8_t *out, size_t len)
{
    size_t i = 0;
    do {
        uint8_t b = len % 128;
        len /= 128;
        out[i++] = (uint8_t)(b | (len ? 0x80 : 0));
    } while (len);
    return i;
}

/* QoS 0 PUBLISH packets written to the socket in a loop: no client library in the way. */
static int socket_loop(const char *url, const char *topic, char *payload, int size, double seconds)
{
    int port = atoi(strrchr(url, ':') + 1);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return 1;
    static const uint8_t conn[] = {0x10, 22, 0,   4,   'M', 'Q', 'T', 'T', 4,   2,   0,   60,
                                   0,    10, 'b', 'e', 'n', 'c', 'h', '-', 'r', 'a', 'w', '0'};
    uint8_t ack[4];
    if (write_all(fd, conn, sizeof conn) < 0 || recv(fd, ack, 4, MSG_WAITALL) != 4 ||
        ack[0] != 0x20 || ack[3] != 0)
        return 1;
    size_t tl = strlen(topic);
    uint8_t hdr[16];
    size_t h = 0;
    hdr[h++] = 0x30;
    h += put_len(hdr + h, 2 + tl + (size_t)size);
    hdr[h++] = (uint8_t)(tl >> 8);
    hdr[h++] = (uint8_t)tl;
    size_t plen = h + tl + (size_t)size;
    char *pkt = malloc(plen);
    memcpy(pkt, hdr, h);
    memcpy(pkt + h, topic, tl);
    memcpy(pkt + h + tl, payload, (size_t)size);
    uint64_t n = 0;
    double t0 = mono_s(), end = t0 + seconds;
    while (mono_s() < end && write_all(fd, pkt, plen) == 0)
        n++;
    double el = mono_s() - t0;
    static const uint8_t disc[] = {0xE0, 0};
    write_all(fd, disc, 2);
    close(fd);
    free(pkt);
    printf("{\"client\":\"raw socket\",\"size\":%d,\"qos\":0,\"window\":0,\"seconds\":%.3f,"
           "\"messages\":%" PRIu64 ",\"errors\":0,\"messages_per_s\":%.0f,\"bytes_per_s\":%.0f}\n",
           size, el, n, (double)n / el, (double)n * size / el);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: bench_pub URL TOPIC SIZE QOS SECONDS WINDOW\n");
        return 2;
    }
    const char *url = argv[1], *topic = argv[2];
    int size = atoi(argv[3]), qos = atoi(argv[4]), window = atoi(argv[6]);
    double seconds = atof(argv[5]);
    char *payload = malloc((size_t)size);
    /* A record-like body: "name":{"v":N,"q":"good","ts":...} repeated. */
    const char *unit = "\"t0000\":{\"v\":12345,\"q\":\"good\",\"ts\":1764163200120},";
    size_t ul = strlen(unit);
    for (int i = 0; i < size; i++)
        payload[i] = unit[(size_t)i % ul];
    if (window == 0) {
        int rc = socket_loop(url, topic, payload, size, seconds);
        free(payload);
        return rc;
    }
    sem_init(&slots, 0, (unsigned)window);
    MQTTAsync c;
    if (MQTTAsync_create(&c, url, "bench-pub", MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTASYNC_SUCCESS)
        return 1;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    co.maxInflight = window + 4;
    co.onSuccess = on_conn;
    co.onFailure = on_conn_fail;
    if (MQTTAsync_connect(c, &co) != MQTTASYNC_SUCCESS)
        return 1;
    for (int i = 0; i < 1000 && atomic_load(&state) == 0; i++)
        usleep(10000);
    if (atomic_load(&state) != 1) {
        fprintf(stderr, "bench_pub: cannot connect to %s\n", url);
        return 1;
    }
    double t0 = mono_s(), end = t0 + seconds;
    while (mono_s() < end) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 100000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
        if (sem_timedwait(&slots, &dl) != 0)
            continue;
        MQTTAsync_message m = MQTTAsync_message_initializer;
        m.payload = payload;
        m.payloadlen = size;
        m.qos = qos;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onSuccess = on_ok;
        ro.onFailure = on_fail;
        atomic_fetch_add(&outstanding, 1);
        if (MQTTAsync_sendMessage(c, topic, &m, &ro) != MQTTASYNC_SUCCESS) {
            atomic_fetch_sub(&outstanding, 1);
            atomic_fetch_add(&failed, 1);
            sem_post(&slots);
            usleep(1000);
        }
    }
    double el = mono_s() - t0;
    long n = atomic_load(&done);
    printf("{\"client\":\"paho MQTTAsync\",\"size\":%d,\"qos\":%d,\"window\":%d,\"seconds\":%.3f,"
           "\"messages\":%ld,\"errors\":%ld,\"messages_per_s\":%.0f,\"bytes_per_s\":%.0f}\n",
           size, qos, window, el, n, atomic_load(&failed), (double)n / el, (double)n * size / el);
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    MQTTAsync_disconnect(c, &d);
    usleep(200000);
    MQTTAsync_destroy(&c);
    free(payload);
    return 0;
}
