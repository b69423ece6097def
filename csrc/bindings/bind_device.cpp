// Device, Buffer, Queue, CommandBuffer.
#include <cstdlib>

#include "bindings/bind_common.hpp"
#include "channel/channel.hpp"
#include "channel/control_block.hpp"
#include "channel/record_channel.hpp"
#include "device/device.hpp"

namespace fc::bind {
namespace {

Storage parse_storage(const std::string& s) {
  if (s == "shared") return Storage::Shared;
  if (s == "private") return Storage::Private;
  throw py::value_error("storage must be 'shared' or 'private', got '" + s + "'");
}

// A Python callable that may be destroyed on a device thread: take the GIL to drop it (or,
// while the interpreter is finalising, leak it: the GIL can no longer be taken safely).
std::shared_ptr<py::function> hold_callable(py::function fn) {
  return std::shared_ptr<py::function>(new py::function(std::move(fn)), [](py::function* f) {
    with_gil([f] { delete f; });
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

const char* kind_name(ParamKind kind) {
  switch (kind) {
    case ParamKind::Buffer: return "a Buffer";
    case ParamKind::Channel: return "a ChannelU32 or RecordChannel";
    case ParamKind::Shared: return "a ControlBlock or a shared Buffer";
    case ParamKind::U32: return "a u32 int";
  }
  return "?";
}

std::string parameter_names(const KernelSignature& sig) {
  std::string names;
  for (int i = 0; i < sig.count; ++i) names += (i ? ", " : "") + std::string(sig.params[i].name);
  return sig.count ? names : "no arguments";
}

// Python's named dispatch: the kwargs are matched against the kernel's signature from the
// kernel table and put into their slots; every check happens before anything is recorded.
void dispatch_by_name(CommandBuffer& cb, const std::string& kernel, const py::object& grid_arg,
                      const py::kwargs& kwargs) {
  const KernelId id = kernel_by_name(kernel.c_str());
  if (id == KernelId::count_) {
    throw py::value_error("dispatch(): unknown kernel '" + kernel +
                          "'; fc.kernel_names() lists them");
  }
  const KernelSignature& sig = kernel_signature(id);
  const std::string where = "dispatch('" + kernel + "')";
  for (auto item : kwargs) {
    const std::string name = py::str(item.first);
    bool known = false;
    for (int i = 0; i < sig.count && !known; ++i) known = name == sig.params[i].name;
    if (!known) {
      throw py::type_error(where + ": unknown argument '" + name + "'; it takes " +
                           parameter_names(sig));
    }
  }
  const uint32_t grid = checked_u32(grid_arg, (where + ": grid").c_str());
  std::array<std::shared_ptr<Buffer>, kBufferSlots> buffers{};
  std::array<uint32_t, kScalarSlots> scalars{};
  for (int i = 0; i < sig.count; ++i) {
    const KernelParam& p = sig.params[i];
    const py::object value = kwargs.contains(p.name) ? py::object(kwargs[p.name]) : py::none();
    const std::string what = where + ": argument '" + p.name + "'";
    if (value.is_none()) {
      if (p.optional) continue;
      throw py::type_error(where + ": missing argument '" + p.name + "' (" + kind_name(p.kind) +
                           ")");
    }
    const auto wrong_type = [&] {
      return py::type_error(what + " must be " + kind_name(p.kind) + ", got " +
                            std::string(py::str(py::type::of(value).attr("__name__"))));
    };
    switch (p.kind) {
      case ParamKind::Buffer:
        if (!py::isinstance<Buffer>(value)) throw wrong_type();
        buffers[p.slot] = value.cast<std::shared_ptr<Buffer>>();
        break;
      case ParamKind::Channel: {
        // A record channel has a u32 channel's header and cursor (record_kernels.inc), so a
        // kernel can push records from inside its body (the denoise sample's steps).
        if (py::isinstance<RecordChannel>(value)) {
          const ChannelArg ch = value.cast<std::shared_ptr<RecordChannel>>()->kernel_buffers();
          buffers[p.slot] = ch.header.buffer;
          buffers[p.slot + 1] = ch.data.buffer;
          buffers[p.slot + 2] = ch.cursor.buffer;
          break;
        }
        if (!py::isinstance<ChannelU32>(value)) throw wrong_type();
        const auto ch = value.cast<std::shared_ptr<ChannelU32>>();
        buffers[p.slot] = ch->header_buffer();
        buffers[p.slot + 1] = ch->data_buffer();
        buffers[p.slot + 2] = ch->cursor_buffer();
        break;
      }
      case ParamKind::Shared:
        // Storage is checked where every encoder's is (encode_rules.cpp).
        if (py::isinstance<ControlBlock>(value)) {
          buffers[p.slot] = value.cast<std::shared_ptr<ControlBlock>>()->buffer();
          break;
        }
        if (!py::isinstance<Buffer>(value)) throw wrong_type();
        buffers[p.slot] = value.cast<std::shared_ptr<Buffer>>();
        break;
      case ParamKind::U32:
        scalars[p.slot] = checked_u32(value, what.c_str());
        break;
    }
  }
  cb.dispatch(id, grid, buffers, scalars);
}

}  // namespace

void bind_device(py::module_& m) {
  py::class_<Device, std::shared_ptr<Device>>(m, "Device", R"doc(
A compute device: 'cpu' (host device thread, the default), 'cuda' / 'cuda:N' or 'metal'.
Raises BackendUnavailableError with the reason when the backend cannot run here.)doc")
      .def(py::init([](const std::string& spec, const py::object& slot_protocol) {
             // The slot protocol of channels made without one: the argument, else
             // FOUNDRY_CHANNELS_SLOT_PROTOCOL, else 1 (docs/protocol.md).
             uint64_t protocol = 0;
             if (!slot_protocol.is_none()) {
               protocol = checked_uint(slot_protocol, "Device(slot_protocol)", 2);
               if (protocol == 0) throw py::value_error("Device(slot_protocol): 1 or 2, got 0");
             } else if (const char* env = std::getenv("FOUNDRY_CHANNELS_SLOT_PROTOCOL");
                        env && *env) {
               const std::string text(env);
               if (text != "1" && text != "2") {
                 throw py::value_error("FOUNDRY_CHANNELS_SLOT_PROTOCOL must be 1 or 2, got '" +
                                       text + "'");
               }
               protocol = text == "2" ? 2 : 1;
             }
             auto device = open_device(spec);
             if (protocol) device->set_slot_protocol(static_cast<uint32_t>(protocol));
             return device;
           }),
           py::arg("spec") = "cpu", py::kw_only(), py::arg("slot_protocol") = py::none())
      .def_property_readonly("slot_protocol", &Device::slot_protocol,
                             "The slot protocol of channels made on this device without one: 1 "
                             "(one 8-byte store per slot) or 2 (32-bit stores, tag checked "
                             "before and after the value); docs/protocol.md.")
      .def_property_readonly("backend", &Device::backend)
      .def_property_readonly("name", &Device::name)
      .def_property_readonly("closed", &Device::closed)
      .def(
          "buffer",
          [](Device& d, const py::object& nbytes, const std::string& storage) {
            uint64_t n = checked_uint(nbytes, "buffer(nbytes)", uint64_t{1} << 40);
            if (n == 0) throw py::value_error("buffer(nbytes): nbytes must be at least 1");
            return d.new_buffer(static_cast<size_t>(n), parse_storage(storage));
          },
          py::arg("nbytes"), py::arg("storage") = "shared",
          "Allocates a buffer; 'shared' memory is visible to the device and the CPU.")
      .def("new_queue", &Device::new_queue, "A new in-order command queue.")
      .def(
          "close",
          [](Device& d) {
            ReleaseGil nogil;
            d.close();
          },
          "Stops the device. On 'cpu' the running command buffer stops at its next dispatch "
          "and fails, as does queued work; later use raises DeviceClosedError.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Device& d, py::args) {
        ReleaseGil nogil;
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
      // Commits: the GIL is released as around CommandBuffer.commit (below says why).
      .def("replay", &Queue::replay, py::arg("window"), py::call_guard<ReleaseGil>(),
           "Commits a new command buffer that runs the window's dispatches; returns it.")
      .def_property_readonly("device", &Queue::device);

  py::class_<CommandBuffer, std::shared_ptr<CommandBuffer>>(m, "CommandBuffer", R"doc(
Records kernel dispatches; committed once; runs asynchronously after every earlier command
buffer of its queue.)doc")
      .def(
          "channel_init", [](CommandBuffer& cb, ChannelU32& ch) { ch.encode_init(cb); },
          py::arg("channel"),
          "Encodes channel_u32_init: the channel's header to empty, every ring slot reset, and "
          "a new epoch (a reader attached to the previous run raises ChannelError once).")
      .def(
          "channel_push",
          [](CommandBuffer& cb, ChannelU32& ch, const py::object& value, const py::object& count,
             const py::object& stride, const py::object& offset,
             const std::shared_ptr<Buffer>& stop_flag) {
            if (py::isinstance<Buffer>(value)) {
              ch.encode_push_from(cb, value.cast<std::shared_ptr<Buffer>>(),
                                  checked_u32(count, "channel_push(count)"),
                                  checked_u32(stride, "channel_push(stride)"),
                                  checked_u32(offset, "channel_push(offset)"), stop_flag);
              return;
            }
            if (stop_flag || !count.equal(py::int_(1)) || !stride.equal(py::int_(1)) ||
                !offset.equal(py::int_(0))) {
              throw py::type_error("channel_push(value): count, stride, offset and stop_flag "
                                   "apply to a push from a Buffer, not to an immediate value");
            }
            ch.encode_push(cb, checked_u32(value, "channel_push(value)"));
          },
          py::arg("channel"), py::arg("value"), py::arg("count") = 1, py::arg("stride") = 1,
          py::arg("offset") = 0, py::arg("stop_flag") = nullptr,
          "Encodes a push. `value` is an immediate u32, or a Buffer: then `count` u32 words read "
          "on the device from it (an earlier kernel of this command buffer wrote them; word "
          "`offset`, then every `stride`). With `stop_flag` (a u32 buffer), the push is skipped "
          "on the device once stop_flag[0] != 0.")
      .def(
          "channel_push_sequence",
          [](CommandBuffer& cb, ChannelU32& ch, const py::object& start, const py::object& count) {
            ch.encode_push_sequence(cb, checked_u32(start, "channel_push_sequence(start)"),
                                    checked_u32(count, "channel_push_sequence(count)"));
          },
          py::arg("channel"), py::arg("start"), py::arg("count"),
          "Encodes one kernel that pushes start..start+count-1, each published on its own.")
      .def(
          "channel_close", [](CommandBuffer& cb, ChannelU32& ch) { ch.encode_close(cb); },
          py::arg("channel"), "Encodes a close: readers end once they drained every item.")
      .def(
          "counter",
          [](CommandBuffer& cb, const std::shared_ptr<Buffer>& state,
             const std::shared_ptr<Buffer>& out, const py::object& multiplier,
             const py::object& addend) {
            if (!state || !out) throw py::type_error("counter(): state and out must be Buffers");
            if (state->size_bytes() < 4 || out->size_bytes() < 4) {
              throw py::value_error("counter(): state and out must each hold at least one u32");
            }
            kernel_args::counter_u32 args;
            args.state = state;
            args.out = out;
            args.multiplier = checked_u32(multiplier, "counter(multiplier)");
            args.addend = checked_u32(addend, "counter(addend)");
            encode(cb, 1, args);
          },
          py::arg("state"), py::arg("out"), py::arg("multiplier") = 1, py::arg("addend") = 0,
          "Encodes counter_u32: out[0] = state[0] * multiplier + addend; state[0] += 1, on the "
          "device.")
      .def("dispatch", &dispatch_by_name, py::arg("kernel"), py::arg("grid"), R"doc(
Encodes any kernel by name with named arguments: dispatch("lm_prefill", 1, state=..., ...).
Buffers are Buffers, a channel parameter takes a ChannelU32 (its three buffers), a shared
parameter a ControlBlock (or a 'shared' Buffer the CPU writes while the kernel runs), scalars are
u32 ints; an optional buffer may be None or left out, an optional scalar defaults to 0.
fc.kernel_signature(name) lists a kernel's parameters. A wrong or missing name or a wrong
type raises TypeError before anything is recorded.)doc")
      // The GIL is released on every backend: a commit may block until earlier command buffers
      // complete (Metal when 64 are in flight, a CUDA launch when the launch queue is full),
      // and completion handlers written in Python take the GIL (with_gil) to run.
      .def("commit", &CommandBuffer::commit, py::call_guard<ReleaseGil>(),
           "Hands the recorded work to the device; returns without waiting for it to run.")
      .def("to_window", &CommandBuffer::to_window,
           "A Window holding a copy of the recorded dispatches, for Queue.replay().")
      .def(
          "wait_until_completed",
          [](CommandBuffer& cb, const py::object& timeout) {
            double t = timeout_seconds(timeout, "wait_until_completed");
            auto check = python_interrupt_check();
            ReleaseGil nogil;
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
              with_gil([&] {
                try {
                  (*held)(done.shared_from_this());
                } catch (py::error_already_set& e) {
                  e.discard_as_unraisable("foundry_channels completed handler");
                }
              });
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
