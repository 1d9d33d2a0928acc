// chihaya_loadgen: drives announces at a loopback tracker over BEP 15 UDP or HTTP and reports rate and latency.
//
// Closed loop: --connections UDP sockets (each with --inflight requests outstanding) or HTTP
// connections (one request outstanding each) are kept busy for the phase, so the rate measured is
// what the tracker sustains and latency is the queueing that rate implies. --threads splits the
// sockets/connections over that many threads (each with its own epoll set and workload stream);
// the total outstanding stays the same, so runs with different thread counts load the tracker
// alike. UDP sends and receives in batches (sendmmsg/recvmmsg), so one thread saturates one core
// for well above what any tracker on the same machine answers: bench/run measures that ceiling
// against bench/responder.cpp and prints it beside the results.
//
// Workload: --torrents info_hashes derived from --seed, --peers-per-torrent peers each. A peer is
// identified in its swarm by (address, port) and every request comes from one loopback address,
// so a simulated peer is its announce port. Phase 1 announces every peer "started"; phase 2 picks
// a random (torrent, peer) per request with events 5% started, 90% none, 3% completed, 2% stopped.
// Every loop is bounded by time (--duration, --prepopulate-seconds) and count (--max-requests,
// torrents x peers).
//
// --rate R turns the steady phase into a paced one: at most R announces per second over all
// threads (each thread its share), still with at most --connections x --inflight outstanding, so
// a tracker that falls behind shows as a rate below R rather than as an unbounded queue
// (bench/soak.py runs at a fraction of the measured capacity this way). Phase 1 is never paced.
//
// --workload zipf replaces this workload with a realistic one (Zipf swarm sizes, churn, scrapes,
// IPv6 peers, thousands of source addresses; UDP only): workload_zipf.hpp and zipf_udp.cpp.
//
// Validation, per reply: UDP action, transaction id (low 16 bits name the slot, high 16 its use,
// so a late reply to a reused slot is never taken for the new one), exact size (20 + 6n or 18n),
// n <= numwant; HTTP status, Content-Length, one bencoded dict with an interval and no failure
// reason. For both, every peer returned must be one the workload could have announced (the
// generator's address, a port of the workload) and appear once. A peer handed its own endpoint
// is counted apart (self_peers), not as an error: BEP 15 does not forbid it.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
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
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "loadgen_common.hpp"
#include "workload_zipf.hpp"
#include "zipf_udp.hpp"

namespace {

using namespace loadgen;

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
    bool steady = true;
    double prepopulate_s = 60;
    uint32_t connections = 0;  // 0: per-mode default
    uint32_t inflight = 16;    // UDP requests outstanding per socket
    uint32_t threads = 1;
    uint32_t numwant = 50;
    double rate = 0;           // steady-phase announces/s over all threads; 0 = closed loop
    uint64_t seed = 1;
    uint64_t run = 0;          // varies the steady phase's random choices, not the swarms
    uint32_t timeout_ms = 2000;
    bool print_info_hashes = false;
    uint32_t passkeys = 0;     // private mode: users; 0 = open tracker URLs
    bool print_passkeys = false;
    bool zipf = false;
    bool torrents_given = false;         // --workload zipf
    bool prepopulate_s_given = false;
    ZipfConfig z;              // its parameters (torrents, seed: the fields above)
    std::string target6;       // the tracker's IPv6 listener for the zipf workload's IPv6 peers
};

// Private mode: passkey u is "bench" and u in 27 digits (32 characters, like a web application's
// hex passkeys). Simulated peer i of the workload belongs to user i % --passkeys.
// Writes it into out[0..32), with no allocation: it is built for every private announce, and
// the generator's own cost per request is part of what the private/open ratio measures.
constexpr size_t kPasskeySize = 32;
void write_bench_passkey(uint32_t user, char* out) {
    std::memcpy(out, "bench", 5);
    for (size_t i = kPasskeySize; i-- > 5; user /= 10) out[i] = char('0' + user % 10);
}

