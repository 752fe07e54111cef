// RUN: rope-opt %s -ropeattn-approximate-math | FileCheck %s

// f32 exp and log become arith-only polynomials (vectorizable), f64 stays.
// CHECK-LABEL: func @f32
// CHECK-NOT: math.exp
// CHECK-NOT: math.log
// CHECK: arith.mulf
// CHECK: return
func.func @f32(%x: f32, %v: vector<8xf32>) -> (f32, vector<8xf32>, f32) {
  %0 = math.exp %x : f32
  %1 = math.exp %v : vector<8xf32>
  %2 = math.log %x : f32
  return %0, %1, %2 : f32, vector<8xf32>, f32
}

// CHECK-LABEL: func @f64
// CHECK: math.exp %{{.*}} : f64
// CHECK: math.cos %{{.*}} : f32
func.func @f64(%x: f64, %y: f32) -> (f64, f32) {
  %0 = math.exp %x : f64
  %1 = math.cos %y : f32
  return %0, %1 : f64, f32
}
