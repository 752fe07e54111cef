//===- Npy.h - NumPy .npy file reading and writing --------------*- C++ -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// Reads and writes dense arrays in NumPy's .npy format (versions 1.0, 2.0 and
// 3.0), little-endian, C order. Depends on LLVM Support only (not on MLIR), so
// that tools outside the compiler (benchmark baselines) can use it; the
// namespace is the project's, mlir::ropeattn::npy.
//
// Element types and their .npy `descr`:
//
//   f16 '<f2'   f32 '<f4'   f64 '<f8'   bf16 '<V2' (see below)
//   i8 '|i1'    i16 '<i2'   i32 '<i4'   i64 '<i8'
//   ui8 '|u1'   ui16 '<u2'  ui32 '<u4'  ui64 '<u8'  i1 '|b1'
//
// bfloat16 has no NumPy type code: `np.save` of an ml_dtypes.bfloat16 array
// writes the descr of a 2-byte opaque type, '<V2' (NumPy reads it back as
// 'V2'; `.view(ml_dtypes.bfloat16)` recovers the values). Reading therefore
// takes any 2-byte void descr ('<V2', '|V2', 'V2') and the name 'bfloat16' as
// bf16, and writing bf16 uses '<V2'.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_NPY_NPY_H
#define ROPEATTN_NPY_NPY_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir {
namespace ropeattn {
namespace npy {

/// Element types of an array.
enum class DType : uint8_t {
  Bool,
  I8,
  I16,
  I32,
  I64,
  U8,
  U16,
  U32,
  U64,
  F16,
  BF16,
  F32,
  F64,
};

/// The size in bytes of one element.
size_t getDTypeSize(DType dtype);

/// The MLIR spelling of the element type: "f32", "bf16", "i64", "ui8", "i1".
llvm::StringRef getDTypeName(DType dtype);

/// The inverse of getDTypeName.
std::optional<DType> lookupDTypeByName(llvm::StringRef name);

/// The `descr` written to .npy files: "<f4", "|i1", "<V2" (bf16), ...
llvm::StringRef getDTypeDescr(DType dtype);

/// Whether elements are floating-point numbers (f16, bf16, f32, f64).
bool isFloatDType(DType dtype);

/// A byte buffer aligned to 64 bytes (a cache line, the widest vector), owned
/// and movable. Allocated zero-filled; never null, even when empty.
class AlignedBuffer {
public:
  static constexpr size_t kAlignment = 64;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size);

  uint8_t *data() { return storage.get(); }
  const uint8_t *data() const { return storage.get(); }
  size_t size() const { return numBytes; }

private:
  struct Deleter {
    void operator()(uint8_t *ptr) const;
  };
  std::unique_ptr<uint8_t, Deleter> storage;
  size_t numBytes = 0;
};

/// A dense array in C (row-major) order.
struct Array {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  AlignedBuffer data;

  Array() = default;
  /// A zero-filled array. The element count must not overflow (see
  /// computeNumBytes).
  Array(DType dtype, std::vector<int64_t> shape);

  int64_t getNumElements() const;
  size_t getNumBytes() const { return data.size(); }

  /// "4x8xf32", or "f32" for a 0-d array (MLIR's shaped-type spelling).
  std::string getTypeString() const;

  /// Element `index` (flat, row-major) converted to double.
  double getAsDouble(int64_t index) const;
  /// Stores `value` into element `index`: rounded to nearest even for
  /// floats; for integers rounded toward zero and saturated to the type's
  /// range (NaN gives 0); for i1, value != 0.
  void setFromDouble(int64_t index, double value);
};

/// The number of bytes of `shape` x `dtype`, or an error when a dimension is
/// negative or the size does not fit in 2^62 bytes.
llvm::Expected<size_t> computeNumBytes(DType dtype,
                                       const std::vector<int64_t> &shape);

/// Parses the contents of a .npy file. Errors describe what is wrong without
/// naming a file.
llvm::Expected<Array> parseNpy(llvm::StringRef contents);

/// Reads a .npy file. Errors start with "'<path>': ".
llvm::Expected<Array> readNpyFile(llvm::StringRef path);

/// Writes `array` in .npy format (version 1.0, or 2.0 if the header needs
/// it), header padded to 64 bytes as NumPy does.
void writeNpy(llvm::raw_ostream &os, const Array &array);

/// Writes `array` to a .npy file. Errors start with "'<path>': ".
llvm::Error writeNpyFile(llvm::StringRef path, const Array &array);

/// IEEE binary16 and bfloat16 conversions, round to nearest even; NaN stays
/// NaN (quiet), infinities and signed zeros are kept, overflow gives infinity.
uint16_t floatToHalf(float value);
float halfToFloat(uint16_t bits);
uint16_t floatToBFloat16(float value);
float bfloat16ToFloat(uint16_t bits);

} // namespace npy
} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_NPY_NPY_H