std::string bench_passkey(uint32_t user) {
    std::string text(kPasskeySize, '0');
    write_bench_passkey(user, text.data());
    return text;
}

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
        "  --prepopulate-only       run phase 1 only\n"
        "  --prepopulate-seconds S  phase-1 time cap (default 60)\n"
        "  --connections N          UDP sockets / HTTP connections, over all threads (default 8 / 32)\n"
        "  --inflight N             UDP requests outstanding per socket (default 16)\n"
        "  --threads N              generator threads sharing the connections (default 1)\n"
        "  --numwant N              peers asked for (default 50)\n"
        "  --rate R                 steady phase paced to R announces/s over all threads\n"
        "                           (default 0: closed loop, as fast as the tracker answers)\n"
        "  --seed N                 workload seed (default 1)\n"
        "  --run N                  another sequence of steady-phase announces over the same\n"
        "                           swarms (default 0), for runs that follow one another\n"
        "  --timeout-ms N           a request unanswered this long is a timeout (default 2000)\n"
        "  --print-info-hashes      print the workload's info_hashes in hex, one a line, and exit\n"
        "  --passkeys N             private mode: N users, /<passkey>/announce (HTTP) and BEP 41\n"
        "                           URL data (UDP); peer i belongs to user i %% N\n"
        "  --print-passkeys         print the N passkeys, one a line, and exit\n"
        "  --workload W             uniform (default: the workload above) | zipf (UDP only):\n"
        "    --torrents N             torrents, Zipf-ranked (zipf default 1000000)\n"
        "    --peers N                peers over all swarms, >= torrents (default 2500000)\n"
        "    --zipf-exponent S        swarm size of rank r ~ 1/r^S (default 1.0)\n"
        "    --ipv6-share F           share of peers on IPv6, from [::1] (default 0.2; needs --target6)\n"
        "    --target6 [::1]:P        the tracker's IPv6 listener\n"
        "    --scrape-share F         share of requests that are scrapes (default 0.1)\n"
        "    --scrape-hashes N        info_hashes per scrape, 1..74 (default 1)\n"
        "    --stop-share F           an active peer's announce is a stop (default 0.02)\n"
        "    --vanish-share F         an active peer leaves without a word (default 0.01)\n"
        "    --complete-share F       a leecher's announce is its completion (default 0.03)\n"
        "    --seeder-share F         peers that start as seeders (default 0.25)\n"
        "    --source-net A/B         loopback source addresses (default 127.1.0.0/16, /12../32)\n"
        "    (--prepopulate-seconds defaults to 300 here; --connections, --inflight, --threads,\n"
        "    --numwant, --seed, --timeout-ms, --duration, --max-requests as above)\n"
        "Output: one key=value line per phase. Exit 0: no errors or timeouts; 1: some; 2: usage.\n");
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

bool parse_share(std::string_view s, double& out, double lo, double hi) {
    char* end = nullptr;
    std::string copy(s);
    out = std::strtod(copy.c_str(), &end);
    return !copy.empty() && end && *end == '\0' && out >= lo && out <= hi;
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
        else if (a == "--prepopulate-seconds") ok = parse_seconds(value(), o.prepopulate_s) && (o.prepopulate_s_given = true);
        else if (a == "--max-requests") ok = parse_number(value(), o.max_requests);
        else if (a == "--torrents") ok = (o.torrents_given = true) && parse_number(value(), o.torrents) && o.torrents > 0 && o.torrents <= 100'000'000;
        else if (a == "--peers-per-torrent") ok = parse_number(value(), o.peers_per_torrent) && o.peers_per_torrent > 0 && o.peers_per_torrent <= 50'000;
        else if (a == "--no-prepopulate") o.prepopulate = false;
        else if (a == "--prepopulate-only") o.steady = false;
        else if (a == "--connections") ok = parse_number(value(), o.connections) && o.connections > 0 && o.connections <= 4096;
        else if (a == "--inflight") ok = parse_number(value(), o.inflight) && o.inflight > 0 && o.inflight <= 4096;
        else if (a == "--threads") ok = parse_number(value(), o.threads) && o.threads > 0 && o.threads <= 64;
        else if (a == "--numwant") ok = parse_number(value(), o.numwant) && o.numwant <= 1000;
        else if (a == "--rate") ok = parse_share(value(), o.rate, 1, 1e8);
        else if (a == "--seed") ok = parse_number(value(), o.seed);
        else if (a == "--run") ok = parse_number(value(), o.run);
        else if (a == "--timeout-ms") ok = parse_number(value(), o.timeout_ms) && o.timeout_ms > 0;
        else if (a == "--print-info-hashes") o.print_info_hashes = true;
        else if (a == "--passkeys") ok = parse_number(value(), o.passkeys) && o.passkeys <= 100'000'000;
        else if (a == "--print-passkeys") o.print_passkeys = true;
        else if (a == "--workload") {
            auto w = value();
            if (w == "zipf") o.zipf = true;
            else ok = w == "uniform";
        }
        else if (a == "--peers") ok = parse_number(value(), o.z.peers) && o.z.peers > 0;
        else if (a == "--zipf-exponent") ok = parse_share(value(), o.z.exponent, 0, 4);
        else if (a == "--ipv6-share") ok = parse_share(value(), o.z.ipv6_share, 0, 1);
        else if (a == "--target6") o.target6 = std::string(value());
        else if (a == "--scrape-share") ok = parse_share(value(), o.z.scrape_share, 0, 1);
        else if (a == "--scrape-hashes") ok = parse_number(value(), o.z.scrape_hashes) && o.z.scrape_hashes >= 1 && o.z.scrape_hashes <= 74;
        else if (a == "--stop-share") ok = parse_share(value(), o.z.stop_share, 0, 1);
        else if (a == "--vanish-share") ok = parse_share(value(), o.z.vanish_share, 0, 1);
        else if (a == "--complete-share") ok = parse_share(value(), o.z.complete_share, 0, 1);
        else if (a == "--seeder-share") ok = parse_share(value(), o.z.seeder_share, 0, 1);
        else if (a == "--source-net") ok = parse_source_net(std::string(value()), o.z.source_base, o.z.source_count);
        else ok = false;
        if (!ok) {
            std::fprintf(stderr, "chihaya_loadgen: bad argument near '%s'\n", argv[i]);
            return std::nullopt;
        }
    }
    if (o.target.empty() && !o.print_info_hashes && !o.print_passkeys) {
        std::fprintf(stderr, "chihaya_loadgen: --target is required\n");
        return std::nullopt;
    }
    if (o.zipf && o.rate > 0) {
        std::fprintf(stderr, "chihaya_loadgen: --rate is for the uniform workload\n");
        return std::nullopt;
    }
    if (o.zipf && o.mode != Mode::Udp) {
        std::fprintf(stderr, "chihaya_loadgen: --workload zipf is UDP only\n");
        return std::nullopt;
    }
    if (o.zipf && !o.torrents_given) o.torrents = 1'000'000;
    if (o.zipf && !o.prepopulate_s_given) o.prepopulate_s = 300;
    if (o.connections == 0) o.connections = o.mode == Mode::Udp ? 8 : 32;
    if (o.threads > o.connections) o.threads = o.connections;
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


