#!/usr/bin/python3
# PyTorch (CPU, float32, 1 thread) twin of bench_conv for bench_conv.sh: the same conv shapes and CNN, in NCHW
# and channels_last, timed on the thread CPU clock; prints lines in bench_conv's format with the layout named.
# With --ort, each shape also runs as a one-Conv ONNX graph in onnxruntime (1 intra-op thread, forward only).
"""Usage: bench_conv_torch.py [--shapes CxHkKpPfF[sS][gG],...] [--batch 64] [--reps 3] [--min-time 0.2]
                           [--model SPEC] [--infer-batch 256] [--train-batch 128] [--ort]"""
import argparse
import re
import sys
import time

import torch
import torch.nn as nn


def best_time(reps, min_s, f):
    """Seconds per call of f: calls repeated for at least min_s of thread CPU time, best of reps runs."""
    f()
    best = float("inf")
    for _ in range(reps):
        t0 = time.thread_time()
        calls = 0
        while True:
            f()
            calls += 1
            t = time.thread_time() - t0
            if t >= min_s:
                break
        best = min(best, t / calls)
    return best


def parse_shape(name):
    """(C, H, K, P, F, S, G) of "CxHkKpPfF[sS][gG]"."""
    m = re.fullmatch(r"(\d+)x(\d+)k(\d+)p(\d+)f(\d+)(?:s(\d+))?(?:g(\d+))?", name)
    if not m:
        sys.exit(f"bench_conv_torch.py: --shapes: '{name}' is not CxHkKpPfF[sS][gG] (e.g. 16x28k3p1f32s2)")
    return tuple(int(v) if v else 1 for v in m.groups())


def bench_ort(name, batch, reps, min_s):
    """The shape as a one-Conv ONNX graph (random weights and bias) in onnxruntime, 1 intra-op thread."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    c, h, k, p, f, s, g = parse_shape(name)
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.random((f, c // g, k, k), np.float32) - 0.5) * 0.1, "W")
    b = numpy_helper.from_array(rng.random(f, np.float32), "B")
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=[k, k], strides=[s, s],
                            pads=[p] * 4, group=g)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             [None, c, h, h])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = (rng.random((batch, c, h, h), np.float32) - 0.5)
    fwd = best_time(reps, min_s, lambda: sess.run(None, {"x": x}))
    print(f"ort conv {name} batch {batch} fwd {batch / fwd:.1f} fwdbwd nan samples/s", flush=True)


def bench_shape(name, batch, reps, min_s):
    c, h, k, p, f, s, g = parse_shape(name)
    torch.manual_seed(0)
    for fmt, mf in (("nchw", torch.contiguous_format), ("cl", torch.channels_last)):
        conv = nn.Conv2d(c, f, k, stride=s, padding=p, groups=g).to(memory_format=mf)
        x = (torch.rand(batch, c, h, h) - 0.5).contiguous(memory_format=mf)
        with torch.no_grad():
            fwd = best_time(reps, min_s, lambda: conv(x))
        xg = x.clone().requires_grad_(True)
        oh = (h + 2 * p - k) // s + 1
        gy = (torch.rand(batch, f, oh, oh) - 0.5).contiguous(memory_format=mf)

        def step():
            conv.zero_grad(set_to_none=False)
            xg.grad = None
            conv(xg).backward(gy)

        train = best_time(reps, min_s, step)
        # The backward pass alone (dW, db and dx): the aten operator that autograd calls for Conv2d.
        w = conv.weight.detach()
        mask = [True, True, True]

        def backward():
            torch.ops.aten.convolution_backward(gy, x, w, [f], [s, s], [p, p], [1, 1], False, [0, 0], g, mask)

        with torch.no_grad():
            bwd = best_time(reps, min_s, backward)
        print(f"torch-{fmt} conv {name} batch {batch} fwd {batch / fwd:.1f} fwdbwd {batch / train:.1f} "
              f"bwd {batch / bwd:.1f} samples/s", flush=True)


def build(spec, c, h, w):
    """torch layers for a Mimic conv/relu/pool/dense spec on input (C, H, W) (conv:FxK is 'same', stride 1)."""
    mods = []
    flat = False
    for tok in spec.split(","):
        name, _, arg = tok.partition(":")
        if name == "conv":
            f, k = (int(v) for v in arg.split("x"))
            mods.append(nn.Conv2d(c, f, k, padding=k // 2))
            c = f
        elif name == "pool":
            k = int(arg)
            mods.append(nn.MaxPool2d(k))
            h, w = h // k, w // k
        elif name == "relu":
            mods.append(nn.ReLU())
        elif name == "dense":
            if not flat:
                mods.append(nn.Flatten())
                flat = True
            n = int(arg)
            mods.append(nn.Linear(c * h * w, n))
            c, h, w = n, 1, 1
        else:
            sys.exit(f"bench_conv_torch.py: --model: layer '{tok}' is not supported here")
    return nn.Sequential(*mods)


def bench_model(spec, infer_batch, train_batch, reps, min_s):
    for fmt, mf in (("nchw", torch.contiguous_format), ("cl", torch.channels_last)):
        torch.manual_seed(0)
        model = build(spec, 1, 28, 28).to(memory_format=mf)
        x = torch.rand(infer_batch, 1, 28, 28).contiguous(memory_format=mf)
        model.eval()
        with torch.no_grad():
            infer = best_time(reps, min_s, lambda: model(x))
        model.train()
        xt = torch.rand(train_batch, 1, 28, 28).contiguous(memory_format=mf)
        yt = torch.arange(train_batch) % 10
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=False)
            loss_fn(model(xt), yt).backward()
            opt.step()

        train = best_time(reps, min_s, step)
        print(f"torch-{fmt} model label batch {infer_batch} {infer_batch / infer:.1f} samples/s")
        print(f"torch-{fmt} model train batch {train_batch} {train_batch / train:.1f} samples/s", flush=True)


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("--shapes", default="")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--model", default="")
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--ort", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for s in filter(None, a.shapes.split(",")):
        bench_shape(s, a.batch, a.reps, a.min_time)
        if a.ort:
            bench_ort(s, a.batch, a.reps, a.min_time)
    if a.model:
        bench_model(a.model, a.infer_batch, a.train_batch, a.reps, a.min_time)


if __name__ == "__main__":
    main()
