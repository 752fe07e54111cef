//===- InitRopeAttn.h - ropeattn registration entry points ------*- C++ -*-===//
//
// Part of the ropeattn project. What an MLIR-based compiler calls to use
// ropeattn: link RopeAttn::RopeAttnRegistration (CMake package RopeAttn).
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_INITROPEATTN_H
#define ROPEATTN_INITROPEATTN_H

namespace mlir {
class DialectRegistry;

/// Adds the ropeattn dialect (and the dialects its ops need) to `registry`.
void registerRopeAttnDialect(DialectRegistry &registry);

/// Registers every ropeattn pass and pass pipeline with the global registry
/// (for mlir-opt style drivers and textual pipelines).
void registerRopeAttnPasses();
} // namespace mlir

#endif // ROPEATTN_INITROPEATTN_H
