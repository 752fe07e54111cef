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

    Parameters equal to their default are omitted when printed:

    ```mlir
    #ropeattn.rope<>                                  // base 10000, half, r = D
    #ropeattn.rope<base = 5.000000e+05, layout = interleaved, rotary_dim = 32>
    ```
  }];
  let parameters = (ins
    RopeAttn_BaseParameter:$base,
    RopeAttn_LayoutParameter:$layout,
    OptionalParameter<"std::optional<int64_t>", "rotated dimensions">:$rotary_dim,
    DefaultValuedParameter<"int64_t", "0", "position offset">:$position_offset
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let builders = [
    AttrBuilder<(ins CArg<"double", "10000.0">:$base,
                     CArg<"RopeLayout", "RopeLayout::Half">:$layout,
                     CArg<"std::optional<int64_t>", "std::nullopt">:$rotary_dim,
                     CArg<"int64_t", "0">:$position_offset), [{
      return $_get($_ctxt, ::llvm::APFloat(base), layout, rotary_dim,
                   position_offset);
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
  }];
}

#endif // ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTNBASE_TD
