# The direction of dependency between the libraries of common/ (common/CMakeLists.txt), checked
# on the sources themselves: run at configure time (a violation stops the build) and by the
# `Layering` tests (tests/build/). A library may include its own headers and those of the
# libraries listed for it here, nothing else of common/; and a C library's header only in the
# library that wraps it. No source file may sit directly in common/.
#
#   cmake -DROOT=<tree> -P cmake/CheckLayers.cmake      exit 0 when the tree keeps the rules

if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.25)
endif()

set(_layers util sts dns fleet daemon)
set(_allow_util "")
set(_allow_sts util)
set(_allow_dns util)
set(_allow_fleet util sts)
set(_allow_daemon util sts fleet)

# System headers that belong to exactly one library (the C dependency it wraps).
set(_owner_hiredis fleet)
set(_owner_ldns dns)
set(_owner_idn2.h sts)
set(_owner_boost daemon)
set(_owner_microhttpd.h daemon)
set(_owner_curl none)      # libcurl and OpenSSL belong to the fetcher (cached/), not to common/
set(_owner_openssl none)
set(_owned hiredis ldns idn2.h boost microhttpd.h curl openssl)

function(mtasts_check_layers root out_errors)
  set(errors "")
  file(GLOB _loose LIST_DIRECTORIES false "${root}/common/*.hpp" "${root}/common/*.cpp"
       "${root}/common/*.h" "${root}/common/*.cc")
  foreach(f ${_loose})
    list(APPEND errors "${f}: a source file directly in common/ (put it in one of: ${_layers})")
  endforeach()
  file(GLOB _dirs LIST_DIRECTORIES true RELATIVE "${root}/common" "${root}/common/*")
  foreach(d ${_dirs})
    if(IS_DIRECTORY "${root}/common/${d}" AND NOT d IN_LIST _layers)
      list(APPEND errors "common/${d}: a folder that is not a known library (${_layers}): add it to cmake/CheckLayers.cmake")
    endif()
  endforeach()
  foreach(lib ${_layers})
    file(GLOB _srcs "${root}/common/${lib}/*.hpp" "${root}/common/${lib}/*.cpp")
    foreach(f ${_srcs})
      file(STRINGS "${f}" _incs REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
      foreach(line ${_incs})
        if(line MATCHES "include[ \t]*\"common/([^/\"]+)/")
          set(dep "${CMAKE_MATCH_1}")
          if(NOT dep STREQUAL lib AND NOT dep IN_LIST _allow_${lib})
            list(APPEND errors "common/${lib}/ may not include common/${dep}/ (${f}: ${line})")
          endif()
        elseif(line MATCHES "include[ \t]*\"(cached|milter|tlsmap|ctl|tests|bench)/")
          list(APPEND errors "common/${lib}/ may not include a program's header (${f}: ${line})")
        elseif(line MATCHES "include[ \t]*<([^/>]+)")
          set(top "${CMAKE_MATCH_1}")
          if(top IN_LIST _owned AND NOT _owner_${top} STREQUAL lib)
            list(APPEND errors "common/${lib}/ may not include <${top}...> (it belongs to ${_owner_${top}}) (${f}: ${line})")
          endif()
        endif()
      endforeach()
    endforeach()
  endforeach()
  set(${out_errors} "${errors}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND NOT MTASTS_CHECK_LAYERS_INCLUDED)
  if(NOT ROOT)
    message(FATAL_ERROR "usage: cmake -DROOT=<source tree> -P CheckLayers.cmake")
  endif()
  mtasts_check_layers("${ROOT}" _errs)
  if(_errs)
    foreach(e ${_errs})
      message("layering: ${e}")
    endforeach()
    message(FATAL_ERROR "common/ breaks its layering (cmake/CheckLayers.cmake)")
  endif()
  message("layering: ok")
endif()
