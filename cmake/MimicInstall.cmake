# Install rules (`cmake --install build --prefix P`): P/bin/mimic, the SLURM job scripts and the example
# configurations under P/share/mimic, the docs under P/share/doc/mimic, and an Lmod module file for P.
#
# The library (mimic_lib) is not installed: Mimic is an application, its headers are no stable API, and its
# Kokkos targets are Debian fix-ups that an exported package config could not carry (README, "Installing
# on a cluster").
set(MIMIC_SHARE_DIR ${CMAKE_INSTALL_DATADIR}/mimic)

# Kokkos, HDF5 or MPI outside the system paths (Spack, a site module) stay found after installation.
set_target_properties(mimic PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS mimic RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The job scripts keep their checkout layout under share/mimic (jobs/slurm/*, jobs/env.sh), so that the
# scripts find each other the same way in both. The other jobs/*.sh build and run from a source tree
# (install_deps, build, quickstart, the study and figure drivers) and are not installed.
file(GLOB _mimic_slurm_programs ${PROJECT_SOURCE_DIR}/jobs/slurm/*.sbatch)
install(PROGRAMS ${_mimic_slurm_programs} ${PROJECT_SOURCE_DIR}/jobs/slurm/submit.sh
                 ${PROJECT_SOURCE_DIR}/jobs/slurm/status.sh ${PROJECT_SOURCE_DIR}/jobs/slurm/bind.sh
        DESTINATION ${MIMIC_SHARE_DIR}/jobs/slurm)
install(FILES ${PROJECT_SOURCE_DIR}/jobs/slurm/common.sh ${PROJECT_SOURCE_DIR}/jobs/slurm/locate.sh
              ${PROJECT_SOURCE_DIR}/jobs/slurm/fashion-mnist.ini
        DESTINATION ${MIMIC_SHARE_DIR}/jobs/slurm)
install(FILES ${PROJECT_SOURCE_DIR}/jobs/env.sh DESTINATION ${MIMIC_SHARE_DIR}/jobs)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/inputs DESTINATION ${MIMIC_SHARE_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The Lmod module file is written at install time, from cmake/mimic.lua.in, because only then is the prefix
# known (`--prefix P` overrides CMAKE_INSTALL_PREFIX): P/share/mimic/modulefiles/mimic/<version>.lua.
install(CODE "set(MIMIC_LUA_TEMPLATE \"${PROJECT_SOURCE_DIR}/cmake/mimic.lua.in\")
set(MIMIC_LUA_STAGING \"${PROJECT_BINARY_DIR}/generated/modulefiles/mimic/${PROJECT_VERSION}.lua\")
set(MIMIC_VERSION \"${PROJECT_VERSION}\")
set(MIMIC_GIT_HASH \"${MIMIC_GIT_HASH}\")
set(MIMIC_BUILD_TYPE \"${CMAKE_BUILD_TYPE}\")
set(MIMIC_BINDIR_REL \"${CMAKE_INSTALL_BINDIR}\")
set(MIMIC_SHARE_REL \"${MIMIC_SHARE_DIR}\")
set(MIMIC_DOC_REL \"${CMAKE_INSTALL_DOCDIR}\")")
install(CODE [[
foreach(_dir BINDIR SHARE DOC)
  if(IS_ABSOLUTE "${MIMIC_${_dir}_REL}")
    set(MIMIC_${_dir} "${MIMIC_${_dir}_REL}")
  else()
    set(MIMIC_${_dir} "${CMAKE_INSTALL_PREFIX}/${MIMIC_${_dir}_REL}")
  endif()
endforeach()
set(MIMIC_PREFIX "${CMAKE_INSTALL_PREFIX}")
configure_file("${MIMIC_LUA_TEMPLATE}" "${MIMIC_LUA_STAGING}" @ONLY)
file(INSTALL DESTINATION "${MIMIC_SHARE}/modulefiles/mimic" TYPE FILE FILES "${MIMIC_LUA_STAGING}")
]])
