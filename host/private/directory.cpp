// The in-memory registry of a private tracker and the ABI sink that fills it.
#include "private/directory.hpp"

#include <cstring>
#include <functional>
#include <mutex>

namespace chihaya {
namespace {

// The sink's C entry points: the driver calls them through the ABI, so nothing may unwind out.
// Out of memory while copying a row is the only failure; the row is then missing, as if the
// web application had not written it yet, and the next change to it brings it back.
template <auto Method, class Arg>
void call(void* ctx, Arg arg) noexcept {
    try {
        (static_cast<Directory*>(ctx)->*Method)(arg);
    } catch (...) {
    }
}
template <auto Method, class Row>
void call_row(void* ctx, const Row* row) noexcept {
    try {
        (static_cast<Directory*>(ctx)->*Method)(*row);
    } catch (...) {
    }
}
void call_reset(void* ctx) noexcept { static_cast<Directory*>(ctx)->reset(); }
void call_loaded(void* ctx) noexcept { static_cast<Directory*>(ctx)->mark_loaded(); }

// Members a sink reads from the driver's structs, with the driver's struct_size respected: an
// older driver's smaller struct leaves newer members at their defaults.
template <class T>
T covered(const T* from) {
    T out{};
    std::memcpy(&out, from, std::min<size_t>(from->struct_size, sizeof(T)));
    return out;
}

std::string_view view(chihaya_str s) { return {s.ptr ? s.ptr : "", s.ptr ? s.len : 0}; }

}  // namespace

size_t Directory::Hash20::operator()(const std::array<uint8_t, 20>& h) const noexcept {
    // Every byte counts: real info_hashes are SHA-1 digests, but a registry is the web
    // application's data, and one whose hashes share most bytes (test data, an importer's
    // placeholder) must not pile into one bucket (it did: 300,000 such torrents never loaded).
    uint64_t a, b, c = 0;
    std::memcpy(&a, h.data(), 8);
    std::memcpy(&b, h.data() + 8, 8);
    std::memcpy(&c, h.data() + 16, 4);
    uint64_t x = (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full) ^ (c * 0x165667B19E3779F9ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    return size_t(x ^ (x >> 32));
}

Directory::Directory()
    : user_shards_(new UserShard[kShards]), torrent_shards_(new TorrentShard[kShards]) {
    sink_.struct_size = sizeof sink_;
    sink_.ctx = this;
    sink_.put_user = &call_row<&Directory::put_user, chihaya_user>;
    sink_.remove_user = &call<&Directory::remove_user, uint64_t>;
    sink_.put_torrent = &call_row<&Directory::put_torrent, chihaya_torrent>;
    sink_.remove_torrent = &call<&Directory::remove_torrent, uint64_t>;
    sink_.put_client = &call_row<&Directory::put_client, chihaya_client>;
    sink_.remove_client = &call<&Directory::remove_client, uint64_t>;
    sink_.reset = &call_reset;
    sink_.loaded = &call_loaded;
}

size_t Directory::PasskeyHash::operator()(std::string_view s) const noexcept {
    uint64_t a = 0, b = 0;
    if (s.size() >= 8) {
        std::memcpy(&a, s.data(), 8);
        std::memcpy(&b, s.data() + s.size() - 8, 8);
    } else {
        std::memcpy(&a, s.data(), s.size());
    }
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull) ^ s.size()) * 0xBF58476D1CE4E5B9ull;
    return size_t(h ^ (h >> 31));
}

// The shard from other bits of the same hash than the bucket (libstdc++ takes the hash modulo a
// prime bucket count), so keys of one shard still spread over its buckets.
Directory::UserShard& Directory::user_shard(std::string_view passkey) const {
    return user_shards_[(PasskeyHash{}(passkey) >> 40) % kShards];
}

Directory::TorrentShard& Directory::torrent_shard(const std::array<uint8_t, 20>& hash) const {
    return torrent_shards_[(Hash20{}(hash) >> 48) % kShards];
}

std::optional<DirectoryUser> Directory::user(std::string_view passkey) const {
    UserShard& shard = user_shard(passkey);
    std::shared_lock lock(shard.mutex);
    auto it = shard.by_passkey.find(passkey);
    if (it == shard.by_passkey.end()) return std::nullopt;
    return it->second.user;
}

std::optional<DirectoryTorrent> Directory::torrent(const InfoHash& info_hash) const {
    TorrentShard& shard = torrent_shard(info_hash.bytes);
    std::shared_lock lock(shard.mutex);
    auto it = shard.by_hash.find(info_hash.bytes);
    if (it == shard.by_hash.end()) return std::nullopt;
    return it->second.torrent;
}

bool Directory::client_allowed(const PeerId& peer_id) const {
    std::shared_lock lock(clients_mutex_);
    if (clients_.empty()) return true;
    for (const auto& [id, client] : clients_) {
        const std::string& p = client.prefix;
        if (p.size() <= 20 && std::memcmp(peer_id.bytes.data(), p.data(), p.size()) == 0) return true;
    }
    return false;
}

size_t Directory::clients() const {
    std::shared_lock lock(clients_mutex_);
    return clients_.size();
}

