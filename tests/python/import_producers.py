#!/usr/bin/env python3
"""Sources as real producers write them (NumPy, h5py, Pillow, CIFAR-100), one case per run of
tests/cli/import_producers.sh: each either imports exactly (raw values recovered from the files equal the
source values in C, H, W order, labels equal) or is refused in one line naming the file and the problem.

Usage: import_producers.py make CASE DIR    writes DIR/src/..., DIR/args (one import argument per line)
                                             and DIR/expect ("ok", or the pattern of the refusal)
       import_producers.py check DIR OUT    checks OUT/{train,test}.h5 against DIR/truth.npz
"""
import os
import struct
import sys

import h5py
import numpy as np
from PIL import Image

N, NT, C, H, W = 12, 6, 3, 5, 7  # H != W: a transposed image cannot pass


def rows(n, dtype, seed, lo=0, hi=256):
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi, size=(n, C, H, W)).astype(dtype)


def labels(n, seed):
    y = np.arange(n) % 4
    np.random.default_rng(seed).shuffle(y)
    return y.astype(np.int64)


class Case:
    def __init__(self, d):
        self.d, self.s = d, os.path.join(d, "src")
        os.makedirs(self.s, exist_ok=True)
        self.args, self.expect, self.truth = [], "ok", {}

    def path(self, name):
        return os.path.join(self.s, name)

    def ok(self, tx, ty, sx, sy, *args):
        """Expects an import equal to train rows tx (N, C, H, W or N, D), labels ty, test rows sx, sy."""
        self.truth = dict(tx=tx, ty=ty, sx=sx, sy=sy)
        self.args = list(args)

    def refuse(self, pattern, *args):
        self.expect, self.args = pattern, list(args)

    def save(self):
        with open(os.path.join(self.d, "args"), "w") as f:
            f.write("\n".join(self.args) + "\n")
        with open(os.path.join(self.d, "expect"), "w") as f:
            f.write(self.expect + "\n")
        if self.truth:
            np.savez(os.path.join(self.d, "truth.npz"), **self.truth)


def nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def npy_pair(c, dtype, layout, seed=1, lo=0, hi=256, ydtype=np.int64, yshape=None, save=np.save):
    """Train and test .npy images of dtype in layout with labels of ydtype; the expected import."""
    tx, sx = rows(N, dtype, seed, lo, hi), rows(NT, dtype, seed + 1, lo, hi)
    ty, sy = labels(N, seed), labels(NT, seed + 1)
    put = nhwc if layout == "nhwc" else (lambda a: a)
    for name, a in (("tx", put(tx)), ("sx", put(sx))):
        save(c.path(name + ".npy"), a)
    for name, y in (("ty", ty), ("sy", sy)):
        np.save(c.path(name + ".npy"), y.astype(ydtype).reshape(yshape or y.shape))
    c.ok(tx.astype(np.float64), ty, sx.astype(np.float64), sy, "--train-images", c.path("tx.npy"),
         "--train-labels", c.path("ty.npy"), "--test-images", c.path("sx.npy"), "--test-labels",
         c.path("sy.npy"), "--layout", layout)


def npy_files(c):
    return ["--train-images", c.path("tx.npy"), "--train-labels", c.path("ty.npy"), "--test-images",
            c.path("sx.npy"), "--test-labels", c.path("sy.npy")]


