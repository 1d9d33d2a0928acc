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

uint64_t Directory::info_hash_hash(const uint8_t* h) noexcept {
    uint64_t a, b, c = 0;
    std::memcpy(&a, h, 8);
    std::memcpy(&b, h + 8, 8);
    std::memcpy(&c, h + 16, 4);
    uint64_t x = (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full) ^ (c * 0x165667B19E3779F9ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 32);
}

uint64_t Directory::passkey_hash(std::string_view s) noexcept {
    // Every 8-byte word goes through a multiply and a shift: web applications make passkeys with
    // long common prefixes or fixed-width counters ("bench000...0042"), and mixing only the ends
    // clustered such keys into long probe runs (a profile: several slots per lookup).
    uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
    }
    if (i < s.size()) {
        uint64_t w = 0;
        std::memcpy(&w, s.data() + i, s.size() - i);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
    }
    // The full avalanche (murmur3's fmix64): the word loop leaves the low bits of a key whose
    // varying bytes sit high in its last word (counters, little-endian) depending on a few of
    // those bytes only, and the shard bits correlated with them: counter-style passkeys of one
    // shard then crowded the same slots (5.2 compared per lookup in the private bench; 1.6 now,
    // as for random keys at these loads).
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 33);
}

std::string_view Directory::UserSlot::passkey() const noexcept {
    if (length != kHeapKey) return {key, length};
    const char* p;
    uint32_t n;
    std::memcpy(&p, key, sizeof p);
    std::memcpy(&n, key + sizeof p, sizeof n);
    return {p, n};
}

void Directory::release_key(UserSlot& slot) {
    if (slot.length != kHeapKey) return;
    char* p;
    std::memcpy(&p, slot.key, sizeof p);
    delete[] p;
    slot.length = 0;
}

