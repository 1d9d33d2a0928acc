// Reply validation of the Zipf workload: exact sizes, and every peer and count checked against
// the model (workload_zipf.hpp says who is in which swarm).
#include "zipf_validate.hpp"

namespace loadgen {

ReplyCheck check_announce_reply(const ZipfModel& m, const ZipfRequest& r, uint32_t numwant, bool v6,
                                uint32_t action, const uint8_t* buf, size_t n) {
    ReplyCheck c;
    size_t entry = v6 ? 18 : 6;
    if (action != 1 || n < 20 || (n - 20) % entry != 0) {
        c.error = "bad announce reply: action " + std::to_string(action) + ", " + std::to_string(n) + " bytes";
        return c;
    }
    size_t count = (n - 20) / entry;
    if (count > numwant) { c.error = "more peers than numwant"; return c; }
    if (uint64_t(get32(buf + 12)) + get32(buf + 16) > m.size(r.torrent)) {
        c.error = "announce reply counts more peers than the swarm has";
        return c;
    }
    // Every peer a member of the torrent's swarm, and listed once.
    uint64_t seen[256];
    size_t kept = 0;
    uint32_t self_ip = m.config().source_base + r.address;
    const uint8_t* p = buf + 20;
    for (size_t k = 0; k < count; ++k, p += entry) {
        size_t alen = entry - 2;
        uint16_t port = uint16_t(p[alen] << 8 | p[alen + 1]);
        uint64_t id;
        if (!v6) {
            if (!m.member_v4(r.torrent, p, port)) { c.error = "peer that is not in this torrent's swarm"; return c; }
            uint32_t ip = get32(p);
            id = uint64_t(ip) << 16 | port;
            if (ip == self_ip && port == r.port) c.self = 1;
        } else {
            if (!m.member_v6(r.torrent, p, port)) { c.error = "IPv6 peer that is not in this torrent's swarm"; return c; }
            id = port;
            if (port == r.port) c.self = 1;
        }
        for (size_t j = 0; j < kept; ++j)
            if (seen[j] == id) { c.error = "the same peer twice in one reply"; return c; }
        if (kept < std::size(seen)) seen[kept++] = id;
    }
    c.peers = count;
    return c;
}

ReplyCheck check_scrape_reply(const ZipfModel& m, const ZipfRequest& r, uint32_t action,
                              const uint8_t* buf, size_t n) {
    ReplyCheck c;
    uint32_t hashes = m.config().scrape_hashes;
    if (action != 2 || n != 8 + 12 * size_t(hashes)) {
        c.error = "bad scrape reply: action " + std::to_string(action) + ", " + std::to_string(n) +
                  " bytes for " + std::to_string(hashes) + " hashes";
        return c;
    }
    for (uint32_t k = 0; k < hashes; ++k) {
        const uint8_t* e = buf + 8 + 12 * k;
        uint64_t seeders = get32(e), leechers = get32(e + 8);
        if (seeders + leechers > m.size(m.scrape_torrent(r, k))) {
            c.error = "scrape counts more peers than the swarm has";
            return c;
        }
    }
    return c;
}

}  // namespace loadgen
