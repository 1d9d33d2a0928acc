// chihaya: start order config → plugins → drivers → frontends; the reverse on SIGINT/SIGTERM.
#include "accounting/ledger.hpp"
#include "cli/options.hpp"
#include "config/config.hpp"
#include "flush/flusher.hpp"
#include "flush/recovery.hpp"
#include "flush/spool.hpp"
#include "frontend/admin/admin_server.hpp"
#include "frontend/http/connection_limits.hpp"
#include "frontend/http/http_frontend.hpp"
#include "frontend/udp/udp_frontend.hpp"
#include "health/readiness.hpp"
#include "log/access_log.hpp"
#include "log/log.hpp"
#include "metrics/host_collectors.hpp"
#include "metrics/registry.hpp"
#include "plugin/handshake.hpp"
#include "plugin/listing.hpp"
#include "plugin/loader.hpp"
#include "plugin/registry.hpp"
#include "plugin/secrets.hpp"
#include "private/directory.hpp"
#include "private/policy.hpp"
#include "process/cpus.hpp"
#include "reload/reloader.hpp"
#include "process/limits.hpp"
#include "process/privileges.hpp"
#include "tracker/tracker.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace chihaya;

namespace {

// How long in-flight requests get to finish after SIGINT/SIGTERM before the loops are stopped.
constexpr auto kShutdownGrace = std::chrono::seconds(5);

fs::path exe_dir() {
    std::error_code error;
    fs::path self = fs::read_symlink("/proc/self/exe", error);
    return error ? fs::current_path() : self.parent_path();
}

std::string find_config() {
    for (const fs::path& candidate : {exe_dir() / ".." / "etc" / "chihaya.toml",
                                      exe_dir() / ".." / "etc" / "chihaya" / "chihaya.toml",  // installed
                                      exe_dir() / "etc" / "chihaya.toml",
                                      fs::path("/etc/chihaya/chihaya.toml")}) {
        std::error_code error;
        if (fs::is_regular_file(candidate, error)) return fs::weakly_canonical(candidate).string();
    }
    return "";
}

std::string plugins_dir(const Config& config) {
    if (config.plugins_dir.empty()) {  // installed (<prefix>/bin, <prefix>/lib/chihaya/plugins), else the build's
        fs::path installed = exe_dir() / ".." / "lib" / "chihaya" / "plugins";
        return (fs::is_directory(installed) ? installed.lexically_normal() : exe_dir() / "plugins").string();
    }
    fs::path dir(config.plugins_dir);
    if (dir.is_relative() && !config.source.empty()) dir = fs::path(config.source).parent_path() / dir;
    return dir.lexically_normal().string();
}

// Relative paths in the config file are relative to the file.
std::string beside_config(const Config& config, const std::string& path, const char* fallback) {
    fs::path p(path.empty() ? fallback : path);
    if (p.is_relative() && !config.source.empty()) p = fs::path(config.source).parent_path() / p;
    return p.lexically_normal().string();
}

uint64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * uint64_t(::sysconf(_SC_PAGESIZE));
}

// Private mode's state, alive from before the storage driver is created until after it is
// destroyed: the driver's own thread feeds the directory until its destroy returns.
struct PrivateState {
    Directory directory;
    Ledger ledger;
    std::unique_ptr<Spool> spool;
    std::unique_ptr<Policy> policy;
    std::unique_ptr<Flusher> flusher;
};

// Loads the registry through the storage (blocking: progress is the driver's to log) and starts
// the flusher, which first applies what an earlier run left in the spool.
void start_private_mode(PrivateState& state, const Config& config, const DriverInstance& storage) {
    auto* v = static_cast<const chihaya_storage_vtable*>(storage.vtable());
    if (!v->subscribe || !v->apply)
        throw std::runtime_error(std::string("storage driver \"") + storage.name() +
                                 "\" cannot serve private mode (it has no subscribe/apply, ABI 2.1); "
                                 "set [storage] driver = \"postgres\" or [tracker] mode = \"open\"");
    state.spool = std::make_unique<Spool>(beside_config(config, config.accounting.spool_dir, "spool"));
    // Before anything new is accepted: what a killed run accepted becomes the first batch.
    const std::string journal = state.spool->dir() + "/journal";
    state.ledger.enable_journal(journal, recover_journal(*state.spool, journal));
    const auto started = std::chrono::steady_clock::now();
    const uint64_t rss_before = resident_bytes();
    char error[512] = {0};
    if (v->subscribe(storage.get(), state.directory.sink(), error, sizeof error) != CHIHAYA_OK)
        throw std::runtime_error(std::string("storage driver \"") + storage.name() +
                                 "\" could not load the registry: " + (error[0] ? error : "no reason given"));
    if (!state.directory.loaded())
        throw std::runtime_error(std::string("storage driver \"") + storage.name() +
                                 "\" returned from subscribe without a complete load");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const uint64_t rss_after = resident_bytes();
    char line[256];
    std::snprintf(line, sizeof line,
                  "registry loaded: %zu users, %zu torrents, %zu allowed clients in %.2f s, %.1f MiB",
                  state.directory.users(), state.directory.torrents(), state.directory.clients(), seconds,
                  double(rss_after > rss_before ? rss_after - rss_before : 0) / (1 << 20));
    log::info("private", line);
    state.policy = std::make_unique<Policy>(state.directory, config.tracker.peer_lifetime);
    state.flusher = std::make_unique<Flusher>(state.ledger, *state.spool,
                                              StorageHandle{v, storage.get()}, config.accounting);
    const size_t spooled = state.spool->pending().size();
    if (spooled > 0)
        log::info("flush", std::to_string(spooled) + " spooled batch(es) from an earlier run are applied first");
    state.flusher->start();
}

