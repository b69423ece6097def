// Host-to-device channels (docs/protocol.md "Host-to-device channels"): the layout table, the
// channel and its writer. Python's foundry_channels.H2DChannel subclasses the channel class to
// add a dtype and a shape (python/foundry_channels/h2d_channel.py).
#include "bindings/bind_common.hpp"
#include "channel/h2d_channel.hpp"
#include "device/encode_rules.hpp"

namespace fc::bind {
namespace {

// A C-contiguous 1-D uint32 array holding whole items: its words and how many items.
const uint32_t* item_words(const py::array& words, uint32_t record_words, size_t& items,
                           const char* where) {
  if (!words.dtype().is(py::dtype::of<uint32_t>()) || words.ndim() != 1 ||
      !(words.flags() & py::array::c_style)) {
    throw py::type_error(std::string(where) + ": expected a C-contiguous 1-D uint32 array");
  }
  if (words.size() % record_words != 0) {
    throw py::value_error(std::string(where) + ": " + std::to_string(words.size()) +
                          " words are not a whole number of " + std::to_string(record_words) +
                          "-word items");
  }
  items = static_cast<size_t>(words.size()) / record_words;
  return static_cast<const uint32_t*>(words.data());
}

// A push: first without waiting and with the GIL (~50 ns); only when that finds no room (or a
// pending init) and the caller allows a wait, the wait runs with the GIL released.
void push_words(H2DWriter& w, const uint32_t* words, const py::object& timeout) {
  const double t = timeout_seconds(timeout, "push");
  if (w.try_push(words)) return;
  auto check = python_interrupt_check();
  ReleaseGil nogil;
  w.push(words, t, check);
}

H2DChannel::PopTarget pop_target(const std::shared_ptr<Buffer>& out, const py::object& out_offset,
                                 const std::shared_ptr<Buffer>& got,
                                 const std::shared_ptr<Buffer>& stop_flag,
                                 const py::object& stop_code, bool predicated) {
  H2DChannel::PopTarget t;
  t.out = out;
  t.out_offset = checked_u32(out_offset, "out_offset");
  t.got = got;
  t.stop_flag = stop_flag;
  t.stop_code = checked_u32(stop_code, "stop_code");
  t.predicated = predicated;
  return t;
}

}  // namespace

void bind_h2d(py::module_& m) {
  FC_BIND_LAYOUT_TABLE(m, "h2d_layout", FC_H2D_HEADER_WORDS,
                       "The host-to-device channel's header words: {name: {word, writer, "
                       "meaning}}, from the C++ table.");
  m.attr("H2D_MAGIC") = h2d::kMagic;
  m.attr("H2D_MAX_CAPACITY") = h2d::kMaxCapacity;
  m.attr("H2D_MAX_RECORD_WORDS") = h2d::kMaxRecordWords;
  m.def(
      "kernel_waits_on_cpu",
      [](const std::string& name) {
        const KernelId id = kernel_by_name(name.c_str());
        if (id == KernelId::count_) throw py::value_error("unknown kernel '" + name + "'");
        return kernel_waits_on_cpu(id);
      },
      py::arg("name"),
      "Whether the kernel waits for a value the CPU writes while its command buffer runs (such "
      "kernels are refused on Metal).");
  m.def(
      "cpu_wait_refusal",
      [](const std::string& name, const std::string& backend, bool waits_allowed) {
        const KernelId id = kernel_by_name(name.c_str());
        if (id == KernelId::count_) throw py::value_error("unknown kernel '" + name + "'");
        return cpu_wait_refusal(id, backend, waits_allowed);
      },
      py::arg("name"), py::arg("backend"), py::arg("waits_allowed"),
      "The encode-time rule behind the refusal of waiting kernels ('' when allowed); for tests.");

  py::class_<H2DWriter, std::shared_ptr<H2DWriter>>(m, "H2DWriterCore",
                        "The CPU side of a host-to-device channel (foundry_channels.H2DWriter "
                        "wraps it with the channel's dtype and shape).")
      .def(
          "push_u32",
          [](H2DWriter& w, const py::object& value, const py::object& timeout) {
            const uint32_t word = checked_u32(value, "push(value)");
            push_words(w, &word, timeout);
          },
          py::arg("value"), py::arg("timeout") = py::none())
      .def(
          "push_words",
          [](H2DWriter& w, const py::array& words, const py::object& timeout, uint32_t record_words) {
            size_t items = 0;
            const uint32_t* data = item_words(words, record_words, items, "push");
            if (items != 1) throw py::value_error("push: expected exactly one item");
            push_words(w, data, timeout);
          },
          py::arg("words"), py::arg("timeout"), py::arg("record_words"))
      .def(
          "push_many_words",
          [](H2DWriter& w, const py::array& words, const py::object& timeout,
             uint32_t record_words) {
            size_t items = 0;
            const uint32_t* data = item_words(words, record_words, items, "push_many");
            const double t = timeout_seconds(timeout, "push_many");
            auto check = python_interrupt_check();
            ReleaseGil nogil;
            w.push_many(data, items, t, check);
            return items;
          },
          py::arg("words"), py::arg("timeout"), py::arg("record_words"))
      .def(
          "close",
          [](H2DWriter& w, const py::object& timeout) {
            const double t = timeout_seconds(timeout, "close");
            auto check = python_interrupt_check();
            ReleaseGil nogil;
            w.close(t, check);
          },
          py::arg("timeout") = py::none())
      .def_property_readonly("pushed", &H2DWriter::pushed)
      .def_property_readonly("taken", &H2DWriter::taken)
      .def_property_readonly("closed", &H2DWriter::closed);

  py::class_<H2DChannel, std::shared_ptr<H2DChannel>>(m, "H2DChannelCore", R"doc(
Low-level host-to-device channel of items of `record_words` u32 words; use
foundry_channels.H2DChannel, which adds the dtype and shape.)doc")
      .def(py::init([](const std::shared_ptr<Device>& device, const py::object& capacity,
                       const py::object& record_words) {
             if (!device) throw py::type_error("H2DChannel(device, ...): device is None");
             return std::make_shared<H2DChannel>(
                 device, checked_uint(capacity, "capacity", UINT64_MAX),
                 checked_uint(record_words, "record_words", UINT64_MAX));
           }),
           py::arg("device"), py::arg("capacity"), py::arg("record_words") = 1)
      .def_property_readonly("capacity", &H2DChannel::capacity)
      .def_property_readonly("record_words", &H2DChannel::record_words)
      .def_property_readonly("device", &H2DChannel::device)
      .def_property_readonly("inits_encoded", &H2DChannel::inits_encoded)
      .def_property_readonly(
          "header",
          [](py::object self) {
            auto& ch = self.cast<H2DChannel&>();
            return raw_view(ch.header_words(), h2d::kHeaderWords, self);
          },
          "Raw read-only view of the header words (h2d_layout() names them).")
      .def_property_readonly(
          "last_error",
          [](const H2DChannel& ch) -> std::optional<std::string> {
            std::string e = ch.last_error();
            if (e.empty()) return std::nullopt;
            return e;
          },
          "The last error a pop reported (it also failed its command buffer), or None.")
      .def("encode_init", &H2DChannel::encode_init, py::arg("command_buffer"),
           "Encodes h2d_init: a new epoch (empty ring, open, the device at item 0). The writer "
           "waits until it has run before its first item of the epoch.")
      .def(
          "encode_try_pop",
          [](H2DChannel& ch, CommandBuffer& cb, const std::shared_ptr<Buffer>& out,
             const std::shared_ptr<Buffer>& got, const py::object& out_offset,
             const std::shared_ptr<Buffer>& stop_flag, const py::object& stop_code,
             bool predicated) {
            ch.encode_try_pop(cb, pop_target(out, out_offset, got, stop_flag, stop_code,
                                             predicated));
          },
          py::arg("command_buffer"), py::arg("out"), py::arg("got"), py::kw_only(),
          py::arg("out_offset") = 0, py::arg("stop_flag") = nullptr, py::arg("stop_code") = 0,
          py::arg("predicated") = false)
      .def(
          "encode_pop_wait",
          [](H2DChannel& ch, CommandBuffer& cb, const std::shared_ptr<Buffer>& out,
             const std::shared_ptr<Buffer>& got, const py::object& timeout_us,
             const py::object& out_offset, const std::shared_ptr<Buffer>& stop_flag,
             const py::object& stop_code, bool predicated) {
            ch.encode_pop_wait(cb,
                               pop_target(out, out_offset, got, stop_flag, stop_code, predicated),
                               checked_u32(timeout_us, "timeout_us"));
          },
          py::arg("command_buffer"), py::arg("out"), py::arg("got"), py::kw_only(),
          py::arg("timeout_us"), py::arg("out_offset") = 0, py::arg("stop_flag") = nullptr,
          py::arg("stop_code") = 0, py::arg("predicated") = false)
      .def(
          "writer_core",
          [](const std::shared_ptr<H2DChannel>& ch) {
            // Aliasing: the writer keeps its channel alive.
            return std::shared_ptr<H2DWriter>(ch, &ch->writer());
          },
          "The channel's single producer.");
}

}  // namespace fc::bind
