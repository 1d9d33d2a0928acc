// One worker's BEP 15 frontend: its sockets, batched recvmmsg/sendmmsg, and calls in flight.
//
// Threading: everything here runs on the one thread that runs the worker's io_context, except
// the driver-thread half of a completion, which only posts back. Hence no locks.
//
// Lifetime of calls in flight (the contract with main.cpp):
//   A call that did not complete inline keeps the io_context's work count up (`work` below) until
//   its posted completion has run here, so main's order — stop() every frontend, let run() return
//   by itself (never io_context::stop()), join, destroy the drivers, then the frontends — answers
//   every client it can. After stop() the late completions just free their slot and send nothing.
//   The slot is only ever freed by its completion: while a driver holds it, nothing reuses it.
// The per-call deadline ([tracker] driver_timeout_ms):
//   A call that did not complete inline is listed in `pending` (oldest first) and one timer per
//   worker, armed only while that list is not empty, answers each call still there at its
//   deadline with an "unavailable" error packet (Tracker::expire). The slot stays the driver's:
//   it is not freed, nor its reply buffer written (the driver may still write peers into it),
//   until the late completion comes back here, which then sends nothing. An expired call no
//   longer holds `work`: its client has its answer, so a driver that never completes delays a
//   shutdown by at most the deadline. Should the frontend be destroyed while a driver still holds
//   slots (past the grace period, a done that never came), the destructor logs and leaks its
//   state rather than free memory a driver may still write. A driver that never completes uses up
//   the worker's kSlots slots, after which datagrams are dropped (counted): the bound on what it
//   can pin.
#include "frontend/udp/udp_frontend.hpp"

#include "net/address.hpp"
#include "frontend/kept_for_driver.hpp"
#include "frontend/udp/codec.hpp"
#include "frontend/udp/connect_limiter.hpp"
#include "frontend/udp/pending_calls.hpp"
#include "log/access_log.hpp"
#include "log/log.hpp"
#include "metrics/worker_metrics.hpp"
#include "tracker/passkey.hpp"
#include "tracker/tracker.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace chihaya {
namespace {

namespace asio = boost::asio;
using Udp = asio::ip::udp;

constexpr unsigned kBatch = 32;            // datagrams per recvmmsg / sendmmsg
constexpr unsigned kBatchesPerWakeup = 8;  // then re-arm, so other handlers get their turn
constexpr size_t kReceiveCap = 2048;       // above the largest request read (scrape: 1496)
// One Ethernet frame for either family: 1500 - 40 (IPv6 header) - 8 (UDP header). Holds 238
// IPv4 or 79 IPv6 peers, and the largest scrape reply (8 + 74 * 12 = 896).
constexpr size_t kReplyCap = 1452;
constexpr size_t kImmediateCap = 64;  // connect replies and our own short error messages
// Calls that may be in flight at once per worker. The memory driver completes inline, so it uses
// at most one batch's worth; a networked driver holds a slot for one round trip (100k req/s at
// 1 ms is 100). When all are taken the datagram is dropped: the store is already behind, and
// a BEP 15 client retries on its own, whereas queueing would only add latency and memory.
constexpr uint32_t kSlots = 512;

// Connection-id windows count Unix time, not uptime: hosts that share connection_id_secret
// behind one address must agree on the window, and NTP keeps their wall clocks within a second
// where their uptimes differ by days. A clock stepped backwards only makes the ids issued in the
// last window fail early; clients connect again.
uint64_t unix_s() {
    using namespace std::chrono;
    return uint64_t(duration_cast<seconds>(system_clock::now().time_since_epoch()).count());
}

// The sender as the tracker sees it; nullopt for a family we do not serve.
std::optional<Endpoint> endpoint_of(const sockaddr_storage& from) {
    if (from.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(from);
        asio::ip::address_v4::bytes_type bytes;
        std::memcpy(bytes.data(), &a.sin_addr, 4);
        return make_endpoint(asio::ip::address_v4(bytes), ntohs(a.sin_port));
    }
    if (from.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(from);
        asio::ip::address_v6::bytes_type bytes;
        std::memcpy(bytes.data(), &a.sin6_addr, 16);
        return make_endpoint(asio::ip::address_v6(bytes, a.sin6_scope_id), ntohs(a.sin6_port));
    }
    return std::nullopt;
}

metrics::Result result_of(udp::Fault fault) {
    return fault == udp::Fault::BadConnectionId ? metrics::Result::BadConnectionId : metrics::Result::Malformed;
}

metrics::Action action_of(uint32_t action) {
    switch (udp::Action(action)) {
        case udp::Action::Connect: return metrics::Action::Connect;
        case udp::Action::Announce: return metrics::Action::Announce;
        case udp::Action::Scrape: return metrics::Action::Scrape;
        default: return metrics::Action::Other;
    }
}

}  // namespace

