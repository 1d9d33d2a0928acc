// The spool and the flusher: batches are durable before they are applied, applied in order,
// kept while the storage is down, and applied first by the next run.
#include "flush/flusher.hpp"
#include "accounting/journal.hpp"
#include "flush/recovery.hpp"
#include "flush/spool.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

using namespace chihaya;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char pattern[] = "/tmp/chihaya-spool-XXXXXX";
        path = ::mkdtemp(pattern);
    }
    ~TempDir() { fs::remove_all(path); }
};

PeerReport report(uint64_t user, uint64_t up) {
    PeerReport r;
    r.grant = {user, 1, 1000, 1000};
    r.peer_id.fill(uint8_t(user));
    r.uploaded = up;
    r.had_previous = true;
    return r;
}

SealedBatch batch_of(uint64_t user, uint64_t up) {
    Ledger l;
    l.record(report(user, up));
    return l.take();
}

// A storage whose apply answers as the test says, recording every batch it accepted. The
// flusher's side of the contract (order, retries, at most one apply at a time) is what is tested;
// the real storage's side is tests/conformance (postgres).
struct Store {
    std::mutex mutex;
    std::atomic<bool> available{true};
    std::vector<uint64_t> applied;             // sequences, in the order accepted
    std::vector<uint64_t> credited;            // credit_uploaded of every delta accepted
    std::string host_id;
    std::atomic<int> in_flight{0};
    bool overlapped = false;
};
Store* store = nullptr;

void apply(chihaya_instance*, chihaya_delta_batch* b, const chihaya_completion* c) {
    if (store->in_flight.fetch_add(1) != 0) store->overlapped = true;
    chihaya_status status = CHIHAYA_UNAVAILABLE;
    if (store->available) {
        std::lock_guard lock(store->mutex);
        store->host_id.assign(b->host_id.ptr, b->host_id.len);
        if (store->applied.empty() || b->sequence > store->applied.back()) {
            store->applied.push_back(b->sequence);
            for (uint32_t i = 0; i < b->delta_count; ++i)
                store->credited.push_back(CHIHAYA_AT(const chihaya_peer_delta, b->deltas, i)->credit_uploaded);
        }
        status = CHIHAYA_OK;
    } else {
        std::snprintf(b->message, CHIHAYA_MESSAGE_CAP, "database down");
    }
    store->in_flight.fetch_sub(1);
    c->done(c->ctx, status);
}

chihaya_storage_vtable vtable() {
    chihaya_storage_vtable v{};
    v.struct_size = sizeof v;
    v.apply = &apply;
    return v;
}

template <class Pred>
bool eventually(Pred pred) {
    for (int i = 0; i < 300; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
}

}  // namespace

TEST_CASE("a spooled batch reads back whole, and is forgotten once applied") {
    TempDir dir;
    std::string host_id;
    {
        Spool spool(dir.path.string());
        host_id = spool.host_id();
        CHECK(host_id.size() >= 8);
        uint64_t first = spool.write(batch_of(1, 100));
        uint64_t second = spool.write(batch_of(2, 200));
        CHECK(second == first + 1);
        CHECK(spool.pending() == std::vector<uint64_t>{first, second});
        SealedBatch back;
        std::string why;
        REQUIRE(spool.read(second, back, why));
        REQUIRE(back.deltas.size() == 1);
        CHECK(back.deltas[0].user_id == 2);
        CHECK(back.deltas[0].credit_uploaded == 200);
        spool.applied(first, 0);
        spool.applied(second, 0);
        CHECK(spool.pending().empty());
    }
    // A restart keeps the host id and never reuses a sequence, even with an empty spool.
    Spool again(dir.path.string());
    CHECK(again.host_id() == host_id);
    CHECK(again.write(batch_of(3, 1)) == 3);
}

TEST_CASE("a damaged batch file is set aside, not applied") {
    TempDir dir;
    Spool spool(dir.path.string());
    uint64_t seq = spool.write(batch_of(1, 100));
    fs::path file = dir.path / "batch-00000000000000000001.chb";
    REQUIRE(fs::exists(file));
    {
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(80);
        f.put('\x7f');
    }
    SealedBatch back;
    std::string why;
    CHECK_FALSE(spool.read(seq, back, why));
    CHECK(why.find("checksum mismatch") != std::string::npos);
    CHECK(fs::exists(dir.path / "batch-00000000000000000001.corrupt"));
    CHECK(spool.pending().empty());
}

TEST_CASE("an unusable spool_dir stops start-up with the path and the fix") {
    TempDir dir;
    std::ofstream(dir.path / "file") << "x";
    try {
        Spool spool((dir.path / "file" / "spool").string());
        FAIL("accepted a spool under a regular file");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find((dir.path / "file").string()) != std::string::npos);
        CHECK(std::string(e.what()).find("writable") != std::string::npos);
    }
}

