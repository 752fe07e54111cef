//===- RopeAttnCAPI.cpp - C API of ropeattn -------------------------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// Implements ropeattn-c/RopeAttn.h on the same mechanism as rope-run: parse,
// lower with rope-lower-to-cpu (or a given pipeline), JIT with MLIR's
// ExecutionEngine, call `_mlir_ciface_NAME` with memref descriptors.
//
//===----------------------------------------------------------------------===//

#include "ropeattn-c/RopeAttn.h"

#include "ropeattn/ExecutionEngine/JitEngine.h"
#include "ropeattn/InitRopeAttn.h"
#include "ropeattn/Pipelines/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <mutex>
#include <optional>

using namespace mlir;

namespace {
/// One tensor of a function's signature.
struct TensorInfo {
  RopeAttnElementType elementType = ROPEATTN_ELEMENT_INVALID;
  std::vector<int64_t> shape;
};

/// A callable function of a compiled module.
struct FunctionInfo {
  std::string name;
  std::string signature;
  std::vector<TensorInfo> inputs, results;
  void (*packed)(void **) = nullptr;
};
} // namespace

struct RopeAttnModule {
  std::unique_ptr<MLIRContext> context;
  OwningOpRef<ModuleOp> module;
  std::unique_ptr<ExecutionEngine> engine;
  std::vector<FunctionInfo> functions;

  const FunctionInfo *lookup(llvm::StringRef name) const {
    for (const FunctionInfo &function : functions)
      if (function.name == name)
        return &function;
    return nullptr;
  }
};

/// A malloc'd copy of `text` (released by ropeattnFreeString).
static char *copyString(llvm::StringRef text) {
  char *copy = static_cast<char *>(std::malloc(text.size() + 1));
  if (!copy)
    return nullptr;
  std::memcpy(copy, text.data(), text.size());
  copy[text.size()] = '\0';
  return copy;
}

/// Stores `message` in *errorMessage (when given); returns `result`.
template <typename T>
static T failWith(char **errorMessage, const llvm::Twine &message, T result) {
  if (errorMessage)
    *errorMessage = copyString(message.str());
  return result;
}

static void registerPassesOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerAllPasses();
    registerRopeAttnPasses();
  });
}

/// The directory of libRopeAttnCAPI.so itself: where libropeattn_runtime.so
/// is installed (and built) beside it.
static std::string getLibraryDirectory() {
  Dl_info info;
  if (!dladdr(reinterpret_cast<void *>(&ropeattnGetCAPIVersion), &info) ||
      !info.dli_fname)
    return "";
  llvm::SmallString<256> path(info.dli_fname);
  llvm::sys::fs::make_absolute(path);
  return llvm::sys::path::parent_path(path).str();
}

static std::optional<RopeAttnElementType> getElementType(Type type) {
  if (type.isF16())
    return ROPEATTN_ELEMENT_F16;
  if (type.isBF16())
    return ROPEATTN_ELEMENT_BF16;
  if (type.isF32())
    return ROPEATTN_ELEMENT_F32;
  if (type.isF64())
    return ROPEATTN_ELEMENT_F64;
  if (type.isIndex())
    return ROPEATTN_ELEMENT_INDEX;
  if (type.isSignlessInteger(1))
    return ROPEATTN_ELEMENT_I1;
  if (type.isSignlessInteger(8))
    return ROPEATTN_ELEMENT_I8;
  if (type.isSignlessInteger(16))
    return ROPEATTN_ELEMENT_I16;
  if (type.isSignlessInteger(32))
    return ROPEATTN_ELEMENT_I32;
  if (type.isSignlessInteger(64))
    return ROPEATTN_ELEMENT_I64;
  return std::nullopt;
}

static std::string printType(Type type) {
  std::string text;
  llvm::raw_string_ostream os(text);
  type.print(os);
  return text;
}

/// The tensor of `type` (what = "input 0 of @f" for messages).
static llvm::Expected<TensorInfo> getTensorInfo(Type type,
                                                const llvm::Twine &what) {
  auto shaped = dyn_cast<ShapedType>(type);
  bool passable = false;
  if (auto tensor = dyn_cast<RankedTensorType>(type))
    passable = !tensor.getEncoding();
  else if (auto memref = dyn_cast<MemRefType>(type))
    passable = memref.getLayout().isIdentity();
  if (!passable)
    return llvm::createStringError(what + " has type " + printType(type) +
                                   "; only ranked tensors (or identity-layout "
                                   "memrefs) can be passed");
  if (!shaped.hasStaticShape())
    return llvm::createStringError(what + " has the dynamic type " +
                                   printType(type) + "; shapes must be static");
  std::optional<RopeAttnElementType> elementType =
      getElementType(shaped.getElementType());
  if (!elementType)
    return llvm::createStringError(
        what + " has type " + printType(type) + "; the element type " +
        printType(shaped.getElementType()) +
        " is not supported (f16, bf16, f32, f64, i1, i8, i16, i32, i64, "
        "index)");
  TensorInfo info;
  info.elementType = *elementType;
  info.shape.assign(shaped.getShape().begin(), shaped.getShape().end());
  return info;
}

