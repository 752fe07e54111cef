// A TOSA op: no pass of rope-lower-to-cpu lowers or bufferizes it, so the
// pipeline fails, and rope-run must say so.
func.func @opaque(%x: tensor<4xf32>) -> tensor<4xf32> {
  %r = tosa.abs %x : (tensor<4xf32>) -> tensor<4xf32>
  return %r : tensor<4xf32>
}
