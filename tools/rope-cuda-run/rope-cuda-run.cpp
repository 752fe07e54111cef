//===- rope-cuda-run.cpp - run an AOT-compiled ropeattn CUDA function -----===//
//
// Part of the ropeattn project.
//
// Usage:
//   rope-cuda-run --library=libfwd.so --function=fwd
//       --signature='(tensor<1x8x4096x64xf16>, ...) -> tensor<...>'
//           (or --signature-file=NAME.sig of scripts/cuda-aot-build.sh)
//       --input=@q.npy --input=random:1 ... [--output=@o.npy ...]
//       [--benchmark=N]
//
// The library comes from scripts/cuda-aot-build.sh (rope-lower-to-cuda, host
// code + embedded cubin) and exports `_mlir_ciface_NAME(inputs...,
// outputs...)`, each argument a pointer to a ranked memref descriptor whose
// data pointer is a device pointer. This driver copies the inputs to the GPU,
// calls the function once (warm-up, and the result that is written), then N
// more times timed with CUDA events on the legacy default stream (the
// runtime's streams are blocking, so the events bracket the whole call), and
// prints `median/min/max ms`. Inputs: `@FILE.npy` (little-endian, C order;
// `<f2`, `<f4`, bf16 as `<V2`, `|V2`, `<u2` or `bfloat16`), or
// `random[:SEED]` (rope-run's generator: splitmix64, uniform in [-1, 1),
// rounded to f32 then to the element type), `zeros`, `ones`.
// Errors: `rope-cuda-run: error: ...` and exit status 1.
//
//===----------------------------------------------------------------------===//

#include <cuda.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

[[noreturn]] void die(const std::string &message) {
  std::fprintf(stderr, "rope-cuda-run: error: %s\n", message.c_str());
  std::exit(1);
}

void check(CUresult result, const char *what) {
  if (result == CUDA_SUCCESS)
    return;
  const char *name = "unknown", *text = "unknown error";
  cuGetErrorName(result, &name);
  cuGetErrorString(result, &text);
  die(std::string(what) + " failed: " + name + " (CUresult " +
      std::to_string(int(result)) + ": " + text + ")");
}

enum class Elt { F16, BF16, F32, F64 };

size_t eltSize(Elt e) { return e == Elt::F64 ? 8 : e == Elt::F32 ? 4 : 2; }

struct TensorType {
  std::vector<int64_t> shape;
  Elt elt;
  int64_t count() const {
    int64_t n = 1;
    for (int64_t s : shape)
      n *= s;
    return n;
  }
  size_t bytes() const { return size_t(count()) * eltSize(elt); }
  std::string str() const {
    std::string s = "tensor<";
    for (int64_t d : shape)
      s += std::to_string(d) + "x";
    s += elt == Elt::F16    ? "f16"
         : elt == Elt::BF16 ? "bf16"
         : elt == Elt::F64  ? "f64"
                            : "f32";
    return s + ">";
  }
};

/// Parses `tensor<AxBx...xT>` at `pos` in `text`.
TensorType parseTensor(const std::string &text, size_t &pos) {
  auto fail = [&]() -> TensorType {
    die("bad tensor type in signature at offset " + std::to_string(pos) +
        ": '" + text + "'");
  };
  while (pos < text.size() && std::isspace((unsigned char)text[pos]))
    ++pos;
  if (text.compare(pos, 7, "tensor<") != 0)
    return fail();
  size_t end = text.find('>', pos);
  if (end == std::string::npos)
    return fail();
  std::string body = text.substr(pos + 7, end - pos - 7);
  pos = end + 1;
  TensorType t;
  std::stringstream ss(body);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(ss, part, 'x'))
    parts.push_back(part);
  if (parts.empty())
    return fail();
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    char *e = nullptr;
    long long v = std::strtoll(parts[i].c_str(), &e, 10);
    if (!e || *e || v < 0 || parts[i].empty())
      return fail();
    t.shape.push_back(v);
  }
  const std::string &el = parts.back();
  if (el == "f16")
    t.elt = Elt::F16;
  else if (el == "bf16")
    t.elt = Elt::BF16;
  else if (el == "f32")
    t.elt = Elt::F32;
  else if (el == "f64") // e.g. the polynomial method's certificate result
    t.elt = Elt::F64;
  else
    die("unsupported element type '" + el + "' (f16, bf16, f32, f64)");
  return t;
}

