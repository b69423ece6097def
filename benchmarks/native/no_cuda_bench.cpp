// The CUDA benchmark instruments when the CUDA backend was not built: each says why.
#include "cuda_bench.hpp"

namespace fc::cuda {
namespace {
[[noreturn]] void unavailable(const char* what) {
  throw BackendUnavailableError(std::string(what) + ": cuda backend not available: " +
                                cuda_unavailable_reason());
}
}  // namespace

DecodeBenchResult bench_decode(const std::shared_ptr<Device>&, const std::string&, uint32_t,
                               uint32_t, uint32_t) {
  unavailable("bench_decode");
}
PingPongResult bench_ping_pong(const std::shared_ptr<Device>&, uint32_t) {
  unavailable("bench_ping_pong");
}
PushCostResult bench_push_cost(const std::shared_ptr<Device>&, uint32_t) {
  unavailable("bench_push_cost");
}

ClockFitResult clock_fit(const std::shared_ptr<Device>&) { unavailable("clock_fit"); }
RecordRateResult bench_record_rate(const std::shared_ptr<Device>&, uint64_t, uint32_t) {
  unavailable("bench_record_rate");
}
RecordLatencyResult bench_record_latency(const std::shared_ptr<Device>&, uint64_t, uint32_t,
                                         uint32_t) {
  unavailable("bench_record_latency");
}
std::vector<std::pair<std::string, double>> bench_record_cost(const std::shared_ptr<Device>&,
                                                              uint64_t, uint32_t) {
  unavailable("bench_record_cost");
}

}  // namespace fc::cuda
