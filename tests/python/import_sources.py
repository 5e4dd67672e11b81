#!/usr/bin/env python3
"""Synthetic data sets in the formats `mimic data import` reads, all holding the same pixels and labels,
and the check of an imported directory against those pixels.

Usage: import_sources.py make DIR            writes DIR/ref.npz (the truth) and one copy per format
       import_sources.py check OUT_DIR DIR VAL [flat]   checks OUT_DIR/{train,val,test}.h5 against the truth
       import_sources.py pixels OUT_DIR DIR VAL NORM    checks a --store uint8 import's pixels and statistics
       import_sources.py unlabelled T.h5 TRAIN.h5 DIR   checks an unlabelled transfer file
       import_sources.py bad CASE DIR         writes the sources of one refusal case of cli/import_refusals.sh
"""
import gzip
import os
import struct
import sys

import h5py
import numpy as np
from PIL import Image

C, H, W = 3, 32, 32
N_TRAIN, N_TEST, N_UNLAB, CLASSES = 64, 24, 30, 10


def truth(seed=5):
    rng = np.random.default_rng(seed)
    xs = rng.integers(0, 256, size=(N_TRAIN + N_TEST + N_UNLAB, C, H, W), dtype=np.uint8)
    ys = np.concatenate([np.arange(N_TRAIN) % CLASSES, rng.integers(0, CLASSES, N_TEST)]).astype(np.int64)
    rng.shuffle(ys[:N_TRAIN])
    return xs[:N_TRAIN], ys[:N_TRAIN], xs[N_TRAIN:N_TRAIN + N_TEST], ys[N_TRAIN:], xs[N_TRAIN + N_TEST:]


def write_idx(path, a):
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape))
        f.write(np.ascontiguousarray(a, dtype=np.uint8).tobytes())


def write_cifar(path, x, y, coarse=None):
    recs = []
    for i in range(len(y)):
        head = bytes([int(y[i])]) if coarse is None else bytes([int(coarse[i]), int(y[i])])
        recs.append(head + x[i].tobytes())  # R, G, B planes of 32x32
    with open(path, "wb") as f:
        f.write(b"".join(recs))


