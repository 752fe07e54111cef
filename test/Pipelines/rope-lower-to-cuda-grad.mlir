// The backward's kernels (rotary, forward for the logsumexp, Δ, dq, dk/dv,
// inverse rotary) through NVVM to cubins for both chips.
// REQUIRES: ptxas
// RUN: rope-opt %s --rope-lower-to-cuda="chip=sm_80" | FileCheck %s --check-prefix=SM80
// RUN: rope-opt %s --rope-lower-to-cuda="chip=sm_90" | FileCheck %s --check-prefix=SM90

// SM80: llvm.func @_mlir_ciface_bwd(
// SM80: gpu.binary @ropeattn_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">, properties = {{.*}}, bin = "\7FELF
// SM90: llvm.func @_mlir_ciface_bwd(
// SM90: gpu.binary @ropeattn_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, properties = {{.*}}, bin = "\7FELF

func.func @bwd(%q: tensor<1x8x256x64xbf16>, %k: tensor<1x2x256x64xbf16>, %v: tensor<1x2x256x64xbf16>, %o: tensor<1x8x256x64xbf16>, %do: tensor<1x8x256x64xbf16>) -> (tensor<1x8x256x64xbf16>, tensor<1x2x256x64xbf16>, tensor<1x2x256x64xbf16>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do causal rope <> : (tensor<1x8x256x64xbf16>, tensor<1x2x256x64xbf16>, tensor<1x2x256x64xbf16>, tensor<1x8x256x64xbf16>, tensor<1x8x256x64xbf16>) -> (tensor<1x8x256x64xbf16>, tensor<1x2x256x64xbf16>, tensor<1x2x256x64xbf16>)
  return %dq, %dk, %dv : tensor<1x8x256x64xbf16>, tensor<1x2x256x64xbf16>, tensor<1x2x256x64xbf16>
}