struct Announce {
    uint32_t torrent;
    uint32_t peer;
    Event event;
    uint64_t left;
};

// One thread's stream of announces; `stream` (the thread index) and --run only change the
// steady phase's random choices. Info hashes and peer ids depend on the seed alone, so every
// thread and every run of the same seed address the same swarms.
class Workload {
public:
    Workload(const Options& o, uint32_t stream)
        : o_(o), rng_(splitmix64(o.seed ^ 0x5EEDull ^ (uint64_t(stream) << 40) ^
                                 (o.run ? splitmix64(o.run) : 0))) {}

    void info_hash(uint32_t torrent, uint8_t out[20]) const { fill(out, 20, 0x1000'0000'0000ull + torrent, 0); }
    void peer_id(uint32_t torrent, uint32_t peer, uint8_t out[20]) const {
        std::memcpy(out, "-CL0001-", 8);
        fill(out + 8, 12, torrent, peer + 1);
    }
    static uint16_t port(uint32_t peer) { return static_cast<uint16_t>(kFirstPort + peer % kPorts); }
    // Private mode: the user a simulated peer announces as.
    uint32_t user(uint32_t torrent, uint32_t peer) const {
        return uint32_t((uint64_t(torrent) * o_.peers_per_torrent + peer) % o_.passkeys);
    }
    // The ports a reply may name: one per simulated peer of a torrent.
    uint32_t port_count() const { return std::min(o_.peers_per_torrent, kPorts); }

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
    static constexpr uint32_t kFirstPort = 10'000;
    static constexpr uint32_t kPorts = 50'000;

private:
    void fill(uint8_t* out, size_t n, uint64_t a, uint64_t b) const { derive_bytes(o_.seed, a, b, out, n); }

    const Options& o_;
    Rng rng_;
};

// One thread's supply of announces in a phase: a count and a deadline, whichever ends it first.
// Phase 1 is striped over the threads (thread k takes announces k, k + T, k + 2T, ...), so all
// of them together announce every peer exactly once. An announce that could not be sent (socket
// buffer full) is handed back and comes out again first, so phase 1 never skips a peer.
struct Source {
    Workload* workload;
    bool prepopulating;
    uint64_t limit;  // announces this thread issues
    int64_t deadline_us;
    uint64_t first = 0, stride = 1;  // phase 1 striping
    double per_us = 0;               // --rate: this thread's announces per microsecond; 0 = unpaced
    int64_t start_us = 0;
    uint64_t issued = 0;
    std::vector<Announce> returned;

    bool exhausted(int64_t now) const {
        return (issued >= limit && returned.empty()) || now >= deadline_us;
    }
    // Paced: the next announce is due once the schedule since start_us has reached it. One handed
    // back was already counted, so it is always due.
    bool due(int64_t now) const {
        return per_us == 0 || !returned.empty() || double(issued) < per_us * double(now - start_us);
    }
    Announce next() {
        if (!returned.empty()) {
            Announce a = returned.back();
            returned.pop_back();
            return a;
        }
        return prepopulating ? workload->prepopulate(first + stride * issued++)
                             : (issued++, workload->steady());
    }
    void give_back(const Announce& a) { returned.push_back(a); }
};

// ---- results -----------------------------------------------------------------------------------


// Checks the compact peers of one reply: each must be `self_addr` with a workload port, and
// none may appear twice. Returns an error text, or nullptr.
const char* check_peers(const uint8_t* p, size_t count, size_t entry, const uint8_t* self_addr,
                        uint16_t self_port, uint32_t port_count, Stats& st) {
    size_t addr_len = entry - 2;
    uint16_t seen[64];
    size_t kept = 0;
    for (size_t k = 0; k < count; ++k, p += entry) {
        if (std::memcmp(p, self_addr, addr_len) != 0) return "peer with an address nobody announced";
        uint16_t port = uint16_t(p[addr_len] << 8 | p[addr_len + 1]);
        if (port < Workload::kFirstPort || port >= Workload::kFirstPort + port_count)
            return "peer with a port nobody announced";
        if (port == self_port) ++st.self_peers;
        for (size_t j = 0; j < kept; ++j)
            if (seen[j] == port) return "the same peer twice in one reply";
        if (kept < std::size(seen)) seen[kept++] = port;
    }
    return nullptr;
}

