// Every verifier diagnostic of the ropeattn dialect, one case each.
// RUN: rope-opt %s -split-input-file -verify-diagnostics

//===----------------------------------------------------------------------===//
// #ropeattn.rope
//===----------------------------------------------------------------------===//

func.func @rope_base_negative(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a finite positive rope base, found -1}}
  %0 = ropeattn.rotary %x rope <base = -1.0> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rope_base_zero(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a finite positive rope base, found 0}}
  %0 = ropeattn.rotary %x rope <base = 0.0> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rope_base_inf(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a finite positive rope base, found INF}}
  %0 = ropeattn.rotary %x rope <base = 0x7FF0000000000000> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rope_rotary_dim_negative(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected a non-negative rope rotary_dim, found -2}}
  %0 = ropeattn.rotary %x rope <rotary_dim = -2> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rope_rotary_dim_odd(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{expected an even rope rotary_dim, found 3}}
  %0 = ropeattn.rotary %x rope <rotary_dim = 3> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rope_unknown_layout(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+2 {{expected ::mlir::ropeattn::RopeLayout to be one of: half, interleaved}}
  // expected-error @+1 {{failed to parse RopeAttn_RopeAttr parameter 'layout'}}
  %0 = ropeattn.rotary %x rope <layout = diagonal> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

//===----------------------------------------------------------------------===//
// ropeattn.rotary
//===----------------------------------------------------------------------===//

// -----

func.func @rotary_rank1(%x: tensor<8xf32>) -> tensor<8xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op expected input of rank >= 2 ([..., N, D]), found rank 1}}
  %0 = ropeattn.rotary %x : tensor<8xf32>
  return %0 : tensor<8xf32>
}

// -----

func.func @rotary_non_float(%x: tensor<8x4xi32>) -> tensor<8x4xi32> {
  // expected-error @+1 {{'ropeattn.rotary' op operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float or 64-bit float values, but got 'tensor<8x4xi32>'}}
  %0 = ropeattn.rotary %x : tensor<8x4xi32>
  return %0 : tensor<8x4xi32>
}

// -----

func.func @rotary_unranked(%x: tensor<*xf32>) -> tensor<*xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float or 64-bit float values, but got 'tensor<*xf32>'}}
  %0 = "ropeattn.rotary"(%x) : (tensor<*xf32>) -> tensor<*xf32>
  return %0 : tensor<*xf32>
}

// -----

func.func @rotary_rotary_dim_too_large(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op expected rope rotary_dim <= head dimension 4, found 6}}
  %0 = ropeattn.rotary %x rope <rotary_dim = 6> : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rotary_odd_head_dim(%x: tensor<8x5xf32>) -> tensor<8x5xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op expected an even head dimension for rope with the default rotary_dim (= D), found 5; set rotary_dim explicitly}}
  %0 = ropeattn.rotary %x : tensor<8x5xf32>
  return %0 : tensor<8x5xf32>
}

// -----

func.func @rotary_positions_length(%x: tensor<8x4xf32>, %p: tensor<7xi64>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op expected positions of length N = 8, found 7}}
  %0 = ropeattn.rotary %x positions(%p : tensor<7xi64>) : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rotary_positions_type(%x: tensor<8x4xf32>, %p: tensor<8xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'ropeattn.rotary' op operand #1 must be 1D tensor of 64-bit signless integer or index values, but got 'tensor<8xf32>'}}
  %0 = ropeattn.rotary %x positions(%p : tensor<8xf32>) : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @rotary_result_type(%x: tensor<8x4xf32>) -> tensor<8x4xf16> {
  // expected-error @+1 {{'ropeattn.rotary' op failed to verify that all of {input, result} have same type}}
  %0 = "ropeattn.rotary"(%x) : (tensor<8x4xf32>) -> tensor<8x4xf16>
  return %0 : tensor<8x4xf16>
}

//===----------------------------------------------------------------------===//
// ropeattn.attention: query / key / value
//===----------------------------------------------------------------------===//

// -----

func.func @attn_query_rank(%q: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected query of rank >= 3 ([B.., H, N, D]), found rank 2}}
  %o = ropeattn.attention %q, %q, %q : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
  return %o : tensor<8x4xf32>
}

// -----

