//===- Npy.cpp - NumPy .npy file reading and writing ----------------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// The format (numpy/lib/format.py): the magic string "\x93NUMPY", a major and
// a minor version byte, the header length (uint16 little-endian in 1.0, uint32
// in 2.0 and 3.0), then the header: the repr of a Python dict
// {'descr': '<f4', 'fortran_order': False, 'shape': (4, 8), } padded with
// spaces and ended by '\n'; then the raw data.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Npy/Npy.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/bit.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

using namespace mlir::ropeattn;
using namespace mlir::ropeattn::npy;
using llvm::StringRef;

static_assert(llvm::endianness::native == llvm::endianness::little,
              "the .npy reader assumes a little-endian host");

static constexpr char kMagic[] = "\x93NUMPY";
static constexpr size_t kMagicSize = 6;

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

namespace {
struct DTypeInfo {
  DType dtype;
  const char *name;
  const char *descr;
  size_t size;
};
} // namespace

static constexpr DTypeInfo kDTypes[] = {
    {DType::Bool, "i1", "|b1", 1},   {DType::I8, "i8", "|i1", 1},
    {DType::I16, "i16", "<i2", 2},   {DType::I32, "i32", "<i4", 4},
    {DType::I64, "i64", "<i8", 8},   {DType::U8, "ui8", "|u1", 1},
    {DType::U16, "ui16", "<u2", 2},  {DType::U32, "ui32", "<u4", 4},
    {DType::U64, "ui64", "<u8", 8},  {DType::F16, "f16", "<f2", 2},
    {DType::BF16, "bf16", "<V2", 2}, {DType::F32, "f32", "<f4", 4},
    {DType::F64, "f64", "<f8", 8},
};

static const DTypeInfo &getInfo(DType dtype) {
  for (const DTypeInfo &info : kDTypes)
    if (info.dtype == dtype)
      return info;
  llvm_unreachable("unknown dtype");
}

size_t npy::getDTypeSize(DType dtype) { return getInfo(dtype).size; }
StringRef npy::getDTypeName(DType dtype) { return getInfo(dtype).name; }
StringRef npy::getDTypeDescr(DType dtype) { return getInfo(dtype).descr; }

std::optional<DType> npy::lookupDTypeByName(StringRef name) {
  for (const DTypeInfo &info : kDTypes)
    if (name == info.name)
      return info.dtype;
  return std::nullopt;
}

bool npy::isFloatDType(DType dtype) {
  return dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F32 ||
         dtype == DType::F64;
}

//===----------------------------------------------------------------------===//
// f16 / bf16
//===----------------------------------------------------------------------===//

uint16_t npy::floatToHalf(float value) {
  uint32_t bits = llvm::bit_cast<uint32_t>(value);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  uint32_t abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) // NaN: keep the top payload bits, force quiet.
    return sign | 0x7e00 | static_cast<uint16_t>((abs >> 13) & 0x1ff);
  int32_t exp = static_cast<int32_t>(abs >> 23) - 127;
  if (exp > 15) // Infinity, or too large for f16.
    return sign | 0x7c00;
  if (exp >= -14) { // Normal f16 (rounding may carry up to infinity).
    uint32_t mant = abs & 0x7fffff;
    uint32_t half = (static_cast<uint32_t>(exp + 15) << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
      ++half;
    return sign | static_cast<uint16_t>(half);
  }
  if (exp < -25) // Below half the smallest subnormal: zero.
    return sign;
  // Subnormal f16: units of 2^-24. value = mant * 2^(exp - 23).
  uint32_t mant = (abs & 0x7fffff) | 0x800000;
  int shift = -(exp + 1); // 14 ... 24
  uint32_t half = mant >> shift;
  uint32_t rest = mant & ((1u << shift) - 1);
  uint32_t tie = 1u << (shift - 1);
  if (rest > tie || (rest == tie && (half & 1)))
    ++half;
  return sign | static_cast<uint16_t>(half);
}

