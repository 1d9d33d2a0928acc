// chihaya_loadgen: drives announces at a loopback tracker over BEP 15 UDP or HTTP and reports rate and latency.
//
// One thread, non-blocking POSIX sockets and poll(2). The tracker under test and this generator
// share a small machine, so a second generator thread would mostly steal the tracker's core; run
// several processes (pinned with taskset) when more load is needed.
//
// Workload: --torrents info_hashes derived from --seed, --peers-per-torrent peers each. A peer is
// identified in its swarm by (address, port) and every request comes from 127.0.0.1 / ::1, so a
// simulated peer is its announce port. Phase 1 announces every peer "started"; phase 2 picks a
// random (torrent, peer) per request with events 5% started, 90% none, 3% completed, 2% stopped.
// Every loop is bounded by time (--duration, --prepopulate-seconds) and count (--max-requests,
// torrents x peers).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
        .count();
}

// ---- options -----------------------------------------------------------------------------------

enum class Mode { Udp, Http, HttpClose };

struct Options {
    Mode mode = Mode::Udp;
    std::string target;
    double duration_s = 10;
    uint64_t max_requests = 50'000'000;
    uint32_t torrents = 100'000;
    uint32_t peers_per_torrent = 5;
    bool prepopulate = true;
    double prepopulate_s = 60;
    uint32_t connections = 0;  // 0: per-mode default
    uint32_t inflight = 16;    // UDP requests outstanding per socket
    uint32_t numwant = 50;
    uint64_t seed = 1;
    uint32_t timeout_ms = 2000;
};

void usage(FILE* out) {
    std::fprintf(out,
        "usage: chihaya_loadgen --target ADDR:PORT [options]\n"
        "  --target A:P             127.0.0.1:6969 or [::1]:6969 (loopback only)\n"
        "  --mode M                 udp | http (keep-alive) | http-close (one connection per request)\n"
        "  --duration S             steady-phase seconds (default 10)\n"
        "  --max-requests N         steady-phase request cap (default 50000000)\n"
        "  --torrents N             distinct info_hashes (default 100000)\n"
        "  --peers-per-torrent N    peers announced per torrent in phase 1 (default 5)\n"
        "  --no-prepopulate         skip phase 1 (the swarms already exist)\n"
        "  --prepopulate-seconds S  phase-1 time cap (default 60)\n"
        "  --connections N          UDP sockets / HTTP connections (default 8 / 32)\n"
        "  --inflight N             UDP requests outstanding per socket (default 16)\n"
        "  --numwant N              peers asked for (default 50)\n"
        "  --seed N                 workload seed (default 1)\n"
        "  --timeout-ms N           a request unanswered this long is a timeout (default 2000)\n"
        "Output: one key=value line per phase. Exit 0: no errors or timeouts; 1: some; 2: usage.\n");
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

bool parse_seconds(std::string_view s, double& out) {
    char* end = nullptr;
    std::string copy(s);
    out = std::strtod(copy.c_str(), &end);
    return end && *end == '\0' && out > 0 && out <= 24 * 3600;
}

std::optional<Options> parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) return {};
            return argv[++i];
        };
        bool ok = true;
        if (a == "--help" || a == "-h") { usage(stdout); std::exit(0); }
        else if (a == "--target") o.target = std::string(value());
        else if (a == "--mode") {
            auto m = value();
            if (m == "udp") o.mode = Mode::Udp;
            else if (m == "http") o.mode = Mode::Http;
            else if (m == "http-close") o.mode = Mode::HttpClose;
            else ok = false;
        }
        else if (a == "--duration") ok = parse_seconds(value(), o.duration_s);
        else if (a == "--prepopulate-seconds") ok = parse_seconds(value(), o.prepopulate_s);
        else if (a == "--max-requests") ok = parse_number(value(), o.max_requests);
        else if (a == "--torrents") ok = parse_number(value(), o.torrents) && o.torrents > 0 && o.torrents <= 100'000'000;
        else if (a == "--peers-per-torrent") ok = parse_number(value(), o.peers_per_torrent) && o.peers_per_torrent > 0 && o.peers_per_torrent <= 50'000;
        else if (a == "--no-prepopulate") o.prepopulate = false;
        else if (a == "--connections") ok = parse_number(value(), o.connections) && o.connections > 0 && o.connections <= 4096;
        else if (a == "--inflight") ok = parse_number(value(), o.inflight) && o.inflight > 0 && o.inflight <= 4096;
        else if (a == "--numwant") ok = parse_number(value(), o.numwant) && o.numwant <= 1000;
        else if (a == "--seed") ok = parse_number(value(), o.seed);
        else if (a == "--timeout-ms") ok = parse_number(value(), o.timeout_ms) && o.timeout_ms > 0;
        else ok = false;
        if (!ok) {
            std::fprintf(stderr, "chihaya_loadgen: bad argument near '%s'\n", argv[i]);
            return std::nullopt;
        }
    }
    if (o.target.empty()) {
        std::fprintf(stderr, "chihaya_loadgen: --target is required\n");
        return std::nullopt;
    }
    if (o.connections == 0) o.connections = o.mode == Mode::Udp ? 8 : 32;
    return o;
}

