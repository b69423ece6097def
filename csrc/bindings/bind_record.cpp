// RecordChannel and RecordReader (Python: foundry_channels.Channel wraps them with a dtype and
// a shape; python/foundry_channels/record_channel.py).
#include "bindings/bind_common.hpp"
#include "channel/record_channel.hpp"
#include "channel/record_reader.hpp"

namespace fc::bind {
namespace {

// Copies of at least this many bytes run with the GIL released.
constexpr size_t kReleaseGilAboveBytes = 64 * 1024;

// A writable C-contiguous numpy array whose size is a whole number of records: its address
// and how many records it holds.
void* record_storage(py::handle out, uint64_t record_bytes, const char* where, size_t& records) {
  if (!py::isinstance<py::array>(out)) {
    throw py::type_error(std::string(where) + ": out must be a numpy.ndarray, got " +
                         std::string(py::str(py::type::of(out).attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(out);
  if (!(arr.flags() & py::array::c_style)) {
    throw py::value_error(std::string(where) + ": out must be C-contiguous");
  }
  if (!arr.writeable()) throw py::value_error(std::string(where) + ": out is read-only");
  const auto bytes = static_cast<uint64_t>(arr.nbytes());
  if (bytes == 0 || bytes % record_bytes != 0) {
    throw py::value_error(std::string(where) + ": out holds " + std::to_string(bytes) +
                          " bytes, not a whole number of " + std::to_string(record_bytes) +
                          "-byte records");
  }
  records = bytes / record_bytes;
  return arr.mutable_data();
}

}  // namespace

void bind_record(py::module_& m) {
  py::class_<RecordChannel, std::shared_ptr<RecordChannel>>(m, "RecordChannel", R"doc(
Low-level record channel (fixed-size records of `record_bytes` bytes); use
foundry_channels.Channel, which adds the dtype and shape.)doc")
      .def(py::init([](const std::shared_ptr<Device>& device, const py::object& capacity,
                       const py::object& record_bytes) {
             if (!device) throw py::type_error("RecordChannel(device, ...): device is None");
             return std::make_shared<RecordChannel>(
                 device, checked_uint(capacity, "capacity", UINT64_MAX),
                 checked_uint(record_bytes, "record_bytes", UINT64_MAX));
           }),
           py::arg("device"), py::arg("capacity"), py::arg("record_bytes"))
      .def_property_readonly("capacity", &RecordChannel::capacity)
      .def_property_readonly("record_bytes", &RecordChannel::record_bytes)
      .def_property_readonly("stride_words", &RecordChannel::stride_words,
                             "Words between payload slots: a kernel that pushes records from "
                             "its body (record_kernels.inc) takes it as its `stride`.")
      .def_property_readonly("device", &RecordChannel::device)
      .def("encode_init", &RecordChannel::encode_init, py::arg("command_buffer"))
      .def(
          "encode_push",
          [](RecordChannel& ch, CommandBuffer& cb, const std::shared_ptr<Buffer>& source,
             const py::object& offset, const std::shared_ptr<Buffer>& stop_flag) {
            if (!source) throw py::type_error("encode_push: source is None");
            ch.encode_push(cb, source, checked_uint(offset, "encode_push(offset)", UINT64_MAX),
                           stop_flag);
          },
          py::arg("command_buffer"), py::arg("source"), py::arg("offset") = 0,
          py::arg("stop_flag") = nullptr)
      .def("encode_close", &RecordChannel::encode_close, py::arg("command_buffer"))
      .def("reader", &RecordChannel::reader);

  py::class_<RecordReader, std::shared_ptr<RecordReader>>(m, "RecordReader",
                                                          "The CPU side of a RecordChannel.")
      .def(
          "read_into",
          [](RecordReader& r, py::handle out) {
            size_t records = 0;
            void* data = record_storage(out, r.channel()->record_bytes(), "read_into", records);
            if (records != 1) {
              throw py::value_error("read_into: out must hold exactly one record");
            }
            if (r.channel()->record_bytes() >= kReleaseGilAboveBytes) {
              ReleaseGil nogil;
              return r.try_read(data);
            }
            return r.try_read(data);
          },
          py::arg("out"), "Copies the next record into `out`; False when none is readable.")
      .def(
          "drain_into",
          [](RecordReader& r, py::handle out) {
            size_t records = 0;
            void* data = record_storage(out, r.channel()->record_bytes(), "drain_into", records);
            if (records * r.channel()->record_bytes() >= kReleaseGilAboveBytes) {
              ReleaseGil nogil;
              return r.drain_into(data, records);
            }
            return r.drain_into(data, records);
          },
          py::arg("out"), "Copies up to len(out) records; the count. Never blocks.")
      .def(
          "wait",
          [](RecordReader& r, const py::object& timeout, const std::shared_ptr<CommandBuffer>& until) {
            return wait_from_python(r, timeout, until);
          },
          py::arg("timeout") = py::none(), py::arg("until") = nullptr)
      .def_property(
          "wait_strategy",
          [](const RecordReader& r) { return wait_strategy_name(r.wait_strategy()); },
          [](RecordReader& r, const py::handle& name) { r.set_wait_strategy(strategy_from(name)); },
          "How wait() idles: 'adaptive' (default), 'spin' or 'backoff' (README, \"Waiting\").")
      .def("close", &RecordReader::close)
      .def_property_readonly("closed", &RecordReader::closed)
      .def_property_readonly("exhausted", &RecordReader::exhausted)
      .def_property_readonly("dropped", &RecordReader::dropped)
      .def_property_readonly("delivered", &RecordReader::delivered)
      .def_property_readonly("position", &RecordReader::position)
      .def_property_readonly("last_index", &RecordReader::last_index);
}

}  // namespace fc::bind
