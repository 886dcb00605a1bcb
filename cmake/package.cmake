# package.cmake — Debian packages from the build tree (CPack):
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DKEEPALIVE_BUILD_TESTS=OFF
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
# gives libkeepalive_<version>_<arch>.deb (the library, the command, man pages,
# examples) and libkeepalive-dev_<version>_<arch>.deb (header, CMake package,
# pkg-config), components `runtime` and `dev` of cmake/install.cmake.
# Depends are computed by dpkg-shlibdeps (Debian package dpkg-dev). With the
# prefix /usr the library goes to /usr/lib/<multiarch triplet>.

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME libkeepalive)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "libkeepalive developers <dev@libkeepalive.invalid>")
# Each package's description below starts with its own synopsis line; CPack
# prepends the summary to it unless the summary is CPack's default.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CMAKE_PROJECT_NAME} built using CMake")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libkeepalive)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# The shlibs file for libkeepalive.so.0 and the ldconfig trigger (CPack
# also calls ldconfig from postinst and postrm, which is harmless).
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
file(WRITE ${PROJECT_BINARY_DIR}/debian/triggers "activate-noawait ldconfig\n")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/debian/triggers)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "\
per-socket TCP keepalive for any program, by LD_PRELOAD
libkeepalive.so, preloaded into a dynamically linked program (a chat or mail
server, say), switches TCP keepalive on for its connections with the idle
time, interval, probe count and user timeout given in KEEPALIVE_*
variables, per port, direction and peer. Connections that cross a mobile
carrier's NAT then stay mapped while idle, without a global sysctl.
.
The keepalive command runs a program with the library (keepalive run),
explains a configuration (check), shows and sets a running process's
connections (inspect, apply) and measures a NAT's idle timeout (natprobe).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libkeepalive-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libkeepalive (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_DEV_DESCRIPTION "\
per-socket TCP keepalive by LD_PRELOAD - development files
The C API of libkeepalive (keepalive/keepalive.h): parse a configuration,
decide a socket's keepalive settings and apply them, with a CMake package
(find_package(keepalive), target keepalive::keepalive) and a pkg-config file
(keepalive.pc).")

# CPack asks dpkg for the architecture, which is the build machine's: a cross
# build names the target's Debian architecture itself.
if(CMAKE_CROSSCOMPILING)
  set(KEEPALIVE_DEBIAN_ARCHITECTURES aarch64=arm64 x86_64=amd64 armv7l=armhf i686=i386
    riscv64=riscv64 ppc64le=ppc64el s390x=s390x)
  foreach(pair ${KEEPALIVE_DEBIAN_ARCHITECTURES})
    string(REPLACE "=" ";" pair "${pair}")
    list(GET pair 0 processor)
    if(processor STREQUAL CMAKE_SYSTEM_PROCESSOR)
      list(GET pair 1 CPACK_DEBIAN_PACKAGE_ARCHITECTURE)
    endif()
  endforeach()
  if(NOT CPACK_DEBIAN_PACKAGE_ARCHITECTURE)
    message(WARNING "No Debian architecture known for ${CMAKE_SYSTEM_PROCESSOR}: "
                    "set CPACK_DEBIAN_PACKAGE_ARCHITECTURE")
  endif()
  # dpkg-shlibdeps must look at the target's libraries, not the build
  # machine's: a wrapper (cmake/debian/cross-shlibdeps.in) that CPack runs
  # instead.
  set(KEEPALIVE_DEBIAN_ARCH ${CPACK_DEBIAN_PACKAGE_ARCHITECTURE})
  list(GET CMAKE_FIND_ROOT_PATH 0 KEEPALIVE_SYSROOT)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/debian/cross-shlibdeps.in
    ${PROJECT_BINARY_DIR}/debian/cross-shlibdeps @ONLY
    FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
      WORLD_READ WORLD_EXECUTE)
  file(WRITE ${PROJECT_BINARY_DIR}/debian/cpack-cross.cmake
    "set(SHLIBDEPS_EXECUTABLE \"${PROJECT_BINARY_DIR}/debian/cross-shlibdeps\")\n")
  set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_BINARY_DIR}/debian/cpack-cross.cmake)
endif()

include(CPack)
