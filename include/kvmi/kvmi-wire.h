/* SPDX-License-Identifier: MIT */
/*
 * kvmi-wire.h - the KVMI wire ABI spoken between kvmi-vm and an
 * introspection tool (the libkvmi / KVM-VMI "kvmi-v7" dialect).
 *
 * This header is the single description of every byte on the socket:
 * message and event ids, error codes, and the layout of every struct.
 * It is UAPI-style on purpose:
 *   - fixed-width types only, host (x86-64, little-endian) byte order;
 *   - every hole is spelled out as a field named paddingN, which must be
 *     zero on the wire (the VMM rejects non-zero padding);
 *   - sizes and key offsets are checked at compile time, so a change that
 *     moves a byte fails to build instead of breaking libkvmi;
 *   - it compiles alone as C11 and as C++11, and does not include
 *     <linux/kvm.h>: the x86 register blocks are our own byte-identical
 *     copies (kvmi_x86_*), see tests/unit/test_wire_kvm_compat.c.
 *
 * Layouts follow the kvmi-v7 kernel UAPI and libkvmi, checked byte for
 * byte against the recorded libkvmi vectors (tests/vectors/); where the
 * two name or use a field differently, the comment says so and the VMM
 * accepts both.  docs/protocol-notes.md lists where kvmi departs from them.
 */
