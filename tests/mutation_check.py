#!/usr/bin/env python3
"""Breaks one behaviour of the production code on purpose and checks that its test fails.

    tests/mutation_check.py                  list the mutations
    tests/mutation_check.py NAME [NAME ...]  apply each in turn: build, run its test, restore
    tests/mutation_check.py --all

A mutation is a text replacement in a source file. The file is restored (and the build brought
back) whatever happens; nothing here is ever committed in its mutated form. A mutation is
CAUGHT when its test exits non-zero, MISSED when the test still passes, and STALE when its text
is no longer in the file (the code moved on: update the table). Run with a built tree
(cmake -S . -B build && cmake --build build -j2); BUILD_DIR overrides build/.
"""

import os
import subprocess
import sys
import time

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(SOURCE, "build")))
PYTHON = "/usr/bin/python3"
TEST_TIMEOUT_S = 300


def integration(script, test_id):
    return [PYTHON, os.path.join(SOURCE, "tests", "integration", script), test_id]


def unit(binary, case):
    return [os.path.join(BUILD, "tests", "bin", binary), "--test-case=" + case]


def redis_limits(case, cluster=False):
    """tests/conformance/redis_limits_test on a throwaway Redis (run_redis_limits.py)."""
    return ([PYTHON, os.path.join(SOURCE, "tests", "conformance", "run_redis_limits.py")] +
            (["--cluster"] if cluster else []) +
            [os.path.join(BUILD, "tests", "bin", "redis_limits_test"), "--test-case=" + case])


