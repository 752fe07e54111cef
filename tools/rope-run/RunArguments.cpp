//===- RunArguments.cpp - rope-run inputs, results, descriptors -----------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "RunArguments.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace roperun;
using namespace mlir::ropeattn;
using llvm::StringRef;
using npy::DType;

static std::string printType(mlir::Type type) {
  std::string result;
  llvm::raw_string_ostream os(result);
  type.print(os);
  return result;
}

static std::optional<DType> getDType(mlir::Type type) {
  if (type.isF16())
    return DType::F16;
  if (type.isBF16())
    return DType::BF16;
  if (type.isF32())
    return DType::F32;
  if (type.isF64())
    return DType::F64;
  if (type.isIndex())
    return DType::I64; // The CPU pipeline lowers index to i64.
  auto intType = llvm::dyn_cast<mlir::IntegerType>(type);
  if (!intType)
    return std::nullopt;
  if (intType.getWidth() == 1 && !intType.isUnsigned())
    return DType::Bool;
  bool isUnsigned = intType.isUnsigned();
  switch (intType.getWidth()) {
  case 8:
    return isUnsigned ? DType::U8 : DType::I8;
  case 16:
    return isUnsigned ? DType::U16 : DType::I16;
  case 32:
    return isUnsigned ? DType::U32 : DType::I32;
  case 64:
    return isUnsigned ? DType::U64 : DType::I64;
  default:
    return std::nullopt;
  }
}

llvm::Expected<TensorSlot> roperun::getTensorSlot(mlir::Type type,
                                                  const llvm::Twine &what) {
  auto shaped = llvm::dyn_cast<mlir::ShapedType>(type);
  bool passable = false;
  if (auto tensor = llvm::dyn_cast<mlir::RankedTensorType>(type))
    passable = !tensor.getEncoding();
  else if (auto memref = llvm::dyn_cast<mlir::MemRefType>(type))
    passable = memref.getLayout().isIdentity();
  if (!passable)
    return llvm::createStringError(
        what + " has type " + printType(type) +
        "; rope-run passes ranked tensors (or identity-layout memrefs) only");
  if (!shaped.hasStaticShape())
    return llvm::createStringError(what + " has the dynamic type " +
                                   printType(type) +
                                   "; rope-run needs static shapes");
  std::optional<DType> dtype = getDType(shaped.getElementType());
  if (!dtype)
    return llvm::createStringError(
        what + " has type " + printType(type) + "; the element type " +
        printType(shaped.getElementType()) +
        " is not supported (f16, bf16, f32, f64, i1, i8, i16, i32, i64, "
        "index, ui8, ui16, ui32, ui64)");
  TensorSlot slot;
  slot.type = type;
  slot.dtype = *dtype;
  slot.shape.assign(shaped.getShape().begin(), shaped.getShape().end());
  return slot;
}

std::string roperun::getTypeString(const TensorSlot &slot) {
  return printType(slot.type);
}

//===----------------------------------------------------------------------===//
// Inputs
//===----------------------------------------------------------------------===//

static uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void roperun::fillRandom(npy::Array &array, uint64_t seed) {
  uint64_t state = seed;
  int64_t count = array.getNumElements();
  bool isFloat = npy::isFloatDType(array.dtype);
  for (int64_t i = 0; i < count; ++i) {
    uint64_t x = splitmix64(state);
    double value;
    if (isFloat)
      value = static_cast<float>(2.0 * static_cast<double>(x >> 11) * 0x1p-53 -
                                 1.0);
    else if (array.dtype == DType::Bool)
      value = static_cast<double>(x >> 63);
    else
      value = static_cast<double>(x >> 57); // [0, 128)
    array.setFromDouble(i, value);
  }
}

static const char kSpecHelp[] =
    "expected @FILE.npy or [SHAPExTYPE=]VALUE, VALUE one of random[:SEED], "
    "zeros, ones, iota or a number";

/// Parses "4x8xf32" / "f32" into a shape and element type name.
static bool parseTypeSpec(StringRef text, std::vector<int64_t> &shape,
                          StringRef &elementType) {
  shape.clear();
  while (true) {
    size_t digits = 0;
    while (digits < text.size() && llvm::isDigit(text[digits]))
      ++digits;
    if (digits == 0 || digits >= text.size() || text[digits] != 'x')
      break;
    int64_t dim;
    if (text.take_front(digits).getAsInteger(10, dim))
      return false;
    shape.push_back(dim);
    text = text.drop_front(digits + 1);
  }
  elementType = text;
  return !text.empty();
}