func.func @attn_key_rank(%q: tensor<1x2x8x4xf32>, %k: tensor<2x8x4xf32>) -> tensor<1x2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected key of rank 4 (the query's), found rank 3}}
  %o = ropeattn.attention %q, %k, %q : (tensor<1x2x8x4xf32>, tensor<2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}

// -----

func.func @attn_value_rank(%q: tensor<2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected value of rank 3 (the query's), found rank 4}}
  %o = ropeattn.attention %q, %q, %v : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_key_element_type(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf16>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected key element type 'f32' (the query's), found 'f16'}}
  %o = ropeattn.attention %q, %k, %q : (tensor<2x8x4xf32>, tensor<2x8x4xf16>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_value_element_type(%q: tensor<2x8x4xbf16>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xbf16> {
  // expected-error @+1 {{'ropeattn.attention' op expected value element type 'bf16' (the query's), found 'f32'}}
  %o = ropeattn.attention %q, %q, %v : (tensor<2x8x4xbf16>, tensor<2x8x4xbf16>, tensor<2x8x4xf32>) -> tensor<2x8x4xbf16>
  return %o : tensor<2x8x4xbf16>
}

// -----

func.func @attn_non_float(%q: tensor<2x8x4xi8>) -> tensor<2x8x4xi8> {
  // expected-error @+1 {{'ropeattn.attention' op operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float or 64-bit float values, but got 'tensor<2x8x4xi8>'}}
  %o = ropeattn.attention %q, %q, %q : (tensor<2x8x4xi8>, tensor<2x8x4xi8>, tensor<2x8x4xi8>) -> tensor<2x8x4xi8>
  return %o : tensor<2x8x4xi8>
}

// -----

func.func @attn_key_batch(%q: tensor<3x2x8x4xf32>, %k: tensor<5x2x8x4xf32>) -> tensor<3x2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected key batch dimension 0 to be 3 (the query's), found 5}}
  %o = ropeattn.attention %q, %k, %q : (tensor<3x2x8x4xf32>, tensor<5x2x8x4xf32>, tensor<3x2x8x4xf32>) -> tensor<3x2x8x4xf32>
  return %o : tensor<3x2x8x4xf32>
}

// -----

func.func @attn_value_batch(%q: tensor<3x2x8x4xf32>, %v: tensor<4x2x8x4xf32>) -> tensor<3x2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected value batch dimension 0 to be 3 (the query's), found 4}}
  %o = ropeattn.attention %q, %q, %v : (tensor<3x2x8x4xf32>, tensor<3x2x8x4xf32>, tensor<4x2x8x4xf32>) -> tensor<3x2x8x4xf32>
  return %o : tensor<3x2x8x4xf32>
}

// -----

func.func @attn_value_heads(%q: tensor<4x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<1x8x4xf32>) -> tensor<4x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected value to have 2 heads (the key's), found 1}}
  %o = ropeattn.attention %q, %k, %v : (tensor<4x8x4xf32>, tensor<2x8x4xf32>, tensor<1x8x4xf32>) -> tensor<4x8x4xf32>
  return %o : tensor<4x8x4xf32>
}

// -----

func.func @attn_zero_kv_heads(%q: tensor<4x8x4xf32>, %k: tensor<0x8x4xf32>) -> tensor<4x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected at least one key/value head, found 0}}
  %o = ropeattn.attention %q, %k, %k : (tensor<4x8x4xf32>, tensor<0x8x4xf32>, tensor<0x8x4xf32>) -> tensor<4x8x4xf32>
  return %o : tensor<4x8x4xf32>
}

// -----

func.func @attn_gqa_ratio(%q: tensor<6x8x4xf32>, %k: tensor<4x8x4xf32>) -> tensor<6x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected the number of query heads (6) to be a multiple of the number of key/value heads (4)}}
  %o = ropeattn.attention %q, %k, %k : (tensor<6x8x4xf32>, tensor<4x8x4xf32>, tensor<4x8x4xf32>) -> tensor<6x8x4xf32>
  return %o : tensor<6x8x4xf32>
}

// -----

func.func @attn_key_head_dim(%q: tensor<2x8x64xf32>, %k: tensor<2x8x32xf32>) -> tensor<2x8x32xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected key head dimension 64 (the query's), found 32}}
  %o = ropeattn.attention %q, %k, %k : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
  return %o : tensor<2x8x32xf32>
}

// -----

func.func @attn_value_length(%q: tensor<2x8x4xf32>, %k: tensor<2x16x4xf32>, %v: tensor<2x15x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected value sequence length 16 (the key's), found 15}}
  %o = ropeattn.attention %q, %k, %v : (tensor<2x8x4xf32>, tensor<2x16x4xf32>, tensor<2x15x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

//===----------------------------------------------------------------------===//
// ropeattn.attention: results
//===----------------------------------------------------------------------===//

// -----

func.func @attn_output_shape(%q: tensor<2x8x4xf32>, %v: tensor<2x8x6xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected output of type 'tensor<2x8x6xf32>' ([B.., Hq, N, Dv]), found 'tensor<2x8x4xf32>'}}
  %o = ropeattn.attention %q, %q, %v : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x6xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_output_element_type(%q: tensor<2x8x4xf16>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected output of type 'tensor<2x8x4xf16>' ([B.., Hq, N, Dv]), found 'tensor<2x8x4xf32>'}}
  %o = ropeattn.attention %q, %q, %q : (tensor<2x8x4xf16>, tensor<2x8x4xf16>, tensor<2x8x4xf16>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_lse_shape(%q: tensor<2x8x4xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected logsumexp of type 'tensor<2x8xf32>' ([B.., Hq, N], accumulation type), found 'tensor<2x4xf32>'}}
  %o, %l = ropeattn.attention %q, %q, %q : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4xf32>)
  return %l : tensor<2x4xf32>
}

