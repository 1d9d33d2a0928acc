// Private mode's rules for one announce or scrape, decided from the in-memory Directory alone:
// passkey, account, registered torrent, client whitelist, leeching slots.
#pragma once

#include "private/directory.hpp"
#include "tracker/types.hpp"

#include <cstdint>
#include <memory>
#include <string_view>

namespace chihaya {

class LeechSlots;

class Policy {
public:
    Policy(const Directory& directory, uint32_t peer_lifetime_s);
    ~Policy();

    // Null when the announce may go on (and `grant` says how to account it); otherwise the
    // client-visible reason, naming the rule, and nothing has changed. Thread-safe.
    const char* admit_announce(std::string_view passkey, const AnnounceRequest& request,
                               uint32_t now_s, AccountingGrant& grant) const;
    // Scrapes need an enabled account; they change nothing.
    const char* admit_scrape(std::string_view passkey) const;

    const Directory& directory() const { return directory_; }

private:
    const Directory& directory_;
    std::unique_ptr<LeechSlots> slots_;
};

// Failure reasons, exact texts (tests and web developers match on them).
namespace private_failure {
inline constexpr const char* kNoPasskey = "passkey required: announce to /<passkey>/announce";
inline constexpr const char* kUnknownPasskey = "unknown passkey";
inline constexpr const char* kUserDisabled = "account disabled";
inline constexpr const char* kUnregistered = "unregistered torrent";
inline constexpr const char* kTorrentDisabled = "torrent disabled";
inline constexpr const char* kClientNotAllowed = "client not allowed";
inline constexpr const char* kSlotsFull = "leeching slot limit reached";
inline constexpr const char* kNotLoaded = "tracker is starting: registry not loaded yet";
}  // namespace private_failure

}  // namespace chihaya
