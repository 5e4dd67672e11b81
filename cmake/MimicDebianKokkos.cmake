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
