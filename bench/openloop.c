/* The open-loop HTTP load generator of bench/openloop.py, in C (what wrk2 does; Debian does not package wrk2).
 *
 * Requests are scheduled at a fixed rate; each latency is measured from its SCHEDULED send time, so a slow answer
 * cannot hide the requests that should have been sent meanwhile (no coordinated omission). One thread, epoll,
 * keep-alive connections, one request in flight per connection; a scheduled request waits in a FIFO for a free
 * connection (that wait counts in its latency). A timerfd armed at the next scheduled time (absolute, ns) wakes
 * the loop. The generator's own lateness (scheduled -> noticed by the loop) is reported, so a starved generator
 * shows. Same arguments and the same JSON as bench/openloop.py; bench/api.py builds it with `cc -O2` and falls back
 * to the Python generator when no compiler is found.
 *
 *   openloop PORT PATH KEY BODY RATE SECONDS CONNECTIONS   (host 127.0.0.1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    long busy;          /* index of the request in flight, -1: idle */
    char buf[65536];
    size_t len;
} conn_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(2);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *xs, long n, double q) {
    if (n == 0) return -1;
    long i = (long)(q * n);
    return (i < n ? xs[i] : xs[n - 1]) * 1000.0;
}

/* a complete response in c->buf: its length (head + body) and status, else 0 */
static size_t complete(conn_t *c, int *status) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = end - c->buf + 4, body = 0;
    *status = atoi(c->buf + 9);
    for (char *p = c->buf; p < end; p++) {
        if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) body = strtoul(p + 15, 0, 10);
    }
    return c->len >= head + body ? head + body : 0;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: openloop PORT PATH KEY BODY RATE SECONDS CONNECTIONS\n");
        return 2;
    }
    int port = atoi(argv[1]), rate = atoi(argv[5]), nconn = atoi(argv[7]);
    const char *path = argv[2], *key = argv[3], *body = argv[4];
    long total = (long)(rate * atof(argv[6]));
    char req[16384];
    int reqlen = snprintf(req, sizeof req,
                          "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                          path, port, key, strlen(body), body);
    double *sched = calloc(total, sizeof *sched), *lat = calloc(total, sizeof *lat), *late = calloc(total, sizeof *late);
    long *fifo = calloc(total, sizeof *fifo), head = 0, tail = 0, answered = 0, errors = 0, next = 0;
    double last_queued = 0;
    long statuses[600] = {0};
    conn_t *conns = calloc(nconn, sizeof *conns);
    int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = dial(port);
        conns[i].busy = -1;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    usleep(200000); /* connections open before the clock starts (as in the Python generator) */
    double t0 = now_s();
    for (long i = 0; i < total; i++) sched[i] = t0 + (double)i / rate;
    struct epoll_event evs[256];
    while (answered + errors < total) {
        double now = now_s();
        while (next < total && sched[next] <= now) { /* due: queue it, note how late the loop noticed */
            late[next] = now - sched[next];
            fifo[tail++] = next++;
            last_queued = now;
        }
        for (int i = 0; i < nconn && head < tail; i++) {
            conn_t *c = &conns[i];
            if (c->busy >= 0) continue;
            if (write(c->fd, req, reqlen) != reqlen) { /* a short write on loopback: treat as an error */
                errors++;
                head++;
                continue;
            }
            c->busy = fifo[head++];
        }
        if (next < total) {
            double at = sched[next];
            struct itimerspec its = {.it_value = {.tv_sec = (time_t)at, .tv_nsec = (long)((at - (time_t)at) * 1e9)}};
            if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u64 == (uint64_t)-1) {
                uint64_t x;
                if (read(tfd, &x, sizeof x) < 0) { /* spurious wake-up: nothing to read */ }
                continue;
            }
            conn_t *c = &conns[evs[k].data.u64];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r <= 0) { /* the server closed the connection: count the request lost, dial again */
                if (c->busy >= 0) errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = dial(port);
                c->busy = -1;
                c->len = 0;
                ev.data.u64 = evs[k].data.u64;
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                continue;
            }
            c->len += r;
            int status;
            size_t used = complete(c, &status);
            if (used && c->busy >= 0) {
                lat[answered++] = now_s() - sched[c->busy];
                statuses[status > 0 && status < 600 ? status : 0]++;
                c->busy = -1;
                memmove(c->buf, c->buf + used, c->len - used);
                c->len -= used;
            }
        }
    }
    double sent_for = last_queued - t0; /* as the Python generator: start -> the last request queued */
    qsort(lat, answered, sizeof *lat, cmp);
    qsort(late, total, sizeof *late, cmp);
    printf("{\"open_loop\": true, \"generator\": \"c\", \"target_rate_per_s\": %d, \"scheduled\": %ld, "
           "\"answered\": %ld, \"achieved_schedule_rate_per_s\": %.1f, \"connections\": %d, \"p50_ms\": %.3f, "
           "\"p99_ms\": %.3f, \"p99_9_ms\": %.3f, \"max_ms\": %.3f, \"generator_lateness_p99_ms\": %.3f, "
           "\"generator_lateness_max_ms\": %.3f, \"statuses\": {",
           rate, total, answered, total / sent_for, nconn, pct(lat, answered, 0.50),
           pct(lat, answered, 0.99), pct(lat, answered, 0.999), answered ? lat[answered - 1] * 1000 : -1,
           pct(late, total, 0.99), late[total - 1] * 1000);
    int first = 1;
    for (int s = 0; s < 600; s++) {
        if (statuses[s]) {
            printf("%s\"%d\": %ld", first ? "" : ", ", s, statuses[s]);
            first = 0;
        }
    }
    printf("}, \"errors\": %ld}\n", errors);
    return 0;
}