llvm::Expected<npy::Array> roperun::makeInput(StringRef spec,
                                              const TensorSlot &slot,
                                              const llvm::Twine &what) {
  std::string expected = getTypeString(slot);
  if (spec.starts_with("@")) {
    StringRef path = spec.drop_front();
    llvm::Expected<npy::Array> array = npy::readNpyFile(path);
    if (!array)
      return llvm::createStringError(what + ": " +
                                     llvm::toString(array.takeError()));
    if (array->dtype != slot.dtype || array->shape != slot.shape)
      return llvm::createStringError(what + ": expected " + expected +
                                     ", got " + array->getTypeString() +
                                     " from '" + path + "'");
    return array;
  }

  auto [typeText, value] = spec.split('=');
  if (value.empty() && !spec.contains('=')) {
    value = typeText;
    typeText = "";
  }
  if (!typeText.empty()) {
    std::vector<int64_t> shape;
    StringRef elementName;
    std::optional<DType> dtype;
    if (parseTypeSpec(typeText, shape, elementName))
      dtype = elementName == "index" ? std::optional<DType>(DType::I64)
                                     : npy::lookupDTypeByName(elementName);
    if (!dtype)
      return llvm::createStringError(what + ": cannot parse the type '" +
                                     typeText + "' of --input=" + spec +
                                     " (expected e.g. 4x8xf32)");
    if (*dtype != slot.dtype || shape != slot.shape)
      return llvm::createStringError(what + ": expected " + expected +
                                     ", got " + typeText + " (--input=" + spec +
                                     ")");
  }

  npy::Array array(slot.dtype, slot.shape);
  int64_t count = array.getNumElements();
  if (value == "zeros")
    return std::move(array);
  if (value == "ones" || value == "iota") {
    for (int64_t i = 0; i < count; ++i)
      array.setFromDouble(i, value == "ones" ? 1.0 : static_cast<double>(i));
    return std::move(array);
  }
  if (value == "random" || value.starts_with("random:")) {
    uint64_t seed = 0;
    if (value != "random" &&
        value.drop_front(strlen("random:")).getAsInteger(10, seed))
      return llvm::createStringError(
          what + ": bad seed in --input=" + spec +
          " (expected random:N, N a non-negative integer)");
    fillRandom(array, seed);
    return std::move(array);
  }
  double number;
  if (value.empty() || value.getAsDouble(number))
    return llvm::createStringError(what + ": cannot parse --input=" + spec +
                                   ": " + kSpecHelp);
  if (!npy::isFloatDType(slot.dtype) &&
      (!std::isfinite(number) || std::trunc(number) != number))
    return llvm::createStringError(what + ": --input=" + spec + ": " +
                                   expected + " needs an integer value");
  for (int64_t i = 0; i < count; ++i)
    array.setFromDouble(i, number);
  return std::move(array);
}

//===----------------------------------------------------------------------===//
// Descriptors and summaries
//===----------------------------------------------------------------------===//

MemRefDescriptor::MemRefDescriptor(npy::Array &array) {
  static_assert(sizeof(void *) == sizeof(int64_t), "64-bit hosts only");
  size_t rank = array.shape.size();
  words.resize(3 + 2 * rank);
  void *ptr = array.data.data();
  std::memcpy(&words[0], &ptr, sizeof(ptr)); // allocated
  std::memcpy(&words[1], &ptr, sizeof(ptr)); // aligned
  words[2] = 0;                              // offset
  int64_t stride = 1;
  for (size_t i = rank; i-- > 0;) {
    words[3 + i] = array.shape[i];
    words[3 + rank + i] = stride;
    stride *= array.shape[i];
  }
}

static void printValue(llvm::raw_ostream &os, const npy::Array &array,
                       double value) {
  if (npy::isFloatDType(array.dtype))
    os << llvm::format("%.6g", value);
  else
    os << llvm::format("%.0f", value);
}

void roperun::printSummary(llvm::raw_ostream &os, const npy::Array &array) {
  constexpr int64_t kShown = 8;
  int64_t count = array.getNumElements();
  os << "[";
  for (int64_t i = 0; i < std::min(count, kShown); ++i) {
    if (i)
      os << ", ";
    printValue(os, array, array.getAsDouble(i));
  }
  if (count > kShown)
    os << ", ...";
  os << "]";
  if (count == 0)
    return;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
  int64_t numNaN = 0;
  for (int64_t i = 0; i < count; ++i) {
    double value = array.getAsDouble(i);
    if (std::isnan(value)) {
      ++numNaN;
      continue;
    }
    lo = std::min(lo, value);
    hi = std::max(hi, value);
    sum += value;
  }
  if (numNaN < count) {
    os << " min=";
    printValue(os, array, lo);
    os << " max=";
    printValue(os, array, hi);
    os << " mean=" << llvm::format("%.6g", sum / (count - numNaN));
  }
  if (numNaN)
    os << " nan=" << numNaN;
}
