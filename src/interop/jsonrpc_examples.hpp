// conduit.interop.JsonRpcExamples: the methods the JSON-RPC 2.0
// specification uses in its examples, plus echo (see
// proto/conduit/interop/jsonrpc_examples.proto).
#pragma once

#include "conduit/rpc/service.hpp"

namespace conduit::rpc {

// Adds every method of conduit.interop.JsonRpcExamples to `table`:
//   subtract  minuend - subtrahend
//   sum       the sum of a list of numbers; INVALID_ARGUMENT for anything
//             else in the list
//   get_data  ["hello", 5]
//   notify_hello, notify_sum, update
//             accept any list and return google.protobuf.Empty
//   echo      its params, unchanged
// Throws Error when one of them is already there.
void add_jsonrpc_examples(ServiceTable& table);

}  // namespace conduit::rpc