// ---- target ------------------------------------------------------------------------------------

struct Target {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int family = AF_INET;
    std::string host_header;  // as written in --target
};

// Loopback only: this tool generates floods, and a typo must not aim one at another machine.
std::optional<Target> parse_target(const std::string& text) {
    Target t;
    t.host_header = text;
    std::string host, port;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find("]:");
        if (close == std::string::npos) return std::nullopt;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos) return std::nullopt;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    uint16_t p = 0;
    if (!parse_number(std::string_view(port), p) || p == 0) return std::nullopt;
    if (auto* a4 = reinterpret_cast<sockaddr_in*>(&t.addr); inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) return std::nullopt;
        a4->sin_family = AF_INET;
        a4->sin_port = htons(p);
        t.len = sizeof(sockaddr_in);
        t.family = AF_INET;
        return t;
    }
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&t.addr);
    if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) return std::nullopt;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(p);
        t.len = sizeof(sockaddr_in6);
        t.family = AF_INET6;
        return t;
    }
    return std::nullopt;
}

// ---- workload ----------------------------------------------------------------------------------

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() { return state_ = splitmix64(state_); }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>((next() >> 32) * n >> 32); }

private:
    uint64_t state_;
};

enum class Event : uint32_t { None = 0, Completed = 1, Started = 2, Stopped = 3 };  // BEP 15 values

struct Announce {
    uint32_t torrent;
    uint32_t peer;
    Event event;
    uint64_t left;
};

class Workload {
public:
    explicit Workload(const Options& o) : o_(o), rng_(splitmix64(o.seed ^ 0x5EEDull)) {}

    void info_hash(uint32_t torrent, uint8_t out[20]) const { fill(out, 20, 0x1000'0000'0000ull + torrent, 0); }
    void peer_id(uint32_t torrent, uint32_t peer, uint8_t out[20]) const {
        std::memcpy(out, "-CL0001-", 8);
        fill(out + 8, 12, torrent, peer + 1);
    }
    static uint16_t port(uint32_t peer) { return static_cast<uint16_t>(10'000 + peer % 50'000); }

    // Phase 1: every peer of every torrent, "started"; peer 0 of each torrent is its seeder.
    uint64_t prepopulate_count() const { return uint64_t(o_.torrents) * o_.peers_per_torrent; }
    Announce prepopulate(uint64_t i) const {
        uint32_t t = static_cast<uint32_t>(i / o_.peers_per_torrent);
        uint32_t p = static_cast<uint32_t>(i % o_.peers_per_torrent);
        return {t, p, Event::Started, p == 0 ? 0 : left_bytes};
    }

    Announce steady() {
        Announce a{rng_.below(o_.torrents), rng_.below(o_.peers_per_torrent), Event::None, 0};
        uint32_t roll = rng_.below(100);
        a.event = roll < 5 ? Event::Started : roll < 95 ? Event::None : roll < 98 ? Event::Completed : Event::Stopped;
        a.left = (a.peer == 0 || a.event == Event::Completed) ? 0 : left_bytes;
        return a;
    }

    static constexpr uint64_t left_bytes = 1 << 20;

private:
    void fill(uint8_t* out, size_t n, uint64_t a, uint64_t b) const {
        uint64_t x = splitmix64(o_.seed ^ splitmix64(a ^ splitmix64(b)));
        for (size_t i = 0; i < n; ++i) {
            if (i % 8 == 0) x = splitmix64(x);
            out[i] = static_cast<uint8_t>(x >> (8 * (i % 8)));
        }
    }

