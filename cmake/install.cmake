# install.cmake — what `cmake --install` puts where, under any prefix:
#
#   lib/libkeepalive.so*             the preloaded library: LD_PRELOAD=<prefix>/lib/libkeepalive.so
#   include/keepalive/keepalive.h    its public C API
#   bin/keepalive                    the command (tools/), which finds ../lib/libkeepalive.so
#   lib/cmake/keepalive/             find_package(keepalive) → keepalive::keepalive
#   lib/pkgconfig/keepalive.pc       pkg-config --cflags --libs keepalive
#   share/man/man1/keepalive.1, share/man/man7/libkeepalive.7
#
# Every installed file finds the others by relative paths (the command from
# /proc/self/exe, the CMake files from their own directory, keepalive.pc from
# ${pcfiledir}), so `cmake --install <build> --prefix ANY` works without
# reconfiguring, and an installed tree can be moved as a whole.

include(CMakePackageConfigHelpers)

install(TARGETS keepalive EXPORT keepalive-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/keepalive)

if(TARGET keepalive_command)
  install(TARGETS keepalive_command RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(FILES ${PROJECT_SOURCE_DIR}/tools/man/keepalive.1
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()
install(FILES ${PROJECT_SOURCE_DIR}/tools/man/libkeepalive.7
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man7)

# CMake package: find_package(keepalive) gives the imported target
# keepalive::keepalive (the shared library and its include directory).
# Linking it is preloading it: the program's own accept/accept4/connect go
# through the library's hooks (see libkeepalive(7)).
set(KEEPALIVE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/keepalive)
install(EXPORT keepalive-targets
  NAMESPACE keepalive::
  FILE keepalive-targets.cmake
  DESTINATION ${KEEPALIVE_CMAKE_DIR})
file(WRITE ${PROJECT_BINARY_DIR}/cmake/keepalive-config.cmake.in [[
# keepalive-config.cmake — find_package(keepalive): the imported target
# keepalive::keepalive, libkeepalive.so with its public header.
@PACKAGE_INIT@
include("${CMAKE_CURRENT_LIST_DIR}/keepalive-targets.cmake")
check_required_components(keepalive)
]])
configure_package_config_file(
  ${PROJECT_BINARY_DIR}/cmake/keepalive-config.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/keepalive-config.cmake
  INSTALL_DESTINATION ${KEEPALIVE_CMAKE_DIR})
# Before 1.0 a minor version may change the C API: 0.1.x accepts 0.1 only.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/keepalive-config-version.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/cmake/keepalive-config.cmake
  ${PROJECT_BINARY_DIR}/cmake/keepalive-config-version.cmake
  DESTINATION ${KEEPALIVE_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own directory.
set(KEEPALIVE_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(KEEPALIVE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(KEEPALIVE_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH KEEPALIVE_PC_UP "/prefix/${KEEPALIVE_PC_DIR}" "/prefix")
  string(REGEX REPLACE "/$" "" KEEPALIVE_PC_UP "${KEEPALIVE_PC_UP}")
  set(KEEPALIVE_PC_PREFIX "\${pcfiledir}/${KEEPALIVE_PC_UP}")
  set(KEEPALIVE_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(KEEPALIVE_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(KEEPALIVE_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/keepalive.pc @ONLY CONTENT [[
prefix=@KEEPALIVE_PC_PREFIX@
libdir=@KEEPALIVE_PC_LIBDIR@
includedir=@KEEPALIVE_PC_INCLUDEDIR@

Name: keepalive
Description: @PROJECT_DESCRIPTION@ (C API of libkeepalive)
Version: @PROJECT_VERSION@
Libs: -L${libdir} -lkeepalive
Cflags: -I${includedir}
]])
install(FILES ${PROJECT_BINARY_DIR}/keepalive.pc DESTINATION ${KEEPALIVE_PC_DIR})
