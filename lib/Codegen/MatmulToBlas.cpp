//===- MatmulToBlas.cpp - linalg.matmul on memrefs to BLAS calls ----------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Codegen/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNMATMULTOBLAS
#include "ropeattn/Codegen/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;

namespace {

/// Which operands of C(i, j) += A·B are transposed, read off the maps over
/// (d0, d1, d2) = (i, j, k); nullopt when the maps are not such a product.
std::optional<std::pair<bool, bool>> transposes(linalg::MatmulOp op) {
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  if (maps.size() != 3 || maps[0].getNumDims() != 3)
    return std::nullopt;
  MLIRContext *ctx = op.getContext();
  auto m = [&](unsigned x, unsigned y) {
    return AffineMap::get(
        3, 0, {getAffineDimExpr(x, ctx), getAffineDimExpr(y, ctx)}, ctx);
  };
  if (maps[2] != m(0, 1))
    return std::nullopt;
  bool ta, tb;
  if (maps[0] == m(0, 2))
    ta = false;
  else if (maps[0] == m(2, 0))
    ta = true;
  else
    return std::nullopt;
  if (maps[1] == m(2, 1))
    tb = false;
  else if (maps[1] == m(1, 2))
    tb = true;
  else
    return std::nullopt;
  return std::make_pair(ta, tb);
}

/// Declares `@name(memref<?x?xT, strided<[?, ?], offset: ?>> ×3, i32 ×3)`
/// with a C interface, once per module.
func::FuncOp declareRuntime(ModuleOp module, StringRef name, MemRefType type,
                            PatternRewriter &rewriter) {
  if (auto f = module.lookupSymbol<func::FuncOp>(name))
    return f;
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointToStart(module.getBody());
  Type i32 = rewriter.getI32Type();
  auto fnType = rewriter.getFunctionType({type, type, type, i32, i32, i32}, {});
  auto f = func::FuncOp::create(rewriter, module.getLoc(), name, fnType);
  f.setPrivate();
  f->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
             rewriter.getUnitAttr());
  return f;
}

struct MatmulToBlas : OpRewritePattern<linalg::MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "not on memrefs");
    auto t = transposes(op);
    if (!t)
      return rewriter.notifyMatchFailure(op, "not a (transposed) matmul");
    Value a = op.getDpsInputs()[0], b = op.getDpsInputs()[1],
          c = op.getDpsInits()[0];
    Type e = cast<MemRefType>(c.getType()).getElementType();
    for (Value v : {a, b})
      if (cast<MemRefType>(v.getType()).getElementType() != e)
        return rewriter.notifyMatchFailure(op, "mixed element types");
    if (!e.isF32() && !e.isF64())
      return rewriter.notifyMatchFailure(op, "not f32/f64");
    // The body must be the plain multiply-accumulate (no cast attribute).
    if (op.getCast() != linalg::TypeFn::cast_signed)
      return rewriter.notifyMatchFailure(op, "non-default cast");
    int64_t dyn = ShapedType::kDynamic;
    auto anyType = MemRefType::get(
        {dyn, dyn}, e,
        StridedLayoutAttr::get(rewriter.getContext(), dyn, {dyn, dyn}));
    auto module = op->getParentOfType<ModuleOp>();
    StringRef name = e.isF32() ? "ropeattn_matmul_f32" : "ropeattn_matmul_f64";
    func::FuncOp callee = declareRuntime(module, name, anyType, rewriter);
    Location loc = op.getLoc();
    auto cast = [&](Value v) -> Value {
      return memref::CastOp::create(rewriter, loc, anyType, v);
    };
    auto flag = [&](bool x) -> Value {
      return arith::ConstantOp::create(rewriter, loc,
                                       rewriter.getI32IntegerAttr(x ? 1 : 0));
    };
    // A zero fill of C right before the product becomes beta = 0.
    bool accumulate = true;
    if (auto fill = dyn_cast_or_null<linalg::FillOp>(op->getPrevNode());
        fill && fill.hasPureBufferSemantics() && fill.getDpsInits()[0] == c &&
        matchPattern(fill.getDpsInputs()[0], m_AnyZeroFloat())) {
      rewriter.eraseOp(fill);
      accumulate = false;
    }
    func::CallOp::create(rewriter, loc, callee,
                         ValueRange{cast(a), cast(b), cast(c), flag(t->first),
                                    flag(t->second), flag(accumulate)});
    rewriter.eraseOp(op);
    return success();
  }
};

struct RopeAttnMatmulToBlasPass
    : public ropeattn::impl::RopeAttnMatmulToBlasBase<
          RopeAttnMatmulToBlasPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<MatmulToBlas>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