    const Options& o_;
    Rng rng_;
};

// A phase's supply of announces: a count and a deadline, whichever ends it first.
struct Source {
    Workload* workload;
    bool prepopulating;
    uint64_t limit;
    int64_t deadline_us;
    uint64_t issued = 0;

    bool exhausted(int64_t now) const { return issued >= limit || now >= deadline_us; }
    Announce next() {
        return prepopulating ? workload->prepopulate(issued++) : (issued++, workload->steady());
    }
};

// ---- results -----------------------------------------------------------------------------------

// Log-linear latency histogram in microseconds: exact below 64 us, then 32 buckets per power of
// two (about 3% resolution), so p99 needs no per-request storage.
class Histogram {
public:
    void add(int64_t us) {
        ++counts_[index(static_cast<uint64_t>(std::max<int64_t>(us, 0)))];
        ++total_;
    }
    uint64_t total() const { return total_; }
    uint64_t quantile(double q) const {
        if (total_ == 0) return 0;
        uint64_t want = static_cast<uint64_t>(q * static_cast<double>(total_ - 1)) + 1, seen = 0;
        for (size_t i = 0; i < counts_.size(); ++i)
            if ((seen += counts_[i]) >= want) return lower_bound(i);
        return lower_bound(counts_.size() - 1);
    }

private:
    static size_t index(uint64_t v) {
        if (v < 64) return v;
        int e = 63 - __builtin_clzll(v);  // >= 6
        size_t i = 64 + size_t(e - 6) * 32 + ((v >> (e - 5)) & 31);
        return std::min(i, kBuckets - 1);
    }
    static uint64_t lower_bound(size_t i) {
        if (i < 64) return i;
        size_t e = (i - 64) / 32 + 6, sub = (i - 64) % 32;
        return (uint64_t(1) << e) + (uint64_t(sub) << (e - 5));
    }
    static constexpr size_t kBuckets = 64 + 32 * 40;
    std::array<uint64_t, kBuckets> counts_{};
    uint64_t total_ = 0;
};

struct Stats {
    uint64_t sent = 0;
    uint64_t ok = 0;
    uint64_t errors = 0;
    uint64_t timeouts = 0;
    uint64_t late = 0;  // answers that came after their timeout was counted
    uint64_t peers = 0;
    Histogram latency;
    int64_t start_us = 0;
    int64_t end_us = 0;
    std::vector<std::string> samples;  // the first few errors, word for word

    void error(std::string what) {
        ++errors;
        if (samples.size() < 5) samples.push_back(std::move(what));
    }
};

void report(const char* mode, const char* phase, const Stats& s) {
    double secs = std::max(1e-9, double(s.end_us - s.start_us) / 1e6);
    std::printf("mode=%s phase=%s announces=%" PRIu64 " seconds=%.2f rate=%.0f p50_us=%" PRIu64
                " p99_us=%" PRIu64 " errors=%" PRIu64 " timeouts=%" PRIu64 " late=%" PRIu64
                " peers_per_reply=%.1f\n",
                mode, phase, s.ok, secs, double(s.ok) / secs, s.latency.quantile(0.50),
                s.latency.quantile(0.99), s.errors, s.timeouts, s.late,
                s.ok ? double(s.peers) / double(s.ok) : 0.0);
    for (auto& e : s.samples) std::fprintf(stderr, "  %s error: %s\n", phase, e.c_str());
    std::fflush(stdout);
}

// ---- UDP (BEP 15) ------------------------------------------------------------------------------

void put32(uint8_t* p, uint32_t v) { v = htonl(v); std::memcpy(p, &v, 4); }
void put64(uint8_t* p, uint64_t v) { put32(p, uint32_t(v >> 32)); put32(p + 4, uint32_t(v)); }
uint32_t get32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return ntohl(v); }
uint64_t get64(const uint8_t* p) { return (uint64_t(get32(p)) << 32) | get32(p + 4); }

constexpr uint64_t kProtocolId = 0x41727101980ull;
constexpr int64_t kConnectionIdMaxAgeUs = 60'000'000;  // BEP 15: a client may use an id for 1 min

