// Device, Buffer, Queue, CommandBuffer.
#include "bindings/bind_common.hpp"
#include "channel/channel.hpp"
#include "device/device.hpp"

namespace fc::bind {
namespace {

Storage parse_storage(const std::string& s) {
  if (s == "shared") return Storage::Shared;
  if (s == "private") return Storage::Private;
  throw py::value_error("storage must be 'shared' or 'private', got '" + s + "'");
}

// A Python callable that may be destroyed on a device thread: take the GIL to drop it.
std::shared_ptr<py::function> hold_callable(py::function fn) {
  return std::shared_ptr<py::function>(new py::function(std::move(fn)), [](py::function* f) {
    py::gil_scoped_acquire gil;
    delete f;
  });
}

py::array buffer_view(const std::shared_ptr<Buffer>& buffer, py::handle owner) {
  buffer->device()->check_usable("view a buffer");
  if (!buffer->host_ptr()) {
    throw py::value_error("a 'private' buffer lives in device memory and has no CPU view; "
                          "allocate it with storage='shared' to read it from Python");
  }
  return py::array(py::dtype::of<uint8_t>(), {static_cast<py::ssize_t>(buffer->size_bytes())},
                   {1}, buffer->host_ptr(), owner);
}

}  // namespace

void bind_device(py::module_& m) {
  py::class_<Device, std::shared_ptr<Device>>(m, "Device", R"doc(
A compute device: 'cpu' (host device thread, the default), 'cuda' / 'cuda:N' or 'metal'.
Raises BackendUnavailableError with the reason when the backend cannot run here.)doc")
      .def(py::init([](const std::string& spec) { return open_device(spec); }),
           py::arg("spec") = "cpu")
      .def_property_readonly("backend", &Device::backend)
      .def_property_readonly("name", &Device::name)
      .def_property_readonly("closed", &Device::closed)
      .def(
          "buffer",
          [](Device& d, size_t nbytes, const std::string& storage) {
            if (nbytes == 0) throw py::value_error("buffer(): nbytes must be at least 1");
            return d.new_buffer(nbytes, parse_storage(storage));
          },
          py::arg("nbytes"), py::arg("storage") = "shared",
          "Allocates a buffer; 'shared' memory is visible to the device and the CPU.")
      .def("new_queue", &Device::new_queue, "A new in-order command queue.")
      .def("close", &Device::close, py::call_guard<py::gil_scoped_release>(),
           "Stops the device. Work not yet started fails; later use raises DeviceClosedError.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Device& d, py::args) {
        py::gil_scoped_release nogil;
        d.close();
      })
      .def("__repr__", [](const Device& d) {
        return "<foundry_channels.Device " + d.backend() + ": " + d.name() +
               (d.closed() ? " (closed)>" : ">");
      });

  py::class_<Buffer, std::shared_ptr<Buffer>>(m, "Buffer", "Device memory; see Device.buffer().")
      .def_property_readonly("nbytes", &Buffer::size_bytes)
      .def_property_readonly("storage",
                             [](const Buffer& b) {
                               return b.storage() == Storage::Shared ? "shared" : "private";
                             })
      .def_property_readonly("device", &Buffer::device)
      .def(
          "numpy",
          [](py::object self, py::object dtype) {
            auto buffer = self.cast<std::shared_ptr<Buffer>>();
            return buffer_view(buffer, self).attr("view")(dtype);
          },
          py::arg("dtype") = "uint32",
          "A zero-copy numpy view of a shared buffer (it keeps the buffer alive). The device "
          "may write it at any time while work is in flight.");

  py::class_<Window, std::shared_ptr<Window>>(m, "Window", R"doc(
Dispatches recorded once and committed many times with Queue.replay(window) (CUDA: a graph
captured once and relaunched). Make one with CommandBuffer.to_window().)doc")
      .def_property_readonly("dispatch_count", [](const Window& w) { return w.dispatches().size(); });

  py::class_<Queue, std::shared_ptr<Queue>>(m, "Queue", "An in-order queue of command buffers.")
      .def("command_buffer", &Queue::command_buffer)
      .def("replay", &Queue::replay, py::arg("window"),
           "Commits a new command buffer that runs the window's dispatches; returns it.")
      .def_property_readonly("device", &Queue::device);