TEST_CASE("the flusher applies batches in order, keeps them while the storage is down, and the next run applies them first") {
    TempDir dir;
    Store s;
    store = &s;
    auto v = vtable();
    AccountingConfig config;
    config.flush_interval_ms = 100;
    {
        Ledger ledger;
        Spool spool(dir.path.string());
        Flusher flusher(ledger, spool, {&v, nullptr}, config);
        flusher.start();
        ledger.record(report(1, 10));
        REQUIRE(eventually([&] { std::lock_guard l(s.mutex); return s.applied.size() == 1; }));
        s.available = false;
        ledger.record(report(2, 20));
        // Batch 2 in the spool (batch 1's file may linger a moment after its apply: wait for 2 itself).
        REQUIRE(eventually([&] { return spool.pending() == std::vector<uint64_t>{2}; }));
        ledger.record(report(3, 30));
        // Stopped while the storage is down: the last batch is sealed and stays spooled.
        flusher.stop(std::chrono::milliseconds(200));
        CHECK(spool.pending().size() == 2);
    }
    s.available = true;
    {
        Ledger ledger;
        Spool spool(dir.path.string());
        Flusher flusher(ledger, spool, {&v, nullptr}, config);
        flusher.start();
        REQUIRE(eventually([&] { std::lock_guard l(s.mutex); return s.applied.size() == 3; }));
        ledger.record(report(4, 40));
        flusher.stop(std::chrono::milliseconds(2000));
        CHECK(spool.pending().empty());
    }
    std::lock_guard l(s.mutex);
    CHECK(s.applied == std::vector<uint64_t>{1, 2, 3, 4});
    CHECK(s.credited == std::vector<uint64_t>{10, 20, 30, 40});
    CHECK_FALSE(s.overlapped);
    store = nullptr;
}

TEST_CASE("reports a killed run had accepted come back from the journal, once") {
    TempDir dir;
    const std::string journal = (dir.path / "journal").string();
    {
        Spool spool(dir.path.string());
        Ledger ledger;
        ledger.enable_journal(journal, recover_journal(spool, journal));
        ledger.record(report(1, 100));
        // Sealed and spooled, but "killed" before its journal files were deleted:
        SealedBatch sealed = ledger.take();
        spool.write(sealed);
        ledger.record(report(2, 200));
        ledger.record(report(2, 250));
        // ... and killed with these two unsealed: the Ledger goes without a seal.
    }
    Spool spool(dir.path.string());
    const uint64_t next = recover_journal(spool, journal);
    CHECK(next == 3);  // generations 1 (sealed) and 2 (recovered) are used up
    std::vector<uint64_t> pending = spool.pending();
    REQUIRE(pending.size() == 2);
    SealedBatch recovered;
    std::string why;
    REQUIRE(spool.read(pending[1], recovered, why));
    REQUIRE(recovered.deltas.size() == 1);  // generation 1 was not replayed a second time
    CHECK(recovered.deltas[0].user_id == 2);
    CHECK(recovered.deltas[0].credit_uploaded == 250);  // 0 -> 200 -> 250: both reports, chained
    CHECK(std::filesystem::is_empty(journal));
    // A second start finds nothing more to recover.
    CHECK(recover_journal(spool, journal) == 3);
    CHECK(spool.pending().size() == 2);
}

TEST_CASE("journal parts made ahead of need: used when a segment fills, sealed with their generation") {
    TempDir dir;
    const std::string journal = (dir.path / "journal").string();
    fs::create_directories(journal);
    auto files = [&] { return size_t(std::distance(fs::directory_iterator(journal), fs::directory_iterator())); };
    // Enough reports (distinct peers of one user) to fill every shard's first segment.
    const uint64_t n = JournalSegment::kRecords * 32 + 40000;
    auto peer_report = [](uint64_t i) {
        PeerReport r = report(1, i);
        std::memcpy(r.peer_id.data() + 12, &i, 8);
        return r;
    };
    Ledger ledger;
    ledger.enable_journal(journal, 1);
    CHECK(files() == 32);
    ledger.prepare_spares();
    CHECK(files() == 64);  // one ready next part per shard
    ledger.prepare_spares();
    CHECK(files() == 64);  // made once
    for (uint64_t i = 0; i < n; ++i) ledger.record(peer_report(i));
    CHECK(ledger.segments_made_inline() == 0);  // every shard went on into its spare
    CHECK(files() == 64);
    // Killed here, every report would come back from the first parts and the spares.
    CHECK(read_journal(journal, 0).reports.size() == n);
    SealedBatch first = ledger.take();
    CHECK(first.deltas.size() == n);
    for (const auto& f : first.journal_files) fs::remove(f);
    CHECK(files() == 32);  // generation 2's first parts
    // Spares left unused when their generation is sealed go with it.
    ledger.prepare_spares();
    CHECK(files() == 64);
    ledger.record(peer_report(1));
    SealedBatch second = ledger.take();
    CHECK(second.journal_files.size() == 64);
    for (const auto& f : second.journal_files) fs::remove(f);
    CHECK(files() == 32);  // generation 3's first parts, nothing older
}

TEST_CASE("one tracker per spool_dir: a second process (or Spool) is refused") {
    TempDir dir;
    Spool first(dir.path.string());
    try {
        Spool second(dir.path.string());
        FAIL("a second Spool on the same directory was accepted");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("in use by another chihaya process") != std::string::npos);
    }
}

TEST_CASE("a journal file of another format is refused whole, never misread") {
    TempDir dir;
    const std::string journal = (dir.path / "journal").string();
    std::filesystem::create_directories(journal);
    {
        JournalSegment segment(journal, 5, 0, 0);
        segment.append(report(9, 900));
    }
    {
        std::fstream f(std::filesystem::path(journal) / "g00000000000000000005-s000-p0000.jnl",
                       std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(8);
        const uint32_t other_size = 64;  // a PeerReport of another layout
        f.write(reinterpret_cast<const char*>(&other_size), 4);
    }
    JournalLeftovers left = read_journal(journal, 0);
    CHECK(left.reports.empty());
    CHECK(left.files.size() == 1);
}
