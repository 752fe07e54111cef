//===- rope-run.cpp - run a function of an .mlir file on the CPU ----------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// rope-run FILE.mlir --function=NAME [--input=SPEC]... [--output=@out.npy]...
//                    [--benchmark=N] [--pipeline=...] [--shared-libs=a.so,...]
//
// Compiles FILE (ropeattn / linalg on tensors) with rope-lower-to-cpu, or
// takes it as is when it is already in the LLVM dialect, JIT-compiles it for
// the host CPU and calls `_mlir_ciface_NAME(inputs..., results...)` with
// memref descriptors (see README.md, "rope-run").
//
//===----------------------------------------------------------------------===//

#include "FlopCount.h"
#include "RunArguments.h"

#include "ropeattn/ExecutionEngine/JitEngine.h"
#include "ropeattn/InitRopeAttn.h"
#include "ropeattn/Npy/Npy.h"
#include "ropeattn/Pipelines/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"

#include <algorithm>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <chrono>

using namespace mlir;
using namespace roperun;
namespace npy = mlir::ropeattn::npy;
namespace cl = llvm::cl;

static cl::OptionCategory runCategory("rope-run options");

static cl::opt<std::string> inputFilename(cl::Positional,
                                          cl::desc("<input .mlir file>"),
                                          cl::init("-"), cl::cat(runCategory));

static cl::opt<std::string> functionName("function",
                                         cl::desc("The public function to run"),
                                         cl::value_desc("name"),
                                         cl::cat(runCategory));

static cl::list<std::string> inputSpecs(
    "input",
    cl::desc("One per function input, in order: @FILE.npy, or "
             "[SHAPExTYPE=]VALUE with VALUE random[:SEED], zeros, ones, iota "
             "or a number (e.g. 4x8xf32=random:1)"),
    cl::value_desc("spec"), cl::cat(runCategory));

static cl::list<std::string> outputSpecs(
    "output",
    cl::desc("One per result, in order: @FILE.npy writes it, - prints it; "
             "results without --output are printed"),
    cl::value_desc("@file.npy"), cl::cat(runCategory));

static cl::opt<unsigned> benchmarkRuns(
    "benchmark",
    cl::desc("After the first (warm-up) call, run N more times and print "
             "median/min/max wall time, GFLOP/s and the compile time"),
    cl::value_desc("N"), cl::init(0), cl::cat(runCategory));

static cl::opt<std::string> pipelineText(
    "pipeline",
    cl::desc("Textual pass pipeline to the LLVM dialect, instead of "
             "rope-lower-to-cpu (e.g. 'rope-lower-to-cpu{blas=0}')"),
    cl::value_desc("passes"), cl::cat(runCategory));

static cl::opt<std::string> pipelineOptions(
    "pipeline-options",
    cl::desc("Options of rope-lower-to-cpu, e.g. 'blas=0 parallel=0'"),
    cl::value_desc("options"), cl::cat(runCategory));

static cl::list<std::string> sharedLibs(
    "shared-libs", cl::desc("Additional shared libraries to load into the JIT"),
    cl::value_desc("a.so,b.so"), cl::CommaSeparated, cl::cat(runCategory));

static cl::opt<bool> printIRAfterLowering(
    "print-ir-after-lowering",
    cl::desc("Print the LLVM-dialect module that is JIT-compiled"),
    cl::init(false), cl::cat(runCategory));

static cl::opt<bool> dryRun(
    "dry-run",
    cl::desc("Check the signature and the inputs (if any) and print the FLOP "
             "count; neither compile nor run"),
    cl::init(false), cl::cat(runCategory));

static cl::opt<bool> allowUnregisteredDialects(
    "allow-unregistered-dialect",
    cl::desc("Accept operations of unregistered dialects when parsing"),
    cl::init(false), cl::cat(runCategory));

static cl::opt<unsigned>
    optLevel("opt-level", cl::desc("LLVM optimization level of the JIT, 0-3"),
             cl::init(3), cl::cat(runCategory));

