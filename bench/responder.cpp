// chihaya_responder: a trivial stateless BEP 15 UDP + HTTP announce responder, the ceiling bench/run measures the load generator against.
//
// It keeps no swarm: every announce gets the same few peers (127.0.0.1 on workload ports, never
// the requester's own), sized like a real tracker's answer for a 5-peer swarm. Whatever rate
// chihaya_loadgen reaches against it on the same cores is the most the generator can measure;
// a tracker result well below that ceiling is the tracker's own. Single-threaded, epoll, UDP
// batched with recvmmsg/sendmmsg, HTTP keep-alive honoured. Loopback only; runs until SIGTERM
// or --seconds (default 600) pass. --empty answers every announce with no peers and zero counts
// (what the Zipf workload's validation accepts for any torrent: it has no swarm to match); UDP
// scrapes get one all-zero entry per info_hash.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

volatile sig_atomic_t stopping = 0;
constexpr unsigned kBatch = 64;
constexpr unsigned kPeers = 4;  // a 5-peer swarm, minus the requester

uint32_t get32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return ntohl(v); }
void put32(uint8_t* p, uint32_t v) { v = htonl(v); std::memcpy(p, &v, 4); }

// Writes kPeers compact IPv4 entries for 127.0.0.1, ports 10000.. skipping `self`.
void write_peers(uint8_t* out, uint16_t self) {
    uint16_t port = 10'000;
    for (unsigned k = 0; k < kPeers; ++k, ++port) {
        if (port == self) ++port;
        out[6 * k] = 127, out[6 * k + 1] = 0, out[6 * k + 2] = 0, out[6 * k + 3] = 1;
        out[6 * k + 4] = uint8_t(port >> 8);
        out[6 * k + 5] = uint8_t(port);
    }
}

int listen_on(int type, uint16_t port) {
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        (type == SOCK_STREAM && listen(fd, 1024) != 0)) {
        std::perror("chihaya_responder: bind");
        std::exit(1);
    }
    return fd;
}

struct Udp {
    int fd;
    uint8_t rx[kBatch][2048];
    bool empty = false;
    uint8_t tx[kBatch][8 + 12 * 74];  // the largest reply: a 74-hash scrape
    sockaddr_in from[kBatch];
    iovec rx_iov[kBatch], tx_iov[kBatch];
    mmsghdr rx_msgs[kBatch], tx_msgs[kBatch];

    void drain() {
        for (int round = 0; round < 8; ++round) {
            for (unsigned i = 0; i < kBatch; ++i) {
                rx_iov[i] = {rx[i], sizeof rx[i]};
                rx_msgs[i].msg_hdr = msghdr{&from[i], sizeof from[i], &rx_iov[i], 1, nullptr, 0, 0};
            }
            int n = recvmmsg(fd, rx_msgs, kBatch, MSG_DONTWAIT, nullptr);
            if (n <= 0) return;
            unsigned out = 0;
            for (int i = 0; i < n; ++i) {
                const uint8_t* p = rx[i];
                size_t len = rx_msgs[i].msg_len;
                if (len < 16) continue;
                uint32_t action = get32(p + 8);
                uint8_t* r = tx[out];
                size_t size = 0;
                if (action == 0) {  // connect: a constant id, the responder checks none
                    put32(r, 0), std::memcpy(r + 4, p + 12, 4), put32(r + 8, 0x0BADC0DE), put32(r + 12, 1);
                    size = 16;
                } else if (action == 1 && len >= 98 && empty) {
                    put32(r, 1), std::memcpy(r + 4, p + 12, 4), put32(r + 8, 1800), put32(r + 12, 0), put32(r + 16, 0);
                    size = 20;
                } else if (action == 1 && len >= 98) {
                    put32(r, 1), std::memcpy(r + 4, p + 12, 4), put32(r + 8, 1800), put32(r + 12, 3), put32(r + 16, 2);
                    write_peers(r + 20, uint16_t(p[96] << 8 | p[97]));
                    size = 20 + 6 * kPeers;
                } else if (action == 2 && len >= 36) {
                    size_t hashes = std::min<size_t>((len - 16) / 20, 74);
                    put32(r, 2), std::memcpy(r + 4, p + 12, 4);
                    std::memset(r + 8, 0, 12 * hashes);
                    size = 8 + 12 * hashes;
                } else {
                    continue;
                }
                tx_iov[out] = {r, size};
                tx_msgs[out].msg_hdr = msghdr{&from[i], rx_msgs[i].msg_hdr.msg_namelen, &tx_iov[out], 1, nullptr, 0, 0};
                ++out;
            }
            for (unsigned sent = 0; sent < out;) {
                int m = sendmmsg(fd, tx_msgs + sent, out - sent, MSG_DONTWAIT);
                if (m <= 0) break;
                sent += unsigned(m);
            }
            if (unsigned(n) < kBatch) return;
        }
    }
};

