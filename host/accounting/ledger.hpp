// Private-mode accounting between two flushes: each admitted announce's report becomes per-peer
// credit, aggregated until the flusher seals it into a batch for the storage.
//
// How a report is credited (the rule the storage's apply completes, see chihaya_peer_delta). A
// peer here is (user, torrent, peer_id): one client's one counter, whichever address family or
// tracker host its announces reach. The base is the newest report known to be accounted: the
// previous report the cache hands back (its own family's, and on Redis possibly another host's),
// or this batch's latest report of the same peer (possibly over the other family: dual-stack
// clients announce the same counters over IPv4 and IPv6), whichever is higher.
//   - cur >= base: credit cur - base;
//   - cur < base: a restarted client (a new session whose own total counts) when the report says
//     `started` or falls below its own family's previous report; otherwise the same counter
//     reported out of order over the other family, which adds nothing;
//   - first report of a peer the cache did not know: a `started` one is a new session and counts
//     whole; any other is ANCHORED, and the storage credits it against the last report it keeps
//     for the peer (nothing when it keeps none). That is what makes a memory cache lost to a
//     crash or restart cost nothing: the next announce is anchored, and the storage knows what
//     was already accounted.
// Multipliers (per mille) apply to each credit as it is computed.
#pragma once

#include "private/policy.hpp"
#include "tracker/types.hpp"

#include <chihaya/abi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace chihaya {

// One admitted private announce, after the cache answered.
struct PeerReport {
    AccountingGrant grant;
    std::array<uint8_t, 20> peer_id{};
    chihaya_family family = CHIHAYA_IPV4;
    uint64_t uploaded = 0;
    uint64_t downloaded = 0;
    uint64_t left = 0;
    Event event = Event::None;
    bool had_previous = false;
    uint64_t previous_uploaded = 0;
    uint64_t previous_downloaded = 0;
    uint32_t seeders = 0;
    uint32_t leechers = 0;
    uint32_t snatched = 0;
    uint64_t unix_ms = 0;
};

// What one flush hands to the storage (host layout, host stride).
struct SealedBatch {
    std::vector<chihaya_peer_delta> deltas;
    std::vector<chihaya_torrent_stats> torrents;
    // The journal generation these deltas came from (0: no journal) and its files, which may
    // be deleted once the batch is in the spool.
    uint64_t journal_generation = 0;
    std::vector<std::string> journal_files;
    bool empty() const { return deltas.empty() && torrents.empty(); }
};

class JournalSegment;

// THREADS: record() runs on whichever thread completes an announce (a worker, or a cache
// driver's own thread), concurrently; take() on the flusher thread. Each of kShards shards has
// its own mutex, held for one hash-map update: no lock is shared by all workers.
class Ledger {
public:
    Ledger();
    ~Ledger();

    // From now on every report is journaled in `dir` (see journal.hpp), starting with
    // `generation`. Throws std::runtime_error when the files cannot be made (start-up).
    void enable_journal(const std::string& dir, uint64_t generation);

    void record(const PeerReport& report);
    // A hint that record() for this peer follows soon: starts loading its slot, so that the miss
    // overlaps the cache driver's call instead of following it. Lock-free; any thread.
    void prefetch(const AccountingGrant& grant, const uint8_t* peer_id) const noexcept;
    // Everything recorded so far, leaving the ledger empty; with a journal, every shard moves to
    // the next generation at the same instant it is emptied. Throws std::runtime_error (and
    // takes nothing) when the next generation's files cannot be made.
    SealedBatch take();
    // Makes each shard's next journal segment ahead of need, off the announce path (the flusher
    // thread calls it between flushes): a worker that fills a segment then switches to the ready
    // one instead of creating, allocating and mapping 2 MiB under the shard's lock. A failure
    // (disk full) only leaves the workers to make it themselves, and report it.
    void prepare_spares();
    // Segments a worker had to make itself, under its shard's lock (no spare was ready).
    uint64_t segments_made_inline() const { return made_inline_.load(std::memory_order_relaxed); }
    // Peers with pending deltas (approximate while records run).
    size_t pending() const { return pending_.load(std::memory_order_relaxed); }

private:
    struct Shard;
    Shard& shard_of(uint64_t hash) const;
    std::unique_ptr<Shard[]> shards_;
    std::atomic<size_t> pending_{0};
    std::atomic<uint64_t> made_inline_{0};
    std::string journal_dir_;
    uint64_t generation_ = 0;  // current journal generation; 0 = no journal
};

// Credit for a move from `previous` to `current` cumulative bytes at `multiplier` per mille.
uint64_t credit(uint64_t previous, uint64_t current, uint32_t multiplier);

}  // namespace chihaya
