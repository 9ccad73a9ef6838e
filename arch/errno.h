// SPDX-License-Identifier: MIT
// Kernel-style error numbers.
//
// strata returns Linux's errno values (include/uapi/asm-generic/errno-base.h and errno.h):
// the uAPI hands them to VMMs written against Linux, so the numbers are part of the ABI. They
// are macros, as in every kernel, because a hosted build also sees the C library's <errno.h>;
// where both define a name, the static_asserts below prove they agree.
#pragma once

#ifndef EPERM
#define EPERM 1
#endif
#ifndef ENOENT
#define ENOENT 2
#endif
#ifndef EIO
#define EIO 5
#endif
#ifndef ENXIO
#define ENXIO 6
#endif
#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef EAGAIN
#define EAGAIN 11
#endif
#ifndef ENOMEM
#define ENOMEM 12
#endif
#ifndef EACCES
#define EACCES 13
#endif
#ifndef EFAULT
#define EFAULT 14
#endif
#ifndef EBUSY
#define EBUSY 16
#endif
#ifndef EEXIST
#define EEXIST 17
#endif
#ifndef ENODEV
#define ENODEV 19
#endif
#ifndef EINVAL
#define EINVAL 22
#endif
#ifndef ENOSPC
#define ENOSPC 28
#endif
#ifndef ERANGE
#define ERANGE 34
#endif
#ifndef EOVERFLOW
#define EOVERFLOW 75
#endif
#ifndef EOPNOTSUPP
#define EOPNOTSUPP 95
#endif
#ifndef ETIMEDOUT
#define ETIMEDOUT 110
#endif

static_assert(EPERM == 1 && ENOENT == 2 && EIO == 5 && ENXIO == 6 && E2BIG == 7 && EAGAIN == 11 &&
                  ENOMEM == 12 && EACCES == 13 && EFAULT == 14 && EBUSY == 16 && EEXIST == 17 &&
                  ENODEV == 19 && EINVAL == 22 && ENOSPC == 28 && ERANGE == 34 && EOVERFLOW == 75 &&
                  EOPNOTSUPP == 95 && ETIMEDOUT == 110,
              "errno values differ from Linux's; the uAPI would misreport errors");

namespace strata {

// "EINVAL" for 22 or -22; nullptr for a number strata does not use.
const char* errno_name(int err);

}  // namespace strata
