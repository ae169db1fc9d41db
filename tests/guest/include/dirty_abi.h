/* SPDX-License-Identifier: MIT */
/* The pages of the "dirty" payload (tests/guest/tests/dirty.c), shared
 * with tests/integration/test_qemu.c. */
#ifndef KVMI_GUEST_DIRTY_ABI_H
#define KVMI_GUEST_DIRTY_ABI_H

#define DIRTY_A_GPA 0x340000ull   /* the tool write-protects it */
#define DIRTY_B_GPA 0x341000ull   /* never protected */

#endif
