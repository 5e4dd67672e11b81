# Writes the version header (cmake/version.hpp.in) with the checkout's git commit at every build, run as
# `cmake -P` by the mimic_version target; configure_file leaves the file alone when nothing changed.
set(MIMIC_GIT_HASH "unknown")
if(GIT_EXECUTABLE AND EXISTS "${SRC}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --short=12 HEAD WORKING_DIRECTORY "${SRC}"
                  OUTPUT_VARIABLE hash OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(hash)
    set(MIMIC_GIT_HASH "${hash}")
  endif()
endif()
configure_file("${SRC}/cmake/version.hpp.in" "${OUT}" @ONLY)
