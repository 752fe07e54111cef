"""Inputs and numpy checks of the rope-run tests (test/Tools/rope-run*.test).

  rope-run-check.py gen DIR            write the input .npy files into DIR
  rope-run-check.py linalg DIR         check add/matmul/add_mul results
  rope-run-check.py same A.npy B.npy   same shape, dtype descr and data bytes
  rope-run-check.py random DIR SEED    check the random:SEED generator
  rope-run-check.py corrupt DIR        write malformed .npy files
"""

import ast
import os
import sys

import numpy as np


def write_raw(path, descr, shape, data, fortran=False, version=1):
    """Writes a .npy file with exactly this header (e.g. ml_dtypes' '<V2')."""
    header = "{'descr': %r, 'fortran_order': %r, 'shape': %r, }" % (
        descr, fortran, tuple(shape))
    write_header(path, header, data, version)


def write_header(path, header, data, version=1):
    """Writes a .npy file with the header dict text `header`."""
    size_bytes = 2 if version == 1 else 4
    total = 6 + 2 + size_bytes + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]))
        f.write(len(header).to_bytes(size_bytes, "little"))
        f.write(header.encode("latin1"))
        f.write(data)


def read_raw(path):
    """(descr, shape, data bytes) of a .npy file, without numpy's dtype."""
    with open(path, "rb") as f:
        contents = f.read()
    assert contents[:6] == b"\x93NUMPY", path
    size_bytes = 2 if contents[6] == 1 else 4
    length = int.from_bytes(contents[8:8 + size_bytes], "little")
    start = 8 + size_bytes
    header = ast.literal_eval(contents[start:start + length].decode("latin1"))
    assert not header["fortran_order"]
    return header["descr"], tuple(header["shape"]), contents[start + length:]


def to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (no NaN in inputs)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def gen(d):
    rng = np.random.default_rng(2024)
    np.save(f"{d}/a.npy", rng.standard_normal((4, 8)).astype(np.float32))
    np.save(f"{d}/b.npy", rng.standard_normal((4, 8)).astype(np.float32))
    np.save(f"{d}/ma.npy", rng.standard_normal((16, 32)).astype(np.float32))
    np.save(f"{d}/mb.npy", rng.standard_normal((32, 8)).astype(np.float32))
    # f64 with special values (identity: bytes must survive, NaN included).
    x64 = rng.standard_normal((3, 5))
    x64.flat[:6] = [np.inf, -np.inf, -0.0, 5e-324, np.finfo(np.float64).max,
                    np.nan]
    np.save(f"{d}/x64.npy", x64)
    # f16 through x + 0: no -0 or NaN (x + 0 changes their bits).
    x16 = rng.standard_normal((2, 3, 4)).astype(np.float16)
    x16.flat[:5] = [np.inf, -np.inf, 6e-8, 65504.0, -3.0e-5]
    np.save(f"{d}/x16.npy", x16)
    # bf16 the way ml_dtypes' np.save writes it ('<V2'), plus '|V2' (numpy's
    # own void) and the name 'bfloat16'.
    bits = to_bf16_bits([1.0, -2.5, 3.140625, 0.0, -1e30, 7e-39])
    write_raw(f"{d}/bf16-lt.npy", "<V2", (6,), bits.tobytes())
    write_raw(f"{d}/bf16-pipe.npy", "|V2", (6,), bits.tobytes())
    write_raw(f"{d}/bf16-name.npy", "bfloat16", (6,), bits.tobytes(),
              version=2)
    np.save(f"{d}/idx.npy", np.array([0, 7, -1, 2**40, -(2**62)],
                                     dtype=np.int64))


def linalg(d):
    a, b = np.load(f"{d}/a.npy"), np.load(f"{d}/b.npy")
    ma, mb = np.load(f"{d}/ma.npy"), np.load(f"{d}/mb.npy")
    add = np.load(f"{d}/add.npy")
    assert add.dtype == np.float32 and add.shape == (4, 8)
    assert np.array_equal(add, a + b), "add"
    mm = np.load(f"{d}/matmul.npy")
    assert mm.dtype == np.float32 and mm.shape == (16, 8)
    ref = ma.astype(np.float64) @ mb.astype(np.float64)
    assert np.allclose(mm, ref, rtol=1e-5, atol=1e-5), "matmul"
    assert np.array_equal(np.load(f"{d}/sum.npy"), a + b), "add_mul[0]"
    assert np.array_equal(np.load(f"{d}/prod.npy"), a * b), "add_mul[1]"
    print("linalg: ok")


def same(a, b):
    ra, rb = read_raw(a), read_raw(b)
    assert ra == rb, f"{a} {ra[:2]} != {b} {rb[:2]}"
    print(f"same: {ra[0]} {ra[1]}")


def splitmix64(seed, count):
    mask = (1 << 64) - 1
    state, out = seed, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


def random(d, seed):
    """The documented generator: floats 2 * (x >> 11) * 2^-53 - 1 rounded to
    f32, then to the element type; integers x >> 57."""
    seed = int(seed)

    def floats(n):
        x = splitmix64(seed, n)
        return np.array([2.0 * (v >> 11) * 2.0**-53 - 1.0 for v in x],
                        dtype=np.float64).astype(np.float32)

    f32 = np.load(f"{d}/r-f32.npy")
    assert f32.dtype == np.float32
    assert np.array_equal(f32.ravel(), floats(10)), "f32"
    assert np.all((f32 >= -1) & (f32 < 1))
    f16 = np.load(f"{d}/r-f16.npy")
    assert f16.dtype == np.float16
    assert np.array_equal(f16.ravel(), floats(24).astype(np.float16)), "f16"
    descr, shape, data = read_raw(f"{d}/r-bf16.npy")
    assert descr == "<V2" and shape == (6,), (descr, shape)
    assert data == to_bf16_bits(floats(6)).tobytes(), "bf16"
    i32 = np.load(f"{d}/r-i32.npy")
    assert i32.dtype == np.int32
    assert i32.tolist() == [v >> 57 for v in splitmix64(seed, 7)], "i32"
    print("random: ok")


def corrupt(d):
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    np.save(f"{d}/good.npy", x)
    with open(f"{d}/good.npy", "rb") as f:
        good = f.read()
    with open(f"{d}/truncated.npy", "wb") as f:
        f.write(good[:-4])
    with open(f"{d}/truncated-header.npy", "wb") as f:
        f.write(good[:40])
    with open(f"{d}/extra.npy", "wb") as f:
        f.write(good + b"\0\0")
    with open(f"{d}/not-npy.npy", "wb") as f:
        f.write(b"this is not a numpy file\n")
    with open(f"{d}/version.npy", "wb") as f:
        f.write(good[:6] + bytes([4, 0]) + good[8:])
    with open(f"{d}/bad-header.npy", "wb") as f:
        f.write(good.replace(b"'shape': (4, 8)", b"'shape': (4; 8)"))
    write_header(f"{d}/no-shape.npy",
                 "{'descr': '<f4', 'fortran_order': False, }", b"")
    np.save(f"{d}/fortran.npy", np.asfortranarray(x))
    np.save(f"{d}/big-endian.npy", x.astype(">f4"))
    np.save(f"{d}/complex.npy", x.astype(np.complex64))
    np.save(f"{d}/f64.npy", x.astype(np.float64))
    np.save(f"{d}/shape.npy", x.reshape(8, 4))
    os.makedirs(f"{d}/a-directory", exist_ok=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"gen": gen, "linalg": linalg, "same": same, "random": random,
     "corrupt": corrupt}[cmd](*args)
