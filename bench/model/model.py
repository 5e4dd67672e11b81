#!/usr/bin/env python3
# A performance model of `mimic label` (a round of blocks) and `mimic distill` (a training step), built
# from measured machine figures (measure.sh), checked against the benchmarks' per-phase timings, and
# projected to 1..1,024 H100 nodes with public figures. See bench/results/model/README.md.
"""usage:
  model.py shapes | convs                  the GEMM shapes / conv stacks the check needs (for measure.sh)
  model.py collect RAW_DIR NP              measure.sh's raw outputs -> inputs JSON on stdout
  model.py check INPUTS.json LABEL_CSV DISTILL_CSV [--out DIR] [options]   (DIR/check.md: the table)
  model.py project [--out DIR] [options]   (DIR/projection.json, label.png, distill.png; default
                                            bench/results/model)
options (the mechanisms that the label write path and the distill allreduce may change):
  --label-flushes N     file flushes per label round (2 today: one after the logits, one after the records)
  --label-records N     small collective writes of the done records per round (2 today)
  --overlap F           fraction of the gradient allreduce hidden behind the backward pass (0 today)
  --accumulate K        micro-batches per gradient allreduce (1 today)
  --x-bytes B           bytes per stored value of the transfer set's /X: 4 (--store fp32, the default),
                        2 (fp16) or 1 (uint8); the reader converts each block to float32 on the host
"""
import csv
import functools
import glob
import json
import math
import os
import re
import sys

# ----------------------------------------------------------------------------------------------------
# Architectures: the spec grammar of src/nn/spec.cpp, reduced to what the cost model needs.


class Layer:
    def __init__(self, kind, cin, cout, params=0, flops=0, units=0, spatial=1, token=""):
        self.kind, self.cin, self.cout = kind, cin, cout  # per-sample input and output sizes (floats)
        self.params, self.flops, self.units, self.spatial, self.token = params, flops, units, spatial, token


def parse_spec(spec, shape):
    """Layers of `spec` on input shape (c, h, w): kinds dense, bottleneck, conv, pool, act, dropout, flatten."""
    c, h, w = shape
    out = []
    for tok in spec.split(","):
        name, _, arg = tok.partition(":")
        n_in = c * h * w
        if name in ("dense", "bottleneck"):
            u = int(arg)
            bias = 1 if name == "dense" else 0
            out.append(Layer(name, n_in, u, n_in * u + bias * u, 2 * n_in * u, u, token=tok))
            c, h, w = 1, 1, u
        elif name == "conv":
            m = re.fullmatch(r"(\d+)x(\d+)(?:s(\d+))?(?:p(\d+))?", arg)
            f, k = int(m.group(1)), int(m.group(2))
            s = int(m.group(3) or 1)
            p = int(m.group(4)) if m.group(4) is not None else k // 2
            oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            out.append(Layer("conv", n_in, f * oh * ow, f * c * k * k + f, 2 * f * c * k * k * oh * ow, f,
                             oh * ow, tok))
            c, h, w = f, oh, ow
        elif name == "pool":
            k = int(arg)
            c, h, w = c, h // k, w // k
            out.append(Layer("pool", n_in, c * h * w, token=tok))
        elif name in ("relu", "sigmoid", "tanh"):
            out.append(Layer("act", n_in, n_in, token=tok))
        elif name == "dropout":
            out.append(Layer("dropout", n_in, n_in, token=tok))
        elif name == "flatten":
            out.append(Layer("flatten", n_in, n_in, token=tok))
        else:
            raise SystemExit(f"model.py: spec '{spec}': unknown layer '{tok}'")
    return out


def conv_prefix(spec):
    """The leading conv/pool/activation tokens of a spec (run as one measured stack), and the rest."""
    toks = spec.split(",")
    i = 0
    while i < len(toks) and toks[i].split(":")[0] in ("conv", "pool", "relu", "sigmoid", "tanh"):
        i += 1
    while i > 0 and toks[i - 1].split(":")[0] in ("relu", "sigmoid", "tanh") and \
            not any(t.startswith("conv") for t in toks[:i - 1]):
        i -= 1
    if not any(t.startswith("conv") for t in toks[:i]):
        return "", spec
    return ",".join(toks[:i]), ",".join(toks[i:])


@functools.lru_cache(maxsize=None)
def forward_flops(spec, shape):
    return sum(l.flops for l in parse_spec(spec, shape))


@functools.lru_cache(maxsize=None)
def num_params(spec, shape):
    return sum(l.params for l in parse_spec(spec, shape))


def shard_spec(spec, M):
    """Local spec of one of M model shards: the wide dense:H before the output dense gets H/M units."""
    if M == 1:
        return spec
    toks = spec.split(",")
    idx = [i for i, t in enumerate(toks) if t.split(":")[0] in ("dense", "bottleneck", "conv")]
    wide = idx[-2]
    H = int(toks[wide].split(":")[1])
    toks[wide] = "dense:%d" % math.ceil(H / M)
    return ",".join(toks)


def replicated_params(spec, shape, M):
    """Parameters before the wide layer (their gradients are summed over the M model shards)."""
    if M == 1:
        return 0
    layers = parse_spec(spec, shape)
    pidx = [i for i, l in enumerate(layers) if l.kind in ("dense", "bottleneck", "conv")]
    return sum(l.params for l in layers[:pidx[-2]])


