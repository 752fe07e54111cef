//===- JitEngine.h - JIT compilation of lowered ropeattn modules -*- C++
//-*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// What rope-run and the C API share to execute a module lowered by
// rope-lower-to-cpu: the dialect/translation registry, the shared libraries
// the generated code calls, and an MLIR ExecutionEngine for the host CPU.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_EXECUTIONENGINE_JITENGINE_H
#define ROPEATTN_EXECUTIONENGINE_JITENGINE_H

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace mlir {
class DialectRegistry;
class ModuleOp;

namespace ropeattn {

/// Adds every upstream dialect and extension, the ropeattn dialect and the
/// LLVM IR translations (builtin, LLVM, OpenMP) the JIT needs.
void registerJitDialects(DialectRegistry &registry);

/// Initializes the native target and its asm printer (idempotent).
void initializeJitTarget();

/// The shared libraries generated code may call, those that exist: the MLIR
/// C runner utils and the OpenMP runtime of the LLVM found at build time,
/// then libropeattn_runtime.so from the first of `runtimeDirs` that has it.
std::vector<std::string>
getDefaultJitLibraries(llvm::ArrayRef<std::string> runtimeDirs);

/// Loads `path` permanently into the process (so that a JIT can resolve its
/// symbols); an error naming the path when it is missing or cannot be loaded.
llvm::Error loadSharedLibrary(llvm::StringRef path);

/// JIT-compiles `module` (LLVM dialect) for the host CPU (its name and
/// features, e.g. AVX-512) at LLVM optimization level `optLevel` (0-3),
/// resolving external symbols in `libraries`.
llvm::Expected<std::unique_ptr<ExecutionEngine>>
createJitEngine(ModuleOp module, llvm::ArrayRef<std::string> libraries,
                unsigned optLevel);

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_EXECUTIONENGINE_JITENGINE_H
