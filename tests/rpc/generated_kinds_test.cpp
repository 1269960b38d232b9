// The code protoc-gen-conduit generates for every kind of method (unary,
// server-, client- and bidirectional streaming), with the .proto's names as
// written: served through the generated base, called through the generated
// stub over gRPC, and over JSON-RPC, which cannot stream, refused saying so.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/server.hpp"
#include "generated_kinds_test.conduit.h"
#include "test_support.hpp"

namespace conduit::test::kinds {
namespace {

using namespace std::chrono_literals;
using rpc::CallContext;
using rpc::Status;
using rpc::StatusCode;
using rpc::StreamReader;
using rpc::StreamWriter;

class PlotterService final : public Plotter {
 public:
  Status GetNext(CallContext& context, const Point& request, Point& response) override {
    response.set_x(request.x() + 1);
    response.set_y(request.y());
    // Metadata both ways: "x-echo" comes back as a response header.
    for (const auto& [name, value] : context.metadata)
      if (name == "x-echo") context.response_metadata.emplace("x-echoed", value);
    return {};
  }
  Status list_points(CallContext&, const Point& request, StreamWriter<Point>& responses) override {
    for (int x = 0; x <= request.x(); ++x) {
      Point point;
      point.set_x(x);
      if (!responses.write(point)) return {StatusCode::cancelled, "the client went away"};
    }
    return {};
  }
  Status recordPoints(CallContext&, StreamReader<Point>& requests, Total& response) override {
    for (Point point; requests.read(point);) {
      response.set_count(response.count() + 1);
      response.set_sum(response.sum() + point.x());
    }
    return {};
  }
  Status MIRROR(CallContext&, StreamReader<Point>& requests,
                StreamWriter<Point>& responses) override {
    for (Point point; requests.read(point);) {
      Point mirrored;
      mirrored.set_x(-point.x());
      mirrored.set_y(-point.y());
      if (!responses.write(mirrored)) break;
    }
    return {};
  }
  // delete_ (a keyword) is left to the base: UNIMPLEMENTED.
};

class GeneratedKinds : public ::testing::Test {
 protected:
  void SetUp() override {
    service_.add_to(table_);
    server_ = std::make_unique<rpc::Server>(table_);
    const std::string bound = server_->listen("tcp://127.0.0.1:0");
    address_ = bound.substr(6);
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  PlotterService service_;
  rpc::ServiceTable table_;
  std::unique_ptr<rpc::Server> server_;
  std::string address_;
};

Point point(int x, int y = 0) {
  Point p;
  p.set_x(x);
  p.set_y(y);
  return p;
}

TEST_F(GeneratedKinds, NamesAreAsTheProtoWritesThem) {
  EXPECT_NE(table_.find("conduit.test.kinds.Plotter/GetNext"), nullptr);
  EXPECT_NE(table_.find("conduit.test.kinds.Plotter/list_points"), nullptr);
  EXPECT_NE(table_.find("conduit.test.kinds.Plotter/recordPoints"), nullptr);
  EXPECT_NE(table_.find("conduit.test.kinds.Plotter/MIRROR"), nullptr);
  EXPECT_NE(table_.find("conduit.test.kinds.Plotter/delete"), nullptr);
}

TEST_F(GeneratedKinds, UnaryWithMetadataBothWays) {
  rpc::GrpcChannel channel(address_, 5s);
  PlotterStub stub(channel);
  rpc::CallOptions options;
  options.metadata = {{"x-echo", "hello"}};
  std::multimap<std::string, std::string> received;
  options.received = &received;
  Point next;
  ASSERT_TRUE(stub.GetNext(point(1, 2), &next, options).ok());
  EXPECT_EQ(next.x(), 2);
  EXPECT_EQ(next.y(), 2);
  ASSERT_EQ(received.count("x-echoed"), 1u);
  EXPECT_EQ(received.find("x-echoed")->second, "hello");
}

TEST_F(GeneratedKinds, ServerStreamingReadsEveryResponse) {
  rpc::GrpcChannel channel(address_, 5s);
  PlotterStub stub(channel);
  rpc::ClientReader<Point> reader = stub.list_points(point(4));
  std::string seen;
  for (Point p; reader.read(p);) seen += std::to_string(p.x());
  EXPECT_TRUE(reader.finish().ok());
  EXPECT_EQ(seen, "01234");
}

TEST_F(GeneratedKinds, ClientStreamingSendsEveryRequest) {
  rpc::GrpcChannel channel(address_, 5s);
  PlotterStub stub(channel);
  rpc::ClientWriter<Point, Total> writer = stub.recordPoints();
  for (int x : {3, 4, 5}) ASSERT_TRUE(writer.write(point(x)));
  Total total;
  ASSERT_TRUE(writer.finish(total).ok());
  EXPECT_EQ(total.count(), 3);
  EXPECT_EQ(total.sum(), 12);
}

TEST_F(GeneratedKinds, BidirectionalAnswersAsItGoes) {
  rpc::GrpcChannel channel(address_, 5s);
  PlotterStub stub(channel);
  rpc::ClientReaderWriter<Point, Point> stream = stub.MIRROR();
  for (int x : {1, 2, 3}) {
    ASSERT_TRUE(stream.write(point(x, x)));
    Point mirrored;
    ASSERT_TRUE(stream.read(mirrored));
    EXPECT_EQ(mirrored.x(), -x);
    EXPECT_EQ(mirrored.y(), -x);
  }
  stream.writes_done();
  Point none;
  EXPECT_FALSE(stream.read(none));
  EXPECT_TRUE(stream.finish().ok());
}

TEST_F(GeneratedKinds, AKeywordNameGetsAnUnderscoreAndTheBaseAnswersUnimplemented) {
  rpc::GrpcChannel channel(address_, 5s);
  PlotterStub stub(channel);
  Point unused;
  const Status status = stub.delete_(point(1), &unused);
  EXPECT_EQ(status.code(), StatusCode::unimplemented);
  EXPECT_CONTAINS(status.message(), "conduit.test.kinds.Plotter/delete");
}

TEST_F(GeneratedKinds, OverJsonRpcStreamingIsUnimplementedSayingWhy) {
  rpc::JsonRpcChannel channel("http://" + address_ + "/jsonrpc", 5s);
  PlotterStub stub(channel);
  rpc::ClientReader<Point> reader = stub.list_points(point(2));
  Point p;
  EXPECT_FALSE(reader.read(p));
  const Status status = reader.finish();
  EXPECT_EQ(status.code(), StatusCode::unimplemented);
  EXPECT_CONTAINS(status.message(), "streams");
  // Unary methods of the same service are served over JSON-RPC.
  Point next;
  ASSERT_TRUE(stub.GetNext(point(7), &next).ok());
  EXPECT_EQ(next.x(), 8);
}

}  // namespace
}  // namespace conduit::test::kinds
