// Host-to-device channels (docs/protocol.md "Host-to-device channels"): the layout table.
#include "bindings/bind_common.hpp"
#include "channel/h2d_layout.hpp"

namespace fc::bind {

void bind_h2d(py::module_& m) {
  m.def(
      "h2d_layout",
      [] {
        py::dict table;
        FC_H2D_HEADER_WORDS(FC_BIND_LAYOUT_ENTRY)
        return table;
      },
      "The host-to-device channel's header words: {name: {word, writer, meaning}}, from the "
      "C++ table.");
  m.attr("H2D_MAGIC") = h2d::kMagic;
  m.attr("H2D_MAX_CAPACITY") = h2d::kMaxCapacity;
}

}  // namespace fc::bind
