// ControlBlock (docs/protocol.md "Control block") and the control block's layout table.
#include "bindings/bind_common.hpp"
#include "channel/control_block.hpp"

namespace fc::bind {

void bind_control(py::module_& m) {
  m.def(
      "control_layout",
      [] {
        py::dict table;
        FC_CONTROL_WORDS(FC_BIND_LAYOUT_ENTRY)
        return table;
      },
      "The control block's words: {name: {word, writer, meaning}}, from the C++ table.");
  m.attr("CONTROL_NO_LIMIT") = control::kNoLimit;

  py::class_<ControlBlock, std::shared_ptr<ControlBlock>>(m, "ControlBlock", R"doc(
A per-run control block: shared words the CPU writes while a command buffer runs and every
decode step given it (lm_decode_step's `control`, with use_control=1) reads before sampling.

    control = fc.ControlBlock(dev)
    cb.dispatch("lm_decode_step", 1, ..., control=control, use_control=1)
    control.cancel()          # from any thread: the next step stops (stop flag 4), emits nothing
    control.stop_after(16)    # at most 16 more tokens than the device reported (stop flag 5)

Requests are idempotent and any thread may make them; reset() clears them for a new run
(only while no command buffer using the block is in flight).)doc")
      .def(py::init([](const std::shared_ptr<Device>& device) {
             if (!device) throw py::type_error("ControlBlock(device): device is None");
             return std::make_shared<ControlBlock>(device);
           }),
           py::arg("device"))
      .def_property_readonly("device", &ControlBlock::device)
      .def_property_readonly("buffer", &ControlBlock::buffer,
                             "The shared Buffer that a kernel's `control` parameter takes (the "
                             "ControlBlock itself is accepted too).")
      .def("cancel", &ControlBlock::cancel,
           "Requests a stop: the next decode step that reads the block stops before sampling "
           "(stop flag 4). Idempotent; safe from any thread.")
      .def(
          "stop_at",
          [](ControlBlock& c, const py::object& limit) {
            c.stop_at(checked_u32(limit, "stop_at(limit)"));
          },
          py::arg("limit"),
          "Steps stop (stop flag 5) once the turn has generated `limit` tokens; replaces any "
          "limit (0xffffffff: none).")
      .def(
          "stop_after",
          [](ControlBlock& c, const py::object& more) {
            return c.stop_after(checked_u32(more, "stop_after(n)"));
          },
          py::arg("n"),
          "Stops the turn after at most `n` tokens more than the device last reported "
          "(`generated`): sets the absolute limit generated + n unless a smaller one is set. "
          "Returns the limit in force; repeating a request never raises it.")
      .def("reset", &ControlBlock::reset,
           "Clears every request and count, for a new run. Only while no command buffer using "
           "the block is in flight.")
      .def_property_readonly("cancelled", &ControlBlock::cancel_requested)
      .def_property_readonly("stop_limit",
                             [](const ControlBlock& c) -> std::optional<uint32_t> {
                               const uint32_t limit = c.stop_limit();
                               if (limit == control::kNoLimit) return std::nullopt;
                               return limit;
                             },
                             "The generated-token limit in force, or None.")
      .def_property_readonly("generated", &ControlBlock::generated,
                             "Tokens generated in the turn, as the last emitting step reported.")
      .def_property_readonly("stopped", &ControlBlock::stopped,
                             "The stop flag (4 cancelled, 5 stop requested) a step set because "
                             "of the block; 0 while none did.")
      .def_property_readonly(
          "words",
          [](py::object self) {
            const auto& c = self.cast<const ControlBlock&>();
            return raw_view(static_cast<uint32_t*>(c.buffer()->host_ptr()), control::kWords,
                            self);
          },
          "A read-only numpy view of the block's words (control_layout() names them).")
      .def("__repr__", [](const ControlBlock& c) {
        return "<foundry_channels.ControlBlock cancelled=" +
               std::string(c.cancel_requested() ? "True" : "False") +
               " generated=" + std::to_string(c.generated()) +
               " stopped=" + std::to_string(c.stopped()) + ">";
      });
}

}  // namespace fc::bind