/// `(T, T, ...) -> T` or `(T, ...) -> (T, T)`.
void parseSignature(const std::string &sig, std::vector<TensorType> &ins,
                    std::vector<TensorType> &outs) {
  size_t pos = sig.find('(');
  if (pos == std::string::npos)
    die("bad signature '" + sig + "': expected '(inputs) -> results'");
  ++pos;
  auto skip = [&]() {
    while (pos < sig.size() && std::isspace((unsigned char)sig[pos]))
      ++pos;
  };
  skip();
  while (pos < sig.size() && sig[pos] != ')') {
    ins.push_back(parseTensor(sig, pos));
    skip();
    if (pos < sig.size() && sig[pos] == ',')
      ++pos;
    skip();
  }
  pos = sig.find("->", pos);
  if (pos == std::string::npos)
    die("bad signature '" + sig + "': expected '->'");
  pos += 2;
  skip();
  bool paren = pos < sig.size() && sig[pos] == '(';
  if (paren)
    ++pos;
  skip();
  while (pos < sig.size() && sig[pos] != ')') {
    outs.push_back(parseTensor(sig, pos));
    skip();
    if (pos < sig.size() && sig[pos] == ',')
      ++pos;
    skip();
    if (!paren)
      break;
  }
}

//===--- f16 / bf16 ----------------------------------------------------===//

uint16_t toBF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

uint16_t toF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u)
    return uint16_t(sign | 0x7e00u);
  if (absu >= 0x477ff000u) // rounds to >= 65520: inf
    return uint16_t(sign | 0x7c00u);
  if (absu < 0x38800000u) { // subnormal or zero in f16
    float a;
    std::memcpy(&a, &absu, 4);
    // a / 2^-24, rounded to nearest even.
    float scaled = a * 16777216.0f;
    return uint16_t(sign | uint32_t(std::nearbyint(scaled)));
  }
  uint32_t mant = absu & 0x7fffffu;
  uint32_t exp = (absu >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h;
  return uint16_t(sign | h);
}

//===--- .npy ---------------------------------------------------------===//