// -----

func.func @attn_lse_element_type(%q: tensor<2x8x4xbf16>) -> tensor<2x8xbf16> {
  // expected-error @+1 {{'ropeattn.attention' op expected logsumexp of type 'tensor<2x8xf32>' ([B.., Hq, N], accumulation type), found 'tensor<2x8xbf16>'}}
  %o, %l = ropeattn.attention %q, %q, %q : (tensor<2x8x4xbf16>, tensor<2x8x4xbf16>, tensor<2x8x4xbf16>) -> (tensor<2x8x4xbf16>, tensor<2x8xbf16>)
  return %l : tensor<2x8xbf16>
}

//===----------------------------------------------------------------------===//
// ropeattn.attention: attributes and bias
//===----------------------------------------------------------------------===//

// -----

func.func @attn_scale_nan(%q: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected a finite scale, found nan}}
  %o = ropeattn.attention %q, %q, %q scale(0x7FF8000000000000) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_rope_too_wide(%q: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected rope rotary_dim <= head dimension 4, found 8}}
  %o = ropeattn.attention %q, %q, %q rope <rotary_dim = 8> : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_rope_odd(%q: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{expected an even rope rotary_dim, found 1}}
  %o = ropeattn.attention %q, %q, %q rope <rotary_dim = 1> : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_toeplitz_without_bias(%q: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op method 'toeplitz' requires a bias operand (the Toeplitz factor), found none; use 'polynomial'}}
  %o = ropeattn.attention %q, %q, %q method toeplitz : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_unknown_method(%q: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+2 {{expected ::mlir::ropeattn::Method to be one of: auto, exact, polynomial, toeplitz}}
  // expected-error @+1 {{failed to parse RopeAttn_MethodAttr parameter 'value'}}
  %o = ropeattn.attention %q, %q, %q method fast : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_bias_rank(%q: tensor<2x8x4xf32>, %b: tensor<1x2x15xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected bias of shape [N + M - 1] or [Hq, N + M - 1], found rank 3}}
  %o = ropeattn.attention %q, %q, %q bias(%b) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<1x2x15xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_bias_element_type(%q: tensor<2x8x4xf32>, %b: tensor<15xf16>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected bias element type 'f32' (the query's), found 'f16'}}
  %o = ropeattn.attention %q, %q, %q bias(%b) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15xf16>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// N = 8, M = 12: the bias covers offsets -(M-1) .. N-1, i.e. 19 entries.
func.func @attn_bias_length(%q: tensor<2x8x4xf32>, %k: tensor<2x12x4xf32>, %b: tensor<15xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected bias length N + M - 1 = 19, found 15}}
  %o = ropeattn.attention %q, %k, %k bias(%b) : (tensor<2x8x4xf32>, tensor<2x12x4xf32>, tensor<2x12x4xf32>, tensor<15xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @attn_bias_heads(%q: tensor<4x8x4xf32>, %k: tensor<2x8x4xf32>, %b: tensor<2x15xf32>) -> tensor<4x8x4xf32> {
  // expected-error @+1 {{'ropeattn.attention' op expected per-head bias to have 4 rows (the query heads), found 2}}
  %o = ropeattn.attention %q, %k, %k bias(%b) : (tensor<4x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x15xf32>) -> tensor<4x8x4xf32>
  return %o : tensor<4x8x4xf32>
}

//===----------------------------------------------------------------------===//
// ropeattn.attention_grad
//===----------------------------------------------------------------------===//

// -----

func.func @grad_query_rank(%q: tensor<8x4xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected query of rank >= 3 ([B.., H, N, D]), found rank 2}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>) -> (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>)
  return
}