class UdpEngine {
public:
    UdpEngine(const Options& o, const Target& t)
        : o_(o), entry_(t.family == AF_INET ? 6 : 18), buf_(65536) {
        for (uint32_t i = 0; i < o.connections; ++i) {
            int fd = socket(t.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0) {
                std::perror("chihaya_loadgen: udp socket");
                std::exit(1);
            }
            int buf = 4 << 20;
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
            sockets_.push_back(Sock{fd, 0, -1, std::vector<Slot>(o.inflight + 1), 0, 0});
        }
    }
    ~UdpEngine() { for (auto& s : sockets_) close(s.fd); }

    void run(Source& src, Stats& st) {
        std::vector<pollfd> fds(sockets_.size());
        st.start_us = now_us();
        for (;;) {
            int64_t now = now_us();
            bool sending = !src.exhausted(now);
            // Draining ends on its own: expire() frees every slot within timeout_ms.
            if (!sending && outstanding() == 0) break;
            for (size_t i = 0; i < sockets_.size(); ++i) {
                expire(sockets_[i], now, st);
                if (sending) fill(sockets_[i], src, st, now);
                fds[i] = {sockets_[i].fd, POLLIN, 0};
            }
            int n = poll(fds.data(), fds.size(), 5);
            if (n < 0 && errno != EINTR) { std::perror("poll"); break; }
            for (size_t i = 0; i < sockets_.size() && n > 0; ++i)
                if (fds[i].revents) receive(sockets_[i], st);
        }
        for (auto& s : sockets_)
            for (auto& slot : s.slots)
                if (slot.busy) { slot.busy = false; ++st.timeouts; --s.busy; }
        st.end_us = now_us();
    }

private:
    struct Slot {
        bool busy = false;
        bool is_connect = false;
        uint32_t tid = 0;
        int64_t sent_us = 0;
    };
    struct Sock {
        int fd;
        uint64_t connection_id;
        int64_t connected_us;  // -1: no id yet
        std::vector<Slot> slots;  // slot 0 is the connect; the rest announces
        uint32_t busy;
        uint16_t generation;
    };

    size_t outstanding() const {
        size_t n = 0;
        for (auto& s : sockets_) n += s.busy;
        return n;
    }

    // The tid names the slot (low 16 bits) and its use (high 16): a reply to a slot that timed
    // out and was reused is recognised as late instead of being taken for the new request's.
    uint32_t next_tid(Sock& s, size_t slot) { return (uint32_t(++s.generation) << 16) | uint32_t(slot); }

    void send_packet(Sock& s, size_t slot, const uint8_t* p, size_t n, bool is_connect, int64_t now) {
        if (::send(s.fd, p, n, 0) != ssize_t(n)) return;  // buffer full: retry on the next round
        s.slots[slot] = Slot{true, is_connect, get32(p + 12), now};
        ++s.busy;
    }

    void fill(Sock& s, Source& src, Stats& st, int64_t now) {
        bool stale = s.connected_us < 0 || now - s.connected_us > kConnectionIdMaxAgeUs;
        if (stale && !s.slots[0].busy) {
            uint8_t p[16];
            put64(p, kProtocolId);
            put32(p + 8, 0);
            put32(p + 12, next_tid(s, 0));
            send_packet(s, 0, p, sizeof p, true, now);
        }
        if (s.connected_us < 0) return;
        uint8_t p[98];
        for (size_t i = 1; i < s.slots.size() && !src.exhausted(now); ++i) {
            if (s.slots[i].busy) continue;
            Announce a = src.next();
            put64(p, s.connection_id);
            put32(p + 8, 1);
            put32(p + 12, next_tid(s, i));
            src.workload->info_hash(a.torrent, p + 16);
            src.workload->peer_id(a.torrent, a.peer, p + 36);
            put64(p + 56, a.left == 0 ? Workload::left_bytes : 0);  // downloaded
            put64(p + 64, a.left);
            put64(p + 72, 0);                                       // uploaded
            put32(p + 80, uint32_t(a.event));
            put32(p + 84, 0);                                       // ip: the sender's
            put32(p + 88, a.peer);                                  // key
            put32(p + 92, o_.numwant);
            uint16_t port = htons(Workload::port(a.peer));
            std::memcpy(p + 96, &port, 2);
            size_t before = s.busy;
            send_packet(s, i, p, sizeof p, false, now);
            if (s.busy == before) break;
            ++st.sent;
        }
    }

