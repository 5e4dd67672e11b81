# Finds Kokkos and Kokkos Kernels and exposes them as Kokkos::kokkos and Kokkos::kokkoskernels.
# A Kokkos 4.x install exports these targets itself; Debian's Trilinos 13.2 packages need fix-ups, all kept here.

# Kokkos forces CMAKE_CXX_EXTENSIONS OFF with a warning unless it is already off.
set(CMAKE_CXX_EXTENSIONS OFF)

find_package(Kokkos REQUIRED)

set(MIMIC_KOKKOS_IS_DEBIAN OFF)
if(TARGET Kokkos::kokkos)
  get_target_property(_mimic_kk_inc Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
  if(_mimic_kk_inc MATCHES "/usr/lib/include")
    set(MIMIC_KOKKOS_IS_DEBIAN ON)
  endif()
else()
  set(MIMIC_KOKKOS_IS_DEBIAN ON)
endif()

if(MIMIC_KOKKOS_IS_DEBIAN)
  # Debian (Trilinos 13.2): the exported Kokkos::kokkos target names /usr/lib/include, which does not
  # exist, and Kokkos Kernels exports only raw imported libraries without a namespaced target.
  message(STATUS "Mimic: using Debian's Trilinos Kokkos ${Kokkos_VERSION} with fixed-up targets")
  if(NOT Kokkos_INCLUDE_DIRS)
    set(Kokkos_INCLUDE_DIRS /usr/include/trilinos)
  endif()
  find_library(MIMIC_KOKKOSCORE trilinos_kokkoscore REQUIRED)
  find_library(MIMIC_KOKKOSCONTAINERS trilinos_kokkoscontainers REQUIRED)
  find_library(MIMIC_KOKKOSALGORITHMS trilinos_kokkosalgorithms REQUIRED)
  find_library(MIMIC_KOKKOSKERNELS trilinos_kokkoskernels REQUIRED)
  add_library(mimic_kokkos INTERFACE)
  target_include_directories(mimic_kokkos SYSTEM INTERFACE ${Kokkos_INCLUDE_DIRS})
  target_link_libraries(mimic_kokkos INTERFACE ${MIMIC_KOKKOSCONTAINERS} ${MIMIC_KOKKOSALGORITHMS}
                                               ${MIMIC_KOKKOSCORE} dl)
  add_library(mimic_kokkoskernels INTERFACE)
  target_link_libraries(mimic_kokkoskernels INTERFACE ${MIMIC_KOKKOSKERNELS} mimic_kokkos)
  # The Debian build uses the system BLAS; OpenBLAS must be the one behind it (reference BLAS is ~16x slower).
  find_library(MIMIC_OPENBLAS NAMES openblas PATHS /usr/lib/x86_64-linux-gnu/openblas-pthread)
  if(MIMIC_OPENBLAS)
    target_link_libraries(mimic_kokkoskernels INTERFACE ${MIMIC_OPENBLAS})
  else()
    message(WARNING "Mimic: OpenBLAS not found; GEMM falls back to the reference BLAS (install libopenblas-dev)")
  endif()
  set(MIMIC_KOKKOS_TARGET mimic_kokkos)
  set(MIMIC_KOKKOSKERNELS_TARGET mimic_kokkoskernels)
else()
  find_package(KokkosKernels REQUIRED)
  message(STATUS "Mimic: using Kokkos ${Kokkos_VERSION} from ${Kokkos_DIR}")
  set(MIMIC_KOKKOS_TARGET Kokkos::kokkos)
  set(MIMIC_KOKKOSKERNELS_TARGET Kokkos::kokkoskernels)
endif()

# A CUDA Kokkos compiles every source that uses Kokkos with nvcc_wrapper. With CMAKE_CXX_COMPILER a host
# compiler (g++), Kokkos' package config already routes those targets through kokkos_launch_compiler
# (kokkos_compilation(GLOBAL)); with CMAKE_CXX_COMPILER=nvcc_wrapper they compile directly. A launcher on
# top of nvcc_wrapper makes nvcc call nvcc_wrapper as its host compiler, recursively: refuse that.
set(MIMIC_KOKKOS_CUDA OFF)
if(NOT MIMIC_KOKKOS_IS_DEBIAN AND Kokkos_ENABLE_CUDA)
  set(MIMIC_KOKKOS_CUDA ON)
  if(COMMAND kokkos_compiler_is_nvcc)
    kokkos_compiler_is_nvcc(_mimic_cxx_is_nvcc ${CMAKE_CXX_COMPILER})
  elseif(CMAKE_CXX_COMPILER_ID STREQUAL "NVIDIA")
    set(_mimic_cxx_is_nvcc TRUE)
  else()
    set(_mimic_cxx_is_nvcc FALSE)
  endif()
  get_property(_mimic_launch GLOBAL PROPERTY RULE_LAUNCH_COMPILE)
  get_property(_mimic_dir_launch DIRECTORY PROPERTY RULE_LAUNCH_COMPILE)
  string(APPEND _mimic_launch " ${_mimic_dir_launch}")
  if(_mimic_cxx_is_nvcc AND _mimic_launch MATCHES "kokkos_launch_compiler")
    message(FATAL_ERROR "Mimic: CMAKE_CXX_COMPILER (${CMAKE_CXX_COMPILER}) is nvcc_wrapper and "
                        "kokkos_launch_compiler is also applied, so nvcc would call nvcc_wrapper as its host "
                        "compiler recursively. Configure with -DCMAKE_CXX_COMPILER=g++ (Kokkos then routes "
                        "Kokkos sources through nvcc_wrapper itself), or drop the kokkos_compilation() call.")
  endif()
  if(NOT _mimic_cxx_is_nvcc AND NOT _mimic_launch MATCHES "kokkos_launch_compiler")
    message(FATAL_ERROR "Mimic: Kokkos ${Kokkos_VERSION} at ${Kokkos_DIR} has CUDA, but CMAKE_CXX_COMPILER "
                        "(${CMAKE_CXX_COMPILER}) is not nvcc_wrapper and Kokkos' compiler launcher is off "
                        "(Kokkos_LAUNCH_COMPILER=OFF?). Leave Kokkos_LAUNCH_COMPILER unset, or use nvcc_wrapper.")
  endif()
  if("$ENV{NVCC_WRAPPER_DEFAULT_COMPILER}" MATCHES "nvcc_wrapper$")
    message(FATAL_ERROR "Mimic: the environment variable NVCC_WRAPPER_DEFAULT_COMPILER names nvcc_wrapper "
                        "($ENV{NVCC_WRAPPER_DEFAULT_COMPILER}); nvcc would call itself recursively. Set it to "
                        "the host compiler (g++) or unset it.")
  endif()
  message(STATUS "Mimic: CUDA Kokkos (architecture ${Kokkos_ARCH}); Kokkos sources compile with nvcc_wrapper")
endif()
