// Basic auth: how long a wrong password takes for a user with a cost-4 hash, a
// user with a cost-11 hash and an unknown user, with both users configured (the
// highest cost is 11). They should take the same time. Each case is 20 single
// tries; read the median. Prints figures; asserts nothing.
#include <benchmark/benchmark.h>
#include <crypt.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "agent/web_config.h"

namespace virtscale {
namespace {

std::string Hash(const std::string& password, unsigned long cost) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2y$", cost, nullptr, 0, salt, sizeof salt) == nullptr) return "";
  crypt_data data;
  std::memset(&data, 0, sizeof data);
  const char* hash = crypt_rn(password.c_str(), salt, &data, sizeof data);
  return hash ? hash : "";
}

std::string Basic(const std::string& user_pass) {
  std::string out(4 * ((user_pass.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(user_pass.data()),
                                static_cast<int>(user_pass.size()));
  out.resize(static_cast<size_t>(n));
  return "Basic " + out;
}

BasicAuthenticator& Auth() {
  static BasicAuthenticator auth({{"cheap", Hash("s3cret", 4)}, {"dear", Hash("s3cret", 11)}});
  return auth;
}

// `accepted`: the share of tries that passed (every case here should be 0).
void Run(benchmark::State& state, const std::string& user_pass) {
  const std::string header = Basic(user_pass);
  BasicAuthenticator& auth = Auth();  // built outside the timed loop
  int64_t accepted = 0;
  for (auto _ : state) accepted += auth.Check(header);
  state.counters["accepted"] =
      benchmark::Counter(static_cast<double>(accepted), benchmark::Counter::kAvgIterations);
}

void BM_WrongPasswordCost4(benchmark::State& s) { Run(s, "cheap:wrong"); }
void BM_WrongPasswordCost11(benchmark::State& s) { Run(s, "dear:wrong"); }
void BM_UnknownUser(benchmark::State& s) { Run(s, "nobody:wrong"); }
// The right password followed by NUL and junk.
void BM_NulInPasswordCost4(benchmark::State& s) { Run(s, std::string("cheap:s3cret\0junk", 17)); }

#define VIRTSCALE_AUTH_BENCH(fn)                                                   \
  BENCHMARK(fn)->Iterations(1)->Repetitions(20)->ReportAggregatesOnly(true)->Unit( \
      benchmark::kMillisecond)
VIRTSCALE_AUTH_BENCH(BM_WrongPasswordCost4);
VIRTSCALE_AUTH_BENCH(BM_WrongPasswordCost11);
VIRTSCALE_AUTH_BENCH(BM_UnknownUser);
VIRTSCALE_AUTH_BENCH(BM_NulInPasswordCost4);

}  // namespace
}  // namespace virtscale

BENCHMARK_MAIN();