Directory::UserShard::~UserShard() {
    table.clear([](const UserSlot& s) { UserSlot copy = s; release_key(copy); });
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

// The shard from other bits of the hash than the slot (the low ones), so keys of one shard still
// spread over its table.
Directory::UserShard& Directory::user_shard(uint64_t hash) const {
    return user_shards_[(hash >> 40) % kShards];
}

Directory::TorrentShard& Directory::torrent_shard(uint64_t hash) const {
    return torrent_shards_[(hash >> 48) % kShards];
}

std::optional<DirectoryUser> Directory::find_user(const UserShard& shard, uint64_t h, std::string_view passkey) {
    const UserSlot* s = shard.table.find(h, [&](const UserSlot& slot) {
        // kHeapKey first: a 255-byte request passkey must not be compared as if inline (it
        // would read past the 38-byte key field).
        if (slot.length == kHeapKey) return slot.passkey() == passkey;
        return slot.length == passkey.size() &&  // inline: the common case, one cache line
               std::memcmp(slot.key, passkey.data(), passkey.size()) == 0;
    });
    if (!s) return std::nullopt;
    return DirectoryUser{s->id, s->enabled != 0, s->upload_multiplier, s->download_multiplier, s->leech_slots};
}

std::optional<DirectoryTorrent> Directory::find_torrent(const TorrentShard& shard, uint64_t h,
                                                        const InfoHash& info_hash) {
    const TorrentSlot* s = shard.table.find(h, [&](const TorrentSlot& slot) {
        return std::memcmp(slot.info_hash, info_hash.bytes.data(), 20) == 0;
    });
    if (!s) return std::nullopt;
    return DirectoryTorrent{s->id, s->enabled != 0, s->upload_multiplier, s->download_multiplier};
}

std::optional<DirectoryUser> Directory::user(std::string_view passkey) const {
    const uint64_t h = passkey_hash(passkey);
    UserShard& shard = user_shard(h);
    std::shared_lock lock(shard.mutex);
    return find_user(shard, h, passkey);
}

std::optional<DirectoryTorrent> Directory::torrent(const InfoHash& info_hash) const {
    const uint64_t h = info_hash_hash(info_hash.bytes.data());
    TorrentShard& shard = torrent_shard(h);
    std::shared_lock lock(shard.mutex);
    return find_torrent(shard, h, info_hash);
}

void Directory::prefetch_user(std::string_view passkey) const noexcept {
    const uint64_t h = passkey_hash(passkey);
    user_shard(h).table.prefetch_unlocked(h);
}

Directory::Admission Directory::admission(std::string_view passkey, const InfoHash& info_hash) const {
    const uint64_t uh = passkey_hash(passkey);
    const uint64_t th = info_hash_hash(info_hash.bytes.data());
    UserShard& users = user_shard(uh);
    TorrentShard& torrents = torrent_shard(th);
    // Two shared locks at once cannot deadlock: a writer holds one shard's lock at a time and
    // never waits for another while holding it.
    std::shared_lock user_lock(users.mutex);
    std::shared_lock torrent_lock(torrents.mutex);
    torrents.table.prefetch(th);
    return {find_user(users, uh, passkey), find_torrent(torrents, th, info_hash)};
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
    const uint64_t h = passkey_hash(passkey);
    // Only a changed passkey removes the old entry: an update in place never leaves a moment in
    // which a concurrent announce finds no such user (every web-app update, every row of a
    // reload after reset()).
    if (auto old = passkey_hash_by_user_.find(u.id); old != passkey_hash_by_user_.end()) {
        UserShard& old_shard = user_shard(old->second);
        const UserSlot* s = old_shard.table.find(old->second, [&](const UserSlot& slot) { return slot.id == u.id; });
        if (!s || s->passkey() != passkey) remove_user(u.id);
    }
    UserSlot entry{};
    entry.id = u.id;
    entry.enabled = (u.flags & CHIHAYA_ENABLED) != 0;
    entry.upload_multiplier = u.upload_multiplier;
    entry.download_multiplier = u.download_multiplier;
    entry.leech_slots = u.leech_slots;
    entry.generation = generation_;
    UserShard& shard = user_shard(h);
    auto same_key = [&](const UserSlot& slot) { return slot.passkey() == passkey; };
    {
        std::unique_lock lock(shard.mutex);
        if (UserSlot* s = shard.table.find(h, same_key)) {
            // Another user held this passkey (the web application reassigned it before the
            // change that frees it reached us): the key now names this user only. The key bytes
            // (inline or heap) stay as they are.
            if (s->id != u.id) passkey_hash_by_user_.erase(s->id);
            entry.length = s->length;
            std::memcpy(entry.key, s->key, kInlineKey);
            *s = entry;
        } else {
            if (passkey.size() <= kInlineKey) {
                entry.length = uint8_t(passkey.size());
                std::memcpy(entry.key, passkey.data(), passkey.size());
            } else {
                char* p = new char[passkey.size()];
                std::memcpy(p, passkey.data(), passkey.size());
                const uint32_t n = uint32_t(passkey.size());
                entry.length = kHeapKey;
                std::memcpy(entry.key, &p, sizeof p);
                std::memcpy(entry.key + sizeof p, &n, sizeof n);
            }
            try {
                shard.table.insert(h, entry);
            } catch (...) {
                release_key(entry);
                throw;
            }
            user_count_.fetch_add(1, std::memory_order_relaxed);
        }
    }
    passkey_hash_by_user_[u.id] = h;
}

void Directory::remove_user(uint64_t id) {
    auto it = passkey_hash_by_user_.find(id);
    if (it == passkey_hash_by_user_.end()) return;
    UserShard& shard = user_shard(it->second);
    UserSlot removed{};
    bool erased;
    {
        std::unique_lock lock(shard.mutex);
        erased = shard.table.erase(it->second, [&](const UserSlot& slot) { return slot.id == id; }, removed);
    }
    if (erased) {
        release_key(removed);  // no reader can hold it: they copy out under the shared lock
        user_count_.fetch_sub(1, std::memory_order_relaxed);
    }
    passkey_hash_by_user_.erase(it);
}

void Directory::put_torrent(const chihaya_torrent& in) {
    const chihaya_torrent t = covered(&in);
    std::array<uint8_t, 20> hash;
    std::memcpy(hash.data(), t.info_hash, 20);
    // As for users: removed first only when the info_hash changed.
    if (auto old = hash_by_torrent_.find(t.id); old != hash_by_torrent_.end() && old->second != hash)
        remove_torrent(t.id);
    TorrentSlot entry{};
    std::memcpy(entry.info_hash, hash.data(), 20);
    entry.used_ = 1;
    entry.enabled = (t.flags & CHIHAYA_ENABLED) != 0;
    entry.generation = generation_;
    entry.upload_multiplier = t.upload_multiplier;
    entry.download_multiplier = t.download_multiplier;
    entry.id = t.id;
    const uint64_t h = info_hash_hash(hash.data());
    TorrentShard& shard = torrent_shard(h);
    {
        std::unique_lock lock(shard.mutex);
        TorrentSlot* s = shard.table.find(h, [&](const TorrentSlot& slot) {
            return std::memcmp(slot.info_hash, hash.data(), 20) == 0;
        });
        if (!s) {
            shard.table.insert(h, entry);
            torrent_count_.fetch_add(1, std::memory_order_relaxed);
        } else {
            if (s->id != t.id) hash_by_torrent_.erase(s->id);  // reassigned, as for passkeys
            *s = entry;
        }
    }
    hash_by_torrent_[t.id] = hash;
}

void Directory::remove_torrent(uint64_t id) {
    auto it = hash_by_torrent_.find(id);
    if (it == hash_by_torrent_.end()) return;
    const uint64_t h = info_hash_hash(it->second.data());
    TorrentShard& shard = torrent_shard(h);
    TorrentSlot removed{};
    bool erased;
    {
        std::unique_lock lock(shard.mutex);
        erased = shard.table.erase(h, [&](const TorrentSlot& slot) { return slot.id == id; }, removed);
    }
    if (erased) torrent_count_.fetch_sub(1, std::memory_order_relaxed);
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
        user_shards_[s].table.for_each([&](const UserSlot& e) {
            if (e.generation != generation_) users.push_back(e.id);
        });
    }
    for (size_t s = 0; s < kShards; ++s) {
        std::shared_lock lock(torrent_shards_[s].mutex);
        torrent_shards_[s].table.for_each([&](const TorrentSlot& e) {
            if (e.generation != generation_) torrents.push_back(e.id);
        });
    }
    for (uint64_t id : users) remove_user(id);
    for (uint64_t id : torrents) remove_torrent(id);
    std::unique_lock lock(clients_mutex_);
    std::erase_if(clients_, [&](const auto& c) { return c.second.generation != generation_; });
}

}  // namespace chihaya