// The address the kernel gives our loopback sockets: the one peers must carry in replies.
void local_address(int fd, int family, uint8_t out[16]) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    std::memset(out, 0, 16);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
    if (family == AF_INET) std::memcpy(out, &reinterpret_cast<sockaddr_in&>(a).sin_addr, 4);
    else std::memcpy(out, &reinterpret_cast<sockaddr_in6&>(a).sin6_addr, 16);
}

// ---- UDP (BEP 15) ------------------------------------------------------------------------------

constexpr size_t kAnnounceSize = 98;
// With --passkeys: 98 + URLData option (type, length, "/<32-char passkey>/announce") + EndOfOptions.
constexpr size_t kPrivatePathSize = 1 + kPasskeySize + 9;
constexpr size_t kPrivateAnnounceSize = kAnnounceSize + 2 + kPrivatePathSize + 1;
constexpr unsigned kRecvBatch = 64;

class UdpEngine {
public:
    UdpEngine(const Options& o, const Target& t, uint32_t sockets)
        : o_(o), entry_(t.family == AF_INET ? 6 : 18),
          reply_cap_(20 + entry_ * std::max<size_t>(o.numwant, 1) + 64),
          rx_(size_t(kRecvBatch) * reply_cap_), rx_iov_(kRecvBatch), rx_msgs_(kRecvBatch) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        for (uint32_t i = 0; i < sockets; ++i) {
            int fd = socket(t.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0) {
                std::perror("chihaya_loadgen: udp socket");
                std::exit(1);
            }
            int buf = 4 << 20;
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
            auto s = std::make_unique<Sock>();
            s->fd = fd;
            s->slots.resize(o.inflight + 1);
            s->tx.resize(size_t(o.inflight + 1) * kPrivateAnnounceSize);
            s->tx_iov.resize(o.inflight + 1);
            s->tx_msgs.resize(o.inflight + 1);
            s->tx_slot.resize(o.inflight + 1);
            epoll_event ev{EPOLLIN, {.u32 = i}};
            epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
            sockets_.push_back(std::move(s));
        }
        if (!sockets_.empty()) local_address(sockets_[0]->fd, t.family, self_addr_);
        for (unsigned i = 0; i < kRecvBatch; ++i) {
            rx_iov_[i] = {rx_.data() + i * reply_cap_, reply_cap_};
            rx_msgs_[i].msg_hdr = msghdr{};
            rx_msgs_[i].msg_hdr.msg_iov = &rx_iov_[i];
            rx_msgs_[i].msg_hdr.msg_iovlen = 1;
        }
    }
    ~UdpEngine() {
        for (auto& s : sockets_) close(s->fd);
        close(epoll_);
    }

    void run(Source& src, Stats& st) {
        std::vector<epoll_event> events(sockets_.size());
        st.start_us = now_us();
        int64_t last_expire = st.start_us;
        for (;;) {
            int64_t now = now_us();
            bool sending = !src.exhausted(now);
            // Draining ends on its own: expire() frees every slot within timeout_ms.
            if (!sending && outstanding() == 0) break;
            bool expiring = now - last_expire > 10'000;  // slots are scanned 100 times a second
            if (expiring) last_expire = now;
            for (auto& s : sockets_) {
                if (expiring) expire(*s, now, st);
                if (sending) fill(*s, src, st, now);
            }
            int n = epoll_wait(epoll_, events.data(), int(events.size()), o_.rate > 0 ? 1 : 5);
            if (n < 0 && errno != EINTR) { std::perror("epoll_wait"); break; }
            for (int k = 0; k < n; ++k) receive(*sockets_[events[k].data.u32], st);
        }
        for (auto& s : sockets_)
            for (auto& slot : s->slots)
                if (slot.busy) { slot.busy = false; ++st.timeouts; --s->busy; }
        st.end_us = now_us();
    }

