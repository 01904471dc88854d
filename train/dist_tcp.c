// The TCP transport: data parallelism without MPI, over plain sockets (IPv4).
//
// Rendezvous: rank 0 listens on HOST:PORT (tcp://) or on a free port it writes into a shared file
// (file://). Every other rank opens its own listening socket on a free port, connects to rank 0
// and says hello {rank, world, its port}; rank 0 answers everyone with the table of addresses.
// Then each rank connects to rank+1 and accepts rank-1: a ring. The rendezvous sockets close.
//
// Collectives are ring algorithms: reduce-scatter (W-1 steps, each rank sends one slice to its
// successor and adds the slice it receives) and all-gather (W-1 steps of copying); all-reduce is
// the two. Each rank sends and receives 2(W-1)/W of the buffer, the bandwidth-optimal amount, and
// every rank ends with the same bits (each slice is summed once, in one order, then copied).
// Limits: one TCP stream per neighbour, no overlap with compute, so expect about the link's
// bandwidth (loopback: GB/s; 10 GbE: ~1 GB/s) and a latency of W-1 round trips per collective.
//
// Every wait has a deadline: nothing moving for `timeout` seconds, or a peer closing its socket
// (the kernel closes the sockets of a killed process), stops the run with an error naming the peer.
#include "train/dist.h"
#include "util/util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELLO_MAGIC 0x5453494d4c4c5454ull  // "TTLLMIST": a tracellm rank, not a stray connection

typedef struct {
    uint64_t magic;
    int32_t rank, world, port, pad;
} Hello;

typedef struct {
    uint32_t ip;  // network order; 0 = the rendezvous host (rank 0)
    int32_t port;
} Addr;

typedef struct {
    Transport ops;
    int rank, world;
    double timeout;
    int next, prev;        // send to rank+1, receive from rank-1
    char *tmp;             // receive buffer of a reduce-scatter step
    size_t tmp_cap;
    size_t *count, *off;   // even split of an all-reduce
    char file[4096];       // file:// rendezvous file, removed by rank 0 at the end
} Tcp;

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

// Moves n bytes over fd in direction `out` (send) or in (recv) before the deadline.
static void io_all(Tcp *t, int fd, void *buf, size_t n, bool out, double deadline, int peer, const char *what) {
    char *p = buf;
    while (n) {
        int ms = (int)((deadline - now_seconds()) * 1000);
        if (ms <= 0) {
            char who[32];
            if (peer >= 0) snprintf(who, sizeof who, "rank %d", peer);
            else snprintf(who, sizeof who, "a joining process");
            fatal("rank %d: %s: %s did not answer within %.0f s (--dist-timeout); it died or hangs", t->rank, what, who, t->timeout);
        }
        struct pollfd pf = {fd, out ? POLLOUT : POLLIN, 0};
        int r = poll(&pf, 1, ms > 1000 ? 1000 : ms);
        if (r < 0 && errno != EINTR) fatal("rank %d: poll: %s", t->rank, strerror(errno));
        if (r <= 0) continue;
        ssize_t k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k == 0 && !out) {
            if (peer < 0) fatal("rank %d: %s: a joining process closed the connection (not a tracellm rank?)", t->rank, what);
            fatal("rank %d: %s: rank %d closed the connection; it probably died (see its output)", t->rank, what, peer);
        }
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
            fatal("rank %d: %s: connection to rank %d lost (%s); it probably died (see its output)", t->rank, what, peer, strerror(errno));
        }
        p += k; n -= (size_t)k;
    }
}