struct UdpFrontend::Impl {
    // State of one announce or scrape from receipt until its reply is sent.
    struct Slot {
        enum class Kind : uint8_t { Announce, Scrape } kind = Kind::Announce;
        Impl* impl = nullptr;  // written once; read by driver threads to post back
        uint32_t index = 0;
        uint32_t socket = 0;  // which of the worker's sockets answers
        uint32_t transaction_id = 0;
        uint32_t request_size = 0;  // error replies never exceed it
        bool inline_done = false;   // completed inside the tracker call, on this thread
        bool expired = false;       // answered at its deadline; the driver still holds the slot
        uint64_t received_ns = 0;   // the receive batch's time (metrics)
        sockaddr_storage peer{};
        socklen_t peer_len = 0;
        size_t reply_size = 0;
        AnnounceCall announce;
        ScrapeCall scrape;
        chihaya_scrape_entry entries[udp::max_scrape_hashes]{};
        alignas(8) uint8_t reply[kReplyCap]{};
    };
    // Over-aligned (the calls carry their generation in ctx, call_guard.hpp): aligned_alloc.
    static_assert(std::is_trivially_destructible_v<Slot> && sizeof(Slot) % alignof(Slot) == 0);

    struct Socket {
        Udp::socket socket;
        std::string name;  // as configured, for messages
    };

    Impl(asio::io_context& io, const Tracker& tracker, const ConnectionIdKey& key, const UdpConfig& config)
        : io(io), tracker(tracker), key(key), connects(config.connect_rate, config.connect_burst),
          slots(static_cast<Slot*>(std::aligned_alloc(alignof(Slot), sizeof(Slot) * kSlots))),
          pending(kSlots), deadline_timer(io) {
        if (!slots) throw std::bad_alloc();
        free_slots.reserve(kSlots);
        for (uint32_t i = kSlots; i-- > 0;) free_slots.push_back(i);
        for (unsigned i = 0; i < kBatch; ++i) {
            rx_iov[i] = {rx_buffers[i].data(), kReceiveCap};
            tx_msgs[i].msg_hdr.msg_iov = &tx_iov[i];
            tx_msgs[i].msg_hdr.msg_iovlen = 1;
        }
    }

    void open(const std::string& text, uint32_t receive_buffer);
    void wait(uint32_t s);
    void drain(uint32_t s);
    void handle(uint32_t s, unsigned i, size_t size);
    void start_announce(uint32_t s, unsigned i, const udp::RequestHeader& header,
                        udp::Bytes packet, const Endpoint& source);
    void start_scrape(uint32_t s, unsigned i, const udp::RequestHeader& header,
                      udp::Bytes packet, const Endpoint& source);
    Slot* acquire(uint32_t s, unsigned i, uint32_t transaction_id, size_t size);
    void after_call(Slot& slot);
    void watch(Slot& slot);
    void arm_deadline_timer();
    void on_deadline();
    void expire(Slot& slot);
    void hold_loop();
    void encode_reply(Slot& slot);
    void finish_async(Slot& slot);
    void reply_immediate(unsigned i, size_t size);
    void reply_error(unsigned i, uint32_t transaction_id, udp::Fault fault, size_t request_size,
                     uint32_t action);
    void count(const Slot& slot, uint64_t sent_ns);
    void queue_reply(const uint8_t* data, size_t size, void* name, socklen_t name_len);
    void flush(uint32_t s);
    void release(Slot& slot) { free_slots.push_back(slot.index); }

    static void announce_done(AnnounceCall* call, bool on_caller_thread);
    static void scrape_done(ScrapeCall* call, bool on_caller_thread);

