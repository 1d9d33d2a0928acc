// The web application's registry as a private tracker holds it in memory: users by passkey,
// torrents by info_hash, allowed clients by peer_id prefix. Filled and kept current by the
// storage driver through the ABI's registry sink; read by every worker on every announce, so
// that the announce path never waits on the database.
#pragma once

#include "private/read_mostly_lock.hpp"
#include "tracker/types.hpp"

#include <chihaya/abi.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace chihaya {

struct DirectoryUser {
    uint64_t id = 0;
    bool enabled = false;
    uint32_t upload_multiplier = CHIHAYA_MULTIPLIER_ONE;
    uint32_t download_multiplier = CHIHAYA_MULTIPLIER_ONE;
    uint32_t leech_slots = 0;  // 0 = no limit
};

struct DirectoryTorrent {
    uint64_t id = 0;
    bool enabled = false;
    uint32_t upload_multiplier = CHIHAYA_MULTIPLIER_ONE;
    uint32_t download_multiplier = CHIHAYA_MULTIPLIER_ONE;
};

// THREADS: the sink functions are called by the storage driver from one thread at a time (abi.h);
// lookups run concurrently from every worker. Lookups take a shared lock on one of kShards
// shards (read_mostly_lock.hpp), a sink write the exclusive lock of one shard, so a change never
// stalls all workers.
class Directory {
public:
    Directory();
    Directory(const Directory&) = delete;
    Directory& operator=(const Directory&) = delete;

    // The sink handed to the storage's subscribe; valid as long as the Directory.
    const chihaya_registry_sink* sink() const { return &sink_; }

    std::optional<DirectoryUser> user(std::string_view passkey) const;
    std::optional<DirectoryTorrent> torrent(const InfoHash& info_hash) const;
    // True when the whitelist is empty (no rule) or a prefix matches the start of peer_id.
    bool client_allowed(const PeerId& peer_id) const;

    size_t users() const { return user_count_.load(std::memory_order_relaxed); }
    size_t torrents() const { return torrent_count_.load(std::memory_order_relaxed); }
    size_t clients() const;
    // True once a complete load has been delivered.
    bool loaded() const { return loaded_.load(std::memory_order_acquire); }

    // Sink operations (also used directly by tests).
    void put_user(const chihaya_user& user);
    void remove_user(uint64_t id);
    void put_torrent(const chihaya_torrent& torrent);
    void remove_torrent(uint64_t id);
    void put_client(const chihaya_client& client);
    void remove_client(uint64_t id);
    void reset();
    void mark_loaded();

private:
    static constexpr size_t kShards = 64;
    struct Hash20 {
        size_t operator()(const std::array<uint8_t, 20>& h) const noexcept;
    };
    // Transparent, so that a lookup by the request's string_view allocates nothing. Passkeys
    // are random tokens the web application made, so their first and last 8 bytes, mixed, are
    // as good a hash as any, at a fraction of std::hash's cost (a profile of private announces
    // had two std::hash calls per announce at 8 %). A client chooses the keys it looks up, not
    // the keys in the table, so it cannot make a bucket long.
    struct PasskeyHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const noexcept;
    };
    struct UserEntry {
        DirectoryUser user;
        uint32_t generation = 0;
    };
    struct TorrentEntry {
        DirectoryTorrent torrent;
        uint32_t generation = 0;
    };
    struct UserShard {
        mutable ReadMostlyLock mutex;
        std::unordered_map<std::string, UserEntry, PasskeyHash, std::equal_to<>> by_passkey;
    };
    struct TorrentShard {
        mutable ReadMostlyLock mutex;
        std::unordered_map<std::array<uint8_t, 20>, TorrentEntry, Hash20> by_hash;
    };
    struct Client {
        std::string prefix;
        uint32_t generation = 0;
    };

    UserShard& user_shard(std::string_view passkey) const;
    TorrentShard& torrent_shard(const std::array<uint8_t, 20>& hash) const;
    void drop_stale();

    std::unique_ptr<UserShard[]> user_shards_;
    std::unique_ptr<TorrentShard[]> torrent_shards_;
    // Writer-side indexes by id: touched only by the sink's (single) thread. The passkey is a view
    // of the key stored in its shard's map (node-based: stable until that node is erased, which
    // only this thread does, updating this index in the same step).
    std::unordered_map<uint64_t, std::string_view> passkey_by_user_;
    std::unordered_map<uint64_t, std::array<uint8_t, 20>> hash_by_torrent_;
    mutable ReadMostlyLock clients_mutex_;
    std::unordered_map<uint64_t, Client> clients_;
    std::atomic<size_t> user_count_{0};
    std::atomic<size_t> torrent_count_{0};
    std::atomic<bool> loaded_{false};
    uint32_t generation_ = 0;  // bumped by reset(); entries of older generations go at mark_loaded
    bool resetting_ = false;
    uint64_t shard_key_[2];
    chihaya_registry_sink sink_{};
};

}  // namespace chihaya
