// Exit codes of the conduit command.
#pragma once

namespace conduit::cli {

inline constexpr int kExitOk = 0;
// The run started but failed: a mismatch, a peer that vanished, a timeout.
inline constexpr int kExitFailure = 1;
// Nothing could start: bad arguments or URI, a missing path, no permission,
// nothing listening.
inline constexpr int kExitUsage = 2;

}  // namespace conduit::cli