    void expire(Sock& s, int64_t now, Stats& st) {
        int64_t limit = int64_t(o_.timeout_ms) * 1000;
        for (auto& slot : s.slots)
            if (slot.busy && now - slot.sent_us > limit) {
                slot.busy = false;
                --s.busy;
                ++st.timeouts;
            }
    }

    void receive(Sock& s, Stats& st) {
        uint8_t* buf = buf_.data();
        for (int budget = 256; budget > 0; --budget) {
            ssize_t n = recv(s.fd, buf, buf_.size(), 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;
                if (errno == ECONNREFUSED) { st.error("udp: connection refused (is the tracker up?)"); return; }
                st.error(std::string("udp recv: ") + std::strerror(errno));
                return;
            }
            int64_t now = now_us();
            if (n < 8) { st.error("udp: reply of " + std::to_string(n) + " bytes"); continue; }
            uint32_t action = get32(buf), tid = get32(buf + 4);
            size_t slot_index = tid & 0xFFFF;
            if (slot_index >= s.slots.size() || !s.slots[slot_index].busy || s.slots[slot_index].tid != tid) {
                ++st.late;
                continue;
            }
            Slot& slot = s.slots[slot_index];
            slot.busy = false;
            --s.busy;
            if (action == 3) {
                st.error("udp: tracker error: " + std::string(reinterpret_cast<char*>(buf + 8), size_t(n - 8)));
                if (!slot.is_connect) s.connected_us = -1;  // perhaps the id expired: get another
                continue;
            }
            if (slot.is_connect) {
                if (action != 0 || n != 16) { st.error("udp: bad connect reply of " + std::to_string(n) + " bytes"); continue; }
                s.connection_id = get64(buf + 8);
                s.connected_us = now;
                continue;
            }
            if (action != 1 || n < 20 || (size_t(n) - 20) % entry_ != 0) {
                st.error("udp: bad announce reply: action " + std::to_string(action) + ", " + std::to_string(n) + " bytes");
                continue;
            }
            size_t peers = (size_t(n) - 20) / entry_;
            if (peers > o_.numwant) { st.error("udp: more peers than numwant"); continue; }
            ++st.ok;
            st.peers += peers;
            st.latency.add(now - slot.sent_us);
        }
    }

    const Options& o_;
    size_t entry_;
    std::vector<uint8_t> buf_;  // one reply at a time; big enough for any numwant
    std::vector<Sock> sockets_;
};

// ---- HTTP --------------------------------------------------------------------------------------

// Walks one bencoded value; false when malformed. Records what an announce answer must have.
struct BencodeCheck {
    const char* p;
    const char* end;
    bool has_interval = false;
    bool has_failure = false;
    size_t peers_bytes = 0;
    int depth = 0;

    bool string(std::string_view* out) {
        size_t n = 0;
        if (p >= end || *p < '0' || *p > '9') return false;
        while (p < end && *p >= '0' && *p <= '9') n = n * 10 + size_t(*p++ - '0');
        if (p >= end || *p++ != ':' || size_t(end - p) < n) return false;
        if (out) *out = std::string_view(p, n);
        p += n;
        return true;
    }
    bool value(std::string_view key = {}) {
        if (p >= end || ++depth > 32) return false;
        bool ok = true;
        if (*p == 'i') {
            ++p;
            if (p < end && *p == '-') ++p;
            const char* digits = p;
            while (p < end && *p >= '0' && *p <= '9') ++p;
            ok = p > digits && p < end && *p++ == 'e';
            if (ok && depth == 2 && key == "interval") has_interval = true;
        } else if (*p == 'l' || *p == 'd') {
            bool dict = *p++ == 'd';
            while (ok && p < end && *p != 'e') {
                std::string_view k;
                if (dict) ok = string(&k) && value(k);
                else ok = value();
            }
            ok = ok && p < end && *p++ == 'e';
        } else {
            std::string_view s;
            ok = string(&s);
            if (ok && depth == 2 && key == "failure reason") has_failure = true;
            if (ok && depth == 2 && (key == "peers" || key == "peers6")) peers_bytes += s.size();
        }
        --depth;
        return ok;
    }
};

class HttpEngine {
public:
    HttpEngine(const Options& o, const Target& t) : o_(o), t_(t), keep_alive_(o.mode == Mode::Http) {
        conns_.resize(o.connections);
    }
    ~HttpEngine() { for (auto& c : conns_) drop(c); }

