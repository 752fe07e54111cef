"""The C API through ropeattn.compile / Module / Function: compiling MLIR
text, signatures, calls with numpy arrays, and clear errors (never a crash)
for bad input."""

import numpy as np
import pytest

import ropeattn

MATMUL = """
func.func @matmul(%a: tensor<3x5xf32>, %b: tensor<5x4xf32>) -> tensor<3x4xf32> {
  %zero = arith.constant 0.0 : f32
  %init = tensor.empty() : tensor<3x4xf32>
  %fill = linalg.fill ins(%zero : f32) outs(%init : tensor<3x4xf32>) -> tensor<3x4xf32>
  %c = linalg.matmul ins(%a, %b : tensor<3x5xf32>, tensor<5x4xf32>) outs(%fill : tensor<3x4xf32>) -> tensor<3x4xf32>
  return %c : tensor<3x4xf32>
}
func.func @twice(%x: tensor<7xf64>) -> (tensor<7xf64>, tensor<7xf64>) {
  %e = tensor.empty() : tensor<7xf64>
  %y = linalg.add ins(%x, %x : tensor<7xf64>, tensor<7xf64>) outs(%e : tensor<7xf64>) -> tensor<7xf64>
  return %y, %x : tensor<7xf64>, tensor<7xf64>
}
func.func private @hidden(%x: tensor<7xf64>) -> tensor<7xf64> {
  return %x : tensor<7xf64>
}
"""


@pytest.fixture(scope="module")
def module():
    return ropeattn.compile(MATMUL)


def test_library_is_found():
    assert ropeattn.library_path().endswith("libRopeAttnCAPI.so")


def test_functions_and_signatures(module):
    assert sorted(module.functions) == ["matmul", "twice"]  # not @hidden
    f = module["matmul"]
    assert f.signature == ("(tensor<3x5xf32>, tensor<5x4xf32>) -> "
                           "tensor<3x4xf32>")
    assert [t.shape for t in f.inputs] == [(3, 5), (5, 4)]
    assert [t.dtype for t in f.results] == [np.dtype(np.float32)]


def test_call_matches_numpy(module):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal((5, 4)).astype(np.float32)
    (c,) = module.matmul(a, b)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    # Accumulating 5 products in f32: a few ulps of the largest term.
    assert np.max(np.abs(c - expected)) <= 8 * 2.0 ** -24 * np.max(
        np.abs(a).sum(1)[:, None] * np.abs(b).max(0)[None, :])
    y, x = module["twice"](np.arange(7.0))
    np.testing.assert_array_equal(y, 2 * np.arange(7.0))
    np.testing.assert_array_equal(x, np.arange(7.0))


def test_non_contiguous_and_unaligned_inputs(module):
    rng = np.random.default_rng(2)
    big = rng.standard_normal((10, 12)).astype(np.float32)
    a = big[1:7:2, 2:7]  # strided view
    b = np.asfortranarray(rng.standard_normal((5, 4)).astype(np.float32))
    (c,) = module.matmul(a, b)
    (c2,) = module.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b))
    np.testing.assert_array_equal(c, c2)
    raw = np.zeros(7 * 8 + 1, np.uint8)[1:].view(np.float64)  # misaligned
    raw[...] = np.arange(7.0)
    np.testing.assert_array_equal(module.twice(raw)[0], 2 * np.arange(7.0))


def test_repeated_calls_do_not_share_results(module):
    y1, _ = module.twice(np.ones(7))
    y2, _ = module.twice(np.full(7, 3.0))
    np.testing.assert_array_equal(y1, np.full(7, 2.0))
    np.testing.assert_array_equal(y2, np.full(7, 6.0))


def test_lowered_ir(module):
    text = module.lowered_ir()
    assert "llvm.func @_mlir_ciface_matmul" in text


def test_bad_arguments(module):
    a = np.zeros((3, 5), np.float32)
    with pytest.raises(TypeError, match="takes 2 inputs"):
        module.matmul(a)
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        module.matmul(a.astype(np.float64), np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected shape \(5, 4\), got"):
        module.matmul(a, np.zeros((4, 5), np.float32))
    with pytest.raises(KeyError, match="no function @nope"):
        module["nope"]


@pytest.mark.parametrize("text, message", [
    ("func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n  return %y : tensor<4xf32>\n}",
     r"cannot parse the module:\n<ir>:2:10: error: use of undeclared SSA value name"),
    ("func.func @f(%x: tensor<?xf32>) -> tensor<?xf32> {\n  return %x : tensor<?xf32>\n}",
     r"input 0 of @f has the dynamic type tensor<\?xf32>; shapes must be static"),
    ("func.func private @f(%x: tensor<4xf32>) -> tensor<4xf32>",
     r"the module has no public function with a body"),
    ("func.func @f(%x: tensor<4xi3>) -> tensor<4xi3> {\n  return %x : tensor<4xi3>\n}",
     r"the element type i3 is not supported"),
    # A verifier error of a ropeattn op, with its location.
    ("func.func @f(%q: tensor<2x4x8xf32>, %k: tensor<3x4x8xf32>) -> tensor<2x4x8xf32> {\n"
     "  %o = ropeattn.attention %q, %k, %k : (tensor<2x4x8xf32>, tensor<3x4x8xf32>, tensor<3x4x8xf32>) -> tensor<2x4x8xf32>\n"
     "  return %o : tensor<2x4x8xf32>\n}",
     r"<ir>:2:8: error: 'ropeattn.attention' op expected the number of query heads \(2\) to be a multiple"),
])
def test_compile_errors(text, message):
    with pytest.raises(ropeattn.RopeAttnError, match=message):
        ropeattn.compile(text)


def test_pipeline_errors():
    with pytest.raises(ropeattn.RopeAttnError,
                       match="invalid rope-lower-to-cpu options 'bogus=1'"):
        ropeattn.compile(MATMUL, pipeline_options="bogus=1")
    with pytest.raises(ropeattn.RopeAttnError, match="invalid pipeline 'no-such-pass'"):
        ropeattn.compile(MATMUL, pipeline="no-such-pass")
    with pytest.raises(ropeattn.RopeAttnError,
                       match="no C interface @_mlir_ciface_matmul"):
        ropeattn.compile(MATMUL, pipeline="builtin.module(canonicalize)")
    with pytest.raises(ropeattn.RopeAttnError, match="invalid optimization level 7"):
        ropeattn.compile(MATMUL, opt_level=7)
    with pytest.raises(ropeattn.RopeAttnError,
                       match="cannot load shared library '/no/such.so': no such file"):
        ropeattn.compile(MATMUL, shared_libraries=["/no/such.so"])


def test_explicit_pipeline_and_options():
    # The same function through an explicit pipeline and through options.
    m1 = ropeattn.compile(MATMUL, pipeline="builtin.module(rope-lower-to-cpu{blas=0 parallel=0})")
    m2 = ropeattn.compile(MATMUL, pipeline_options="blas=0", opt_level=0)
    a = np.arange(15, dtype=np.float32).reshape(3, 5)
    b = np.arange(20, dtype=np.float32).reshape(5, 4)
    np.testing.assert_array_equal(m1.matmul(a, b)[0], a @ b)  # small ints: exact
    np.testing.assert_array_equal(m2.matmul(a, b)[0], a @ b)
