// Errors raised by conduit.
//
// Every failure is reported by throwing a subclass of conduit::Error whose
// what() names the operation, the object it acted on (a URI or a path) and the
// cause, e.g. "connect(unix:/run/app.sock): No such file or directory".
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace conduit {

// Base of every exception conduit throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A system call failed. code() is the errno value it left.
class SystemError : public Error {
 public:
  // Builds "CALL(TARGET): strerror(CODE)", followed by "; HINT" when a hint
  // (what it means here, what to do) is given. TARGET may be empty.
  SystemError(std::string_view call, std::string_view target, int code, std::string_view hint = {});

  int code() const noexcept { return code_; }

 private:
  int code_;
};

// A message is larger than the channel's maximum (or the kernel's limit for
// the mechanism). Nothing was sent, or the oversized message was discarded.
class MessageTooLarge : public Error {
 public:
  using Error::Error;
};

// The peer broke the protocol: a frame header announcing an impossible size,
// a message cut short by the peer closing the connection, and so on.
class ProtocolError : public Error {
 public:
  using Error::Error;
};

// The process on the other side is gone: it exited or was killed (possibly in
// the middle of a message, which is then never delivered), or it closed its
// end while this side still had something to send.
class PeerGone : public Error {
 public:
  using Error::Error;
};

// A value the caller gave cannot be used (a request that is not valid JSON,
// a field the message lacks): nothing was sent.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A URI could not be parsed or names an unknown scheme.
class InvalidUri : public Error {
 public:
  using Error::Error;
};

// No answer came within the time allowed (a call's timeout or deadline).
class Timeout : public Error {
 public:
  using Error::Error;
};

// A blocking operation was interrupted through a Cancellation.
class Cancelled : public Error {
 public:
  using Error::Error;
};

}  // namespace conduit
