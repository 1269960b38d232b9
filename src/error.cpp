#include "conduit/error.hpp"

#include <cstring>
#include <string>

namespace conduit {
namespace {

std::string system_error_text(std::string_view call, std::string_view target, int code,
                              std::string_view hint) {
  std::string text(call);
  text += '(';
  text += target;
  text += "): ";
  text += std::strerror(code);
  if (!hint.empty()) {
    text += "; ";
    text += hint;
  }
  return text;
}

}  // namespace

SystemError::SystemError(std::string_view call, std::string_view target, int code,
                         std::string_view hint)
    : Error(system_error_text(call, target, code, hint)), code_(code) {}

}  // namespace conduit