private:
    struct Slot {
        bool busy = false;
        bool is_connect = false;
        uint16_t port = 0;  // the announcing peer's, to spot it in its own reply
        uint32_t tid = 0;
        int64_t sent_us = 0;
        Announce announce{};  // handed back to the source when it could not be sent
    };
    struct Sock {
        int fd = -1;
        uint64_t connection_id = 0;
        int64_t connected_us = -1;  // -1: no id yet
        std::vector<Slot> slots;    // slot 0 is the connect; the rest announces
        uint32_t busy = 0;
        uint16_t generation = 0;
        // Send batch: request k of a sendmmsg is tx[slot * 98], slot tx_slot[k].
        std::vector<uint8_t> tx;
        std::vector<iovec> tx_iov;
        std::vector<mmsghdr> tx_msgs;
        std::vector<uint32_t> tx_slot;
    };

    size_t outstanding() const {
        size_t n = 0;
        for (auto& s : sockets_) n += s->busy;
        return n;
    }

    // The tid names the slot (low 16 bits) and its use (high 16): a reply to a slot that timed
    // out and was reused is recognised as late instead of being taken for the new request's.
    uint32_t next_tid(Sock& s, size_t slot) { return (uint32_t(++s.generation) << 16) | uint32_t(slot); }

    uint8_t* packet(Sock& s, uint32_t slot) { return s.tx.data() + size_t(slot) * kPrivateAnnounceSize; }

    void queue(Sock& s, unsigned& count, uint32_t slot, size_t size) {
        s.tx_iov[count] = {packet(s, slot), size};
        s.tx_msgs[count].msg_hdr = msghdr{};
        s.tx_msgs[count].msg_hdr.msg_iov = &s.tx_iov[count];
        s.tx_msgs[count].msg_hdr.msg_iovlen = 1;
        s.tx_slot[count++] = slot;
    }

    void fill(Sock& s, Source& src, Stats& st, int64_t now) {
        unsigned count = 0;
        bool stale = s.connected_us < 0 || now - s.connected_us > kConnectionIdMaxAgeUs;
        if (stale && !s.slots[0].busy) {
            uint8_t* p = packet(s, 0);
            put64(p, kProtocolId);
            put32(p + 8, 0);
            put32(p + 12, next_tid(s, 0));
            s.slots[0] = Slot{false, true, 0, get32(p + 12), now, {}};
            queue(s, count, 0, 16);
        }
        if (s.connected_us >= 0) {
            for (uint32_t i = 1; i < s.slots.size() && !src.exhausted(now) && src.due(now); ++i) {
                if (s.slots[i].busy) continue;
                Announce a = src.next();
                uint8_t* p = packet(s, i);
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
                put32(p + 88, a.peer + 1);                              // key: never 0 (UDP 0 = none)
                put32(p + 92, o_.numwant);
                uint16_t port = Workload::port(a.peer);
                p[96] = uint8_t(port >> 8);
                p[97] = uint8_t(port);
                s.slots[i] = Slot{false, false, port, get32(p + 12), now, a};
                size_t size = kAnnounceSize;
                if (o_.passkeys) {
                    // BEP 41: udp://host:port/<passkey>/announce travels as URL data.
                    p[size++] = 2;
                    p[size++] = uint8_t(kPrivatePathSize);
                    p[size++] = '/';
                    write_bench_passkey(src.workload->user(a.torrent, a.peer), reinterpret_cast<char*>(p + size));
                    size += kPasskeySize;
                    std::memcpy(p + size, "/announce", 9);
                    size += 9;
                    p[size++] = 0;
                }
                queue(s, count, i, size);
            }
        }
        unsigned sent = 0;
        while (sent < count) {
            int n = sendmmsg(s.fd, s.tx_msgs.data() + sent, count - sent, 0);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
                    st.error(std::string("udp send: ") + std::strerror(errno));
                break;  // buffer full: the rest goes out on the next round
            }
            sent += unsigned(n);
        }
        for (unsigned k = 0; k < count; ++k) {
            Slot& slot = s.slots[s.tx_slot[k]];
            if (k < sent) {
                slot.busy = true;
                ++s.busy;
                if (!slot.is_connect) ++st.sent;
            } else if (!slot.is_connect) {
                src.give_back(slot.announce);
            }
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
        for (int round = 0; round < 4; ++round) {
            int n = recvmmsg(s.fd, rx_msgs_.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
                if (errno == ECONNREFUSED) { st.error("udp: connection refused (is the tracker up?)"); return; }
                st.error(std::string("udp recv: ") + std::strerror(errno));
                return;
            }
            int64_t now = now_us();  // one clock read per batch: replies in it arrived together
            for (int k = 0; k < n; ++k) {
                if (rx_msgs_[k].msg_hdr.msg_flags & MSG_TRUNC) {
                    st.error("udp: reply larger than numwant allows");
                    continue;
                }
                one_reply(s, rx_.data() + size_t(k) * reply_cap_, rx_msgs_[k].msg_len, now, st);
            }
            if (unsigned(n) < kRecvBatch) return;
        }
    }

    void one_reply(Sock& s, const uint8_t* buf, size_t n, int64_t now, Stats& st) {
        if (n < 8) { st.error("udp: reply of " + std::to_string(n) + " bytes"); return; }
        uint32_t action = get32(buf), tid = get32(buf + 4);
        size_t slot_index = tid & 0xFFFF;
        if (slot_index >= s.slots.size() || !s.slots[slot_index].busy || s.slots[slot_index].tid != tid) {
            ++st.late;
            return;
        }
        Slot& slot = s.slots[slot_index];
        slot.busy = false;
        --s.busy;
        if (action == 3) {
            st.error("udp: tracker error: " + std::string(reinterpret_cast<const char*>(buf + 8), n - 8));
            if (!slot.is_connect) s.connected_us = -1;  // perhaps the id expired: get another
            return;
        }
        if (slot.is_connect) {
            if (action != 0 || n != 16) { st.error("udp: bad connect reply of " + std::to_string(n) + " bytes"); return; }
            s.connection_id = get64(buf + 8);
            s.connected_us = now;
            return;
        }
        if (action != 1 || n < 20 || (n - 20) % entry_ != 0) {
            st.error("udp: bad announce reply: action " + std::to_string(action) + ", " + std::to_string(n) + " bytes");
            return;
        }
        size_t peers = (n - 20) / entry_;
        if (peers > o_.numwant) { st.error("udp: more peers than numwant"); return; }
        uint32_t ports = std::min(o_.peers_per_torrent, Workload::kPorts);
        if (const char* bad = check_peers(buf + 20, peers, entry_, self_addr_, slot.port, ports, st)) {
            st.error(std::string("udp: ") + bad);
            return;
        }
        ++st.ok;
        st.peers += peers;
        st.latency.add(now - slot.sent_us);
    }

    const Options& o_;
    size_t entry_;
    size_t reply_cap_;
    int epoll_ = -1;
    uint8_t self_addr_[16]{};
    std::vector<uint8_t> rx_;  // kRecvBatch replies of reply_cap_ bytes each
    std::vector<iovec> rx_iov_;
    std::vector<mmsghdr> rx_msgs_;
    std::vector<std::unique_ptr<Sock>> sockets_;
};