using Clock = std::chrono::steady_clock;

static double millisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start)
      .count();
}

/// Prints "rope-run: error: MESSAGE" and returns the exit code 1.
static int fail(const llvm::Twine &message) {
  llvm::outs().flush();
  llvm::WithColor::error(llvm::errs(), "rope-run") << message << "\n";
  return 1;
}

static int fail(llvm::Error error) {
  return fail(llvm::toString(std::move(error)));
}

/// "1 input", "2 inputs".
static std::string pluralize(size_t n, StringRef noun) {
  return std::to_string(n) + " " + noun.str() + (n == 1 ? "" : "s");
}

namespace {
/// The function to run, as found in the input module.
struct Entry {
  FunctionType signature;
  func::FuncOp func;    // The function before lowering, if not lowered.
  bool lowered = false; // The input is already in the LLVM dialect.
};
} // namespace

/// Finds @NAME: a public func.func, or an llvm.func carrying `ropeattn.abi`
/// (input already lowered) when there is no func.func of that name.
static llvm::Expected<Entry> findEntry(ModuleOp module, StringRef name) {
  Entry entry;
  Operation *symbol = SymbolTable::lookupSymbolIn(module, name);
  if (auto func = dyn_cast_or_null<func::FuncOp>(symbol)) {
    if (func.isExternal())
      return llvm::createStringError("@" + name +
                                     " is a declaration without a body");
    if (func.isPrivate())
      return llvm::createStringError(
          "@" + name + " is private; rope-run calls public functions only");
    entry.func = func;
    entry.signature = func.getFunctionType();
  } else if (auto llvmFunc = dyn_cast_or_null<LLVM::LLVMFuncOp>(symbol)) {
    if (!llvmFunc->hasAttr("ropeattn.abi"))
      return llvm::createStringError(
          "@" + name +
          " is an llvm.func without a 'ropeattn.abi' signature; lower the "
          "tensor-level input with rope-lower-to-cpu (or give it to rope-run "
          "as is)");
    entry.lowered = true;
  } else {
    std::string available;
    for (auto func : module.getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal())
        available += (available.empty() ? "@" : ", @") + func.getName().str();
    for (auto func : module.getOps<LLVM::LLVMFuncOp>())
      if (func->hasAttr("ropeattn.abi") &&
          !func.getName().starts_with("_mlir_ciface_"))
        available += (available.empty() ? "@" : ", @") + func.getName().str();
    return llvm::createStringError(
        "no function @" + name + " in '" + inputFilename + "'" +
        (available.empty() ? std::string(" (it has no public function)")
                           : " (public functions: " + available + ")"));
  }
  if (Attribute abi = symbol->getAttr("ropeattn.abi")) {
    auto typeAttr = dyn_cast<TypeAttr>(abi);
    auto type =
        typeAttr ? dyn_cast<FunctionType>(typeAttr.getValue()) : FunctionType();
    if (!type)
      return llvm::createStringError("@" + name +
                                     ": 'ropeattn.abi' is not a function type");
    entry.signature = type;
  }
  return entry;
}

/// Applies --pipeline, or rope-lower-to-cpu with --pipeline-options, to
/// `pm`. Returns a description of the pipeline for messages.
static llvm::Expected<std::string> buildPipeline(PassManager &pm) {
  if (!pipelineText.empty()) {
    if (!pipelineOptions.empty())
      return llvm::createStringError(
          "--pipeline and --pipeline-options cannot be combined; put the "
          "options in the pipeline text");
    StringRef text = StringRef(pipelineText).trim();
    // Accept the anchored form "builtin.module(...)" as well.
    if (text.consume_front("builtin.module(")) {
      if (!text.consume_back(")"))
        return llvm::createStringError("invalid --pipeline '" + pipelineText +
                                       "': unbalanced parentheses");
    }
    std::string message;
    llvm::raw_string_ostream os(message);
    if (failed(parsePassPipeline(text, pm, os)))
      return llvm::createStringError("invalid --pipeline '" + pipelineText +
                                     "': " + StringRef(message).trim());
    return "--pipeline '" + pipelineText + "'";
  }
  auto options = ropeattn::LowerToCPUOptions::createFromString(pipelineOptions);
  if (!options)
    return llvm::createStringError("invalid --pipeline-options '" +
                                   pipelineOptions + "'");
  ropeattn::buildLowerToCPUPipeline(pm, *options);
  return std::string("rope-lower-to-cpu");
}

