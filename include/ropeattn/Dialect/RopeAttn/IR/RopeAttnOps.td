//===- RopeAttnOps.td - ropeattn operations ----------------*- tablegen -*-===//
//
// Part of the ropeattn project. Normative semantics: docs/Spec.md.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTNOPS_TD
#define ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTNOPS_TD

include "ropeattn/Dialect/RopeAttn/IR/RopeAttnBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributes.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def RopeAttn_Float : AnyTypeOf<[F16, BF16, F32, F64], "f16, bf16, f32 or f64">;
def RopeAttn_FloatTensor : RankedTensorOf<[F16, BF16, F32, F64]>;
def RopeAttn_PositionTensor : 1DTensorOf<[I64, Index]>;

class RopeAttn_Op<string mnemonic, list<Trait> traits = []>
    : Op<RopeAttn_Dialect, mnemonic, traits>;

//===----------------------------------------------------------------------===//
// rotary
//===----------------------------------------------------------------------===//

def RopeAttn_RotaryOp : RopeAttn_Op<"rotary",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "applies a rotary position embedding to the last two dims";
  let description = [{
    Rotates pairs of the last dimension of `input : [..., N, D]` by angles that
    depend on the position of the row (dimension N) — see docs/Spec.md,
    section "ropeattn.rotary". Positions are `position_offset + n` unless the
    optional `positions` operand (length N, i64 or index) gives them. With
    `inverse` the transpose rotation (angle −p·θ) is applied; it undoes the
    forward rotation and is what the backward needs.

    ```mlir
    %y = ropeattn.rotary %x : tensor<2x8x128x64xf32>
    %z = ropeattn.rotary %x positions(%p : tensor<128xi64>) inverse
           rope <base = 5.000000e+05, layout = interleaved, rotary_dim = 32>
           : tensor<2x8x128x64xf32>
    ```

    Folds to its input when no dimension rotates (`rotary_dim = 0`).

    With xPos scaling in `rope` (`xpos_scale_base`), `side` says which factor
    of the logits the input is: `query` rows are also scaled by ζ_a^(+p/B),
    `key` rows by ζ_a^(−p/B) (docs/Spec.md §3.1). `inverse` then applies the
    inverse map and `transpose` the transposed one (the backward's); for a
    pure rotation the two coincide, and only `inverse` is used.

    ```mlir
    %qx = ropeattn.rotary %q side query rope <xpos_scale_base = 5.120000e+02>
            : tensor<8x128x64xf32>
    %dq = ropeattn.rotary %g transpose side query
            rope <xpos_scale_base = 5.120000e+02> : tensor<8x128x64xf32>
    ```
  }];
  let arguments = (ins
    RopeAttn_FloatTensor:$input,
    Optional<RopeAttn_PositionTensor>:$positions,
    UnitAttr:$inverse,
    OptionalAttr<RopeAttn_RopeAttr>:$rope,
    UnitAttr:$transpose,
    OptionalAttr<RopeAttn_RopeSideAttr>:$side
  );
  let results = (outs RopeAttn_FloatTensor:$result);
  let assemblyFormat = [{
    $input (`positions` `(` $positions^ `:` type($positions) `)`)?
    (`inverse` $inverse^)? (`transpose` $transpose^)? (`side` $side^)?
    (`rope` $rope^)? attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
  let extraClassDeclaration = [{
    /// The RoPE parameters, defaults filled in when the attribute is absent.
    RopeAttr getRopeOrDefault();
  }];
}

//===----------------------------------------------------------------------===//
// attention
//===----------------------------------------------------------------------===//

def RopeAttn_AttentionOp : RopeAttn_Op<"attention", [Pure, AttrSizedResultSegments]> {
  let summary = "scaled dot-product attention with fused RoPE (forward)";
  let description = [{
    `output[b.., h, i, :] = Σ_j softmax_j(ℓ_ij) · value[b.., h / G, j, :]` with
    logits `ℓ_ij = scale · ⟨rot(q_i), rot(k_j)⟩ (+ bias[i − j + M − 1])`,
    where G = Hq / Hk (grouped-query attention), `rot` is the optional fused
    rotary embedding, and causal masking keeps `j ≤ i + (M − N)`
    (bottom-right aligned). The optional second result is the logsumexp of
    each logit row. The optional last result, `tensor<5xf64>`, is the error
    certificate of the method that ran: [β̂, degree g (0: exact), δ_g, output
    bound B(δ_g) relative to max|v|, logsumexp bound] (docs/Spec.md §11).
    Full definition: docs/Spec.md, "ropeattn.attention".

    Shapes: query `[B.., Hq, N, D]`, key `[B.., Hk, M, D]`, value
    `[B.., Hk, M, Dv]` → output `[B.., Hq, N, Dv]`, logsumexp `[B.., Hq, N]`.
    The bias, when present, is `[N + M − 1]` (shared) or `[Hq, N + M − 1]`
    (per query head).

    ```mlir
    %o, %lse = ropeattn.attention %q, %k, %v causal rope <>
        : (tensor<8x128x64xf32>, tensor<2x128x64xf32>, tensor<2x128x64xf32>)
        -> (tensor<8x128x64xf32>, tensor<8x128xf32>)
    ```
  }];
  let arguments = (ins
    RopeAttn_FloatTensor:$query,
    RopeAttn_FloatTensor:$key,
    RopeAttn_FloatTensor:$value,
    Optional<RopeAttn_FloatTensor>:$bias,
    OptionalAttr<F64Attr>:$scale,
    UnitAttr:$causal,
    OptionalAttr<RopeAttn_RopeAttr>:$rope,
    OptionalAttr<RopeAttn_MethodAttr>:$method
  );
  let results = (outs
    RopeAttn_FloatTensor:$output,
    Optional<RopeAttn_FloatTensor>:$logsumexp,
    Optional<RankedTensorOf<[F64]>>:$certificate
  );
  let assemblyFormat = [{
    $query `,` $key `,` $value (`bias` `(` $bias^ `)`)? (`causal` $causal^)?
    (`scale` `(` $scale^ `)`)? (`rope` $rope^)? (`method` `` $method^)?
    attr-dict `:` `(` type(operands) `)` `->`
    custom<AttentionResults>(type($output), type($logsumexp), type($certificate))
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// The scale applied to the logits: the attribute, or 1/sqrt(D).
    double getScaleOrDefault();
    /// The method hint, `auto` when absent.
    Method getMethodOrDefault();
  }];
}

//===----------------------------------------------------------------------===//
// attention_grad
//===----------------------------------------------------------------------===//

def RopeAttn_AttentionGradOp : RopeAttn_Op<"attention_grad",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "gradient of ropeattn.attention";
  let description = [{
    Given the forward's operands and attributes, its output `o` and the
    incoming gradient `dO` (and, when available, the forward's logsumexp),
    returns dq, dk, dv (and d-bias when a bias is present): the gradient of
    `Σ ⟨dO, attention(q, k, v, bias)⟩` with respect to each input. See
    docs/Spec.md, "ropeattn.attention_grad".

    ```mlir
    %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do
        logsumexp(%lse) causal rope <>
        : (tensor<8x128x64xf32>, tensor<2x128x64xf32>, tensor<2x128x64xf32>,
           tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x128xf32>)
        -> (tensor<8x128x64xf32>, tensor<2x128x64xf32>, tensor<2x128x64xf32>)
    ```
  }];
  let arguments = (ins
    RopeAttn_FloatTensor:$query,
    RopeAttn_FloatTensor:$key,
    RopeAttn_FloatTensor:$value,
    RopeAttn_FloatTensor:$output,
    RopeAttn_FloatTensor:$grad_output,
    Optional<RopeAttn_FloatTensor>:$logsumexp,
    Optional<RopeAttn_FloatTensor>:$bias,
    OptionalAttr<F64Attr>:$scale,
    UnitAttr:$causal,
    OptionalAttr<RopeAttn_RopeAttr>:$rope,
    OptionalAttr<RopeAttn_MethodAttr>:$method
  );
  let results = (outs
    RopeAttn_FloatTensor:$grad_query,
    RopeAttn_FloatTensor:$grad_key,
    RopeAttn_FloatTensor:$grad_value,
    Optional<RopeAttn_FloatTensor>:$grad_bias
  );
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $output `,` $grad_output
    (`logsumexp` `(` $logsumexp^ `)`)? (`bias` `(` $bias^ `)`)?
    (`causal` $causal^)? (`scale` `(` $scale^ `)`)? (`rope` $rope^)?
    (`method` `` $method^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    double getScaleOrDefault();
    Method getMethodOrDefault();
  }];
}

//===----------------------------------------------------------------------===//
// general_attention: one matrix W_δ per relative offset (Alman & Song)
//===----------------------------------------------------------------------===//

def RopeAttn_GeneralAttentionOp : RopeAttn_Op<"general_attention", [Pure]> {
  let summary = "attention with one d×d matrix per relative offset";
  let description = [{
    The general RoPE form of Alman & Song (FRA, Def. 1.1): logits
    `ℓ_ij = scale · Σ_{(a,b) ∈ S} q_ia · W[i − j + M − 1, s(a,b)] · k_jb`, with
    the support S given as a flat list of (a, b) pairs, `support = [a0, b0,
    a1, b1, ...]`, and `weights : [N + M − 1, |S|]` (shared across heads) or
    `[Hq, N + M − 1, |S|]` (per query head). Softmax, causal masking, GQA
    and the optional logsumexp result are as for `ropeattn.attention`. See
    docs/Spec.md, "ropeattn.general_attention".

    ```mlir
    %o = ropeattn.general_attention %q, %k, %v weights(%w) support [0, 0, 1, 1]
        : (tensor<4x64x2xf32>, tensor<4x64x2xf32>, tensor<4x64x8xf32>,
           tensor<127x2xf32>) -> tensor<4x64x8xf32>
    ```
  }];
  let arguments = (ins
    RopeAttn_FloatTensor:$query,
    RopeAttn_FloatTensor:$key,
    RopeAttn_FloatTensor:$value,
    RopeAttn_FloatTensor:$weights,
    DenseI64ArrayAttr:$support,
    OptionalAttr<F64Attr>:$scale,
    UnitAttr:$causal,
    OptionalAttr<RopeAttn_MethodAttr>:$method
  );
  let results = (outs
    RopeAttn_FloatTensor:$output,
    Optional<RopeAttn_FloatTensor>:$logsumexp
  );
  let assemblyFormat = [{
    $query `,` $key `,` $value `weights` `(` $weights `)` `support` $support
    (`causal` $causal^)? (`scale` `(` $scale^ `)`)? (`method` `` $method^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  // Rotation-family weights given as constants become ropeattn.attention
  // with RoPE (lib/Dialect/RopeAttn/IR/RotationFamily.cpp).
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    double getScaleOrDefault();
    /// Number of (a, b) pairs in the support.
    int64_t getSupportSize() { return getSupport().size() / 2; }
  }];
}

def RopeAttn_GeneralAttentionGradOp : RopeAttn_Op<"general_attention_grad",
    [Pure]> {
  let summary = "gradient of ropeattn.general_attention";
  let description = [{
    dq, dk, dv and d-weights of `Σ ⟨dO, general_attention(q, k, v, W)⟩`. See
    docs/Spec.md, "ropeattn.general_attention_grad".

    ```mlir
    %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %k, %v, %o, %do
        weights(%w) support [0, 0, 1, 1]
        : (tensor<4x64x2xf32>, tensor<4x64x2xf32>, tensor<4x64x8xf32>,
           tensor<4x64x8xf32>, tensor<4x64x8xf32>, tensor<127x2xf32>)
        -> (tensor<4x64x2xf32>, tensor<4x64x2xf32>, tensor<4x64x8xf32>,
            tensor<127x2xf32>)
    ```
  }];
  let arguments = (ins
    RopeAttn_FloatTensor:$query,
    RopeAttn_FloatTensor:$key,
    RopeAttn_FloatTensor:$value,
    RopeAttn_FloatTensor:$output,
    RopeAttn_FloatTensor:$grad_output,
    Optional<RopeAttn_FloatTensor>:$logsumexp,
    RopeAttn_FloatTensor:$weights,
    DenseI64ArrayAttr:$support,
    OptionalAttr<F64Attr>:$scale,
    UnitAttr:$causal,
    OptionalAttr<RopeAttn_MethodAttr>:$method
  );
  let results = (outs
    RopeAttn_FloatTensor:$grad_query,
    RopeAttn_FloatTensor:$grad_key,
    RopeAttn_FloatTensor:$grad_value,
    RopeAttn_FloatTensor:$grad_weights
  );
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $output `,` $grad_output
    (`logsumexp` `(` $logsumexp^ `)`)? `weights` `(` $weights `)`
    `support` $support (`causal` $causal^)? (`scale` `(` $scale^ `)`)?
    (`method` `` $method^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    double getScaleOrDefault();
    int64_t getSupportSize() { return getSupport().size() / 2; }
  }];
}

//===----------------------------------------------------------------------===//
// poly_features: the polynomial feature map (layer 2, polynomial method)
//===----------------------------------------------------------------------===//

def RopeAttn_PolySide : I32EnumAttr<"PolySide",
    "which factor of the polynomial kernel a feature map is", [
      I32EnumAttrCase<"Query", 0, "query">,
      I32EnumAttrCase<"Key", 1, "key">
    ]> {
  let cppNamespace = "::mlir::ropeattn";
  let genSpecializedAttr = 0;
  let description = [{
    `query`: the features carry the sign of each weight, sign(w)·sqrt(|w|);
    `key`: sqrt(|w|). See docs/Spec.md, "ropeattn.poly_features".
  }];
}

def RopeAttn_PolySideAttr : EnumAttr<RopeAttn_Dialect, RopeAttn_PolySide,
                                     "side">;

def RopeAttn_PolyFeaturesOp : RopeAttn_Op<"poly_features", [Pure]> {
  let summary = "polynomial feature map whose inner products are p(s⟨q, k⟩)";
  let description = [{
    Maps every row `x : [D]` of `input : [B.., N, D]` to the `R = C(D + g, g)`
    monomials of degree ≤ g of its entries, weighted so that the feature maps
    of the two sides satisfy, exactly,

    `Σ_a poly_features(q, side query)_a · poly_features(k, side key)_a =
     Σ_{m ≤ g} c_m · (s·⟨q, k⟩)^m`

    for `coefficients = [c_0, ..., c_g]` and `scale = s` (1 when absent), by
    the multinomial theorem. Features are ordered graded-lexicographically by
    their nondecreasing index tuples (degree 0 first). The result is in the
    accumulation type (f32, or f64 for f64 inputs). Full definition:
    docs/Spec.md, "ropeattn.poly_features".

    ```mlir
    %phi = ropeattn.poly_features %x coefficients [1.0, 1.0, 0.5] side query
             scale(0.125) : tensor<8x128x4xbf16> -> tensor<8x128x15xf32>
    ```

    With `transposed` the result is laid out `[B.., R, N]` (feature-major):
    the same values, φᵀ, which is what the polynomial method's matmuls
    consume and what vectorizes (rows are contiguous per feature).

    `D` must be static (`R` depends on it); batch and `N` may be dynamic.
    An explicit `scale(1.0)` is canonicalized away.
  }];
  let arguments = (ins
    RopeAttn_FloatTensor:$input,
    DenseF64ArrayAttr:$coefficients,
    RopeAttn_PolySideAttr:$side,
    OptionalAttr<F64Attr>:$scale,
    UnitAttr:$transposed
  );
  let results = (outs RopeAttn_FloatTensor:$result);
  let assemblyFormat = [{
    $input `coefficients` custom<ExactF64Array>($coefficients) `side` custom<PolySide>($side)
    (`transposed` $transposed^)?
    (`scale` `(` $scale^ `)`)?
    attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// The scale s: the attribute, or 1.
    double getScaleOrDefault();
    /// The degree g = (number of coefficients) - 1.
    int64_t getDegree() {
      return static_cast<int64_t>(getCoefficients().size()) - 1;
    }
    /// The feature count C(D + g, g) for head dimension `headDim` and degree
    /// `degree`, or failure when it does not fit in int64.
    static FailureOr<int64_t> getFeatureCount(int64_t headDim, int64_t degree);
  }];
}

def RopeAttn_PolyFeaturesGradOp : RopeAttn_Op<"poly_features_grad", [Pure]> {
  let summary = "vector-Jacobian product of ropeattn.poly_features";
  let description = [{
    For every row `x : [D]` of `input : [B.., N, D]` and the matching row
    `w : [R]` of `cotangent`, computes `Jᵀw`, where `J = ∂φ(x)/∂x` is the
    Jacobian of `ropeattn.poly_features` with the same `coefficients`, `side`
    and `scale`:

    `result_d = Σ_a w_a · ∂φ_a(x)/∂x_d`

    This is how the polynomial method's backward reaches dq and dk in
    `O(N·R·D·g/(D + g))` without forming the Jacobian. With `transposed`, the
    cotangent is feature-major `[B.., R, N]` and the result is `[B.., D, N]`;
    otherwise they are `[B.., N, R]` and `[B.., N, D]`. Cotangent and result are
    in the accumulation type. Full definition: docs/Spec.md,
    "ropeattn.poly_features_grad".

    ```mlir
    %dq = ropeattn.poly_features_grad %q, %w coefficients [1.0, 1.0, 0.5]
            side query : tensor<128x4xf32>, tensor<128x15xf32> -> tensor<128x4xf32>
    ```
  }];
  let arguments = (ins
    RopeAttn_FloatTensor:$input,
    RopeAttn_FloatTensor:$cotangent,
    DenseF64ArrayAttr:$coefficients,
    RopeAttn_PolySideAttr:$side,
    OptionalAttr<F64Attr>:$scale,
    UnitAttr:$transposed
  );
  let results = (outs RopeAttn_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $cotangent `coefficients` custom<ExactF64Array>($coefficients)
    `side` custom<PolySide>($side) (`transposed` $transposed^)?
    (`scale` `(` $scale^ `)`)?
    attr-dict `:` type($input) `,` type($cotangent) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The scale s: the attribute, or 1.
    double getScaleOrDefault() {
      return getScale() ? getScale()->convertToDouble() : 1.0;
    }
    /// The degree g = (number of coefficients) - 1.
    int64_t getDegree() {
      return static_cast<int64_t>(getCoefficients().size()) - 1;
    }
  }];
}

