#include <cstdio>

#include "version.h"

int main() {
  std::printf("virtscale %s\n", VIRTSCALE_VERSION);
  return 0;
}