    asio::io_context& io;
    const Tracker& tracker;
    const ConnectionIdKey& key;
    udp::ConnectLimiter connects;  // per-address connect rate (unauthenticated: the flood vector)
    std::vector<Socket> sockets;  // filled in the constructor, never resized afterwards
    bool stopped = false;
    uint64_t now_s = 0;  // read once per batch: ids only need two-minute resolution
    uint64_t now_ms = 0;  // monotonic, once per batch: the connect limiter's clock
    uint64_t batch_ns = 0;  // when the batch was received: a request's latency starts there

    // Receive batch: datagram i lands in rx_buffers[i], its sender in rx_addr[i].
    std::array<std::array<uint8_t, kReceiveCap>, kBatch> rx_buffers{};
    std::array<sockaddr_storage, kBatch> rx_addr{};
    std::array<iovec, kBatch> rx_iov{};
    std::array<mmsghdr, kBatch> rx_msgs{};

    // Send batch: at most one reply per received datagram.
    std::array<std::array<uint8_t, kImmediateCap>, kBatch> immediate{};
    std::array<iovec, kBatch> tx_iov{};
    std::array<mmsghdr, kBatch> tx_msgs{};
    unsigned tx_count = 0;
    std::array<uint32_t, kBatch> batch_slots{};  // completed inline; freed once sent
    unsigned batch_slot_count = 0;

    // kSlots slots of ~5 KB are reserved (2.6 MB), but a slot is constructed, and its pages
    // touched, only when first acquired (acquire()): the memory driver completes inline and never
    // uses more than one batch's worth, so an open tracker keeps ~2.4 MB per worker out of its
    // RSS. Slots are trivially destructible, so free() is their whole destruction.
    struct FreeSlots { void operator()(Slot* p) const { std::free(p); } };
    std::unique_ptr<Slot, FreeSlots> slots;
    uint32_t slots_constructed = 0;  // slots [0, slots_constructed) exist
    std::vector<uint32_t> free_slots;  // a stack: the most recently used slot is warm in cache
    uint32_t in_flight = 0;            // calls that went asynchronous and have not come back
    uint32_t expired = 0;              // of those, the ones answered at their deadline
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;  // see the top
    udp::PendingCalls pending;         // in flight and not expired, oldest first
    asio::steady_timer deadline_timer;  // waits for pending's oldest deadline
    bool deadline_armed = false;
    bool warned_receive = false;
};

void UdpFrontend::Impl::open(const std::string& text, uint32_t receive_buffer) {
    auto listen = parse_listen_address(text);
    if (!listen) throw std::runtime_error("udp: invalid listen address \"" + text + "\"");
    Udp::endpoint endpoint(listen->address, listen->port);
    Udp::socket socket(io);
    boost::system::error_code ec;
    auto fail = [&](const char* what) {
        throw std::runtime_error("udp: " + std::string(what) + " " + text + ": " + ec.message());
    };
    if (socket.open(endpoint.protocol(), ec)) fail("cannot open a socket for");
    // V6ONLY keeps IPv4 on its own socket, so a socket's family decides the reply format.
    if (endpoint.address().is_v6() && socket.set_option(asio::ip::v6_only(true), ec))
        fail("cannot set IPV6_V6ONLY on");
    // SO_REUSEPORT lets every worker bind the same address; the kernel spreads senders over them.
    int one = 1;
    if (::setsockopt(socket.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        ec.assign(errno, boost::system::system_category());
        fail("cannot set SO_REUSEPORT on");
    }
    // The kernel silently caps this at net.core.rmem_max; only a refusal is worth a word. 0 means
    // the kernel's default, which is what leaving it alone gives (setting 0 would give its minimum).
    if (receive_buffer != 0 &&
        socket.set_option(Udp::socket::receive_buffer_size(int(std::min<uint32_t>(receive_buffer, INT32_MAX))), ec))
        log::warning("udp", "cannot set SO_RCVBUF on " + text + ": " + ec.message());
    if (socket.bind(endpoint, ec)) fail("cannot bind");
    if (socket.non_blocking(true, ec)) fail("cannot make non-blocking");
    log::debug("udp", "listening on " + text);
    sockets.push_back(Socket{std::move(socket), text});
}

void UdpFrontend::Impl::wait(uint32_t s) {
    // ec is tested first: after stop() or destruction the handler may run (operation_aborted)
    // when `this` must no longer be touched. Re-arming after a partial drain is safe: Asio's
    // epoll reactor re-registers the descriptor (EPOLL_CTL_MOD), which reports data still queued.
    sockets[s].socket.async_wait(Udp::socket::wait_read,
                                 [this, s](const boost::system::error_code& ec) {
                                     if (ec || stopped) return;
                                     drain(s);
                                 });
}

void UdpFrontend::Impl::drain(uint32_t s) {
    const int fd = sockets[s].socket.native_handle();
    for (unsigned round = 0; round < kBatchesPerWakeup; ++round) {
        for (unsigned i = 0; i < kBatch; ++i) {
            msghdr& h = rx_msgs[i].msg_hdr;
            h = msghdr{};
            h.msg_name = &rx_addr[i];
            h.msg_namelen = sizeof rx_addr[i];
            h.msg_iov = &rx_iov[i];
            h.msg_iovlen = 1;
        }
        int n = ::recvmmsg(fd, rx_msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && !warned_receive) {
                warned_receive = true;  // once per worker: never a line per packet
                log::warning("udp", "recvmmsg on " + sockets[s].name + ": " + std::strerror(errno));
            }
            break;
        }
        now_s = unix_s();
        now_ms = chihaya::now_ms();
        batch_ns = metrics::now_ns();
        for (int i = 0; i < n; ++i) handle(s, unsigned(i), rx_msgs[i].msg_len);
        flush(s);
        if (unsigned(n) < kBatch) break;
    }
    if (!stopped) wait(s);
}

