"""A bare GEMM on ONNX Runtime (Python, CPU provider) against torch, on the shapes of the m20
training step (bench/train_bench.ts, batch 2 x 128): forward products, the weight gradients
(X^T dY, a Transpose that ORT fuses into the product) and the LM head. For reading train_bench's
profile: what a GEMM of that shape reaches alone on this CPU.

Usage: python bench/gemm_ort_vs_torch.py [THREADS]   (a venv with torch, onnx, onnxruntime)
Prints one line per shape: median ms of 30 and GFLOP/s for each side.
Only for benchmarking; the project never needs Python.
"""
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(THREADS)


def ort_mm(m, k, n, trans_a):
    a_shape = [k, m] if trans_a else [m, k]
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, a_shape)
    b = helper.make_tensor_value_info("B", TensorProto.FLOAT, [k, n])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])
    if trans_a:
        nodes = [helper.make_node("Transpose", ["A"], ["At"], perm=[1, 0]),
                 helper.make_node("MatMul", ["At", "B"], ["Y"])]
    else:
        nodes = [helper.make_node("MatMul", ["A", "B"], ["Y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [a, b], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"A": np.random.rand(*a_shape).astype(np.float32),
             "B": np.random.rand(k, n).astype(np.float32)}
    return lambda: s.run(None, feeds)


def torch_mm(m, k, n, trans_a):
    a = torch.rand(k, m) if trans_a else torch.rand(m, k)
    b = torch.rand(k, n)
    return (lambda: a.t() @ b) if trans_a else (lambda: a @ b)


def median_s(f, n=30):
    for _ in range(3):
        f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[n // 2]


SHAPES = [  # m, k, n, trans_a, what
    (256, 512, 1536, False, "forward, MLP up"),
    (256, 1536, 512, False, "forward, MLP down"),
    (256, 512, 8192, False, "forward, LM head"),
    (512, 256, 1536, True, "dW, MLP up (X^T dY)"),
    (1536, 256, 512, True, "dW, MLP down"),
    (8192, 256, 512, True, "dW, LM head"),
]
for m, k, n, trans_a, what in SHAPES:
    flop = 2 * m * k * n
    a, b = median_s(ort_mm(m, k, n, trans_a)), median_s(torch_mm(m, k, n, trans_a))
    print(f"{what:22s} {m}x{k}x{n}  ort {a * 1e3:6.2f} ms {flop / a / 1e9:6.1f} GFLOP/s"
          f"  | torch {b * 1e3:6.2f} ms {flop / b / 1e9:6.1f} GFLOP/s")
