// asio_adapter.hpp: lets an Asio io_context drive one hiredis async context (hiredis' ev hooks).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <hiredis/async.h>

#include <memory>

namespace chihaya::redis {

// hiredis announces read/write interest through five hooks; each interest becomes an async_wait
// on a stream_descriptor that borrows hiredis' fd. hiredis closes that fd itself, so cleanup
// release()s it (which also cancels the waits) and never closes it.
//
// Level-triggered, as hiredis needs (it reads at most 16 KiB per call and relies on being called
// again while data is buffered): Asio re-arms the epoll registration (EPOLL_CTL_MOD) whenever a
// wait starts on an idle descriptor, so a wait started while bytes are pending completes at once.
//
// Lifetime: the object owns itself (self_) from attach until hiredis calls cleanup; each pending
// wait holds a shared_ptr too, so a handler that runs after cleanup finds live memory and does
// nothing. Everything runs on the io_context's one thread.
class AsioEvents : public std::enable_shared_from_this<AsioEvents> {
public:
    static void attach(boost::asio::io_context& io, redisAsyncContext* ac) {
        std::shared_ptr<AsioEvents> e(new AsioEvents(io, ac));
        e->self_ = e;
        ac->ev.data = e.get();
        ac->ev.addRead = [](void* p) { static_cast<AsioEvents*>(p)->set(kRead, true); };
        ac->ev.delRead = [](void* p) { static_cast<AsioEvents*>(p)->set(kRead, false); };
        ac->ev.addWrite = [](void* p) { static_cast<AsioEvents*>(p)->set(kWrite, true); };
        ac->ev.delWrite = [](void* p) { static_cast<AsioEvents*>(p)->set(kWrite, false); };
        ac->ev.cleanup = [](void* p) { static_cast<AsioEvents*>(p)->cleanup(); };
    }

private:
    enum Direction { kRead = 0, kWrite = 1 };

    AsioEvents(boost::asio::io_context& io, redisAsyncContext* ac) : ac_(ac), fd_(io, ac->c.fd) {}

    void set(Direction d, bool on) {
        wanted_[d] = on;
        if (on) arm(d);
    }

    // A wait that is no longer wanted simply finds wanted_ false when it completes: cancelling
    // would cancel the other direction's wait as well.
    void arm(Direction d) {
        if (waiting_[d] || !ac_) return;
        waiting_[d] = true;
        auto type = d == kRead ? boost::asio::posix::descriptor_base::wait_read
                               : boost::asio::posix::descriptor_base::wait_write;
        fd_.async_wait(type, [self = shared_from_this(), d](const boost::system::error_code& ec) {
            self->ready(d, ec);
        });
    }

    void ready(Direction d, const boost::system::error_code& ec) {
        waiting_[d] = false;
        if (!ac_ || ec == boost::asio::error::operation_aborted || !wanted_[d]) return;
        // Other errors are handed to hiredis too: its read/write finds and reports them.
        if (d == kRead) redisAsyncHandleRead(ac_);
        else redisAsyncHandleWrite(ac_);
        // hiredis may have freed the context (and called cleanup) inside that call.
        if (ac_ && wanted_[d]) arm(d);
    }

    void cleanup() {
        ac_ = nullptr;
        wanted_[kRead] = wanted_[kWrite] = false;
        fd_.release();
        self_.reset();  // may destroy *this: nothing after this line
    }

    redisAsyncContext* ac_;
    boost::asio::posix::stream_descriptor fd_;
    bool wanted_[2] = {false, false};
    bool waiting_[2] = {false, false};
    std::shared_ptr<AsioEvents> self_;
};

}  // namespace chihaya::redis
