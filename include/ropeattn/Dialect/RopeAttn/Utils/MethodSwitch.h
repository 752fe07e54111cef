//===- MethodSwitch.h - shared pieces of the certified rewrites -*- C++ -*-===//
//
// Part of the ropeattn project.
//
// What ropeattn-expand-polynomial, -expand-toeplitz-attention and
// -expand-general-attention share around their run-time switch: the `exact`
// default case, declining to the exact method, and the `family` option.
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

/// Keeps `op` on the exact method, saying why in a remark "<pass>: exact
/// path: <why>"; succeeds (the op was updated in place).
template <typename OpTy>
LogicalResult declineToExact(OpTy op, RewriterBase &rewriter, StringRef pass,
                             const Twine &why) {
  op.emitRemark() << pass << ": exact path: " << why;
  rewriter.modifyOpInPlace(op, [&] {
    op.setMethodAttr(MethodAttr::get(op.getContext(), Method::Exact));
  });
  return success();
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