// ---- HTTP --------------------------------------------------------------------------------------

// Walks one bencoded value; false when malformed. Records what an announce answer must have.
struct BencodeCheck {
    const char* p;
    const char* end;
    bool has_interval = false;
    bool has_failure = false;
    std::string_view peers;  // the compact "peers" (or "peers6") string
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
            if (ok && depth == 2 && (key == "peers" || key == "peers6") && !s.empty()) peers = s;
        }
        --depth;
        return ok;
    }
};

bool equals_lower(std::string_view a, std::string_view lower) {
    if (a.size() != lower.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != lower[i]) return false;
    return true;
}

class HttpEngine {
public:
    HttpEngine(const Options& o, const Target& t, uint32_t connections)
        : o_(o), t_(t), keep_alive_(o.mode == Mode::Http), conns_(connections) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        for (auto& c : conns_) c.in.reserve(4096);
    }
    ~HttpEngine() {
        for (auto& c : conns_) drop(c);
        close(epoll_);
    }

    void run(Source& src, Stats& st) {
        std::vector<epoll_event> events(conns_.size());
        st.start_us = now_us();
        int64_t drain_until = 0, last_expire = st.start_us;
        for (;;) {
            int64_t now = now_us();
            bool sending = !src.exhausted(now);
            bool expiring = now - last_expire > 10'000;
            if (expiring) last_expire = now;
            size_t busy = 0;
            for (uint32_t i = 0; i < conns_.size(); ++i) {
                Conn& c = conns_[i];
                if (expiring && c.state != State::Idle && now - c.sent_us > int64_t(o_.timeout_ms) * 1000) {
                    ++st.timeouts;
                    drop(c);
                }
                if (c.state == State::Idle && sending && !src.exhausted(now) && src.due(now))
                    start(c, i, src, st, now);
                busy += c.state != State::Idle;
            }
            if (!sending) {
                if (busy == 0) break;
                if (drain_until == 0) drain_until = now + int64_t(o_.timeout_ms) * 1000;
                if (now > drain_until) break;
            }
            int n = epoll_wait(epoll_, events.data(), int(events.size()), o_.rate > 0 ? 1 : 5);
            if (n < 0 && errno != EINTR) { std::perror("epoll_wait"); break; }
            for (int k = 0; k < n; ++k) step(conns_[events[k].data.u32], st);
        }
        for (auto& c : conns_)
            if (c.state != State::Idle) { ++st.timeouts; drop(c); }
        st.end_us = now_us();
    }