// One event loop per thread, each with its own sockets (SO_REUSEPORT spreads the load).
struct Worker {
    boost::asio::io_context io{1};
    // Keeps the loop running while a frontend is idle; released on the loop's thread at shutdown.
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard{
        boost::asio::make_work_guard(io)};
    std::unique_ptr<UdpFrontend> udp;
    std::unique_ptr<HttpFrontend> http;
    std::thread thread;
};

int run(const Options& options) {
    // SIGINT/SIGTERM are ours from the first moment: a signal during start-up (a long registry
    // load, say) or once listening is a clean stop, handled when main_io runs below, never the
    // default action killing a tracker that may already hold accepted announces.
    boost::asio::io_context main_io;
    boost::asio::signal_set signals(main_io, SIGINT, SIGTERM, SIGHUP);
    Config config;
    if (!options.config.empty()) {
        config = load_config(options.config);
    } else if (std::string found = find_config(); !found.empty()) {
        config = load_config(found);
    }
    bool level_ok = false;
    // Validating or listing prints its own answer: only refused plugins and worse are logged.
    log::Level level = log::parse_level(config.log.level, &level_ok);
    log::init(options.check_only || options.list_drivers || options.list_plugins ? std::max(level, log::Level::Warning) : level,
              log::parse_format(config.log.format, &level_ok));
    access_log::configure(config.log.access_log, config.log.access_log_rate);
    if (options.list_plugins) return list_plugins(plugins_dir(config), config.source, std::cout);
    if (!options.check_only)
        log::info("main", config.source.empty() ? "no config file found, using built-in defaults"
                                                : "config: " + config.source);

    Registry registry;
    const std::string dir = plugins_dir(config);
    // Only the plugins of the selected drivers are loaded into the tracker; the others are probed
    // in a child (plugin/probe.hpp). This runs before any thread of ours exists, as probing needs.
    const LoadFilter filter = options.list_drivers
                                  ? LoadFilter::everything()
                                  : LoadFilter::only({{CHIHAYA_KIND_CACHE, config.cache.driver},
                                                      {CHIHAYA_KIND_STORAGE, config.storage.driver}});
    std::vector<PluginFile> plugins = load_plugins(dir, host_api(), filter);
    for (const auto& plugin : plugins) registry.add(plugin);
    if (options.list_drivers) {
        std::cout << registry.describe();
        return 0;
    }
    register_driver_secrets(registry.check_selection(CHIHAYA_KIND_CACHE, config.cache, config.source), config.cache);
    register_driver_secrets(registry.check_selection(CHIHAYA_KIND_STORAGE, config.storage, config.source), config.storage);
    if (options.check_only) {
        if (options.connect) connect_drivers(registry, config, std::cout);
        std::cout << (config.source.empty() ? "defaults" : config.source) << ": OK\n";
        return 0;
    }

    const bool private_mode = config.tracker.mode == TrackerMode::Private;
    std::unique_ptr<PrivateState> private_state;  // outlives the storage driver (declared first)
    if (private_mode) private_state = std::make_unique<PrivateState>();
    DriverInstance storage = registry.create(CHIHAYA_KIND_STORAGE, config.storage, config.source, host_api());
    DriverInstance cache = registry.create(CHIHAYA_KIND_CACHE, config.cache, config.source, host_api());
    // On every way out of run() the flusher stops before the drivers are destroyed: a start-up
    // failure after this point (a port in use) unwinds through this guard first, so the flusher
    // never calls apply on a destroyed storage. After a normal shutdown it is a no-op.
    struct FlusherStop {
        PrivateState* state;
        ~FlusherStop() {
            if (state && state->flusher) state->flusher->stop(std::chrono::milliseconds(0));
        }
    } flusher_stop{private_state.get()};
    if (private_mode) start_private_mode(*private_state, config, storage);
    // The registry lets go of its library handles: each instance keeps its own plugin loaded, and
    // a loaded plugin's other drivers (one file may register several) would only cost memory.
    const size_t plugins_probed = size_t(std::count_if(plugins.begin(), plugins.end(), [](const PluginFile& f) {
        return f.state == PluginFile::State::Probed;
    }));
    const size_t plugins_loaded = plugins.size() - plugins_probed;
    registry = Registry();
    plugins.clear();
    Tracker tracker(config.tracker,
                    {static_cast<const chihaya_cache_vtable*>(cache.vtable()), cache.get(), cache.name()},
                    private_mode ? PrivateMode{private_state->policy.get(), &private_state->ledger} : PrivateMode{},
                    config.limits);
    // [limits] travel in the announce request from ABI 2.3 on; an older driver never sees them,
    // and a 2.3 driver enforces them only when it says so (CHIHAYA_DRIVER_PROVIDES_LIMITS).
    const LimitsConfig& limits = config.limits;
    if ((cache.flags() & CHIHAYA_DRIVER_PROVIDES_LIMITS) == 0 &&
        (limits.max_torrents || limits.max_peers || limits.max_peers_per_address || limits.new_torrents_per_address))
        log::warning("main", std::string("cache driver \"") + cache.name() + "\" " +
                                 (cache.abi_minor() < 3 ? "was built for ABI 2." + std::to_string(cache.abi_minor())
                                                        : std::string("does not declare CHIHAYA_DRIVER_PROVIDES_LIMITS")) +
                                 ": it does not enforce [limits] max_torrents, max_peers and max_peers_per_address "
                                 "(new_torrents_per_address is not enforced either: it needs the driver to say "
                                 "when it created a swarm)" +
                                 (cache.abi_minor() < 3 ? "; rebuild it against SDK 2.3" : ""));
    const ConnectionIdKey key = config.udp.connection_id_secret.empty()
                                    ? ConnectionIdKey::random()
                                    : ConnectionIdKey::from_hex(config.udp.connection_id_secret);

    unsigned threads = config.workers.threads;
    if (threads == 0) {
        const CpuBudget budget = usable_cpus();
        threads = budget.cpus;
        log::info("main", "workers.threads = 0: " + std::to_string(threads) + " worker(s), from the " + budget.why);
    }
    if (const OpenFilesLimit files = raise_open_files(open_files_needed(config, threads)); files.enough())
        log::info("main", files.describe());
    else
        log::warning("main", files.describe());
    std::vector<std::unique_ptr<Worker>> workers;
    const auto http_limits = make_connection_limits(config.http);  // one count for all workers
    for (unsigned i = 0; i < threads; ++i) {
        auto w = std::make_unique<Worker>();
        if (config.udp.enabled) w->udp = std::make_unique<UdpFrontend>(w->io, config.udp, tracker, key);
        if (config.http.enabled) w->http = std::make_unique<HttpFrontend>(w->io, config.http, tracker, http_limits);
        workers.push_back(std::move(w));
    }

    metrics::Registry metrics;  // per-worker counters, summed on scrape (metrics/worker_metrics.hpp)
    metrics::ReloadCounters reloads;
    // Sockets bound, plugins loaded, drivers connected: nothing needs root any more.
    // Private mode keeps writing its spool (made above as the starting user): it goes to the new
    // user too, or batches could not be sealed after the drop.
    drop_privileges(config.process, private_state && private_state->spool
                                        ? std::vector<std::string>{private_state->spool->dir()}
                                        : std::vector<std::string>{});

    std::mutex mutex;
    std::condition_variable exited;
    unsigned running = 0;
    for (auto& w : workers) {
        if (w->udp) w->udp->start();
        if (w->http) w->http->start();
        ++running;
        w->thread = std::thread([&, io = &w->io, counters = &metrics.add_worker()] {
            metrics::bind(*counters);
            for (;;) {
                try {
                    io->run();
                    break;
                } catch (const std::exception& e) {
                    log::error("worker", std::string("handler failed: ") + e.what());
                }
            }
            std::lock_guard lock(mutex);
            --running;
            exited.notify_all();
        });
    }
    {
        std::string listening;
        if (config.udp.enabled) for (auto& a : config.udp.listen) listening += " udp://" + a;
        if (config.http.enabled) for (auto& a : config.http.listen) listening += " http://" + a;
        log::info("main", "serving on" + listening + " with " + std::to_string(threads) +
                              " worker(s), " + (private_mode ? "private" : "open") + " mode, cache \"" +
                              cache.name() + "\", storage \"" + storage.name() + "\"");
    }

    // The admin listener: after the workers (their counters exist), stopped before the drivers go.
    const CacheHandle cache_handle{static_cast<const chihaya_cache_vtable*>(cache.vtable()), cache.get(), cache.name()};
    Readiness readiness(cache_handle, private_state ? private_state->flusher.get() : nullptr,
                        private_state ? &private_state->directory : nullptr,
                        private_state ? StorageHealth{static_cast<const chihaya_storage_vtable*>(storage.vtable()),
                                                      storage.get(), storage.name()}
                                      : StorageHealth{});
    metrics::add_process_collector(metrics, plugins_loaded, plugins_probed, reloads);
    metrics::add_swarm_collector(metrics, cache_handle);
    metrics::add_flush_collector(metrics, private_state ? private_state->flusher.get() : nullptr);
    std::unique_ptr<AdminServer> admin;
    if (!config.admin.listen.empty())
        admin = std::make_unique<AdminServer>(config.admin.listen,
                                              AdminHandlers{[&] { return metrics.render(); },
                                                            [&](std::string& why) { return readiness.check(why); }});
    Reloader reloader(config, tracker, [&](const Config& next) {
        http_limits->set_per_address(next.http.max_connections_per_address);  // shared, locked
        for (auto& w : workers) {
            if (w->http) boost::asio::post(w->io, [w = w.get(), http = next.http] { w->http->reconfigure(http); });
            if (w->udp) boost::asio::post(w->io, [w = w.get(), udp = next.udp] { w->udp->reconfigure(udp); });
        }
    }, reloads);

    if (admin) admin->start();  // after the signals are ours: an answering /healthz means SIGHUP is safe
    boost::asio::steady_timer ticker(main_io);
    std::function<void()> schedule_tick = [&] {
        ticker.expires_after(std::chrono::seconds(1));
        ticker.async_wait([&](boost::system::error_code error) {
            if (error) return;
            tracker.tick();
            schedule_tick();
        });
    };
    schedule_tick();
    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](boost::system::error_code error, int signal) {
            if (error) return;
            if (signal == SIGHUP) {
                reloader.reload();
                return wait_signal();
            }
            log::info("main", std::string("received ") + (signal == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
            ticker.cancel();
        });
    };
    wait_signal();
    main_io.run();
    if (admin) admin->stop();

    // Each frontend stops on its own thread, then the loop lets go of its guard: run() returns
    // once the requests in flight are answered, bounded by the grace period.
    for (auto& w : workers) {
        boost::asio::post(w->io, [w = w.get()] {
            if (w->udp) w->udp->stop();
            if (w->http) w->http->stop();
            w->guard.reset();
        });
    }
    {
        std::unique_lock lock(mutex);
        // The per-call deadline and a little, so that a client whose driver call is still out
        // gets its "unavailable" answer before the loops stop; capped below systemd's default
        // stop timeout (90 s) for deadlines set longer than that.
        const auto grace = std::clamp<std::chrono::milliseconds>(
            std::chrono::milliseconds(uint64_t(tracker.config().driver_timeout_ms) + 1000), kShutdownGrace,
            std::chrono::seconds(60));
        if (!exited.wait_for(lock, grace, [&] { return running == 0; }))
            log::warning("main", "requests still in flight after the grace period; stopping anyway");
    }
    for (auto& w : workers) {
        w->io.stop();
        w->thread.join();
    }
    // Drivers go first, while the frontends and their (stopped) event loops still exist: a driver
    // that still holds calls past the grace period fails them in destroy, and those completions
    // post into the loops, which must be alive to accept (and then discard) them. Each driver is
    // destroyed before its library is unloaded.
    // Every accepted announce is in the ledger now: seal it and hand it to the storage (or leave
    // it spooled) while the storage driver still exists.
    if (private_state) private_state->flusher->stop(kShutdownGrace);
    cache.reset();
    // What the driver completed in its destroy was posted into the stopped loops: run it here
    // (the worker threads are gone, so this thread is each loop's only one), so that every call
    // is freed by its completion and not reported as leaked by its frontend.
    for (auto& w : workers) {
        w->io.restart();
        w->io.poll();
    }
    storage.reset();
    workers.clear();
    log::info("main", "stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    Options options;
    if (int code = parse_options(argc, argv, options, std::cout, std::cerr); code >= 0) return code;
    try {
        return run(options);
    } catch (const ConfigError& e) {
        std::cerr << "chihaya: config error: " << e.what() << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "chihaya: " << e.what() << "\n";
        return 1;
    }
}
