# Finds Debian's ONNX protobuf classes (libonnx-dev, which brings libprotobuf-dev) for `mimic import onnx`
# and `mimic export onnx`; exposes MIMIC_ONNX_TARGET (onnx: checker + schemas, onnx_proto, protobuf).
find_package(Protobuf QUIET)
find_package(ONNX CONFIG QUIET)
if(NOT Protobuf_FOUND OR NOT TARGET onnx)
  message(FATAL_ERROR "Mimic needs the ONNX and protobuf C++ libraries for ONNX import/export. "
                      "On Debian: apt-get install libonnx-dev libprotobuf-dev (jobs/install_deps.sh does it); "
                      "elsewhere point ONNX_DIR at an ONNX build's lib/cmake/ONNX.")
endif()
message(STATUS "ONNX ${ONNX_VERSION} with protobuf ${Protobuf_VERSION}")
set(MIMIC_ONNX_TARGET onnx)