def numpy_case(c, case):
    if case == "be_f4":
        npy_pair(c, ">f4", "nhwc")
    elif case == "be_u2":
        npy_pair(c, ">u2", "nchw", hi=65536)
    elif case == "i16_negative":
        npy_pair(c, "<i2", "nhwc", lo=-32768, hi=32768)
    elif case == "i32":
        npy_pair(c, "<i4", "nhwc", lo=-100000, hi=100000)
    elif case == "f64_fraction":
        npy_pair(c, np.float64, "nhwc")
        for k in ("tx", "sx"):
            a = np.load(c.path(k + ".npy")) / 7.0
            np.save(c.path(k + ".npy"), a)
            c.truth[k] = c.truth[k] / 7.0
    elif case == "bool":
        npy_pair(c, np.bool_, "nhwc", hi=2)
    elif case in ("labels_int64", "labels_int32", "labels_uint8", "labels_int8", "labels_float", "labels_n1",
                  "labels_be_i8"):
        yd = {"int64": np.int64, "int32": np.int32, "uint8": np.uint8, "int8": np.int8, "float": np.float64,
              "n1": np.int64, "be_i8": ">i8"}[case[7:]]
        npy_pair(c, np.uint8, "nhwc", ydtype=yd, yshape=(-1, 1) if case == "labels_n1" else None)
    elif case == "labels_fraction":
        npy_pair(c, np.uint8, "nhwc", ydtype=np.float32)
        np.save(c.path("ty.npy"), np.load(c.path("ty.npy")) + 0.5)
        c.refuse(c.path("ty.npy") + ": row 0 has label .*; labels must be integers", *c.args)
    elif case == "labels_strings":
        npy_pair(c, np.uint8, "nhwc")
        np.save(c.path("ty.npy"), np.array(["cat", "dog"] * (N // 2)))
        c.refuse(c.path("ty.npy") + ": NumPy dtype <U3 is not supported", *c.args)
    elif case == "memmap":
        def save(p, a):
            m = np.lib.format.open_memmap(p, mode="w+", dtype=a.dtype, shape=a.shape)
            m[...] = a
            m.flush()
            del m
        npy_pair(c, np.uint8, "nhwc", save=save)
    elif case == "fortran":  # np.save of a Fortran-ordered array keeps that order (fortran_order: True)
        npy_pair(c, np.uint8, "nhwc", save=lambda p, a: np.save(p, np.asfortranarray(a)))
    elif case == "fortran_flat_be":  # rank 2, big-endian
        npy_pair(c, ">f4", "nchw", save=lambda p, a: np.save(p, np.asfortranarray(a.reshape(len(a), -1))))
        c.truth["tx"], c.truth["sx"] = (c.truth[k].reshape(len(c.truth[k]), -1) for k in ("tx", "sx"))
        c.args = npy_files(c)
    elif case == "fortran_npz":  # a stored and a deflated member of rank 3 (N, H, W)
        tx, sx = rows(N, np.int16, 3, -500, 500)[:, :1], rows(NT, np.int16, 4, -500, 500)[:, :1]
        ty, sy = labels(N, 3), labels(NT, 4)
        for fn, save in (("s.npz", np.savez), ("z.npz", np.savez_compressed)):
            save(c.path(fn), x=np.asfortranarray(tx[:, 0]), y=ty, t=np.asfortranarray(sx[:, 0]), u=sy)
        s, z = c.path("s.npz"), c.path("z.npz")
        c.ok(tx.astype(np.float64), ty, sx.astype(np.float64), sy, "--train-images", s + ":x", "--train-labels",
             z + ":y", "--test-images", z + ":t", "--test-labels", s + ":u")
    elif case in ("zero_rows_train", "zero_rows_test"):
        npy_pair(c, np.uint8, "nhwc")
        k = "tx" if case == "zero_rows_train" else "sx"
        y = "ty" if k == "tx" else "sy"
        np.save(c.path(k + ".npy"), np.zeros((0, H, W, C), np.uint8))
        np.save(c.path(y + ".npy"), np.zeros((0,), np.int64))
        c.refuse(c.path(k + ".npy") + ": holds no rows", *c.args)
    elif case == "npz_compressed":
        tx, sx = rows(N, ">f4", 3), rows(NT, ">f4", 4)
        ty, sy = labels(N, 3), labels(NT, 4)
        np.savez_compressed(c.path("d.npz"), x_train=nhwc(tx), y_train=ty.astype(np.int32), x_test=nhwc(sx),
                            y_test=sy.astype(np.uint8).reshape(-1, 1))
        f = c.path("d.npz")
        c.ok(tx.astype(np.float64), ty, sx.astype(np.float64), sy, "--train-images", f + ":x_train",
             "--train-labels", f + ":y_train", "--test-images", f + ":x_test", "--test-labels", f + ":y_test",
             "--layout", "nhwc")
    elif case == "npz_missing_key":
        np.savez_compressed(c.path("d.npz"), images=nhwc(rows(N, np.uint8, 3)), labels=labels(N, 3))
        f = c.path("d.npz")
        c.refuse(f + ": has no member 'x_train' (members: images, labels)", "--train-images", f + ":x_train",
                 "--train-labels", f + ":labels", "--layout", "nhwc")
    else:
        return False
    return True


def h5_case(c, case):
    f = c.path("d.h5")
    tx, sx = rows(N, np.uint8, 5), rows(NT, np.uint8, 6)
    ty, sy = labels(N, 5), labels(NT, 6)
    args = ["--train-images", f + ":/data/train/x", "--train-labels", f + ":/data/train/y", "--test-images",
            f + ":/data/test/x", "--test-labels", f + ":/data/test/y", "--layout", "nhwc"]
    with h5py.File(f, "w") as h:
        kw = dict(chunks=(4, H, W, C), compression="gzip", compression_opts=6, shuffle=True)
        h.create_dataset("data/train/x", data=nhwc(tx), **kw)
        h.create_dataset("data/test/x", data=nhwc(sx), **kw)
        h.create_dataset("data/train/y", data=ty, chunks=(5,), compression="gzip", shuffle=True)
        h.create_dataset("data/test/y", data=sy.astype(np.int32).reshape(-1, 1))
        if case == "h5_gzip":
            c.ok(tx.astype(np.float64), ty, sx.astype(np.float64), sy, *args)
        elif case == "h5_nchw_relative":
            h["nchw/train"], h["nchw/test"] = tx, sx  # named without the leading '/'
            args[1], args[5], args[-1] = f + ":nchw/train", f + ":nchw/test", "nchw"
            c.ok(tx.astype(np.float64), ty, sx.astype(np.float64), sy, *args)
        elif case == "h5_nan":
            x = tx.astype(np.float32)
            x[3, 1, 2, 4] = np.nan
            h.create_dataset("bad", data=nhwc(x), compression="gzip")
            args[1] = f + ":/bad"
            c.refuse(f + ":/bad: row 3, feature .* is nan; every value must be finite", *args)
        elif case == "h5_group":
            args[1] = f + ":/data/train"
            c.refuse(f + ":/data/train: is not a dataset (a group?)", *args)
        elif case == "h5_scalar_labels":
            h["scalar"] = 3
            args[3] = f + ":/scalar"
            c.refuse(f + ":/scalar: is a scalar; an array of rows is needed", *args)
        elif case == "h5_missing":
            args[1] = f + ":/data/train/images"
            c.refuse(f + ":/data/train/images: no such dataset in the file", *args)
        elif case == "h5_lzf":
            # h5py's own filter, not in the HDF5 library (a chunk that lzf cannot shrink is stored raw)
            h.create_dataset("lzf", data=nhwc(tx) // 64, compression="lzf")
            args[1] = f + ":/lzf"
            c.refuse(f + ":/lzf: is compressed with HDF5 filter 32000 (lzf), which this HDF5 library lacks", *args)
        elif case == "h5_bool":
            h["b"] = nhwc(tx) > 127  # h5py's bool: an HDF5 enum over int8, read as 0 and 1
            args[1] = f + ":/b"
            c.ok((tx > 127).astype(np.float64), ty, sx.astype(np.float64), sy, *args)
        elif case == "h5_string_labels":
            h["names"] = np.array([b"cat", b"dog"] * (N // 2))
            args[3] = f + ":/names"
            c.refuse(f + ":/names: holds string values; store a numeric array", *args)
        else:
            return False
    return True


def folder(c, name, images, ext=".png", **kw):
    """images: {class: [PIL images]} saved as DIR/src/name/class/imgNN.ext; returns the root."""
    root = c.path(name)
    for cls, imgs in images.items():
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for i, im in enumerate(imgs):
            im.save(os.path.join(root, cls, "img%02d%s" % (i, ext)), **kw)
    return root


def pil_images(n, mode, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if mode == "P":
            im = Image.fromarray(rng.integers(0, 16, size=(H, W), dtype=np.uint8), "P")
            im.putpalette(list(rng.integers(0, 256, size=16 * 3)))
        elif mode == "I;16":
            im = Image.fromarray(rng.integers(0, 65536, size=(H, W)).astype(np.uint16), "I;16")
        else:
            ch = len(Image.new(mode, (1, 1)).getbands())
            a = rng.integers(0, 256, size=(H, W, ch), dtype=np.uint8)
            im = Image.fromarray(a[:, :, 0] if ch == 1 else a, mode)
        out.append(im)
    return out


def image_files(d):
    """The images of folder d in the order of docs/formats.md: d's own files sorted by name, then each
    subfolder's likewise, in sorted order; hidden entries and other extensions left out."""
    names = sorted(e for e in os.listdir(d) if not e.startswith("."))
    subs = [os.path.join(d, e) for e in names if os.path.isdir(os.path.join(d, e))]
    own = [os.path.join(d, e) for e in names if os.path.splitext(e)[1].lower() in (".png", ".jpg", ".jpeg")]
    return own + [p for s in subs for p in image_files(s)]


def decoded(root, mode):
    """Rows of a folder as Pillow decodes them in `mode`, in sorted class / file order, and labels."""
    xs, ys = [], []
    classes = sorted(e for e in os.listdir(root) if not e.startswith(".") and os.path.isdir(os.path.join(root, e)))
    for k, cls in enumerate(classes):
        for p in image_files(os.path.join(root, cls)):
            a = np.asarray(Image.open(p).convert(mode)).astype(np.float64)
            xs.append(a.reshape(H, W, -1).transpose(2, 0, 1))
            ys.append(k)
    return np.stack(xs), np.array(ys, np.int64)


def folder_ok(c, root, mode):
    x, y = decoded(root, mode)
    c.ok(x, y, x, y, "--train-images", root, "--test-images", root)


def image_case(c, case):
    if case in ("img_L", "img_LA", "img_RGBA", "img_P"):
        mode = case[4:]
        root = folder(c, "f", {"a": pil_images(3, mode, 1), "b": pil_images(4, mode, 2)})
        folder_ok(c, root, {"P": "RGB"}.get(mode, mode))
    elif case == "img_P_transparent":
        imgs = pil_images(5, "P", 3)
        for im in imgs:
            im.info["transparency"] = 2
        root = folder(c, "f", {"a": imgs[:2], "b": imgs[2:]})
        folder_ok(c, root, "RGBA")
    elif case == "img_I16":
        root = folder(c, "f", {"a": pil_images(2, "I;16", 1), "b": pil_images(2, "I;16", 2)})
        c.refuse(root + "/a/img00.png: 16-bit PNG samples are not supported", "--train-images", root,
                 "--test-images", root)
    elif case == "img_jpeg_progressive":
        root = folder(c, "f", {"a": pil_images(2, "RGB", 1), "b": pil_images(3, "RGB", 2)}, ".jpg",
                      progressive=True, quality=90)
        folder_ok(c, root, "RGB")
    elif case == "img_jpeg_cmyk":
        root = folder(c, "f", {"a": pil_images(2, "CMYK", 1), "b": pil_images(2, "CMYK", 2)}, ".jpg")
        c.refuse(root + "/a/img00.jpg: JPEG with 4 components (CMYK?)", "--train-images", root, "--test-images",
                 root)
    elif case == "img_mixed_grey_rgb":
        # one mode per folder (docs/formats.md): a grey image among RGB ones is refused with the fix
        root = folder(c, "f", {"a": pil_images(2, "RGB", 1), "b": pil_images(2, "L", 2)})
        c.refuse(root + "/b/img00.png: image is 1x5x7 (CxHxW) grey but " + root + "/a/img00.png is 3x5x7 RGB; "
                 "every image must have the same size and mode .*convert('RGB')", "--train-images", root,
                 "--test-images", root)
    elif case == "img_P_mixed_transparency":
        imgs = pil_images(4, "P", 3)
        imgs[3].info["transparency"] = 0  # a tRNS chunk: RGBA
        root = folder(c, "f", {"a": imgs[:2], "b": imgs[2:]})
        c.refuse(root + "/b/img01.png: image is 4x5x7 (CxHxW) RGBA but " + root + "/a/img00.png is 3x5x7 RGB",
                 "--train-images", root, "--test-images", root)
    elif case == "img_clutter":
        # hidden files, non-images, uppercase extensions, nested subfolders inside a class, a stray file
        # at the top: only images count, nested ones included
        root = folder(c, "f", {"a": pil_images(2, "RGB", 1), "b": pil_images(2, "RGB", 2)})
        for cls, ext in (("a", ".PNG"), ("b", ".jpeg"), ("b", ".JPG")):
            pil_images(1, "RGB", 7)[0].save(os.path.join(root, cls, "upper" + ext))
        os.makedirs(os.path.join(root, "a", "more", "deeper"))
        pil_images(1, "RGB", 8)[0].save(os.path.join(root, "a", "more", "x.png"))
        pil_images(1, "RGB", 9)[0].save(os.path.join(root, "a", "more", "deeper", "y.png"))
        for junk in ("a/.DS_Store", "b/notes.txt", ".DS_Store", "README.md", "a/._img00.png", "b/Thumbs.db"):
            with open(os.path.join(root, junk), "wb") as f:
                f.write(b"\0\1junk")
        os.makedirs(os.path.join(root, ".ipynb_checkpoints"))
        folder_ok(c, root, "RGB")
    elif case == "img_empty_class":
        root = folder(c, "f", {"a": pil_images(2, "RGB", 1)})
        os.makedirs(os.path.join(root, "b"))
        with open(os.path.join(root, "b", ".DS_Store"), "wb") as f:
            f.write(b"x")
        c.refuse(root + "/b: class folder holds no PNG or JPEG image", "--train-images", root, "--test-images",
                 root)
    else:
        return False
    return True


def cifar_case(c, case):
    rng = np.random.default_rng(7)
    tx, sx = (rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8) for n in (N, NT))
    fine_t, fine_s = labels(N, 7) * 25 + 3, labels(NT, 8) * 25 + 3  # fine labels 3 to 78
    for name, x, y in (("train.bin", tx, fine_t), ("test.bin", sx, fine_s)):
        with open(c.path(name), "wb") as f:
            for i in range(len(y)):
                f.write(bytes([int(y[i]) // 5, int(y[i])]) + x[i].tobytes())  # coarse, fine, R, G, B
    args = ["--format", "cifar100", "--num-classes", "100", "--train-images", c.path("train.bin"), "--test-images", c.path("test.bin")]
    if case == "cifar100_fine":
        c.ok(tx.astype(np.float64), fine_t, sx.astype(np.float64), fine_s, *args)
    elif case == "cifar100_truncated":
        with open(c.path("train.bin"), "ab") as f:
            f.write(b"\0" * 100)
        c.refuse(c.path("train.bin") + ": .* bytes is not a whole number of 3074-byte CIFAR-100 records", *args)
    else:
        return False
    return True


def make(case, d):
    c = Case(d)
    if not (numpy_case(c, case) or h5_case(c, case) or image_case(c, case) or cifar_case(c, case)):
        sys.exit("unknown case " + case)
    c.save()


def check(d, out):
    t = np.load(os.path.join(d, "truth.npz"), allow_pickle=True)
    for split, (x, y) in (("train", (t["tx"], t["ty"])), ("test", (t["sx"], t["sy"]))):
        if x.dtype == object:  # a case without a test set
            continue
        with h5py.File(os.path.join(out, split + ".h5"), "r") as f:
            X, m, s = f["X"][...], f["norm/mean"][...], f["norm/std"][...]
            raw = (X.astype(np.float64) * s + m) / float(f.attrs["norm_scale"])
            want = x.reshape(len(x), -1)
            shape = tuple(int(v) for v in f.attrs["shape"])
            assert shape == (x.shape[1:] if x.ndim == 4 else (1, 1, want.shape[1])), f"{split}: shape {shape}"
            tol = 1e-3 + 1e-6 * np.abs(want).max()
            err = np.abs(raw - want).max()
            assert err < tol, f"{split}: pixels differ from the source by {err}"
            assert np.array_equal(f["y"][...], y), f"{split}: labels {f['y'][...]} differ from {y}"
        print(f"{out}/{split}.h5: {len(y)} rows equal the source values (C, H, W) and labels")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
