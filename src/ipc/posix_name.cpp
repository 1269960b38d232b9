#include "posix_name.hpp"

#include <cerrno>

#include "conduit/error.hpp"

namespace conduit::ipc::detail {

void check_posix_name(std::string_view call, const std::string& name, std::size_t max_length) {
  const std::string rule = "a POSIX IPC name is one leading '/' followed by 1 to " +
                           std::to_string(max_length) + " characters, none of them '/'";
  auto refuse = [&](const std::string& reason) {
    throw SystemError(call, name, EINVAL, reason + " (" + rule + ")");
  };
  if (name.empty() || name.front() != '/') refuse("the name does not start with '/'");
  if (name.size() == 1) refuse("the name is empty after the '/'");
  if (name.find('/', 1) != std::string::npos)
    refuse("the name has a '/' after the first character");
  if (name == "/." || name == "/..") refuse("'.' and '..' name directories");
  if (name.size() - 1 > max_length)
    refuse("the name is " + std::to_string(name.size() - 1) + " characters long");
}

}  // namespace conduit::ipc::detail
