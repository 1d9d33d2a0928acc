// The Zipf workload's model: swarm sizes, peer placement, membership checks and the churn stream.
// The layout is described in workload_zipf.hpp.
#include "workload_zipf.hpp"

#include <cmath>
#include <numeric>
#include <stdexcept>

namespace loadgen {

namespace {

// Sum of max(1, floor(c * w[r])) over all ranks, stopping early once above `cap`.
uint64_t sized_sum(const std::vector<double>& w, double c, uint64_t cap) {
    uint64_t sum = 0;
    for (double x : w) {
        double v = std::floor(c * x);
        sum += v < 1 ? 1 : uint64_t(v);
        if (sum > cap) break;
    }
    return sum;
}

double unit(uint64_t h) { return double(h >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)

}  // namespace

ZipfModel::ZipfModel(const ZipfConfig& config) : c_(config) {
    if (c_.torrents == 0 || c_.peers < c_.torrents)
        throw std::invalid_argument("--peers must be at least --torrents (every torrent has a peer)");
    std::vector<double> w(c_.torrents);
    for (uint32_t r = 0; r < c_.torrents; ++r) w[r] = std::pow(double(r + 1), -c_.exponent);
    // The largest c whose sizes add up to at most `peers`: bisection over [1, peers].
    double lo = 1, hi = double(c_.peers) + 1;
    for (int i = 0; i < 64 && hi - lo > 0.5; ++i) {
        double mid = (lo + hi) / 2;
        if (sized_sum(w, mid, c_.peers) <= c_.peers) lo = mid; else hi = mid;
    }
    offsets_.resize(size_t(c_.torrents) + 1);
    offsets_[0] = 0;
    for (uint32_t r = 0; r < c_.torrents; ++r) {
        double v = std::floor(lo * w[r]);
        offsets_[r + 1] = offsets_[r] + (v < 1 ? 1 : uint64_t(v));
    }
    if (total_peers() > UINT32_MAX) throw std::invalid_argument("--peers: at most 4294967295");
    // guide_[b]: the torrent of peer b << shift, for about 65,536 buckets.
    guide_shift_ = 0;
    while ((total_peers() >> guide_shift_) > 65536) ++guide_shift_;
    size_t buckets = size_t(total_peers() >> guide_shift_) + 1;
    guide_.resize(buckets + 1);
    for (size_t b = 0, t = 0; b <= buckets; ++b) {
        uint64_t g = std::min<uint64_t>(uint64_t(b) << guide_shift_, total_peers() - 1);
        while (offsets_[t + 1] <= g) ++t;
        guide_[b] = uint32_t(t);
    }
    if (size(0) > 50'000'000) throw std::invalid_argument("the largest swarm would exceed 50,000,000 peers");
    uint32_t largest_v6 = 0, largest_v4 = 0;
    for (uint32_t t = 0; t < c_.torrents; ++t) {
        uint32_t v6 = v6_count(t);
        v6_total_ += v6;
        largest_v6 = std::max(largest_v6, v6);
        largest_v4 = std::max(largest_v4, size(t) - v6);
    }
    if (largest_v6 > 65535 - kFirstPort)
        throw std::invalid_argument("IPv6 peers come from ::1 and differ by port alone: the largest swarm's " +
                                    std::to_string(largest_v6) + " IPv6 peers need more than 55,535 ports");
    // Ports per address: k = 0 .. slots-1, each spread over `stride` values by the address.
    uint64_t slots = (uint64_t(largest_v4) + c_.source_count - 1) / c_.source_count;
    if (slots == 0) slots = 1;
    stride_ = uint32_t(std::min<uint64_t>(64, (65536 - kFirstPort) / slots));
    if (stride_ == 0)
        throw std::invalid_argument("too few source addresses for the largest swarm's IPv4 peers");
}

uint32_t ZipfModel::v6_count(uint32_t t) const {
    if (c_.ipv6_share <= 0) return 0;
    double want = double(size(t)) * c_.ipv6_share + unit(splitmix64(c_.seed ^ 0x6666ull ^ (uint64_t(t) << 20)));
    return std::min(size(t), uint32_t(want));
}

uint32_t ZipfModel::torrent_of(uint64_t g) const {
    // The last t with offsets_[t] <= g, searched between the guide's bounds for g's bucket
    // (a few dozen entries in the long tail, instead of 20 cache misses over the whole array).
    size_t b = size_t(g >> guide_shift_);
    auto first = offsets_.begin() + guide_[b];
    auto last = offsets_.begin() + std::min<size_t>(size_t(guide_[b + 1]) + 1, offsets_.size());
    auto it = std::upper_bound(first, last, g);
    return uint32_t(it - offsets_.begin() - 1);
}

uint32_t ZipfModel::address_offset(uint32_t t) const {
    return uint32_t(splitmix64(c_.seed ^ 0xADD7ull ^ (uint64_t(t) << 24)) % c_.source_count);
}

void ZipfModel::info_hash(uint32_t t, uint8_t out[20]) const {
    derive_bytes(c_.seed, 0x1000'0000'0000ull + t, 0, out, 20);
}

void ZipfModel::peer_id(uint32_t t, uint32_t j, uint8_t out[20]) const {
    std::memcpy(out, "-CL0001-", 8);
    derive_bytes(c_.seed, t, uint64_t(j) + 1, out + 8, 12);
}

uint32_t ZipfModel::key(uint32_t t, uint32_t j) const {
    uint32_t k = uint32_t(splitmix64(c_.seed ^ (uint64_t(t) << 32) ^ j));
    return k ? k : 1;
}

bool ZipfModel::initially_seeder(uint64_t g) const {
    return unit(splitmix64(c_.seed ^ 0x5EED5ull ^ (g << 8))) < c_.seeder_share;
}

void ZipfModel::place(uint32_t t, uint32_t j, ZipfRequest& r) const {
    r.torrent = t;
    r.peer = j;
    uint32_t v4 = size(t) - v6_count(t);
    if (j >= v4) {
        r.v6 = true;
        r.address = c_.source_count;
        r.port = uint16_t(kFirstPort + (j - v4));
        return;
    }
    r.v6 = false;
    uint32_t a = uint32_t((uint64_t(address_offset(t)) + j) % c_.source_count);
    uint32_t k = j / c_.source_count;
    r.address = a;
    r.port = uint16_t(kFirstPort + k * stride_ + a % stride_);
}

uint32_t ZipfModel::scrape_torrent(const ZipfRequest& r, uint32_t i) const {
    if (i == 0) return r.torrent;
    return torrent_of(splitmix64(r.scrape_seed + i) % total_peers());
}

bool ZipfModel::member_v4(uint32_t t, const uint8_t addr[4], uint16_t port) const {
    uint32_t ip = uint32_t(addr[0]) << 24 | uint32_t(addr[1]) << 16 | uint32_t(addr[2]) << 8 | addr[3];
    if (ip < c_.source_base || ip - c_.source_base >= c_.source_count || port < kFirstPort) return false;
    uint32_t a = ip - c_.source_base, p = port - kFirstPort;
    if (p % stride_ != a % stride_) return false;
    uint64_t k = p / stride_;
    uint64_t j = k * c_.source_count + (a + c_.source_count - address_offset(t)) % c_.source_count;
    return j < size(t) - v6_count(t);
}

bool ZipfModel::member_v6(uint32_t t, const uint8_t addr[16], uint16_t port) const {
    static const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (std::memcmp(addr, loopback, 16) != 0 || port < kFirstPort) return false;
    return uint32_t(port - kFirstPort) < v6_count(t);
}

// ---- the stream --------------------------------------------------------------------------------

ZipfStream::ZipfStream(const ZipfModel& model, std::vector<uint8_t>& state, uint32_t thread, uint32_t threads)
    : m_(model), state_(state), thread_(thread), threads_(threads),
      rng_(splitmix64(model.config().seed ^ 0x21Full ^ (uint64_t(thread) << 40))) {
    // A multiplier coprime to the total: i -> i * scatter mod total visits every peer once.
    uint64_t total = m_.total_peers();
    scatter_ = total > 2 ? (total * 5) / 8 + 1 : 1;
    while (std::gcd(scatter_, total) != 1) ++scatter_;
}

std::vector<uint8_t> ZipfStream::initial_state(const ZipfModel& model) {
    std::vector<uint8_t> s(model.total_peers());
    for (uint64_t g = 0; g < s.size(); ++g) s[g] = uint8_t(kActive | (model.initially_seeder(g) ? kSeeder : 0));
    return s;
}

uint64_t ZipfStream::prepopulate_count() const {
    uint64_t total = m_.total_peers();
    return total / threads_ + (thread_ < total % threads_ ? 1 : 0);
}

ZipfRequest ZipfStream::announce(uint64_t g, Event e) {
    ZipfRequest r;
    uint32_t t = m_.torrent_of(g);
    m_.place(t, uint32_t(g - m_.first_peer(t)), r);
    r.kind = ZipfRequest::Kind::Announce;
    r.event = e;
    r.left = (state_[g] & kSeeder) ? 0 : ZipfModel::kLeft;
    return r;
}

ZipfRequest ZipfStream::prepopulate(uint64_t i) {
    // Thread k takes k, k + n, ...: together every peer once. The state bytes start as phase 1
    // leaves them (every peer active), so a steady phase in another process agrees.
    uint64_t x = thread_ + i * threads_;
    uint64_t g = uint64_t((unsigned __int128)x * scatter_ % m_.total_peers());
    return announce(g, Event::Started);
}

uint64_t ZipfStream::pick_peer() {
    uint64_t total = m_.total_peers();
    // Misses only in the last, partial stride of `threads_` peers: a few tries are plenty.
    for (int tries = 0; tries < 64; ++tries) {
        uint64_t g = (rng_.next() >> 11) % total;
        g = g - g % threads_ + thread_;
        if (g < total) return g;
    }
    return thread_ < total ? thread_ : 0;
}

uint32_t ZipfStream::pick_torrent() { return m_.torrent_of((rng_.next() >> 11) % m_.total_peers()); }

ZipfRequest ZipfStream::steady() {
    const ZipfConfig& c = m_.config();
    if (unit(rng_.next()) < c.scrape_share) {
        uint64_t g = pick_peer();
        ZipfRequest r;
        uint32_t t = m_.torrent_of(g);
        m_.place(t, uint32_t(g - m_.first_peer(t)), r);
        r.kind = ZipfRequest::Kind::Scrape;
        r.scrape_seed = rng_.next();
        return r;
    }
    // A vanishing peer sends nothing: pick again (bounded; the last pick announces regardless).
    for (int tries = 0;; ++tries) {
        uint64_t g = pick_peer();
        uint8_t& s = state_[g];
        if (!(s & kActive)) {
            s |= kActive;
            return announce(g, Event::Started);
        }
        double roll = unit(rng_.next());
        if (roll < c.stop_share) {
            ZipfRequest r = announce(g, Event::Stopped);
            s &= uint8_t(~kActive);
            return r;
        }
        roll -= c.stop_share;
        if (roll < c.vanish_share && tries < 8) {
            s &= uint8_t(~kActive);
            ++vanished_;
            continue;
        }
        roll -= c.vanish_share;
        if (!(s & kSeeder) && roll < c.complete_share) {
            s |= kSeeder;
            return announce(g, Event::Completed);  // left = 0 now
        }
        return announce(g, Event::None);
    }
}

bool parse_source_net(const std::string& text, uint32_t& base, uint32_t& count) {
    auto slash = text.find('/');
    if (slash == std::string::npos) return false;
    in_addr a{};
    if (inet_pton(AF_INET, text.substr(0, slash).c_str(), &a) != 1) return false;
    int bits = 0;
    try { bits = std::stoi(text.substr(slash + 1)); } catch (...) { return false; }
    if (bits < 12 || bits > 32) return false;  // at most 2^20 addresses: a table entry each
    uint32_t ip = ntohl(a.s_addr);
    count = bits == 32 ? 1 : uint32_t(1) << (32 - bits);
    base = ip & ~(count - 1);
    return (base >> 24) == 127;
}

}  // namespace loadgen
