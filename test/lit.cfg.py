# -*- Python -*-
# lit configuration of the ropeattn regression suite (check-ropeattn).

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "ROPEATTN"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.ropeattn_obj_root, "test")
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py",
                   "Inputs"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%ropeattn_src_root", config.ropeattn_src_root))
config.substitutions.append(("%ropeattn_obj_root", config.ropeattn_obj_root))
config.substitutions.append(("%mlir_dir", config.mlir_dir))
config.substitutions.append(("%cmake_exe", config.cmake_command))
config.substitutions.append(("%generator", config.cmake_generator))
config.substitutions.append(("%cxx", config.cxx_compiler))
config.substitutions.append(("%python", config.ropeattn_python))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

tool_dirs = [config.ropeattn_tools_dir, config.llvm_tools_dir]
tools = [ToolSubst("rope-opt", unresolved="fatal")]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.ropeattn_tools_dir, append_path=True)

if config.sanitizers in ("ON", "1", "TRUE", "True"):
    config.available_features.add("asan")
    # libMLIR.so is not instrumented: leaks inside it are not ours to report,
    # and LLVM's BumpPtrAllocator, instantiated from headers in our
    # (instrumented) tools, poisons arena memory that the uninstrumented
    # library then writes legitimately (a mixed-instrumentation false
    # "use-after-poison"), so manual poisoning is turned off.
    config.environment["ASAN_OPTIONS"] = (
        "detect_leaks=0:abort_on_error=1:allow_user_poisoning=0")
    config.environment["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"

# CUDA: `ptxas` when the build found a CUDA toolkit with ptxas (cubin
# generation), `cuda-runtime` when libropeattn_cuda_runtime.so was built.
# Execution on a GPU is gated in test/Integration/CUDA/lit.local.cfg.
config.substitutions.append(("%cuda_toolkit", config.cuda_toolkit_dir))
if config.cuda_toolkit_dir and os.path.exists(
        os.path.join(config.cuda_toolkit_dir, "bin", "ptxas")):
    config.available_features.add("ptxas")
if config.cuda_toolkit_dir:
    config.available_features.add("cuda-runtime")
