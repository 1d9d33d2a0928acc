// The web application's registry as a private tracker holds it in memory: users by passkey,
// torrents by info_hash, allowed clients by peer_id prefix. Filled and kept current by the
// storage driver through the ABI's registry sink; read by every worker on every announce, so
// that the announce path never waits on the database.
#pragma once

#include "private/probe_table.hpp"
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
// MEMORY: 64 B per user slot and 48 B per torrent slot, at 3/8 to 3/4 load (power-of-two
// tables per shard), plus the writer's indexes by id.
class Directory {
public:
    Directory();
    Directory(const Directory&) = delete;
    Directory& operator=(const Directory&) = delete;

    // The sink handed to the storage's subscribe; valid as long as the Directory.
    const chihaya_registry_sink* sink() const { return &sink_; }

    std::optional<DirectoryUser> user(std::string_view passkey) const;
    std::optional<DirectoryTorrent> torrent(const InfoHash& info_hash) const;
    // Both lookups of an announce at once: their two cache misses overlap instead of following
    // each other (the directory's share of a private announce was its misses).
    struct Admission {
        std::optional<DirectoryUser> user;
        std::optional<DirectoryTorrent> torrent;
    };
    Admission admission(std::string_view passkey, const InfoHash& info_hash) const;
    // Hints, no lock, no answer: start loading the slot a later user() / admission() will read,
    // so that its cache miss overlaps whatever the caller does meanwhile (parsing the query).
    void prefetch_user(std::string_view passkey) const noexcept;
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

    // Mixes every byte, cheaply (no keyed hash needed: a client chooses the keys it looks up,
    // not the keys in the table, so it cannot make a probe run long). Every bit of the result
    // depends on every byte: the table takes its slot from the low bits and the shard from
    // bits 40 and up. (Public for its distribution test.)
    static uint64_t passkey_hash(std::string_view passkey) noexcept;

private:
    static constexpr size_t kShards = 64;
    // Every byte counts: real info_hashes are SHA-1 digests, but a registry is the web
    // application's data, and one whose hashes share most bytes (test data, an importer's
    // placeholder) must not pile into one run (it did: 300,000 such torrents never loaded).
    static uint64_t info_hash_hash(const uint8_t* hash) noexcept;

    // One user in one cache line: the passkey inline when it fits (32- and 36-character tokens
    // do), else on the heap (length kHeapKey; `key` then holds the pointer and the length).
    static constexpr size_t kInlineKey = 38;
    static constexpr uint8_t kHeapKey = 255;
    struct alignas(64) UserSlot {
        uint64_t id;
        uint32_t upload_multiplier;
        uint32_t download_multiplier;
        uint32_t leech_slots;
        uint32_t generation;
        uint8_t enabled;
        uint8_t length;  // passkey bytes when inline; 0 = empty slot
        char key[kInlineKey];
        bool used() const { return length != 0; }
        std::string_view passkey() const noexcept;
    };
    static_assert(sizeof(UserSlot) == 64);
    struct UserSlotHash {
        uint64_t operator()(const UserSlot& s) const noexcept { return passkey_hash(s.passkey()); }
    };
    struct TorrentSlot {
        uint8_t info_hash[20];
        uint8_t used_;
        uint8_t enabled;
        uint32_t generation;
        uint32_t upload_multiplier;
        uint32_t download_multiplier;
        uint64_t id;
        bool used() const { return used_ != 0; }
    };
    static_assert(sizeof(TorrentSlot) == 48);
    struct TorrentSlotHash {
        uint64_t operator()(const TorrentSlot& s) const noexcept { return info_hash_hash(s.info_hash); }
    };
    struct UserShard {
        mutable ReadMostlyLock mutex;
        ProbeTable<UserSlot, UserSlotHash> table;
        ~UserShard();
    };
    struct TorrentShard {
        mutable ReadMostlyLock mutex;
        ProbeTable<TorrentSlot, TorrentSlotHash> table;
    };
    struct Client {
        std::string prefix;
        uint32_t generation = 0;
    };

    static std::optional<DirectoryUser> find_user(const UserShard& shard, uint64_t hash, std::string_view passkey);
    static std::optional<DirectoryTorrent> find_torrent(const TorrentShard& shard, uint64_t hash,
                                                        const InfoHash& info_hash);
    UserShard& user_shard(uint64_t passkey_hash) const;
    TorrentShard& torrent_shard(uint64_t info_hash_hash) const;
    static void release_key(UserSlot& slot);
    void drop_stale();

    std::unique_ptr<UserShard[]> user_shards_;
    std::unique_ptr<TorrentShard[]> torrent_shards_;
    // Writer-side indexes by id, touched only by the sink's (single) thread: the hash of each
    // user's passkey (which finds its run; the id then finds its slot) and each torrent's hash.
    std::unordered_map<uint64_t, uint64_t> passkey_hash_by_user_;
    std::unordered_map<uint64_t, std::array<uint8_t, 20>> hash_by_torrent_;
    mutable ReadMostlyLock clients_mutex_;
    std::unordered_map<uint64_t, Client> clients_;
    std::atomic<size_t> user_count_{0};
    std::atomic<size_t> torrent_count_{0};
    std::atomic<bool> loaded_{false};
    uint32_t generation_ = 0;  // bumped by reset(); entries of older generations go at mark_loaded
    bool resetting_ = false;
    chihaya_registry_sink sink_{};
};

}  // namespace chihaya
