// LD_PRELOAD shim for bench/run: sets TCP_NODELAY on every accepted socket, so
// the agent can be measured as if its HTTP server called
// httplib::Server::set_tcp_nodelay(true), without changing the agent.
//
//   LD_PRELOAD=build-bench/bench/libnodelay_shim.so build-bench/virtscale ...
//
// Measurement aid only; never linked into virtscale.
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace {

int SetNoDelay(int fd) {
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on non-TCP
  }
  return fd;
}

}  // namespace

extern "C" int accept(int fd, sockaddr* addr, socklen_t* len) {
  using Fn = int (*)(int, sockaddr*, socklen_t*);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "accept"));
  return SetNoDelay(real(fd, addr, len));
}

extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  using Fn = int (*)(int, sockaddr*, socklen_t*, int);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "accept4"));
  return SetNoDelay(real(fd, addr, len, flags));
}