def write_folder(root, x, y, ext):
    for i, (img, lab) in enumerate(zip(x, y)):
        d = os.path.join(root, "class%02d" % lab)
        os.makedirs(d, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(os.path.join(d, "img%04d%s" % (i, ext)), quality=95)


def folder_order(root, n):
    """Row order of an image folder: sorted classes, sorted files; returns the original indices."""
    order = []
    for cls in sorted(os.listdir(root)):
        for f in sorted(os.listdir(os.path.join(root, cls))):
            order.append(int(f[3:7]))
    assert len(order) == n
    return np.array(order)


def make(d):
    tx, ty, sx, sy, ux = truth()
    os.makedirs(d, exist_ok=True)
    np.savez(f"{d}/ref.npz", tx=tx, ty=ty, sx=sx, sy=sy, ux=ux)
    write_idx(f"{d}/train-images.idx", tx)
    with gzip.open(f"{d}/train-labels.idx.gz", "wb") as f:
        f.write(struct.pack(">HBBI", 0, 0x08, 1, len(ty)) + ty.astype(np.uint8).tobytes())
    write_idx(f"{d}/test-images.idx", sx)
    write_idx(f"{d}/test-labels.idx", sy.astype(np.uint8))
    nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    np.save(f"{d}/train_x.npy", nhwc(tx))
    np.save(f"{d}/train_y.npy", ty)
    with open(f"{d}/test_x.npy", "wb") as f:  # .npy format versions 2 and 3 (4-byte header length)
        np.lib.format.write_array(f, nhwc(sx), version=(2, 0))
    with open(f"{d}/unlab.npy", "wb") as f:
        np.lib.format.write_array(f, nhwc(ux), version=(3, 0))
    np.save(f"{d}/test_y.npy", sy.astype(np.int32))
    # Float rows (big-endian float64, N x D flat) with pixel values / 255: the float path and byte swaps.
    np.save(f"{d}/train_xf.npy", (tx.reshape(N_TRAIN, -1) / 255.0).astype(">f8"))
    np.save(f"{d}/test_xf.npy", (sx.reshape(N_TEST, -1) / 255.0).astype(">f8"))
    np.savez(f"{d}/data.npz", x_train=nhwc(tx), y_train=ty, x_test=nhwc(sx), y_test=sy)
    np.savez_compressed(f"{d}/data_c.npz", x_train=nhwc(tx), y_train=ty, x_test=nhwc(sx), y_test=sy)
    # Every element type, holding the same values (pixels // 2, which int8 holds): each imports to the
    # float32 import's fingerprints (float16 converted exactly; integers other than uint8 are not scaled).
    # float32 is N, C, H, W; the others N, H, W, C, so that each element size's transpose is checked.
    for dt in ("float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint16", "<u4", ">i4"):
        name = dt.replace("<", "le_").replace(">", "be_")
        order = (lambda a: a) if dt == "float32" else nhwc
        np.save(f"{d}/dt_{name}_train.npy", order((tx // 2).astype(dt)))
        np.save(f"{d}/dt_{name}_test.npy", order((sx // 2).astype(dt)))
    with h5py.File(f"{d}/data.h5", "w") as f:
        f["images/train"] = tx  # NCHW
        f["labels/train"] = ty.astype(np.uint8)
        f["images/test"] = sx
        f["labels/test"] = sy
        f["half/train"] = (tx // 2).astype(np.float16)  # h5py's float16: an IEEE half dataset
        f["half/test"] = (sx // 2).astype(">f2")
    write_cifar(f"{d}/data_batch_1.bin", tx[:40], ty[:40])
    write_cifar(f"{d}/data_batch_2.bin", tx[40:], ty[40:])
    write_cifar(f"{d}/test_batch.bin", sx, sy)
    write_cifar(f"{d}/train100.bin", tx, ty, coarse=(ty * 7) % 20)
    write_cifar(f"{d}/test100.bin", sx, sy, coarse=(sy * 3) % 20)
    # Image folders: rows come in sorted class / file order. Each folder's pixels, as PIL decodes them, and
    # labels in that order are written as IDX files too, the reference its import must equal.
    for fmt in ("png", "jpg"):
        for split, (x, y) in (("train", (tx, ty)), ("test", (sx, sy))):
            root = f"{d}/{fmt}/{split}"
            write_folder(root, x, y, "." + fmt)
            files = folder_files(root)
            order = np.array([int(os.path.basename(p)[3:7]) for p in files])
            dec = np.stack([np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1) for p in files])
            if fmt == "png":
                assert np.array_equal(dec, x[order]), "PNG round trip"
            write_idx(f"{d}/{fmt}_{split}_images.idx", dec)
            write_idx(f"{d}/{fmt}_{split}_labels.idx", y[order].astype(np.uint8))


def folder_files(root):
    return [os.path.join(root, c, f) for c in sorted(os.listdir(root)) for f in sorted(os.listdir(os.path.join(root, c)))]


def check(out, d, val, flat=False):
    """Raw values recovered from the files equal the source pixels in C, H, W order; labels are equal.
    flat: the float rows of train_xf.npy (pixels / 255, shape (1, 1, D))."""
    ref = np.load(f"{d}/ref.npz")
    shape, div, tol = ((1, 1, C * H * W), 255.0, 1e-6) if flat else ((C, H, W), 1.0, 1e-3)
    n = N_TRAIN - val
    splits = [("train", ref["tx"][:n], ref["ty"][:n]), ("val", ref["tx"][n:], ref["ty"][n:]), ("test", ref["sx"], ref["sy"])]
    for split, x, y in splits if val else splits[::2]:
        with h5py.File(f"{out}/{split}.h5", "r") as f:
            X, m, s = f["X"][...], f["norm/mean"][...], f["norm/std"][...]
            raw = (X.astype(np.float64) * s + m) / float(f.attrs["norm_scale"])
            assert tuple(f.attrs["shape"]) == shape, f.attrs["shape"]
            assert np.abs(raw - x.reshape(len(x), -1) / div).max() < tol, f"{split}: pixels not recovered"
            assert np.array_equal(f["y"][...], y), f"{split}: labels differ"
            assert int(f.attrs["num_classes"]) == CLASSES
        print(f"{out}/{split}.h5: {len(y)} rows equal the source pixels (C, H, W) and labels")


def pixels(out, d, val, norm):
    """A --store uint8 import of the 8-bit truth: /X holds the source pixels in C, H, W order, unchanged, and
    /norm/mean, /norm/std are the statistics of docs/formats.md to the bit: from the integer sums of the
    training pixels, mean = S * scale / n and std = sqrt(Q * scale * scale / n - mean * mean) in double
    (per feature, over each channel's values for per-channel, or over every value for global; std 1 where the
    variance is at most 1e-8, except global), as float32."""
    ref = np.load(f"{d}/ref.npz")
    n = N_TRAIN - val
    train = ref["tx"][:n].reshape(n, -1).astype(np.int64)
    scale = 1.0 / 255.0
    if norm == "none":
        mean, std = np.zeros(train.shape[1], np.float32), np.ones(train.shape[1], np.float32)
    elif norm == "global":
        cnt = float(train.size)
        m = float(train.sum()) * scale / cnt
        var = float((train * train).sum()) * scale * scale / cnt - m * m
        mean = np.full(train.shape[1], m, dtype=np.float32)
        std = np.full(train.shape[1], np.sqrt(max(var, 1e-12)), dtype=np.float32)
    elif norm == "per-channel":
        c = ref["tx"].shape[1]  # the truth is N, C, H, W
        hw = train.shape[1] // c
        mean, std = np.zeros(train.shape[1], np.float32), np.zeros(train.shape[1], np.float32)
        for k in range(c):
            v = train[:, k * hw:(k + 1) * hw]  # C, H, W order in the file: channel k's features
            m = float(v.sum()) * scale / float(v.size)
            var = float((v * v).sum()) * scale * scale / float(v.size) - m * m
            mean[k * hw:(k + 1) * hw] = np.float32(m)
            std[k * hw:(k + 1) * hw] = np.float32(np.sqrt(var) if var > 1e-8 else 1.0)
    else:
        m = train.sum(0).astype(np.float64) * scale / float(n)
        var = (train * train).sum(0).astype(np.float64) * scale * scale / float(n) - m * m
        mean, std = m.astype(np.float32), np.where(var > 1e-8, np.sqrt(var), 1.0).astype(np.float32)
    splits = [("train", ref["tx"][:n]), ("val", ref["tx"][n:]), ("test", ref["sx"])]
    for split, x in splits if val else splits[::2]:
        with h5py.File(f"{out}/{split}.h5", "r") as f:
            X = f["X"][...]
            assert X.dtype == np.uint8 and f.attrs["store"].decode() == "uint8", f"{split}: not a uint8 store"
            assert np.array_equal(X, x.reshape(len(x), -1)), f"{split}: stored pixels differ from the source"
            assert float(f.attrs["norm_scale"]) == scale
            assert np.array_equal(f["norm/mean"][...].view(np.uint32), mean.view(np.uint32)), f"{split}: mean"
            assert np.array_equal(f["norm/std"][...].view(np.uint32), std.view(np.uint32)), f"{split}: std"
        print(f"{out}/{split}.h5: {len(x)} rows stored as the source pixels; {norm} statistics exact")


def unlabelled(t, train, d):
    ux = np.load(f"{d}/ref.npz")["ux"]
    with h5py.File(t, "r") as f, h5py.File(train, "r") as g:
        assert "y" not in f, "an unlabelled file has no /y"
        assert f.attrs["norm_from"] == g.attrs["fingerprint"], "norm_from names the training file"
        for k in ("norm/mean", "norm/std"):
            assert np.array_equal(f[k][...], g[k][...]), k
        assert f.attrs["norm"] == g.attrs["norm"] and f.attrs["norm_scale"] == g.attrs["norm_scale"]
        raw = (f["X"][...].astype(np.float64) * f["norm/std"][...] + f["norm/mean"][...]) / float(f.attrs["norm_scale"])
        assert np.abs(raw - ux.reshape(len(ux), -1)).max() < 1e-3, "unlabelled pixels not recovered"
    print(f"{t}: {len(ux)} unlabelled rows, normalised as {train}")


def bad(case, d):
    """Writes the sources of one refusal case into d (train_x/test_x, labels, folders as the case needs)."""
    tx, ty, sx, sy, ux = truth()
    os.makedirs(d, exist_ok=True)
    nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    np.save(f"{d}/x.npy", nhwc(tx))
    np.save(f"{d}/y.npy", ty)
    np.save(f"{d}/sx.npy", nhwc(sx))
    np.save(f"{d}/sy.npy", sy)
    if case == "truncated_npy":
        with open(f"{d}/x.npy", "r+b") as f:
            f.truncate(os.path.getsize(f"{d}/x.npy") - 100)
    elif case == "object_npy":
        np.save(f"{d}/x.npy", np.array([np.zeros(3), np.zeros(4)], dtype=object), allow_pickle=True)
    elif case == "corrupt_npz":
        np.savez_compressed(f"{d}/data.npz", x=nhwc(tx))
        with open(f"{d}/data.npz", "r+b") as f:
            b = bytearray(f.read())
            b[b.find(b"x.npy") + 30000] ^= 0x10  # one bit of the member's deflate data, among the pixels
            f.seek(0)
            f.write(b)
    elif case == "nan_half":
        x = (sx // 2).astype(np.float16)
        x[N_TEST - 1, 2, 3, 4] = np.nan
        np.save(f"{d}/x.npy", (tx // 2).astype(np.float16))
        np.save(f"{d}/sx.npy", x)
    elif case == "truncated_npz":
        np.savez(f"{d}/data.npz", x=nhwc(tx))
        with open(f"{d}/data.npz", "r+b") as f:
            f.truncate(os.path.getsize(f"{d}/data.npz") - 200)
    elif case == "ragged_h5":
        with h5py.File(f"{d}/data.h5", "w") as f:
            v = f.create_dataset("x", (3,), dtype=h5py.vlen_dtype(np.uint8))
            v[0], v[1], v[2] = np.zeros(2, np.uint8), np.zeros(5, np.uint8), np.zeros(1, np.uint8)
    elif case in ("mixed_sizes", "mixed_channels"):
        write_folder(f"{d}/train", tx[:12], ty[:12] % 3, ".png")
        odd = Image.new("RGB", (16, 16)) if case == "mixed_sizes" else Image.new("L", (W, H))
        odd.save(f"{d}/train/class01/img9999.png")
    elif case == "class_mismatch":
        write_folder(f"{d}/train", tx[:12], ty[:12] % 3, ".png")
        write_folder(f"{d}/test", sx[:6], np.array([0, 1, 5, 0, 1, 5]), ".png")
    elif case == "label_count":
        np.save(f"{d}/y.npy", ty[:-1])
    elif case == "float_labels":
        np.save(f"{d}/y.npy", ty + 0.5)
    elif case == "negative_labels":
        y = ty.copy()
        y[17] = -1
        np.save(f"{d}/y.npy", y)
    elif case == "nan_float":
        x = sx.reshape(N_TEST, -1) / 255.0
        x[N_TEST - 1, 5] = np.nan  # the last test row: the training file is written by then
        np.save(f"{d}/x.npy", tx.reshape(N_TRAIN, -1) / 255.0)
        np.save(f"{d}/sx.npy", x)
    elif case == "norm_from_shape":
        np.save(f"{d}/u.npy", nhwc(ux)[:, :16, :16, :])
    elif case == "truncated_cifar":
        write_cifar(f"{d}/batch.bin", tx, ty)
        with open(f"{d}/batch.bin", "r+b") as f:
            f.truncate(3073 * 10 + 100)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:] == ["flat"])
    elif cmd == "bad":
        bad(sys.argv[2], sys.argv[3])
    elif cmd == "pixels":
        pixels(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif cmd == "unlabelled":
        unlabelled(*sys.argv[2:5])
    else:
        sys.exit(f"unknown command {cmd}")
