// The admin listener over Poco::Net::HTTPServer: three GET routes, plain text answers.
#include "frontend/admin/admin_server.hpp"

#include "net/address.hpp"
#include "log/log.hpp"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <stdexcept>

namespace chihaya {
namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

// The text format's content type, as Prometheus' own client libraries send it.
constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

void answer(HTTPServerResponse& response, HTTPResponse::HTTPStatus status, const std::string& type,
            const std::string& body) {
    response.setStatus(status);
    response.setContentType(type);
    response.setContentLength(std::streamsize(body.size()));
    response.set("Cache-Control", "no-store");
    response.send() << body;
}

class Handler : public Poco::Net::HTTPRequestHandler {
public:
    explicit Handler(const AdminHandlers& handlers) : handlers_(handlers) {}

    void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
        const std::string path = request.getURI().substr(0, request.getURI().find('?'));
        if (request.getMethod() != "GET" && request.getMethod() != "HEAD") {
            response.set("Allow", "GET, HEAD");
            return answer(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
        }
        try {
            if (path == "/metrics") return answer(response, HTTPResponse::HTTP_OK, kExpositionType, handlers_.metrics());
            if (path == "/healthz") return answer(response, HTTPResponse::HTTP_OK, "text/plain", "ok\n");
            if (path == "/readyz") {
                std::string why;
                const bool ready = handlers_.ready(why);
                return answer(response, ready ? HTTPResponse::HTTP_OK : HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                              "text/plain", why + "\n");
            }
        } catch (const std::exception& e) {
            log::error("admin", std::string(path) + ": " + e.what());
            return answer(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "text/plain", "internal error\n");
        }
        answer(response, HTTPResponse::HTTP_NOT_FOUND, "text/plain", "not found: try /metrics, /healthz, /readyz\n");
    }

private:
    const AdminHandlers& handlers_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
public:
    explicit Factory(const AdminHandlers& handlers) : handlers_(handlers) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
        return new Handler(handlers_);
    }

private:
    const AdminHandlers& handlers_;
};

}  // namespace

struct AdminServer::Impl {
    AdminHandlers handlers;
    std::string listen;
    std::unique_ptr<Poco::Net::HTTPServer> server;
    bool started = false;
};

AdminServer::AdminServer(const std::string& listen, AdminHandlers handlers) : impl_(std::make_unique<Impl>()) {
    impl_->handlers = std::move(handlers);
    impl_->listen = listen;
    auto where = parse_listen_address(listen);
    if (!where) throw std::runtime_error("admin: listen: not host:port or [v6]:port: '" + listen + "'");
    try {
        Poco::Net::SocketAddress address(where->address.to_string(), where->port);
        Poco::Net::ServerSocket socket;
        if (address.family() == Poco::Net::SocketAddress::IPv6) socket.bind6(address, true, false, true);
        else socket.bind(address, true);
        socket.listen(64);
        auto* params = new Poco::Net::HTTPServerParams;  // the server owns it (AutoPtr)
        params->setMaxThreads(2);
        params->setMaxQueued(32);
        params->setKeepAlive(true);
        params->setTimeout(Poco::Timespan(10, 0));
        impl_->server = std::make_unique<Poco::Net::HTTPServer>(new Factory(impl_->handlers), socket, params);
    } catch (const Poco::Exception& e) {
        throw std::runtime_error("admin: cannot listen on " + listen + ": " + e.displayText());
    }
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
    impl_->server->start();
    impl_->started = true;
    log::info("admin", "serving /metrics, /healthz, /readyz on http://" + impl_->listen);
}

void AdminServer::stop() {
    if (!impl_ || !impl_->started) return;
    impl_->started = false;
    impl_->server->stopAll(true);
}

}  // namespace chihaya