float npy::halfToFloat(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  uint32_t exp = (bits >> 10) & 0x1f;
  uint32_t mant = bits & 0x3ff;
  if (exp == 0x1f)
    return llvm::bit_cast<float>(sign | 0x7f800000 | (mant << 13));
  if (exp == 0) {
    float magnitude = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  return llvm::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t npy::floatToBFloat16(float value) {
  uint32_t bits = llvm::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffff) > 0x7f800000) // NaN: force quiet.
    return static_cast<uint16_t>((bits >> 16) | 0x0040);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

float npy::bfloat16ToFloat(uint16_t bits) {
  return llvm::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

//===----------------------------------------------------------------------===//
// AlignedBuffer and Array
//===----------------------------------------------------------------------===//

AlignedBuffer::AlignedBuffer(size_t size) : numBytes(size) {
  // aligned_alloc wants a multiple of the alignment; never allocate 0 bytes so
  // that data() is a valid pointer even for empty arrays.
  size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0)
    rounded = kAlignment;
  void *ptr = std::aligned_alloc(kAlignment, rounded);
  if (!ptr)
    llvm::report_bad_alloc_error("ropeattn::npy: out of memory");
  std::memset(ptr, 0, rounded);
  storage.reset(static_cast<uint8_t *>(ptr));
}

void AlignedBuffer::Deleter::operator()(uint8_t *ptr) const { std::free(ptr); }

llvm::Expected<size_t> npy::computeNumBytes(DType dtype,
                                            const std::vector<int64_t> &shape) {
  constexpr uint64_t kLimit = uint64_t(1) << 62;
  uint64_t bytes = getDTypeSize(dtype);
  for (int64_t dim : shape) {
    if (dim < 0)
      return llvm::createStringError("negative dimension " +
                                     std::to_string(dim) + " in shape");
    if (dim != 0 && bytes > kLimit / static_cast<uint64_t>(dim))
      return llvm::createStringError("array too large");
    bytes *= static_cast<uint64_t>(dim);
  }
  return static_cast<size_t>(bytes);
}

Array::Array(DType dtype, std::vector<int64_t> shape)
    : dtype(dtype), shape(std::move(shape)),
      data(llvm::cantFail(computeNumBytes(dtype, this->shape))) {}

int64_t Array::getNumElements() const {
  int64_t count = 1;
  for (int64_t dim : shape)
    count *= dim;
  return count;
}

std::string Array::getTypeString() const {
  std::string result;
  for (int64_t dim : shape)
    result += std::to_string(dim) + "x";
  result += getDTypeName(dtype).str();
  return result;
}

template <typename T> static T load(const uint8_t *base, int64_t index) {
  T value;
  std::memcpy(&value, base + index * sizeof(T), sizeof(T));
  return value;
}

template <typename T> static void store(uint8_t *base, int64_t index, T value) {
  std::memcpy(base + index * sizeof(T), &value, sizeof(T));
}

double Array::getAsDouble(int64_t index) const {
  const uint8_t *base = data.data();
  switch (dtype) {
  case DType::Bool:
    return load<uint8_t>(base, index) ? 1.0 : 0.0;
  case DType::I8:
    return load<int8_t>(base, index);
  case DType::I16:
    return load<int16_t>(base, index);
  case DType::I32:
    return load<int32_t>(base, index);
  case DType::I64:
    return static_cast<double>(load<int64_t>(base, index));
  case DType::U8:
    return load<uint8_t>(base, index);
  case DType::U16:
    return load<uint16_t>(base, index);
  case DType::U32:
    return load<uint32_t>(base, index);
  case DType::U64:
    return static_cast<double>(load<uint64_t>(base, index));
  case DType::F16:
    return halfToFloat(load<uint16_t>(base, index));
  case DType::BF16:
    return bfloat16ToFloat(load<uint16_t>(base, index));
  case DType::F32:
    return load<float>(base, index);
  case DType::F64:
    return load<double>(base, index);
  }
  llvm_unreachable("unknown dtype");
}

/// Rounds toward zero and saturates to T's range; NaN gives 0.
template <typename T> static T saturate(double value) {
  if (std::isnan(value))
    return 0;
  // The bounds as doubles: min is exact (a power of two or 0); max + 1 is an
  // exact power of two, so compare against it with >=.
  constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
  const double hiPlusOne =
      std::ldexp(1.0, std::numeric_limits<T>::digits); // 2^digits
  if (value <= lo)
    return std::numeric_limits<T>::min();
  if (value >= hiPlusOne)
    return std::numeric_limits<T>::max();
  return static_cast<T>(value);
}

void Array::setFromDouble(int64_t index, double value) {
  uint8_t *base = data.data();
  switch (dtype) {
  case DType::Bool:
    return store<uint8_t>(base, index, value != 0.0 ? 1 : 0);
  case DType::I8:
    return store(base, index, saturate<int8_t>(value));
  case DType::I16:
    return store(base, index, saturate<int16_t>(value));
  case DType::I32:
    return store(base, index, saturate<int32_t>(value));
  case DType::I64:
    return store(base, index, saturate<int64_t>(value));
  case DType::U8:
    return store(base, index, saturate<uint8_t>(value));
  case DType::U16:
    return store(base, index, saturate<uint16_t>(value));
  case DType::U32:
    return store(base, index, saturate<uint32_t>(value));
  case DType::U64:
    return store(base, index, saturate<uint64_t>(value));
  case DType::F16:
    return store(base, index, floatToHalf(static_cast<float>(value)));
  case DType::BF16:
    return store(base, index, floatToBFloat16(static_cast<float>(value)));
  case DType::F32:
    return store(base, index, static_cast<float>(value));
  case DType::F64:
    return store(base, index, value);
  }
  llvm_unreachable("unknown dtype");
}

//===----------------------------------------------------------------------===//
// Header parsing
//===----------------------------------------------------------------------===//

namespace {
/// A value of the header dict: a string, a bool, or a tuple of integers.
struct HeaderValue {
  enum Kind { String, Bool, Tuple, List } kind = String;
  std::string str;
  bool boolean = false;
  std::vector<int64_t> tuple;
};

/// A parser for the subset of Python literals that .npy headers use.
class HeaderParser {
public:
  explicit HeaderParser(StringRef text) : text(text) {}

  llvm::Error parseDict(std::vector<std::pair<std::string, HeaderValue>> &out);

private:
  llvm::Error error(const llvm::Twine &message) {
    return llvm::createStringError("malformed .npy header: " + message +
                                   " at header offset " + llvm::Twine(pos));
  }
  void skipSpace() {
    while (pos < text.size() && llvm::isSpace(text[pos]))
      ++pos;
  }
  bool consume(char c) {
    skipSpace();
    if (pos < text.size() && text[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }
  llvm::Error parseString(std::string &out);
  llvm::Error parseInteger(int64_t &out);
  llvm::Error parseValue(HeaderValue &out);

  StringRef text;
  size_t pos = 0;
};
} // namespace

llvm::Error HeaderParser::parseString(std::string &out) {
  skipSpace();
  if (pos >= text.size() || (text[pos] != '\'' && text[pos] != '"'))
    return error("expected a string");
  char quote = text[pos++];
  size_t end = text.find(quote, pos);
  if (end == StringRef::npos)
    return error("unterminated string");
  out = text.slice(pos, end).str();
  pos = end + 1;
  return llvm::Error::success();
}

llvm::Error HeaderParser::parseInteger(int64_t &out) {
  skipSpace();
  size_t start = pos;
  if (pos < text.size() && (text[pos] == '-' || text[pos] == '+'))
    ++pos;
  while (pos < text.size() && llvm::isDigit(text[pos]))
    ++pos;
  StringRef digits = text.slice(start, pos);
  if (pos < text.size() && text[pos] == 'L') // Python 2 long suffix.
    ++pos;
  if (digits.getAsInteger(10, out))
    return error("expected an integer");
  return llvm::Error::success();
}

llvm::Error HeaderParser::parseValue(HeaderValue &out) {
  skipSpace();
  if (pos >= text.size())
    return error("expected a value");
  char c = text[pos];
  if (c == '\'' || c == '"') {
    out.kind = HeaderValue::String;
    return parseString(out.str);
  }
  if (text.substr(pos).starts_with("True")) {
    pos += 4;
    out.kind = HeaderValue::Bool;
    out.boolean = true;
    return llvm::Error::success();
  }
  if (text.substr(pos).starts_with("False")) {
    pos += 5;
    out.kind = HeaderValue::Bool;
    out.boolean = false;
    return llvm::Error::success();
  }
  if (c == '(') {
    ++pos;
    out.kind = HeaderValue::Tuple;
    while (!consume(')')) {
      int64_t value;
      if (llvm::Error err = parseInteger(value))
        return err;
      out.tuple.push_back(value);
      if (consume(')'))
        break;
      if (!consume(','))
        return error("expected ',' or ')' in a tuple");
    }
    return llvm::Error::success();
  }
  if (c == '[') {
    // A structured dtype's descr: skip the (possibly nested) list.
    out.kind = HeaderValue::List;
    int depth = 0;
    for (; pos < text.size(); ++pos) {
      if (text[pos] == '[' || text[pos] == '(')
        ++depth;
      else if (text[pos] == ']' || text[pos] == ')')
        --depth;
      if (depth == 0) {
        ++pos;
        return llvm::Error::success();
      }
    }
    return error("unterminated list");
  }
  return error("unexpected character '" + text.substr(pos, 1) + "'");
}

llvm::Error
HeaderParser::parseDict(std::vector<std::pair<std::string, HeaderValue>> &out) {
  if (!consume('{'))
    return error("expected '{'");
  while (!consume('}')) {
    std::string key;
    if (llvm::Error err = parseString(key))
      return err;
    if (!consume(':'))
      return error("expected ':' after '" + key + "'");
    HeaderValue value;
    if (llvm::Error err = parseValue(value))
      return err;
    out.emplace_back(std::move(key), std::move(value));
    if (consume('}'))
      break;
    if (!consume(','))
      return error("expected ',' or '}'");
  }
  skipSpace();
  if (pos != text.size())
    return error("unexpected text after the dict");
  return llvm::Error::success();
}

/// Maps a descr string to a dtype.
static llvm::Expected<DType> parseDescr(StringRef descr) {
  if (descr == "bfloat16")
    return DType::BF16;
  char order = '=';
  StringRef code = descr;
  if (!code.empty() && StringRef("<>|=").contains(code.front())) {
    order = code.front();
    code = code.drop_front();
  }
  std::optional<DType> dtype;
  if (code == "V2") {
    dtype = DType::BF16;
  } else {
    for (const DTypeInfo &info : kDTypes)
      if (info.dtype != DType::BF16 && code == StringRef(info.descr).substr(1))
        dtype = info.dtype;
  }
  if (!dtype)
    return llvm::createStringError(
        "unsupported dtype '" + descr +
        "' (supported: <f2, <f4, <f8, bfloat16 as <V2, |b1, |i1, <i2, <i4, "
        "<i8, |u1, <u2, <u4, <u8)");
  if (order == '>' && getDTypeSize(*dtype) > 1)
    return llvm::createStringError("big-endian data ('" + descr +
                                   "') is not supported; convert it with "
                                   "arr.astype(arr.dtype.newbyteorder('<'))");
  return *dtype;
}

/// The Python repr of a shape tuple: "()", "(4,)", "(4, 8)".
static std::string formatShape(const std::vector<int64_t> &shape) {
  if (shape.size() == 1)
    return "(" + std::to_string(shape[0]) + ",)";
  std::string result = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    result += (i ? ", " : "") + std::to_string(shape[i]);
  return result + ")";
}

llvm::Expected<Array> npy::parseNpy(StringRef contents) {
  if (contents.size() < kMagicSize || !contents.starts_with(kMagic))
    return llvm::createStringError("not a .npy file (no \\x93NUMPY magic)");
  if (contents.size() < kMagicSize + 2)
    return llvm::createStringError("truncated .npy file: no version");
  unsigned major = static_cast<uint8_t>(contents[kMagicSize]);
  unsigned minor = static_cast<uint8_t>(contents[kMagicSize + 1]);
  if (major < 1 || major > 3 || minor != 0)
    return llvm::createStringError(
        "unsupported .npy format version " + std::to_string(major) + "." +
        std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  size_t lengthSize = major == 1 ? 2 : 4;
  size_t headerStart = kMagicSize + 2 + lengthSize;
  if (contents.size() < headerStart)
    return llvm::createStringError("truncated .npy file: no header length");
  const char *lengthPtr = contents.data() + kMagicSize + 2;
  uint64_t headerLength =
      major == 1 ? uint64_t(llvm::support::endian::read16le(lengthPtr))
                 : uint64_t(llvm::support::endian::read32le(lengthPtr));
  if (contents.size() - headerStart < headerLength)
    return llvm::createStringError(
        "truncated .npy file: the header is " + std::to_string(headerLength) +
        " bytes but only " + std::to_string(contents.size() - headerStart) +
        " follow");
  StringRef header = contents.substr(headerStart, headerLength);

  std::vector<std::pair<std::string, HeaderValue>> entries;
  if (llvm::Error err = HeaderParser(header).parseDict(entries))
    return std::move(err);
  const HeaderValue *descr = nullptr, *fortran = nullptr, *shape = nullptr;
  for (const auto &[key, value] : entries) {
    const HeaderValue **slot = key == "descr"           ? &descr
                               : key == "fortran_order" ? &fortran
                               : key == "shape"         ? &shape
                                                        : nullptr;
    if (!slot)
      return llvm::createStringError("malformed .npy header: unexpected key '" +
                                     key + "'");
    if (*slot)
      return llvm::createStringError("malformed .npy header: duplicate key '" +
                                     key + "'");
    *slot = &value;
  }
  if (!descr || !fortran || !shape)
    return llvm::createStringError(std::string("malformed .npy header: no '") +
                                   (!descr     ? "descr"
                                    : !fortran ? "fortran_order"
                                               : "shape") +
                                   "' key");
  if (descr->kind == HeaderValue::List)
    return llvm::createStringError(
        "unsupported dtype: structured arrays are not supported");
  if (descr->kind != HeaderValue::String)
    return llvm::createStringError(
        "malformed .npy header: 'descr' is not a string");
  if (fortran->kind != HeaderValue::Bool)
    return llvm::createStringError(
        "malformed .npy header: 'fortran_order' is not True or False");
  if (shape->kind != HeaderValue::Tuple)
    return llvm::createStringError(
        "malformed .npy header: 'shape' is not a tuple");

  llvm::Expected<DType> dtype = parseDescr(descr->str);
  if (!dtype)
    return dtype.takeError();
  // Fortran and C order coincide for rank <= 1.
  if (fortran->boolean && shape->tuple.size() > 1)
    return llvm::createStringError(
        "Fortran-order arrays are not supported (save a C-order array, "
        "np.ascontiguousarray)");
  llvm::Expected<size_t> numBytes = computeNumBytes(*dtype, shape->tuple);
  if (!numBytes)
    return llvm::createStringError(
        "malformed .npy header: " + llvm::toString(numBytes.takeError()) + " " +
        formatShape(shape->tuple));

  StringRef payload = contents.substr(headerStart + headerLength);
  if (payload.size() < *numBytes)
    return llvm::createStringError(
        "truncated .npy file: shape " + formatShape(shape->tuple) + " of '" +
        descr->str + "' needs " + std::to_string(*numBytes) +
        " bytes of data, the file has " + std::to_string(payload.size()));
  if (payload.size() > *numBytes)
    return llvm::createStringError(
        "corrupt .npy file: " + std::to_string(payload.size() - *numBytes) +
        " unexpected bytes after the data of shape " +
        formatShape(shape->tuple) + " of '" + descr->str + "'");

  Array array(*dtype, shape->tuple);
  if (*numBytes)
    std::memcpy(array.data.data(), payload.data(), *numBytes);
  return std::move(array);
}

llvm::Expected<Array> npy::readNpyFile(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return llvm::createStringError("'" + path +
                                   "': " + buffer.getError().message());
  llvm::Expected<Array> array = parseNpy((*buffer)->getBuffer());
  if (!array)
    return llvm::createStringError("'" + path +
                                   "': " + llvm::toString(array.takeError()));
  return array;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

void npy::writeNpy(llvm::raw_ostream &os, const Array &array) {
  std::string header =
      "{'descr': '" + getDTypeDescr(array.dtype).str() +
      "', 'fortran_order': False, 'shape': " + formatShape(array.shape) + ", }";
  // Pad with spaces, then '\n', so that the data starts at a multiple of 64.
  size_t prefix = kMagicSize + 2 + 2;
  bool v2 = false;
  size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  if (total - prefix > 0xffff) {
    v2 = true;
    prefix = kMagicSize + 2 + 4;
    total = (prefix + header.size() + 1 + 63) / 64 * 64;
  }
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';

  os.write(kMagic, kMagicSize);
  os << static_cast<char>(v2 ? 2 : 1) << static_cast<char>(0);
  // The header length, little-endian: 2 bytes (1.0) or 4 bytes (2.0).
  size_t length = header.size();
  for (size_t i = 0, e = v2 ? 4 : 2; i < e; ++i)
    os << static_cast<char>((length >> (8 * i)) & 0xff);
  os << header;
  os.write(reinterpret_cast<const char *>(array.data.data()),
           array.getNumBytes());
}

llvm::Error npy::writeNpyFile(StringRef path, const Array &array) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return llvm::createStringError(
        "'" + path + "': cannot open for writing: " + ec.message());
  writeNpy(os, array);
  os.close();
  if (os.has_error()) {
    std::string message = os.error().message();
    os.clear_error();
    return llvm::createStringError("'" + path + "': write error: " + message);
  }
  return llvm::Error::success();
}
