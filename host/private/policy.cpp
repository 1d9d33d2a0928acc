// Private-mode admission: the checks in the order a user would want them explained.
#include "private/policy.hpp"

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace chihaya {

// Torrents each user leeches, for users with a slot limit. Kept by this host alone: with several
// hosts on one Redis each host counts the announces it sees, so a user can exceed the limit by
// spreading announces over hosts (documented in the README). Entries expire like peers do.
class LeechSlots {
public:
    explicit LeechSlots(uint32_t lifetime_s) : lifetime_s_(lifetime_s) {}

    // False when starting to leech `torrent` would exceed `slots`. Records the leech otherwise.
    bool admit(uint64_t user, uint32_t slots, uint64_t torrent, bool leeching, bool stopped,
               uint32_t now_s) {
        Shard& shard = shards_[user % kShards];
        std::lock_guard lock(shard.mutex);
        auto& list = shard.leeching[user];
        std::erase_if(list, [&](const Entry& e) { return e.expires_s <= now_s; });
        auto it = std::find_if(list.begin(), list.end(), [&](const Entry& e) { return e.torrent == torrent; });
        if (!leeching || stopped) {
            if (it != list.end()) list.erase(it);
        } else if (it != list.end()) {
            it->expires_s = now_s + lifetime_s_;
        } else if (list.size() >= slots) {
            return false;
        } else {
            list.push_back({torrent, now_s + lifetime_s_});
        }
        if (list.empty()) shard.leeching.erase(user);
        return true;
    }

private:
    static constexpr size_t kShards = 64;
    struct Entry {
        uint64_t torrent;
        uint32_t expires_s;
    };
    struct Shard {
        std::mutex mutex;
        std::unordered_map<uint64_t, std::vector<Entry>> leeching;
    };
    uint32_t lifetime_s_;
    Shard shards_[kShards];
};

namespace {

uint32_t combine(uint32_t user, uint32_t torrent) {
    return uint32_t(std::min<uint64_t>(uint64_t(user) * torrent / CHIHAYA_MULTIPLIER_ONE, 1000000));
}

}  // namespace

Policy::Policy(const Directory& directory, uint32_t peer_lifetime_s)
    : directory_(directory), slots_(std::make_unique<LeechSlots>(peer_lifetime_s)) {}

Policy::~Policy() = default;

const char* Policy::admit_announce(std::string_view passkey, const AnnounceRequest& request,
                                   uint32_t now_s, AccountingGrant& grant) const {
    using namespace private_failure;
    if (passkey.empty()) return kNoPasskey;
    if (!directory_.loaded()) return kNotLoaded;
    auto [user, torrent] = directory_.admission(passkey, request.info_hash);
    if (!user) return kUnknownPasskey;
    if (!user->enabled) return kUserDisabled;
    if (!torrent) return kUnregistered;
    if (!torrent->enabled) return kTorrentDisabled;
    if (!directory_.client_allowed(request.peer_id)) return kClientNotAllowed;
    if (user->leech_slots > 0 &&
        !slots_->admit(user->id, user->leech_slots, torrent->id, request.left > 0,
                       request.event == Event::Stopped, now_s))
        return kSlotsFull;
    grant.user_id = user->id;
    grant.torrent_id = torrent->id;
    grant.upload_multiplier = combine(user->upload_multiplier, torrent->upload_multiplier);
    grant.download_multiplier = combine(user->download_multiplier, torrent->download_multiplier);
    return nullptr;
}

const char* Policy::admit_scrape(std::string_view passkey) const {
    using namespace private_failure;
    // BEP 41 carries URL data in announces only, so a UDP scrape never has a passkey.
    if (passkey.empty()) return "passkey required: scrape over HTTP at /<passkey>/scrape";
    if (!directory_.loaded()) return kNotLoaded;
    auto user = directory_.user(passkey);
    if (!user) return kUnknownPasskey;
    if (!user->enabled) return kUserDisabled;
    return nullptr;
}

}  // namespace chihaya
