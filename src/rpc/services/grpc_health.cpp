#include "conduit/rpc/grpc_health.hpp"

#include <chrono>
#include <thread>

#include "grpc/health/v1/health.pb.h"

namespace conduit::rpc {

namespace {

namespace health = ::grpc::health::v1;

bool serves(const ServiceTable& table, const std::string& service) {
  if (service.empty()) return true;
  for (const Method* method : table.methods())
    if (method->descriptor().service()->full_name() == service) return true;
  return false;
}

}  // namespace

void add_grpc_health(ServiceTable& table) {
  table.add<health::HealthCheckRequest, health::HealthCheckResponse>(
      "grpc.health.v1.Health/Check",
      [&table](CallContext&, const health::HealthCheckRequest& request,
               health::HealthCheckResponse& response) {
        if (!serves(table, request.service()))
          return Status(StatusCode::not_found, "no service " + request.service() + " here");
        response.set_status(health::HealthCheckResponse::SERVING);
        return Status();
      });
  table.add_server_stream<health::HealthCheckRequest, health::HealthCheckResponse>(
      "grpc.health.v1.Health/Watch",
      [&table](CallContext& context, const health::HealthCheckRequest& request,
               StreamWriter<health::HealthCheckResponse>& responses) {
        health::HealthCheckResponse response;
        response.set_status(serves(table, request.service())
                                ? health::HealthCheckResponse::SERVING
                                : health::HealthCheckResponse::SERVICE_UNKNOWN);
        if (!responses.write(response)) return Status(StatusCode::cancelled, "the watcher left");
        while (!context.cancelled() && !context.expired())
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return Status(StatusCode::cancelled, "the watch ended");
      });
}

}  // namespace conduit::rpc