// Sends sn bytes to the successor while receiving rn bytes from the predecessor, both at once: a
// ring where everyone first sends would deadlock once the socket buffers are full. The deadline
// restarts whenever a byte moves, so a slow link is fine and only a stalled peer times out.
static void exchange(Tcp *t, const char *sbuf, size_t sn, char *rbuf, size_t rn, const char *what) {
    int nxt = (t->rank + 1) % t->world, prv = (t->rank + t->world - 1) % t->world;
    double last = now_seconds();
    while (sn || rn) {
        struct pollfd pf[2];
        int np = 0, is = -1, ir = -1;
        if (sn) { pf[np] = (struct pollfd){t->next, POLLOUT, 0}; is = np++; }
        if (rn) { pf[np] = (struct pollfd){t->prev, POLLIN, 0}; ir = np++; }
        int ms = (int)((last + t->timeout - now_seconds()) * 1000);
        if (ms <= 0) {
            char who[64];
            if (nxt == prv) snprintf(who, sizeof who, "rank %d", nxt);
            else snprintf(who, sizeof who, "rank %d or rank %d", rn ? prv : nxt, rn ? nxt : prv);
            fatal("rank %d: %s: no data moved for %.0f s (--dist-timeout): %s died or hangs", t->rank, what, t->timeout, who);
        }
        int r = poll(pf, np, ms > 1000 ? 1000 : ms);
        if (r < 0 && errno != EINTR) fatal("rank %d: poll: %s", t->rank, strerror(errno));
        if (r <= 0) continue;
        if (is >= 0 && pf[is].revents) {
            ssize_t k = send(t->next, sbuf, sn, MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                fatal("rank %d: %s: connection to rank %d lost (%s); it probably died (see its output)", t->rank, what, nxt, strerror(errno));
            if (k > 0) { sbuf += k; sn -= (size_t)k; last = now_seconds(); }
        }
        if (ir >= 0 && pf[ir].revents) {
            ssize_t k = recv(t->prev, rbuf, rn, 0);
            if (k == 0) fatal("rank %d: %s: rank %d closed the connection; it probably died (see its output)", t->rank, what, prv);
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                fatal("rank %d: %s: connection to rank %d lost (%s); it probably died (see its output)", t->rank, what, prv, strerror(errno));
            if (k > 0) { rbuf += k; rn -= (size_t)k; last = now_seconds(); }
        }
    }
}

// ---- ring collectives ----

static int mod(int a, int w) { return ((a % w) + w) % w; }

static void add_f32(void *dst, const void *src, size_t n) {
    float *d = dst;
    const float *s = src;
    for (size_t i = 0; i < n; i++) d[i] += s[i];
}
static void add_f64(void *dst, const void *src, size_t n) {
    double *d = dst;
    const double *s = src;
    for (size_t i = 0; i < n; i++) d[i] += s[i];
}

// Step s: send slice r-s-1 (partially summed), receive slice r-s-2 and add. After W-1 steps slice
// r has been summed over every rank, starting at rank r+1 and ending here.
static void ring_reduce_scatter(Tcp *t, char *buf, size_t elem, const size_t *count, const size_t *off) {
    int W = t->world, r = t->rank;
    for (int s = 0; s < W - 1; s++) {
        int cs = mod(r - s - 1, W), cr = mod(r - s - 2, W);
        size_t need = count[cr] * elem;
        if (need > t->tmp_cap) { t->tmp = xrealloc(t->tmp, need); t->tmp_cap = need; }
        exchange(t, buf + off[cs] * elem, count[cs] * elem, t->tmp, need, "reduce-scatter");
        (elem == 8 ? add_f64 : add_f32)(buf + off[cr] * elem, t->tmp, count[cr]);
    }
}

// Step s: send slice r-s (whole), receive slice r-s-1 in place.
static void ring_all_gather(Tcp *t, char *buf, size_t elem, const size_t *count, const size_t *off) {
    int W = t->world, r = t->rank;
    for (int s = 0; s < W - 1; s++) {
        int cs = mod(r - s, W), cr = mod(r - s - 1, W);
        exchange(t, buf + off[cs] * elem, count[cs] * elem, buf + off[cr] * elem, count[cr] * elem, "all-gather");
    }
}

static void tcp_allreduce(Transport *tr, void *buf, size_t n, size_t elem) {
    Tcp *t = (Tcp *)tr;
    if (t->world == 1) return;
    for (int i = 0, W = t->world; i < W; i++) {
        t->count[i] = n / W + ((size_t)i < n % W);
        t->off[i] = i ? t->off[i - 1] + t->count[i - 1] : 0;
    }
    ring_reduce_scatter(t, buf, elem, t->count, t->off);
    ring_all_gather(t, buf, elem, t->count, t->off);
}
static void tcp_reduce_scatter(Transport *tr, float *buf, const size_t *count, const size_t *off) {
    Tcp *t = (Tcp *)tr;
    if (t->world > 1) ring_reduce_scatter(t, (char *)buf, sizeof(float), count, off);
}
static void tcp_all_gather(Transport *tr, float *buf, const size_t *count, const size_t *off) {
    Tcp *t = (Tcp *)tr;
    if (t->world > 1) ring_all_gather(t, (char *)buf, sizeof(float), count, off);
}
// Down the ring: rank 0 sends, each rank receives from its predecessor and passes it on.
static void tcp_broadcast(Transport *tr, void *buf, size_t bytes) {
    Tcp *t = (Tcp *)tr;
    if (t->world == 1) return;
    if (t->rank > 0) exchange(t, NULL, 0, buf, bytes, "broadcast");
    if (t->rank < t->world - 1) exchange(t, buf, bytes, NULL, 0, "broadcast");
}
static void tcp_free(Transport *tr) {
    Tcp *t = (Tcp *)tr;
    if (t->next >= 0) close(t->next);
    if (t->prev >= 0) close(t->prev);
    if (t->rank == 0 && t->file[0]) unlink(t->file);
    free(t->tmp); free(t->count); free(t->off);
    free(t);
}

// ---- rendezvous ----

static int listen_on(int port, int *bound, const char *what) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) fatal("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 256))
        fatal("%s: cannot listen on port %d: %s%s", what, port, strerror(errno), errno == EADDRINUSE ? " (another run uses it? pick another port)" : "");
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    if (bound) *bound = ntohs(a.sin_port);
    return fd;
}