// One HTTP connection: answers each complete request head in the buffer, in order.
struct Conn {
    std::string in;
};

// Answers what is complete in c.in; false when the connection must close.
bool serve(int fd, Conn& c) {
    size_t start = 0;
    std::string out;
    bool keep = true;
    for (;;) {
        size_t end = c.in.find("\r\n\r\n", start);
        if (end == std::string::npos) break;
        std::string_view head(c.in.data() + start, end - start);
        bool close_after = head.find("\r\nConnection: close") != std::string_view::npos;
        uint16_t self = 0;
        if (auto p = head.find("&port="); p != std::string_view::npos) self = uint16_t(std::atoi(head.data() + p + 6));
        uint8_t peers[6 * kPeers];
        write_peers(peers, self);
        std::string body = "d8:completei2e10:incompletei3e8:intervali1800e5:peers24:";
        body.append(reinterpret_cast<char*>(peers), sizeof peers);
        body += "e";
        out += "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
        if (close_after) out += "Connection: close\r\n";
        out += "\r\n" + body;
        start = end + 4;
        if (close_after) { keep = false; break; }
    }
    c.in.erase(0, start);
    if (!out.empty() && send(fd, out.data(), out.size(), MSG_NOSIGNAL) != ssize_t(out.size())) return false;
    return keep && c.in.size() < 65536;
}

}  // namespace

int main(int argc, char** argv) {
    uint16_t udp_port = 0, tcp_port = 0;
    double seconds = 600;
    bool empty = false;
    for (int i = 1; i < argc; i += 2) {
        std::string_view a = argv[i];
        if (a == "--empty") { empty = true; --i; continue; }
        if (i + 1 >= argc) { std::fprintf(stderr, "usage: chihaya_responder --udp PORT --http PORT [--seconds S] [--empty]\n"); return 2; }
        if (a == "--udp") udp_port = uint16_t(std::atoi(argv[i + 1]));
        else if (a == "--http") tcp_port = uint16_t(std::atoi(argv[i + 1]));
        else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
        else { std::fprintf(stderr, "usage: chihaya_responder --udp PORT --http PORT [--seconds S] [--empty]\n"); return 2; }
    }
    if (!udp_port || !tcp_port) { std::fprintf(stderr, "usage: chihaya_responder --udp PORT --http PORT [--seconds S] [--empty]\n"); return 2; }
    signal(SIGTERM, [](int) { stopping = 1; });
    signal(SIGINT, [](int) { stopping = 1; });

    static Udp udp;
    udp.empty = empty;
    udp.fd = listen_on(SOCK_DGRAM, udp_port);
    int one = 4 << 20;
    setsockopt(udp.fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
    int lfd = listen_on(SOCK_STREAM, tcp_port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{EPOLLIN, {.fd = udp.fd}};
    epoll_ctl(ep, EPOLL_CTL_ADD, udp.fd, &ev);
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    std::unordered_map<int, Conn> conns;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    epoll_event events[256];
    while (!stopping && std::chrono::steady_clock::now() < deadline) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int k = 0; k < n; ++k) {
            int fd = events[k].data.fd;
            if (fd == udp.fd) { udp.drain(); continue; }
            if (fd == lfd) {
                for (int c; (c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                    int nd = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof nd);
                    epoll_event e{EPOLLIN, {.fd = c}};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                    conns[c];
                }
                continue;
            }
            Conn& c = conns[fd];
            char buf[16384];
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r < 0 && errno == EAGAIN) continue;
            bool keep = r > 0;
            if (keep) {
                c.in.append(buf, size_t(r));
                keep = serve(fd, c);
            }
            if (!keep) {
                close(fd);
                conns.erase(fd);
            }
        }
    }
    return 0;
}
