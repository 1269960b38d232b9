# Run at every build (cmake -P): writes OUT, a header with the git revision
# the sources are at, only when it changed, so that nothing rebuilds for an
# unchanged revision. Outside a git checkout the revision is "unknown".
#   cmake -DSOURCE_DIR=... -DOUT=... -P conduitBuildInfo.cmake
set(revision "unknown")
find_program(GIT_PROGRAM git)
if(GIT_PROGRAM)
  execute_process(COMMAND ${GIT_PROGRAM} -C ${SOURCE_DIR} rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE failed ERROR_QUIET)
  if(NOT failed AND head)
    set(revision "${head}")
    execute_process(COMMAND ${GIT_PROGRAM} -C ${SOURCE_DIR} status --porcelain
                            --untracked-files=no
                    OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(changes)
      string(APPEND revision "+changes")
    endif()
  endif()
endif()
set(text "// Written at build time by cmake/conduitBuildInfo.cmake.\n#pragma once\n#define CONDUIT_GIT_REVISION \"${revision}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