/// The shared libraries of the JIT: the MLIR C runner utils, the OpenMP
/// runtime, the project's runtime (each when present), then --shared-libs.
static llvm::Expected<std::vector<std::string>>
collectSharedLibs(const char *argv0) {
  std::vector<std::string> runtimeDirs;
  std::string exe = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&collectSharedLibs));
  if (!exe.empty()) {
    // <bin>/../lib (install tree, or a build tree that puts libraries there),
    // then <bin>/../lib/Runtime (a build tree's own directory).
    llvm::SmallString<256> base(
        llvm::sys::path::parent_path(llvm::sys::path::parent_path(exe)));
    for (StringRef sub : {"lib", "lib/Runtime"}) {
      llvm::SmallString<256> dir(base);
      llvm::sys::path::append(dir, sub);
      runtimeDirs.push_back(dir.str().str());
    }
  }
  std::vector<std::string> libs = ropeattn::getDefaultJitLibraries(runtimeDirs);
  for (const std::string &lib : sharedLibs) {
    if (llvm::Error error = ropeattn::loadSharedLibrary(lib))
      return std::move(error);
    libs.push_back(lib);
  }
  return libs;
}

static void printTimes(llvm::raw_ostream &os, std::vector<double> times,
                       double flops) {
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  double median =
      n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  os << "benchmark: " << n << " iterations: median "
     << llvm::format("%.4g", median) << " ms, min "
     << llvm::format("%.4g", times.front()) << " ms, max "
     << llvm::format("%.4g", times.back()) << " ms\n";
  if (flops > 0) {
    auto gflops = [&](double ms) { return flops / (ms * 1e-3) / 1e9; };
    os << "benchmark: " << llvm::format("%.4g", flops / 1e9)
       << " GFLOP per call: " << llvm::format("%.4g", gflops(median))
       << " GFLOP/s at the median, " << llvm::format("%.4g", gflops(times[0]))
       << " GFLOP/s at the min\n";
  }
}

