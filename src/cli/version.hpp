// What `conduit --version` prints.
#pragma once

#include <string>

namespace conduit::cli {

// "conduit VERSION (git REVISION)" and, one per line, the versions of the
// libraries conduit was built with and runs on.
std::string version_text();

}  // namespace conduit::cli