/// The public functions of `module` (before lowering) and their tensors.
static llvm::Expected<std::vector<FunctionInfo>>
collectFunctions(ModuleOp module) {
  std::vector<FunctionInfo> functions;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isPrivate() || func.isExternal())
      continue;
    FunctionInfo info;
    info.name = func.getName().str();
    FunctionType type = func.getFunctionType();
    info.signature = printType(type);
    for (auto [index, input] : llvm::enumerate(type.getInputs())) {
      auto tensor = getTensorInfo(input, "input " + llvm::Twine(index) +
                                             " of @" + info.name);
      if (!tensor)
        return tensor.takeError();
      info.inputs.push_back(std::move(*tensor));
    }
    for (auto [index, result] : llvm::enumerate(type.getResults())) {
      auto tensor = getTensorInfo(result, "result " + llvm::Twine(index) +
                                              " of @" + info.name);
      if (!tensor)
        return tensor.takeError();
      info.results.push_back(std::move(*tensor));
    }
    functions.push_back(std::move(info));
  }
  if (functions.empty())
    return llvm::createStringError(
        "the module has no public function with a body to call");
  return functions;
}

/// Adds `pipeline` (text), or rope-lower-to-cpu with `options`, to `pm`.
static llvm::Error buildPipeline(PassManager &pm, llvm::StringRef pipeline,
                                 llvm::StringRef options) {
  if (!pipeline.empty()) {
    if (!options.empty())
      return llvm::createStringError(
          "a pipeline and pipeline options cannot be combined; put the "
          "options in the pipeline text");
    llvm::StringRef text = pipeline.trim();
    if (text.consume_front("builtin.module(")) {
      if (!text.consume_back(")"))
        return llvm::createStringError("invalid pipeline '" + pipeline +
                                       "': unbalanced parentheses");
    }
    std::string message;
    llvm::raw_string_ostream os(message);
    if (failed(parsePassPipeline(text, pm, os)))
      return llvm::createStringError("invalid pipeline '" + pipeline +
                                     "': " + llvm::StringRef(message).trim());
    return llvm::Error::success();
  }
  // Check every option name first: createFromString reports unknown ones on
  // stderr only.
  auto parsed = ropeattn::LowerToCPUOptions::createFromString(options);
  if (!parsed)
    return llvm::createStringError(
        "invalid rope-lower-to-cpu options '" + options +
        "' (known: blas, block-q, block-k, family, epsilon, max-degree, "
        "max-rank, poly-chunk, parallel)");
  ropeattn::buildLowerToCPUPipeline(pm, *parsed);
  return llvm::Error::success();
}