#ifndef KVMI_WIRE_H
#define KVMI_WIRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define KVMI_WIRE_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define KVMI_WIRE_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define KVMI_WIRE_SIZE(type, n) \
	KVMI_WIRE_ASSERT(sizeof(struct type) == (n), "sizeof(struct " #type ") != " #n)
#define KVMI_WIRE_OFF(type, field, n) \
	KVMI_WIRE_ASSERT(offsetof(struct type, field) == (n), \
			 "offsetof(struct " #type ", " #field ") != " #n)

/* ------------------------------------------------------------------ */
/* Protocol constants                                                  */
/* ------------------------------------------------------------------ */

#define KVMI_VERSION            0x00000001u

/* Largest payload after the 8-byte header: 2 pages minus the header. */
#define KVMI_MSG_SIZE           (4096u * 2u - 8u)      /* 8184 */
#define KVMI_PAGE_SIZE          4096u

/* Message ids live in [0, KVMI_NUM_MESSAGES); event ids in [0, KVMI_NUM_EVENTS). */
#define KVMI_NUM_MESSAGES       64u
#define KVMI_NUM_EVENTS         14u

/* Most PAUSE_VCPU requests that may be queued for one vCPU. */
#define KVMI_MAX_PAUSE_REQUESTS 1001u

/* Number of EPT views the protocol can address. */
#define KVMI_MAX_EPT_VIEWS      3u

/* TRANSLATE_GVA answer and PF gva when no translation exists. */
#define KVMI_UNMAPPED_GVA       (~(uint64_t)0)

/*
 * Error codes. They travel negated in kvmi_error_code.err.
 * The first six are spelled exactly as <linux/kvm_para.h> spells them so
 * that including both headers is a benign redefinition; the kernel header
 * relies on <errno.h> for the symbolic ones, and so do we.
 */
#include <errno.h>
#define KVM_ENOSYS		1000
#define KVM_EFAULT		EFAULT
#define KVM_EINVAL		EINVAL
#define KVM_E2BIG		E2BIG
#define KVM_EPERM		EPERM
#define KVM_EOPNOTSUPP		95
#ifndef KVM_EAGAIN
#define KVM_EAGAIN		11
#endif
#ifndef KVM_EBUSY
#define KVM_EBUSY		16
#endif
#ifndef KVM_ENOMEM
#define KVM_ENOMEM		12
#endif
#ifndef KVM_ENOENT
#define KVM_ENOENT		2
#endif

/* ------------------------------------------------------------------ */
/* Message ids (kvmi_msg_hdr.id). Names follow libkvmi; the kernel     */
/* name is given when it differs.                                      */
/* ------------------------------------------------------------------ */

enum kvmi_msg_id {
	KVMI_EVENT_REPLY             = 0,   /* tool -> VMM, vCPU-scoped */
	KVMI_EVENT                   = 1,   /* VMM -> tool */
	KVMI_GET_VERSION             = 2,
	KVMI_CHECK_COMMAND           = 3,   /* KVMI_VM_CHECK_COMMAND */
	KVMI_CHECK_EVENT             = 4,   /* KVMI_VM_CHECK_EVENT */
	KVMI_GET_GUEST_INFO          = 5,   /* KVMI_VM_GET_INFO */
	KVMI_GET_VCPU_INFO           = 6,   /* KVMI_VCPU_GET_INFO */
	KVMI_PAUSE_VCPU              = 7,   /* KVMI_VCPU_PAUSE */
	KVMI_CONTROL_VM_EVENTS       = 8,   /* KVMI_VM_CONTROL_EVENTS */
	KVMI_CONTROL_EVENTS          = 9,   /* KVMI_VCPU_CONTROL_EVENTS */
	KVMI_CONTROL_CR              = 10,  /* KVMI_VCPU_CONTROL_CR */
	KVMI_CONTROL_MSR             = 11,  /* KVMI_VCPU_CONTROL_MSR */
	KVMI_CONTROL_VE              = 12,  /* reserved, no handler anywhere */
	KVMI_GET_REGISTERS           = 13,  /* KVMI_VCPU_GET_REGISTERS */
	KVMI_SET_REGISTERS           = 14,  /* KVMI_VCPU_SET_REGISTERS */
	KVMI_GET_CPUID               = 15,  /* KVMI_VCPU_GET_CPUID */
	KVMI_GET_XSAVE               = 16,  /* KVMI_VCPU_GET_XSAVE */
	KVMI_READ_PHYSICAL           = 17,  /* KVMI_VM_READ_PHYSICAL */
	KVMI_WRITE_PHYSICAL          = 18,  /* KVMI_VM_WRITE_PHYSICAL */
	KVMI_INJECT_EXCEPTION        = 19,  /* KVMI_VCPU_INJECT_EXCEPTION */
	KVMI_GET_PAGE_ACCESS         = 20,  /* dropped in 2020, reserved */
	KVMI_SET_PAGE_ACCESS         = 21,  /* KVMI_VM_SET_PAGE_ACCESS */
	KVMI_GET_MAP_TOKEN           = 22,  /* KVMI_VM_GET_MAP_TOKEN */
	KVMI_GET_MTRR_TYPE           = 23,  /* KVMI_VCPU_GET_MTRR_TYPE */
	KVMI_CONTROL_SPP             = 24,  /* KVMI_VM_CONTROL_SPP */
	KVMI_GET_PAGE_WRITE_BITMAP   = 25,  /* dropped, reserved */
	KVMI_SET_PAGE_WRITE_BITMAP   = 26,  /* KVMI_VM_SET_PAGE_WRITE_BITMAP */
	KVMI_CONTROL_CMD_RESPONSE    = 27,  /* KVMI_VM_CONTROL_CMD_RESPONSE */
	KVMI_SET_VE_INFO_PAGE        = 28,  /* KVMI_VCPU_SET_VE_INFO */
	KVMI_GET_MAX_GFN             = 29,  /* KVMI_VM_GET_MAX_GFN */
	KVMI_SET_PAGE_SVE            = 30,  /* KVMI_VM_SET_PAGE_SVE (libkvmi <= 1.1: SET_EPT_PAGE_CONV) */
	KVMI_GET_NEXT_AVAILABLE_GFN  = 31,  /* libkvmi master only */
	KVMI_SWITCH_EPT_VIEW         = 32,  /* KVMI_VCPU_SET_EPT_VIEW */
	KVMI_DISABLE_VE              = 33,  /* KVMI_VCPU_DISABLE_VE */
	KVMI_GET_EPT_VIEW            = 34,  /* KVMI_VCPU_GET_EPT_VIEW */
	KVMI_VCPU_TRANSLATE_GVA      = 35,
	KVMI_CONTROL_EPT_VIEW        = 36,  /* KVMI_VCPU_CONTROL_EPT_VIEW */
	KVMI_VCPU_GET_XCR            = 37,
	KVMI_VCPU_SET_XSAVE          = 38,
	KVMI_QUERY_PHYSICAL          = 39,  /* libkvmi host-mapping path */
	KVMI_VCPU_ALLOC_GFN          = 41,
	KVMI_VCPU_FREE_GFN           = 42,
	KVMI_CREATE_EPT_VIEW         = 43,
	KVMI_DESTROY_EPT_VIEW        = 44,
	KVMI_VCPU_CHANGE_GFN         = 60,
	KVMI_VCPU_CONTROL_SINGLESTEP = 63,
};

/* ------------------------------------------------------------------ */
/* Event ids (kvmi_event.event, CHECK_EVENT, CONTROL_*EVENTS)          */
/* ------------------------------------------------------------------ */

enum kvmi_event_id {
	KVMI_EVENT_UNHOOK      = 0,   /* VM event, no reply */
	KVMI_EVENT_CR          = 1,
	KVMI_EVENT_MSR         = 2,
	KVMI_EVENT_XSETBV      = 3,
	KVMI_EVENT_BREAKPOINT  = 4,
	KVMI_EVENT_HYPERCALL   = 5,
	KVMI_EVENT_PF          = 6,
	KVMI_EVENT_TRAP        = 7,   /* sent after INJECT_EXCEPTION, always on */
	KVMI_EVENT_DESCRIPTOR  = 8,
	KVMI_EVENT_CREATE_VCPU = 9,   /* VM event */
	KVMI_EVENT_PAUSE_VCPU  = 10,  /* one per PAUSE_VCPU request, always on */
	KVMI_EVENT_SINGLESTEP  = 11,
	KVMI_EVENT_CMD_ERROR   = 12,  /* kernel only; VM event, no reply; libkvmi rejects it */
	KVMI_EVENT_CPUID       = 13,
};

enum kvmi_event_action {
	KVMI_EVENT_ACTION_CONTINUE = 0,
	KVMI_EVENT_ACTION_RETRY    = 1,
	KVMI_EVENT_ACTION_CRASH    = 2,
};

/* Page access bits: a set bit means the access is allowed. */
#define KVMI_PAGE_ACCESS_R   (1u << 0)
#define KVMI_PAGE_ACCESS_W   (1u << 1)
#define KVMI_PAGE_ACCESS_X   (1u << 2)
#define KVMI_PAGE_ACCESS_SVE (1u << 3)   /* internal to SET_PAGE_SVE; rejected by SET_PAGE_ACCESS */

/* kvmi_event_descriptor.descriptor */
#define KVMI_DESC_IDTR 1
#define KVMI_DESC_GDTR 2
#define KVMI_DESC_LDTR 3
#define KVMI_DESC_TR   4

/* kvmi_control_cmd_response.flags (kernel field; libkvmi sends 0 here) */
#define KVMI_CMD_RESPONSE_FLAG_CMD_ERROR_EVENT (1u << 0)

/* ------------------------------------------------------------------ */
/* x86 register blocks, byte-identical to <linux/kvm.h>                */
/* ------------------------------------------------------------------ */

struct kvmi_x86_regs {                  /* == struct kvm_regs */
	uint64_t rax, rbx, rcx, rdx;
	uint64_t rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11;
	uint64_t r12, r13, r14, r15;
	uint64_t rip, rflags;
};
KVMI_WIRE_SIZE(kvmi_x86_regs, 144);
KVMI_WIRE_OFF(kvmi_x86_regs, rip, 128);

struct kvmi_x86_segment {               /* == struct kvm_segment */
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t  type;
	uint8_t  present, dpl, db, s, l, g, avl;
	uint8_t  unusable;
	uint8_t  padding1;
};
KVMI_WIRE_SIZE(kvmi_x86_segment, 24);
KVMI_WIRE_OFF(kvmi_x86_segment, selector, 12);
KVMI_WIRE_OFF(kvmi_x86_segment, unusable, 22);

struct kvmi_x86_dtable {                /* == struct kvm_dtable */
	uint64_t base;
	uint16_t limit;
	uint16_t padding1[3];
};
KVMI_WIRE_SIZE(kvmi_x86_dtable, 16);

#define KVMI_X86_NR_INTERRUPTS 256

struct kvmi_x86_sregs {                 /* == struct kvm_sregs */
	struct kvmi_x86_segment cs, ds, es, fs, gs, ss;
	struct kvmi_x86_segment tr, ldt;
	struct kvmi_x86_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8;
	uint64_t efer;
	uint64_t apic_base;
	uint64_t interrupt_bitmap[(KVMI_X86_NR_INTERRUPTS + 63) / 64];
};
KVMI_WIRE_SIZE(kvmi_x86_sregs, 312);
KVMI_WIRE_OFF(kvmi_x86_sregs, tr, 144);
KVMI_WIRE_OFF(kvmi_x86_sregs, gdt, 192);
KVMI_WIRE_OFF(kvmi_x86_sregs, cr0, 224);
KVMI_WIRE_OFF(kvmi_x86_sregs, efer, 264);
KVMI_WIRE_OFF(kvmi_x86_sregs, interrupt_bitmap, 280);

struct kvmi_x86_msr_entry {             /* == struct kvm_msr_entry */
	uint32_t index;
	uint32_t reserved;
	uint64_t data;
};
KVMI_WIRE_SIZE(kvmi_x86_msr_entry, 16);

struct kvmi_x86_msrs {                  /* == struct kvm_msrs header */
	uint32_t nmsrs;
	uint32_t pad;
	/* struct kvmi_x86_msr_entry entries[nmsrs] follow */
};
KVMI_WIRE_SIZE(kvmi_x86_msrs, 8);

#define KVMI_XSAVE_SIZE 4096u           /* == sizeof(struct kvm_xsave) */

/* ------------------------------------------------------------------ */
/* Handshake (out of band, before the first message)                   */
/* ------------------------------------------------------------------ */

#define KVMI_HANDSHAKE_NAME_SIZE 64
#define KVMI_COOKIE_HASH_SIZE    20     /* SHA-1 */

/*
 * VMM -> tool. The receiver reads struct_size first and then
 * struct_size - 4 more bytes. QEMU (and kvmi-vm) send the 104-byte form
 * with max_gpa; libkvmi knows only the first 96 bytes and skips the rest.
 */
struct kvmi_handshake_vmm {     /* libkvmi: struct kvmi_qemu2introspector */
	uint32_t struct_size;
	uint8_t  uuid[16];
	uint32_t padding1;
	int64_t  start_time;            /* ms since the epoch */
	char     name[KVMI_HANDSHAKE_NAME_SIZE];   /* NUL-terminated */
	uint64_t max_gpa;               /* QEMU kvmi-v7 extension */
};
KVMI_WIRE_SIZE(kvmi_handshake_vmm, 104);
KVMI_WIRE_OFF(kvmi_handshake_vmm, uuid, 4);
KVMI_WIRE_OFF(kvmi_handshake_vmm, padding1, 20);
KVMI_WIRE_OFF(kvmi_handshake_vmm, start_time, 24);
KVMI_WIRE_OFF(kvmi_handshake_vmm, name, 32);
KVMI_WIRE_OFF(kvmi_handshake_vmm, max_gpa, 96);

/* Sizes the tool side accepts for struct_size (libkvmi limits). */
#define KVMI_HANDSHAKE_VMM_MIN_SIZE     32u     /* offsetof(name) */
#define KVMI_HANDSHAKE_VMM_LIBKVMI_SIZE 96u     /* what libkvmi reads */
#define KVMI_HANDSHAKE_VMM_MAX_SIZE     65536u

/* tool -> VMM */
struct kvmi_handshake_tool {    /* libkvmi: struct kvmi_introspector2qemu */
	uint32_t struct_size;           /* libkvmi sends 24 */
	uint8_t  cookie_hash[KVMI_COOKIE_HASH_SIZE];
};
KVMI_WIRE_SIZE(kvmi_handshake_tool, 24);
KVMI_WIRE_OFF(kvmi_handshake_tool, cookie_hash, 4);

/* The VMM rejects a tool answer shorter than this. */
#define KVMI_HANDSHAKE_TOOL_MIN_SIZE 24u

/* ------------------------------------------------------------------ */
/* Framing                                                             */
/* ------------------------------------------------------------------ */

struct kvmi_msg_hdr {
	uint16_t id;
	uint16_t size;                  /* payload bytes after this header */
	uint32_t seq;
};
KVMI_WIRE_SIZE(kvmi_msg_hdr, 8);
KVMI_WIRE_OFF(kvmi_msg_hdr, size, 2);
KVMI_WIRE_OFF(kvmi_msg_hdr, seq, 4);

/* First bytes of every command reply; data follows only if err == 0. */
struct kvmi_error_code {
	int32_t  err;                   /* 0 or -KVM_E* */
	uint32_t padding;
};
KVMI_WIRE_SIZE(kvmi_error_code, 8);

/* Prefix of every vCPU-scoped request and of event replies. */
struct kvmi_vcpu_hdr {
	uint16_t vcpu;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_vcpu_hdr, 8);

/* ------------------------------------------------------------------ */
/* Commands. Request structs follow kvmi_vcpu_hdr for vCPU commands.    */
/* *_reply structs follow kvmi_error_code.                              */
/* ------------------------------------------------------------------ */

/* 2 GET_VERSION: no request payload. */
struct kvmi_features {
	uint8_t spp;
	uint8_t vmfunc;
	uint8_t eptp;
	uint8_t ve;
	uint8_t singlestep;             /* kernel K7h; libkvmi calls it padding */
	uint8_t padding1;
	uint16_t padding2;
};
KVMI_WIRE_SIZE(kvmi_features, 8);
KVMI_WIRE_OFF(kvmi_features, singlestep, 4);

struct kvmi_get_version_reply {
	uint32_t version;
	uint32_t padding;
	struct kvmi_features features;
};
KVMI_WIRE_SIZE(kvmi_get_version_reply, 16);

/* 3 CHECK_COMMAND, 4 CHECK_EVENT */
struct kvmi_check_command {
	uint16_t id;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_check_command, 8);

struct kvmi_check_event {
	uint16_t id;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_check_event, 8);

/* 5 GET_GUEST_INFO: no request payload. */
struct kvmi_get_guest_info_reply {
	uint32_t vcpu_count;
	uint32_t padding[3];
};
KVMI_WIRE_SIZE(kvmi_get_guest_info_reply, 16);

/* 6 GET_VCPU_INFO: vcpu hdr only. */
struct kvmi_get_vcpu_info_reply {
	uint64_t tsc_speed;             /* Hz, 0 if unknown */
};
KVMI_WIRE_SIZE(kvmi_get_vcpu_info_reply, 8);

/* 7 PAUSE_VCPU */
struct kvmi_pause_vcpu {
	uint8_t  wait;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_pause_vcpu, 8);

/* 8 CONTROL_VM_EVENTS */
struct kvmi_control_vm_events {
	uint16_t event_id;
	uint8_t  enable;
	uint8_t  padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_control_vm_events, 8);

/* 9 CONTROL_EVENTS */
struct kvmi_control_events {
	uint16_t event_id;
	uint8_t  enable;
	uint8_t  padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_control_events, 8);

/* 10 CONTROL_CR */
struct kvmi_control_cr {
	uint8_t  enable;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t cr;                    /* 0, 3 or 4 */
};
KVMI_WIRE_SIZE(kvmi_control_cr, 8);

/* 11 CONTROL_MSR */
struct kvmi_control_msr {
	uint8_t  enable;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t msr;
};
KVMI_WIRE_SIZE(kvmi_control_msr, 8);

/* 13 GET_REGISTERS */
struct kvmi_get_registers {
	uint16_t nmsrs;
	uint16_t padding1;
	uint32_t padding2;
	/* uint32_t msrs_idx[nmsrs] follow */
};
KVMI_WIRE_SIZE(kvmi_get_registers, 8);

struct kvmi_get_registers_reply {
	uint32_t mode;                  /* 2, 4 or 8 bytes */
	uint32_t padding;
	struct kvmi_x86_regs  regs;
	struct kvmi_x86_sregs sregs;
	struct kvmi_x86_msrs  msrs;
	/* struct kvmi_x86_msr_entry entries[msrs.nmsrs] follow */
};
KVMI_WIRE_SIZE(kvmi_get_registers_reply, 472);
KVMI_WIRE_OFF(kvmi_get_registers_reply, regs, 8);
KVMI_WIRE_OFF(kvmi_get_registers_reply, sregs, 152);
KVMI_WIRE_OFF(kvmi_get_registers_reply, msrs, 464);

/* 14 SET_REGISTERS: the payload after the vcpu hdr is struct kvmi_x86_regs. */

/* 15 GET_CPUID */
struct kvmi_get_cpuid {
	uint32_t function;
	uint32_t index;
};
KVMI_WIRE_SIZE(kvmi_get_cpuid, 8);

struct kvmi_get_cpuid_reply {
	uint32_t eax, ebx, ecx, edx;
};
KVMI_WIRE_SIZE(kvmi_get_cpuid_reply, 16);

/* 16 GET_XSAVE: vcpu hdr only; reply is KVMI_XSAVE_SIZE bytes of region. */
/* 38 VCPU_SET_XSAVE: vcpu hdr + up to KVMI_XSAVE_SIZE bytes of region. */

/* 17 READ_PHYSICAL; reply is size bytes of data. */
struct kvmi_read_physical {
	uint64_t gpa;
	uint64_t size;
};
KVMI_WIRE_SIZE(kvmi_read_physical, 16);

/* 18 WRITE_PHYSICAL */
struct kvmi_write_physical {
	uint64_t gpa;
	uint64_t size;
	/* uint8_t data[size] follow */
};
KVMI_WIRE_SIZE(kvmi_write_physical, 16);

/* 19 INJECT_EXCEPTION */
struct kvmi_inject_exception {
	uint8_t  nr;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t error_code;
	uint64_t address;               /* becomes CR2 for #PF */
};
KVMI_WIRE_SIZE(kvmi_inject_exception, 16);
KVMI_WIRE_OFF(kvmi_inject_exception, error_code, 4);

/* 21 SET_PAGE_ACCESS */
struct kvmi_page_access_entry {
	uint64_t gpa;
	uint8_t  access;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_page_access_entry, 16);

struct kvmi_set_page_access {
	uint16_t view;                  /* K7d doc shows {count, view}; code and libkvmi: {view, count} */
	uint16_t count;
	uint32_t padding;
	/* struct kvmi_page_access_entry entries[count] follow */
};
KVMI_WIRE_SIZE(kvmi_set_page_access, 8);

/* 22 GET_MAP_TOKEN: no request payload. */
struct kvmi_map_mem_token {
	uint64_t token[4];
};
KVMI_WIRE_SIZE(kvmi_map_mem_token, 32);

struct kvmi_get_map_token_reply {
	struct kvmi_map_mem_token token;
};
KVMI_WIRE_SIZE(kvmi_get_map_token_reply, 32);

/*
 * kvmi extension (not part of libkvmi's protocol, no kernel has it):
 * KVMI_X_MAP_MEMORY redeems a GET_MAP_TOKEN token for a mapping of guest
 * physical memory in the tool's own address space. The request is a normal
 * VM-scoped message; a successful reply is a normal reply (kvmi_error_code +
 * struct kvmi_x_map_memory_reply) that carries one file descriptor (the
 * guest-RAM memfd) as SCM_RIGHTS ancillary data on its first byte. The tool
 * mmap()s reply.length bytes at reply.fd_offset with MAP_SHARED.
 *
 * Only answered on AF_UNIX connections (elsewhere -KVM_EOPNOTSUPP). A token
 * is single use; an unknown, expired or already used token: -KVM_EPERM.
 * gpa and length are 4 KiB aligned, length > 0, and the range lies in one
 * RAM region (QUERY_PHYSICAL tells which ranges are RAM), else -KVM_EINVAL
 * (misaligned / flags / padding) or -KVM_ENOENT (not RAM). The admin policy
 * allows it together with GET_MAP_TOKEN. Ids from 0x4b00 up are reserved
 * for kvmi extensions; they stay out of [0, KVMI_NUM_MESSAGES).
 */
#define KVMI_X_FIRST            0x4b00u
#define KVMI_X_MAP_MEMORY       0x4b01u

#define KVMI_X_MAP_READONLY     0x1u    /* hand out a read-only descriptor */

struct kvmi_x_map_memory {
	struct kvmi_map_mem_token token;
	uint64_t gpa;
	uint64_t length;
	uint32_t flags;                 /* KVMI_X_MAP_* */
	uint32_t padding;
};
KVMI_WIRE_SIZE(kvmi_x_map_memory, 56);
KVMI_WIRE_OFF(kvmi_x_map_memory, gpa, 32);
KVMI_WIRE_OFF(kvmi_x_map_memory, length, 40);
KVMI_WIRE_OFF(kvmi_x_map_memory, flags, 48);

struct kvmi_x_map_memory_reply {
	uint64_t fd_offset;             /* where gpa starts in the passed file */
	uint64_t length;                /* = the requested length */
};
KVMI_WIRE_SIZE(kvmi_x_map_memory_reply, 16);

/* 23 GET_MTRR_TYPE */
struct kvmi_get_mtrr_type {
	uint64_t gpa;
};
KVMI_WIRE_SIZE(kvmi_get_mtrr_type, 8);

struct kvmi_get_mtrr_type_reply {
	uint8_t  type;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_get_mtrr_type_reply, 8);

/* 24 CONTROL_SPP */
struct kvmi_control_spp {
	uint8_t  enable;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_control_spp, 8);

/* 26 SET_PAGE_WRITE_BITMAP */
struct kvmi_page_write_bitmap_entry {
	uint64_t gpa;
	uint32_t bitmap;                /* bit i: 128-byte sub-page i writable */
	uint32_t padding;
};
KVMI_WIRE_SIZE(kvmi_page_write_bitmap_entry, 16);

struct kvmi_set_page_write_bitmap {
	uint16_t view;                  /* kernel: padding1; libkvmi always sends 0 */
	uint16_t count;
	uint32_t padding;
	/* struct kvmi_page_write_bitmap_entry entries[count] follow */
};
KVMI_WIRE_SIZE(kvmi_set_page_write_bitmap, 8);

/* 27 CONTROL_CMD_RESPONSE. libkvmi: {enable; now; u16 padding1; u32 padding2};
 * the kernel splits libkvmi's padding1 into {flags; padding1}. */
struct kvmi_control_cmd_response {
	uint8_t  enable;
	uint8_t  now;
	uint8_t  flags;                 /* KVMI_CMD_RESPONSE_FLAG_* */
	uint8_t  padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_control_cmd_response, 8);

/* 28 SET_VE_INFO_PAGE */
struct kvmi_set_ve_info_page {
	uint64_t gpa;
	uint8_t  trigger_vmexit;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_set_ve_info_page, 16);

/* 29 GET_MAX_GFN, 31 GET_NEXT_AVAILABLE_GFN: no request payload. */
struct kvmi_get_max_gfn_reply {
	uint64_t gfn;
};
KVMI_WIRE_SIZE(kvmi_get_max_gfn_reply, 8);

struct kvmi_get_next_available_gfn_reply {
	uint64_t gfn;
};
KVMI_WIRE_SIZE(kvmi_get_next_available_gfn_reply, 8);

/* 30 SET_PAGE_SVE (kernel only) */
struct kvmi_set_page_sve {
	uint16_t view;
	uint8_t  suppress;
	uint8_t  padding1;
	uint32_t padding2;
	uint64_t gpa;
};
KVMI_WIRE_SIZE(kvmi_set_page_sve, 16);

/* 32 SWITCH_EPT_VIEW */
struct kvmi_switch_ept_view {
	uint16_t view;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_switch_ept_view, 8);

/* 34 GET_EPT_VIEW: vcpu hdr only. */
struct kvmi_get_ept_view_reply {
	uint16_t view;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_get_ept_view_reply, 8);

/* 35 VCPU_TRANSLATE_GVA */
struct kvmi_translate_gva {
	uint64_t gva;
};
KVMI_WIRE_SIZE(kvmi_translate_gva, 8);

struct kvmi_translate_gva_reply {
	uint64_t gpa;                   /* KVMI_UNMAPPED_GVA if untranslatable */
};
KVMI_WIRE_SIZE(kvmi_translate_gva_reply, 8);

/* 36 CONTROL_EPT_VIEW */
struct kvmi_control_ept_view {
	uint16_t view;
	uint8_t  visible;
	uint8_t  padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_control_ept_view, 8);

/* 37 VCPU_GET_XCR */
struct kvmi_get_xcr {
	uint8_t  xcr;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_get_xcr, 8);

struct kvmi_get_xcr_reply {
	uint64_t value;
};
KVMI_WIRE_SIZE(kvmi_get_xcr_reply, 8);

/* 39 QUERY_PHYSICAL */
struct kvmi_query_physical {
	uint64_t gfn;
};
KVMI_WIRE_SIZE(kvmi_query_physical, 8);

struct kvmi_query_physical_reply {
	uint64_t gfn;                   /* first gfn of the region */
	uint64_t size;                  /* region size in pages */
};
KVMI_WIRE_SIZE(kvmi_query_physical_reply, 16);

/* 41 VCPU_ALLOC_GFN, 42 VCPU_FREE_GFN (vcpu hdr, libkvmi sends vcpu 0) */
struct kvmi_alloc_gfn {
	uint64_t gfn;
};
KVMI_WIRE_SIZE(kvmi_alloc_gfn, 8);

struct kvmi_free_gfn {
	uint64_t gfn;
};
KVMI_WIRE_SIZE(kvmi_free_gfn, 8);

/* 43 CREATE_EPT_VIEW: no request payload. 44 DESTROY_EPT_VIEW. */
struct kvmi_create_ept_view_reply {
	uint16_t view;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_create_ept_view_reply, 8);

struct kvmi_destroy_ept_view {
	uint16_t view;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_destroy_ept_view, 8);

/* 60 VCPU_CHANGE_GFN. Two incompatible forms exist; the size tells them apart. */
struct kvmi_change_gfn {                /* libkvmi master (24 B) */
	uint16_t view;
	uint16_t padding1;
	uint32_t padding2;
	uint64_t old_gfn;
	uint64_t new_gfn;
};
KVMI_WIRE_SIZE(kvmi_change_gfn, 24);

struct kvmi_change_gfn_v1 {             /* K7 kernel, libkvmi <= 1.1 (16 B) */
	uint64_t old_gfn;
	uint64_t new_gfn;
};
KVMI_WIRE_SIZE(kvmi_change_gfn_v1, 16);

/* 63 VCPU_CONTROL_SINGLESTEP */
struct kvmi_control_singlestep {
	uint8_t  enable;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_control_singlestep, 8);

/* ------------------------------------------------------------------ */
/* Events: hdr{id=KVMI_EVENT} + struct kvmi_event + specific part.      */
/* Replies: hdr{id=KVMI_EVENT_REPLY, seq=event seq} + kvmi_vcpu_hdr +   */
/*          struct kvmi_event_reply + specific reply.                   */
/* ------------------------------------------------------------------ */

struct kvmi_event_arch_msrs {
	uint64_t sysenter_cs;
	uint64_t sysenter_esp;
	uint64_t sysenter_eip;
	uint64_t efer;
	uint64_t star;
	uint64_t lstar;
	uint64_t cstar;
	uint64_t pat;
	uint64_t shadow_gs;
};
KVMI_WIRE_SIZE(kvmi_event_arch_msrs, 72);

struct kvmi_event_arch {
	uint8_t  mode;                  /* 2, 4 or 8 */
	uint8_t  padding1;
	uint16_t view;                  /* current EPT view */
	uint32_t padding2;
	struct kvmi_x86_regs  regs;
	struct kvmi_x86_sregs sregs;
	struct kvmi_event_arch_msrs msrs;
};
KVMI_WIRE_SIZE(kvmi_event_arch, 536);
KVMI_WIRE_OFF(kvmi_event_arch, view, 2);
KVMI_WIRE_OFF(kvmi_event_arch, regs, 8);
KVMI_WIRE_OFF(kvmi_event_arch, sregs, 152);
KVMI_WIRE_OFF(kvmi_event_arch, msrs, 464);

struct kvmi_event {
	uint16_t size;                  /* sizeof(struct kvmi_event); specific part starts here */
	uint16_t vcpu;
	uint8_t  event;                 /* enum kvmi_event_id */
	uint8_t  padding1;
	uint16_t padding2;
	struct kvmi_event_arch arch;
};
KVMI_WIRE_SIZE(kvmi_event, 544);
KVMI_WIRE_OFF(kvmi_event, vcpu, 2);
KVMI_WIRE_OFF(kvmi_event, event, 4);
KVMI_WIRE_OFF(kvmi_event, arch, 8);

/* The smallest common part a receiver accepts (libkvmi): up to arch. */
#define KVMI_EVENT_COMMON_MIN_SIZE 8u

struct kvmi_event_reply {
	uint8_t  action;                /* enum kvmi_event_action */
	uint8_t  event;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_event_reply, 8);

/* 1 CR */
struct kvmi_event_cr {
	uint16_t cr;
	uint16_t padding1;
	uint32_t padding2;
	uint64_t old_value;
	uint64_t new_value;
};
KVMI_WIRE_SIZE(kvmi_event_cr, 24);

struct kvmi_event_cr_reply {
	uint64_t new_val;
};
KVMI_WIRE_SIZE(kvmi_event_cr_reply, 8);

/* 2 MSR */
struct kvmi_event_msr {
	uint32_t msr;
	uint32_t padding;
	uint64_t old_value;
	uint64_t new_value;
};
KVMI_WIRE_SIZE(kvmi_event_msr, 24);

struct kvmi_event_msr_reply {
	uint64_t new_val;
};
KVMI_WIRE_SIZE(kvmi_event_msr_reply, 8);

/* 4 BREAKPOINT */
struct kvmi_event_breakpoint {
	uint64_t gpa;
	uint8_t  insn_len;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_event_breakpoint, 16);

/* 6 PF. libkvmi reads view at offset 18; the K7 kernel sends 0 there.
 * flags (offset 17) is padding1 for libkvmi and the kernel, which sent 0
 * there; kvmi sets KVMI_EVENT_PF_FLAG_* bits in it (docs/protocol-notes.md). */
struct kvmi_event_pf {
	uint64_t gva;
	uint64_t gpa;
	uint8_t  access;
	uint8_t  flags;
	uint16_t view;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_event_pf, 24);
KVMI_WIRE_OFF(kvmi_event_pf, flags, 17);
KVMI_WIRE_OFF(kvmi_event_pf, view, 18);

/*
 * kvmi extension: the guest's own page walker, not an instruction, needs
 * the page (it holds a guest page table).  Under nested paging (AMD NPT,
 * Intel EPT) every walker access to a guest page table counts as a write,
 * so access is KVMI_PAGE_ACCESS_W; a store by the guest never has the flag.
 * The instruction that caused the walk has already run (KVM emulated it).
 * RETRY enters the guest again (the walk faults again while the page lacks
 * W); CONTINUE grants W on the page (the tool's protection of it ends).
 */
#define KVMI_EVENT_PF_FLAG_PAGE_WALK 0x1u

/*
 * kvmi extension, for CHECK_EVENT only (not an event id): 0 when a guest
 * page walk through a write-protected page reaches the tool as a PF event
 * with KVMI_EVENT_PF_FLAG_PAGE_WALK, or needs none (no nested paging);
 * -KVM_EOPNOTSUPP when this host cannot report such walks, in which case
 * SET_PAGE_ACCESS refuses to take W from a page-table page of a vCPU's
 * current address space.  Servers without the extension answer -KVM_EINVAL.
 */
#define KVMI_X_EVENT_PF_PAGE_WALK 0x4b06u

#define KVMI_PF_CTX_DATA_SIZE 256u

/* libkvmi names byte 12 singlestep; the K7 kernel requires it to be 0. */
struct kvmi_event_pf_reply {
	uint64_t ctx_addr;
	uint32_t ctx_size;
	uint8_t  singlestep;
	uint8_t  rep_complete;
	uint16_t padding;
	uint8_t  ctx_data[KVMI_PF_CTX_DATA_SIZE];
};
KVMI_WIRE_SIZE(kvmi_event_pf_reply, 272);
KVMI_WIRE_OFF(kvmi_event_pf_reply, singlestep, 12);
KVMI_WIRE_OFF(kvmi_event_pf_reply, ctx_data, 16);

/* 7 TRAP */
struct kvmi_event_trap {
	uint8_t  vector;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t error_code;
	uint64_t cr2;
};
KVMI_WIRE_SIZE(kvmi_event_trap, 16);

/* 8 DESCRIPTOR */
struct kvmi_event_descriptor {
	uint8_t  descriptor;            /* KVMI_DESC_* */
	uint8_t  write;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_event_descriptor, 8);

/* 11 SINGLESTEP */
struct kvmi_event_singlestep {
	uint8_t  failed;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_event_singlestep, 8);

/* 12 CMD_ERROR (kernel only, no reply) */
struct kvmi_event_cmd_error {
	int32_t  err;
	uint32_t msg_seq;
	uint16_t msg_id;
	uint16_t padding1;
	uint32_t padding2;
};
KVMI_WIRE_SIZE(kvmi_event_cmd_error, 16);

/* 13 CPUID */
struct kvmi_event_cpuid {
	uint32_t function;
	uint32_t index;
	uint8_t  insn_length;
	uint8_t  padding1;
	uint16_t padding2;
	uint32_t padding3;
};
KVMI_WIRE_SIZE(kvmi_event_cpuid, 16);

/* Largest event-specific part and reply part (for fixed buffers). */
#define KVMI_EVENT_SPECIFIC_MAX   24u   /* cr, msr, pf */
#define KVMI_EVENT_REPLY_SPECIFIC_MAX 272u  /* pf reply */

#endif /* KVMI_WIRE_H */
