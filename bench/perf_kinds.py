#!/usr/bin/python3
# Sorts the samples of `perf script` (a `perf record --call-graph dwarf` of `mimic train`) into kinds of work
# by their call stacks: conv passes by shape, bn, relu, residual add, pooling, optimizer, gather; prints shares.
"""Usage: perf script -i perf.data | bench/perf_kinds.py
Shapes come from the direct kernels' template arguments, which fit the resnet.cfg teacher: pixel tiles of 8
filters x 3 registers are its 16x28x28 layers, filter tiles of 14 and 7 outputs its 32x14x14 and 64x7x7
layers; weight tiles of one filter register are the 16-filter layers, of two the 32- and 64-filter ones."""
import collections
import re
import sys

WEIGHT = r"weight_channel|weight_taps|weight_tile"
KERNEL = r"forward_tile|filter_tile|filter_pass|forward_pass|unpad_outputs|unpack_outputs"


def shape(leaf):
    if "forward_tile<8, 3" in leaf:
        return ", 16x28x28"
    m = re.search(r"filter_tile<\d+, \d+, (\d+)>", leaf)
    if m:
        return {"14": ", 32x14x14", "7": ", 64x7x7"}.get(m.group(1), ", tiles of " + m.group(1))
    if "weight_tile<9, 1>" in leaf:
        return ", 16 filters (28x28)"
    if "weight_tile<9, 2>" in leaf:
        return ", 32 or 64 filters (14x14, 7x7)"
    return ""


def direct_conv(frames):
    leaf, stack = frames[0], " ".join(frames)
    if any(re.search(WEIGHT, f) for f in frames):
        return "conv backward, weights (direct)" + shape(leaf)
    # direct_conv_backward tail-calls its input gradient: input_grad or strided_input_grad is the frame.
    if re.search(r"direct_conv_backward|input_grad", stack):
        strided = "strided_input_grad" in stack
        if re.search(KERNEL, leaf):
            return "conv backward, data, stride 2 (direct, four phases)" if strided else \
                "conv backward, data (direct)" + shape(leaf)
        if "pad_planes" in leaf:
            return "conv backward: padded copies of x and dy"
        if strided:
            return "conv backward, stride 2: dx from the phases, dy padded, buffers zeroed"
        return "conv backward: dy transposed, buffers zeroed"
    if "direct_conv_forward" in stack:
        if "pad_planes" in leaf:
            return "conv forward: padded copy of x"
        if "unpad" in leaf or "unpack" in leaf:
            return "conv forward: output pass (bias, ReLU)"
        return "conv forward (direct)" + shape(leaf)
    return None


RULES = [  # the first pattern found, walking from the leaf to the root, names the kind
    ("residual add, branch gradient sum", r"mimic::nn::add_into"),
    ("residual add with the ReLU after the block (join)", r"mimic::nn::add_relu_into"),
    ("conv backward, bias", r"conv_bias_grad"),
    ("conv backward, im2col + sgemm (stride 2)", r"mimic::nn::conv2d_backward"),
    ("conv forward, im2col + sgemm (1x1 stride 2)", r"mimic::nn::conv2d_forward"),
    ("bn forward (sums, apply)", r"batchnorm_sums|batchnorm_apply|batchnorm_plane_totals|BatchNorm::forward"),
    ("bn backward (gradient sums, dx)", r"batchnorm_grad_sums|batchnorm_dx|BatchNorm::backward"),
    ("relu forward", r"relu_forward"),
    ("relu backward", r"relu_backward|conv_relu_mask"),
    ("global average pooling", r"global_avgpool"),
    ("dense", r"dense_"),
    ("optimizer", r"optim::"),
    ("batch gather", r"EpochOrder|gather|DatasetReader::read"),
    ("loss", r"loss|cross_entropy|softmax"),
]


def classify(frames):
    kind = direct_conv(frames)
    if kind:
        return kind
    for f in frames:
        for name, pat in RULES:
            if re.search(pat, f):
                return name
    if any("Engine::" in f for f in frames):
        return "other (training loop)"
    return "start-up, reading the data, kernel"


def main():
    count, total, frames = collections.Counter(), 0, []
    for line in list(sys.stdin) + [""]:
        if not line.strip():
            if frames:
                count[classify(frames)] += 1
                total += 1
            frames = []
            continue
        m = re.match(r"\s+[0-9a-f]+\s+(.*?)(\+0x[0-9a-f]+)?\s+\(", line)
        if m and line[0].isspace():
            frames.append(m.group(1))
    for kind, n in count.most_common():
        print(f"{n:7d} {100.0 * n / max(total, 1):6.1f}%  {kind}")
    print(f"{total:7d} samples")


if __name__ == "__main__":
    main()