# The cases the check runs (bench_label.sh and bench_distill.sh, section 2) --------------------------------
LABEL_MEMBERS = {  # bench_label.sh: ens-all = 2 MLP + 2 CNN members, Fashion-MNIST 1x28x28
    "mlp": "dense:1200,relu,dense:1200,relu,dense:10",
    "cnn": "conv:16x5,relu,pool:2,conv:32x5,relu,pool:2,dense:128,relu,dense:10",
}
LABEL_ENSEMBLE = ["mlp", "mlp", "cnn", "cnn"]
LABEL_BATCH = 256
FASHION = (1, 28, 28)
DISTILL_STUDENT = "dense:4096,relu,dense:10"


def distill_check_cases():
    """(R, M, global batch, spec) of bench_distill.sh section 2 at 1 and 2 ranks."""
    return [(1, 1, 128, DISTILL_STUDENT), (2, 1, 128, DISTILL_STUDENT), (2, 1, 256, DISTILL_STUDENT),
            (1, 2, 128, DISTILL_STUDENT), (1, 2, 128, "dense:8192,relu,dense:10")]


def dense_gemms(layers, b, train, first_param):
    """GEMMs of the dense layers at batch b: (ops, m, n, k) as src/nn/layers/dense.cpp calls them."""
    g = []
    for i, l in enumerate(layers):
        if l.kind not in ("dense", "bottleneck"):
            continue
        g.append(("NN", b, l.cout, l.cin))
        if train:
            g.append(("TN", l.cin, l.cout, b))  # dW = x^T dy
            if i != first_param:
                g.append(("NT", b, l.cin, l.cout))  # dx = dy W^T
    return g


def check_shapes():
    shapes = set()
    for spec in LABEL_MEMBERS.values():
        pre, _ = conv_prefix(spec)
        layers = parse_spec(spec, FASHION)
        dl = layers[len(pre.split(",")) if pre else 0:]
        shapes.update(dense_gemms(dl, LABEL_BATCH, False, -1))
    for R, M, B, spec in distill_check_cases():
        layers = parse_spec(shard_spec(spec, M), FASHION)
        first = min(i for i, l in enumerate(layers) if l.params)
        shapes.update(dense_gemms(layers, math.ceil(B / R), True, first))
    return sorted(shapes)


def check_convs():
    out = []
    for spec in LABEL_MEMBERS.values():
        pre, _ = conv_prefix(spec)
        if pre:
            out.append((pre, "%dx%dx%d" % FASHION, LABEL_BATCH))
    return out


# ----------------------------------------------------------------------------------------------------
# collect: measure.sh's raw files -> one JSON document


def best_dd(path):
    best = 0.0
    for line in open(path):
        m = re.match(r"(\d+) bytes .* copied, ([0-9.e+-]+) s", line)
        if m:
            best = max(best, int(m.group(1)) / float(m.group(2)))
    return best


def collect(raw, np_):
    np_ = int(np_)
    J = {"cores": np_, "load_start": open(os.path.join(raw, "load_start")).read().strip(),
         "load_end": open(os.path.join(raw, "load_end")).read().strip(), "gemm": {}, "optim": {},
         "conv": {}, "membw_GBps": {}, "mpi": {}, "fs": {}, "h5write": [],
         "bench_nn_clock": open(os.path.join(raw, "clock")).read().strip()}

    def per_busy(base):  # {"1": [file], "NP": [file.0, file.1, ...]}
        return {"1": [os.path.join(raw, base + ".1")],
                str(np_): sorted(glob.glob(os.path.join(raw, base + ".%d.*" % np_)))}

    for busy, files in per_busy("gemm").items():
        t = {}
        for f in files:
            for line in open(f):
                p = line.split()
                if p and p[0] == "GEMM":
                    key = "%s:%sx%sx%s" % (p[1], p[2], p[3], p[4])
                    t[key] = max(t.get(key, 0.0), float(p[5]))  # the slowest rank sets the pace
        J["gemm"][busy] = t
    for kind in ("adam", "nesterov"):
        for busy, files in per_busy("optim-" + kind).items():
            v = [float(l.split()[3]) for f in files for l in open(f) if l.startswith("OPTIM")]
            J["optim"].setdefault(busy, {})[kind] = max(v)
    for case in sorted(glob.glob(os.path.join(raw, "conv*.case"))):
        base = os.path.basename(case)[:-5]
        key = open(case).read().strip()
        for busy, files in per_busy(base).items():
            v = []
            for f in files:
                m = re.search(r"forward only ([0-9.]+) ms", open(f).read())
                v.append(float(m.group(1)) / 1e3)
            J["conv"].setdefault(busy, {})[key] = max(v)
    for busy, files in per_busy("membw").items():
        for f in files:
            for line in open(f):
                p = line.split()
                if p and p[0] == "MEMBW":
                    d = J["membw_GBps"].setdefault(busy, {})
                    d[p[1]] = min(d.get(p[1], 1e30), float(p[-1]))
    for f in glob.glob(os.path.join(raw, "mpi.*")):
        for line in open(f):
            p = line.split()
            if len(p) == 6 and p[0] == "RESULT" and p[1] != "op":
                J["mpi"].setdefault(p[3], {}).setdefault(p[1], []).append([int(p[2]), float(p[4])])
    J["fs"] = {"write_pagecache_Bps": best_dd(os.path.join(raw, "dd-none")),
               "write_fdatasync_Bps": best_dd(os.path.join(raw, "dd-fdatasync")),
               "read_Bps": best_dd(os.path.join(raw, "dd-read"))}
    for line in open(os.path.join(raw, "h5write")):
        p = line.split()
        J["h5write"].append({p[i]: float(p[i + 1]) for i in range(1, len(p), 2)})
    return J


