# deploy/packaging.cmake - CPack project config: checks made when `cpack` runs, per generator.
# SPDX-License-Identifier: Apache-2.0

# A Debian package installs under /usr, and its unit and conffiles carry the
# configure-time paths: a build configured for /usr/local would make a
# package whose unit starts /usr/local/bin/tumblegate.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "tumblegate: a .deb needs the build configured with "
    "-DCMAKE_INSTALL_PREFIX=/usr (this one has '${CPACK_PACKAGING_INSTALL_PREFIX}')")
endif()