// -----

func.func @grad_output_type(%q: tensor<2x8x4xf32>, %o: tensor<2x8x5xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected output of type 'tensor<2x8x4xf32>' ([B.., Hq, N, Dv]), found 'tensor<2x8x5xf32>'}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %o, %o : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x5xf32>, tensor<2x8x5xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @grad_grad_output_type(%q: tensor<2x8x4xf32>, %do: tensor<2x8x4xf64>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected grad_output of type 'tensor<2x8x4xf32>' (the output's), found 'tensor<2x8x4xf64>'}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %do : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf64>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @grad_lse_type(%q: tensor<2x8x4xf32>, %l: tensor<2x8xf16>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected logsumexp of type 'tensor<2x8xf32>' ([B.., Hq, N], accumulation type), found 'tensor<2x8xf16>'}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q logsumexp(%l) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8xf16>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @grad_dq_type(%q: tensor<2x8x4xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected grad_query of type 'tensor<2x8x4xf32>' (the differentiated operand's), found 'tensor<2x8x4xf16>'}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> (tensor<2x8x4xf16>, tensor<2x8x4xf32>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @grad_dk_type(%q: tensor<4x8x4xf32>, %k: tensor<2x8x4xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected grad_key of type 'tensor<2x8x4xf32>' (the differentiated operand's), found 'tensor<4x8x4xf32>'}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %k, %q, %q : (tensor<4x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<4x8x4xf32>, tensor<4x8x4xf32>) -> (tensor<4x8x4xf32>, tensor<4x8x4xf32>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @grad_dv_type(%q: tensor<2x8x4xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected grad_value of type 'tensor<2x8x4xf32>' (the differentiated operand's), found 'tensor<2x8x3xf32>'}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x3xf32>)
  return
}

// -----

func.func @grad_missing_dbias(%q: tensor<2x8x4xf32>, %b: tensor<15xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected a grad_bias result since a bias operand is present, found none}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q bias(%b) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @grad_extra_dbias(%q: tensor<2x8x4xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected no grad_bias result since there is no bias operand, found one}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %q, %q, %q, %q : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15xf32>)
  return
}

// -----

func.func @grad_dbias_type(%q: tensor<2x8x4xf32>, %b: tensor<15xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected grad_bias of type 'tensor<15xf32>' (the differentiated operand's), found 'tensor<2x15xf32>'}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %q, %q, %q, %q bias(%b) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x15xf32>)
  return
}

// -----

func.func @grad_bias_length(%q: tensor<2x8x4xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op expected bias length N + M - 1 = 15, found 16}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %q, %q, %q, %q bias(%b) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<16xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<16xf32>)
  return
}

// -----

func.func @grad_toeplitz_without_bias(%q: tensor<2x8x4xf32>) {
  // expected-error @+1 {{'ropeattn.attention_grad' op method 'toeplitz' requires a bias operand}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q method toeplitz : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>)
  return
}

//===----------------------------------------------------------------------===//
// ropeattn.general_attention(_grad)
//===----------------------------------------------------------------------===//

// -----

