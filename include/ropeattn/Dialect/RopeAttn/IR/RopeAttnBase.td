//===- RopeAttnBase.td - ropeattn dialect, enums, attributes -*- tablegen -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTNBASE_TD
#define ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTNBASE_TD

include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/DialectBase.td"
include "mlir/IR/EnumAttr.td"
include "mlir/IR/OpBase.td"

//===----------------------------------------------------------------------===//
// Dialect
//===----------------------------------------------------------------------===//

def RopeAttn_Dialect : Dialect {
  let name = "ropeattn";
  let cppNamespace = "::mlir::ropeattn";
  let summary = "Attention with rotary position embeddings, forward and backward";
  let description = [{
    The `ropeattn` dialect models scaled dot-product attention with rotary
    position embeddings (RoPE) fused, causal masking (bottom-right aligned),
    grouped-query attention, additive relative-position bias and the general
    per-offset-matrix form of Alman & Song, together with their gradients.

    The normative semantics of every operation (formulas, masking, dtype and
    accumulation rules) are in `docs/Spec.md`; this generated page lists the
    syntax and the verifier rules.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
  let hasCanonicalizer = 0;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def RopeAttn_RopeLayout : I32EnumAttr<"RopeLayout",
    "pairing of the rotated dimensions", [
      I32EnumAttrCase<"Half", 0, "half">,
      I32EnumAttrCase<"Interleaved", 1, "interleaved">
    ]> {
  let cppNamespace = "::mlir::ropeattn";
  let genSpecializedAttr = 0;
  let description = [{
    `half`: GPT-NeoX / Llama pairs (a, a + r/2). `interleaved`: GPT-J pairs
    (2a, 2a + 1). See docs/Spec.md, section "Rotary embedding".
  }];
}

def RopeAttn_RopeLayoutAttr : EnumAttr<RopeAttn_Dialect, RopeAttn_RopeLayout,
                                       "layout">;

def RopeAttn_Method : I32EnumAttr<"Method",
    "algorithm hint for attention", [
      I32EnumAttrCase<"Auto", 0, "auto">,
      I32EnumAttrCase<"Exact", 1, "exact">,
      I32EnumAttrCase<"Polynomial", 2, "polynomial">,
      I32EnumAttrCase<"Toeplitz", 3, "toeplitz">
    ]> {
  let cppNamespace = "::mlir::ropeattn";
  let genSpecializedAttr = 0;
}

def RopeAttn_MethodAttr : EnumAttr<RopeAttn_Dialect, RopeAttn_Method, "method">;

def RopeAttn_RopeSide : I32EnumAttr<"RopeSide",
    "which factor of the logits a rotary embedding with xPos scaling is", [
      I32EnumAttrCase<"Query", 0, "query">,
      I32EnumAttrCase<"Key", 1, "key">
    ]> {
  let cppNamespace = "::mlir::ropeattn";
  let genSpecializedAttr = 0;
  let description = [{
    With xPos scaling, queries are multiplied by ζ^(+p/B) and keys by
    ζ^(−p/B) (docs/Spec.md, "xPos scaling"); `ropeattn.rotary` needs to know
    which side it rotates.
  }];
}

def RopeAttn_RopeSideAttr : EnumAttr<RopeAttn_Dialect, RopeAttn_RopeSide,
                                     "rope_side">;

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

class RopeAttn_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<RopeAttn_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

// A double-precision float parameter (stored as an APFloat so it hashes and
// compares bitwise), 10000 by default.
def RopeAttn_BaseParameter : APFloatParameter<"frequency base"> {
  let parser = "::mlir::ropeattn::parseF64Parameter($_parser)";
  let defaultValue = "::llvm::APFloat(10000.0)";
}

// An optional double-precision float parameter (absent by default).
def RopeAttn_OptionalF64Parameter
    : AttrOrTypeParameter<"std::optional<::llvm::APFloat>", "optional f64"> {
  let parser = "::mlir::ropeattn::parseOptionalF64Parameter($_parser)";
  let printer = "$_printer << *$_self";
  let comparator = "::mlir::ropeattn::sameOptionalF64($_lhs, $_rhs)";
  let defaultValue = "std::optional<::llvm::APFloat>()";
}

// The layout enum as a parameter, `half` by default.
def RopeAttn_LayoutParameter : EnumParameter<RopeAttn_RopeLayout> {
  let defaultValue = "::mlir::ropeattn::RopeLayout::Half";
}

def RopeAttn_RopeAttr : RopeAttn_Attr<"Rope", "rope"> {
  let summary = "rotary position embedding parameters";
  let description = [{
    The parameters of a rotary position embedding, shared by `ropeattn.rotary`
    and the fused RoPE of `ropeattn.attention`:

    * `base` (f64, default 10000): frequencies are θ_a = base^(−2a/r).
    * `layout` (`half` | `interleaved`, default `half`): how dimensions pair.
    * `rotary_dim` (r; default: the full head dimension D): the first r
      dimensions rotate, the others pass through; must be even and ≤ D.
    * `position_offset` (i64, default 0): added to every position.
    * `xpos_scale_base` (B, f64, absent by default): xPos scaling (Sun et al.
      2022). Pair a of a query at position p is also multiplied by
      ζ_a^(p/B), of a key by ζ_a^(−p/B), ζ_a = (2a/r + γ)/(1 + γ), so the
      logit of pair a carries ζ_a^((p_q − p_k)/B). Must be finite and > 0.
    * `xpos_gamma` (γ, f64, default 0.4 when `xpos_scale_base` is given):
      must be finite and > 0; only valid together with `xpos_scale_base`.

    Parameters equal to their default are omitted when printed:

    ```mlir
    #ropeattn.rope<>                                  // base 10000, half, r = D
    #ropeattn.rope<base = 5.000000e+05, layout = interleaved, rotary_dim = 32>
    #ropeattn.rope<xpos_scale_base = 5.120000e+02>     // xPos, γ = 0.4
    ```
  }];
  let parameters = (ins
    RopeAttn_BaseParameter:$base,
    RopeAttn_LayoutParameter:$layout,
    OptionalParameter<"std::optional<int64_t>", "rotated dimensions">:$rotary_dim,
    DefaultValuedParameter<"int64_t", "0", "position offset">:$position_offset,
    RopeAttn_OptionalF64Parameter:$xpos_scale_base,
    RopeAttn_OptionalF64Parameter:$xpos_gamma
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let builders = [
    AttrBuilder<(ins CArg<"double", "10000.0">:$base,
                     CArg<"RopeLayout", "RopeLayout::Half">:$layout,
                     CArg<"std::optional<int64_t>", "std::nullopt">:$rotary_dim,
                     CArg<"int64_t", "0">:$position_offset,
                     CArg<"std::optional<double>", "std::nullopt">:$xpos_scale_base,
                     CArg<"std::optional<double>", "std::nullopt">:$xpos_gamma), [{
      auto toAP = [](std::optional<double> x) {
        return x ? std::optional<::llvm::APFloat>(::llvm::APFloat(*x))
                 : std::optional<::llvm::APFloat>();
      };
      return $_get($_ctxt, ::llvm::APFloat(base), layout, rotary_dim,
                   position_offset, toAP(xpos_scale_base), toAP(xpos_gamma));
    }]>
  ];
  let extraClassDeclaration = [{
    /// The frequency base as a double.
    double getBaseValue() const { return getBase().convertToDouble(); }
    /// The number of rotated dimensions for a head dimension `headDim`.
    int64_t getRotaryDimOr(int64_t headDim) const {
      return getRotaryDim() ? *getRotaryDim() : headDim;
    }
    /// True when the embedding is the identity for head dimension `headDim`.
    bool isIdentityFor(int64_t headDim) const {
      return getRotaryDimOr(headDim) == 0;
    }
    /// True when xPos scaling is on (`xpos_scale_base` given).
    bool hasXpos() const { return getXposScaleBase().has_value(); }
    /// B (only meaningful with xPos).
    double getXposScaleBaseValue() const {
      return getXposScaleBase() ? getXposScaleBase()->convertToDouble() : 0.0;
    }
    /// γ: the parameter, or its default 0.4.
    double getXposGammaValue() const {
      return getXposGamma() ? getXposGamma()->convertToDouble() : 0.4;
    }
    /// ln(ζ_a)/B for pair a of r rotated dims: the xPos factor of a row at
    /// position p is exp(±p · getXposRate(a, r)).
    double getXposRate(int64_t a, int64_t r) const;
    /// The same attribute with another position offset.
    RopeAttr withPositionOffset(int64_t positionOffset) const;
  }];
}

#endif // ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTNBASE_TD