void UdpFrontend::Impl::handle(uint32_t s, unsigned i, size_t size) {
    udp::Bytes packet(rx_buffers[i].data(), size);
    auto header = udp::parse_header(packet);
    if (!header) return;  // no transaction id: nothing we could answer
    auto source = endpoint_of(rx_addr[i]);
    if (!source) return;
    switch (udp::Action(header->action)) {
    case udp::Action::Connect:
        if (auto fault = udp::check_connect(*header); fault != udp::Fault::None)
            return reply_error(i, header->transaction_id, fault, size, header->action);
        if (!connects.admit(*source, now_ms)) {
            // Dropped, not answered: an error packet would be traffic for a flood to reflect.
            metrics::current().limit(metrics::Limit::UdpConnects);
            return;
        }
        metrics::current().request(metrics::Protocol::Udp, metrics::Action::Connect, metrics::Result::Ok);
        return reply_immediate(i, udp::encode_connect(immediate[tx_count], header->transaction_id,
                                                      key.issue(*source, now_s)));
    case udp::Action::Announce: return start_announce(s, i, *header, packet, *source);
    case udp::Action::Scrape: return start_scrape(s, i, *header, packet, *source);
    case udp::Action::Error:
        // Never answer an error: a spoofed packet would otherwise start two trackers (or a
        // tracker and any UDP service that echoes) answering each other's errors for ever.
        return;
    default:
        // Only an authenticated sender learns that its action is unknown. Another tracker's
        // replies (connect, announce, scrape) read as requests land here with a random action
        // and no valid id, and are dropped, which ends any reflection loop after one hop.
        if (key.valid(header->connection_id, *source, now_s))
            reply_error(i, header->transaction_id, udp::Fault::UnknownAction, size, header->action);
        return;
    }
}

void UdpFrontend::Impl::start_announce(uint32_t s, unsigned i, const udp::RequestHeader& header,
                                       udp::Bytes packet, const Endpoint& source) {
    if (!key.valid(header.connection_id, source, now_s))
        return reply_error(i, header.transaction_id, udp::Fault::BadConnectionId, packet.size(), header.action);
    if (packet.size() < udp::announce_request_size)
        return reply_error(i, header.transaction_id, udp::Fault::ShortAnnounce, packet.size(), header.action);
    Slot* slot = acquire(s, i, header.transaction_id, packet.size());
    if (!slot) return;
    slot->kind = Slot::Kind::Announce;
    AnnounceCall& call = slot->announce;
    call.request = AnnounceRequest{};
    udp::parse_announce(packet, source, call.request);
    // Private trackers: udp://host:port/<passkey>/announce arrives as BEP 41 URL data. The view
    // lives on this frame, which outlasts the tracker's (synchronous) read of it.
    char url_data[256];
    std::string_view url = udp::announce_url_data(packet, url_data, sizeof url_data);
    call.request.passkey = passkey_from_path(url.substr(0, url.find('?')), "/announce");
    call.response = AnnounceResponse{};
    // The driver writes peers straight behind the reply header: no copy before sending.
    call.peers = slot->reply + udp::announce_reply_header_size;
    call.peers_capacity = udp::announce_peer_capacity(kReplyCap, source.family);
    call.complete = &Impl::announce_done;
    call.owner = slot;
    tracker.announce(call);
    after_call(*slot);
}

