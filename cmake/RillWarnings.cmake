# rill_target_defaults(<target>): the warning set and sanitizers every rill target uses.
function(rill_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wno-sign-conversion
                                           -Wno-missing-field-initializers)
  if(RILL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(RILL_SANITIZE)
    # -O1 -g1 (line tables only) after the build type's -O2 -g: what the sanitizer manuals
    # recommend, still symbolized with file:line, and about half the compile time of -O2 -g
    # (web-view's server.cpp under ASan+UBSan: 20 s instead of 46 s of CPU).
    target_compile_options(${target} PRIVATE -fsanitize=${RILL_SANITIZE} -fno-omit-frame-pointer
                                             -O1 -g1)
    target_link_options(${target} PRIVATE -fsanitize=${RILL_SANITIZE})
    # GCC 12's -Wmaybe-uninitialized misfires on std::regex internals (std::function moves in
    # regex_automaton.h) once the sanitizers' instrumentation is inlined; with -Werror that
    # breaks every target using <regex> (web-view tests, systemd tests). The normal build keeps
    # the warning, so real cases are still caught there.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
  endif()
endfunction()