func.func @general_support_odd(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected support to list (a, b) pairs (an even number of indices), found 3 indices}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 1, 2] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_support_range(%q: tensor<2x8x4xf32>, %w: tensor<15x2xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected support indices in [0, 4), found 4 in pair 1}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 1, 2, 4] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x2xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_support_negative(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected support indices in [0, 4), found -1 in pair 0}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [-1, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_support_duplicate(%q: tensor<2x8x4xf32>, %w: tensor<15x2xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected distinct support pairs, found (1, 2) twice}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [1, 2, 1, 2] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x2xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_weights_rank(%q: tensor<2x8x4xf32>, %w: tensor<15xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected weights of shape [N + M - 1, |S|] or [Hq, N + M - 1, |S|], found rank 1}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_weights_element_type(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf64>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected weights element type 'f32' (the query's), found 'f64'}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf64>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_weights_columns(%q: tensor<2x8x4xf32>, %w: tensor<15x3xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected weights to have |S| = 2 columns (one per support pair), found 3}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0, 1, 1] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x3xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_weights_offsets(%q: tensor<2x8x4xf32>, %w: tensor<16x1xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected weights to have N + M - 1 = 15 offsets, found 16}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<16x1xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_weights_heads(%q: tensor<2x8x4xf32>, %w: tensor<3x15x1xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected per-head weights to have 2 heads (the query heads), found 3}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<3x15x1xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_polynomial(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op method 'polynomial' does not apply to per-offset weights (position dependence does not factor); use 'toeplitz' or 'exact'}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] method polynomial : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_scale_inf(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected a finite scale, found -INF}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] scale(0xFFF0000000000000) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @general_gqa(%q: tensor<3x8x4xf32>, %k: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) -> tensor<3x8x4xf32> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected the number of query heads (3) to be a multiple of the number of key/value heads (2)}}
  %o = ropeattn.general_attention %q, %k, %k weights(%w) support [0, 0] : (tensor<3x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> tensor<3x8x4xf32>
  return %o : tensor<3x8x4xf32>
}

// -----

func.func @general_lse(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) -> tensor<2x8xf64> {
  // expected-error @+1 {{'ropeattn.general_attention' op expected logsumexp of type 'tensor<2x8xf32>' ([B.., Hq, N], accumulation type), found 'tensor<2x8xf64>'}}
  %o, %l = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> (tensor<2x8x4xf32>, tensor<2x8xf64>)
  return %l : tensor<2x8xf64>
}

// -----

func.func @general_grad_dw_type(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) {
  // expected-error @+1 {{'ropeattn.general_attention_grad' op expected grad_weights of type 'tensor<15x1xf32>' (the differentiated operand's), found 'tensor<15x2xf32>'}}
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %q, %q, %q weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x2xf32>)
  return
}

// -----

func.func @general_grad_dq_type(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) {
  // expected-error @+1 {{'ropeattn.general_attention_grad' op expected grad_query of type 'tensor<2x8x4xf32>' (the differentiated operand's), found 'tensor<2x8x4xf64>'}}
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %q, %q, %q weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> (tensor<2x8x4xf64>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>)
  return
}

// -----

func.func @general_grad_output(%q: tensor<2x8x4xf32>, %do: tensor<2x8x4xf16>, %w: tensor<15x1xf32>) {
  // expected-error @+1 {{'ropeattn.general_attention_grad' op expected grad_output of type 'tensor<2x8x4xf32>' (the output's), found 'tensor<2x8x4xf16>'}}
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %q, %q, %do weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf16>, tensor<15x1xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>)
  return
}

// -----

func.func @general_grad_polynomial(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) {
  // expected-error @+1 {{'ropeattn.general_attention_grad' op method 'polynomial' does not apply to per-offset weights}}
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %q, %q, %q weights(%w) support [0, 0] method polynomial : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>)
  return
}

//===----------------------------------------------------------------------===//
// poly_features
//===----------------------------------------------------------------------===//

// -----

func.func @poly_rank(%x: tensor<3xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected input of rank >= 2 ([B.., N, D]), found rank 1}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side query : tensor<3xf32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @poly_no_coefficients(%x: tensor<2x3xf32>) -> tensor<2x1xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected at least one coefficient (c_0 .. c_g), found none}}
  %0 = ropeattn.poly_features %x coefficients [] side query : tensor<2x3xf32> -> tensor<2x1xf32>
  return %0 : tensor<2x1xf32>
}

