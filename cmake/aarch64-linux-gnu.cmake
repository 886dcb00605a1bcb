# aarch64-linux-gnu.cmake — cross-build for 64-bit ARM (Raspberry Pi 3/4/5 and
# similar) with Debian's cross toolchain:
#   apt-get install g++-aarch64-linux-gnu      (qemu-user to run the result)
#   cmake -S . -B build-arm64 --toolchain cmake/aarch64-linux-gnu.cmake
# Programs built here run on x86 under qemu-user:
#   qemu-aarch64 -L /usr/aarch64-linux-gnu build-arm64/bin/keepalive --version
# The Debian architecture (arm64) is set for CPack by cmake/package.cmake.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Debian's multiarch library directory, which GNUInstallDirs gives native
# builds with the prefix /usr but not cross builds.
set(CMAKE_INSTALL_LIBDIR lib/aarch64-linux-gnu CACHE PATH "Object code libraries (lib/<multiarch>)")
# Test programs run through qemu-user (CTest and gtest_discover_tests use
# this); GoogleTest is built from Debian's sources (libgtest-dev), see the
# top-level CMakeLists.txt.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
