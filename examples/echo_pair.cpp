// Two processes, one Channel: the parent listens on a URI, a forked child
// connects and echoes, the parent checks the answer.
//
//   echo_pair 'unix:@echo-pair'
//   echo_pair tcp://127.0.0.1:0
//   echo_pair fifo:/tmp/echo-pair
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "conduit/error.hpp"
#include "conduit/ipc/channel.hpp"

int main(int argc, char** argv) {
  using conduit::ipc::Channel;
  using conduit::ipc::ChannelListener;
  std::string uri = argc > 1 ? argv[1] : "unix:@conduit-echo-pair";
  try {
    ChannelListener listener = ChannelListener::listen(uri);
    pid_t child = fork();
    if (child == 0) {
      Channel channel = Channel::connect(listener.uri());
      while (auto received = channel.receive()) channel.send(received.message);
      _exit(0);
    }
    {
      Channel channel = *listener.accept();
      channel.send("hello over " + listener.uri());
      auto echo = channel.receive();
      std::printf("%.*s\n", static_cast<int>(echo.message.size()),
                  reinterpret_cast<const char*>(echo.message.data()));
    }  // closing the channel ends the child's loop
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  } catch (const conduit::Error& error) {
    std::fprintf(stderr, "echo_pair: %s\n", error.what());
    return 2;
  }
}