void Directory::put_user(const chihaya_user& in) {
    const chihaya_user u = covered(&in);
    const std::string_view passkey = view(u.passkey);
    if (passkey.empty()) return;  // the driver reports bad rows; an empty key can never match
    // Only a changed passkey removes the old entry: an update in place never leaves a moment in
    // which a concurrent announce finds no such user (every web-app update, every row of a
    // reload after reset()).
    if (auto old = passkey_by_user_.find(u.id); old != passkey_by_user_.end() && old->second != passkey)
        remove_user(u.id);
    UserEntry entry{{u.id, (u.flags & CHIHAYA_ENABLED) != 0, u.upload_multiplier,
                     u.download_multiplier, u.leech_slots},
                    generation_};
    UserShard& shard = user_shard(passkey);
    std::string_view stored;
    {
        std::unique_lock lock(shard.mutex);
        auto it = shard.by_passkey.find(passkey);
        if (it == shard.by_passkey.end()) {
            it = shard.by_passkey.emplace(std::string(passkey), entry).first;
            user_count_.fetch_add(1, std::memory_order_relaxed);
        } else {
            // Another user held this passkey (the web application reassigned it before the
            // change that frees it reached us): the key now names this user only.
            passkey_by_user_.erase(it->second.user.id);
            it->second = entry;
        }
        stored = it->first;
    }
    passkey_by_user_[u.id] = stored;
}

void Directory::remove_user(uint64_t id) {
    auto it = passkey_by_user_.find(id);
    if (it == passkey_by_user_.end()) return;
    UserShard& shard = user_shard(it->second);
    {
        std::unique_lock lock(shard.mutex);
        auto entry = shard.by_passkey.find(it->second);
        if (entry != shard.by_passkey.end() && entry->second.user.id == id) {
            shard.by_passkey.erase(entry);
            user_count_.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    passkey_by_user_.erase(it);
}

void Directory::put_torrent(const chihaya_torrent& in) {
    const chihaya_torrent t = covered(&in);
    std::array<uint8_t, 20> hash;
    std::memcpy(hash.data(), t.info_hash, 20);
    // As for users: removed first only when the info_hash changed.
    if (auto old = hash_by_torrent_.find(t.id); old != hash_by_torrent_.end() && old->second != hash)
        remove_torrent(t.id);
    TorrentEntry entry{{t.id, (t.flags & CHIHAYA_ENABLED) != 0, t.upload_multiplier,
                        t.download_multiplier},
                       generation_};
    TorrentShard& shard = torrent_shard(hash);
    {
        std::unique_lock lock(shard.mutex);
        auto it = shard.by_hash.find(hash);
        if (it == shard.by_hash.end()) {
            shard.by_hash.emplace(hash, entry);
            torrent_count_.fetch_add(1, std::memory_order_relaxed);
        } else {
            hash_by_torrent_.erase(it->second.torrent.id);  // reassigned, as for passkeys
            it->second = entry;
        }
    }
    hash_by_torrent_[t.id] = hash;
}

void Directory::remove_torrent(uint64_t id) {
    auto it = hash_by_torrent_.find(id);
    if (it == hash_by_torrent_.end()) return;
    TorrentShard& shard = torrent_shard(it->second);
    {
        std::unique_lock lock(shard.mutex);
        auto entry = shard.by_hash.find(it->second);
        if (entry != shard.by_hash.end() && entry->second.torrent.id == id) {
            shard.by_hash.erase(entry);
            torrent_count_.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    hash_by_torrent_.erase(it);
}

void Directory::put_client(const chihaya_client& in) {
    const chihaya_client c = covered(&in);
    std::string_view prefix = view(c.prefix);
    if (prefix.empty() || prefix.size() > 20) return;
    std::unique_lock lock(clients_mutex_);
    clients_[c.id] = Client{std::string(prefix), generation_};
}

void Directory::remove_client(uint64_t id) {
    std::unique_lock lock(clients_mutex_);
    clients_.erase(id);
}

void Directory::reset() {
    // Keep answering from what we have until the complete load is in: rows it delivers are
    // stamped with the new generation, and mark_loaded drops the ones it did not deliver.
    ++generation_;
    resetting_ = true;
}

void Directory::mark_loaded() {
    if (resetting_) drop_stale();
    resetting_ = false;
    loaded_.store(true, std::memory_order_release);
}

void Directory::drop_stale() {
    std::vector<uint64_t> users, torrents;
    for (size_t s = 0; s < kShards; ++s) {
        std::shared_lock lock(user_shards_[s].mutex);
        for (const auto& [key, e] : user_shards_[s].by_passkey)
            if (e.generation != generation_) users.push_back(e.user.id);
    }
    for (size_t s = 0; s < kShards; ++s) {
        std::shared_lock lock(torrent_shards_[s].mutex);
        for (const auto& [key, e] : torrent_shards_[s].by_hash)
            if (e.generation != generation_) torrents.push_back(e.torrent.id);
    }
    for (uint64_t id : users) remove_user(id);
    for (uint64_t id : torrents) remove_torrent(id);
    std::unique_lock lock(clients_mutex_);
    std::erase_if(clients_, [&](const auto& c) { return c.second.generation != generation_; });
}

}  // namespace chihaya
