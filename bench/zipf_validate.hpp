// What a legitimate answer to a Zipf-workload request is (chihaya_loadgen --workload zipf).
#pragma once

#include "workload_zipf.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace loadgen {

struct ReplyCheck {
    std::string error;   // empty: the reply is valid
    uint64_t peers = 0;  // peers listed
    uint64_t self = 0;   // 1 when the announcing peer was handed its own endpoint (not an error)
};

// A BEP 15 announce reply (`n` bytes from `buf`, action already read) to request `r`: action 1,
// 20 + 6n (IPv4) or 18n (IPv6) bytes exactly, n <= numwant, seeders + leechers at most the
// swarm's size, every peer a member of r.torrent's swarm in the model, none listed twice.
ReplyCheck check_announce_reply(const ZipfModel& m, const ZipfRequest& r, uint32_t numwant, bool v6,
                                uint32_t action, const uint8_t* buf, size_t n);

// A BEP 15 scrape reply: action 2, 8 + 12 bytes per info_hash asked exactly (no fewer entries:
// the client would have no figures for the rest), seeders + leechers of each entry at most its
// torrent's size.
ReplyCheck check_scrape_reply(const ZipfModel& m, const ZipfRequest& r, uint32_t action,
                              const uint8_t* buf, size_t n);

}  // namespace loadgen
