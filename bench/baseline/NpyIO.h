//===- NpyIO.h - minimal float32 .npy reader/writer -------------*- C++ -*-===//
//
// Part of the ropeattn project.
//
// Just enough of the NumPy .npy format (versions 1–3) for the baseline:
// little-endian float32 ('<f4'), C order. Self-contained on purpose.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_BENCH_BASELINE_NPYIO_H
#define ROPEATTN_BENCH_BASELINE_NPYIO_H

#include <cstdint>
#include <string>
#include <vector>

namespace ropebaseline {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

/// Reads a '<f4' C-order array; on failure returns false and sets `error`.
bool readNpy(const std::string &path, NpyArray &out, std::string &error);

/// Writes `data` (product of `shape` floats) as '<f4', format version 1.0.
bool writeNpy(const std::string &path, const std::vector<int64_t> &shape,
              const float *data, std::string &error);

} // namespace ropebaseline

#endif // ROPEATTN_BENCH_BASELINE_NPYIO_H
