//===- MethodSwitch.h - shared pieces of the certified rewrites -*- C++ -*-===//
//
// Part of the ropeattn project.
//
// What ropeattn-expand-polynomial, -expand-toeplitz-attention and
// -expand-general-attention share around their run-time switch: the `exact`
// default case, and the `family` option's parsing.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_UTILS_METHODSWITCH_H
#define ROPEATTN_DIALECT_ROPEATTN_UTILS_METHODSWITCH_H

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

#include <optional>
#include <string>

namespace mlir {
namespace ropeattn {

/// Fills the default region of `sw` with a clone of `op` set to `method
/// exact`, yielding the clone's results for which `keep` holds (all when
/// `keep` is null).
template <typename OpTy>
void buildExactDefault(RewriterBase &rewriter, scf::IndexSwitchOp sw, OpTy op,
                       function_ref<bool(OpTy, Value)> keep = nullptr) {
  Block &blk = sw.getDefaultRegion().emplaceBlock();
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointToStart(&blk);
  auto exact = cast<OpTy>(rewriter.clone(*op));
  exact.setMethodAttr(MethodAttr::get(op.getContext(), Method::Exact));
  SmallVector<Value> results;
  for (Value res : exact->getResults())
    if (!keep || keep(exact, res))
      results.push_back(res);
  scf::YieldOp::create(rewriter, op.getLoc(), results);
}

/// The `family` option of pass `pass`, or an error on `op`: "<pass>: unknown
/// family '<name>'; expected taylor, chebyshev or minimax".
inline std::optional<poly::Family>
parseFamilyOption(Operation *op, StringRef pass, const std::string &name) {
  std::optional<poly::Family> family = poly::parseFamily(name);
  if (!family)
    op->emitError() << pass << ": unknown family '" << name
                    << "'; expected taylor, chebyshev or minimax";
  return family;
}

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_UTILS_METHODSWITCH_H
