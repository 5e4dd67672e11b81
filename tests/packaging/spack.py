# Checks the Spack recipe packaging/spack/packages/mimic/package.py without Spack: it parses (ast), declares
# the variants and dependencies the issue asks for, passes only -D names the project declares (option() or
# a CACHE variable, CMAKE_*, or <Pkg>_ROOT of a package it finds) and maps every option() of the top level;
# then its test phase's pipeline runs, with Spack's few names stubbed, against $MIMIC.
# Usage: spack.py SOURCE_DIR   (ctest: packaging.spack)
import ast
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import types

root = pathlib.Path(sys.argv[1]).resolve()
recipe = root / "packaging/spack/packages/mimic/package.py"
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def text_of(node):
    """A string literal, or an f-string with its placeholders written as {}."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def calls(tree, name):
    """(first argument text, keyword texts) of every call of NAME (a function or a self./CLASS. method)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if called == name and node.args:
                kw = {k.arg: text_of(k.value) for k in node.keywords}
                yield text_of(node.args[0]), [text_of(a) for a in node.args[1:]], kw


# --- what the project declares --------------------------------------------------------------------------
cmake_files = [root / "CMakeLists.txt"] + sorted((root / "cmake").glob("*.cmake"))
cmake_files += sorted((root / "tests").glob("*.cmake")) + [root / "tests/CMakeLists.txt"]
cmake_files += [p for p in [root / "bench/CMakeLists.txt"] if p.exists()]
declared, top_options, packages = set(), set(), set()
for path in cmake_files:
    text = path.read_text()
    found = set(re.findall(r"^\s*option\(\s*(\w+)", text, re.M))
    declared |= found | set(re.findall(r"^\s*set\(\s*(\w+)\s[^)]*\bCACHE\b", text, re.M))
    packages |= set(re.findall(r"find_package\(\s*(\w+)", text))
    if path.parent == root or path.parent.name == "cmake":
        top_options |= found

# --- the recipe ----------------------------------------------------------------------------------------
tree = ast.parse(recipe.read_text(), str(recipe))
classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Mimic"]
if not classes:
    sys.exit("FAIL: no class Mimic in " + str(recipe))
cls = classes[0]
bases = {b.id for b in cls.bases if isinstance(b, ast.Name)}
if not {"CMakePackage", "CudaPackage"} <= bases:
    fail("class Mimic must derive from CMakePackage and CudaPackage (cuda, cuda_arch), not %s" % sorted(bases))

variants = {v for v, _, _ in calls(cls, "variant")} | ({"cuda", "cuda_arch"} if "CudaPackage" in bases else set())
for v in ("cuda", "cuda_arch", "openmp", "tests"):
    if v not in variants:
        fail("variant %s missing" % v)

deps = [(spec, kw.get("when") or "") for spec, _, kw in calls(cls, "depends_on")]


def depends(pattern, when=""):
    """A depends_on whose spec matches PATTERN (regex) and whose when= contains every word of WHEN."""
    return any(re.fullmatch(pattern, s or "") and all(w in c for w in when.split()) for s, c in deps)


required = [
    (r"mpi", ""), (r"hdf5(@\S+)?\+mpi", ""), (r"boost(@\S+)?\+program_options", ""), (r"kokkos(@\S+)?", ""),
    (r"kokkos-kernels(@\S+)?", ""), (r"zlib(-api)?", ""), (r"onnx", ""), (r"protobuf", ""), (r"libpng", ""),
    (r"jpeg", ""),
    (r"kokkos\+cuda\+cuda_lambda", "+cuda"), (r"kokkos-kernels\+cuda\+cublas", "+cuda"),
    (r"kokkos\+cuda cuda_arch=\{\}", "+cuda cuda_arch={}"), (r"kokkos\+openmp", "+openmp"),
]
for pattern, when in required:
    if not depends(pattern, when):
        fail("no depends_on matching '%s'%s" % (pattern, " when '%s'" % when if when else ""))
# cmake/MimicOnnx.cmake stops without ONNX: the recipe must then depend on it unconditionally.
if "FATAL_ERROR" in (root / "cmake/MimicOnnx.cmake").read_text() and not depends("onnx"):
    fail("ONNX is required by cmake/MimicOnnx.cmake but not a dependency")

args = [f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "cmake_args"]
if not args:
    sys.exit("FAIL: no cmake_args")
passed = set()
for name, rest, _ in list(calls(args[0], "define")) + list(calls(args[0], "define_from_variant")):
    passed.add(name)
for node in ast.walk(args[0]):
    passed |= set(re.findall(r"-D(\w+)", text_of(node) or ""))
for name, rest, _ in calls(args[0], "define_from_variant"):
    variant = rest[0] if rest else name.lower()
    if variant not in variants:
        fail("cmake_args maps %s from variant '%s', which the recipe does not declare" % (name, variant))
for name in sorted(passed):
    ok = name in declared or name.startswith("CMAKE_")
    ok = ok or any(name in (p + "_ROOT", p + "_DIR") for p in packages)
    if not ok:
        fail("cmake_args passes -D%s, which the project does not declare" % name)
for name in sorted(top_options - passed):
    fail("the project's option %s is not mapped in cmake_args" % name)
print("recipe: variants %s; -D %s; %d depends_on" % (sorted(variants), sorted(passed), len(deps)))

# --- the test phase's pipeline, with the names Spack provides stubbed ----------------------------------------
stub = types.ModuleType("spack.package")


class CMakePackage:
    pass


class CudaPackage:
    cuda_arch_values = ("70", "80", "90")


def directive(*args, **kwargs):
    return None


def decorator(*args, **kwargs):
    return lambda f: f


def executable(path):
    def run(*argv, output=None, error=None):
        r = subprocess.run([path, *argv], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("%s %s failed (%d): %s" % (path, " ".join(argv), r.returncode, r.stderr))
        return r.stdout if output is str else None
    return run


stub.__dict__.update(CMakePackage=CMakePackage, CudaPackage=CudaPackage, version=directive, variant=directive,
                     depends_on=directive, conflicts=directive, run_after=decorator,
                     on_package_attributes=decorator, Executable=executable, join_path=os.path.join)
stub.__all__ = [k for k in stub.__dict__ if not k.startswith("_")]
sys.modules["spack"] = types.ModuleType("spack")
sys.modules["spack.package"] = stub
namespace = {"__name__": "mimic_recipe"}
exec(compile(recipe.read_text(), str(recipe), "exec"), namespace)
with tempfile.TemporaryDirectory(prefix="mimic-spack-check.") as work:
    cwd = os.getcwd()
    os.chdir(work)
    try:
        namespace["run_short_pipeline"](executable(os.environ["MIMIC"]), work)
    except RuntimeError as e:
        fail("the recipe's test pipeline failed: %s" % e)
    finally:
        os.chdir(cwd)

if failures:
    sys.exit("packaging.spack: %d check(s) failed" % len(failures))
print("packaging.spack: passed")