// -----

func.func @poly_nan_coefficient(%x: tensor<2x3xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected finite coefficients, found nan at index 1}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 0x7FF8000000000000] side query : tensor<2x3xf32> -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

func.func @poly_inf_coefficient(%x: tensor<2x3xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected finite coefficients, found -INF at index 0}}
  %0 = ropeattn.poly_features %x coefficients [0xFFF0000000000000, 1.0] side key : tensor<2x3xf32> -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

func.func @poly_scale(%x: tensor<2x3xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected a finite scale, found INF}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side query scale(0x7FF0000000000000) : tensor<2x3xf32> -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

func.func @poly_dynamic_d(%x: tensor<2x?xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected a static feature dimension D (the number of features depends on it), found ?}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side query : tensor<2x?xf32> -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// C(3000000000 + 3, 3) ≈ 4.5e27 does not fit in int64.
func.func @poly_overflow(%x: tensor<2x3000000000xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected C(D + g, g) features to fit in int64, found an overflow for D = 3000000000, g = 3}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0, 1.0, 1.0] side query : tensor<2x3000000000xf32> -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

func.func @poly_feature_count(%x: tensor<2x3xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected result of type 'tensor<2x10xf32>' ([B.., N, R], R = C(3 + 2, 2) = 10, accumulation type), found 'tensor<2x4xf32>'}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0, 1.0] side query : tensor<2x3xf32> -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

func.func @poly_result_type(%x: tensor<2x3xf16>) -> tensor<2x4xf16> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected result of type 'tensor<2x4xf32>' ([B.., N, R], R = C(3 + 1, 1) = 4, accumulation type), found 'tensor<2x4xf16>'}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side query : tensor<2x3xf16> -> tensor<2x4xf16>
  return %0 : tensor<2x4xf16>
}

// -----

func.func @poly_result_batch(%x: tensor<2x5x3xf64>) -> tensor<3x5x4xf64> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected result of type 'tensor<2x5x4xf64>' ([B.., N, R], R = C(3 + 1, 1) = 4, accumulation type), found 'tensor<3x5x4xf64>'}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side key : tensor<2x5x3xf64> -> tensor<3x5x4xf64>
  return %0 : tensor<3x5x4xf64>
}

// -----

func.func @poly_result_rank(%x: tensor<5x3xf32>) -> tensor<1x5x4xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected result of type 'tensor<5x4xf32>' ([B.., N, R], R = C(3 + 1, 1) = 4, accumulation type), found 'tensor<1x5x4xf32>'}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side key : tensor<5x3xf32> -> tensor<1x5x4xf32>
  return %0 : tensor<1x5x4xf32>
}

// -----

func.func @poly_side(%x: tensor<5x3xf32>) -> tensor<5x4xf32> {
  // expected-error @+1 {{expected 'query' or 'key', found 'both'}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side both : tensor<5x3xf32> -> tensor<5x4xf32>
  return %0 : tensor<5x4xf32>
}

// -----

func.func @poly_features_transposed_shape(%x: tensor<2x3xf32>) -> tensor<2x10xf32> {
  // expected-error @+1 {{'ropeattn.poly_features' op expected result of type 'tensor<10x2xf32>' ([B.., R, N], R = C(3 + 2, 2) = 10, accumulation type), found 'tensor<2x10xf32>'}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0, 0.5] side key transposed : tensor<2x3xf32> -> tensor<2x10xf32>
  return %0 : tensor<2x10xf32>
}

//===----------------------------------------------------------------------===//
// poly_features_grad
//===----------------------------------------------------------------------===//

// -----

