# Cross-compiling for armhf Linux (arm-linux-gnueabihf) with Debian's cross gcc
# (crossbuild-essential-armhf) against a dependency sysroot: the armhf -dev
# packages unpacked with dpkg -x into FS_ARM_SYSROOT (tests/arm.sh makes it;
# nothing is installed for armhf, so no amd64 package is touched). libc
# comes from the cross toolchain (/usr/arm-linux-gnueabihf). Run the binaries with
#   qemu-arm -L /usr/arm-linux-gnueabihf -E LD_LIBRARY_PATH=$FS_ARM_SYSROOT/usr/lib/arm-linux-gnueabihf:$FS_ARM_SYSROOT/lib/arm-linux-gnueabihf
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(FS_CROSS_TRIPLE arm-linux-gnueabihf)
set(CMAKE_C_COMPILER ${FS_CROSS_TRIPLE}-gcc)

if(NOT FS_ARM_SYSROOT)
  set(FS_ARM_SYSROOT "$ENV{FS_ARM_SYSROOT}")
endif()
if(NOT FS_ARM_SYSROOT)
  message(FATAL_ERROR "set FS_ARM_SYSROOT (tests/arm.sh makes one)")
endif()
set(FS_ARM_SYSROOT "${FS_ARM_SYSROOT}" CACHE PATH "the armhf dependency sysroot")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES FS_ARM_SYSROOT)
set(_fs_lib "${FS_ARM_SYSROOT}/usr/lib/${FS_CROSS_TRIPLE}")
set(_fs_lib2 "${FS_ARM_SYSROOT}/lib/${FS_CROSS_TRIPLE}")
set(CMAKE_C_FLAGS_INIT
    "-isystem ${FS_ARM_SYSROOT}/usr/include -isystem ${FS_ARM_SYSROOT}/usr/include/${FS_CROSS_TRIPLE}")
foreach(kind EXE SHARED MODULE)
  set(CMAKE_${kind}_LINKER_FLAGS_INIT
      "-L${_fs_lib} -L${_fs_lib2} -Wl,-rpath-link,${_fs_lib} -Wl,-rpath-link,${_fs_lib2}")
endforeach()

set(CMAKE_FIND_ROOT_PATH "${FS_ARM_SYSROOT}" /usr/${FS_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER) # protoc-c runs on the build machine
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads the sysroot's .pc files and prefixes their paths with it.
set(ENV{PKG_CONFIG_LIBDIR} "${_fs_lib}/pkgconfig:${FS_ARM_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${FS_ARM_SYSROOT}")
set(ENV{PKG_CONFIG_PATH} "")