static llvm::Expected<std::unique_ptr<RopeAttnModule>>
compile(llvm::StringRef text, llvm::StringRef pipeline, llvm::StringRef options,
        int optLevel, llvm::StringRef sharedLibraries) {
  if (optLevel < 0 || optLevel > 3)
    return llvm::createStringError("invalid optimization level " +
                                   llvm::Twine(optLevel) + " (expected 0-3)");
  registerPassesOnce();
  auto result = std::make_unique<RopeAttnModule>();
  DialectRegistry registry;
  ropeattn::registerJitDialects(registry);
  result->context = std::make_unique<MLIRContext>(registry);
  MLIRContext &context = *result->context;

  // Every diagnostic (parser, verifier, passes) goes into `diagnostics`.
  std::string diagnostics;
  llvm::raw_string_ostream diagnosticStream(diagnostics);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(text, "<ir>"), llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sourceMgr, &context, diagnosticStream);
  auto withDiagnostics = [&](const llvm::Twine &message) {
    std::string trimmed = llvm::StringRef(diagnostics).trim().str();
    return llvm::createStringError(
        message + (trimmed.empty() ? std::string() : ":\n" + trimmed));
  };

  result->module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!result->module)
    return withDiagnostics("cannot parse the module");
  auto functions = collectFunctions(*result->module);
  if (!functions)
    return functions.takeError();
  result->functions = std::move(*functions);

  PassManager pm(&context, ModuleOp::getOperationName());
  if (llvm::Error error = buildPipeline(pm, pipeline, options))
    return std::move(error);
  if (failed(pm.run(*result->module)))
    return withDiagnostics("lowering the module failed");

  for (FunctionInfo &function : result->functions) {
    std::string ciface = "_mlir_ciface_" + function.name;
    auto llvmFunc = result->module->lookupSymbol<LLVM::LLVMFuncOp>(ciface);
    size_t numArgs = function.inputs.size() + function.results.size();
    if (!llvmFunc || llvmFunc.isExternal())
      return llvm::createStringError(
          "the lowered module has no C interface @" + ciface +
          " (does the pipeline run ropeattn-export-abi?)");
    if (llvmFunc.getNumArguments() != numArgs ||
        !isa<LLVM::LLVMVoidType>(llvmFunc.getFunctionType().getReturnType()))
      return llvm::createStringError(
          "@" + ciface + " takes " + llvm::Twine(llvmFunc.getNumArguments()) +
          " argument(s); the ABI of @" + function.name + " needs " +
          llvm::Twine(numArgs) +
          " (inputs, then results as out-parameters) and no return value");
  }

  std::vector<std::string> libraries =
      ropeattn::getDefaultJitLibraries({getLibraryDirectory()});
  llvm::SmallVector<llvm::StringRef> extra;
  sharedLibraries.split(extra, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef lib : extra) {
    if (llvm::Error error = ropeattn::loadSharedLibrary(lib.trim()))
      return std::move(error);
    libraries.push_back(lib.trim().str());
  }
  auto engine = ropeattn::createJitEngine(*result->module, libraries,
                                          static_cast<unsigned>(optLevel));
  if (!engine)
    return withDiagnostics("cannot JIT-compile the module: " +
                           llvm::toString(engine.takeError()));
  result->engine = std::move(*engine);
  for (FunctionInfo &function : result->functions) {
    auto packed = result->engine->lookupPacked("_mlir_ciface_" + function.name);
    if (!packed)
      return llvm::createStringError("cannot JIT-compile @" + function.name +
                                     ": " + llvm::toString(packed.takeError()));
    function.packed = *packed;
  }
  result->engine->initialize();
  return result;
}

//===----------------------------------------------------------------------===//
// The C interface
//===----------------------------------------------------------------------===//

