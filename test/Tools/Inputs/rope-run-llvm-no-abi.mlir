// An LLVM-dialect function without the `ropeattn.abi` signature.
llvm.func @f(%x: !llvm.ptr) {
  llvm.return
}
