// example_storage.cpp: a complete chihaya storage driver in one file, for reading.
//
// A storage driver connects the tracker to the web application's data for private mode
// (ABI 2.1). It has two jobs, both written beside chihaya_storage_vtable in chihaya/abi.h:
//   subscribe: hand the host every user, torrent and allowed client (the host keeps them in memory
//              and never asks the storage while answering an announce);
//   apply:     record a batch of per-peer accounting, at most once per (host_id, sequence).
// A real driver talks to the site's database. This one reads a text file (registry_file, see
// registry.txt) once, and appends each batch to another text file (deltas_file).
//
//   [storage]
//   driver = "example"
//   [storage.example]
//   registry_file = "/etc/chihaya/registry.txt"
//   deltas_file = "/var/lib/chihaya/deltas.log"
#include <chihaya/driver.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace {

class ExampleStorage {
public:
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_string("registry_file", "\"registry.txt\"",
                               "users, torrents and clients, one per line (see registry.txt)"),
        chihaya::config_string("deltas_file", "\"deltas.log\"",
                               "every applied batch is appended here"),
    };

    // Main thread, before the tracker serves. Checking both files here means a wrong path fails
    // `chihaya --check-config PATH --connect` instead of the first announce.
    ExampleStorage(const chihaya::Host& host, const chihaya::Config& config)
        : host_(host),
          registry_file_(config.string("registry_file")),
          deltas_file_(config.string("deltas_file")) {
        if (!std::ifstream(registry_file_)) throw std::runtime_error("cannot read registry_file " + registry_file_);
        // Batches applied before a restart: the host may send them again, and they must add nothing.
        std::ifstream old(deltas_file_);
        for (std::string kind, host_id; old >> kind;) {
            uint64_t sequence = 0;
            if (kind == "batch" && old >> host_id >> sequence) last_sequence_[host_id] = sequence;
            old.ignore(1 << 20, '\n');
        }
        deltas_.open(deltas_file_, std::ios::app);
        if (!deltas_) throw std::runtime_error("cannot append to deltas_file " + deltas_file_);
    }

    // Main thread: deliver the complete registry, then say it is loaded. A real driver would then
    // keep it current from its own thread (put_* / remove_* as rows change); this one does not
    // watch the file.
    void subscribe(const chihaya::RegistrySink& sink) {
        std::ifstream in(registry_file_);
        std::string line;
        for (int n = 1; std::getline(in, line); ++n) {
            std::istringstream row(line);
            std::string kind, text;
            uint64_t id = 0;
            if (!(row >> kind) || kind[0] == '#') continue;
            if (!(row >> id >> text)) throw std::runtime_error(registry_file_ + ":" + std::to_string(n) + ": want <kind> <id> <value>");
            if (kind == "user") {
                chihaya_user user{sizeof(chihaya_user), CHIHAYA_ENABLED, id, {text.data(), text.size()},
                                  CHIHAYA_MULTIPLIER_ONE, CHIHAYA_MULTIPLIER_ONE, 0, 0};
                row >> user.upload_multiplier >> user.download_multiplier >> user.leech_slots;
                sink.put_user(user);  // the host copies what it needs before returning
            } else if (kind == "torrent") {
                chihaya_torrent torrent{sizeof(chihaya_torrent), CHIHAYA_ENABLED, id, {},
                                        CHIHAYA_MULTIPLIER_ONE, CHIHAYA_MULTIPLIER_ONE, 0};
                if (text.size() != 40) throw std::runtime_error(registry_file_ + ":" + std::to_string(n) + ": info_hash is not 40 hex digits");
                for (int i = 0; i < 20; ++i) torrent.info_hash[i] = uint8_t(std::stoi(text.substr(2 * i, 2), nullptr, 16));
                row >> torrent.upload_multiplier >> torrent.download_multiplier;
                sink.put_torrent(torrent);
            } else if (kind == "client") {
                sink.put_client({sizeof(chihaya_client), 0, id, {text.data(), text.size()}});
            }
        }
        sink.loaded();
        host_.info("registry loaded from " + registry_file_);
    }

    // The host's flusher thread, one batch at a time, in sequence order: no lock needed. The
    // batch is written with one append and flushed before `done(CHIHAYA_OK)`, so an OK batch is
    // on disk. A batch seen before completes OK and changes nothing.
    void apply(chihaya_delta_batch& batch, chihaya::Completion done) {
        const std::string host_id(batch.host_id.ptr, batch.host_id.len);
        auto last = last_sequence_.find(host_id);
        if (last != last_sequence_.end() && batch.sequence <= last->second) return done(CHIHAYA_OK);

        std::ostringstream out;
        out << "batch " << host_id << " " << batch.sequence << "\n";
        for (uint32_t i = 0; i < batch.delta_count; ++i) {
            const chihaya_peer_delta& d = chihaya::delta_at(batch, i);  // host's stride
            out << "delta user=" << d.user_id << " torrent=" << d.torrent_id << " flags=" << d.flags
                << " credit_up=" << d.credit_uploaded << " credit_down=" << d.credit_downloaded
                << " uploaded=" << d.uploaded << " downloaded=" << d.downloaded << " left=" << d.left << "\n";
        }
        for (uint32_t i = 0; i < batch.torrent_count; ++i) {
            const chihaya_torrent_stats& t = chihaya::torrent_stats_at(batch, i);
            out << "stats torrent=" << t.torrent_id << " seeders=" << t.seeders
                << " leechers=" << t.leechers << " snatched=" << t.snatched << "\n";
        }
        deltas_ << out.str() << std::flush;
        if (!deltas_) {
            // UNAVAILABLE: the host keeps the batch and sends it again later.
            chihaya::write_message(batch.message, CHIHAYA_MESSAGE_CAP, "cannot write deltas_file");
            deltas_.clear();
            return done(CHIHAYA_UNAVAILABLE);
        }
        last_sequence_[host_id] = batch.sequence;
        done(CHIHAYA_OK);
    }

private:
    chihaya::Host host_;
    std::string registry_file_;
    std::string deltas_file_;
    std::ofstream deltas_;
    std::map<std::string, uint64_t> last_sequence_;  // per host_id: the last batch applied
};

}  // namespace

CHIHAYA_REGISTER_STORAGE("example", ExampleStorage)
