// Per-peer aggregation of private-mode reports between flushes.
#include "accounting/ledger.hpp"

#include "accounting/flat_table.hpp"
#include "accounting/journal.hpp"
#include "log/log.hpp"

#include <cstring>
#include <unistd.h>
#include "accounting/spin_lock.hpp"

#include <mutex>
#include <ctime>
#include <string>

namespace chihaya {
namespace {

constexpr size_t kShards = 32;

struct PeerKey {
    uint64_t user_id;
    uint64_t torrent_id;
    std::array<uint8_t, 20> peer_id;
    friend bool operator==(const PeerKey&, const PeerKey&) = default;
};

struct PeerKeyHash {
    size_t operator()(const PeerKey& k) const noexcept {
        uint64_t p;
        std::memcpy(&p, k.peer_id.data() + 12, 8);  // the random tail of a peer_id
        uint64_t h = (k.user_id * 0x9E3779B97F4A7C15ull ^ k.torrent_id * 0xC2B2AE3D27D4EB4Full ^ p) *
                     0xBF58476D1CE4E5B9ull;
        return size_t(h ^ (h >> 31));
    }
};

struct IdHash {
    size_t operator()(uint64_t id) const noexcept {
        uint64_t h = id * 0x9E3779B97F4A7C15ull;
        return size_t(h ^ (h >> 29));
    }
};

struct Stats {
    uint32_t seeders = 0, leechers = 0, snatched = 0;
    uint64_t unix_ms = 0;
};

// A peer's pending delta: chihaya_peer_delta without the key (the table's) and with the address
// family of its latest report (see step()). Key and entry make a 128-byte slot, two cache lines.
struct Entry {
    uint64_t credit_uploaded, credit_downloaded;
    uint64_t uploaded, downloaded;  // the batch's latest report
    uint64_t anchor_uploaded, anchor_downloaded;
    uint64_t left;
    uint64_t unix_ms;
    uint32_t upload_multiplier, download_multiplier;
    // The torrent's counts as the cache gave them with this report: kept per peer, not in a
    // table per torrent, which cost a second lookup (two more cache misses) per record.
    uint32_t seeders, leechers, snatched;
    uint8_t flags;  // CHIHAYA_DELTA_*
    chihaya_family family;
};
static_assert(sizeof(PeerKey) + sizeof(Entry) <= 128, "a ledger slot fits two cache lines");

using PeerTable = FlatTable<PeerKey, Entry, PeerKeyHash, std::equal_to<>>;
using StatsTable = FlatTable<uint64_t, Stats, IdHash, std::equal_to<>>;

// What a shard gathers between two takes. Two per shard: record() fills the active one under the
// shard's lock while take() reads and clears the other without it.
struct Batch {
    PeerTable peers;
};

}  // namespace

uint64_t credit(uint64_t previous, uint64_t current, uint32_t multiplier) {
    const uint64_t bytes = current >= previous ? current - previous : current;
    if (multiplier == CHIHAYA_MULTIPLIER_ONE) return bytes;
    // 128-bit product: a multiplier of up to 1000x on 2^64 bytes must not wrap.
    return uint64_t((unsigned __int128)bytes * multiplier / CHIHAYA_MULTIPLIER_ONE);
}

struct Ledger::Shard {
    SpinLock mutex;
    // Where the active table's memory is, for prefetch() outside the lock: refreshed under the
    // lock whenever the active table moves (grows, or take() switches batches).
    std::atomic<uintptr_t> hint_ctrl{0}, hint_slots{0};
    std::atomic<size_t> hint_mask{0};
    void publish_hint() {
        const PeerTable& t = batches[active].peers;
        hint_ctrl.store(t.ctrl_address(), std::memory_order_relaxed);
        hint_slots.store(t.slots_address(), std::memory_order_relaxed);
        hint_mask.store(t.mask(), std::memory_order_relaxed);
    }
    Batch batches[2];
    unsigned active = 0;  // the batch record() writes; the other is take()'s, empty between takes
    // The journal of the current generation: the segment being appended and the full ones.
    std::unique_ptr<JournalSegment> journal;
    std::vector<std::string> journal_files;
    std::unique_ptr<JournalSegment> spare;  // the next part, made by prepare_spares()
};

Ledger::Ledger() : shards_(new Shard[kShards]) {}
Ledger::~Ledger() = default;

void Ledger::enable_journal(const std::string& dir, uint64_t generation) {
    journal_dir_ = dir;
    generation_ = generation;
    for (size_t s = 0; s < kShards; ++s) {
        std::lock_guard lock(shards_[s].mutex);
        shards_[s].journal = std::make_unique<JournalSegment>(dir, generation, uint32_t(s), 0);
        shards_[s].journal_files = {shards_[s].journal->path()};
    }
}

namespace {

// Appends under the shard's lock; a full segment is followed by the next part. A part that cannot
// be made (disk full) leaves the report in memory only: it is still flushed, but a crash before
// the next seal would lose it, and the log says so (at most once a minute).
void journal_append(std::unique_ptr<JournalSegment>& segment, std::vector<std::string>& files,
                    std::unique_ptr<JournalSegment>& spare, const std::string& dir, const PeerReport& report,
                    std::atomic<uint64_t>& made_inline) {
    if (!segment || segment->append(report)) return;
    if (spare && spare->generation() == segment->generation() && spare->part() == segment->part() + 1) {
        files.push_back(spare->path());
        segment = std::move(spare);
        segment->append(report);
        return;
    }
    made_inline.fetch_add(1, std::memory_order_relaxed);
    try {
        auto next = std::make_unique<JournalSegment>(dir, segment->generation(), segment->shard(),
                                                     segment->part() + 1);
        files.push_back(next->path());
        segment = std::move(next);
        segment->append(report);
    } catch (const std::exception& e) {
        static std::atomic<int64_t> last_log{0};
        const int64_t now = int64_t(::time(nullptr));
        if (now - last_log.exchange(now) >= 60)
            log::error("journal", std::string(e.what()) + "; reports are kept in memory until the next seal");
    }
}

}  // namespace

namespace {

// One direction's step of the rule in ledger.hpp. `latest` is the batch's latest report (when
// `in_batch`), updated to what the batch keeps as latest; returns the bytes to credit.
uint64_t step(uint64_t cur, bool had_previous, uint64_t previous, bool in_batch, uint64_t& latest,
              bool same_family, bool started) {
    if (!in_batch) {
        latest = cur;
        if (had_previous) return cur >= previous ? cur - previous : cur;
        return started ? cur : 0;  // else anchored: the storage decides
    }
    uint64_t base = latest;
    if (had_previous && previous > base) base = previous;
    if (cur >= base) {
        latest = cur;
        return cur - base;
    }
    if (started || (had_previous && cur < previous) || (!had_previous && same_family)) {
        latest = cur;  // a new session
        return cur;
    }
    return 0;  // the other family's report of the same counter was ahead
}

}  // namespace

// The shard from the hash's middle bits: a shard's table places keys by the low bits and tags
// them with the top ones, so the three must not overlap (the shard once came from the low bits,
// leaving each shard's keys 1/32 of the table's home positions).
Ledger::Shard& Ledger::shard_of(uint64_t hash) const { return shards_[(hash >> 32) % kShards]; }

void Ledger::prefetch(const AccountingGrant& grant, const uint8_t* peer_id) const noexcept {
    PeerKey key{grant.user_id, grant.torrent_id, {}};
    std::memcpy(key.peer_id.data(), peer_id, 20);
    const uint64_t h = PeerKeyHash{}(key);
    const Shard& shard = shard_of(h);
    const uintptr_t ctrl = shard.hint_ctrl.load(std::memory_order_relaxed);
    if (ctrl == 0) return;
    // Addresses read without the lock may belong to a table that has just moved; a prefetch of
    // such an address is a wasted hint, never a fault.
    const size_t i = h & shard.hint_mask.load(std::memory_order_relaxed);
    __builtin_prefetch(reinterpret_cast<const void*>(ctrl + i));
    __builtin_prefetch(reinterpret_cast<const void*>(shard.hint_slots.load(std::memory_order_relaxed) +
                                                     i * PeerTable::slot_bytes()));
}

void Ledger::record(const PeerReport& r) {
    const PeerKey key{r.grant.user_id, r.grant.torrent_id, r.peer_id};
    Shard& shard = shard_of(PeerKeyHash{}(key));
    std::lock_guard lock(shard.mutex);
    Batch& batch = shard.batches[shard.active];
    bool inserted = false;
    Entry& d = batch.peers.find_or_insert(key, inserted);
    if (inserted && batch.peers.ctrl_address() != shard.hint_ctrl.load(std::memory_order_relaxed))
        shard.publish_hint();  // the table grew
    const bool started = r.event == Event::Started;
    if (inserted) {
        pending_.fetch_add(1, std::memory_order_relaxed);
        if (!r.had_previous && !started) {
            d.flags |= CHIHAYA_DELTA_ANCHORED;
            d.anchor_uploaded = r.uploaded;
            d.anchor_downloaded = r.downloaded;
        }
    }
    const bool same_family = d.family == r.family;
    d.credit_uploaded += credit(0, step(r.uploaded, r.had_previous, r.previous_uploaded, !inserted,
                                        d.uploaded, same_family, started),
                                r.grant.upload_multiplier);
    d.credit_downloaded += credit(0, step(r.downloaded, r.had_previous, r.previous_downloaded, !inserted,
                                          d.downloaded, same_family, started),
                                  r.grant.download_multiplier);
    d.family = r.family;
    // The anchored part is credited by the storage at the multipliers of the latest report.
    d.upload_multiplier = r.grant.upload_multiplier;
    d.download_multiplier = r.grant.download_multiplier;
    d.left = r.left;
    d.unix_ms = r.unix_ms;
    if (r.event == Event::Completed) d.flags |= CHIHAYA_DELTA_COMPLETED;
    if (r.event == Event::Stopped) d.flags |= CHIHAYA_DELTA_STOPPED;
    else d.flags &= ~CHIHAYA_DELTA_STOPPED;  // came back within the same batch
    if (r.left == 0) d.flags |= CHIHAYA_DELTA_SEEDER;
    else d.flags &= ~CHIHAYA_DELTA_SEEDER;
    d.seeders = r.seeders;
    d.leechers = r.leechers;
    d.snatched = r.snatched;
    journal_append(shard.journal, shard.journal_files, shard.spare, journal_dir_, r, made_inline_);
}

void Ledger::prepare_spares() {
    if (generation_ == 0) return;  // no journal
    for (size_t s = 0; s < kShards; ++s) {
        Shard& shard = shards_[s];
        uint64_t generation;
        uint32_t part;
        {
            std::lock_guard lock(shard.mutex);
            if (shard.spare || !shard.journal) continue;
            generation = shard.journal->generation();
            part = shard.journal->part() + 1;
        }
        std::unique_ptr<JournalSegment> made;
        try {
            made = std::make_unique<JournalSegment>(journal_dir_, generation, uint32_t(s), part, true);
        } catch (const std::exception&) {
            return;  // the worker that needs it tries again, and logs what fails
        }
        {
            std::lock_guard lock(shard.mutex);
            // Still the next part of the current segment (no take() and no fill meanwhile)?
            if (!shard.spare && shard.journal && shard.journal->generation() == generation &&
                shard.journal->part() + 1 == part) {
                shard.spare = std::move(made);
                continue;
            }
        }
        const std::string path = made->path();
        made.reset();
        ::unlink(path.c_str());
    }
}

SealedBatch Ledger::take() {
    SealedBatch batch;
    // The next generation's segments are made before any shard is touched, so a failure (disk
    // full) takes nothing and the reports stay journaled under the current generation.
    std::vector<std::unique_ptr<JournalSegment>> next(kShards);
    if (generation_ != 0) {
        for (size_t s = 0; s < kShards; ++s)
            next[s] = std::make_unique<JournalSegment>(journal_dir_, generation_ + 1, uint32_t(s), 0);
        batch.journal_generation = generation_++;
    }
    // Each shard switches batches (and journal generation) under its lock; the batch it leaves
    // is then read and cleared without the lock, since record() only writes the active one.
    StatsTable torrents;
    std::vector<std::unique_ptr<JournalSegment>> spare_done;  // unmapped outside the locks
    for (size_t s = 0; s < kShards; ++s) {
        Shard& shard = shards_[s];
        std::unique_ptr<JournalSegment> sealed;
        Batch* full;
        {
            std::lock_guard lock(shard.mutex);
            full = &shard.batches[shard.active];
            shard.active ^= 1;
            shard.publish_hint();
            if (next[s]) {
                if (shard.spare) {  // an unused part of the generation being sealed: goes with it
                    batch.journal_files.push_back(shard.spare->path());
                    spare_done.push_back(std::move(shard.spare));
                }
                sealed = std::move(shard.journal);
                shard.journal = std::move(next[s]);
                for (auto& f : shard.journal_files) batch.journal_files.push_back(std::move(f));
                shard.journal_files = {shard.journal->path()};
            }
        }
        pending_.fetch_sub(full->peers.size(), std::memory_order_relaxed);
        batch.deltas.reserve(batch.deltas.size() + full->peers.size());
        full->peers.for_each([&](const PeerKey& k, const Entry& e) {
            chihaya_peer_delta& d = batch.deltas.emplace_back();
            d.struct_size = sizeof d;
            d.flags = e.flags;
            d.user_id = k.user_id;
            d.torrent_id = k.torrent_id;
            std::memcpy(d.peer_id, k.peer_id.data(), 20);
            d.upload_multiplier = e.upload_multiplier;
            d.download_multiplier = e.download_multiplier;
            d.credit_uploaded = e.credit_uploaded;
            d.credit_downloaded = e.credit_downloaded;
            d.anchor_uploaded = e.anchor_uploaded;
            d.anchor_downloaded = e.anchor_downloaded;
            d.uploaded = e.uploaded;
            d.downloaded = e.downloaded;
            d.left = e.left;
            d.unix_ms = e.unix_ms;
            // A torrent's counts come with every report of its peers: keep the latest.
            bool inserted = false;
            Stats& st = torrents.find_or_insert(k.torrent_id, inserted);
            if (inserted || e.unix_ms >= st.unix_ms) st = Stats{e.seeders, e.leechers, e.snatched, e.unix_ms};
        });
        full->peers.clear();
    }
    batch.torrents.reserve(torrents.size());
    torrents.for_each([&](uint64_t id, const Stats& st) {
        chihaya_torrent_stats t{};
        t.struct_size = sizeof t;
        t.torrent_id = id;
        t.seeders = st.seeders;
        t.leechers = st.leechers;
        t.snatched = st.snatched;
        batch.torrents.push_back(t);
    });
    return batch;
}

}  // namespace chihaya
