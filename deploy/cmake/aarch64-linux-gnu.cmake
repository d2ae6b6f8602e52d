# deploy/cmake/aarch64-linux-gnu.cmake - CMake toolchain: Debian's aarch64-linux-gnu-gcc against an arm64 sysroot, programs run under qemu.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=deploy/cmake/aarch64-linux-gnu.cmake \
#              -DTG_SYSROOT=/absolute/path/to/sysroot
#
# TG_SYSROOT (or the environment variable of that name) is a Debian-layout
# arm64 root holding the -dev packages the project links: usr/include,
# usr/lib/aarch64-linux-gnu, lib/aarch64-linux-gnu. deploy/cross-arm64.sh
# unpacks one into build-arm64/sysroot. The compiler, the linker, pkg-config
# and CMake's find_* commands look only there, never at the host's amd64 files.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

if(NOT TG_SYSROOT)
  set(TG_SYSROOT "$ENV{TG_SYSROOT}")
endif()
if(NOT TG_SYSROOT OR NOT IS_ABSOLUTE "${TG_SYSROOT}" OR NOT EXISTS "${TG_SYSROOT}/usr/include")
  message(FATAL_ERROR "aarch64-linux-gnu.cmake: set TG_SYSROOT to the absolute path of an arm64 "
    "sysroot (is: '${TG_SYSROOT}'); deploy/cross-arm64.sh makes one in build-arm64/sysroot")
endif()
set(TG_SYSROOT "${TG_SYSROOT}" CACHE PATH "arm64 sysroot the cross build compiles and links against")
# CMake reads this file again for every try_compile project: pass the sysroot on.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TG_SYSROOT)

set(CMAKE_SYSROOT "${TG_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${TG_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER) # build tools are the host's
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The host's pkg-config, reading only the sysroot's .pc files and prefixing
# the paths they print with the sysroot.
set(ENV{PKG_CONFIG_LIBDIR}
  "${TG_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${TG_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${TG_SYSROOT}")
unset(ENV{PKG_CONFIG_PATH})

# ctest runs each test executable through this, so the unit tests run under
# user-mode emulation with no binfmt_misc registration; -L makes qemu take the
# dynamic loader and every shared library from the sysroot.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L "${TG_SYSROOT}")
