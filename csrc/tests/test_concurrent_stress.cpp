// A real concurrent producer (the host device thread running channel_u32_push_sequence) and
// a consumer thread draining at the same time. Built with -fsanitize=thread by .ci/run: the
// shared header and ring words are only ever accessed as atomics, so ThreadSanitizer must
// report nothing, and every value must equal its index (a torn read would break the order).
#include "stress_support.hpp"

using fc_test::failures;
using fc_test::run_concurrent;
using fc_test::run_reinit;

int main() {
  run_reinit(1, 64, 200, 5000);
  run_concurrent(1, 1u << 16, 4096, 2'000'000);
  run_concurrent(1, 1024, 64, 2'000'000);
  run_concurrent(1, 16, 3, 1'000'000);  // lapped again and again
  return failures == 0 ? 0 : 1;
}
