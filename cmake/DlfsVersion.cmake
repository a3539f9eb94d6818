# What `--version` prints besides PROJECT_VERSION: the commit the build was configured
# from, worked out here at configure time into DLFS_COMMIT:
#  - in a git checkout: `git rev-parse --short=12 HEAD`, with "+changes" appended when
#    tracked files differ from that commit (untracked files do not count). The reflog
#    (logs/HEAD) is a configure dependency, so a commit or checkout re-runs this on the
#    next build and --version does not go stale;
#  - in a release tarball (git archive): cmake/commit.txt, which git archive fills in
#    (export-subst, .gitattributes);
#  - else "unknown".
set(DLFS_COMMIT "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${PROJECT_SOURCE_DIR} rev-parse --short=12 HEAD
    OUTPUT_VARIABLE _dlfs_head RESULT_VARIABLE _dlfs_rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${PROJECT_SOURCE_DIR} rev-parse --show-toplevel
    OUTPUT_VARIABLE _dlfs_top OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  file(REAL_PATH "${PROJECT_SOURCE_DIR}" _dlfs_src)
  if(_dlfs_rc EQUAL 0 AND _dlfs_top)
    file(REAL_PATH "${_dlfs_top}" _dlfs_top)
  endif()
  # only this project's own repository (not a tarball unpacked inside another checkout)
  if(_dlfs_rc EQUAL 0 AND _dlfs_top STREQUAL _dlfs_src)
    set(DLFS_COMMIT "${_dlfs_head}")
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${PROJECT_SOURCE_DIR} status --porcelain --untracked-files=no
      OUTPUT_VARIABLE _dlfs_dirty ERROR_QUIET)
    if(NOT _dlfs_dirty STREQUAL "")
      string(APPEND DLFS_COMMIT "+changes")
    endif()
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${PROJECT_SOURCE_DIR} rev-parse --absolute-git-dir
      OUTPUT_VARIABLE _dlfs_gitdir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(EXISTS "${_dlfs_gitdir}/logs/HEAD")
      set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_dlfs_gitdir}/logs/HEAD")
    endif()
  endif()
endif()
if(DLFS_COMMIT STREQUAL "unknown" AND EXISTS ${PROJECT_SOURCE_DIR}/cmake/commit.txt)
  file(STRINGS ${PROJECT_SOURCE_DIR}/cmake/commit.txt _dlfs_archived LIMIT_COUNT 1)
  if(_dlfs_archived MATCHES "^[0-9a-f]+$")   # not the unexpanded placeholder
    string(SUBSTRING "${_dlfs_archived}" 0 12 DLFS_COMMIT)
  endif()
endif()
message(STATUS "dlfs: version ${PROJECT_VERSION}, commit ${DLFS_COMMIT}")
