//===- NpyIO.cpp - minimal float32 .npy reader/writer ---------------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "NpyIO.h"

#include <cstdio>
#include <cstring>
#include <fstream>

namespace ropebaseline {

namespace {

/// The value text of `key` in the header dict ("'key': value").
bool findValue(const std::string &header, const std::string &key,
               std::string::size_type &pos) {
  std::string::size_type k = header.find("'" + key + "'");
  if (k == std::string::npos)
    return false;
  std::string::size_type colon = header.find(':', k);
  if (colon == std::string::npos)
    return false;
  pos = colon + 1;
  while (pos < header.size() && header[pos] == ' ')
    ++pos;
  return pos < header.size();
}

bool isLittleEndianHost() {
  uint32_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

} // namespace

bool readNpy(const std::string &path, NpyArray &out, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open " + path;
    return false;
  }
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    error = path + ": not a .npy file";
    return false;
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint64_t headerLen = 0;
  if (major == 1) {
    unsigned char len[2];
    if (!in.read(reinterpret_cast<char *>(len), 2)) {
      error = path + ": truncated header";
      return false;
    }
    headerLen = len[0] | (uint64_t(len[1]) << 8);
  } else if (major == 2 || major == 3) {
    unsigned char len[4];
    if (!in.read(reinterpret_cast<char *>(len), 4)) {
      error = path + ": truncated header";
      return false;
    }
    headerLen = len[0] | (uint64_t(len[1]) << 8) | (uint64_t(len[2]) << 16) |
                (uint64_t(len[3]) << 24);
  } else {
    error = path + ": unsupported .npy version " + std::to_string(major);
    return false;
  }
  std::string header(headerLen, '\0');
  if (!in.read(header.data(), headerLen)) {
    error = path + ": truncated header";
    return false;
  }

  std::string::size_type pos;
  if (!findValue(header, "descr", pos) ||
      (header.compare(pos, 5, "'<f4'") != 0 &&
       !(isLittleEndianHost() && header.compare(pos, 5, "'=f4'") == 0))) {
    error = path + ": expected dtype '<f4' (float32), header: " + header;
    return false;
  }
  if (!findValue(header, "fortran_order", pos) ||
      header.compare(pos, 5, "False") != 0) {
    error = path + ": expected C order";
    return false;
  }
  if (!findValue(header, "shape", pos) || header[pos] != '(') {
    error = path + ": no shape in header";
    return false;
  }
  std::string::size_type close = header.find(')', pos);
  if (close == std::string::npos) {
    error = path + ": bad shape in header";
    return false;
  }
  out.shape.clear();
  int64_t count = 1;
  const char *p = header.c_str() + pos + 1;
  const char *end = header.c_str() + close;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == ','))
      ++p;
    if (p >= end)
      break;
    char *next = nullptr;
    long long dim = std::strtoll(p, &next, 10);
    if (next == p || dim < 0) {
      error = path + ": bad shape in header";
      return false;
    }
    out.shape.push_back(dim);
    count *= dim;
    p = next;
  }
  if (!isLittleEndianHost()) {
    error = "big-endian hosts are not supported";
    return false;
  }
  out.data.resize(count);
  if (count > 0 && !in.read(reinterpret_cast<char *>(out.data.data()),
                            count * sizeof(float))) {
    error = path + ": truncated data";
    return false;
  }
  return true;
}

bool writeNpy(const std::string &path, const std::vector<int64_t> &shape,
              const float *data, std::string &error) {
  if (!isLittleEndianHost()) {
    error = "big-endian hosts are not supported";
    return false;
  }
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size())
      dict += ",";
    if (i + 1 < shape.size())
      dict += " ";
    count *= shape[i];
  }
  dict += "), }";
  // Pad with spaces so that magic + length + header is a multiple of 64,
  // ending in '\n'.
  const size_t preamble = 10;
  size_t total = preamble + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  if (dict.size() > 65535) {
    error = "header too long";
    return false;
  }
  std::ofstream outFile(path, std::ios::binary);
  if (!outFile) {
    error = "cannot create " + path;
    return false;
  }
  const unsigned char pre[10] = {0x93,
                                 'N',
                                 'U',
                                 'M',
                                 'P',
                                 'Y',
                                 1,
                                 0,
                                 static_cast<unsigned char>(dict.size() & 0xff),
                                 static_cast<unsigned char>(dict.size() >> 8)};
  outFile.write(reinterpret_cast<const char *>(pre), sizeof(pre));
  outFile.write(dict.data(), dict.size());
  if (count > 0)
    outFile.write(reinterpret_cast<const char *>(data), count * sizeof(float));
  if (!outFile) {
    error = "write failed: " + path;
    return false;
  }
  return true;
}

} // namespace ropebaseline