# ----------------------------------------------------------------------------------------------------
# Machines: the measured one (inputs JSON) and a projected H100 node (public figures)


def interp_loglog(table, x):
    """Time at size x from [[size, time], ...]: log-log interpolation, linear extrapolation in size."""
    table = sorted(table)
    if x <= table[0][0]:
        return table[0][1]
    for (x0, y0), (x1, y1) in zip(table, table[1:]):
        if x <= x1:
            f = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + f * (math.log(y1) - math.log(y0)))
    (x0, y0), (x1, y1) = table[-2], table[-1]
    return y1 + (x - x1) * (y1 - y0) / (x1 - x0)


class Measured:
    """This machine, from measure.sh. `busy`: processes running at once (1, or one per core)."""

    gpu = False

    cache_bytes = 16 << 20

    def __init__(self, J, busy):
        self.J, self.busy = J, str(busy if busy == 1 else J["cores"])

    def gemm(self, ops, m, n, k):
        key = "%s:%dx%dx%d" % (ops, m, n, k)
        t = self.J["gemm"][self.busy].get(key)
        if t is None:
            raise SystemExit(f"model.py: GEMM {key} was not measured: rerun measure.sh with this model.py")
        return t

    def mem(self, nbytes):
        """Streaming nbytes: at cache bandwidth while the working set fits half the last-level cache."""
        bw = self.J["membw_GBps"][self.busy]
        return nbytes / (bw["cache" if nbytes <= self.cache_bytes else "dram"] * 1e9)

    def optim(self, kind, n):
        return n * self.J["optim"][self.busy][kind]

    def combine(self, elems):
        """The shard leader's combine over the gathered member logits: read once, double accumulation."""
        return self.mem(4.0 * elems)

    def conv_forward(self, prefix, shape, b):
        key = "%s|%dx%dx%d|%d" % (prefix, shape[0], shape[1], shape[2], LABEL_BATCH)
        return self.J["conv"][self.busy][key] * b / LABEL_BATCH

    def coll(self, op, nbytes, P):
        if P == 1:
            return 0.0
        t = self.J["mpi"].get(str(P), {}).get(op)
        if not t:
            raise SystemExit(f"model.py: {op} at {P} ranks was not measured")
        return interp_loglog(t, max(nbytes, 4))

    def read_block(self, nbytes, readers, P):
        """One block read by each of `readers` shard leaders at once (the page cache here)."""
        return nbytes / self.J["fs"]["read_Bps"]

    def decode(self, values, x_bytes):
        """The reader's conversion of a block stored as fp16 or uint8 to float32: stored bytes in, floats out."""
        return 0.0 if x_bytes == 4 else self.mem(values * (x_bytes + 4.0))

    def h5_round(self, P, block_rows, cols, flush):
        """Seconds per round of collective h5::write_rows of block_rows x cols floats per rank (+ a flush)."""
        def get(rounds):
            for r in self.J["h5write"]:
                if (r["ranks"], r["block_rows"], r["cols"], r["flush"], r["rounds"]) == \
                        (P, block_rows, cols, flush, rounds):
                    return r["seconds"]
            raise SystemExit(f"model.py: bench_h5write {P} ranks, block {block_rows} x {cols} not measured")
        return max(0.0, (get(404) - get(4)) / 400)

    def label_write_round(self, P, block_rows, cols, flushes, records):
        """One round of label's write phase: the logits, the done records, the flushes and the agree."""
        write = self.h5_round(P, block_rows, cols, 0)
        flush_big = self.h5_round(P, block_rows, cols, 1) - write
        small = self.h5_round(P, 1, 1, 0)
        flush_small = self.h5_round(P, 1, 1, 1) - small
        t = write + records * small + self.coll("allreduce", 4, P)
        return t + (min(flushes, 1) * flush_big + max(flushes - 1, 0) * flush_small)