private:
    enum class State { Idle, Writing, Reading };
    struct Conn {
        int fd = -1;
        State state = State::Idle;
        bool want_out = false;  // registered for EPOLLOUT (connecting or a partial write)
        bool reused = false;    // the request went out on a kept-alive connection
        bool retry_ok = false;  // it has not been retried yet
        uint16_t port = 0;
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
            close(c.fd);  // also leaves the epoll set
        }
        c.fd = -1;
        c.state = State::Idle;
        c.want_out = false;
        c.in.clear();
    }

    void watch_out(Conn& c, uint32_t index, bool out) {
        if (c.want_out == out) return;
        c.want_out = out;
        epoll_event ev{EPOLLIN | (out ? EPOLLOUT : 0u), {.u32 = index}};
        epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    }

    static void append_escaped(std::string& out, const uint8_t* p, size_t n) {
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; ++i) {
            out += '%';
            out += hex[p[i] >> 4];
            out += hex[p[i] & 15];
        }
    }

    void start(Conn& c, uint32_t index, Source& src, Stats& st, int64_t now) {
        Announce a = src.next();
        uint8_t ih[20], pid[20];
        src.workload->info_hash(a.torrent, ih);
        src.workload->peer_id(a.torrent, a.peer, pid);
        static const char* events[] = {"", "&event=completed", "&event=started", "&event=stopped"};
        std::string& r = c.request;
        if (o_.passkeys) {
            r.assign("GET /");
            const size_t at = r.size();
            r.append(kPasskeySize, '0');
            write_bench_passkey(src.workload->user(a.torrent, a.peer), r.data() + at);
            r += "/announce?info_hash=";
        } else {
            r.assign("GET /announce?info_hash=");
        }
        append_escaped(r, ih, 20);
        r += "&peer_id=";
        append_escaped(r, pid, 20);
        c.port = Workload::port(a.peer);
        char tail[256];
        std::snprintf(tail, sizeof tail,
                      "&port=%u&uploaded=0&downloaded=%" PRIu64 "&left=%" PRIu64 "&compact=1&numwant=%u"
                      "&key=%08x%s HTTP/1.1\r\n",  // the key UDP sends: one peer, both protocols (BEP 7)
                      unsigned(c.port), a.left == 0 ? Workload::left_bytes : 0, a.left,
                      o_.numwant, unsigned(a.peer + 1), events[uint32_t(a.event)]);
        r += tail;
        r += "Host: ";
        r += t_.host_header;
        r += "\r\n";
        if (!keep_alive_) r += "Connection: close\r\n";
        r += "\r\n";
        c.written = 0;
        c.sent_us = now;
        c.state = State::Writing;
        ++st.sent;
        c.retry_ok = true;
        c.reused = c.fd >= 0;
        if (c.fd < 0 && !open(c, index, st)) return;
        write_some(c, index, st);  // on loopback the handshake is usually done already
    }

    bool open(Conn& c, uint32_t index, Stats& st) {
        c.fd = socket(t_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event ev{EPOLLIN, {.u32 = index}};
        epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
        if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&t_.addr), t_.len) != 0 && errno != EINPROGRESS) {
            st.error(std::string("http connect: ") + std::strerror(errno));
            drop(c);
            return false;
        }
        if (!have_self_) { local_address(c.fd, t_.family, self_addr_); have_self_ = true; }
        return true;
    }

    void write_some(Conn& c, uint32_t index, Stats& st) {
        ssize_t n = ::send(c.fd, c.request.data() + c.written, c.request.size() - c.written, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN) { watch_out(c, index, true); return; }
            st.error(std::string("http send: ") + std::strerror(errno));
            drop(c);
            return;
        }
        c.written += size_t(n);
        if (c.written == c.request.size()) {
            c.state = State::Reading;
            watch_out(c, index, false);
        } else {
            watch_out(c, index, true);
        }
    }

    void step(Conn& c, Stats& st) {
        if (c.fd < 0) return;
        uint32_t index = uint32_t(&c - conns_.data());
        if (c.state == State::Writing) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) { st.error(std::string("http connect: ") + std::strerror(err)); drop(c); return; }
            write_some(c, index, st);
            return;
        }
        if (c.state != State::Reading) {
            // Readable while idle: the tracker closed a kept-alive connection; reconnect next time.
            drop(c);
            return;
        }
        char buf[16384];
        ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            // A kept-alive connection the server closed while we reused it: as any HTTP client
            // does for an idempotent GET (RFC 9112, 9.3.1), send it again on a new connection.
            if (c.in.empty() && c.reused && c.retry_ok) {
                ++st.retries;
                drop(c);
                c.retry_ok = false;
                c.written = 0;
                c.state = State::Writing;
                open(c, index, st);
                if (c.fd >= 0) write_some(c, index, st);
                return;
            }
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
            size_t colon = line.find(':');
            std::string_view name = line.substr(0, colon);
            std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            if (equals_lower(name, "content-length") && !parse_number(value, length)) length = SIZE_MAX;
            if (equals_lower(name, "connection") && equals_lower(value, "close")) close_after = true;
            pos = next;
        }
        if (length == SIZE_MAX) { st.error("http: answer without Content-Length"); drop(c); return; }
        if (c.in.size() < head_end + 4 + length) return;
        int64_t now = now_us();
        std::string_view body(c.in.data() + head_end + 4, length);
        bool good = head.starts_with("HTTP/1.") && head.size() >= 12 && head.substr(8, 4) == " 200";
        BencodeCheck check{body.data(), body.data() + body.size(), false, false, {}, 0};
        size_t entry = t_.family == AF_INET ? 6 : 18;
        if (!good) {
            st.error("http: " + std::string(head.substr(0, head.find("\r\n"))));
        } else if (!check.value() || check.p != body.data() + body.size() || body.front() != 'd') {
            st.error("http: body is not one bencoded dict: " + std::string(body.substr(0, 80)));
        } else if (check.has_failure || !check.has_interval) {
            st.error("http: " + std::string(check.has_failure ? "failure: " : "no interval: ") + std::string(body.substr(0, 120)));
        } else if (check.peers.size() % entry != 0 || check.peers.size() / entry > o_.numwant) {
            st.error("http: compact peers of " + std::to_string(check.peers.size()) + " bytes");
        } else if (const char* bad = check_peers(reinterpret_cast<const uint8_t*>(check.peers.data()),
                                                 check.peers.size() / entry, entry, self_addr_, c.port,
                                                 std::min(o_.peers_per_torrent, Workload::kPorts), st)) {
            st.error(std::string("http: ") + bad);
        } else {
            ++st.ok;
            st.peers += check.peers.size() / entry;
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
    int epoll_ = -1;
    bool have_self_ = false;
    uint8_t self_addr_[16]{};
    std::vector<Conn> conns_;
};

