// Minimal detectron2._C used by install.sh. The PyPI sdist of detectron2 0.6 lacks its C++ kernels;
// FOSS-D2 uses none of them (ROIAlign and NMS come from torchvision), so only the introspection
// functions read by detectron2.utils.collect_env are defined here.
#include <torch/extension.h>

namespace {
std::string get_compiler_version() {
#if defined(__GNUC__)
  return "GCC " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__);
#else
  return "unknown";
#endif
}
std::string get_cuda_version() { return "not built (FOSS-D2 stub _C)"; }
bool has_cuda() { return false; }
}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("get_compiler_version", &get_compiler_version, "compiler used to build this module");
  m.def("get_cuda_version", &get_cuda_version, "CUDA version this module was built with");
  m.def("has_cuda", &has_cuda, "whether this module has CUDA kernels");
}
