# Spack recipe of Mimic (packaging/spack, a repository for `spack repo add`): the CMake build with MPI, a
# parallel HDF5, Boost.Program_options, ONNX/protobuf and Kokkos + Kokkos Kernels, CUDA through Kokkos.
import gzip
import os
import random
import re
import struct

from spack.package import *


class Mimic(CMakePackage, CudaPackage):
    """Mimic compresses ensembles of deep neural networks into shallow or small students by mimic
    learning: the ensemble labels a large transfer set with its averaged logits and the student learns
    from them. A C++17 batch application on MPI, parallel HDF5 and Kokkos, run from SLURM job scripts."""

    # No public release yet: a site builds its checkout, `spack dev-build -d <checkout> mimic@develop`, or
    # `spack develop -p <checkout> mimic@develop` in an environment (README, "Installing on a cluster").
    version("develop")

    variant("openmp", default=False, description="Kokkos' OpenMP backend on the host (else Serial)")
    variant("tests", default=False, description="Build Mimic's test suite (GoogleTest) beside the executable")

    depends_on("cmake@3.18:", type="build")
    depends_on("googletest", type="build", when="+tests")
    depends_on("mpi")
    depends_on("hdf5@1.10:+mpi")
    depends_on("boost@1.74:+program_options")
    depends_on("zlib-api")
    # `mimic data import` of image folders decodes PNG and JPEG.
    depends_on("libpng")
    depends_on("jpeg")
    # `mimic import onnx` / `export onnx` are always built (cmake/MimicOnnx.cmake requires ONNX).
    depends_on("onnx")
    depends_on("protobuf")
    depends_on("kokkos@3.4:")
    depends_on("kokkos-kernels@3.4:")
    # Host GEMMs reach an optimised BLAS only through Kokkos Kernels' BLAS TPL.
    depends_on("kokkos-kernels+blas", when="~cuda")

    # CUDA through Kokkos: extended lambdas, the GPU architecture passed down, GEMMs in cuBLAS.
    depends_on("kokkos+cuda+cuda_lambda", when="+cuda")
    depends_on("kokkos-kernels+cuda+cublas", when="+cuda")
    for _arch in CudaPackage.cuda_arch_values:
        depends_on(f"kokkos+cuda cuda_arch={_arch}", when=f"+cuda cuda_arch={_arch}")
    depends_on("kokkos~cuda", when="~cuda")
    conflicts("cuda_arch=none", when="+cuda", msg="a CUDA build of Mimic needs cuda_arch (e.g. cuda_arch=90)")

    depends_on("kokkos+openmp", when="+openmp")
    depends_on("kokkos-kernels+openmp", when="+openmp")

    def cmake_args(self):
        spec = self.spec
        return [
            self.define_from_variant("MIMIC_ENABLE_TESTS", "tests"),
            # The benchmarks compare against PyTorch on a development machine; not part of an install.
            self.define("MIMIC_ENABLE_BENCH", False),
            self.define("Kokkos_ROOT", spec["kokkos"].prefix),
            self.define("KokkosKernels_ROOT", spec["kokkos-kernels"].prefix),
        ]

    @run_after("install")
    @on_package_attributes(run_tests=True)
    def check_pipeline(self):
        """`spack install --test=root mimic`: the short pipeline below with the installed executable."""
        with working_dir(join_path(self.stage.path, "mimic-check"), create=True):
            run_short_pipeline(Executable(self.prefix.bin.mimic), os.getcwd())

    def test_pipeline(self):
        """`spack test run mimic`: the short pipeline below with the installed executable."""
        with working_dir(join_path(self.test_suite.stage, "mimic-check"), create=True):
            run_short_pipeline(Executable(self.prefix.bin.mimic), os.getcwd())


def write_idx(path, rows, labels):
    """A gzipped IDX image file (PATH-images-idx3-ubyte.gz) and its labels (PATH-labels-idx1-ubyte.gz)."""
    with gzip.open(path + "-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(rows), 28, 28))
        for r in rows:
            f.write(bytes(r))
    with gzip.open(path + "-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)))
        f.write(bytes(labels))


def synthetic_images(n, seed):
    """N 28x28 images of 10 classes: class c lights rows 2c..2c+5, over uniform noise."""
    rng = random.Random(seed)
    rows, labels = [], []
    for i in range(n):
        c = i % 10
        img = [rng.randrange(0, 96) for _ in range(784)]
        for y in range(2 * c, 2 * c + 6):
            for x in range(28):
                img[28 * y + x] = rng.randrange(160, 256)
        rows.append(img)
        labels.append(c)
    return rows, labels


def run_short_pipeline(mimic, workdir):
    """data import -> ensemble train -> transfer -> label -> distill -> eval on a synthetic 10-class set
    (2,000 training and 500 test images written here), on one process; the student must beat 90%."""
    write_idx(os.path.join(workdir, "train"), *synthetic_images(2000, 1))
    write_idx(os.path.join(workdir, "test"), *synthetic_images(500, 2))
    print(mimic("--version", output=str))
    mimic("data", "import", "--train-images", "train-images-idx3-ubyte.gz", "--train-labels",
          "train-labels-idx1-ubyte.gz", "--test-images", "test-images-idx3-ubyte.gz", "--test-labels",
          "test-labels-idx1-ubyte.gz", "--out-dir", "data", "--val", "200")
    mimic("ensemble", "train", "--members", "2", "--arch", "dense:32,relu,dense:10", "--epochs", "2",
          "--data", "data/train.h5", "--val", "data/val.h5", "--out-dir", "ensemble")
    mimic("transfer", "--from", "data/train.h5", "--size", "3600", "--augment", "1", "--shift", "1",
          "--out", "transfer.h5")
    mimic("label", "--ensemble", "ensemble/manifest.h5", "--transfer", "transfer.h5", "--out", "logits.h5")
    mimic("distill", "--transfer", "transfer.h5", "--logits", "logits.h5", "--arch", "dense:32,relu,dense:10",
          "--epochs", "2", "--out", "student.h5")
    out = mimic("eval", "--model", "student.h5", "--data", "data/test.h5", output=str)
    found = re.search(r"^\s*accuracy\s+([0-9.]+)%", out, re.M)
    if not found or float(found.group(1)) < 90:
        raise RuntimeError("mimic pipeline check: student accuracy below 90%:\n" + out)
    print("mimic pipeline check: student test accuracy %s%%" % found.group(1))
