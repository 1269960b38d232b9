#include "kernel_setting.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

namespace conduit::ipc::detail {

std::string kernel_setting(std::string_view name) {
  std::string path = "/proc/sys/";
  for (char c : name) path += c == '.' ? '/' : c;
  std::ifstream file(path);
  std::stringstream contents;
  if (!file || !(contents << file.rdbuf())) return "unknown";
  std::string value;
  for (char c : contents.str()) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!value.empty() && value.back() != ' ') value += ' ';
    } else {
      value += c;
    }
  }
  while (!value.empty() && value.back() == ' ') value.pop_back();
  return value.empty() ? "unknown" : value;
}

std::string describe_kernel_setting(std::string_view name) {
  return std::string(name) + " = " + kernel_setting(name);
}

}  // namespace conduit::ipc::detail
