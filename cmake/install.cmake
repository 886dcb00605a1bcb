# install.cmake — what `cmake --install` puts where, under any prefix:
#
#   lib/libkeepalive.so*             the preloaded library: LD_PRELOAD=<prefix>/lib/libkeepalive.so
#   include/keepalive/keepalive.h    its public C API
#   bin/keepalive                    the command (tools/), which finds ../lib/libkeepalive.so
#   lib/cmake/keepalive/             find_package(keepalive) → keepalive::keepalive
#   lib/pkgconfig/keepalive.pc       pkg-config --cflags --libs keepalive
#   share/man/man1/keepalive.1.gz, share/man/man7/libkeepalive.7.gz
#   share/doc/libkeepalive/          copyright (the MIT licence), changelog.gz,
#                                    examples/ (Prosody drop-in, container, run)
#   share/doc/libkeepalive-dev/      copyright, changelog.gz
# `lib` is lib/<multiarch triplet> (lib/x86_64-linux-gnu) under the prefix
# /usr on Debian (GNUInstallDirs).
#
# Two components, one Debian package each (cmake/package.cmake): runtime
# (library with its soname links, command, man pages, examples) and dev
# (header, CMake package, pkg-config). The unversioned libkeepalive.so is
# the name users preload (LD_PRELOAD, systemd drop-ins), so it belongs to
# runtime, not dev.
#
# Every installed file finds the others by relative paths (the command from
# /proc/self/exe, the CMake files from their own directory, keepalive.pc from
# ${pcfiledir}), so `cmake --install <build> --prefix ANY` works without
# reconfiguring, and an installed tree can be moved as a whole.

include(CMakePackageConfigHelpers)

install(TARGETS keepalive EXPORT keepalive-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/keepalive COMPONENT dev)

# Man pages and changelog compressed as Debian wants them (gzip -n: the same
# bytes on every build); man(1) reads them so everywhere. The packages are
# native (built by this project, version without a Debian revision), so the
# Debian-format changelog is changelog.gz, not changelog.Debian.gz.
function(keepalive_gzip source output)
  add_custom_command(OUTPUT ${output}
    COMMAND gzip -9nc ${source} > ${output}
    DEPENDS ${source}
    VERBATIM)
endfunction()
set(KEEPALIVE_GZIPPED ${PROJECT_BINARY_DIR}/gzipped)
file(MAKE_DIRECTORY ${KEEPALIVE_GZIPPED})
foreach(page keepalive.1 libkeepalive.7)
  keepalive_gzip(${PROJECT_SOURCE_DIR}/tools/man/${page} ${KEEPALIVE_GZIPPED}/${page}.gz)
endforeach()
keepalive_gzip(${PROJECT_SOURCE_DIR}/cmake/debian/changelog
  ${KEEPALIVE_GZIPPED}/changelog.gz)
add_custom_target(keepalive_gzipped ALL DEPENDS
  ${KEEPALIVE_GZIPPED}/libkeepalive.7.gz ${KEEPALIVE_GZIPPED}/changelog.gz
  $<$<TARGET_EXISTS:keepalive_command>:${KEEPALIVE_GZIPPED}/keepalive.1.gz>)

if(TARGET keepalive_command)
  install(TARGETS keepalive_command RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  install(FILES ${KEEPALIVE_GZIPPED}/keepalive.1.gz
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
endif()
install(FILES ${KEEPALIVE_GZIPPED}/libkeepalive.7.gz
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man7 COMPONENT runtime)

# The licence in Debian's machine-readable copyright format, from LICENSE.
file(READ ${PROJECT_SOURCE_DIR}/LICENSE KEEPALIVE_LICENSE_TEXT)
string(REGEX REPLACE "^MIT License\n\n(Copyright[^\n]*)\n\n" "" KEEPALIVE_LICENSE_BODY
  "${KEEPALIVE_LICENSE_TEXT}")
string(REGEX MATCH "Copyright \\(c\\) ([^\n]*)" _ "${KEEPALIVE_LICENSE_TEXT}")
set(KEEPALIVE_COPYRIGHT_HOLDER "${CMAKE_MATCH_1}")
string(REGEX REPLACE "\n+$" "" KEEPALIVE_LICENSE_BODY "${KEEPALIVE_LICENSE_BODY}")
string(REGEX REPLACE "\n\n" "\n.\n" KEEPALIVE_LICENSE_BODY "${KEEPALIVE_LICENSE_BODY}")
string(REGEX REPLACE "\n" "\n " KEEPALIVE_LICENSE_BODY "${KEEPALIVE_LICENSE_BODY}")
file(WRITE ${PROJECT_BINARY_DIR}/copyright "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: libkeepalive
Source: the libkeepalive source tree (LICENSE)

Files: *
Copyright: ${KEEPALIVE_COPYRIGHT_HOLDER}
License: MIT

License: MIT
 ${KEEPALIVE_LICENSE_BODY}
")
foreach(component runtime dev)
  set(package libkeepalive)
  if(component STREQUAL "dev")
    set(package libkeepalive-dev)
  endif()
  install(FILES ${PROJECT_BINARY_DIR}/copyright ${KEEPALIVE_GZIPPED}/changelog.gz
    DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package} COMPONENT ${component})
endforeach()
# The demos (examples/demo, examples/prosody/demo) build the tree and run
# the emulated NAT of tests/e2e: they run from the sources only.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/libkeepalive/examples
  COMPONENT runtime USE_SOURCE_PERMISSIONS
  PATTERN demo EXCLUDE)

# CMake package: find_package(keepalive) gives the imported target
# keepalive::keepalive (the shared library and its include directory).
# Linking it is preloading it: the program's own accept/accept4/connect go
# through the library's hooks (see libkeepalive(7)).
set(KEEPALIVE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/keepalive)
install(EXPORT keepalive-targets
  COMPONENT dev
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
  DESTINATION ${KEEPALIVE_CMAKE_DIR} COMPONENT dev)

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
install(FILES ${PROJECT_BINARY_DIR}/keepalive.pc DESTINATION ${KEEPALIVE_PC_DIR} COMPONENT dev)