# name: (what it breaks, file, [(old, new), ...], build targets, test command)
MUTATIONS = {
    "key-ignored": (
        "the memory driver never compares a peer's BEP 7 key: anyone behind its address can stop it",
        "plugins/memory/swarm.cpp",
        [("        if (kept != 0 && kept != key) {", "        if (false) {")],
        ["memory_swarm_test", "memory"],
        integration("test_hostile.py", "PeerKey")),
    "key-not-moved": (
        "a record moved into a hole (removal, a new leecher) leaves its key and counters behind",
        "plugins/memory/peer_list.hpp",
        [("        std::memcpy(s.at(to), s.at(from), s.stride);", "        std::memcpy(s.at(to), s.at(from), eb + 3);")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*keys follow their peers through moves*")),
    "widening-front-first": (
        "widening a family's records (keys, counters) rewrites the first record first, over ones not yet moved",
        "plugins/memory/peer_list.hpp",
        [("        for (uint32_t i = n; i-- > 0;) {", "        for (uint32_t i = 0; i < n; ++i) {")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*keeps keys and counters in the records*")),
    "keys-overwrite-counters": (
        "keys enabled after counters zero the counters instead of moving them along",
        "plugins/memory/peer_list.hpp",
        [("                if (before & Block::kCounters) std::memcpy(d + dst, record + src, sizeof(Counters));",
          "                if (false) std::memcpy(d + dst, record + src, sizeof(Counters));")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*keeps keys and counters in the records*")),
    "swarm-table-wrap": (
        "erasing a swarm shifts entries of a probe run that wraps around the table's end past their home",
        "plugins/memory/swarm_table.hpp",
        [("const bool stays = hole <= at ? (want > hole && want <= at) : (want > hole || want <= at);",
          "const bool stays = hole <= at ? (want > hole && want <= at) : false;")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*colliding and wrapped probe runs*")),
    "swarm-table-sweep-skips": (
        "a sweep that erases a swarm steps past the slot the next swarm shifted into",
        "plugins/memory/swarm_table.hpp",
        [("                erase_at(i);\n                continue;", "                erase_at(i);\n                ++i;\n                continue;")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*colliding and wrapped probe runs*")),
    "address-count-no-handover": (
        "a family that gains or loses its index does not move its peers into or out of the address table",
        "plugins/memory/address_counts.hpp",
        [("        if (was_indexed == family.indexed()) return;\n", "        return;\n")],
        ["memory_limits_test"],
        unit("memory_limits_test", "*gains and loses its index*")),
    "swarm-table-tag-only": (
        "the swarm table takes a slot whose 32 hash bits match for the swarm, without its info_hash",
        "plugins/memory/swarm_table.hpp",
        [("            if (t == tag && std::memcmp(swarms_[i].info_hash(), info_hash, 20) == 0) return &swarms_[i];",
          "            if (t == tag) return &swarms_[i];")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*colliding and wrapped probe runs*")),
    "v6-left-behind": (
        "a block that grows leaves its IPv6 records where the old chunk ended",
        "plugins/memory/peer_list.hpp",
        [("        if (end != old_end) std::memmove(block_ + end - top, block_ + old_end - top, top);\n        return true;\n    }\n\n    // Gives",
          "        return true;\n    }\n\n    // Gives")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*both families in one block*")),
    "ext-over-v4": (
        "the Extension's pointer is written over the first IPv4 record instead of moving the records up",
        "plugins/memory/peer_list.hpp",
        [("        std::memmove(block_ + kHeaderEnd + sizeof x, block_ + kHeaderEnd, part_bytes(0));\n", "")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*both families in one block*")),
    "emptied-family-stays-wide": (
        "a family that emptied keeps its keys and counters (its records stay wide for ever)",
        "plugins/memory/peer_list.hpp",
        [("        if (size() == 0) b_->set_word(f, b_->word(f) & ~(Block::kKeys | Block::kCounters));\n", "")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*both families in one block*")),
    "deadline-no-wrap": (
        "a peer's 23-bit deadline is compared with the clock's low bits, not the nearest whole deadline",
        "plugins/memory/peer_list.hpp",
        [("    bool expired(uint32_t now_s) const noexcept { return ((word() - now_s) & deadline_mask) >= reach; }",
          "    bool expired(uint32_t now_s) const noexcept { return (word() & deadline_mask) < (now_s & deadline_mask); }")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*23-bit wrap*")),
    "address-count-expiry-keeps": (
        "a family whose index expiry drops leaves its remaining peers counted in the address table",
        "plugins/memory/swarm.hpp",
        [("        tally.changed(peers, true, nullptr, false);  // it may have dropped its index", "        (void)0;")],
        ["memory_limits_test"],
        unit("memory_limits_test", "*gains and loses its index*")),
    "grow-by-half": (
        "small blocks grow by a quarter, as bigger ones do (spare records in most swarms)",
        "plugins/memory/peer_list.hpp",
        [("        else if (need >= 256) want += need / 4;", "        else want += need / 4;")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*holds no spare record*")),
    "keep-root": (
        "[process] user is never applied: the tracker keeps running as root",
        "host/main.cpp",
        [("    drop_privileges(config.process, private_state", "    if (false) drop_privileges(config.process, private_state")],
        ["chihaya"],
        integration("test_hostile.py", "LeastPrivilege.test_user_and_group_are_dropped_after_start_and_it_still_serves")),
    "error-reply-unbounded": (
        "a UDP error reply ignores the request's size: an unauthenticated sender gets more back",
        "host/frontend/udp/codec.cpp",
        [("    size_t limit = std::min(out.size(), max_size);", "    size_t limit = out.size(); (void)max_size;")],
        ["fuzz_replay_udp_packet"],
        [os.path.join(BUILD, "tests", "bin", "fuzz_replay_udp_packet"),
         os.path.join(SOURCE, "fuzz", "corpus", "udp_packet")]),
    "no-connect-limit": (
        "[udp] connect_rate is never enforced: one address's connect flood is answered in full",
        "host/frontend/udp/worker.cpp",
        [("        if (!connects.admit(*source, now_ms)) {", "        if (false && !connects.admit(*source, now_ms)) {")],
        ["chihaya"],
        integration("test_udp.py", "ConnectFlood")),
    "no-journal-replay": (
        "a killed run's journal is not replayed: what it accepted since the last seal is lost",
        "host/flush/recovery.cpp",
        [("    if (!left.reports.empty()) {", "    if (false && !left.reports.empty()) {")],
        ["chihaya"],
        integration("test_private.py", "Accounting.test_sigkill_mid_traffic_memory_cache")),
    "no-spool-handover": (
        "the spool stays the starting user's after [process] user: batches cannot be sealed",
        "host/main.cpp",
        [("    drop_privileges(config.process, private_state && private_state->spool",
          "    drop_privileges(config.process, false && private_state && private_state->spool")],
        ["chihaya"],
        integration("test_private.py", "StartUp.test_dropped_privileges_keep_the_spool_writable")),
    "no-per-address-cap": (
        "http.max_connections_per_address is never enforced: one address can hold every slot",
        "host/frontend/http/connection_limits.cpp",
        [("    if (per_address_ != 0 && n >= per_address_) return false;", "    if (false) return false;")],
        ["chihaya"],
        integration("test_hostile.py", "PerAddressConnections")),
    "head-rescan": (
        "the request-head scanner starts from byte 0 on every read (quadratic in a trickled head)",
        "host/frontend/http/request_head.cpp",
        [("    for (; scanned_ < bytes.size(); ++scanned_) {",
          "    at_ = At::Leading;\n    for (scanned_ = 0; scanned_ < bytes.size(); ++scanned_) {")],
        ["http_query_test"],
        unit("http_query_test", "head scanner: a head trickled byte by byte is examined once, linearly")),
    "nofile-not-raised": (
        "RLIMIT_NOFILE is never raised at start-up",
        "host/process/limits.cpp",
        [("    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) out.soft = want.rlim_cur;", "    (void)want;")],
        ["chihaya"],
        integration("test_hostile.py", "OpenFilesLimit")),
    "signals-after-listen": (
        "SIGINT/SIGTERM handlers installed only after the workers listen (the start-up race)",
        "host/main.cpp",
        [("    boost::asio::io_context main_io;\n    boost::asio::signal_set signals(main_io, SIGINT, SIGTERM, SIGHUP);\n", ""),
         ("    boost::asio::steady_timer ticker(main_io);",
          "    boost::asio::io_context main_io;\n    boost::asio::signal_set signals(main_io, SIGINT, SIGTERM, SIGHUP);\n"
          "    boost::asio::steady_timer ticker(main_io);")],
        ["chihaya"],
        integration("test_lifecycle.py", "Signals.test_signals_are_handled_before_any_socket_is_bound")),
    "no-tick": (
        "the host never calls the cache driver's tick",
        "host/main.cpp",
        [("            tracker.tick();\n", "")],
        ["chihaya"],
        integration("test_lifecycle.py", "Housekeeping")),
    "tick-sweeps-nothing": (
        "the memory driver's tick does not expire anything",
        "plugins/memory/memory_cache.cpp",
        [("lock(shard.mutex);\n        sweep(shard, now_s);", "lock(shard.mutex);")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "MemoryCache: tick sweeps a slice of shards and drops expired swarms")),
    "no-grace": (
        "shutdown grace 0: requests in flight at SIGTERM are dropped",
        "host/main.cpp",
        [("kShutdownGrace = std::chrono::seconds(5)", "kShutdownGrace = std::chrono::seconds(0)")],
        ["chihaya"],
        integration("test_lifecycle.py", "Draining")),
    "no-grace-redis": (
        "shutdown grace 0, seen through the Redis driver",
        "host/main.cpp",
        [("kShutdownGrace = std::chrono::seconds(5)", "kShutdownGrace = std::chrono::seconds(0)")],
        ["chihaya"],
        integration("test_redis.py", "Draining")),
    "idle-sessions-kept-at-stop": (
        "stop() leaves idle keep-alive and half-read sessions open until the process exits",
        "host/frontend/http/listener.cpp",
        [("    for (Session* session : sessions) session->shutdown();", "    (void)sessions;")],
        ["chihaya"],
        integration("test_lifecycle.py", "Draining")),
    "no-ask": (
        "the Redis driver does not follow ASK redirects",
        "plugins/redis/redis_cache.cpp",
        [('ask = error.starts_with("ASK ");', "ask = false;")],
        ["redis"],
        integration("test_redis_cluster.py", "ClusterSwarm.test_slot_migration_ask_then_moved")),
    "half-lifetime": (
        "peers expire after half of tracker.peer_lifetime",
        "host/tracker/tracker.cpp",
        [("r.peer_ttl_s = settings.peer_lifetime;", "r.peer_ttl_s = settings.peer_lifetime / 2;")],
        ["chihaya"],
        integration("test_lifecycle.py", "Expiry.test_silent_peer_stays_its_lifetime_then_expires")),
    "reannounce-keeps-deadline": (
        "a re-announce does not move the peer's deadline",
        "plugins/memory/swarm.cpp",
        [("        peers[i].set(deadline, counted);", "        peers[i].set(peers[i].deadline(now_s), counted);")],
        ["memory"],
        integration("test_lifecycle.py", "Expiry.test_announcing_peer_stays")),
    "v4-peers-to-v6": (
        "IPv4 peers handed to IPv6 clients as v4-mapped entries",
        "plugins/memory/swarm.cpp",
        [("    if (request.family == CHIHAYA_IPV6) return announce_in(v6(), request, now_s, result, rng, admission);",
          "    if (request.family == CHIHAYA_IPV6) {\n"
          "        chihaya_status s = announce_in(v6(), request, now_s, result, rng, admission);\n"
          "        for (uint32_t k = 0; k < v4().size() && result.peer_count < result.peers_capacity; ++k) {\n"
          "            uint8_t* e = result.peers + 18 * result.peer_count++;\n"
          "            std::memset(e, 0, 10);\n"
          "            e[10] = e[11] = 0xff;\n"
          "            std::memcpy(e + 12, v4()[k].endpoint, 6);\n"
          "        }\n"
          "        return s;\n"
          "    }")],
        ["memory"],
        integration("test_http.py", "Announce.test_ipv6_entries_are_18_bytes_and_families_stay_apart")),
    "admin-ignores-close": (
        "the admin listener keeps a connection open after a request that said Connection: close",
        "host/frontend/admin/admin_server.cpp",
        [("        reply.close = reply.close || !head.keep_alive || head.has_body;",
          "        reply.close = reply.close || head.has_body;")],
        ["chihaya"],
        integration("test_ops.py", "AdminListener.test_pipelined_requests_are_answered_in_order_and_close_is_honoured")),
    "admin-head-with-body": (
        "the admin listener sends a body after the head of a HEAD answer",
        "host/frontend/admin/admin_server.cpp",
        [("        if (!head_only) out_ += reply.body;", "        out_ += reply.body;")],
        ["chihaya"],
        integration("test_ops.py", "AdminListener.test_pipelined_requests_are_answered_in_order_and_close_is_honoured")),
    "admin-no-connection-cap": (
        "the admin listener serves any number of connections at once",
        "host/frontend/admin/admin_server.cpp",
        [("            if (open < kMaxConnections) std::make_shared", "            if (true) std::make_shared")],
        ["chihaya"],
        integration("test_ops.py", "AdminListener.test_connections_past_the_cap_are_closed_and_room_comes_back")),
    "swarm-rate-table-zeroed": (
        "the new-swarm rate table is zeroed at start, all 512 KiB of it resident in every tracker",
        "host/tracker/new_swarm_rate.cpp",
        [("    if (!slots_) throw std::bad_alloc();  // start-up only\n",
          "    if (!slots_) throw std::bad_alloc();  // start-up only\n"
          "    for (size_t i = 0; i < kSlots; ++i) std::atomic_ref<uint64_t>(slots_[i]).store(0, std::memory_order_relaxed);\n")],
        ["new_swarm_rate_test"],
        unit("new_swarm_rate_test", "*costs no RAM until*")),
    "admin-write-unbounded": (
        "an admin answer the client never reads holds its connection for ever",
        "host/frontend/admin/admin_server.cpp",
        [("        waiting_ = false;  // the deadline now covers the write; the next head gets its own\n        arm(kDeadline);\n",
          "        waiting_ = false;  // the deadline now covers the write; the next head gets its own\n        idle_.cancel();\n")],
        ["chihaya"],
        integration("test_ops.py", "AdminListener.test_heads_and_answers_have_a_deadline")),
    "admin-head-unbounded": (
        "an admin request head that never ends holds its connection for ever",
        "host/frontend/admin/admin_server.cpp",
        [("            waiting_ = true;\n            arm(kDeadline);\n", "            waiting_ = true;\n")],
        ["chihaya"],
        integration("test_ops.py", "AdminListener.test_heads_and_answers_have_a_deadline")),
    "ttl-unclamped": (
        "a peer lifetime past the 23-bit deadline's reach wraps: the peer is dropped at once",
        "plugins/memory/swarm.cpp",
        [("    return now_s + (ttl_s < PeerV4::reach ? ttl_s : PeerV4::reach - 1);", "    return now_s + ttl_s;")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*23-bit wrap*")),
    "sweep-due-raw": (
        "a swarm's 23-bit sweep bound is compared with the clock as it is, not as the nearest whole second",
        "plugins/memory/swarm.hpp",
        [("        return (w & kNoSweep) ? UINT32_MAX : nearest_time(w, now_s);",
          "        return (w & kNoSweep) ? UINT32_MAX : w;")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*23-bit wrap*")),
    "sweep-due-no-sentinel": (
        "a swarm with no peer keeps a sweep bound like any other: something may be due in an empty swarm",
        "plugins/memory/swarm.hpp",
        [("        const uint32_t w = s == UINT32_MAX ? kNoSweep : (s & PeerV4::deadline_mask);",
          "        const uint32_t w = s & PeerV4::deadline_mask;")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*23-bit wrap*")),
    "connect-writes-past-reply": (
        "the UDP connect reply writes past its 16 bytes",
        "host/frontend/udp/codec.cpp",
        [("    store64(out.data() + 8, connection_id);\n    return connect_reply_size;",
          "    store64(out.data() + 8, connection_id);\n"
          "    if (out.size() >= 24) store64(out.data() + 16, 0);\n    return connect_reply_size;")],
        ["udp_codec_test"],
        unit("udp_codec_test", "connect request and reply round trip")),
    "scrape-cap-past-a-datagram": (
        "the UDP scrape reads more hashes than one reply datagram holds",
        "host/frontend/udp/codec.hpp",
        [("max_scrape_hashes = 74;", "max_scrape_hashes = 150;")],
        ["udp_codec_test"],
        unit("udp_codec_test", "scrape never reads more than 74 hashes and refuses none")),
    "unknown-event-is-stopped": (
        "an unknown UDP event is taken as 'stopped'",
        "host/frontend/udp/codec.cpp",
        [("? Event(event) : Event::None;", "? Event(event) : Event::Stopped;")],
        ["chihaya"],
        integration("test_udp.py", "Hostile.test_unknown_event_is_a_regular_announce")),
    "negative-numwant-is-zero": (
        "a negative UDP numwant asks for no peers instead of the default",
        "host/frontend/udp/codec.cpp",
        [("out.numwant = numwant < 0 ? -1 : numwant;", "out.numwant = numwant < 0 ? 0 : numwant;")],
        ["chihaya"],
        integration("test_udp.py", "Hostile.test_negative_numwant_and_huge_fields")),
    "skip-shared-secret": (
        "the time-namespace tool is unusable, so SharedSecret skips (must not read as a pass)",
        "tests/integration/test_udp.py",
        [('"unshare", "--time",', '"unshare", "--no-such-option",')],
        [],
        integration("test_udp.py", "SharedSecret")),
    "list-drivers-no-defaults": (
        "--list-drivers prints keys without their defaults",
        "host/plugin/registry.cpp",
        [('? "\\"(secret)\\"" : k.default_value)', '? "\\"(secret)\\"" : "")')],
        ["chihaya"],
        integration("test_config.py", "ListDrivers")),
    "no-max-connections": (
        "http.max_connections is not enforced",
        "host/frontend/http/listener.cpp",
        [("if (ec || worker_->sessions.size() >= worker_->config.max_connections) {", "if (ec) {")],
        ["chihaya"],
        integration("test_http.py", "MaxConnections")),
    "no-config-discovery": (
        "without --config no config file is looked for",
        "host/main.cpp",
        [("        if (fs::is_regular_file(candidate, error)) return fs::weakly_canonical(candidate).string();",
          "        (void)candidate;")],
        ["chihaya"],
        integration("test_config.py", "ConfigDiscovery")),
    "every-plugin-loaded": (
        "the tracker loads every plugin, not only those of the selected drivers (libpq, OpenSSL mapped)",
        "host/plugin/loader.cpp",
        [("    if (all) return true;", "    return true;")],
        ["chihaya"],
        integration("test_plugins.py", "BrokenPlugins.test_only_the_selected_drivers_plugins_are_mapped_into_the_tracker")),
    "probe-refusal-ignored": (
        "a plugin whose probe crashed or hung is loaded into the tracker anyway",
        "host/plugin/loader.cpp",
        [("        if (file.probe.state == ProbeResult::State::Refused) file.why = file.probe.why;\n", ""),
         ("        if (file.state != PluginFile::State::Refused || !file.why.empty() ||\n            file.probe.state == ProbeResult::State::Refused)",
          "        if (file.state != PluginFile::State::Refused || !file.why.empty())")],
        ["chihaya"],
        integration("test_plugins.py", "BrokenPlugins.test_broken_plugins_are_logged_and_the_tracker_serves")),
    "probe-signal-unnamed": (
        "a probe's child killed by a signal is reported as an exit status",
        "host/plugin/probe.cpp",
        [("    if (WIFSIGNALED(status)) {", "    if (false) {")],
        ["plugin_loader_test"],
        unit("plugin_loader_test", "*or hangs while loading*")),
    "redis-held-never-sent": (
        "announces held back while a connection's call is unanswered are not sent when its reply comes",
        "plugins/redis/connection.cpp",
        [("    if (held_ && !holding()) drain();\n", "")],
        ["redis"],
        integration("test_redis.py", "Pipelining")),
    "redis-held-kept-on-drop": (
        "announces held back when the connection drops wait for a reply that never comes",
        "plugins/redis/connection.cpp",
        [("    if (held_) fail_held(message.c_str());", "    if (false) fail_held(message.c_str());")],
        ["redis"],
        integration("test_redis.py", "Pipelining")),
    "redis-no-pipeline-depth": (
        "pipeline_depth is ignored: every drain is written at once, a burst costs Redis a call per drain",
        "plugins/redis/connection.cpp",
        [("    return options_.max_unanswered != 0 && paced_pending_", "    return false && paced_pending_")],
        ["redis"],
        integration("test_redis.py", "Pipelining.test_a_burst_behind_a_paused_call_is_served_in_few_calls")),
    "plugins-never-unloaded": (
        "driver libraries stay loaded until exit",
        "host/plugin/registry.cpp",
        [("    driver_ = {};  // may unload the library, after destroy returned",
          "    static std::vector<RegisteredDriver> kept;\n    kept.push_back(driver_);\n    driver_ = {};")],
        ["chihaya"],
        integration("test_lifecycle.py", "ShutdownOrder")),
    "unload-before-destroy": (
        "a driver's library is unloaded before the driver is destroyed",
        "host/plugin/registry.cpp",
        [("    if (instance_) {\n        // Both vtables",
          "    if (instance_) {\n        RegisteredDriver gone = std::move(driver_);\n        gone = {};\n        // Both vtables")],
        ["chihaya"],
        integration("test_lifecycle.py", "ShutdownOrder")),
    "destroy-before-drain": (
        "drivers destroyed before the workers drained",
        "host/main.cpp",
        [("    // Each frontend stops on its own thread, then the loop",
          "    cache.reset();\n    // Each frontend stops on its own thread, then the loop")],
        ["chihaya"],
        integration("test_lifecycle.py", "Draining")),
    "udp-scrape-ignores-max-scrape-torrents": (
        "the UDP scrape cap ignores tracker.max_scrape_torrents",
        "host/frontend/udp/worker.cpp",
        [("scrape_cap = std::min(tracker.config().max_scrape_torrents, udp::max_scrape_hashes);",
          "scrape_cap = udp::max_scrape_hashes;")],
        ["chihaya"],
        integration("test_udp.py", "Protocol.test_scrape_capped_at_max_scrape_torrents")),
    # Issue 9, the private announce path's tables; issue 11, reflection counted per flood.
    "directory-no-backshift": (
        "erasing a user or torrent leaves a hole in its probe run: later keys of the run vanish",
        "host/private/probe_table.hpp",
        [("            if (stays) continue;", "            if (stays || true) continue;")],
        ["private_mode_test"],
        unit("private_mode_test", "the directory agrees with a simple model*")),
    "udp-flood-reflects-more": (
        "a forged bare scrape is answered with the whole error text (more bytes than it sent)",
        "host/frontend/udp/codec.cpp",
        [("    size_t limit = std::min(out.size(), max_size);", "    size_t limit = out.size(); (void)max_size;")],
        ["chihaya"],
        integration("test_udp.py", "Hostile.test_an_unauthenticated_flood_gets_back_fewer_bytes_than_it_sent")),
    # Issue 13, operations: ABI 2.2 stats and health, /readyz on PostgreSQL, live reload, dpkg.
    "stats-miss-expiry": (
        "the memory driver's tally does not follow peers that housekeeping expires",
        "plugins/memory/memory_cache.cpp",
        [("            shard.tally.move(before, swarm.family_counts(), totals_);\n", "")],
        ["memory_swarm_test"],
        unit("memory_swarm_test", "*stats follow expiry*")),
    "stats-miss-announce": (
        "the memory driver's tally does not follow announces (stats stay at zero)",
        "plugins/memory/memory_cache.cpp",
        [("    shard.tally.move(before, swarm->family_counts(), totals_);\n    if (swarm->empty()) {",
          "    if (swarm->empty()) {")],
        ["memory"],
        [os.path.join(BUILD, "chihaya-conformance"), "--plugin", os.path.join(BUILD, "plugins", "chihaya_memory.so"),
         "--driver", "memory", "--set", "shards=16", "-tc=stats agree*"]),
    "stats-write-past-host": (
        "the C++ layer copies a driver's whole stats struct over a smaller host struct",
        "sdk/include/chihaya/driver.hpp",
        [("    std::memcpy(out, &mine, std::min<size_t>(host_size, sizeof mine));",
          "    std::memcpy(out, &mine, sizeof mine);")],
        ["memory"],
        [os.path.join(BUILD, "chihaya-conformance"), "--plugin", os.path.join(BUILD, "plugins", "chihaya_memory.so"),
         "--driver", "memory", "--set", "shards=16", "-tc=stats write only*"]),
    "stats-miss-snapshot": (
        "swarms loaded from a snapshot are not counted in the memory driver's stats",
        "plugins/memory/snapshot.cpp",
        [("            shard.tally.move({}, swarm->family_counts(), totals_);\n", "")],
        ["memory_snapshot_test"],
        unit("memory_snapshot_test", "a snapshot restores every swarm*")),
    "walk-when-stats-fail": (
        "/metrics falls back to the walk when stats cannot answer: chihaya_peers loses its family label",
        "host/metrics/host_collectors.cpp",
        [("            failures(state->stats_failures.fetch_add(1) + 1);\n            return;\n",
          "            failures(state->stats_failures.fetch_add(1) + 1);\n")],
        ["metrics_test"],
        unit("metrics_test", "swarm gauges*")),
    "optional-stats-unchecked": (
        "an optional driver method with the wrong signature compiles (and is silently left out)",
        "sdk/include/chihaya/driver.hpp",
        [("        static_assert(!named || callable,", "        static_assert(true || !named || callable,")],
        [],
        [PYTHON, os.path.join(SOURCE, "tests", "sdk", "optional_methods.py"), "--compiler", "c++",
         "--include", os.path.join(SOURCE, "sdk", "include")]),
    "metrics-ignore-stats": (
        "/metrics never asks the cache driver's stats: no family split",
        "host/metrics/host_collectors.cpp",
        [("    const bool has_stats = v->stats != nullptr;", "    const bool has_stats = false;")],
        ["chihaya"],
        integration("test_ops.py", "Metrics.test_swarm_gauges_by_family_build_info_and_plugins")),
    "read-past-older-table": (
        "the handshake copies a whole host-sized table from a plugin of an older minor",
        "host/plugin/handshake.cpp",
        [("    std::memcpy(&out, from, std::min<size_t>(size, sizeof(T)));", "    std::memcpy(&out, from, sizeof(T));")],
        ["plugin_loader_test"],
        unit("plugin_loader_test", "a plugin of an older minor has no member it did not have*")),
    "readyz-ignores-storage-health": (
        "/readyz never asks the storage driver's health: up while PostgreSQL is down",
        "host/health/readiness.cpp",
        [("    if (ready) ready = storage_healthy(reason);\n", "")],
        ["chihaya"],
        integration("test_private.py", "Readiness")),
    "pg-health-always-ok": (
        "the postgres driver's health is always OK",
        "plugins/postgres/registry_sync.cpp",
        [("    if (reachable_) return CHIHAYA_OK;", "    return CHIHAYA_OK;")],
        ["postgres"],
        integration("test_private.py", "Readiness")),
    "pg-health-latches": (
        "the postgres driver's health never recovers after a lost connection",
        "plugins/postgres/registry_sync.cpp",
        [("            poll_changes();  // after a reconnect: everything committed meanwhile\n            record_contact(true);\n",
          "            poll_changes();  // after a reconnect: everything committed meanwhile\n")],
        ["postgres"],
        integration("test_private.py", "Readiness")),
    "reload-ignores-connect-rate": (
        "SIGHUP does not reach the UDP connect limiter",
        "host/frontend/udp/worker.cpp",
        [("    impl_->connects.configure(config.connect_rate, config.connect_burst);", "    (void)config;")],
        ["chihaya"],
        integration("test_ops.py", "Reload.test_reload_applies_connect_rate_and_per_address_cap")),
    "limiter-ignores-configure": (
        "the UDP connect limiter keeps the rate it was built with",
        "host/frontend/udp/connect_limiter.cpp",
        [("    per_second_ = per_second;\n    burst_ = burst < 1 ? 1 : burst;\n", "    (void)per_second;\n    (void)burst;\n")],
        ["connect_limiter_test"],
        unit("connect_limiter_test", "configure (SIGHUP)*")),
    "reload-ignores-per-address": (
        "SIGHUP does not reach the shared per-address HTTP connection count",
        "host/main.cpp",
        [("        http_limits->set_per_address(next.http.max_connections_per_address);  // shared, locked\n", "")],
        ["chihaya"],
        integration("test_ops.py", "Reload.test_reload_applies_connect_rate_and_per_address_cap")),
    "reload-silent-on-process": (
        "a changed [process] user is neither applied nor reported by SIGHUP",
        "host/reload/reloader.cpp",
        [('    check(a.process.user != b.process.user, "process.user");\n', "")],
        ["reload_test"],
        unit("reload_test", "*[process] is restart-only*")),
    "purge-keeps-state": (
        "dpkg --purge leaves /var/lib/chihaya behind",
        "etc/debian/postrm",
        [("    rm -rf /var/lib/chihaya\n", "")],
        [],
        integration("test_packaging.py", "DpkgInstall")),
    "deadline-never-armed-udp": (
        "the UDP worker never arms the per-call deadline: a call the driver keeps is never answered",
        "host/frontend/udp/worker.cpp",
        [("    ++in_flight;\n    hold_loop();\n    watch(slot);\n", "    ++in_flight;\n    hold_loop();\n")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_udp_call_never_done_is_answered_unavailable_and_others_are_served")),
    "deadline-never-armed-http": (
        "an HTTP session never arms the per-call deadline: a call the driver keeps is never answered",
        "host/frontend/http/session.cpp",
        [("    if (state_ != State::Calling) return;\n    awaiting_ = call;",
          "    if (true) return;\n    awaiting_ = call;")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_http_call_never_done_is_answered_unavailable_and_others_are_served")),
    "destroy-completions-dropped": (
        "completions a driver sends from its destroy are never run: their calls are reported as leaked",
        "host/main.cpp",
        [("        w->io.restart();\n        w->io.poll();\n", "")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_calls_the_driver_completes_in_destroy_are_freed_not_leaked")),
    "deadline-not-counted": (
        "a call answered at its deadline is not counted in chihaya_limit_hits_total",
        "host/tracker/tracker.cpp",
        [("    metrics::current().limit(metrics::Limit::DriverTimeout);\n", "")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_http_call_never_done_is_answered_unavailable_and_others_are_served")),
    "late-done-answers-udp": (
        "a UDP call answered at its deadline is answered again when the late done comes",
        "host/frontend/udp/worker.cpp",
        [("    if (slot.expired) {\n        // Answered at its deadline", "    if (false) {\n        // Answered at its deadline")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_late_done_is_logged_and_answers_nothing")),
    "late-done-not-logged": (
        "a done that comes after the deadline is ignored silently",
        "host/tracker/call_guard.cpp",
        [("        if (late) log->came_late(text());", "        if (late) (void)text;")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_late_done_is_logged_and_answers_nothing")),
    "stray-done-taken": (
        "a done's generation is not checked: a stray second done answers the request that reused the call",
        "host/tracker/call_guard.cpp",
        [("        if (tag_of(seen) != tag) {", "        if (false) {")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_stray_second_done_does_not_answer_the_request_that_reused_the_call")),
    "http-scrape-new-generation": (
        "an HTTP connection's scrape call is reset wholesale, restarting its generation at each scrape",
        "host/frontend/http/session.cpp",
        [("    scrape_call_.failure = nullptr;\n    scrape_call_.entries", "    scrape_call_ = ScrapeCall{};\n    scrape_call_.entries")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_stray_second_done_does_not_answer_the_request_that_reused_the_call")),
    "stray-done-taken-unit": (
        "a done's generation is not checked (seen by the guard's own test)",
        "host/tracker/call_guard.cpp",
        [("        if (tag_of(seen) != tag) {", "        if (false) {")],
        ["call_guard_test"],
        unit("call_guard_test", "a stray done of an earlier request leaves the newer request of that memory due")),
    "stray-done-taken-tracker": (
        "a done's generation is not checked (seen through the tracker with a scripted driver)",
        "host/tracker/call_guard.cpp",
        [("        if (tag_of(seen) != tag) {", "        if (false) {")],
        ["tracker_test"],
        unit("tracker_test", "a stray done of the previous request*")),
    "expire-after-done": (
        "the tracker expires a call whose done already came, overwriting its answer",
        "host/tracker/tracker.cpp",
        [("bool Tracker::expire(AnnounceCall& call) const {\n    if (!call.guard.expire(now_ms())) return false;",
          "bool Tracker::expire(AnnounceCall& call) const {\n    call.guard.expire(now_ms());")],
        ["tracker_test"],
        unit("tracker_test", "expire after the done came changes nothing")),
    "expire-not-atomic": (
        "the deadline expires a call with a plain store: it and the driver's done can both win",
        "host/tracker/call_guard.cpp",
        [("    return w.compare_exchange_strong(seen, (seen & ~kPhaseMask) | kExpired, std::memory_order_acq_rel,\n"
          "                                     std::memory_order_acquire);",
          "    std::this_thread::yield();\n    w.store((seen & ~kPhaseMask) | kExpired);\n    return true;"),
         ("#include <string>\n", "#include <string>\n#include <thread>\n")],
        ["call_guard_test"],
        unit("call_guard_test", "the deadline racing a driver*")),
    "tracker-settings-not-reloaded": (
        "SIGHUP leaves the running [tracker] settings in force (here: driver_timeout_ms)",
        "host/reload/reloader.cpp",
        [("    tracker_.reconfigure(next.tracker, next.limits);", "    tracker_.reconfigure(running_.tracker, next.limits);")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_reload_moves_the_deadline_of_later_calls")),
    "pending-newest-first": (
        "the UDP deadline list takes the newest call first (a call started later, under a timeout a reload shortened, expires before older ones)",
        "host/frontend/udp/pending_calls.cpp",
        [("    link.prev = tail_;\n    link.next = kNone;\n    link.listed = true;\n"
          "    if (tail_ == kNone) head_ = index;\n    else links_[tail_].next = index;\n    tail_ = index;",
          "    link.prev = kNone;\n    link.next = head_;\n    link.listed = true;\n"
          "    if (head_ == kNone) tail_ = index;\n    else links_[head_].prev = index;\n    head_ = index;")],
        ["pending_calls_test"],
        unit("pending_calls_test", "a shorter timeout after a reload waits for the calls before it")),
    "pending-due-late": (
        "a UDP call is expired only after its deadline has passed, not at it",
        "host/frontend/udp/pending_calls.hpp",
        [("links_[head_].deadline_ms <= now_ms", "links_[head_].deadline_ms < now_ms")],
        ["pending_calls_test"],
        unit("pending_calls_test", "calls are taken at their deadline*")),
    "timeout-own-window": (
        "driver timeouts are rate-limited apart from failures (a timeout storm doubles the lines)",
        "host/tracker/driver_errors.cpp",
        [("    if (!failures_.due(now, window_ms_, before)) return std::nullopt;\n    return driver_ + \": \" + call + \" had no done",
          "    if (!late_.due(now, window_ms_, before)) return std::nullopt;\n    return driver_ + \": \" + call + \" had no done")],
        ["driver_errors_test"],
        unit("driver_errors_test", "a timeout shares the failures*")),
    "late-done-answers": (
        "the tracker maps a late done's result into the response the client was already answered with",
        "host/tracker/tracker.cpp",
        [("    if (finish == CallGuard::Finish::Late) {\n        // The client was answered",
          "    if (false) {\n        // The client was answered")],
        ["tracker_test"],
        unit("tracker_test", "a call past its deadline*")),
    "deadline-range": (
        "[tracker] driver_timeout_ms accepts values below 10 ms",
        "host/config/load.cpp",
        [('r.u32("driver_timeout_ms", c.driver_timeout_ms, 10, 600000);', 'r.u32("driver_timeout_ms", c.driver_timeout_ms, 0, 600000);')],
        ["config_test"],
        unit("config_test", "errors name the file*")),
    "expired-holds-stop": (
        "a UDP call answered at its deadline still holds the worker's loop: a stop waits the grace period",
        "host/frontend/udp/worker.cpp",
        [("    if (in_flight > expired) {", "    if (in_flight > 0) {")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_stop_with_calls_the_driver_never_completes")),
    "no-redis-reconnect": (
        "the redis driver never reconnects once Redis dies: announces fail until the tracker restarts",
        "plugins/redis/connection.cpp",
        [("        if (ec == asio::error::operation_aborted || closing_) return;\n        connect();\n",
          "        if (ec == asio::error::operation_aborted || closing_) return;\n")],
        ["redis"],
        [PYTHON, os.path.join(SOURCE, "bench", "chaos.py"), "--cycles", "5", "--seed", "11",
         "--duration", "60"]),
    "peers-freed-at-deadline": (
        "an HTTP session frees its peers buffer at the deadline, while the driver may still write it",
        "host/frontend/http/session.cpp",
        [("    answered_at_deadline_ = true;\n    kept_for_driver(this);  // freed by the late done, if one comes\n    work_.reset();",
          "    answered_at_deadline_ = true;\n    work_.reset();\n    std::vector<uint8_t>().swap(peers_);")],
        ["chihaya"],
        integration("test_deadline.py", "SlowDriver.test_memory_the_driver_writes_after_the_deadline_is_valid_under_valgrind")),
    "limits-not-sent": (
        "the host never hands [limits] max_torrents to the cache: a random info_hash flood fills memory",
        "host/tracker/tracker.cpp",
        [("    r.max_torrents = limits.max_torrents;", "    r.max_torrents = 0;")],
        ["chihaya"],
        integration("test_limits.py", "TorrentFlood")),
    "no-torrent-budget": (
        "the memory driver ignores max_torrents: every new info_hash creates a swarm",
        "plugins/memory/memory_cache.cpp",
        [("        if (budgets.max_torrents != 0 && torrent_total() >= budgets.max_torrents)",
          "        if (false)")],
        ["memory_limits_test"],
        unit("memory_limits_test", "max_torrents:*")),
    "no-peer-budget": (
        "the memory driver ignores max_peers",
        "plugins/memory/swarm.cpp",
        [("            admission.peer_total->load(std::memory_order_relaxed) >= admission.max_peers) {",
          "            false) {")],
        ["memory_limits_test"],
        unit("memory_limits_test", "max_peers:*")),
    "no-address-cap": (
        "the memory driver ignores max_peers_per_address: one address holds a peer per port",
        "plugins/memory/swarm.cpp",
        [("        if (admission.max_per_address != 0 &&", "        if (false &&")],
        ["memory"],
        integration("test_limits.py", "PortFlood")),
    "address-count-kept-on-stop": (
        "a stopped peer stays counted against its address",
        "plugins/memory/swarm.cpp",
        [("            admission.tally.changed(peers, was_indexed, incoming.endpoint, false);\n", "")],
        ["memory_limits_test"],
        unit("memory_limits_test", "*a stopped peer gives its address's place back*")),
    "address-count-kept-on-expiry": (
        "an expired peer stays counted against its address",
        "plugins/memory/swarm.hpp",
        [("            if (was_indexed) tally.left<Peer>(endpoint);\n", "            (void)endpoint;\n")],
        ["memory_limits_test"],
        unit("memory_limits_test", "*expired peers give their places back*")),
    "snapshot-not-counted": (
        "peers loaded from a snapshot are not counted per address",
        "plugins/memory/snapshot.cpp",
        [("has_counters ? &c : nullptr, tally))", "has_counters ? &c : nullptr))")],
        ["memory_limits_test"],
        unit("memory_limits_test", "a snapshot reload*")),
    "no-new-swarm-rate": (
        "the host never flags NO_NEW_SWARM: one address creates swarms at any rate",
        "host/tracker/tracker.cpp",
        [("    if (rate_new_swarms && !new_swarms_->may_create(client_of(in), now, limits.new_torrents_per_address))",
          "    if (false)")],
        ["chihaya"],
        integration("test_limits.py", "NewSwarmRate")),
    "new-swarm-not-charged": (
        "a created swarm costs its client no token",
        "host/tracker/tracker.cpp",
        [("        call->new_swarms->charge(client_of(call->request), now_ms(), call->new_swarm_rate);",
          "        (void)call->new_swarm_rate;")],
        ["tracker_test"],
        unit("tracker_test", "a client that created new_torrents_per_address swarms*")),
    "limits-not-reloaded": (
        "SIGHUP keeps the [limits] the tracker started with",
        "host/reload/reloader.cpp",
        [("    tracker_.reconfigure(next.tracker, next.limits);", "    tracker_.reconfigure(next.tracker, tracker_.limits());")],
        ["chihaya"],
        integration("test_limits.py", "Reload")),
    "limits-range": (
        "--check-config accepts max_peers below max_torrents",
        "host/config/load.cpp",
        [("        if (c.max_peers != 0 && c.max_torrents > c.max_peers) {", "        if (false) {")],
        ["config_test"],
        unit("config_test", "[limits]*")),
    "swarm-rate-stale-now": (
        "a clock read a little before a bucket's stamp wraps the elapsed time: the bucket refills whole",
        "host/tracker/new_swarm_rate.cpp",
        [("    if (stale(state, now_ms)) return deficit;  // an earlier `now` refills nothing\n", "")],
        ["new_swarm_rate_test"],
        unit("new_swarm_rate_test", "a stale now*")),
    "address-counts-per-shard": (
        "the per-address counters are crowded like a per-shard slice (4,096): a big swarm meets false refusals",
        "plugins/memory/memory_cache.cpp",
        [("    address_mask_ = counters - 1;", "    address_mask_ = (counters - 1) & 4095;")],
        ["memory_limits_test"],
        unit("memory_limits_test", "*a swarm of 300*")),
    "address-v6-whole": (
        "the per-address cap counts an IPv6 address whole: one /64 holds a peer per address",
        "plugins/memory/address_counts.hpp",
        [("        std::memcpy(&w, endpoint, addr_bytes);\n",
          "        std::memcpy(&w, endpoint, addr_bytes);\n"
          "        if constexpr (Peer::endpoint_bytes == 18) { uint64_t iid; std::memcpy(&iid, endpoint + 8, 8); w ^= mix64(iid); }\n")],
        ["memory_limits_test"],
        unit("memory_limits_test", "*an IPv6 address is counted per /64*")),
    "address-count-saturates": (
        "a per-address counter that reached 0xffff sticks: the address stays refused after its peers left",
        "plugins/memory/address_counts.hpp",
        [("        if (counts) counter<Peer>(endpoint).fetch_sub(1, std::memory_order_relaxed);",
          "        if (counts && counter<Peer>(endpoint).load(std::memory_order_relaxed) < 0xffff) "
          "counter<Peer>(endpoint).fetch_sub(1, std::memory_order_relaxed);")],
        ["memory_limits_test"],
        unit("memory_limits_test", "address counters never stick*")),
    "new-swarm-past-max-peers-allocated": (
        "a new swarm refused by max_peers is made (a map node) and erased again",
        "plugins/memory/memory_cache.cpp",
        [("        if (budgets.max_peers != 0 && peer_total() >= budgets.max_peers)\n"
          "            return refuse(result, \"memory: max_peers reached\", NewSwarmRefusal::MaxPeers);\n", "")],
        ["memory_limits_test"],
        unit("memory_limits_test", "max_peers: a new swarm refused at the budget*")),
    "scrape-expiry-keeps-count": (
        "a peer expired by a scrape stays counted against its address",
        "plugins/memory/memory_cache.cpp",
        [("                    swarm->expire(now_s, kExpireSlice, tally_of(seed));",
          "                    swarm->expire(now_s, kExpireSlice);")],
        ["memory_limits_test"],
        unit("memory_limits_test", "*a peer expired by a scrape*")),
    "new-swarm-rate-in-private": (
        "private mode applies the new-swarm rate: a seedbox re-announcing its registered torrents is refused",
        "host/tracker/tracker.cpp",
        [("    const bool rate_new_swarms = !private_.policy;", "    const bool rate_new_swarms = true;")],
        ["tracker_test"],
        unit("tracker_test", "private mode has no new-swarm rate*")),
    "ip-param-bypasses-cap": (
        "[http] allow_ip_param is accepted with max_peers_per_address: ip= names a new address per peer",
        "host/config/load.cpp",
        [("        if (c.allow_ip_param && config.limits.max_peers_per_address != 0)", "        if (false)")],
        ["config_test"],
        unit("config_test", "[http] allow_ip_param*")),
    "limits-flag-ignored": (
        "a 2.3 cache driver that does not declare CHIHAYA_DRIVER_PROVIDES_LIMITS is taken to enforce [limits]",
        "host/main.cpp",
        [("    if ((cache.flags() & CHIHAYA_DRIVER_PROVIDES_LIMITS) == 0 &&", "    if (cache.abi_minor() < 3 &&")],
        ["chihaya"],
        integration("test_plugins.py", "DriverErrors.test_a_2_3_cache_that_does_not_declare_limits_is_warned_about")),
    # Issue 11's budgets on the redis driver (plugins/redis/scripts.hpp, redis_cache.cpp).
    "redis-no-torrent-budget": (
        "the redis announce script never refuses a new swarm at max_torrents",
        "plugins/redis/scripts.hpp",
        [("          if n + others_t >= maxt then return 3 end", "")],
        ["redis"],
        redis_limits("*flood of new swarms*")),
    "redis-no-address-cap": (
        "the redis announce script lets one address add any number of ports to a swarm",
        "plugins/redis/scripts.hpp",
        [("      if ae and ac >= ppa then refuse = 2 end", "")],
        ["redis"],
        redis_limits("*port flood*")),
    "redis-stop-keeps-budget": (
        "a stopped peer stays in the redis ledger's peer count: max_peers fills up for good",
        "plugins/redis/scripts.hpp",
        [("        if present then dp = dp - 1 end", "")],
        ["redis"],
        redis_limits("max_peers*")),
    "redis-no-prune": (
        "swarms Redis dropped by TTL are never given back to max_torrents",
        "plugins/redis/scripts.hpp",
        [("  local got = call('ZRANGEBYSCORE', L, '(0', lcut, 'WITHSCORES', 'LIMIT', 0, limit)",
          "  local got = {}")],
        ["redis"],
        redis_limits("budgets come back*")),
    "redis-trim-uncounted": (
        "expired peers trimmed from a swarm stay in the redis ledger's peer count",
        "plugins/redis/scripts.hpp",
        [("      local dp = -trimmed\n", "      local dp = 0\n")],
        ["redis"],
        redis_limits("budgets come back*")),
    "redis-ignores-no-new-swarm": (
        "the redis driver creates a swarm for an address that has used its new-swarm rate",
        "plugins/redis/scripts.hpp",
        [("    if created and no_new == 1 then", "    if false then")],
        ["redis"],
        redis_limits("created_swarm*")),
    "redis-created-swarm-unset": (
        "the redis driver never reports created_swarm",
        "plugins/redis/redis_cache.cpp",
        [("            result_.created_swarm = reply_uint(r[8]) ? 1 : 0;", "            (void)0;")],
        ["redis"],
        redis_limits("created_swarm*")),
    "redis-cluster-no-sum": (
        "on a Redis Cluster the tick never sums the per-slot ledgers: each slot has the whole budget",
        "plugins/redis/redis_cache.cpp",
        [("    if (!slot_torrents_ || !budgets_asked_.load(std::memory_order_relaxed)) return;",
          "    return;")],
        ["redis"],
        redis_limits("Cluster*", cluster=True)),
}


def test_env():
    env = dict(os.environ)
    env.update({
        "CHIHAYA_BIN": os.path.join(BUILD, "chihaya"),
        "CHIHAYA_PLUGINS_DIR": os.path.join(BUILD, "plugins"),
        "CHIHAYA_SOURCE_DIR": SOURCE,
        "CHIHAYA_TEST_PLUGIN_DIR": os.path.join(BUILD, "test-plugins"),
        "CHIHAYA_ABI20_PLUGIN_DIR": os.path.join(BUILD, "test-plugins-abi20"),
        "CHIHAYA_PROBE_PLUGIN_DIR": os.path.join(BUILD, "test-plugins-probe"),
        "CHIHAYA_BIND_PROBE": os.path.join(BUILD, "tests", "lib", "bind_probe.so"),
        "CHIHAYA_BUILD_DIR": BUILD,
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def build(targets):
    if not targets:
        return
    cmd = ["cmake", "--build", BUILD, "-j2"]
    for t in targets:
        cmd += ["--target", t]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise RuntimeError("build failed:\n" + p.stdout.decode("utf-8", "replace")[-3000:])


def check(name):
    what, path, edits, targets, command = MUTATIONS[name]
    full = os.path.join(SOURCE, path)
    with open(full) as f:
        original = f.read()
    mutated = original
    for old, new in edits:
        if mutated.count(old) != 1:
            return "STALE", "%r found %d times in %s" % (old[:60], mutated.count(old), path)
        mutated = mutated.replace(old, new)
    try:
        with open(full, "w") as f:
            f.write(mutated)
        build(targets)
        t0 = time.monotonic()
        try:
            p = subprocess.run(command, env=test_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=TEST_TIMEOUT_S)
            rc, out = p.returncode, p.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            rc, out = "timeout", ""
        took = time.monotonic() - t0
    finally:
        with open(full, "w") as f:
            f.write(original)
        build(targets)
    lines = [l for l in out.splitlines() if "Error" in l or "FAIL" in l or "skipped" in l]
    detail = "exit %s after %.1f s%s" % (rc, took, (": " + lines[-1].strip()[:160]) if lines else "")
    return ("MISSED" if rc == 0 else "CAUGHT"), detail


def main(argv):
    names = list(MUTATIONS) if argv == ["--all"] else argv
    if not names:
        for name, (what, path, *_rest) in MUTATIONS.items():
            print("%-40s %s (%s)" % (name, what, path))
        return 0
    unknown = [n for n in names if n not in MUTATIONS]
    if unknown:
        print("unknown mutation(s): %s; run without arguments for the list" % ", ".join(unknown))
        return 2
    bad = 0
    for name in names:
        verdict, detail = check(name)
        bad += verdict != "CAUGHT"
        print("%-7s %-40s %s" % (verdict, name, detail), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
