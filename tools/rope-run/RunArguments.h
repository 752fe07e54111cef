//===- RunArguments.h - rope-run inputs, results, descriptors ---*- C++ -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// The host side of rope-run's calls: what each tensor of the function's ABI
// needs (element type and static shape), the `--input` specifications and
// their generators, memref descriptors, and result summaries.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_TOOLS_ROPE_RUN_RUNARGUMENTS_H
#define ROPEATTN_TOOLS_ROPE_RUN_RUNARGUMENTS_H

#include "ropeattn/Npy/Npy.h"

#include "mlir/IR/Types.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace roperun {

/// One tensor of a function's ABI (an input or a result): the type written in
/// `ropeattn.abi` and what the host allocates for it.
struct TensorSlot {
  mlir::Type type;
  mlir::ropeattn::npy::DType dtype;
  std::vector<int64_t> shape;
};

/// The slot of `type`; an error (naming `what`, e.g. "input 0 of @f") when
/// rope-run cannot pass it: not a ranked tensor or identity-layout memref, a
/// dynamic shape, or an unsupported element type.
llvm::Expected<TensorSlot> getTensorSlot(mlir::Type type,
                                         const llvm::Twine &what);

/// Makes the array of one `--input=SPEC` for `slot`:
///   @PATH.npy                    a .npy file (dtype and shape must match)
///   [SHAPExTYPE=]VALUE           a generated array; the type, when given,
///                                must match; VALUE is one of
///     random[:SEED]  floats uniform in [-1, 1), integers in [0, 128), i1
///                    0/1, from splitmix64 seeded with SEED (default 0)
///     zeros, ones    0 or 1 everywhere
///     iota           the flat row-major index 0, 1, 2, ... (saturated)
///     NUMBER         that number everywhere (integral for integer types)
/// Errors name `what` (e.g. "input 1 of @f").
llvm::Expected<mlir::ropeattn::npy::Array> makeInput(llvm::StringRef spec,
                                                     const TensorSlot &slot,
                                                     const llvm::Twine &what);

/// Fills `array` with the `random:SEED` values (see makeInput): element i is
/// made from the (i+1)-th output x of splitmix64 started at state SEED; floats
/// get 2 * (x >> 11) * 2^-53 - 1 computed in double, rounded to f32, then to
/// the element type.
void fillRandom(mlir::ropeattn::npy::Array &array, uint64_t seed);

/// MLIR's spelling of `slot`'s type for messages, e.g. "tensor<4x8xf32>".
std::string getTypeString(const TensorSlot &slot);

/// A ranked memref descriptor {T *allocated, T *aligned, int64_t offset,
/// int64_t sizes[R], int64_t strides[R]} describing a contiguous row-major
/// array; the array must outlive it.
class MemRefDescriptor {
public:
  explicit MemRefDescriptor(mlir::ropeattn::npy::Array &array);
  void *get() { return words.data(); }

private:
  std::vector<int64_t> words;
};

/// Prints "[v0, v1, ..., v7, ...] min=... max=... mean=..." (the first 8
/// values; NaNs are left out of the statistics and counted as nan=N).
void printSummary(llvm::raw_ostream &os,
                  const mlir::ropeattn::npy::Array &array);

} // namespace roperun

#endif // ROPEATTN_TOOLS_ROPE_RUN_RUNARGUMENTS_H
