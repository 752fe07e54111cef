// The seed objective (Chen et al., arXiv 2412.17316; Alman & Song):
//
//   L(X) = 1/2 |D^-1 exp(A1 X A2^T / d) A3 Y - E|_F^2,  D = diag(exp(.) 1)
//
// and its gradient dL/dX, computed through the dialect: with Q = A1 X,
// K = A2, V = A3 Y the matrix D^-1 exp(Q K^T / d) V is ropeattn.attention
// with scale 1/d, dL/dO = O - E, and dL/dX = A1^T dQ with dQ from
// ropeattn.attention_grad. n = 128, d = 4, f64. Three variants:
//   @objective_exact       the exact lowering;
//   @objective_polynomial  method polynomial (certified degree, exact
//                          fallback; the backward is the exact gradient of
//                          the polynomial forward);
//   @objective_toeplitz    with a relative bias table b (b = 0 is the seed
//                          objective itself), method toeplitz; also returns
//                          dL/db.
// Run: rope-run seed_objective.mlir --function=objective_exact \
//        --input=@a1.npy ... --output=@loss.npy --output=@dx.npy
// test/Integration/CPU/seed-objective.test checks all three against finite
// differences (test/Integration/CPU/seed_objective.py; through the Python
// package: ropeattn.compile(text, pipeline_options="epsilon=1e-2")).