void UdpFrontend::Impl::start_scrape(uint32_t s, unsigned i, const udp::RequestHeader& header,
                                     udp::Bytes packet, const Endpoint& source) {
    if (!key.valid(header.connection_id, source, now_s))
        return reply_error(i, header.transaction_id, udp::Fault::BadConnectionId, packet.size(), header.action);
    udp::ScrapeHashes hashes;
    const uint32_t scrape_cap = std::min(tracker.config().max_scrape_torrents, udp::max_scrape_hashes);
    if (auto fault = udp::parse_scrape(packet, scrape_cap, hashes); fault != udp::Fault::None)
        return reply_error(i, header.transaction_id, fault, packet.size(), header.action);
    Slot* slot = acquire(s, i, header.transaction_id, packet.size());
    if (!slot) return;
    slot->kind = Slot::Kind::Scrape;
    for (uint32_t h = 0; h < hashes.count; ++h) {
        slot->entries[h] = chihaya_scrape_entry{};
        hashes.copy_to(h, slot->entries[h].info_hash);
    }
    ScrapeCall& call = slot->scrape;
    call.entries = slot->entries;
    call.count = hashes.count;
    call.failure = nullptr;
    call.complete = &Impl::scrape_done;
    call.owner = slot;
    tracker.scrape(call);
    after_call(*slot);
}

UdpFrontend::Impl::Slot* UdpFrontend::Impl::acquire(uint32_t s, unsigned i, uint32_t transaction_id, size_t size) {
    if (free_slots.empty()) {  // see kSlots for why dropping is right
        metrics::WorkerMetrics& m = metrics::current();
        m.limit(metrics::Limit::UdpSlots);
        // The action's low byte (big-endian u32 at offset 8): the header was parsed already.
        m.request(metrics::Protocol::Udp, action_of(rx_buffers[i][11]), metrics::Result::Dropped);
        return nullptr;
    }
    const uint32_t index = free_slots.back();
    free_slots.pop_back();
    // The stack starts as 0 at the top .. kSlots-1 at the bottom and only ever gets used slots
    // pushed back, so a slot never used before is always the lowest one not yet constructed;
    // the loop is nevertheless correct for any order.
    for (; slots_constructed <= index; ++slots_constructed) {
        Slot* fresh = new (slots.get() + slots_constructed) Slot{};
        fresh->impl = this;
        fresh->index = slots_constructed;
    }
    Slot& slot = slots.get()[index];
    slot.socket = s;
    slot.transaction_id = transaction_id;
    slot.request_size = uint32_t(size);
    slot.inline_done = false;
    slot.expired = false;
    slot.received_ns = batch_ns;
    slot.peer = rx_addr[i];
    slot.peer_len = rx_msgs[i].msg_hdr.msg_namelen;
    return &slot;
}

// After the tracker call returned: an inline completion joins this batch's sendmmsg; anything
// else holds the io_context's work and its deadline until finish_async runs (see the top).
void UdpFrontend::Impl::after_call(Slot& slot) {
    if (slot.inline_done) {
        encode_reply(slot);
        queue_reply(slot.reply, slot.reply_size, &slot.peer, slot.peer_len);
        batch_slots[batch_slot_count++] = slot.index;
        return;
    }
    ++in_flight;
    hold_loop();
    watch(slot);
}

// The io_context runs while a client still waits for an answer from a driver.
void UdpFrontend::Impl::hold_loop() {
    if (in_flight > expired) {
        if (!work) work.emplace(io.get_executor());
    } else {
        work.reset();
    }
}

// The deadline counts from the batch's arrival, in the tracker's settings of the moment.
void UdpFrontend::Impl::watch(Slot& slot) {
    pending.add(slot.index, now_ms + tracker.config().driver_timeout_ms);
    if (!deadline_armed) arm_deadline_timer();
}

