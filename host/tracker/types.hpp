// Wire-independent request and answer types shared by the frontends and the tracker core.
#pragma once

#include "tracker/call_guard.hpp"

#include <chihaya/abi.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace chihaya {

struct InfoHash {
    std::array<uint8_t, 20> bytes{};
    friend bool operator==(const InfoHash&, const InfoHash&) = default;
};

struct PeerId {
    std::array<uint8_t, 20> bytes{};
    friend bool operator==(const PeerId&, const PeerId&) = default;
};

// Where a peer is reached. IPv4 keeps its 4 bytes at the front of `addr`; an IPv4-mapped IPv6
// address is always stored as IPv4 (see make_endpoint in net/address.hpp).
struct Endpoint {
    chihaya_family family = CHIHAYA_IPV4;
    std::array<uint8_t, 16> addr{};  // network byte order
    uint16_t port = 0;               // host byte order

    // Bytes of one compact peer entry of this family (BEP 23 / BEP 7): address + port.
    static constexpr uint32_t compact_size(chihaya_family f) { return f == CHIHAYA_IPV4 ? 6 : 18; }
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

enum class Event : uint8_t {
    None = CHIHAYA_EVENT_NONE,
    Completed = CHIHAYA_EVENT_COMPLETED,
    Started = CHIHAYA_EVENT_STARTED,
    Stopped = CHIHAYA_EVENT_STOPPED,
};

// One announce as parsed by a frontend, before policy.
struct AnnounceRequest {
    InfoHash info_hash;
    PeerId peer_id;
    Endpoint peer;  // address the swarm will hand out: the socket's, or a trusted override
    // Who sent it: the socket's address, or the client behind a trusted proxy; never ip=. What
    // per-client limits ([limits] new_torrents_per_address) key on. Family 0: same as `peer`.
    Endpoint client{0};
    uint64_t uploaded = 0;
    uint64_t downloaded = 0;
    uint64_t left = 0;
    Event event = Event::None;
    int32_t numwant = -1;  // -1: the client did not say, the tracker's default applies
    uint32_t key = 0;      // BEP 7 key, when has_key
    bool has_key = false;
    // Private mode: the passkey from the URL (HTTP path, UDP BEP 41 URL data). A view into the
    // frontend's buffer, read only inside Tracker::announce; a secret, never logged.
    std::string_view passkey;
};

// How an admitted private-mode announce is accounted (private/policy.hpp decides it).
struct AccountingGrant {
    uint64_t user_id = 0;
    uint64_t torrent_id = 0;
    uint32_t upload_multiplier = CHIHAYA_MULTIPLIER_ONE;    // user's x torrent's, per mille
    uint32_t download_multiplier = CHIHAYA_MULTIPLIER_ONE;
};

class Ledger;
class NewSwarmRate;

// What the tracker answers. `failure` is null on success, otherwise a client-visible reason
// that stays valid until the call is reused (static text or the call's own message buffer).
struct AnnounceResponse {
    const char* failure = nullptr;
    uint32_t interval = 0;
    uint32_t min_interval = 0;
    uint32_t complete = 0;
    uint32_t incomplete = 0;
    uint32_t downloaded = 0;
    uint32_t peer_count = 0;  // compact entries written at AnnounceCall::peers
    // Non-fatal note for the client (HTTP "warning message"), static text or null.
    const char* warning = nullptr;
};

// Frontend-owned state of one announce in flight. It must stay alive and unmoved from
// Tracker::announce until `complete` has run; the frontend may reuse it afterwards. That holds
// also after Tracker::expire answered it: the driver may still write abi_result and the peers
// buffer until its late `done`, which runs `complete` (see there). Aligned so that ctx can carry
// the call's generation (call_guard.hpp).
struct alignas(CallGuard::kCallAlign) AnnounceCall {
    AnnounceRequest request;
    // Output area: room for `peers_capacity` compact entries of request.peer.family.
    uint8_t* peers = nullptr;
    uint32_t peers_capacity = 0;
    AnnounceResponse response;
    // Runs exactly once. `on_caller_thread` is true when it runs inside Tracker::announce on the
    // caller's thread (memory driver); false when a driver completes from its own thread, and then
    // the frontend must hop back to its own event loop before touching its state. After
    // Tracker::expire returned true it still runs once, when the late `done` comes (never, if it
    // never does): the client was answered then, `response` is left as expire set it, and the
    // frontend only takes the call back for reuse.
    void (*complete)(AnnounceCall* call, bool on_caller_thread) = nullptr;
    void* owner = nullptr;  // for the frontend's use

    // Tracker-private: the ABI structs handed to the driver.
    chihaya_announce_request abi_request{};
    chihaya_announce_result abi_result{};
    chihaya_completion completion{};
    CallGuard guard;           // kept from request to request: its generation (call_guard.hpp)
    Ledger* ledger = nullptr;  // private mode: where the completion records the report
    AccountingGrant grant;
    uint64_t started_ns = 0;   // tracker-private: when the driver call began (metrics)
    // Tracker-private: where a created swarm is charged ([limits] new_torrents_per_address).
    NewSwarmRate* new_swarms = nullptr;
    uint32_t new_swarm_rate = 0;  // per minute, the rate the call started under
};

// Frontend-owned scrape in flight; same lifetime and expiry rules as AnnounceCall (the driver
// may write `entries` until its late `done`). The frontend fills entries[i].info_hash; on success
// the counts are written in place.
struct alignas(CallGuard::kCallAlign) ScrapeCall {
    chihaya_scrape_entry* entries = nullptr;
    uint32_t count = 0;
    const char* failure = nullptr;
    std::string_view passkey;  // private mode, as AnnounceRequest::passkey
    void (*complete)(ScrapeCall* call, bool on_caller_thread) = nullptr;
    void* owner = nullptr;

    chihaya_scrape_request abi_request{};  // tracker-private
    chihaya_completion completion{};       // tracker-private
    CallGuard guard;                       // tracker-private; kept across requests (generation)
    uint64_t started_ns = 0;               // tracker-private: when the driver call began
};

}  // namespace chihaya
