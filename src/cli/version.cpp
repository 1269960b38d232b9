#include "cli/version.hpp"

#include <fmt/core.h>
#include <google/protobuf/stubs/common.h>
#include <nghttp2/nghttp2.h>
#include <rapidjson/rapidjson.h>
#include <zlib.h>

#include <boost/version.hpp>

#include "cli/build_info.hpp"

namespace conduit::cli {

std::string version_text() {
  // Shared libraries as loaded now; header-only ones as compiled in.
  const nghttp2_info* nghttp2 = nghttp2_version(0);
  return fmt::format(
      "conduit {} (git {})\n"
      "  protobuf  {}\n"
      "  nghttp2   {}\n"
      "  Boost     {}.{}.{} (Asio)\n"
      "  RapidJSON {}\n"
      "  zlib      {}",
      CONDUIT_VERSION, CONDUIT_GIT_REVISION,
      google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION), nghttp2->version_str,
      BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100,
      RAPIDJSON_VERSION_STRING, zlibVersion());
}

}  // namespace conduit::cli
