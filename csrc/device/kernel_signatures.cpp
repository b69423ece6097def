// The run-time form of the kernel table (csrc/kernels/kernel_list.hpp): names, and each
// kernel's named parameters with their slots, checked at compile time.
#include <cstring>

#include "kernels/kernel_list.hpp"

namespace fc {
namespace {

constexpr ParamKind kind_of_BUF = ParamKind::Buffer;
constexpr ParamKind kind_of_CHAN = ParamKind::Channel;
constexpr ParamKind kind_of_SHARED = ParamKind::Shared;
constexpr ParamKind kind_of_U32 = ParamKind::U32;
#define FC_PARAM_OPTIONAL_BUF false
#define FC_PARAM_OPTIONAL_BUF_OPT true
#define FC_PARAM_OPTIONAL_CHAN false
#define FC_PARAM_OPTIONAL_CHAN_OPT true
#define FC_PARAM_OPTIONAL_SHARED false
#define FC_PARAM_OPTIONAL_SHARED_OPT true
#define FC_PARAM_OPTIONAL_U32 false
#define FC_PARAM_OPTIONAL_U32_OPT true
#define FC_PARAM_INFO(kind, slot, name) \
  KernelParam{#name, FC_PP_CAT(kind_of_, FC_BASE_##kind), slot, FC_PARAM_OPTIONAL_##kind},

// Every kernel's parameter list; a leading placeholder keeps kernels without parameters legal.
#define FC_PARAM_TABLE(kname) \
  constexpr KernelParam kname##_params[] = {KernelParam{}, FC_SIGNATURE_##kname(FC_PARAM_INFO)};
FC_KERNELS(FC_PARAM_TABLE)
#undef FC_PARAM_TABLE

// A signature is valid when its buffer slots (three for a channel) and its scalar slots are
// in range and used once each, and its names are unique.
template <size_t N>
constexpr bool valid_signature(const KernelParam (&params)[N]) {
  unsigned buffers = 0, scalars = 0;
  for (size_t i = 1; i < N; ++i) {
    const KernelParam& p = params[i];
    const int width = p.kind == ParamKind::Channel ? 3 : 1;
    const int limit = p.kind == ParamKind::U32 ? kScalarSlots : kBufferSlots;
    if (p.slot < 0 || p.slot + width > limit) return false;
    unsigned& used = p.kind == ParamKind::U32 ? scalars : buffers;
    const unsigned mask = ((1u << width) - 1u) << p.slot;
    if (used & mask) return false;
    used |= mask;
    for (size_t j = 1; j < i; ++j) {
      const char* a = params[j].name;
      const char* b = p.name;
      while (*a && *a == *b) ++a, ++b;
      if (*a == *b) return false;
    }
  }
  return true;
}
#define FC_CHECK_SIGNATURE(kname)                         \
  static_assert(valid_signature(kname##_params),          \
                "kernel_list.hpp: FC_SIGNATURE_" #kname   \
                " reuses a slot or a name, or a slot is out of range");
FC_KERNELS(FC_CHECK_SIGNATURE)
#undef FC_CHECK_SIGNATURE

const KernelSignature kSignatures[] = {
#define FC_SIGNATURE_ENTRY(kname)                                             \
  KernelSignature{#kname, kname##_params + 1,                                 \
                  static_cast<int>(sizeof(kname##_params) / sizeof(KernelParam)) - 1},
    FC_KERNELS(FC_SIGNATURE_ENTRY)
#undef FC_SIGNATURE_ENTRY
};
static_assert(sizeof(kSignatures) / sizeof(kSignatures[0]) == kKernelCount);

}  // namespace

const char* kernel_name(KernelId id) {
  int i = static_cast<int>(id);
  return (i >= 0 && i < kKernelCount) ? kSignatures[i].name : "<unknown kernel>";
}

KernelId kernel_by_name(const char* name) {
  for (int i = 0; i < kKernelCount; ++i) {
    if (std::strcmp(kSignatures[i].name, name) == 0) return static_cast<KernelId>(i);
  }
  return KernelId::count_;
}

const KernelSignature& kernel_signature(KernelId id) { return kSignatures[static_cast<int>(id)]; }

}  // namespace fc