  py::class_<CommandBuffer, std::shared_ptr<CommandBuffer>>(m, "CommandBuffer", R"doc(
Records kernel dispatches; committed once; runs asynchronously after every earlier command
buffer of its queue.)doc")
      .def(
          "channel_init",
          [](CommandBuffer& cb, ChannelU32& ch, bool zero) { ch.encode_init(cb, zero); },
          py::arg("channel"), py::arg("zero") = false,
          "Encodes channel_u32_init: the channel's header to empty (and its ring to zero).")
      .def(
          "channel_push",
          [](CommandBuffer& cb, ChannelU32& ch, uint32_t value) { ch.encode_push(cb, value); },
          py::arg("channel"), py::arg("value"), "Encodes a push of an immediate u32 value.")
      .def(
          "channel_push",
          [](CommandBuffer& cb, ChannelU32& ch, const std::shared_ptr<Buffer>& source,
             uint32_t count, uint32_t stride, uint32_t offset,
             const std::shared_ptr<Buffer>& stop_flag) {
            ch.encode_push_from(cb, source, count, stride, offset, stop_flag);
          },
          py::arg("channel"), py::arg("value"), py::arg("count") = 1, py::arg("stride") = 1,
          py::arg("offset") = 0, py::arg("stop_flag") = nullptr,
          "Encodes a push of `count` u32 words read on the device from a buffer that an "
          "earlier kernel of this command buffer wrote (word `offset`, then every `stride`). With "
          "`stop_flag` (a u32 buffer), the push is skipped on the device once stop_flag[0] != 0.")
      .def(
          "channel_push_sequence",
          [](CommandBuffer& cb, ChannelU32& ch, uint32_t start, uint32_t count) {
            ch.encode_push_sequence(cb, start, count);
          },
          py::arg("channel"), py::arg("start"), py::arg("count"),
          "Encodes one kernel that pushes start..start+count-1, each published on its own.")
      .def(
          "channel_close", [](CommandBuffer& cb, ChannelU32& ch) { ch.encode_close(cb); },
          py::arg("channel"), "Encodes a close: readers end once they drained every item.")
      .def(
          "counter",
          [](CommandBuffer& cb, const std::shared_ptr<Buffer>& state,
             const std::shared_ptr<Buffer>& out, uint32_t multiplier, uint32_t addend) {
            if (state->size_bytes() < 4 || out->size_bytes() < 4) {
              throw py::value_error("counter(): state and out must each hold at least one u32");
            }
            cb.dispatch(KernelId::counter_u32, 1, {state, out}, {multiplier, addend});
          },
          py::arg("state"), py::arg("out"), py::arg("multiplier") = 1, py::arg("addend") = 0,
          "Encodes counter_u32: out[0] = state[0] * multiplier + addend; state[0] += 1, on the "
          "device.")
      .def(
          "dispatch",
          [](CommandBuffer& cb, const std::string& kernel, uint32_t grid,
             const std::vector<std::shared_ptr<Buffer>>& buffers,
             const std::vector<uint32_t>& scalars) {
            KernelId id = kernel_by_name(kernel.c_str());
            if (id == KernelId::count_) throw py::value_error("unknown kernel '" + kernel + "'");
            if (buffers.size() > kBufferSlots || scalars.size() > kScalarSlots) {
              throw py::value_error("dispatch(): at most " + std::to_string(kBufferSlots) +
                                    " buffers and " + std::to_string(kScalarSlots) + " scalars");
            }
            std::array<std::shared_ptr<Buffer>, kBufferSlots> b{};
            std::array<uint32_t, kScalarSlots> s{};
            std::copy(buffers.begin(), buffers.end(), b.begin());
            std::copy(scalars.begin(), scalars.end(), s.begin());
            cb.dispatch(id, grid, b, s);
          },
          py::arg("kernel"), py::arg("grid"), py::arg("buffers"), py::arg("scalars"),
          "Low-level: encode any kernel by name (buffers may contain None).")
      .def("commit", &CommandBuffer::commit)
      .def("to_window", &CommandBuffer::to_window,
           "A Window holding a copy of the recorded dispatches, for Queue.replay().")
      .def(
          "wait_until_completed",
          [](CommandBuffer& cb, std::optional<double> timeout) {
            double t = timeout_seconds(timeout, "wait_until_completed");
            auto check = python_interrupt_check();
            py::gil_scoped_release nogil;
            return cb.wait_until_completed(t, check);
          },
          py::arg("timeout") = py::none(),
          "Blocks until done; True when completed, False on timeout; raises CommandBufferError "
          "if the command buffer failed.")
      .def(
          "add_completed_handler",
          [](CommandBuffer& cb, py::function fn) {
            auto held = hold_callable(std::move(fn));
            cb.add_completed_handler([held](CommandBuffer& done) {
              py::gil_scoped_acquire gil;
              try {
                (*held)(done.shared_from_this());
              } catch (py::error_already_set& e) {
                e.discard_as_unraisable("foundry_channels completed handler");
              }
            });
          },
          py::arg("handler"),
          "handler(command_buffer) runs once the command buffer completed or failed.")
      .def_property_readonly("status",
                             [](const CommandBuffer& cb) { return status_name(cb.status()); })
      .def_property_readonly("error", [](const CommandBuffer& cb) -> std::optional<std::string> {
        if (cb.status() != CommandBufferStatus::Error) return std::nullopt;
        return cb.error_message();
      })
      .def_property_readonly("dispatch_count", &CommandBuffer::dispatch_count);
}

}  // namespace fc::bind