std::vector<char> readNpy(const std::string &path, const TensorType &t,
                          const std::string &what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    die(what + ": cannot open '" + path + "'");
  std::vector<char> data((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  if (data.size() < 10 || std::memcmp(data.data(), "\x93NUMPY", 6) != 0)
    die(what + ": '" + path + "' is not a .npy file");
  int major = (unsigned char)data[6];
  size_t headerLen, start;
  if (major == 1) {
    headerLen = (unsigned char)data[8] | ((unsigned char)data[9] << 8);
    start = 10;
  } else {
    if (data.size() < 12)
      die(what + ": truncated .npy header in '" + path + "'");
    headerLen = 0;
    for (int i = 0; i < 4; ++i)
      headerLen |= size_t((unsigned char)data[8 + i]) << (8 * i);
    start = 12;
  }
  if (start + headerLen > data.size())
    die(what + ": truncated .npy header in '" + path + "'");
  std::string header(data.data() + start, headerLen);
  auto field = [&](const std::string &key) {
    size_t k = header.find("'" + key + "'");
    if (k == std::string::npos)
      die(what + ": .npy header of '" + path + "' has no " + key);
    return k + key.size() + 2;
  };
  size_t d = header.find('\'', header.find(':', field("descr"))) + 1;
  std::string descr = header.substr(d, header.find('\'', d) - d);
  size_t f = field("fortran_order");
  if (header.find("True", f) != std::string::npos &&
      header.find("True", f) < header.find(',', f))
    die(what + ": '" + path + "' is in Fortran order; expected C order");
  size_t s = header.find('(', field("shape"));
  std::string shapeText = header.substr(s + 1, header.find(')', s) - s - 1);
  std::vector<int64_t> shape;
  std::stringstream ss(shapeText);
  std::string item;
  while (std::getline(ss, item, ','))
    if (item.find_first_not_of(" ") != std::string::npos)
      shape.push_back(std::stoll(item));
  bool typeOk = (t.elt == Elt::F32 && descr == "<f4") ||
                (t.elt == Elt::F64 && descr == "<f8") ||
                (t.elt == Elt::F16 && descr == "<f2") ||
                (t.elt == Elt::BF16 && (descr == "<V2" || descr == "|V2" ||
                                        descr == "<u2" || descr == "bfloat16"));
  if (!typeOk)
    die(what + ": '" + path + "' has dtype '" + descr + "', expected " +
        t.str());
  if (shape != t.shape)
    die(what + ": '" + path + "' has shape (" + shapeText + "), expected " +
        t.str());
  size_t body = start + headerLen;
  if (data.size() - body != t.bytes())
    die(what + ": '" + path + "' holds " + std::to_string(data.size() - body) +
        " bytes of data, expected " + std::to_string(t.bytes()));
  return std::vector<char>(data.begin() + body, data.end());
}

void writeNpy(const std::string &path, const TensorType &t,
              const std::vector<char> &data) {
  std::string descr = t.elt == Elt::F32   ? "<f4"
                      : t.elt == Elt::F64 ? "<f8"
                      : t.elt == Elt::F16 ? "<f2"
                                          : "<V2";
  std::string shape = "(";
  for (int64_t d : t.shape)
    shape += std::to_string(d) + ", ";
  if (t.shape.size() > 1)
    shape.erase(shape.size() - 2);
  else if (t.shape.size() == 1)
    shape.erase(shape.size() - 1);
  shape += ")";
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out)
    die("cannot write '" + path + "'");
  out.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {char(header.size() & 0xff), char(header.size() >> 8)};
  out.write(len, 2);
  out.write(header.data(), header.size());
  out.write(data.data(), data.size());
  if (!out)
    die("cannot write '" + path + "'");
}

/// rope-run's generator: element i is the (i+1)-th splitmix64 output x of
/// state `seed`, as 2·(x >> 11)·2⁻⁵³ − 1 rounded to f32 then to the type.
std::vector<char> generate(const std::string &spec, const TensorType &t,
                           const std::string &what) {
  std::vector<char> data(t.bytes());
  int64_t n = t.count();
  auto put = [&](int64_t i, float f) {
    if (t.elt == Elt::F32)
      std::memcpy(&data[i * 4], &f, 4);
    else if (t.elt == Elt::F64) {
      double x = f;
      std::memcpy(&data[i * 8], &x, 8);
    } else {
      uint16_t h = t.elt == Elt::F16 ? toF16(f) : toBF16(f);
      std::memcpy(&data[i * 2], &h, 2);
    }
  };
  if (spec == "zeros" || spec == "ones") {
    for (int64_t i = 0; i < n; ++i)
      put(i, spec == "ones" ? 1.0f : 0.0f);
    return data;
  }
  if (spec.rfind("random", 0) != 0)
    die(what + ": bad input '" + spec +
        "' (expected @FILE.npy, random[:SEED], zeros or ones)");
  uint64_t state = 0;
  if (spec.size() > 6) {
    if (spec[6] != ':')
      die(what + ": bad input '" + spec + "'");
    char *e = nullptr;
    state = std::strtoull(spec.c_str() + 7, &e, 10);
    if (!e || *e)
      die(what + ": bad seed in '" + spec + "'");
  }
  for (int64_t i = 0; i < n; ++i) {
    state += 0x9e3779b97f4a7c15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    double x = 2.0 * double(z >> 11) * 0x1.0p-53 - 1.0;
    put(i, float(x));
  }
  return data;
}

/// Calls `fn(a[0], ..., a[n-1])` with its exact type `void(void *...)`.
template <size_t... I>
void callWith(void *fn, std::vector<void *> &a, std::index_sequence<I...>) {
  using Fn = void (*)(decltype((void)I, (void *)nullptr)...);
  reinterpret_cast<Fn>(fn)(a[I]...);
}

void call(void *fn, std::vector<void *> &a) {
  switch (a.size()) {
  case 1:
    return callWith(fn, a, std::make_index_sequence<1>());
  case 2:
    return callWith(fn, a, std::make_index_sequence<2>());
  case 3:
    return callWith(fn, a, std::make_index_sequence<3>());
  case 4:
    return callWith(fn, a, std::make_index_sequence<4>());
  case 5:
    return callWith(fn, a, std::make_index_sequence<5>());
  case 6:
    return callWith(fn, a, std::make_index_sequence<6>());
  case 7:
    return callWith(fn, a, std::make_index_sequence<7>());
  case 8:
    return callWith(fn, a, std::make_index_sequence<8>());
  case 9:
    return callWith(fn, a, std::make_index_sequence<9>());
  case 10:
    return callWith(fn, a, std::make_index_sequence<10>());
  case 11:
    return callWith(fn, a, std::make_index_sequence<11>());
  case 12:
    return callWith(fn, a, std::make_index_sequence<12>());
  default:
    die("functions with more than 12 inputs + results are not supported");
  }
}

} // namespace

