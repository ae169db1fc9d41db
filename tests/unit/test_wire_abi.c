/* SPDX-License-Identifier: MIT */
/*
 * test_wire_abi.c - the wire ABI header against the layouts in the
 * protocol reference: ids, error codes, and for every struct its size,
 * key offsets and the bytes a known value encodes to (taken from the
 * recorded libkvmi requests). The header is included first and alone, so
 * this also proves it is self-contained.
 */
#include <kvmi/kvmi-wire.h>

#include <stdio.h>
#include <string.h>

static int n, failed;

static void ok(int cond, const char *what)
{
	n++;
	if (!cond)
		failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", n, what);
}

#define SIZE(t, s) ok(sizeof(struct t) == (s), "sizeof(struct " #t ") == " #s)
#define OFF(t, f, o) ok(offsetof(struct t, f) == (o), "offsetof(" #t ", " #f ") == " #o)

static int bytes_are(const void *p, size_t len, const char *hex)
{
	const unsigned char *b = p;
	char buf[3];

	if (strlen(hex) != 2 * len)
		return 0;
	for (size_t i = 0; i < len; i++) {
		snprintf(buf, sizeof(buf), "%02x", b[i]);
		if (memcmp(buf, hex + 2 * i, 2))
			return 0;
	}
	return 1;
}