func.func @poly_grad_rank(%x: tensor<3xf32>, %w: tensor<4xf32>) -> tensor<3xf32> {
  // expected-error @+1 {{'ropeattn.poly_features_grad' op expected input of rank >= 2 ([B.., N, D]), found rank 1}}
  %0 = ropeattn.poly_features_grad %x, %w coefficients [1.0, 1.0] side query : tensor<3xf32>, tensor<4xf32> -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// -----

func.func @poly_grad_no_coefficients(%x: tensor<2x3xf32>, %w: tensor<2x1xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{'ropeattn.poly_features_grad' op expected at least one coefficient (c_0 .. c_g), found none}}
  %0 = ropeattn.poly_features_grad %x, %w coefficients [] side query : tensor<2x3xf32>, tensor<2x1xf32> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @poly_grad_cotangent(%x: tensor<2x3xf32>, %w: tensor<2x5xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{'ropeattn.poly_features_grad' op expected cotangent of type 'tensor<2x4xf32>' ([B.., N, R], R = C(3 + 1, 1) = 4, accumulation type), found 'tensor<2x5xf32>'}}
  %0 = ropeattn.poly_features_grad %x, %w coefficients [1.0, 1.0] side query : tensor<2x3xf32>, tensor<2x5xf32> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @poly_grad_cotangent_type(%x: tensor<2x3xf16>, %w: tensor<2x4xf16>) -> tensor<2x3xf32> {
  // expected-error @+1 {{'ropeattn.poly_features_grad' op expected cotangent of type 'tensor<2x4xf32>' ([B.., N, R], R = C(3 + 1, 1) = 4, accumulation type), found 'tensor<2x4xf16>'}}
  %0 = ropeattn.poly_features_grad %x, %w coefficients [1.0, 1.0] side query : tensor<2x3xf16>, tensor<2x4xf16> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @poly_grad_transposed_result(%x: tensor<2x3xf32>, %w: tensor<4x2xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{'ropeattn.poly_features_grad' op expected result of type 'tensor<3x2xf32>' ([B.., D, N], accumulation type), found 'tensor<2x3xf32>'}}
  %0 = ropeattn.poly_features_grad %x, %w coefficients [1.0, 1.0] side key transposed : tensor<2x3xf32>, tensor<4x2xf32> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @poly_grad_dynamic_d(%x: tensor<2x?xf32>, %w: tensor<2x4xf32>) -> tensor<2x?xf32> {
  // expected-error @+1 {{'ropeattn.poly_features_grad' op expected a static feature dimension D (the number of features depends on it), found ?}}
  %0 = ropeattn.poly_features_grad %x, %w coefficients [1.0, 1.0] side query : tensor<2x?xf32>, tensor<2x4xf32> -> tensor<2x?xf32>
  return %0 : tensor<2x?xf32>
}

// -----

func.func @poly_grad_scale(%x: tensor<2x3xf32>, %w: tensor<2x4xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{'ropeattn.poly_features_grad' op expected a finite scale, found INF}}
  %0 = ropeattn.poly_features_grad %x, %w coefficients [1.0, 1.0] side query scale(0x7FF0000000000000) : tensor<2x3xf32>, tensor<2x4xf32> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

//===----------------------------------------------------------------------===//
// attention certificate
//===----------------------------------------------------------------------===//

// -----

func.func @certificate_size(%q: tensor<2x16x8xf32>) -> tensor<4xf64> {
  // expected-error @+1 {{'ropeattn.attention' op expected certificate of type 'tensor<5xf64>' ([beta, degree, delta, output bound, logsumexp bound]), found 'tensor<4xf64>'}}
  %o, %c = ropeattn.attention %q, %q, %q : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<4xf64>)
  return %c : tensor<4xf64>
}

// -----

func.func @certificate_f32(%q: tensor<2x16x8xf32>) -> tensor<5xf32> {
  // expected-error @+1 {{'ropeattn.attention' op result #1 must be ranked tensor of 64-bit float values, but got 'tensor<5xf32>'}}
  %o, %c = ropeattn.attention %q, %q, %q : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<5xf32>)
  return %c : tensor<5xf32>
}

// -----

func.func @certificate_not_last(%q: tensor<2x16x8xf32>) {
  // expected-error @+1 {{expected the certificate (tensor<5xf64>) as the last result}}
  %o, %l, %c = ropeattn.attention %q, %q, %q : (tensor<2x16x8xf32>, tensor<2x16xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<2x16xf32>, tensor<2x16x8xf32>)
  return
}

// -----

func.func @too_many_results(%q: tensor<2x16x8xf32>) {
  // expected-error @+1 {{expected 1 to 3 result types (output, [logsumexp], [certificate]), found 4}}
  %o:4 = ropeattn.attention %q, %q, %q : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<2x16xf32>, tensor<5xf64>, tensor<5xf64>)
  return
}