extern "C" {

int ropeattnGetCAPIVersion(void) { return ROPEATTN_CAPI_VERSION; }

void ropeattnFreeString(char *string) { std::free(string); }

RopeAttnModule *ropeattnModuleCompile(const char *irText, size_t irLength,
                                      const char *pipeline,
                                      const char *pipelineOptions, int optLevel,
                                      const char *sharedLibraries,
                                      char **errorMessage) {
  if (errorMessage)
    *errorMessage = nullptr;
  if (!irText)
    return failWith<RopeAttnModule *>(errorMessage, "no IR text given",
                                      nullptr);
  auto module =
      compile(llvm::StringRef(irText, irLength), pipeline ? pipeline : "",
              pipelineOptions ? pipelineOptions : "", optLevel,
              sharedLibraries ? sharedLibraries : "");
  if (!module)
    return failWith<RopeAttnModule *>(
        errorMessage, llvm::toString(module.takeError()), nullptr);
  return module->release();
}

void ropeattnModuleDestroy(RopeAttnModule *module) { delete module; }

char *ropeattnModuleGetFunctionNames(RopeAttnModule *module) {
  if (!module)
    return copyString("");
  std::string names;
  for (const FunctionInfo &function : module->functions)
    names += (names.empty() ? "" : ",") + function.name;
  return copyString(names);
}

char *ropeattnModuleGetSignature(RopeAttnModule *module, const char *name,
                                 char **errorMessage) {
  const FunctionInfo *function =
      module && name ? module->lookup(name) : nullptr;
  if (!function)
    return failWith<char *>(errorMessage,
                            llvm::Twine("no function @") + (name ? name : "") +
                                " in the module",
                            nullptr);
  return copyString(function->signature);
}

int64_t ropeattnModuleGetNumInputs(RopeAttnModule *module, const char *name) {
  const FunctionInfo *function =
      module && name ? module->lookup(name) : nullptr;
  return function ? static_cast<int64_t>(function->inputs.size()) : -1;
}

int64_t ropeattnModuleGetNumResults(RopeAttnModule *module, const char *name) {
  const FunctionInfo *function =
      module && name ? module->lookup(name) : nullptr;
  return function ? static_cast<int64_t>(function->results.size()) : -1;
}

int ropeattnModuleGetTensorType(RopeAttnModule *module, const char *name,
                                int isResult, int64_t index,
                                RopeAttnElementType *elementType, int64_t *rank,
                                int64_t *shape, int64_t maxRank) {
  const FunctionInfo *function =
      module && name ? module->lookup(name) : nullptr;
  if (!function)
    return 1;
  const std::vector<TensorInfo> &tensors =
      isResult ? function->results : function->inputs;
  if (index < 0 || index >= static_cast<int64_t>(tensors.size()))
    return 1;
  const TensorInfo &tensor = tensors[index];
  if (elementType)
    *elementType = tensor.elementType;
  if (rank)
    *rank = static_cast<int64_t>(tensor.shape.size());
  if (shape)
    for (int64_t i = 0, e = std::min<int64_t>(maxRank, tensor.shape.size());
         i < e; ++i)
      shape[i] = tensor.shape[i];
  return 0;
}

int ropeattnModuleInvokePacked(RopeAttnModule *module, const char *name,
                               void *const *descriptors, int64_t numDescriptors,
                               char **errorMessage) {
  if (errorMessage)
    *errorMessage = nullptr;
  const FunctionInfo *function =
      module && name ? module->lookup(name) : nullptr;
  if (!function)
    return failWith<int>(errorMessage,
                         llvm::Twine("no function @") + (name ? name : "") +
                             " in the module",
                         1);
  int64_t expected = function->inputs.size() + function->results.size();
  if (numDescriptors != expected)
    return failWith<int>(errorMessage,
                         "@" + function->name + " takes " +
                             llvm::Twine(expected) +
                             " buffers (inputs, then results) but " +
                             llvm::Twine(numDescriptors) + " were given",
                         1);
  if (expected > 0 && !descriptors)
    return failWith<int>(errorMessage, "no descriptors given", 1);
  std::vector<void *> ptrs(descriptors, descriptors + expected);
  std::vector<void *> args;
  for (void *&ptr : ptrs)
    args.push_back(&ptr);
  function->packed(args.data());
  return 0;
}

int ropeattnModuleInvoke(RopeAttnModule *module, const char *name,
                         void *const *data, int64_t numBuffers,
                         char **errorMessage) {
  if (errorMessage)
    *errorMessage = nullptr;
  const FunctionInfo *function =
      module && name ? module->lookup(name) : nullptr;
  if (!function)
    return failWith<int>(errorMessage,
                         llvm::Twine("no function @") + (name ? name : "") +
                             " in the module",
                         1);
  int64_t expected = function->inputs.size() + function->results.size();
  if (numBuffers != expected)
    return failWith<int>(errorMessage,
                         "@" + function->name + " takes " +
                             llvm::Twine(expected) +
                             " buffers (inputs, then results) but " +
                             llvm::Twine(numBuffers) + " were given",
                         1);
  // One contiguous row-major descriptor per buffer.
  std::vector<std::vector<int64_t>> words;
  int64_t position = 0;
  for (const auto *tensors : {&function->inputs, &function->results}) {
    for (const TensorInfo &tensor : *tensors) {
      void *buffer = data ? data[position] : nullptr;
      int64_t numElements = 1;
      for (int64_t size : tensor.shape)
        numElements *= size;
      if (!buffer && numElements != 0)
        return failWith<int>(errorMessage,
                             "buffer " + llvm::Twine(position) + " of @" +
                                 function->name + " is NULL",
                             1);
      size_t rank = tensor.shape.size();
      std::vector<int64_t> descriptor(3 + 2 * rank, 0);
      int64_t address =
          static_cast<int64_t>(reinterpret_cast<intptr_t>(buffer));
      descriptor[0] = address;
      descriptor[1] = address;
      int64_t stride = 1;
      for (size_t i = rank; i-- > 0;) {
        descriptor[3 + i] = tensor.shape[i];
        descriptor[3 + rank + i] = stride;
        stride *= tensor.shape[i];
      }
      words.push_back(std::move(descriptor));
      ++position;
    }
  }
  std::vector<void *> descriptors;
  for (std::vector<int64_t> &descriptor : words)
    descriptors.push_back(descriptor.data());
  return ropeattnModuleInvokePacked(module, name, descriptors.data(),
                                    static_cast<int64_t>(descriptors.size()),
                                    errorMessage);
}

char *ropeattnModuleGetLoweredIR(RopeAttnModule *module) {
  if (!module || !module->module)
    return copyString("");
  std::string text;
  llvm::raw_string_ostream os(text);
  module->module->print(os);
  return copyString(text);
}

} // extern "C"