// One wait for the oldest deadline. When that call came back meanwhile the timer fires early,
// finds nothing due and waits again: at most one wake-up per deadline period, and no timer
// operation per call.
void UdpFrontend::Impl::arm_deadline_timer() {
    const uint64_t at = pending.next_deadline(), now = chihaya::now_ms();
    deadline_armed = true;
    deadline_timer.expires_after(std::chrono::milliseconds(at > now ? at - now : 0));
    deadline_timer.async_wait([this](const boost::system::error_code& ec) {
        // Aborted only by stop() or destruction, with nothing left to wait for.
        if (ec) return;
        deadline_armed = false;
        on_deadline();
    });
}

void UdpFrontend::Impl::on_deadline() {
    pending.take_due(chihaya::now_ms(), [this](uint32_t index) { expire(slots.get()[index]); });
    if (!pending.empty()) arm_deadline_timer();
}

void UdpFrontend::Impl::expire(Slot& slot) {
    const bool announce = slot.kind == Slot::Kind::Announce;
    if (!(announce ? tracker.expire(slot.announce) : tracker.expire(slot.scrape)))
        return;  // its done came just now: finish_async is queued and answers as usual
    slot.expired = true;
    ++expired;
    hold_loop();
    if (stopped) return;
    // Not from slot.reply: the driver may still be writing peers there.
    uint8_t reply[kImmediateCap];
    const char* failure = announce ? slot.announce.response.failure : slot.scrape.failure;
    const size_t size = udp::encode_error(udp::MutableBytes(reply, sizeof reply), slot.transaction_id, failure,
                                          slot.request_size);
    if (size > 0)
        ::sendto(sockets[slot.socket].socket.native_handle(), reply, size, MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&slot.peer), slot.peer_len);
    count(slot, metrics::now_ns());
}

void UdpFrontend::Impl::announce_done(AnnounceCall* call, bool on_caller_thread) {
    auto* slot = static_cast<Slot*>(call->owner);
    if (on_caller_thread) {
        slot->inline_done = true;
        return;
    }
    // A driver thread: only hop back. Asio's post may allocate here; a networked driver has
    // just spent a round trip, so that is noise, and the inline path allocates nothing.
    asio::post(slot->impl->io, [slot] { slot->impl->finish_async(*slot); });
}

void UdpFrontend::Impl::scrape_done(ScrapeCall* call, bool on_caller_thread) {
    auto* slot = static_cast<Slot*>(call->owner);
    if (on_caller_thread) {
        slot->inline_done = true;
        return;
    }
    asio::post(slot->impl->io, [slot] { slot->impl->finish_async(*slot); });
}

void UdpFrontend::Impl::encode_reply(Slot& slot) {
    udp::MutableBytes out(slot.reply, kReplyCap);
    const char* failure =
        slot.kind == Slot::Kind::Announce ? slot.announce.response.failure : slot.scrape.failure;
    if (failure) {
        // Also for verified senders: no error reply is larger than its request, one rule to audit.
        slot.reply_size = udp::encode_error(out, slot.transaction_id, failure, slot.request_size);
        return;
    }
    if (slot.kind == Slot::Kind::Announce) {
        const AnnounceCall& call = slot.announce;
        uint32_t count = std::min(call.response.peer_count, call.peers_capacity);
        udp::encode_announce_header(out, slot.transaction_id, call.response);
        slot.reply_size = udp::announce_reply_size(call.request.peer.family, count);
    } else {
        slot.reply_size =
            udp::encode_scrape_reply(out, slot.transaction_id, slot.entries, slot.scrape.count);
    }
}

void UdpFrontend::Impl::finish_async(Slot& slot) {
    pending.remove(slot.index);
    if (slot.expired) {
        // Answered at its deadline (the tracker logged this late done). Only the slot comes back.
        slot.expired = false;
        --expired;
    } else if (!stopped) {
        encode_reply(slot);
        // A full socket buffer or an unreachable peer loses this reply, as UDP may anyway.
        if (slot.reply_size > 0)
            ::sendto(sockets[slot.socket].socket.native_handle(), slot.reply, slot.reply_size,
                     MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&slot.peer), slot.peer_len);
        count(slot, metrics::now_ns());
    }
    release(slot);
    --in_flight;
    hold_loop();
    // After stop() an idle timer would only keep run() from returning.
    if (stopped && pending.empty()) deadline_timer.cancel();
}

