// Every verifier diagnostic of xPos scaling (docs/Spec.md §3.1, §5, §6):
// the #ropeattn.rope parameters, ropeattn.rotary's side/transpose, and the
// range of the factors ζ^(±p/B) in the accumulation type.
// RUN: rope-opt %s -split-input-file -verify-diagnostics

func.func @xpos_scale_base_zero(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a finite positive rope xpos_scale_base, found 0}}
  %0 = ropeattn.rotary %x side query rope <xpos_scale_base = 0.0> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @xpos_scale_base_negative(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a finite positive rope xpos_scale_base, found -5.120000e+02}}
  %0 = ropeattn.rotary %x side query rope <xpos_scale_base = -512.0> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @xpos_scale_base_inf(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a finite positive rope xpos_scale_base, found INF}}
  %0 = ropeattn.rotary %x side query rope <xpos_scale_base = 0x7FF0000000000000> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @xpos_gamma_zero(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a finite positive rope xpos_gamma, found 0}}
  %0 = ropeattn.rotary %x side key rope <xpos_scale_base = 512.0, xpos_gamma = 0.0> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @xpos_gamma_nan(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a finite positive rope xpos_gamma, found nan}}
  %0 = ropeattn.rotary %x side key rope <xpos_scale_base = 512.0, xpos_gamma = 0x7FF8000000000000> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @xpos_gamma_without_scale_base(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected rope xpos_gamma only together with xpos_scale_base (xPos is off without it)}}
  %0 = ropeattn.rotary %x rope <xpos_gamma = 0.5> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rotary_xpos_without_side(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op expected a 'side' (query or key) for a rope with xPos scaling, found none}}
  %0 = ropeattn.rotary %x rope <xpos_scale_base = 512.0> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rotary_side_without_xpos(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op expected no 'side' for a rope without xPos scaling (it selects the sign of the xPos exponent), found key}}
  %0 = ropeattn.rotary %x side key rope <> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rotary_inverse_and_transpose(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op expected at most one of 'inverse' and 'transpose', found both}}
  %0 = ropeattn.rotary %x inverse transpose side query rope <xpos_scale_base = 512.0> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

// Positions 0..63, B = 1, γ = 0.4: |63·ln(0.4/1.4)| = 78.9 > 64 (f32).
func.func @rotary_xpos_out_of_range(%x: tensor<64x4xf32>) -> tensor<64x4xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op expected xPos factors exp(±p·ln(ζ)/B) within exp(±64) for 'f32' accumulation, found exponents up to 78.9}}
  %0 = ropeattn.rotary %x side query rope <xpos_scale_base = 1.0> : tensor<64x4xf32>
  return %0 : tensor<64x4xf32>
}

// -----

// The same rows in f64 (limit 512) verify.
func.func @rotary_xpos_f64_in_range(%x: tensor<64x4xf64>) -> tensor<64x4xf64> {
  %0 = ropeattn.rotary %x side query rope <xpos_scale_base = 1.0> : tensor<64x4xf64>
  return %0 : tensor<64x4xf64>
}

// -----

// Attention: N = M = 128, centred positions −63..64, B = 1:
// 64·|ln(0.4/1.4)| = 80.2 > 64.
func.func @attention_xpos_out_of_range(%q: tensor<2x128x4xf32>, %k: tensor<2x128x4xf32>, %v: tensor<2x128x4xf32>) -> tensor<2x128x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected xPos factors exp(±p·ln(ζ)/B) within exp(±64) for 'f32' accumulation, found exponents up to 80.2}}
  %o = ropeattn.attention %q, %k, %v rope <xpos_scale_base = 1.0> : (tensor<2x128x4xf32>, tensor<2x128x4xf32>, tensor<2x128x4xf32>) -> tensor<2x128x4xf32>
  return %o : tensor<2x128x4xf32>
}

// -----

// attention_grad, bf16 (f32 accumulation), N = 1, M = 200: centred −99..100.
func.func @attention_grad_xpos_out_of_range(%q: tensor<1x1x4xbf16>, %k: tensor<1x200x4xbf16>, %v: tensor<1x200x4xbf16>, %o: tensor<1x1x4xbf16>, %do: tensor<1x1x4xbf16>) -> (tensor<1x1x4xbf16>, tensor<1x200x4xbf16>, tensor<1x200x4xbf16>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected xPos factors}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do causal rope <xpos_scale_base = 1.5> : (tensor<1x1x4xbf16>, tensor<1x200x4xbf16>, tensor<1x200x4xbf16>, tensor<1x1x4xbf16>, tensor<1x1x4xbf16>) -> (tensor<1x1x4xbf16>, tensor<1x200x4xbf16>, tensor<1x200x4xbf16>)
  return %dq, %dk, %dv : tensor<1x1x4xbf16>, tensor<1x200x4xbf16>, tensor<1x200x4xbf16>
}