static int run(int argc, char **argv) {
  if (functionName.empty())
    return fail("no --function given (the function of the module to run)");
  for (const std::string &spec : outputSpecs)
    if (spec != "-" && (spec.size() < 2 || spec[0] != '@'))
      return fail("--output=" + spec + ": expected @FILE.npy or -");

  DialectRegistry registry;
  ropeattn::registerJitDialects(registry);
  MLIRContext context(registry);
  context.allowUnregisteredDialects(allowUnregisteredDialects);

  std::string errorMessage;
  auto file = openInputFile(inputFilename, &errorMessage);
  if (!file)
    return fail("cannot open '" + inputFilename + "': " + errorMessage);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return fail("cannot parse '" + inputFilename + "'");

  // The function and its ABI.
  std::string name = functionName;
  llvm::Expected<Entry> entry = findEntry(*module, name);
  if (!entry)
    return fail(entry.takeError());
  std::vector<TensorSlot> inputSlots, resultSlots;
  for (auto [index, type] : llvm::enumerate(entry->signature.getInputs())) {
    auto slot =
        getTensorSlot(type, "input " + llvm::Twine(index) + " of @" + name);
    if (!slot)
      return fail(slot.takeError());
    inputSlots.push_back(std::move(*slot));
  }
  for (auto [index, type] : llvm::enumerate(entry->signature.getResults())) {
    auto slot =
        getTensorSlot(type, "result " + llvm::Twine(index) + " of @" + name);
    if (!slot)
      return fail(slot.takeError());
    resultSlots.push_back(std::move(*slot));
  }
  if (outputSpecs.size() > resultSlots.size())
    return fail("@" + name + " has " + pluralize(resultSlots.size(), "result") +
                " but " + pluralize(outputSpecs.size(), "--output flag") +
                (outputSpecs.size() == 1 ? " was" : " were") + " given");
  for (StringRef spec : outputSpecs) {
    if (spec == "-")
      continue;
    StringRef dir = llvm::sys::path::parent_path(spec.drop_front());
    if (!dir.empty() && !llvm::sys::fs::is_directory(dir))
      return fail("cannot write '" + spec.drop_front() + "': '" + dir +
                  "' is not a directory");
  }

  // Inputs (with --dry-run and no --input, the check is skipped).
  std::vector<npy::Array> inputs;
  if (!(dryRun && inputSpecs.empty())) {
    if (inputSpecs.size() != inputSlots.size())
      return fail("@" + name + " takes " +
                  pluralize(inputSlots.size(), "input") + " but " +
                  pluralize(inputSpecs.size(), "--input flag") +
                  (inputSpecs.size() == 1 ? " was" : " were") + " given");
    for (auto [index, spec] : llvm::enumerate(inputSpecs)) {
      auto array = makeInput(spec, inputSlots[index],
                             "input " + llvm::Twine(index) + " of @" + name);
      if (!array)
        return fail(array.takeError());
      inputs.push_back(std::move(*array));
    }
  }

  FlopCount flops;
  if (entry->func)
    flops = countFlops(entry->func);

  if (dryRun) {
    llvm::outs() << "@" << name << ": " << entry->signature << "\n";
    if (entry->lowered)
      llvm::outs() << "flops: unknown (the input is already lowered)\n";
    else
      llvm::outs() << "flops: " << llvm::format("%.0f", flops.flops)
                   << " per call (" << flops.numOps
                   << " ropeattn attention op(s) counted, " << flops.numDynamic
                   << " with dynamic shapes skipped)\n";
    return 0;
  }

  // Lowering.
  auto compileStart = Clock::now();
  double loweringMs = -1;
  if (!entry->lowered || !pipelineText.empty()) {
    PassManager pm(&context, ModuleOp::getOperationName());
    if (failed(applyPassManagerCLOptions(pm)))
      return fail("cannot apply the pass manager options");
    llvm::Expected<std::string> pipeline = buildPipeline(pm);
    if (!pipeline)
      return fail(pipeline.takeError());
    if (failed(pm.run(*module)))
      return fail("lowering '" + inputFilename + "' with " + *pipeline +
                  " failed");
    loweringMs = millisecondsSince(compileStart);
  }
  std::string ciface = "_mlir_ciface_" + name;
  auto cifaceFunc = module->lookupSymbol<LLVM::LLVMFuncOp>(ciface);
  if (!cifaceFunc || cifaceFunc.isExternal())
    return fail("the lowered module has no C interface @" + ciface + " (is @" +
                name + " public, and does the pipeline export it?)");
  size_t numArgs = inputSlots.size() + resultSlots.size();
  if (cifaceFunc.getNumArguments() != numArgs ||
      !isa<LLVM::LLVMVoidType>(cifaceFunc.getFunctionType().getReturnType()))
    return fail("@" + ciface + " takes " +
                llvm::Twine(cifaceFunc.getNumArguments()) +
                " argument(s); the ABI of @" + name + " needs " +
                llvm::Twine(inputSlots.size()) + " input(s) and " +
                llvm::Twine(resultSlots.size()) +
                " out-parameter(s) and no return value");
  if (printIRAfterLowering) {
    module->print(llvm::outs());
    llvm::outs() << "\n";
    llvm::outs().flush();
  }

  // JIT.
  auto libs = collectSharedLibs(argv[0]);
  if (!libs)
    return fail(libs.takeError());
  auto jitStart = Clock::now();
  auto engine = ropeattn::createJitEngine(*module, *libs, optLevel);
  if (!engine)
    return fail("cannot JIT-compile @" + name + ": " +
                llvm::toString(engine.takeError()));
  auto function = (*engine)->lookupPacked(ciface);
  if (!function)
    return fail("cannot JIT-compile @" + name + ": " +
                llvm::toString(function.takeError()));
  (*engine)->initialize();
  double jitMs = millisecondsSince(jitStart);

  // Call.
  std::vector<npy::Array> results;
  for (const TensorSlot &slot : resultSlots)
    results.emplace_back(slot.dtype, slot.shape);
  std::vector<MemRefDescriptor> descriptors;
  for (npy::Array &array : inputs)
    descriptors.emplace_back(array);
  for (npy::Array &array : results)
    descriptors.emplace_back(array);
  std::vector<void *> descriptorPtrs, args;
  for (MemRefDescriptor &descriptor : descriptors)
    descriptorPtrs.push_back(descriptor.get());
  for (void *&ptr : descriptorPtrs)
    args.push_back(&ptr);
  (*function)(args.data());

  // Results of the first call (a function may write into its inputs, so
  // later calls need not compute the same).
  llvm::outs() << "EXEC @" << name << "\n";
  for (auto [index, array] : llvm::enumerate(results)) {
    std::string type = getTypeString(resultSlots[index]);
    if (index < outputSpecs.size() && outputSpecs[index] != "-") {
      StringRef path = StringRef(outputSpecs[index]).drop_front();
      if (llvm::Error error = npy::writeNpyFile(path, array))
        return fail("result " + llvm::Twine(index) + " of @" + name + ": " +
                    llvm::toString(std::move(error)));
      llvm::outs() << "result[" << index << "]: " << type << " written to "
                   << path << "\n";
      continue;
    }
    llvm::outs() << "result[" << index << "]: " << type << " = ";
    printSummary(llvm::outs(), array);
    llvm::outs() << "\n";
  }

  llvm::outs().flush();

  std::vector<double> times;
  if (benchmarkRuns > 0) {
    auto lastReport = Clock::now();
    for (unsigned i = 0; i < benchmarkRuns; ++i) {
      auto start = Clock::now();
      (*function)(args.data());
      times.push_back(millisecondsSince(start));
      if (i + 1 < benchmarkRuns &&
          Clock::now() - lastReport > std::chrono::seconds(2)) {
        llvm::errs() << "rope-run: " << i + 1 << "/" << benchmarkRuns
                     << " iterations\n";
        lastReport = Clock::now();
      }
    }
  }

  if (benchmarkRuns > 0) {
    llvm::outs() << "compile: "
                 << llvm::format("%.1f", std::max(loweringMs, 0.0) + jitMs)
                 << " ms (lowering ";
    if (loweringMs < 0)
      llvm::outs() << "skipped";
    else
      llvm::outs() << llvm::format("%.1f", loweringMs) << " ms";
    llvm::outs() << ", JIT " << llvm::format("%.1f", jitMs) << " ms)\n";
    printTimes(llvm::outs(), times, flops.flops);
  }
  llvm::outs().flush();
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
#if defined(__GLIBC__)
  // The generated code allocates its tiles inside the loops (dynamic sizes);
  // glibc serves blocks of 128 KiB and more with mmap/munmap, i.e. page
  // faults on every tile. Keep them in the heap instead (measured: causal
  // n = 4k, d = 64 forward 111 → 140 GFLOP/s; docs/Design.md).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  ropeattn::initializeJitTarget();
  registerAllPasses();
  registerRopeAttnPasses();
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  cl::ParseCommandLineOptions(
      argc, argv,
      "rope-run: compile a function of an .mlir file for the host CPU, run it "
      "on given or generated inputs, write or print its results\n");
  return run(argc, argv);
}
