// gRPC server reflection (grpc.reflection.v1 and v1alpha, from Debian's
// grpc-proto), so that generic tools (grpcurl, grpc_cli, `conduit call`)
// can list the services and read their .proto definitions.
#pragma once

#include "conduit/rpc/service.hpp"

namespace conduit::rpc {

// Adds ServerReflection/ServerReflectionInfo of both versions to `table`,
// describing the services `table` holds (it must outlive its use):
//   list_services                 every service, reflection included
//   file_by_filename,             the file as a FileDescriptorProto, with
//   file_containing_symbol        every file it imports
//   file_containing_extension,    from the descriptor pool of the services
//   all_extension_numbers_of_type
// A name that is not found gets an error_response with NOT_FOUND; the
// stream goes on.
// Throws Error when they are already there.
void add_grpc_reflection(ServiceTable& table);

}  // namespace conduit::rpc