// Runs one phase on every thread's engine at once and reports the merged figures.
template <class Engine>
void run_phase(std::vector<std::unique_ptr<Engine>>& engines, std::vector<Workload>& workloads,
               const Options& o, bool prepopulating, double seconds, const char* mode, Stats& out) {
    const uint64_t threads = engines.size();
    const int64_t deadline = now_us() + int64_t(seconds * 1e6);
    const uint64_t total = prepopulating ? workloads[0].prepopulate_count() : o.max_requests;
    std::vector<Source> sources;
    std::vector<Stats> stats(threads);
    for (uint64_t k = 0; k < threads; ++k) {
        // Thread k's share of `total` when dealt out one at a time from k with stride `threads`.
        uint64_t share = total / threads + (k < total % threads ? 1 : 0);
        double per_us = prepopulating ? 0 : o.rate / 1e6 / double(threads);
        sources.push_back(Source{&workloads[k], prepopulating, share, deadline, k, threads, per_us,
                                 now_us(), 0, {}});
    }
    std::vector<std::thread> pool;
    for (uint64_t k = 1; k < threads; ++k)
        pool.emplace_back([&, k] { engines[k]->run(sources[k], stats[k]); });
    engines[0]->run(sources[0], stats[0]);
    for (auto& t : pool) t.join();
    for (auto& s : stats) out.merge(s);
    report(mode, prepopulating ? "prepopulate" : "steady", out, uint32_t(threads));
}

// --workload zipf: the targets checked here, the rest in zipf_udp.cpp.
int run_zipf_workload(const Options& o, const Target& target) {
    ZipfRun run;
    run.workload = o.z;
    run.workload.seed = o.seed;
    run.workload.torrents = o.torrents;
    if (target.family != AF_INET) {
        std::fprintf(stderr, "chihaya_loadgen: --workload zipf: --target is the tracker's IPv4 listener "
                             "(the sources are 127.x addresses); IPv6 peers go to --target6\n");
        return 2;
    }
    std::memcpy(&run.target4, &target.addr, sizeof run.target4);
    if (run.workload.ipv6_share > 0) {
        auto t6 = o.target6.empty() ? std::nullopt : parse_target(o.target6);
        if (!t6 || t6->family != AF_INET6) {
            std::fprintf(stderr, "chihaya_loadgen: --ipv6-share > 0 needs --target6 [::1]:PORT "
                                 "(or --ipv6-share 0 for an IPv4-only tracker)\n");
            return 2;
        }
        std::memcpy(&run.target6, &t6->addr, sizeof run.target6);
        run.have_target6 = true;
    }
    run.sockets = o.connections;
    run.inflight = std::min<uint32_t>(o.inflight, 65535);
    run.threads = o.threads;
    run.numwant = o.numwant;
    run.timeout_ms = o.timeout_ms;
    run.duration_s = o.duration_s;
    run.prepopulate_s = o.prepopulate_s;
    run.max_requests = o.max_requests;
    run.prepopulate = o.prepopulate;
    run.steady = o.steady;
    return run_zipf(run);
}

}  // namespace

int main(int argc, char** argv) {
    auto opts = parse_options(argc, argv);
    if (!opts) { usage(stderr); return 2; }
    if (opts->print_passkeys) {
        for (uint32_t u = 0; u < opts->passkeys; ++u) std::printf("%s\n", bench_passkey(u).c_str());
        return 0;
    }
    if (opts->print_info_hashes) {
        Workload w(*opts, 0);
        uint8_t h[20];
        for (uint32_t t = 0; t < opts->torrents; ++t) {
            w.info_hash(t, h);
            for (uint8_t b : h) std::printf("%02x", b);
            std::putchar('\n');
        }
        return 0;
    }
    auto target = parse_target(opts->target);
    if (!target) {
        std::fprintf(stderr, "chihaya_loadgen: target '%s' is not a numeric loopback address "
                             "(127.0.0.0/8 or [::1]) with a port\n", opts->target.c_str());
        return 2;
    }
    if (opts->zipf) return run_zipf_workload(*opts, *target);
    const char* mode = opts->mode == Mode::Udp ? "udp" : opts->mode == Mode::Http ? "http" : "http-close";
    std::vector<Workload> workloads;
    for (uint32_t k = 0; k < opts->threads; ++k) workloads.emplace_back(*opts, k);
    Stats pre, steady;
    auto both = [&](auto& engines) {
        if (opts->prepopulate)
            run_phase(engines, workloads, *opts, true, opts->prepopulate_s, mode, pre);
        if (opts->steady)
            run_phase(engines, workloads, *opts, false, opts->duration_s, mode, steady);
    };
    // Connection k goes to thread k % threads.
    auto share = [&](uint32_t k) { return opts->connections / opts->threads + (k < opts->connections % opts->threads ? 1 : 0); };
    if (opts->mode == Mode::Udp) {
        std::vector<std::unique_ptr<UdpEngine>> engines;
        for (uint32_t k = 0; k < opts->threads; ++k) engines.push_back(std::make_unique<UdpEngine>(*opts, *target, share(k)));
        both(engines);
    } else {
        std::vector<std::unique_ptr<HttpEngine>> engines;
        for (uint32_t k = 0; k < opts->threads; ++k) engines.push_back(std::make_unique<HttpEngine>(*opts, *target, share(k)));
        both(engines);
    }
    bool clean = pre.errors + pre.timeouts + steady.errors + steady.timeouts == 0;
    return clean ? 0 : 1;
}