int main(void)
{
	/* ids */
	ok(KVMI_EVENT_REPLY == 0 && KVMI_EVENT == 1 && KVMI_GET_VERSION == 2, "ids 0..2");
	ok(KVMI_GET_REGISTERS == 13 && KVMI_READ_PHYSICAL == 17 && KVMI_SET_PAGE_ACCESS == 21 &&
	   KVMI_CONTROL_CMD_RESPONSE == 27 && KVMI_VCPU_TRANSLATE_GVA == 35 &&
	   KVMI_VCPU_SET_XSAVE == 38 && KVMI_QUERY_PHYSICAL == 39 && KVMI_DESTROY_EPT_VIEW == 44 &&
	   KVMI_VCPU_CHANGE_GFN == 60 && KVMI_VCPU_CONTROL_SINGLESTEP == 63, "command ids");
	ok(KVMI_EVENT_UNHOOK == 0 && KVMI_EVENT_PF == 6 && KVMI_EVENT_PAUSE_VCPU == 10 &&
	   KVMI_EVENT_CMD_ERROR == 12 && KVMI_EVENT_CPUID == 13 && KVMI_NUM_EVENTS == 14, "event ids");
	ok(KVMI_EVENT_ACTION_CONTINUE == 0 && KVMI_EVENT_ACTION_RETRY == 1 &&
	   KVMI_EVENT_ACTION_CRASH == 2, "actions");
	ok(KVM_ENOSYS == 1000 && KVM_EFAULT == 14 && KVM_E2BIG == 7 && KVM_EPERM == 1 &&
	   KVM_EOPNOTSUPP == 95 && KVM_EAGAIN == 11 && KVM_EBUSY == 16 && KVM_EINVAL == 22 &&
	   KVM_ENOENT == 2 && KVM_ENOMEM == 12, "error codes");
	ok(KVMI_MSG_SIZE == 8184 && KVMI_VERSION == 1 && KVMI_MAX_PAUSE_REQUESTS == 1001,
	   "limits");
	ok(KVMI_PAGE_ACCESS_R == 1 && KVMI_PAGE_ACCESS_W == 2 && KVMI_PAGE_ACCESS_X == 4 &&
	   KVMI_PAGE_ACCESS_SVE == 8, "page access bits");

	/* x86 blocks */
	SIZE(kvmi_x86_regs, 144);
	SIZE(kvmi_x86_segment, 24);
	SIZE(kvmi_x86_dtable, 16);
	SIZE(kvmi_x86_sregs, 312);
	SIZE(kvmi_x86_msr_entry, 16);
	SIZE(kvmi_x86_msrs, 8);
	OFF(kvmi_x86_sregs, ldt, 168);
	OFF(kvmi_x86_sregs, idt, 208);
	OFF(kvmi_x86_sregs, apic_base, 272);

	/* handshake and framing */
	SIZE(kvmi_handshake_vmm, 104);
	OFF(kvmi_handshake_vmm, name, 32);
	OFF(kvmi_handshake_vmm, max_gpa, 96);
	SIZE(kvmi_handshake_tool, 24);
	SIZE(kvmi_msg_hdr, 8);
	SIZE(kvmi_error_code, 8);
	SIZE(kvmi_vcpu_hdr, 8);

	/* commands */
	SIZE(kvmi_get_version_reply, 16);
	SIZE(kvmi_features, 8);
	SIZE(kvmi_check_command, 8);
	SIZE(kvmi_check_event, 8);
	SIZE(kvmi_get_guest_info_reply, 16);
	SIZE(kvmi_get_vcpu_info_reply, 8);
	SIZE(kvmi_pause_vcpu, 8);
	SIZE(kvmi_control_vm_events, 8);
	SIZE(kvmi_control_events, 8);
	SIZE(kvmi_control_cr, 8);
	OFF(kvmi_control_cr, cr, 4);
	SIZE(kvmi_control_msr, 8);
	OFF(kvmi_control_msr, msr, 4);
	SIZE(kvmi_get_registers, 8);
	SIZE(kvmi_get_registers_reply, 472);
	SIZE(kvmi_get_cpuid, 8);
	SIZE(kvmi_get_cpuid_reply, 16);
	SIZE(kvmi_read_physical, 16);
	SIZE(kvmi_write_physical, 16);
	SIZE(kvmi_inject_exception, 16);
	OFF(kvmi_inject_exception, address, 8);
	SIZE(kvmi_page_access_entry, 16);
	SIZE(kvmi_set_page_access, 8);
	OFF(kvmi_set_page_access, count, 2);
	SIZE(kvmi_map_mem_token, 32);
	SIZE(kvmi_x_map_memory, 56);
	OFF(kvmi_x_map_memory, gpa, 32);
	OFF(kvmi_x_map_memory, length, 40);
	OFF(kvmi_x_map_memory, flags, 48);
	SIZE(kvmi_x_map_memory_reply, 16);
	ok(KVMI_X_MAP_MEMORY >= KVMI_NUM_MESSAGES, "extension ids stay out of the KVMI range");
	SIZE(kvmi_get_mtrr_type, 8);
	SIZE(kvmi_get_mtrr_type_reply, 8);
	SIZE(kvmi_control_spp, 8);
	SIZE(kvmi_page_write_bitmap_entry, 16);
	SIZE(kvmi_set_page_write_bitmap, 8);
	SIZE(kvmi_control_cmd_response, 8);
	SIZE(kvmi_set_ve_info_page, 16);
	OFF(kvmi_set_ve_info_page, trigger_vmexit, 8);
	SIZE(kvmi_get_max_gfn_reply, 8);
	SIZE(kvmi_set_page_sve, 16);
	OFF(kvmi_set_page_sve, gpa, 8);
	SIZE(kvmi_switch_ept_view, 8);
	SIZE(kvmi_get_ept_view_reply, 8);
	SIZE(kvmi_translate_gva, 8);
	SIZE(kvmi_translate_gva_reply, 8);
	SIZE(kvmi_control_ept_view, 8);
	OFF(kvmi_control_ept_view, visible, 2);
	SIZE(kvmi_get_xcr, 8);
	SIZE(kvmi_get_xcr_reply, 8);
	SIZE(kvmi_query_physical, 8);
	SIZE(kvmi_query_physical_reply, 16);
	SIZE(kvmi_create_ept_view_reply, 8);
	SIZE(kvmi_destroy_ept_view, 8);
	SIZE(kvmi_change_gfn, 24);
	OFF(kvmi_change_gfn, old_gfn, 8);
	SIZE(kvmi_change_gfn_v1, 16);
	SIZE(kvmi_control_singlestep, 8);

	/* events */
	SIZE(kvmi_event, 544);
	OFF(kvmi_event, arch, 8);
	SIZE(kvmi_event_arch, 536);
	OFF(kvmi_event_arch, regs, 8);
	OFF(kvmi_event_arch, sregs, 152);
	OFF(kvmi_event_arch, msrs, 464);
	OFF(kvmi_event, arch.msrs.shadow_gs, 8 + 464 + 64);
	SIZE(kvmi_event_reply, 8);
	SIZE(kvmi_event_cr, 24);
	SIZE(kvmi_event_cr_reply, 8);
	SIZE(kvmi_event_msr, 24);
	SIZE(kvmi_event_msr_reply, 8);
	SIZE(kvmi_event_breakpoint, 16);
	OFF(kvmi_event_breakpoint, insn_len, 8);
	SIZE(kvmi_event_pf, 24);
	OFF(kvmi_event_pf, access, 16);
	OFF(kvmi_event_pf, view, 18);
	SIZE(kvmi_event_pf_reply, 272);
	OFF(kvmi_event_pf_reply, rep_complete, 13);
	SIZE(kvmi_event_trap, 16);
	OFF(kvmi_event_trap, error_code, 4);
	OFF(kvmi_event_trap, cr2, 8);
	SIZE(kvmi_event_descriptor, 8);
	SIZE(kvmi_event_singlestep, 8);
	SIZE(kvmi_event_cmd_error, 16);
	OFF(kvmi_event_cmd_error, msg_id, 8);
	SIZE(kvmi_event_cpuid, 16);
	OFF(kvmi_event_cpuid, insn_length, 8);

	/* encodings of known values (bytes from the recorded libkvmi requests) */
	{
		struct kvmi_control_msr m = { .enable = 1, .msr = 0xc0000081 };
		struct kvmi_inject_exception e = { .nr = 14, .error_code = 2, .address = 0x7fff0000 };
		struct kvmi_control_events ce = { .event_id = 6, .enable = 1 };
		struct kvmi_msg_hdr h = { .id = KVMI_GET_REGISTERS, .size = 24, .seq = 2 };
		struct kvmi_control_cmd_response off = { .enable = 0, .now = 1 };
		struct kvmi_event_reply er = { .action = 1, .event = 6 };

		ok(bytes_are(&m, sizeof(m), "01000000810000c0"), "CONTROL_MSR encoding");
		ok(bytes_are(&e, sizeof(e), "0e000000020000000000ff7f00000000"), "INJECT_EXCEPTION encoding");
		ok(bytes_are(&ce, sizeof(ce), "0600010000000000"), "CONTROL_EVENTS encoding");
		ok(bytes_are(&h, sizeof(h), "0d00180002000000"), "header encoding");
		ok(bytes_are(&off, sizeof(off), "0001000000000000"), "CMD_RESPONSE {0, now} encoding");
		ok(bytes_are(&er, sizeof(er), "0106000000000000"), "event reply encoding");
	}

	printf("1..%d\n", n);
	return failed ? 1 : 0;
}