    void run(Source& src, Stats& st) {
        std::vector<pollfd> fds(conns_.size());
        st.start_us = now_us();
        int64_t drain_until = 0;
        for (;;) {
            int64_t now = now_us();
            bool sending = !src.exhausted(now);
            size_t busy = 0;
            for (auto& c : conns_) {
                if (c.state != State::Idle && now - c.sent_us > int64_t(o_.timeout_ms) * 1000) {
                    ++st.timeouts;
                    drop(c);
                }
                if (c.state == State::Idle && sending && !src.exhausted(now)) start(c, src, st, now);
                busy += c.state != State::Idle;
            }
            if (!sending) {
                if (busy == 0) break;
                if (drain_until == 0) drain_until = now + int64_t(o_.timeout_ms) * 1000;
                if (now > drain_until) break;
            }
            for (size_t i = 0; i < conns_.size(); ++i) {
                auto& c = conns_[i];
                short ev = c.state == State::Reading ? POLLIN : c.state == State::Idle ? 0 : POLLOUT;
                fds[i] = {c.state == State::Idle ? -1 : c.fd, ev, 0};
            }
            int n = poll(fds.data(), fds.size(), 5);
            if (n < 0 && errno != EINTR) { std::perror("poll"); break; }
            for (size_t i = 0; i < conns_.size() && n > 0; ++i)
                if (fds[i].revents) step(conns_[i], st);
        }
        for (auto& c : conns_)
            if (c.state != State::Idle) { ++st.timeouts; drop(c); }
        st.end_us = now_us();
    }

private:
    enum class State { Idle, Connecting, Writing, Reading };
    struct Conn {
        int fd = -1;
        State state = State::Idle;
        std::string request;
        size_t written = 0;
        std::string in;
        int64_t sent_us = 0;
    };

    void drop(Conn& c) {
        if (c.fd >= 0) {
            // RST instead of FIN: a generator opening thousands of connections a second would
            // otherwise fill the ephemeral port range with TIME_WAIT.
            linger l{1, 0};
            setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            close(c.fd);
        }
        c.fd = -1;
        c.state = State::Idle;
        c.in.clear();
    }

