// The serving engine's core (python/foundry_channels/serving wraps it): _EngineCore and
// RequestStream.
#include "bindings/bind_common.hpp"
#include "serving/engine.hpp"
#include "serving/lane_layout.hpp"

namespace fc::bind {
namespace {

std::vector<uint32_t> u32_vector(const py::handle& values, const char* what) {
  auto arr = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(values);
  if (!arr || arr.ndim() != 1) {
    throw py::type_error(std::string(what) + ": a sequence of token ids is needed");
  }
  std::vector<uint32_t> out(static_cast<size_t>(arr.shape(0)));
  const int64_t* data = arr.data();
  for (size_t i = 0; i < out.size(); ++i) {
    if (data[i] < 0 || data[i] > 0xffffffffLL) {
      throw py::value_error(std::string(what) + ": token " + std::to_string(data[i]) +
                            " at position " + std::to_string(i) + " is not a u32 token id");
    }
    out[i] = static_cast<uint32_t>(data[i]);
  }
  return out;
}

py::object seconds_between(int64_t from_ns, int64_t to_ns) {
  if (to_ns == 0) return py::none();
  return py::float_(static_cast<double>(to_ns - from_ns) * 1e-9);
}

py::dict lane_layout() {
  py::dict d;
#define FC_LANE_ENTRY(name, constant) d[#name] = constant;
  FC_LANE_KERNEL_CONSTANTS(FC_LANE_ENTRY)
#undef FC_LANE_ENTRY
  return d;
}

}  // namespace

void bind_serving(py::module_& m) {
  py::register_exception<EngineBusyError>(m, "EngineBusyError",
                                          m.attr("FoundryChannelsError"));
  m.def("serving_live_streams", &RequestStream::live,
        "RequestStreams alive in the process (each request holds one until it is dropped).");
  m.def("lane_layout", &lane_layout,
        "The batched decode's lane and item constants as kernels see them (FC_<name>; "
        "csrc/serving/lane_layout.hpp).");
  m.attr("SERVING_MAX_LANES") = layout::kMaxLanes;

  py::class_<RequestStream, std::shared_ptr<RequestStream>>(
      m, "RequestStream",
      "One request's tokens from the serving engine's demultiplexer (C++). Internal: "
      "foundry_channels.serving.Request wraps it.")
      .def_property_readonly("id", &RequestStream::id)
      .def_property_readonly("max_tokens", &RequestStream::max_tokens)
      .def_property_readonly("logprobs", &RequestStream::logprobs)
      .def_property_readonly("published", &RequestStream::published)
      .def_property_readonly("unread", &RequestStream::unread)
      .def_property_readonly("exhausted", &RequestStream::exhausted)
      .def_property_readonly("overflow", &RequestStream::overflow)
      .def_property_readonly("received", &RequestStream::received)
      .def_property_readonly("generation", &RequestStream::generation)
      .def_property_readonly(
          "finish_reason",
          [](const RequestStream& s) -> py::object {
            const FinishReason r = s.finish_reason();
            if (r == FinishReason::None) return py::none();
            return py::str(finish_reason_name(r));
          })
      .def_property_readonly("stop_index", &RequestStream::stop_index)
      .def_property_readonly("error_message", &RequestStream::error_message)
      .def_property_readonly("first_token_s",
                             [](const RequestStream& s) {
                               return seconds_between(s.submitted_ns(), s.first_token_ns());
                             })
      .def(
          "take",
          [](RequestStream& s, size_t max) -> py::tuple {
            const size_t n = std::min(max, s.unread());
            py::array_t<uint32_t> tokens(static_cast<py::ssize_t>(n));
            py::object logprobs = py::none();
            float* lp = nullptr;
            if (s.logprobs()) {
              py::array_t<float> values(static_cast<py::ssize_t>(n));
              lp = values.mutable_data();
              logprobs = values;
            }
            const size_t got = s.take(tokens.mutable_data(), lp, n);  // got == n: one consumer
            return py::make_tuple(tokens, logprobs, got);
          },
          py::arg("max") = size_t{1} << 30,
          "(tokens u32 array, log-probabilities f32 array or None, count): the unread tokens, "
          "at most `max`. Never blocks.")
      .def(
          "wait",
          [](RequestStream& s, const py::object& timeout) {
            const double t = timeout_seconds(timeout, "wait");
            auto check = python_interrupt_check();
            WaitResult res;
            {
              ReleaseGil nogil;
              res = s.wait(t, check);
            }
            return res == WaitResult::Ready    ? "ready"
                   : res == WaitResult::Closed ? "closed"
                                               : "timeout";
          },
          py::arg("timeout") = py::none(),
          "Blocks (GIL released) until a token is unread ('ready'), the stream ended and every "
          "token was taken ('closed') or the timeout passed ('timeout').");

  py::class_<ServingEngine, std::shared_ptr<ServingEngine>>(
      m, "_EngineCore",
      "The serving engine's device side: one model, one batched decode loop (driver thread). "
      "Internal: foundry_channels.serving.Engine wraps it.")
      .def(py::init([](std::shared_ptr<Device> device, const py::handle& model, uint32_t lanes,
                       uint32_t window, uint32_t history_capacity, uint32_t eos,
                       uint32_t max_queued) {
             EngineConfig c;
             c.lanes = lanes;
             c.window = window;
             c.history_capacity = history_capacity;
             c.eos = eos;
             c.max_queued = max_queued;
             auto words = u32_vector(model, "model");
             ReleaseGil nogil;  // the model upload waits for the device
             return std::make_shared<ServingEngine>(std::move(device), c, words);
           }),
           py::arg("device"), py::arg("model"), py::arg("lanes"), py::arg("window"),
           py::arg("history_capacity"), py::arg("eos"), py::arg("max_queued"))
      .def(
          "submit",
          [](ServingEngine& e, const py::handle& prompt, uint32_t max_tokens, uint32_t seed,
             bool logprobs, const py::list& stop_sequences) {
            SubmitRequest r;
            r.prompt = u32_vector(prompt, "prompt");
            r.max_tokens = max_tokens;
            r.seed = seed;
            r.logprobs = logprobs;
            for (const auto& s : stop_sequences) r.stop_sequences.push_back(u32_vector(s, "stop"));
            return e.submit(std::move(r));
          },
          py::arg("prompt"), py::arg("max_tokens"), py::arg("seed"), py::arg("logprobs"),
          py::arg("stop_sequences"))
      .def("cancel", &ServingEngine::cancel, py::arg("stream"))
      .def("set_notify_fd", &ServingEngine::set_notify_fd, py::arg("fd"),
           "The eventfd an event loop awaits its streams on (-1: none); the caller owns it.")
      .def("arm_notify", &ServingEngine::arm_notify,
           "One write to the notify fd after the next change a stream's reader can see.")
      .def(
          "close",
          [](ServingEngine& e) {
            ReleaseGil nogil;
            e.close();
          })
      .def_property_readonly("closed", &ServingEngine::closed)
      .def_property_readonly("channel_capacity", &ServingEngine::channel_capacity)
      .def_property_readonly("lanes", [](const ServingEngine& e) { return e.config().lanes; })
      .def_property_readonly("window", [](const ServingEngine& e) { return e.config().window; })
      .def_property_readonly("history_capacity",
                             [](const ServingEngine& e) { return e.config().history_capacity; })
      .def("stats", [](const ServingEngine& e) {
        const EngineStats s = e.stats();
        py::dict d;
#define FC_ENGINE_STAT_ENTRY(name, meaning) d[#name] = s.name;
        FC_ENGINE_STATS(FC_ENGINE_STAT_ENTRY)
#undef FC_ENGINE_STAT_ENTRY
        return d;
      });
}

}  // namespace fc::bind