int main(int argc, char **argv) {
  std::string library, function, signature, signatureFile;
  std::vector<std::string> inputs, outputs;
  long benchmark = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *flag) -> const char * {
      size_t n = std::strlen(flag);
      if (a.compare(0, n, flag) == 0 && a.size() > n && a[n] == '=')
        return argv[i] + n + 1;
      return nullptr;
    };
    if (const char *v = value("--library"))
      library = v;
    else if (const char *v = value("--function"))
      function = v;
    else if (const char *v = value("--signature"))
      signature = v;
    else if (const char *v = value("--signature-file"))
      signatureFile = v;
    else if (const char *v = value("--input"))
      inputs.push_back(v);
    else if (const char *v = value("--output"))
      outputs.push_back(v);
    else if (const char *v = value("--benchmark")) {
      char *e = nullptr;
      benchmark = std::strtol(v, &e, 10);
      if (!e || *e || benchmark < 0)
        die(std::string("bad --benchmark '") + v + "'");
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: rope-cuda-run --library=LIB.so --function=NAME "
                  "--signature='(tensor<...>, ...) -> tensor<...>' "
                  "--input=@FILE.npy|random[:SEED]|zeros|ones ... "
                  "[--output=@FILE.npy ...] [--benchmark=N]\n");
      return 0;
    } else
      die("unknown argument '" + a + "' (see --help)");
  }
  // A .sig file of scripts/cuda-aot-build.sh: lines `NAME SIGNATURE`.
  if (!signatureFile.empty() && signature.empty()) {
    std::ifstream in(signatureFile);
    if (!in)
      die("cannot open signature file '" + signatureFile + "'");
    std::string line;
    while (std::getline(in, line))
      if (line.compare(0, function.size() + 1, function + " ") == 0)
        signature = line.substr(function.size() + 1);
    if (signature.empty())
      die("no signature of '" + function + "' in '" + signatureFile + "'");
  }
  if (library.empty() || function.empty() || signature.empty())
    die("--library, --function and --signature (or --signature-file) are "
        "required");
  std::vector<TensorType> ins, outs;
  parseSignature(signature, ins, outs);
  if (inputs.size() != ins.size())
    die("the signature has " + std::to_string(ins.size()) + " inputs, got " +
        std::to_string(inputs.size()) + " --input");
  if (outputs.size() > outs.size())
    die("the signature has " + std::to_string(outs.size()) + " results, got " +
        std::to_string(outputs.size()) + " --output");

  // Host data first: input errors are reported before touching the GPU.
  std::vector<std::vector<char>> host;
  for (size_t i = 0; i < ins.size(); ++i) {
    std::string what =
        "input #" + std::to_string(i) + " (" + ins[i].str() + ")";
    host.push_back(inputs[i].size() > 1 && inputs[i][0] == '@'
                       ? readNpy(inputs[i].substr(1), ins[i], what)
                       : generate(inputs[i], ins[i], what));
  }
  for (const std::string &o : outputs)
    if (o.size() < 2 || o[0] != '@')
      die("bad --output '" + o + "' (expected @FILE.npy)");

  void *handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    die("cannot load '" + library + "': " + dlerror());
  std::string symbol = "_mlir_ciface_" + function;
  void *fn = dlsym(handle, symbol.c_str());
  if (!fn)
    die("'" + library + "' has no function '" + symbol + "'");

  check(cuInit(0), "cuInit");
  CUdevice device;
  check(cuDeviceGet(&device, 0), "cuDeviceGet");
  CUcontext ctx;
  check(cuDevicePrimaryCtxRetain(&ctx, device), "cuDevicePrimaryCtxRetain");
  check(cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  char name[256] = {0};
  cuDeviceGetName(name, sizeof(name) - 1, device);

  std::vector<TensorType> all = ins;
  all.insert(all.end(), outs.begin(), outs.end());
  std::vector<CUdeviceptr> dev(all.size(), 0);
  std::vector<std::vector<int64_t>> desc(all.size());
  std::vector<void *> args;
  for (size_t i = 0; i < all.size(); ++i) {
    size_t bytes = std::max<size_t>(all[i].bytes(), 1);
    check(cuMemAlloc(&dev[i], bytes), "cuMemAlloc");
    if (i < ins.size()) {
      if (all[i].bytes())
        check(cuMemcpyHtoD(dev[i], host[i].data(), all[i].bytes()),
              "cuMemcpyHtoD");
    } else {
      check(cuMemsetD8(dev[i], 0, bytes), "cuMemsetD8");
    }
    // {allocated, aligned, offset, sizes[R], strides[R]} (row-major).
    size_t rank = all[i].shape.size();
    desc[i].assign(3 + 2 * rank, 0);
    desc[i][0] = int64_t(dev[i]);
    desc[i][1] = int64_t(dev[i]);
    int64_t stride = 1;
    for (size_t r = rank; r-- > 0;) {
      desc[i][3 + r] = all[i].shape[r];
      desc[i][3 + rank + r] = stride;
      stride *= all[i].shape[r];
    }
    args.push_back(desc[i].data());
  }

  call(fn, args); // warm-up; its results are the ones written
  check(cuCtxSynchronize(), "cuCtxSynchronize");
  std::printf("device: %s\n", name);
  if (benchmark > 0) {
    CUevent start, stop;
    check(cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
    check(cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
    std::vector<double> ms;
    for (long it = 0; it < benchmark; ++it) {
      check(cuEventRecord(start, nullptr), "cuEventRecord");
      call(fn, args);
      check(cuEventRecord(stop, nullptr), "cuEventRecord");
      check(cuEventSynchronize(stop), "cuEventSynchronize");
      float t = 0;
      check(cuEventElapsedTime(&t, start, stop), "cuEventElapsedTime");
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    double median = ms.size() % 2
                        ? ms[ms.size() / 2]
                        : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
    std::printf("benchmark: %ld runs, median %.4f ms, min %.4f ms, max %.4f "
                "ms\n",
                benchmark, median, ms.front(), ms.back());
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    const TensorType &t = outs[o];
    std::vector<char> data(t.bytes());
    if (t.bytes())
      check(cuMemcpyDtoH(data.data(), dev[ins.size() + o], t.bytes()),
            "cuMemcpyDtoH");
    writeNpy(outputs[o].substr(1), t, data);
  }
  for (CUdeviceptr p : dev)
    check(cuMemFree(p), "cuMemFree");
  std::fflush(stdout);
  return 0;
}
