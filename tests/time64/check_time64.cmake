# cmake -DNM=... -DPOINTER_BYTES=4|8 -DLIBRARIES=a.a|b.a -DHEADERS=lib/include/rill -P
# check_time64.cmake: see CMakeLists.txt in this folder.
cmake_minimum_required(VERSION 3.21)
set(problems "")

# 1. Public headers: no type whose size follows _TIME_BITS or _FILE_OFFSET_BITS.
file(GLOB headers ${HEADERS}/*.hpp)
foreach(header ${headers})
  file(STRINGS ${header} lines REGEX
       "(time_t|suseconds_t|timespec|timeval|struct stat|struct tm|std::tm|off_t|off64_t|<ctime>|<time\\.h>|<sys/time\\.h>|<sys/stat\\.h>|<sys/types\\.h>|<unistd\\.h>|<fcntl\\.h>)")
  foreach(line ${lines})
    get_filename_component(name ${header} NAME)
    string(APPEND problems "  ${name}: ${line}\n")
  endforeach()
endforeach()

if(POINTER_BYTES EQUAL 4)
  # glibc's 32-bit-time and 32-bit-offset entry points; with _TIME_BITS=64 and
  # _FILE_OFFSET_BITS=64 its headers call __clock_gettime64, pread64, __fstat64_time64, ...
  # (stat64 and friends are the 64-bit-offset, 32-bit-time ones).
  set(banned
      clock_gettime clock_settime clock_getres clock_nanosleep nanosleep gettimeofday
      settimeofday time gmtime gmtime_r localtime localtime_r mktime timegm difftime ctime ctime_r
      stat fstat lstat fstatat stat64 fstat64 lstat64 fstatat64 __xstat __fxstat __lxstat
      __xstat64 __fxstat64 __lxstat64 futimens utimensat utimes futimes utime select pselect
      ppoll pthread_cond_timedwait pthread_cond_clockwait pthread_mutex_timedlock
      pthread_mutex_clocklock pthread_rwlock_timedrdlock pthread_rwlock_timedwrlock
      pthread_timedjoin_np pthread_clockjoin_np sem_timedwait sem_clockwait timerfd_settime
      timerfd_gettime timer_settime timer_gettime setsockopt getsockopt recvmmsg recvmsg sendmsg
      ioctl fcntl getrusage sigtimedwait epoll_pwait2 mq_timedsend mq_timedreceive
      open openat creat lseek pread pwrite preadv pwritev ftruncate truncate fallocate
      posix_fallocate posix_fadvise mmap fopen freopen fseeko ftello fgetpos fsetpos tmpfile
      readdir readdir_r scandir alphasort statvfs fstatvfs statfs fstatfs getrlimit setrlimit
      sendfile lockf glob globfree ftw nftw
      _ZNSt6chrono3_V212system_clock3nowEv)
  string(REPLACE "|" ";" libraries "${LIBRARIES}")
  foreach(library ${libraries})
    get_filename_component(name ${library} NAME)
    if(NOT EXISTS ${library})
      # librill is what unit-tests links first; the optional parts may not be built.
      if(name MATCHES "^(lib)?rill\\.")
        string(APPEND problems "  ${name}: not built (build unit-tests first)\n")
      else()
        message(STATUS "${name}: not built, not checked")
      endif()
      continue()
    endif()
    execute_process(COMMAND ${NM} -u ${library} OUTPUT_VARIABLE undefined
                    COMMAND_ERROR_IS_FATAL ANY)
    string(REGEX MATCHALL "U [^\n]+" refs "${undefined}")
    set(seen "")
    foreach(ref ${refs})
      string(REGEX REPLACE "^U +" "" symbol "${ref}")
      string(REGEX REPLACE "@.*" "" symbol "${symbol}")
      if(symbol IN_LIST seen)
        continue()
      endif()
      list(APPEND seen ${symbol})
      if(symbol IN_LIST banned)
        string(APPEND problems "  ${name} calls ${symbol} (32-bit time or offset)\n")
      elseif(symbol MATCHES "^gpiod_|gpiod_line_event")
        # libgpiod's C API passes struct timespec of Debian's 32-bit time_t; the C++ binding
        # (std::chrono) is the only way in.
        string(APPEND problems "  ${name} calls libgpiod's C API: ${symbol}\n")
      endif()
    endforeach()
    # Weak (inline, template) definitions whose mangled signature names one of the structures.
    execute_process(COMMAND ${NM} --defined-only ${library} OUTPUT_VARIABLE defined
                    COMMAND_ERROR_IS_FATAL ANY)
    string(REGEX MATCHALL
           "[^\n]* [WVu] [^\n]*[^0-9](8timespec|7timeval|4stat|6stat64|10itimerspec|2tm)[^\n]*"
           weak "${defined}")
    foreach(w ${weak})
      string(APPEND problems "  ${name} defines an inline function over a time structure: ${w}\n")
    endforeach()
  endforeach()
else()
  message(STATUS "${POINTER_BYTES}-byte pointers: time_t and off_t are 64-bit; headers checked only")
endif()

if(problems)
  message(FATAL_ERROR "32-bit time or offsets in rill:\n${problems}")
endif()
message(STATUS "rill: 64-bit time and offsets only; public headers free of time_t and off_t")