    static void append_escaped(std::string& out, const uint8_t* p, size_t n) {
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; ++i) {
            out += '%';
            out += hex[p[i] >> 4];
            out += hex[p[i] & 15];
        }
    }

    void start(Conn& c, Source& src, Stats& st, int64_t now) {
        Announce a = src.next();
        uint8_t ih[20], pid[20];
        src.workload->info_hash(a.torrent, ih);
        src.workload->peer_id(a.torrent, a.peer, pid);
        static const char* events[] = {"", "&event=completed", "&event=started", "&event=stopped"};
        std::string& r = c.request;
        r.assign("GET /announce?info_hash=");
        append_escaped(r, ih, 20);
        r += "&peer_id=";
        append_escaped(r, pid, 20);
        char tail[256];
        std::snprintf(tail, sizeof tail,
                      "&port=%u&uploaded=0&downloaded=%" PRIu64 "&left=%" PRIu64 "&compact=1&numwant=%u%s HTTP/1.1\r\n",
                      unsigned(Workload::port(a.peer)), a.left == 0 ? Workload::left_bytes : 0, a.left,
                      o_.numwant, events[uint32_t(a.event)]);
        r += tail;
        r += "Host: " + t_.host_header + "\r\n";
        if (!keep_alive_) r += "Connection: close\r\n";
        r += "\r\n";
        c.written = 0;
        c.sent_us = now;
        ++st.sent;
        if (c.fd >= 0) { c.state = State::Writing; return; }
        c.fd = socket(t_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&t_.addr), t_.len) == 0) c.state = State::Writing;
        else if (errno == EINPROGRESS) c.state = State::Connecting;
        else { st.error(std::string("http connect: ") + std::strerror(errno)); drop(c); }
    }

    void step(Conn& c, Stats& st) {
        if (c.state == State::Connecting) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) { st.error(std::string("http connect: ") + std::strerror(err)); drop(c); return; }
            c.state = State::Writing;
        }
        if (c.state == State::Writing) {
            ssize_t n = ::send(c.fd, c.request.data() + c.written, c.request.size() - c.written, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN) return;
                st.error(std::string("http send: ") + std::strerror(errno));
                drop(c);
                return;
            }
            c.written += size_t(n);
            if (c.written == c.request.size()) c.state = State::Reading;
            return;
        }
        if (c.state != State::Reading) return;
        char buf[16384];
        ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            st.error(n == 0 ? "http: connection closed before the answer" : std::string("http recv: ") + std::strerror(errno));
            drop(c);
            return;
        }
        c.in.append(buf, size_t(n));
        finish_if_complete(c, st);
    }

    void finish_if_complete(Conn& c, Stats& st) {
        size_t head_end = c.in.find("\r\n\r\n");
        if (head_end == std::string::npos) {
            if (c.in.size() > 65536) { st.error("http: endless head"); drop(c); }
            return;
        }
        std::string_view head(c.in.data(), head_end);
        size_t length = SIZE_MAX;
        bool close_after = !keep_alive_;
        for (size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
            size_t next = head.find("\r\n", pos + 2);
            std::string_view line = head.substr(pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
            std::string lower(line.substr(0, line.find(':')));
            for (auto& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
            std::string_view value = line.substr(std::min(line.size(), line.find(':') + 1));
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            if (lower == "content-length") parse_number(value, length);
            if (lower == "connection" && (value == "close" || value == "Close")) close_after = true;
            pos = next;
        }
        if (length == SIZE_MAX) { st.error("http: answer without Content-Length"); drop(c); return; }
        if (c.in.size() < head_end + 4 + length) return;
        int64_t now = now_us();
        std::string_view body(c.in.data() + head_end + 4, length);
        bool good = head.starts_with("HTTP/1.") && head.size() >= 12 && head.substr(8, 4) == " 200";
        BencodeCheck check{body.data(), body.data() + body.size()};
        if (!good) {
            st.error("http: " + std::string(head.substr(0, head.find("\r\n"))));
        } else if (!check.value() || check.p != body.data() + body.size() || body.front() != 'd') {
            st.error("http: body is not one bencoded dict: " + std::string(body.substr(0, 80)));
        } else if (check.has_failure || !check.has_interval) {
            st.error("http: " + std::string(check.has_failure ? "failure: " : "no interval: ") + std::string(body.substr(0, 120)));
        } else {
            ++st.ok;
            size_t entry = t_.family == AF_INET ? 6 : 18;
            st.peers += check.peers_bytes / entry;
            st.latency.add(now - c.sent_us);
        }
        bool extra = c.in.size() > head_end + 4 + length;
        if (extra) st.error("http: bytes after the answer");
        if (close_after || extra) drop(c);
        else { c.in.clear(); c.state = State::Idle; }
    }

    const Options& o_;
    const Target& t_;
    bool keep_alive_;
    std::vector<Conn> conns_;
};

template <class Engine>
void run_phase(Engine& engine, Workload& w, bool prepopulating, uint64_t limit, double seconds,
               const char* mode, Stats& out) {
    Source src{&w, prepopulating, limit, now_us() + int64_t(seconds * 1e6)};
    engine.run(src, out);
    report(mode, prepopulating ? "prepopulate" : "steady", out);
}

}  // namespace

int main(int argc, char** argv) {
    auto opts = parse_options(argc, argv);
    if (!opts) { usage(stderr); return 2; }
    auto target = parse_target(opts->target);
    if (!target) {
        std::fprintf(stderr, "chihaya_loadgen: target '%s' is not a numeric loopback address "
                             "(127.0.0.0/8 or [::1]) with a port\n", opts->target.c_str());
        return 2;
    }
    const char* mode = opts->mode == Mode::Udp ? "udp" : opts->mode == Mode::Http ? "http" : "http-close";
    Workload w(*opts);
    Stats pre, steady;
    auto both = [&](auto& engine) {
        if (opts->prepopulate)
            run_phase(engine, w, true, w.prepopulate_count(), opts->prepopulate_s, mode, pre);
        run_phase(engine, w, false, opts->max_requests, opts->duration_s, mode, steady);
    };
    if (opts->mode == Mode::Udp) {
        UdpEngine e(*opts, *target);
        both(e);
    } else {
        HttpEngine e(*opts, *target);
        both(e);
    }
    bool clean = pre.errors + pre.timeouts + steady.errors + steady.timeouts == 0;
    return clean ? 0 : 1;
}
