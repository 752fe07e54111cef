//===- JitEngine.cpp - JIT compilation of lowered ropeattn modules --------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/ExecutionEngine/JitEngine.h"

#include "ropeattn/InitRopeAttn.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/DynamicLibrary.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

#include <cstdlib>

#include <algorithm>
#include <mutex>

#ifndef ROPEATTN_LLVM_LIBRARY_DIR
#define ROPEATTN_LLVM_LIBRARY_DIR "/usr/lib/llvm-22/lib"
#endif

using namespace mlir;

void ropeattn::registerJitDialects(DialectRegistry &registry) {
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerRopeAttnDialect(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
}

void ropeattn::initializeJitTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

std::vector<std::string>
ropeattn::getDefaultJitLibraries(llvm::ArrayRef<std::string> runtimeDirs) {
  std::vector<std::string> libs;
  for (const char *name : {"libmlir_c_runner_utils.so", "libomp.so"}) {
    llvm::SmallString<256> path(ROPEATTN_LLVM_LIBRARY_DIR);
    llvm::sys::path::append(path, name);
    if (llvm::sys::fs::exists(path))
      libs.push_back(path.str().str());
  }
  for (const std::string &dir : runtimeDirs) {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, "libropeattn_runtime.so");
    if (llvm::sys::fs::exists(path)) {
      libs.push_back(path.str().str());
      break;
    }
  }
  return libs;
}

llvm::Error ropeattn::loadSharedLibrary(llvm::StringRef path) {
  if (!llvm::sys::fs::exists(path))
    return llvm::createStringError("cannot load shared library '" + path +
                                   "': no such file");
  std::string message;
  auto handle = llvm::sys::DynamicLibrary::getPermanentLibrary(
      path.str().c_str(), &message);
  if (!handle.isValid())
    return llvm::createStringError("cannot load shared library '" + path +
                                   "': " + message);
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<ExecutionEngine>> ropeattn::createJitEngine(
    ModuleOp module, llvm::ArrayRef<std::string> libraries, unsigned optLevel) {
  initializeJitTarget();
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    return builder.takeError();
  builder->setCPU(llvm::sys::getHostCPUName().str());
  unsigned level = std::min(optLevel, 3u);
  llvm::CodeGenOptLevel codeGenLevel =
      level == 0   ? llvm::CodeGenOptLevel::None
      : level == 1 ? llvm::CodeGenOptLevel::Less
      : level == 2 ? llvm::CodeGenOptLevel::Default
                   : llvm::CodeGenOptLevel::Aggressive;
  builder->setCodeGenOptLevel(codeGenLevel);
  auto targetMachine = builder->createTargetMachine();
  if (!targetMachine)
    return targetMachine.takeError();

  // The engine aborts when its transformer fails: report through a variable.
  auto optimize =
      makeOptimizingTransformer(level, /*sizeLevel=*/0, targetMachine->get());
  std::string optimizeError;
  auto transformer = [&](llvm::Module *llvmModule) -> llvm::Error {
    if (llvm::Error error = optimize(llvmModule))
      optimizeError = llvm::toString(std::move(error));
    return llvm::Error::success();
  };

  std::vector<llvm::StringRef> libRefs(libraries.begin(), libraries.end());
  ExecutionEngineOptions options;
  options.transformer = transformer;
  options.jitCodeGenOptLevel = codeGenLevel;
  options.sharedLibPaths = libRefs;
  options.enableGDBNotificationListener = false;
  // ROPEATTN_JIT_PERF=1 writes a jitdump for `perf inject --jit`, so that
  // profiles name the generated functions (docs/Design.md, "Profiling").
  options.enablePerfNotificationListener =
      std::getenv("ROPEATTN_JIT_PERF") != nullptr;
  auto engine =
      ExecutionEngine::create(module, options, std::move(*targetMachine));
  if (!engine)
    return engine.takeError();
  if (!optimizeError.empty())
    return llvm::createStringError("LLVM optimization failed: " +
                                   optimizeError);
  return engine;
}
