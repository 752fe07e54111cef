// The CUDA lowering has no xPos scaling: it rejects it with a diagnostic
// (docs/Spec.md §3.1) rather than dropping the factors.
// RUN: rope-opt %s -split-input-file -verify-diagnostics -convert-ropeattn-to-gpu

func.func @attention_xpos(%q: tensor<2x16x8xf32>, %k: tensor<2x16x8xf32>, %v: tensor<2x16x8xf32>) -> tensor<2x16x8xf32> {
  // expected-error @+1 {{convert-ropeattn-to-gpu: rope with xPos scaling (xpos_scale_base) is not supported on CUDA yet; use rope-lower-to-cpu}}
  %o = ropeattn.attention %q, %k, %v causal rope <xpos_scale_base = 512.0> : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
  return %o : tensor<2x16x8xf32>
}

// -----

func.func @attention_grad_xpos(%q: tensor<2x16x8xf16>, %o: tensor<2x16x8xf16>) -> (tensor<2x16x8xf16>, tensor<2x16x8xf16>, tensor<2x16x8xf16>) {
  // expected-error @+1 {{convert-ropeattn-to-gpu: rope with xPos scaling (xpos_scale_base) is not supported on CUDA yet; use rope-lower-to-cpu}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %o, %o rope <xpos_scale_base = 64.0> : (tensor<2x16x8xf16>, tensor<2x16x8xf16>, tensor<2x16x8xf16>, tensor<2x16x8xf16>, tensor<2x16x8xf16>) -> (tensor<2x16x8xf16>, tensor<2x16x8xf16>, tensor<2x16x8xf16>)
  return %dq, %dk, %dv : tensor<2x16x8xf16>, tensor<2x16x8xf16>, tensor<2x16x8xf16>
}