void UdpFrontend::Impl::reply_immediate(unsigned i, size_t size) {
    queue_reply(immediate[tx_count].data(), size, &rx_addr[i], rx_msgs[i].msg_hdr.msg_namelen);
}

// A request's result and, for announces and scrapes, its latency: on the worker's thread, after
// its reply went to the kernel.
void UdpFrontend::Impl::count(const Slot& slot, uint64_t sent_ns) {
    const metrics::Action action =
        slot.kind == Slot::Kind::Announce ? metrics::Action::Announce : metrics::Action::Scrape;
    const char* failure =
        slot.kind == Slot::Kind::Announce ? slot.announce.response.failure : slot.scrape.failure;
    metrics::WorkerMetrics& m = metrics::current();
    m.request(metrics::Protocol::Udp, action, failure ? failure_class(failure) : metrics::Result::Ok);
    m.latency[size_t(metrics::Protocol::Udp)][size_t(action)].observe(sent_ns - slot.received_ns);
    if (access_log::enabled()) {
        const auto source = endpoint_of(slot.peer);
        access_log::request("udp", source ? *source : Endpoint{}, metrics::name(action),
                            metrics::name(failure ? failure_class(failure) : metrics::Result::Ok), 0);
    }
}

void UdpFrontend::Impl::reply_error(unsigned i, uint32_t transaction_id, udp::Fault fault,
                                    size_t request_size, uint32_t action) {
    metrics::current().request(metrics::Protocol::Udp, action_of(action), result_of(fault));
    reply_immediate(i, udp::encode_error(immediate[tx_count], transaction_id,
                                         udp::fault_message(fault), request_size));
}

// Takes the next send entry (the one `immediate[tx_count]` belongs to), even for a reply that
// lives in a slot: the batch has at most one reply per datagram, so entries never run out.
void UdpFrontend::Impl::queue_reply(const uint8_t* data, size_t size, void* name,
                                    socklen_t name_len) {
    if (size == 0) return;
    tx_iov[tx_count] = {const_cast<uint8_t*>(data), size};
    msghdr& h = tx_msgs[tx_count].msg_hdr;
    h.msg_name = name;
    h.msg_namelen = name_len;
    ++tx_count;
}

void UdpFrontend::Impl::flush(uint32_t s) {
    const int fd = sockets[s].socket.native_handle();
    unsigned sent = 0;
    while (sent < tx_count) {
        int n = ::sendmmsg(fd, tx_msgs.data() + sent, tx_count - sent, MSG_DONTWAIT);
        if (n > 0) {
            sent += unsigned(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;  // send buffer full: the rest is lost, as on a congested link
        } else {
            ++sent;  // this one datagram was refused (e.g. by a firewall rule); go on with the rest
        }
    }
    tx_count = 0;
    const uint64_t sent_ns = batch_slot_count ? metrics::now_ns() : 0;
    for (unsigned k = 0; k < batch_slot_count; ++k) {
        count(slots.get()[batch_slots[k]], sent_ns);
        release(slots.get()[batch_slots[k]]);
    }
    batch_slot_count = 0;
}

UdpFrontend::UdpFrontend(boost::asio::io_context& io, const UdpConfig& config,
                         const Tracker& tracker, const ConnectionIdKey& key)
    : impl_(std::make_unique<Impl>(io, tracker, key, config)) {
    impl_->sockets.reserve(config.listen.size());
    for (const auto& text : config.listen) impl_->open(text, config.receive_buffer);
}

UdpFrontend::~UdpFrontend() {
    if (impl_ && impl_->in_flight > 0) {
        log::error("udp", std::to_string(impl_->in_flight) +
                              " calls still in flight at shutdown; leaking their buffers");
        kept_for_driver(impl_.release());
    }
}

// Before io.run(), so nothing else touches the sockets yet.
void UdpFrontend::start() {
    for (uint32_t s = 0; s < impl_->sockets.size(); ++s) impl_->wait(s);
}

void UdpFrontend::reconfigure(const UdpConfig& config) {
    impl_->connects.configure(config.connect_rate, config.connect_burst);
}

void UdpFrontend::stop() {
    impl_->stopped = true;
    boost::system::error_code ignored;
    for (auto& socket : impl_->sockets) socket.socket.close(ignored);
    // Calls still pending keep their deadline (answered or not, it releases the loop).
    if (impl_->pending.empty()) impl_->deadline_timer.cancel();
}

}  // namespace chihaya