//===----------------------------------------------------------------------===//
// fft, toeplitz_matmul: FFT and Toeplitz products (layer 2)
//===----------------------------------------------------------------------===//

def RopeAttn_ComplexTensor : RankedTensorOf<[F32, F64]>;

def RopeAttn_FftOp : RopeAttn_Op<"fft",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "discrete Fourier transform along the second-to-last dimension";
  let description = [{
    Complex numbers are pairs in the trailing dimension (size 2: real,
    imaginary), the layout of FFTW's `fftw_complex` and of numpy's
    `complex64/128` viewed as floats. For `input : [B.., L, 2]`:

    `result[z, k] = Σ_{n<L} input[z, n] · e^{−2πi·n·k/L}`

    and with `inverse`, `result[z, k] = (1/L) Σ_{n<L} input[z, n] ·
    e^{+2πi·n·k/L}` (so that the inverse undoes the forward transform, numpy's
    convention). Every batch entry `z` is independent; any `L ≥ 0` is valid.
    Full definition: docs/Spec.md, "ropeattn.fft".

    ```mlir
    %y = ropeattn.fft %x : tensor<4x1024x2xf32>
    %x2 = ropeattn.fft %y inverse : tensor<4x1024x2xf32>
    ```

    Lowered by `ropeattn-lower-fft`, either to generated code (radix-2
    Stockham, power-of-two `L`) or to calls into FFTW through the ropeattn
    runtime.
  }];
  let arguments = (ins RopeAttn_ComplexTensor:$input, UnitAttr:$inverse);
  let results = (outs RopeAttn_ComplexTensor:$result);
  let assemblyFormat = [{
    $input (`inverse` $inverse^)? attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
}

def RopeAttn_ToeplitzMatmulOp : RopeAttn_Op<"toeplitz_matmul", [Pure]> {
  let summary = "product of a Toeplitz matrix (given by its symbol) and a matrix";
  let description = [{
    `T` is the `N × M` Toeplitz matrix with `T[i, j] = t[i − j + M − 1]`
    (the relative-offset convention of the attention bias: offset `δ = i − j`
    is stored at index `δ + M − 1`, so `symbol` has `N + M − 1` entries).
    For `x : [B.., M, C]`:

    `result[z, i, c] = Σ_{j<M} T[i, j] · x[z, j, c]`  (`result : [B.., N, C]`)

    With `transposed`, the product is with `Tᵀ` (`x : [B.., N, C]`,
    `result : [B.., M, C]`); with `causal`, `T` is first masked with the
    bottom-right aligned causal mask of docs/Spec.md (`T[i, j] = 0` unless
    `j ≤ i + (M − N)`). The symbol is `[N + M − 1]` (shared by every batch
    entry) or `[B.., N + M − 1]` (one per batch entry). Full definition:
    docs/Spec.md, "ropeattn.toeplitz_matmul".

    ```mlir
    %y = ropeattn.toeplitz_matmul %t, %x causal
        : (tensor<2047xf32>, tensor<8x1024x64xf32>) -> tensor<8x1024x64xf32>
    ```

    `ropeattn-expand-toeplitz` lowers it by circulant embedding and FFTs
    (one FFT of the symbol shared by every column).
  }];
  let arguments = (ins
    RopeAttn_ComplexTensor:$symbol,
    RopeAttn_ComplexTensor:$input,
    UnitAttr:$transposed,
    UnitAttr:$causal
  );
  let results = (outs RopeAttn_ComplexTensor:$result);
  let assemblyFormat = [{
    $symbol `,` $input (`transposed` $transposed^)? (`causal` $causal^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// N and M of the (untransposed) Toeplitz matrix T, read off the input
    /// and result types (dynamic sizes stay dynamic).
    std::pair<int64_t, int64_t> getRowsAndCols();
  }];
}

#endif // ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTNOPS_TD
