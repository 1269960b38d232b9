# conduit_generate_grpc: compiles .proto files into the C++ a conduit service
# or client is written against.
#
#   conduit_generate_grpc(TARGET my_server
#                         PROTOS proto/shop/inventory.proto ...
#                         [IMPORT_DIRS proto ...]
#                         [OUT_DIR dir])
#
# For each x/y.proto (its path below the IMPORT_DIRS entry that holds it, or
# below its own folder when none does), protoc writes into OUT_DIR
# (default: <current binary dir>/conduit_generated):
#   x/y.pb.h, x/y.pb.cc   protobuf's messages (the .pb.cc is added to TARGET)
#   x/y.conduit.h         protoc-gen-conduit: for each service Foo, a base
#                         class FooBase to implement and a stub FooStub to
#                         call it through any conduit::rpc::ClientChannel
# and OUT_DIR goes on TARGET's include path, so that sources include
# "x/y.conduit.h". Link TARGET with conduit::rpc.
#
# Needs protobuf's compiler (Debian: protobuf-compiler) and the target
# protoc-gen-conduit (built beside conduit, or installed with it as
# conduit::protoc-gen-conduit).
function(conduit_generate_grpc)
  cmake_parse_arguments(ARG "" "TARGET;OUT_DIR" "PROTOS;IMPORT_DIRS" ${ARGN})
  if(NOT ARG_TARGET OR NOT ARG_PROTOS)
    message(FATAL_ERROR "conduit_generate_grpc: give TARGET <target> and PROTOS <file.proto>...")
  endif()
  if(NOT TARGET ${ARG_TARGET})
    message(FATAL_ERROR "conduit_generate_grpc: ${ARG_TARGET} is not a target: "
                        "add_executable or add_library it first")
  endif()
  if(NOT ARG_OUT_DIR)
    set(ARG_OUT_DIR ${CMAKE_CURRENT_BINARY_DIR}/conduit_generated)
  endif()
  if(TARGET conduit::protoc-gen-conduit)
    set(plugin conduit::protoc-gen-conduit)
  elseif(TARGET protoc-gen-conduit)
    set(plugin protoc-gen-conduit)
  else()
    message(FATAL_ERROR "conduit_generate_grpc: protoc-gen-conduit not found: "
                        "find_package(conduit) first")
  endif()
  if(NOT TARGET protobuf::protoc)
    message(FATAL_ERROR "conduit_generate_grpc: protoc not found (Debian: protobuf-compiler)")
  endif()

  set(roots)
  foreach(dir ${ARG_IMPORT_DIRS})
    get_filename_component(dir ${dir} ABSOLUTE)
    list(APPEND roots ${dir})
  endforeach()
  foreach(proto ${ARG_PROTOS})
    get_filename_component(proto ${proto} ABSOLUTE)
    set(root "")
    foreach(dir ${roots})
      file(RELATIVE_PATH relative ${dir} ${proto})
      if(NOT relative MATCHES "^\\.\\./")
        set(root ${dir})
        break()
      endif()
    endforeach()
    if(NOT root)
      get_filename_component(root ${proto} DIRECTORY)
    endif()
    file(RELATIVE_PATH relative ${root} ${proto})
    string(REGEX REPLACE "\\.proto$" "" stem ${relative})
    set(include_flags -I ${root})
    foreach(dir ${roots})
      if(NOT dir STREQUAL root)
        list(APPEND include_flags -I ${dir})
      endif()
    endforeach()
    add_custom_command(
      OUTPUT ${ARG_OUT_DIR}/${stem}.pb.cc ${ARG_OUT_DIR}/${stem}.pb.h
             ${ARG_OUT_DIR}/${stem}.conduit.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${ARG_OUT_DIR}
      COMMAND protobuf::protoc --cpp_out=${ARG_OUT_DIR}
              --plugin=protoc-gen-conduit=$<TARGET_FILE:${plugin}>
              --conduit_out=${ARG_OUT_DIR} ${include_flags} ${proto}
      DEPENDS ${proto} protobuf::protoc ${plugin}
      COMMENT "protoc ${relative}"
      VERBATIM)
    target_sources(${ARG_TARGET} PRIVATE ${ARG_OUT_DIR}/${stem}.pb.cc)
  endforeach()
  target_include_directories(${ARG_TARGET} PUBLIC $<BUILD_INTERFACE:${ARG_OUT_DIR}>)
endfunction()