static int accept_by(Tcp *t, int lfd, double deadline, const char *what) {
    for (;;) {
        int ms = (int)((deadline - now_seconds()) * 1000);
        if (ms <= 0) return -1;
        struct pollfd pf = {lfd, POLLIN, 0};
        if (poll(&pf, 1, ms > 1000 ? 1000 : ms) > 0) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) return fd;
            if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) fatal("rank %d: %s: accept: %s", t->rank, what, strerror(errno));
        }
    }
}

// One connection attempt to host:port (a name or dotted address); -1 when refused or unreachable.
static int try_connect(const char *host, int port) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, ps, &hints, &res)) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen)) { close(fd); fd = -1; }
    freeaddrinfo(res);
    return fd;
}

// Reads "HOST PORT" from a rendezvous file; false while it does not exist (yet).
static bool read_rendezvous_file(const char *path, char *host, size_t hn, int *port) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[512] = "";
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char h[256];
    if (!ok || sscanf(line, "%255s %d", h, port) != 2) return false;
    snprintf(host, hn, "%s", h);
    return true;
}

static void set_ring_socket(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

Transport *tcp_join(const char *url, int rank, int world, double timeout) {
    Tcp *t = xcalloc(1, sizeof *t);
    // no non-blocking collectives: the ring reduces the gradients after the backward pass (a
    // blocking ring step per layer would stall the backward pass instead of overlapping with it)
    t->ops = (Transport){tcp_allreduce, tcp_reduce_scatter, tcp_all_gather, tcp_broadcast, tcp_free, NULL, NULL, NULL, NULL};
    t->rank = rank; t->world = world; t->timeout = timeout;
    t->next = t->prev = -1;
    t->count = xcalloc(world, sizeof *t->count);
    t->off = xcalloc(world, sizeof *t->off);
    double deadline = now_seconds() + timeout;
    bool is_file = !strncmp(url, "file://", 7);
    char host[256] = "";
    int port = 0;
    if (is_file) {
        snprintf(t->file, sizeof t->file, "%s", url + 7);
        if (!t->file[0]) fatal("--dist %s: expected file:///PATH (a file on a file system every rank sees)", url);
    } else {
        const char *hp = url + 6, *colon = strrchr(hp, ':');
        char *end;
        long p = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof host || *end || p < 1 || p > 65535)
            fatal("--dist %s: expected tcp://HOST:PORT (HOST: rank 0's address, PORT: 1..65535)", url);
        memcpy(host, hp, (size_t)(colon - hp));
        port = (int)p;
    }

    // every rank's ring listener: a free port
    int ring_port, ring_l = listen_on(0, &ring_port, "ring");
    Addr *table = xcalloc(world, sizeof *table);
    if (rank == 0) {
        int rv_port, rv = listen_on(is_file ? 0 : port, &rv_port, url);
        if (is_file) {
            char me[256];
            if (gethostname(me, sizeof me)) snprintf(me, sizeof me, "127.0.0.1");
            me[sizeof me - 1] = 0;
            OutFile *o = out_open(t->file);
            fprintf(o->f, "%s %d\n", me, rv_port);
            out_close(o);
        }
        table[0] = (Addr){0, ring_port};
        int *peer = xcalloc(world, sizeof *peer);
        for (int joined = 1; joined < world; joined++) {
            int fd = accept_by(t, rv, deadline, url);
            if (fd < 0) fatal("rank 0: only %d of %d ranks joined %s within %.0f s (--dist-timeout); check --world-size and that every rank was started", joined, world, url, timeout);
            Hello h;
            io_all(t, fd, &h, sizeof h, false, deadline, -1, "rendezvous");
            if (h.magic != HELLO_MAGIC) fatal("rank 0: a connection to %s that is not a tracellm rank", url);
            if (h.world != world) fatal("rank 0: rank %d was started with --world-size %d, rank 0 with %d", h.rank, h.world, world);
            if (h.rank < 1 || h.rank >= world || peer[h.rank]) fatal("rank 0: two processes claim rank %d (or it is out of 1..%d); give each a distinct --rank", h.rank, world - 1);
            struct sockaddr_in a;
            socklen_t len = sizeof a;
            getpeername(fd, (struct sockaddr *)&a, &len);
            peer[h.rank] = fd;
            table[h.rank] = (Addr){a.sin_addr.s_addr, h.port};
        }
        for (int r = 1; r < world; r++) {
            io_all(t, peer[r], table, world * sizeof *table, true, deadline, r, "rendezvous");
            close(peer[r]);
        }
        free(peer);
        close(rv);
    } else {
        int fd = -1;
        char h0[256] = "";
        int p0 = port;
        while (fd < 0) {
            if (now_seconds() > deadline)
                fatal("rank %d: could not reach rank 0 at %s within %.0f s (--dist-timeout): is rank 0 running%s?", rank, url, timeout,
                      is_file ? " and the file on a shared file system" : " and the address right");
            if (is_file ? read_rendezvous_file(t->file, h0, sizeof h0, &p0) : (snprintf(h0, sizeof h0, "%s", host), true))
                fd = try_connect(h0, p0);
            if (fd < 0) sleep_s(0.1);
        }
        snprintf(host, sizeof host, "%s", h0);
        Hello h = {HELLO_MAGIC, rank, world, ring_port, 0};
        io_all(t, fd, &h, sizeof h, true, deadline, 0, "rendezvous");
        io_all(t, fd, table, world * sizeof *table, false, deadline, 0, "rendezvous");
        close(fd);
    }

    // the ring: connect to the successor (its listener queues us), then accept the predecessor
    int nxt = (rank + 1) % world;
    char ip[64];
    if (table[nxt].ip) inet_ntop(AF_INET, &table[nxt].ip, ip, sizeof ip);
    else snprintf(ip, sizeof ip, "%s", host[0] ? host : "127.0.0.1");
    while ((t->next = try_connect(ip, table[nxt].port)) < 0) {
        if (now_seconds() > deadline) fatal("rank %d: cannot connect to rank %d at %s:%d", rank, nxt, ip, table[nxt].port);
        sleep_s(0.05);
    }
    Hello h = {HELLO_MAGIC, rank, world, 0, 0};
    io_all(t, t->next, &h, sizeof h, true, deadline, nxt, "ring setup");
    int prv = (rank + world - 1) % world;
    if ((t->prev = accept_by(t, ring_l, deadline, "ring setup")) < 0)
        fatal("rank %d: rank %d did not connect within %.0f s (--dist-timeout)", rank, prv, timeout);
    io_all(t, t->prev, &h, sizeof h, false, deadline, prv, "ring setup");
    if (h.magic != HELLO_MAGIC || h.rank != prv) fatal("rank %d: expected rank %d on the ring, got a stray connection", rank, prv);
    close(ring_l);
    free(table);
    set_ring_socket(t->next);
    set_ring_socket(t->prev);
    return &t->ops;
}