class H100:
    """An 8-GPU H100 SXM node (one rank per GPU); every figure is public or stated as an assumption."""

    gpu = True
    FIGURES = [  # name, value, source
        ("fp32_flops", 51.6e12, "cuBLAS FP32 sgemm 4096^3 through KokkosBlas::gemm measured on an H100 "
                                "(docs/../shared toolchain notes; NVIDIA datasheet peak: 67 TFLOP/s FP32)"),
        ("hbm_Bps", 3.35e12 * 0.8, "HBM3 3.35 TB/s (NVIDIA H100 SXM datasheet), 80% reachable (assumed)"),
        ("pcie_Bps", 50e9, "PCIe Gen5 x16: 64 GB/s per direction (datasheet), 50 GB/s reached (assumed)"),
        ("nvlink_Bps", 450e9, "NVLink 4: 900 GB/s bidirectional per GPU (datasheet) = 450 GB/s per direction"),
        ("ib_Bps", 50e9, "NDR InfiniBand 400 Gb/s per GPU (DGX H100: 8 ConnectX-7) = 50 GB/s per direction"),
        ("nvlink_lat", 3e-6, "latency per NCCL/MPI step over NVLink (assumed, typical 2-5 us)"),
        ("ib_lat", 5e-6, "latency per step across nodes over InfiniBand (assumed, typical 2-5 us + software)"),
        ("launch", 5e-6, "CUDA kernel launch + sync per kernel (assumed, typical 3-10 us)"),
        ("pfs_Bps", 1e12, "parallel file system aggregate bandwidth 1 TB/s (assumed: a Lustre/GPFS of the "
                          "class of NERSC Perlmutter scratch, 5 TB/s peak, shared with other jobs)"),
        ("node_fs_Bps", 25e9, "file-system bandwidth of one node (assumed: 2 x 200 Gb/s storage links)"),
        ("fsync_s", 5e-3, "fsync (MPI_File_sync) on a parallel file system (assumed: a few ms)"),
        ("gpu_mem_B", 80e9, "HBM3 capacity per GPU (datasheet: 80 GB)"),
        ("host_copy_Bps", 20e9, "host memcpy per rank into the staging mirror (assumed)"),
        ("combine_s", 3e-9, "label's combine on the host, per member-logit (assumed: a scalar double loop; "
                            "this machine's 1-rank reduce phase takes about that)"),
    ]
    GPUS = 8

    def __init__(self, nodes, **over):
        for name, v, _ in self.FIGURES:
            setattr(self, name, over.get(name, v))
        self.nodes = nodes
        self.sms = 132

    def gemm(self, ops, m, n, k):
        flops = 2.0 * m * n * k
        # tiles of 64x64 (split-K when k is long) against 132 SMs: small GEMMs do not fill the GPU
        tiles = math.ceil(m / 64) * math.ceil(n / 64) * max(1, min(k // 512, 8))
        util = min(1.0, tiles / self.sms)
        return max(flops / (self.fp32_flops * util), 4.0 * (m * k + k * n + m * n) / self.hbm_Bps) + self.launch

    def mem(self, nbytes):
        return nbytes / self.hbm_Bps + self.launch

    def optim(self, kind, n):
        return n * (28 if kind.startswith("adam") else 20) / self.hbm_Bps + self.launch

    def combine(self, elems):
        return elems * self.combine_s

    def conv_forward(self, prefix, shape, b):
        layers = parse_spec(prefix, shape)
        t = 0.0
        for l in layers:
            if l.kind == "conv":  # implicit GEMM: [F] x [C k k] x [b * pixels]
                ck = l.flops // (2 * l.units * l.spatial)
                t += self.gemm("NN", l.units, b * l.spatial, ck)
            else:
                t += self.mem(8.0 * b * l.cin)
        return t

    def coll(self, op, nbytes, P):
        """Hierarchical alpha-beta: NVLink inside a node of 8 GPUs, one NIC per GPU between nodes."""
        if P <= 1:
            return 0.0
        g = min(P, self.GPUS)
        N = max(1, P // self.GPUS)
        lat = 2 * (math.log2(g) * self.nvlink_lat + math.log2(N) * self.ib_lat)
        if op == "allreduce":  # reduce-scatter + allgather in the node, allreduce of n/g across nodes
            bw = 2 * (g - 1) / g * nbytes / self.nvlink_Bps + 2 * (N - 1) / N * nbytes / g / self.ib_Bps
        elif op in ("gatherv", "allgather"):  # nbytes per rank, P contributions to the root (or all)
            bw = (P - 1) * nbytes / (self.ib_Bps if N > 1 else self.nvlink_Bps)
        else:  # bcast, pipelined
            bw = nbytes / (self.ib_Bps if N > 1 else self.nvlink_Bps)
        return lat / 2 + bw

    def read_block(self, nbytes, readers, P):
        """One block read by each of `readers` shard leaders at once, spread over the nodes of P ranks."""
        nodes = max(1, P // self.GPUS)
        per_reader = min(self.node_fs_Bps / max(1.0, readers / nodes), self.pfs_Bps / readers)
        return nbytes / per_reader

    def decode(self, values, x_bytes):
        """The reader's conversion of a block stored as fp16 or uint8 to float32, on the host."""
        return 0.0 if x_bytes == 4 else values * (x_bytes + 4.0) / self.host_copy_Bps

    def label_write_round(self, P, block_rows, cols, flushes, records, writers=None):
        nodes = max(1, P // self.GPUS)
        nbytes = block_rows * cols * 4 * min(P, writers or P) / nodes  # per node per round
        per_call = self.coll("allreduce", 4, P) + 1e-3  # a collective write: sync + server round trip
        return nbytes / min(self.node_fs_Bps, self.pfs_Bps / nodes) + (1 + records) * per_call + \
            flushes * self.fsync_s


# ----------------------------------------------------------------------------------------------------
# Label: one round = every shard's block read, every group's members, the gather and combine, the write


def assign_lpt(costs, groups):
    order = sorted(range(len(costs)), key=lambda i: -costs[i])
    load, binning = [0.0] * groups, [0] * len(costs)
    for i in order:
        g = load.index(min(load))
        binning[i] = g
        load[g] += costs[i]
    return binning


def member_forward(mach, spec, shape, b, copy_rows=True):
    """Seconds of one member's forward pass over b rows, with label.cpp's copies: the rows into the host
    mirror and to the device (once per member and batch, as compute_block does; copy_rows=False: not
    counted, as if copied once per block), the logits back to the host."""
    pre, _ = conv_prefix(spec)
    layers = parse_spec(spec, shape)
    t = 0.0
    if pre:
        t += mach.conv_forward(pre, shape, b)
        layers = layers[len(pre.split(",")):]
    for l in layers:
        if l.kind in ("dense", "bottleneck"):
            t += mach.gemm("NN", b, l.cout, l.cin) + mach.mem(4.0 * b * l.cout)  # bias broadcast + GEMM
        elif l.kind != "flatten":
            t += mach.mem(8.0 * b * l.cin)
    n_in, n_out = shape[0] * shape[1] * shape[2], layers[-1].cout if layers else 0
    rows = 4.0 * b * n_in if copy_rows else 0.0
    if mach.gpu:
        t += rows / mach.host_copy_Bps + (rows + 4.0 * b * n_out) / mach.pcie_Bps + 2 * mach.launch
    else:  # host: memcpy into the mirror (deep_copy to the same space is a no-op) and the logits out
        t += mach.mem(rows + 8.0 * b * n_out)
    return t


def predict_label(mach, members, shape, N, block_rows, batch, G, S, C=10, flushes=2, records=2,
                  per_member_copy=True, x_bytes=4):
    """Phase times (s) of a label run: dict read, compute, reduce, write, loop, rounds."""
    P = G * S
    D = shape[0] * shape[1] * shape[2]
    flops = [forward_flops(s, shape) for s in members]
    binning = assign_lpt(flops, G)
    groups = [[members[i] for i in range(len(members)) if binning[i] == g] for g in range(G)]
    per_batch = {s: member_forward(mach, s, shape, batch, per_member_copy) for s in set(members)}
    t_row = [sum(per_batch[s] for s in grp) / batch for grp in groups]
    blocks = [min(block_rows, N - i * block_rows) for i in range(math.ceil(N / block_rows))]
    rounds = math.ceil(len(blocks) / S)
    ph = dict(read=0.0, compute=0.0, reduce=0.0, write=0.0)
    most = max(len(g) for g in groups)
    # full rounds are identical: cost one and multiply; the last round separately
    def round_cost(ns):
        n = max(ns)
        rd = mach.read_block(n * D * float(x_bytes), len(ns), P) + mach.decode(n * D, x_bytes)
        if G > 1:
            rd += mach.coll("bcast", n * D * 4.0, G)
        cp = max(t_row) * n
        red = mach.coll("gatherv", most * n * C * 4.0, G) if G > 1 else 0.0
        red += mach.combine(len(members) * n * C)  # the leader's combine over the gathered logits
        if mach.gpu:
            wr = mach.label_write_round(P, n, C, flushes, records, writers=S)
        else:
            wr = mach.label_write_round(P, block_rows, C, flushes, records)
        if not per_member_copy:
            cp += (n * D * 4.0 / mach.pcie_Bps) if mach.gpu else 0.0
        return rd, cp, red, wr

    full = round_cost([block_rows] * min(S, len(blocks)))
    last_ns = blocks[(rounds - 1) * S:]
    last = round_cost(last_ns)
    for i, k in enumerate(("read", "compute", "reduce", "write")):
        ph[k] = full[i] * (rounds - 1) + last[i]
    ph["loop"] = sum(ph[k] for k in ("read", "compute", "reduce", "write"))
    ph["rounds"] = rounds
    # load: every rank reads its group's member files (S copies of the ensemble over the whole grid)
    group_bytes = max(sum(num_params(s, shape) * 4.0 for s in grp) for grp in groups)
    ph["load"] = mach.read_block(group_bytes, P, P)
    return ph


# ----------------------------------------------------------------------------------------------------
# Distill: one step = the replica's rows, forward (+ logits allreduce over M), loss, backward (+ the
# replicated prefix's gradient allreduce over M), the gradient allreduce over R, the optimizer


def layer_times(mach, layers, b, train):
    """(forward, backward) seconds of a layer list at batch b on one rank."""
    fwd = bwd = 0.0
    first = min(i for i, l in enumerate(layers) if l.params)
    for i, l in enumerate(layers):
        if l.kind in ("dense", "bottleneck"):
            fwd += mach.gemm("NN", b, l.cout, l.cin) + mach.mem(4.0 * b * l.cout)
            if train:
                bwd += mach.gemm("TN", l.cin, l.cout, b) + mach.mem(4.0 * b * l.cout)  # dW, db
                if i != first:
                    bwd += mach.gemm("NT", b, l.cin, l.cout)
        elif l.kind == "conv":
            ck = l.flops // (2 * l.units * l.spatial)
            f = mach.gemm("NN", l.units, b * l.spatial, ck) + mach.mem(8.0 * b * ck * l.spatial)  # + im2col
            fwd += f
            bwd += 2 * f if i != first else f
        elif l.kind in ("act", "dropout", "pool"):
            fwd += mach.mem(8.0 * b * l.cin)
            bwd += mach.mem(12.0 * b * l.cin)
    return fwd, bwd


def predict_distill(mach, spec, shape, C, N, batch, R, M, optimizer="adam", block_rows=8192, overlap=0.0,
                    accumulate=1, whole_blocks=True, x_bytes=4):
    """Phase times (s) of one epoch of distill: read, forward, loss, backward, allreduce, optimizer.
    whole_blocks: every rank reads whole blocks and keeps its rows (BlockStreamer today); False: each rank
    reads only its replica's rows."""
    D = shape[0] * shape[1] * shape[2]
    b = math.ceil(batch / R)
    local = shard_spec(spec, M)
    layers = parse_spec(local, shape)
    P_local = sum(l.params for l in layers)
    fwd, bwd = layer_times(mach, layers, b, True)
    if M > 1:
        fwd += mach.coll("allreduce", b * C * 4.0, M)
        bwd += mach.coll("allreduce", replicated_params(spec, shape, M) * 4.0, M)
    steps = sum(math.ceil(min(block_rows, N - i) / batch) for i in range(0, N, block_rows))
    scale = N / batch  # compute scales with rows; per-step costs with steps
    copy = 4.0 * b * (D + C)
    read = mach.mem(copy) if not mach.gpu else copy / mach.pcie_Bps + mach.launch
    ar = mach.coll("allreduce", P_local * 4.0, R) + mach.coll("allreduce", 24, R) if R > 1 else 0.0
    if mach.gpu:  # every rank reads whole blocks (then takes its rows): R x M copies of the data per epoch
        rows = batch if whole_blocks else b
        io = mach.read_block(rows * (x_bytes * D + 4.0 * C), R * M, R * M) + mach.decode(rows * D, x_bytes)
        read += max(0.0, io - (fwd + bwd))  # what the read-ahead cannot hide
    first = 0.0
    if not mach.gpu:  # the first block is waited for; the read-ahead of the others takes a core's time when
        # every core runs a rank
        blocks = math.ceil(N / block_rows)
        rows = min(block_rows, N)
        t_block = mach.read_block(rows * (x_bytes * D + 4.0 * C), R * M, R * M) + mach.decode(rows * D, x_bytes)
        first = t_block * (1 + (blocks - 1) * (mach.busy != "1"))
    ph = dict(read=read * scale + first, forward=fwd * scale, loss=mach.mem(12.0 * b * C) * scale,
              backward=bwd * scale, allreduce=ar * (1 - overlap) * steps / accumulate,
              optimizer=mach.optim(optimizer, P_local) * steps / accumulate)
    ph["loop"] = sum(ph.values())
    ph["steps"] = steps
    ph["step"] = ph["loop"] / steps
    ph["params_local"] = P_local
    return ph


# ----------------------------------------------------------------------------------------------------
# check: predictions against the per-phase timings CSVs of bench_label.sh / bench_distill.sh section 2


# Phases of the timings CSVs that lie outside the modelled loop (every other phase is inside it, so a
# phase added to the loop later, e.g. a separate flush, is still counted as measured).
LABEL_OUTSIDE_LOOP = ("load", "total")
# shard-allreduce is timed inside forward and backward (the model group's share of them): not added again.
DISTILL_OUTSIDE_LOOP = ("save", "checkpoint", "validate", "total", "shard-allreduce")


def read_csv(path):
    runs = {}
    for row in csv.DictReader(open(path)):
        key = tuple((k, row[k]) for k in row if k not in ("phase", "min_s", "avg_s", "max_s"))
        runs.setdefault(key, {})[row["phase"]] = float(row["avg_s"])
    return [(dict(k), v) for k, v in runs.items()]


def check(args, opts):
    J = json.load(open(args[0]))
    rows = []
    for key, ph in read_csv(args[1]):
        P, G, S = int(key["ranks"]), int(key["groups"]), int(key["shards"])
        mach = Measured(J, 1 if P == 1 else J["cores"])
        members = [LABEL_MEMBERS[m] for m in LABEL_ENSEMBLE]
        if int(key["members"]) != len(members):
            continue
        pr = predict_label(mach, members, FASHION, int(key["rows"]), int(key["block_rows"]), LABEL_BATCH, G, S,
                           flushes=opts["label_flushes"], records=opts["label_records"])
        meas = {k: ph.get(k, 0.0) for k in ("read", "compute", "reduce", "write")}
        meas["loop"] = sum(v for k, v in ph.items() if k not in LABEL_OUTSIDE_LOOP)
        rows.append(("label", "%d rank%s, G=%d x S=%d" % (P, "s" if P > 1 else "", G, S), meas, pr,
                     ("read", "compute", "reduce", "write"), ph.get("total", 0)))
    for key, ph in read_csv(args[2]):
        P, R, M, B = int(key["ranks"]), int(key["replicas"]), int(key["model_shards"]), int(key["batch"])
        mach = Measured(J, 1 if P == 1 else J["cores"])
        spec = [s for (r, m, b, s) in distill_check_cases() if (r, m, b) == (R, M, B) and
                num_params(s, FASHION) == int(key["params"])]
        if not spec:
            continue
        pr = predict_distill(mach, spec[0], FASHION, 10, int(key["rows"]), B, R, M, overlap=opts["overlap"],
                             accumulate=int(key.get("accumulate", opts["accumulate"])))
        names = ("read", "forward", "loss", "backward", "allreduce", "optimizer")
        meas = {k: ph.get(k, 0.0) for k in names}
        meas["loop"] = sum(v for k, v in ph.items() if k not in DISTILL_OUTSIDE_LOOP)
        label = "%d rank%s, R=%d x M=%d, batch %d, %s" % (P, "s" if P > 1 else "", R, M, B, spec[0].split(",")[0])
        rows.append(("distill", label, meas, pr, names, ph.get("total", 0)))
    out = []
    out.append("| stage | run | measured loop (s) | predicted (s) | error | phases measured / predicted (s) | "
               "measured total (s) |")
    out.append("|---|---|---:|---:|---:|---|---:|")
    worst = 0.0
    for stage, label, meas, pr, names, total in rows:
        err = (pr["loop"] - meas["loop"]) / meas["loop"] * 100
        worst = max(worst, abs(err))
        phases = ", ".join("%s %.3f / %.3f" % (k, meas[k], pr[k]) for k in names)
        out.append("| %s | %s | %.3f | %.3f | %+.1f%% | %s | %.3f |" % (stage, label, meas["loop"], pr["loop"],
                                                                       err, phases, total))
    out.append("")
    out.append("largest error %.1f%% (target 15%%); inputs: %s (load at start %s, at end %s; bench_nn on the "
               "%s clock)" % (worst, args[0], J["load_start"], J["load_end"], J.get("bench_nn_clock", "wall")))
    print("\n".join(out))
    if "--out" in args:
        with open(os.path.join(args[args.index("--out") + 1], "check.md"), "w") as f:
            f.write("\n".join(out) + "\n")
    return 0 if worst <= 15 else 1


# ----------------------------------------------------------------------------------------------------
# project: H100 nodes, strong and weak scaling, the best grid at each size

NODES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
PROJ_LABEL = dict(members=["dense:1200,relu,dense:1200,relu,dense:10"] * 500 +
                  ["conv:16x5,relu,pool:2,conv:32x5,relu,pool:2,dense:128,relu,dense:10"] * 500,
                  shape=FASHION, rows=10**8, block_rows=8192, batch=8192)
PROJ_STUDENTS = {
    "wide": ("dense:400000,relu,dense:10", FASHION),
    "bottleneck": ("bottleneck:1200,dense:400000,relu,dense:10", FASHION),
    "cnn": ("conv:64x3,relu,pool:2,conv:128x3,relu,pool:2,bottleneck:1200,dense:30000,relu,dense:10",
            (3, 32, 32)),
}
DISTILL_ROWS, DISTILL_BATCH, WEAK_BATCH_PER_NODE = 10**8, 8192, 1024
WEAK_ROWS_PER_NODE = 10**6


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def best_label(nodes, rows, opts, per_member_copy=True):
    P = 8 * nodes
    mach = H100(nodes)
    m = PROJ_LABEL["members"]
    member_bytes = [num_params(s, PROJ_LABEL["shape"]) * 4 * 1.25 for s in m]
    best = None
    for G in divisors(P):
        if G > len(m):
            break
        binning = assign_lpt([forward_flops(s, PROJ_LABEL["shape"]) for s in m], G)
        heaviest = max(sum(b for b, g in zip(member_bytes, binning) if g == k) for k in range(G))
        if heaviest > 0.5 * mach.gpu_mem_B:
            continue
        ph = predict_label(mach, m, PROJ_LABEL["shape"], rows, PROJ_LABEL["block_rows"], PROJ_LABEL["batch"],
                           G, P // G, flushes=opts["label_flushes"], records=opts["label_records"],
                           per_member_copy=per_member_copy, x_bytes=opts["x_bytes"])
        if best is None or ph["loop"] + ph["load"] < best[1]["loop"] + best[1]["load"]:
            best = ((G, P // G), ph)
    return best


def best_distill(nodes, spec, shape, batch, opts, whole_blocks=True):
    P = 8 * nodes
    mach = H100(nodes)
    layers = parse_spec(spec, shape)
    H = [l for l in layers if l.kind in ("dense", "bottleneck")][-2].cout
    best = None
    for M in divisors(P):
        R = P // M
        if M > H or R > batch // 8:
            continue
        local = num_params(shard_spec(spec, M), shape)
        if local * 16 > 0.7 * mach.gpu_mem_B:
            continue
        # --block-rows at least the batch: a step never spans two blocks (BlockStreamer caps it at one)
        ph = predict_distill(mach, spec, shape, 10, batch * 20, batch, R, M, block_rows=max(8192, batch),
                             overlap=opts["overlap"], accumulate=opts["accumulate"], whole_blocks=whole_blocks,
                             x_bytes=opts["x_bytes"])
        if best is None or ph["step"] < best[1]["step"]:
            best = ((R, M), ph)
    return best


def project(args, opts):
    out = "bench/results/model"
    if "--out" in args:
        out = args[args.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    res = {"figures": [(n, v, s) for n, v, s in H100.FIGURES], "label": {}, "distill": {}}
    lines = []
    for mode in ("strong", "weak"):
        for copy in (True, False):
            key = "%s%s" % (mode, "" if copy else "-copy-once")
            res["label"][key] = []
            for n in NODES:
                rows = PROJ_LABEL["rows"] if mode == "strong" else WEAK_ROWS_PER_NODE * n
                (G, S), ph = best_label(n, rows, opts, copy)
                res["label"][key].append(dict(nodes=n, rows=rows, G=G, S=S, seconds=ph["loop"] + ph["load"],
                                              **{k: ph[k] for k in ("load", "read", "compute", "reduce",
                                                                    "write")}))
    for name, (spec, shape) in PROJ_STUDENTS.items():
        for mode in ("strong", "weak"):
            for whole in (True, False):
                key = "%s-%s%s" % (name, mode, "" if whole else "-own-rows")
                res["distill"][key] = []
                for n in NODES:
                    B = DISTILL_BATCH if mode == "strong" else WEAK_BATCH_PER_NODE * n
                    got = best_distill(n, spec, shape, B, opts, whole)
                    if got is None:
                        continue
                    (R, M), ph = got
                    res["distill"][key].append(dict(nodes=n, batch=B, R=R, M=M, step_s=ph["step"],
                                                    epoch_s=ph["step"] * DISTILL_ROWS / B,
                                                    **{k: ph[k] / ph["steps"] for k in (
                                                        "read", "forward", "loss", "backward", "allreduce",
                                                        "optimizer")}))
    json.dump(res, open(os.path.join(out, "projection.json"), "w"), indent=1)
    print(format_projection(res))
    plot(res, out)
    return 0


def format_projection(res):
    L = []
    for key, rows in res["label"].items():
        base = rows[0]
        L.append("label %s (1,000 members, block 8192, batch 8192; per-member copy of the rows to the "
                 "device %s):" % (key.split("-")[0], "as the code does" if "copy" not in key else "once per block"))
        L.append("| nodes | rows | G x S | time (s) | efficiency | load | read | compute | reduce | write |")
        L.append("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            eff = (base["seconds"] / r["seconds"] / r["nodes"]) if key.startswith("strong") else \
                (base["seconds"] / r["seconds"])
            L.append("| %d | %.3g | %d x %d | %.1f | %.0f%% | %.2f | %.2f | %.1f | %.2f | %.2f |" % (
                r["nodes"], r["rows"], r["G"], r["S"], r["seconds"], 100 * eff, r["load"], r["read"], r["compute"],
                r["reduce"], r["write"]))
        L.append("")
    for key, rows in res["distill"].items():
        if not rows:
            continue
        name, mode = key.split("-")[:2]
        L.append("distill %s, %s scaling (%s; %s; %s): per step (ms)" % (
            name, mode, PROJ_STUDENTS[name][0],
            "global batch %d" % DISTILL_BATCH if mode == "strong" else "batch %d per node" % WEAK_BATCH_PER_NODE,
            "each rank reads only its rows" if key.endswith("own-rows") else "every rank reads whole blocks, as now"))
        L.append("| nodes | batch | R x M | step (ms) | efficiency | read | forward | backward | allreduce | optimizer |")
        L.append("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        base = rows[0]
        for r in rows:
            eff = base["step_s"] / r["step_s"] / r["nodes"] if mode == "strong" else base["step_s"] / r["step_s"]
            L.append("| %d | %d | %d x %d | %.2f | %.0f%% | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
                r["nodes"], r["batch"], r["R"], r["M"], 1e3 * r["step_s"], 100 * eff, 1e3 * r["read"], 1e3 * r["forward"],
                1e3 * r["backward"], 1e3 * r["allreduce"], 1e3 * r["optimizer"]))
        L.append("")
    return "\n".join(L)


def finish_figure(fig, ax, path):
    """Log-log axes over H100 nodes, legend and grid on every panel, then write the PNG."""
    for a in ax:
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel("H100 nodes (8 GPUs each)")
        a.legend(fontsize=8)
        a.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot(res, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, rows in res["label"].items():
        n = [r["nodes"] for r in rows]
        t = [r["seconds"] for r in rows]
        a = ax[0] if key.startswith("strong") else ax[1]
        a.plot(n, t, "o-", label=("rows copied per member (as now)" if "copy" not in key else
                                   "rows copied once per block"))
        for r in rows[::2]:
            a.annotate("%dx%d" % (r["G"], r["S"]), (r["nodes"], r["seconds"]), fontsize=7)
    ax[0].set_title("label, strong: 1,000 members, 1e8 rows")
    ax[1].set_title("label, weak: %.0e rows per node" % WEAK_ROWS_PER_NODE)
    for a in ax:
        a.set_ylabel("seconds (annotated: best G x S)")
    finish_figure(fig, ax, os.path.join(out, "label.png"))
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, rows in res["distill"].items():
        if not rows:
            continue
        name, mode = key.split("-")[:2]
        a = ax[0] if mode == "strong" else ax[1]
        n = [r["nodes"] for r in rows]
        y = [r["epoch_s"] if mode == "strong" else 1e3 * r["step_s"] for r in rows]
        own = key.endswith("own-rows")
        a.plot(n, y, "o--" if own else "o-", label=name + (" (own rows only)" if own else " (whole blocks, as now)"))
        for r, v in list(zip(rows, y))[::2]:
            a.annotate("%dx%d" % (r["R"], r["M"]), (r["nodes"], v), fontsize=7)
    ax[0].set_title("distill, strong: epoch of 1e8 rows, batch %d" % DISTILL_BATCH)
    ax[0].set_ylabel("seconds per epoch (annotated: best R x M)")
    ax[1].set_title("distill, weak: batch %d per node" % WEAK_BATCH_PER_NODE)
    ax[1].set_ylabel("ms per step (annotated: best R x M)")
    finish_figure(fig, ax, os.path.join(out, "distill.png"))


# ----------------------------------------------------------------------------------------------------


def main(argv):
    opts = dict(label_flushes=2, label_records=2, overlap=0.0, accumulate=1, x_bytes=4)
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--label-flushes", "--label-records", "--overlap", "--accumulate", "--x-bytes"):
            k = a[2:].replace("-", "_")
            opts[k] = float(argv[i + 1]) if k == "overlap" else int(argv[i + 1])
            i += 2
        else:
            rest.append(a)
            i += 1
    if not rest:
        print(__doc__)
        return 2
    cmd, args = rest[0], rest[1:]
    if cmd == "shapes":
        print(",".join("%s:%dx%dx%d" % s for s in check_shapes()))
    elif cmd == "convs":
        for pre, inp, b in check_convs():
            print("%s|%s|%d" % (pre, inp, b))
    elif cmd == "collect":
        json.dump(collect(args[0], args[1]), sys.stdout, indent=1)
    elif cmd == "check":
        return check(args, opts)
    elif cmd == "project":
        return project(args, opts)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
