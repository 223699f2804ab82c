# rill_target_defaults(<target>): the warning set and sanitizers every rill target uses.
function(rill_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wno-sign-conversion
                                           -Wno-missing-field-initializers)
  if(RILL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(RILL_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${RILL_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${RILL_SANITIZE})
  endif()
endfunction()