// L(X) = 1/2 |D^-1 exp(A1 X A2^T / d) A3 Y - E|_F^2 and dL/dX, method exact.
func.func @objective_exact(%a1: tensor<128x4xf64>, %a2: tensor<128x4xf64>, %a3: tensor<128x4xf64>, %x: tensor<4x4xf64>,
    %y: tensor<4x4xf64>, %e: tensor<128x4xf64>) -> (tensor<f64>, tensor<4x4xf64>) {
  %zero = arith.constant 0.0 : f64
  %enn = tensor.empty() : tensor<128x4xf64>
  %z = linalg.fill ins(%zero : f64) outs(%enn : tensor<128x4xf64>) -> tensor<128x4xf64>
  // Q = A1 X, K = A2, V = A3 Y (one head).
  %q2 = linalg.matmul ins(%a1, %x : tensor<128x4xf64>, tensor<4x4xf64>) outs(%z : tensor<128x4xf64>) -> tensor<128x4xf64>
  %v2 = linalg.matmul ins(%a3, %y : tensor<128x4xf64>, tensor<4x4xf64>) outs(%z : tensor<128x4xf64>) -> tensor<128x4xf64>
  %q = tensor.expand_shape %q2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %k = tensor.expand_shape %a2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %v = tensor.expand_shape %v2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  // O = D^-1 exp(Q K^T / d) V: softmax attention with scale 1/d.
  %o = ropeattn.attention %q, %k, %v scale(0.25) method exact
      : (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>) -> tensor<1x128x4xf64>
  // R = O - E; L = 1/2 sum R^2; dL/dO = R.
  %e3 = tensor.expand_shape %e [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %e1 = tensor.empty() : tensor<1x128x4xf64>
  %r = linalg.sub ins(%o, %e3 : tensor<1x128x4xf64>, tensor<1x128x4xf64>) outs(%e1 : tensor<1x128x4xf64>) -> tensor<1x128x4xf64>
  %l0 = tensor.empty() : tensor<f64>
  %lz = linalg.fill ins(%zero : f64) outs(%l0 : tensor<f64>) -> tensor<f64>
  %loss = linalg.generic {indexing_maps = [affine_map<(h, i, c) -> (h, i, c)>, affine_map<(h, i, c) -> ()>],
                          iterator_types = ["reduction", "reduction", "reduction"]}
      ins(%r : tensor<1x128x4xf64>) outs(%lz : tensor<f64>) {
  ^bb0(%ri: f64, %acc: f64):
    %half = arith.constant 0.5 : f64
    %sq = arith.mulf %ri, %ri : f64
    %hs = arith.mulf %sq, %half : f64
    %s = arith.addf %acc, %hs : f64
    linalg.yield %s : f64
  } -> tensor<f64>
  // dQ through attention_grad (the same method); dX = A1^T dQ.
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %r scale(0.25) method exact
      : (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>)
      -> (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>)
  %dq2 = tensor.collapse_shape %dq [[0, 1], [2]] : tensor<1x128x4xf64> into tensor<128x4xf64>
  %edd = tensor.empty() : tensor<4x4xf64>
  %zdd = linalg.fill ins(%zero : f64) outs(%edd : tensor<4x4xf64>) -> tensor<4x4xf64>
  %dx = linalg.generic {indexing_maps = [affine_map<(a, b, i) -> (i, a)>, affine_map<(a, b, i) -> (i, b)>,
                                         affine_map<(a, b, i) -> (a, b)>],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a1, %dq2 : tensor<128x4xf64>, tensor<128x4xf64>) outs(%zdd : tensor<4x4xf64>) {
  ^bb0(%p: f64, %g: f64, %acc: f64):
    %m = arith.mulf %p, %g : f64
    %s = arith.addf %acc, %m : f64
    linalg.yield %s : f64
  } -> tensor<4x4xf64>
  return %loss, %dx : tensor<f64>, tensor<4x4xf64>
}

// L(X) = 1/2 |D^-1 exp(A1 X A2^T / d) A3 Y - E|_F^2 and dL/dX, method polynomial.
func.func @objective_polynomial(%a1: tensor<128x4xf64>, %a2: tensor<128x4xf64>, %a3: tensor<128x4xf64>, %x: tensor<4x4xf64>,
    %y: tensor<4x4xf64>, %e: tensor<128x4xf64>) -> (tensor<f64>, tensor<4x4xf64>) {
  %zero = arith.constant 0.0 : f64
  %enn = tensor.empty() : tensor<128x4xf64>
  %z = linalg.fill ins(%zero : f64) outs(%enn : tensor<128x4xf64>) -> tensor<128x4xf64>
  // Q = A1 X, K = A2, V = A3 Y (one head).
  %q2 = linalg.matmul ins(%a1, %x : tensor<128x4xf64>, tensor<4x4xf64>) outs(%z : tensor<128x4xf64>) -> tensor<128x4xf64>
  %v2 = linalg.matmul ins(%a3, %y : tensor<128x4xf64>, tensor<4x4xf64>) outs(%z : tensor<128x4xf64>) -> tensor<128x4xf64>
  %q = tensor.expand_shape %q2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %k = tensor.expand_shape %a2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %v = tensor.expand_shape %v2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  // O = D^-1 exp(Q K^T / d) V: softmax attention with scale 1/d.
  %o = ropeattn.attention %q, %k, %v scale(0.25) method polynomial
      : (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>) -> tensor<1x128x4xf64>
  // R = O - E; L = 1/2 sum R^2; dL/dO = R.
  %e3 = tensor.expand_shape %e [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %e1 = tensor.empty() : tensor<1x128x4xf64>
  %r = linalg.sub ins(%o, %e3 : tensor<1x128x4xf64>, tensor<1x128x4xf64>) outs(%e1 : tensor<1x128x4xf64>) -> tensor<1x128x4xf64>
  %l0 = tensor.empty() : tensor<f64>
  %lz = linalg.fill ins(%zero : f64) outs(%l0 : tensor<f64>) -> tensor<f64>
  %loss = linalg.generic {indexing_maps = [affine_map<(h, i, c) -> (h, i, c)>, affine_map<(h, i, c) -> ()>],
                          iterator_types = ["reduction", "reduction", "reduction"]}
      ins(%r : tensor<1x128x4xf64>) outs(%lz : tensor<f64>) {
  ^bb0(%ri: f64, %acc: f64):
    %half = arith.constant 0.5 : f64
    %sq = arith.mulf %ri, %ri : f64
    %hs = arith.mulf %sq, %half : f64
    %s = arith.addf %acc, %hs : f64
    linalg.yield %s : f64
  } -> tensor<f64>
  // dQ through attention_grad (the same method); dX = A1^T dQ.
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %r scale(0.25) method polynomial
      : (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>)
      -> (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>)
  %dq2 = tensor.collapse_shape %dq [[0, 1], [2]] : tensor<1x128x4xf64> into tensor<128x4xf64>
  %edd = tensor.empty() : tensor<4x4xf64>
  %zdd = linalg.fill ins(%zero : f64) outs(%edd : tensor<4x4xf64>) -> tensor<4x4xf64>
  %dx = linalg.generic {indexing_maps = [affine_map<(a, b, i) -> (i, a)>, affine_map<(a, b, i) -> (i, b)>,
                                         affine_map<(a, b, i) -> (a, b)>],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a1, %dq2 : tensor<128x4xf64>, tensor<128x4xf64>) outs(%zdd : tensor<4x4xf64>) {
  ^bb0(%p: f64, %g: f64, %acc: f64):
    %m = arith.mulf %p, %g : f64
    %s = arith.addf %acc, %m : f64
    linalg.yield %s : f64
  } -> tensor<4x4xf64>
  return %loss, %dx : tensor<f64>, tensor<4x4xf64>
}

// L(X) = 1/2 |D^-1 exp(A1 X A2^T / d) A3 Y - E|_F^2 and dL/dX, method toeplitz (with a relative bias b; also dL/db).
func.func @objective_toeplitz(%a1: tensor<128x4xf64>, %a2: tensor<128x4xf64>, %a3: tensor<128x4xf64>, %x: tensor<4x4xf64>,
    %y: tensor<4x4xf64>, %e: tensor<128x4xf64>, %b: tensor<255xf64>) -> (tensor<f64>, tensor<4x4xf64>, tensor<255xf64>) {
  %zero = arith.constant 0.0 : f64
  %enn = tensor.empty() : tensor<128x4xf64>
  %z = linalg.fill ins(%zero : f64) outs(%enn : tensor<128x4xf64>) -> tensor<128x4xf64>
  // Q = A1 X, K = A2, V = A3 Y (one head).
  %q2 = linalg.matmul ins(%a1, %x : tensor<128x4xf64>, tensor<4x4xf64>) outs(%z : tensor<128x4xf64>) -> tensor<128x4xf64>
  %v2 = linalg.matmul ins(%a3, %y : tensor<128x4xf64>, tensor<4x4xf64>) outs(%z : tensor<128x4xf64>) -> tensor<128x4xf64>
  %q = tensor.expand_shape %q2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %k = tensor.expand_shape %a2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %v = tensor.expand_shape %v2 [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  // O = D^-1 exp(Q K^T / d) V: softmax attention with scale 1/d.
  %o = ropeattn.attention %q, %k, %v bias(%b) scale(0.25) method toeplitz
      : (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<255xf64>) -> tensor<1x128x4xf64>
  // R = O - E; L = 1/2 sum R^2; dL/dO = R.
  %e3 = tensor.expand_shape %e [[0, 1], [2]] output_shape [1, 128, 4] : tensor<128x4xf64> into tensor<1x128x4xf64>
  %e1 = tensor.empty() : tensor<1x128x4xf64>
  %r = linalg.sub ins(%o, %e3 : tensor<1x128x4xf64>, tensor<1x128x4xf64>) outs(%e1 : tensor<1x128x4xf64>) -> tensor<1x128x4xf64>
  %l0 = tensor.empty() : tensor<f64>
  %lz = linalg.fill ins(%zero : f64) outs(%l0 : tensor<f64>) -> tensor<f64>
  %loss = linalg.generic {indexing_maps = [affine_map<(h, i, c) -> (h, i, c)>, affine_map<(h, i, c) -> ()>],
                          iterator_types = ["reduction", "reduction", "reduction"]}
      ins(%r : tensor<1x128x4xf64>) outs(%lz : tensor<f64>) {
  ^bb0(%ri: f64, %acc: f64):
    %half = arith.constant 0.5 : f64
    %sq = arith.mulf %ri, %ri : f64
    %hs = arith.mulf %sq, %half : f64
    %s = arith.addf %acc, %hs : f64
    linalg.yield %s : f64
  } -> tensor<f64>
  // dQ through attention_grad (the same method); dX = A1^T dQ.
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, %r bias(%b) scale(0.25) method toeplitz
      : (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<255xf64>)
      -> (tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<1x128x4xf64>, tensor<255xf64>)
  %dq2 = tensor.collapse_shape %dq [[0, 1], [2]] : tensor<1x128x4xf64> into tensor<128x4xf64>
  %edd = tensor.empty() : tensor<4x4xf64>
  %zdd = linalg.fill ins(%zero : f64) outs(%edd : tensor<4x4xf64>) -> tensor<4x4xf64>
  %dx = linalg.generic {indexing_maps = [affine_map<(a, b, i) -> (i, a)>, affine_map<(a, b, i) -> (i, b)>,
                                         affine_map<(a, b, i) -> (a, b)>],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a1, %dq2 : tensor<128x4xf64>, tensor<128x4xf64>) outs(%zdd : tensor<4x4xf64>) {
  ^bb0(%p: f64, %g: f64, %acc: f64):
    %m = arith.mulf %p, %g : f64
    %s = arith.addf %acc, %m : f64
    linalg.yield %s : f64
  } -> tensor<4x4xf64>
  return %loss, %dx, %db : tensor<f64>, tensor<4x4xf64>, tensor<255xf64>
}
